"""Optimisers: they update the parameters in place from ``.grad``."""
from __future__ import annotations

import numbers
from typing import Iterable

import numpy as np

from .tensor import Tensor

__all__ = ["SGD", "Optimizer"]


def _check_positive(value, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


class Optimizer:
    def __init__(self, params: Iterable[Tensor]) -> None:
        params = list(params)
        if not params:
            raise ValueError("params: expected at least one parameter, got none")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"params[{i}]: expected a Tensor with requires_grad=True, got {p!r:.60}")
        self.params = params

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


class SGD(Optimizer):
    """Stochastic gradient descent: θ ← θ − η ∂L/∂θ.

    With momentum μ: v ← μ v + ∂L/∂θ, θ ← θ − η v (PyTorch's form; scikit-learn's
    u ← μ u − η ∂L/∂θ, θ ← θ + u is the same for a constant η).  A batch
    gradient-descent step is one step on the summed batch loss.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0) -> None:
        super().__init__(params)
        self.lr = _check_positive(lr, "lr")
        if not isinstance(momentum, numbers.Real) or not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.velocity = [None] * len(self.params)

    def step(self) -> None:
        lr, mu = self.lr, self.momentum
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if mu:
                v = self.velocity[i]
                if v is None:
                    v = self.velocity[i] = g.copy()
                else:
                    v *= mu
                    v += g
                g = v
            p.data -= lr * g
