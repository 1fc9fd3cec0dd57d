"""Questions 1.1 and 2.1 of the practical, step by step, with the library's MLP.

    python examples/practical_q1_q2.py      (after ``pip install -e .``)

A 4-4-3-3 network, tanh hidden layers, every weight and bias 0.1, one SGD step
(η = 0.1) on x = (1, 0, 1, 0), y = (0, 1, 0): first with an identity output and
the squared error (Question 1), then with a softmax output and the cross-entropy
(Question 2).  Prints z^[l], h^[l], the loss, δ^[l] = ∂L/∂z^[l], ∂L/∂h^[l],
∂L/∂W^[l], ∂L/∂b^[l] and the updated parameters.  In Question 2 the hidden
gradients are exactly 0 (equal logits: δ^[3] = p − y sums to 0 and every row of
W^[3] is the same); float64 leaves about 1e-17, shown rounded as 0.
"""
import numpy as np

from tinygrad_mlp import functional as F
from tinygrad_mlp.nn import MLP
from tinygrad_mlp.nn.optim import SGD

np.set_printoptions(precision=6, suppress=True, floatmode="maxprec")


def r(a):
    """Six decimals, as the sheet prints at most; + 0.0 turns the −0.0 of a rounded −1e-17 into 0."""
    return np.round(np.asarray(a), 6) + 0.0


x, y = [1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0]

for question, output in (("Question 1: squared error", "identity"), ("Question 2: softmax + cross-entropy", "softmax")):
    print(f"=== {question} ===")
    model = MLP([4, 4, 3, 3], hidden="tanh", output=output, weight_init=0.1, bias_init=0.1)
    zs, hs = model.trace(x)  # every z^[l], h^[l], kept for their gradients
    loss = F.cross_entropy(zs[-1], y) if output == "softmax" else F.squared_error(hs[-1], y)
    loss.backward()
    for l, (z, h) in enumerate(zip(zs, hs), 1):
        name = ("p" if output == "softmax" else "ŷ") if l == 3 else f"h^[{l}]"
        print(f"z^[{l}] = {r(z.data)}    {name} = {r(h.data)}")
    print(f"L = {loss.item():.6f}")
    for l in range(3, 0, -1):
        layer = model.layers[l - 1]
        print(f"δ^[{l}] = ∂L/∂z^[{l}] = {r(zs[l - 1].grad)}")
        print(f"∂L/∂W^[{l}] =\n{r(layer.W.grad)}")
        print(f"∂L/∂b^[{l}] = {r(layer.b.grad)}")
        if l > 1:
            print(f"∂L/∂h^[{l - 1}] = W^[{l}]ᵀ δ^[{l}] = {r(hs[l - 2].grad)}")
    SGD(model.parameters(), lr=0.1).step()
    print("after one SGD step (η = 0.1):")
    for l, layer in enumerate(model.layers, 1):
        print(f"W^[{l}] =\n{r(layer.W.data)}\nb^[{l}] = {r(layer.b.data)}")
    print()
