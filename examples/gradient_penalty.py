"""A loss with a gradient in it: input-gradient penalty ("double backpropagation"), one SGD step.

    python examples/gradient_penalty.py

For an MLP classifier with parameters θ and a batch X (one example per row):

    L(θ) = L_data(θ) + μ ‖∇ₓ L_data(θ)‖²,     L_data = Σᵢ CE(softmax(z^[L](xᵢ)), yᵢ)

The penalty makes the loss flat in the inputs (robustness to small input changes).  Its gradient
∂L/∂θ needs the derivative of a gradient: ∇ₓ L_data is computed with ``create_graph=True`` so
that it is itself on the tape, and ``L.backward()`` then differentiates through it.
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tinygrad_mlp import MLP, Tensor  # noqa: E402
from tinygrad_mlp import autograd as ag  # noqa: E402
from tinygrad_mlp import functional as F  # noqa: E402
from tinygrad_mlp import optim  # noqa: E402

MU = 0.5


def data(n=32, seed=0):
    """Two interleaved half-moons, standardised (scikit-learn's generator: nothing is downloaded)."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n, noise=0.1, random_state=seed)
    return (X - X.mean(0)) / X.std(0), y


def penalized_loss(model: MLP, X: np.ndarray, y: np.ndarray, mu: float = MU, create_graph: bool = True):
    """(L, L_data, penalty) as Tensors.  Without ``create_graph`` the penalty is a constant
    (its value is right, but L.backward() would miss its dependence on θ): for checking only."""
    x = Tensor(X, requires_grad=True)
    data_loss = F.cross_entropy(model.logits(x), y)
    (gx,) = ag.grad(data_loss, x, create_graph=create_graph, retain_graph=True)
    penalty = (gx * gx).sum()
    return data_loss + penalty * mu, data_loss, penalty


def main(argv=None) -> int:
    X, y = data()
    model = MLP([2, 8, 2], hidden="tanh", output="softmax", seed=0)
    opt = optim.SGD(model.parameters(), 0.05)
    before = [float(t.data) for t in penalized_loss(model, X, y)]
    print(f"before: L = {before[0]:.6f}  (data {before[1]:.6f}, ||grad_x L_data||^2 = {before[2]:.6f})")
    opt.zero_grad()
    L, _, _ = penalized_loss(model, X, y)
    L.backward()  # through the recorded ∇ₓ L_data: second derivatives of the network
    norm = np.sqrt(sum(float(np.sum(p.grad ** 2)) for p in model.parameters()))
    opt.step()
    after = [float(t.data) for t in penalized_loss(model, X, y)]
    print(f"one SGD step (lr 0.05, ||dL/dtheta|| = {norm:.4f})")
    print(f"after:  L = {after[0]:.6f}  (data {after[1]:.6f}, ||grad_x L_data||^2 = {after[2]:.6f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
