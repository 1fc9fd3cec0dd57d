"""The practical's backpropagation, written by hand in plain NumPy (no Tensor anywhere).

This is the independent path every autograd gradient is checked against.
For one example x with target y, layers l = 1..L:

forward
    h^[0] = x,   z^[l] = W^[l] h^[l−1] + b^[l],   h^[l] = g(z^[l])
output gradient δ^[L] = ∂L/∂z^[L]
    squared error, identity output:   ŷ − y
    squared error, sigmoid output:    (ŷ − y) ⊙ σ(z^[L])(1 − σ(z^[L]))
    cross-entropy, softmax output:    p − y
backward, l = L..1
    ∂L/∂W^[l] = δ^[l] h^[l−1]ᵀ,   ∂L/∂b^[l] = δ^[l],   ∂L/∂h^[l−1] = W^[l]ᵀ δ^[l]
    δ^[l−1] = ∂L/∂h^[l−1] ⊙ g'(z^[l−1])
derivatives
    tanh' = 1 − h²  (the sheet's derivation ends at tanh² by mistake),
    σ' = σ(1 − σ),  relu' = 1[z > 0],  identity' = 1
A batch sums the per-example gradients (the practical's batch loss is a sum).

Each formula above is one method of :class:`Rules`; every function here takes ``rules=None`` (the
formulas as written).  :mod:`tinygrad_mlp.practical.mistakes` overrides one method at a time to
simulate a student's slip (tanh' taken as tanh², W^[l] for W^[l]ᵀ, ...) with this same recursion.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["ACTIVATIONS", "OUTPUT_LOSS_PAIRS", "Rules", "forward", "backward", "batch_backward", "sgd_update"]


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


# name -> (g(z), g'(z) written from h = g(z) and z)
ACTIVATIONS = {
    "identity": (lambda z: z, lambda h, z: np.ones_like(z)),
    "tanh": (np.tanh, lambda h, z: 1.0 - h * h),
    "sigmoid": (_sigmoid, lambda h, z: h * (1.0 - h)),
    "relu": (lambda z: np.maximum(z, 0.0), lambda h, z: (z > 0).astype(z.dtype)),
}
OUTPUTS = {"identity": lambda z: z, "sigmoid": _sigmoid, "softmax": _softmax}
OUTPUT_LOSS_PAIRS = {("identity", "squared_error"), ("sigmoid", "squared_error"), ("softmax", "cross_entropy")}


class Rules:
    """The formulas of one step, one method each; the defaults are the practical's (see the module doc).

    Indices are 0-based (``k`` is layer k + 1).  A subclass changes one formula to simulate a mistake;
    the functions below call nothing else, so the default reproduces the reference bit for bit.
    """

    def pre_activation(self, W, h_prev, b, k: int):
        """z^[l] = W^[l] h^[l−1] + b^[l]."""
        return W @ h_prev + b

    def activate(self, z, k: int, L: int, hidden: str, output: str):
        """h^[l] = g(z^[l]) for a hidden layer, the output function for l = L."""
        return OUTPUTS[output](z) if k == L - 1 else ACTIVATIONS[hidden][0](z)

    def loss(self, out, z, y, loss: str) -> float:
        return _loss(out, z, y, loss)

    def output_delta(self, out, z, y, output: str):
        """(∂L/∂h^[L], δ^[L]) of the output layer."""
        if output == "identity":
            dh_L = out - y
            delta = dh_L
        elif output == "sigmoid":
            dh_L = out - y
            delta = dh_L * out * (1.0 - out)
        else:  # softmax + cross-entropy: ∂L/∂p = −y / p, and δ^[L] = p − y
            with np.errstate(divide="ignore"):  # p underflowed to 0 for the true class: −∞ is the honest value
                dh_L = np.divide(-y, out, out=np.zeros_like(out), where=y != 0)  # 0 where y = 0, even if p = 0
            delta = out - y
        return dh_L, delta

    def grad_W(self, delta, h_prev, k: int):
        """∂L/∂W^[l] = δ^[l] h^[l−1]ᵀ."""
        return np.outer(delta, h_prev)

    def grad_b(self, delta, h, k: int):
        """∂L/∂b^[l] = δ^[l] (``h`` is h^[l], for variants)."""
        return delta.copy()

    def back(self, W, delta, h_prev, k: int):
        """∂L/∂h^[l−1] = W^[l]ᵀ δ^[l] (``h_prev`` is h^[l−1], for variants)."""
        return W.T @ delta

    def local_derivative(self, hidden: str, hs, zs, k: int):
        """g'(z^[l]) of hidden layer l = k + 1, from h^[l] and z^[l]."""
        return ACTIVATIONS[hidden][1](hs[k], zs[k])

    def hidden_delta(self, dh_prev, g_prime, k: int):
        """δ^[l] = ∂L/∂h^[l] ⊙ g'(z^[l])."""
        return dh_prev * g_prime

    def combine(self, grads):
        """A batch's gradient from the per-example ones: their sum."""
        return sum(grads)

    def update(self, p, g, lr: float, bias: bool):
        """θ − η ∂L/∂θ."""
        return p - lr * g


