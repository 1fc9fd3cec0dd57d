"""Quickstart: the tape on one layer, then a tiny regression fitted with SGD by hand.

    python examples/quickstart.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tinygrad_mlp import Tensor, no_grad  # noqa: E402

# --- 1. One layer: L = Σ tanh(W x); ∂L/∂W = (1 − tanh²(Wx)) xᵀ.
W = Tensor([[0.1, 0.1], [0.1, 0.1]], requires_grad=True)
x = Tensor([1.0, 0.0])
loss = (W @ x).tanh().sum()
loss.backward()
print("W.grad =\n", W.grad)  # a numpy array of W's shape
expected = np.outer(1 - np.tanh([0.1, 0.1]) ** 2, [1.0, 0.0])
assert np.allclose(W.grad, expected)

# --- 2. Fit y = 3x − 1 + noise with w, b and plain gradient descent, updates written by hand.
rng = np.random.default_rng(0)
X = rng.uniform(-1, 1, size=(32, 1))
y = 3.0 * X[:, 0] - 1.0 + 0.05 * rng.standard_normal(32)

w = Tensor(np.zeros(1), requires_grad=True)
b = Tensor(0.0, requires_grad=True)
lr = 0.1
for step in range(200):
    y_hat = Tensor(X) @ w + b           # (32,): one prediction per row
    mse = ((y_hat - y) ** 2).mean()     # L = (1/n) Σ (ŷ − y)²
    w.grad = b.grad = None              # backward accumulates: clear first
    mse.backward()
    with no_grad():                     # the update itself is not part of the graph
        w.data -= lr * w.grad
        b.data -= lr * b.grad
    if step % 50 == 0:
        print(f"step {step:3d}  mse {mse.item():.4f}")

print(f"fitted w = {w.item():.3f}, b = {b.item():.3f}  (true 3, -1)")
assert abs(w.item() - 3.0) < 0.1 and abs(b.item() + 1.0) < 0.1