_RULES = Rules()


def forward(W: Sequence[np.ndarray], b: Sequence[np.ndarray], x: np.ndarray, hidden: str = "tanh",
            output: str = "identity", rules: Rules | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """z^[l] and h^[l] for l = 1..L (lists of length L; h[-1] is the network's output)."""
    rules = _RULES if rules is None else rules
    zs, hs = [], []
    h = np.asarray(x, dtype=np.float64)
    for l in range(len(W)):
        z = rules.pre_activation(W[l], h, b[l], l)
        h = rules.activate(z, l, len(W), hidden, output)
        zs.append(z)
        hs.append(h)
    return zs, hs


def _loss(out: np.ndarray, z: np.ndarray, y: np.ndarray, loss: str) -> float:
    if loss == "squared_error":
        return 0.5 * float(np.sum((out - y) ** 2))
    # −Σ y log p = −yᵀz + (Σ y) log Σ exp z, as the sheet rewrites it: p may underflow to 0
    # for a class with y = 0, and 0 · log 0 would be NaN.
    m = z.max()
    return float(np.sum(y) * (m + np.log(np.sum(np.exp(z - m)))) - y @ z)


def backward(W, b, x, y, hidden: str = "tanh", output: str = "identity", loss: str = "squared_error",
             rules: Rules | None = None) -> dict:
    """Every intermediate of one example's forward and backward pass.

    Returns a dict of per-layer lists (index 0 is layer 1): ``z``, ``h``,
    ``delta`` (∂L/∂z^[l]), ``dh`` (∂L/∂h^[l]), ``dW``, ``db``; plus ``loss``
    and ``dx`` (∂L/∂h^[0]).
    """
    if (output, loss) not in OUTPUT_LOSS_PAIRS:
        raise ValueError(f"(output, loss): expected one of {sorted(OUTPUT_LOSS_PAIRS)}, got {(output, loss)}")
    rules = _RULES if rules is None else rules
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    zs, hs = forward(W, b, x, hidden, output, rules)
    L = len(W)
    out = hs[-1]
    dh_L, delta = rules.output_delta(out, zs[-1], y, output)
    deltas, dhs, dWs, dbs = [None] * L, [None] * L, [None] * L, [None] * L
    deltas[L - 1], dhs[L - 1] = delta, dh_L
    dx = None
    for l in range(L - 1, -1, -1):
        h_prev = hs[l - 1] if l > 0 else x
        dWs[l] = rules.grad_W(deltas[l], h_prev, l)
        dbs[l] = rules.grad_b(deltas[l], hs[l], l)
        dh_prev = rules.back(W[l], deltas[l], h_prev, l)
        if l > 0:
            dhs[l - 1] = dh_prev
            deltas[l - 1] = rules.hidden_delta(dh_prev, rules.local_derivative(hidden, hs, zs, l - 1), l - 1)
        else:
            dx = dh_prev
    return {"z": zs, "h": hs, "delta": deltas, "dh": dhs, "dW": dWs, "db": dbs,
            "loss": rules.loss(out, zs[-1], y, loss), "dx": dx}


def batch_backward(W, b, X, Y, hidden="tanh", output="identity", loss="squared_error",
                   rules: Rules | None = None) -> dict:
    """Per-example results (``examples``) and the summed ``dW``, ``db`` and ``loss`` of a batch."""
    rules = _RULES if rules is None else rules
    per = [backward(W, b, x, y, hidden, output, loss, rules) for x, y in zip(X, Y)]
    return {
        "examples": per,
        "dW": [rules.combine(r["dW"][l] for r in per) for l in range(len(W))],
        "db": [rules.combine(r["db"][l] for r in per) for l in range(len(W))],
        "loss": sum(r["loss"] for r in per),
    }


def sgd_update(W, b, dW, db, lr: float, rules: Rules | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """W^[l] − η ∂L/∂W^[l] and b^[l] − η ∂L/∂b^[l] (new arrays; the inputs are left alone)."""
    rules = _RULES if rules is None else rules
    return ([rules.update(w, g, lr, False) for w, g in zip(W, dW)],
            [rules.update(c, g, lr, True) for c, g in zip(b, db)])
