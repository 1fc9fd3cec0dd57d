"""Optimisers: they update the parameters in place from ``.grad``."""
from __future__ import annotations

import numbers
from typing import Iterable

import numpy as np

from ..autograd.tape import state
from ..autograd.tensor import Tensor

__all__ = ["SGD", "Adam", "Optimizer"]


def _check_positive(value, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: ``step()`` announces itself to a capture in progress, then runs :meth:`update`.

    Subclasses implement ``update()``, the in-place rule θ ← … from ``p.grad``.
    """

    def __init__(self, params: Iterable[Tensor]) -> None:
        # A single Tensor is iterable (row by row): list() would accept it and step() would update nothing.
        if isinstance(params, Tensor):
            raise TypeError("params: expected an iterable of Tensors (e.g. model.parameters() or [W, b]), "
                            f"got a single Tensor of shape {params.shape}; wrap it in a list")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"params: expected an iterable of Tensors, got {type(params).__name__}") from None
        if not params:
            raise ValueError("params: expected at least one parameter, got none")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"params[{i}]: expected a Tensor with requires_grad=True, got {p!r:.60}")
        self.params = params

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a ``.grad`` (one training step)."""
        cap = state().capture
        if cap is not None:  # a compiled step is being captured in this thread: it reads the update
            cap.optimizer_step(self)
        # After backward(create_graph=True) a .grad is a Tensor: update from its values (as PyTorch
        # does), since ``p.data -= lr * Tensor`` would rebind p.data to a Tensor.
        recorded = [(p, p._grad) for p in self.params if type(p._grad) is Tensor]
        if not recorded:
            self.update()
            return
        for p, g in recorded:
            p._grad = g.data
        try:
            self.update()
        finally:
            for p, g in recorded:
                p._grad = g

    def update(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent: θ ← θ − η ∂L/∂θ.

    With momentum μ: v ← μ v + ∂L/∂θ, θ ← θ − η v (PyTorch's form; scikit-learn's
    u ← μ u − η ∂L/∂θ, θ ← θ + u is the same for a constant η).  A batch
    gradient-descent step is one step on the summed batch loss.

    With ``nesterov=True`` (scikit-learn's default ``nesterovs_momentum``) the
    step looks ahead along the new velocity: v ← μ v + ∂L/∂θ, θ ← θ − η (μ v + ∂L/∂θ),
    which is scikit-learn's θ ← θ + μ u − η ∂L/∂θ for a constant η.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(params)
        self.lr = _check_positive(lr, "lr")
        if not isinstance(momentum, numbers.Real) or not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov: expected a bool, got {type(nesterov).__name__}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.velocity = [None] * len(self.params)

    def update(self) -> None:
        lr, mu = self.lr, self.momentum
        if not mu:  # plain SGD, once per training step: nothing but the update in the loop
            for p in self.params:
                g = p.grad
                if g is not None:
                    p.data -= lr * g
            return
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
                g = mu * v + g if self.nesterov else v
            p.data -= lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) in scikit-learn's ``AdamOptimizer`` form.

    At step t = 1, 2, … with g = ∂L/∂θ::

        m ← β₁ m + (1 − β₁) g
        v ← β₂ v + (1 − β₂) g²
        η_t = η · sqrt(1 − β₂ᵗ) / (1 − β₁ᵗ)
        θ ← θ − η_t m / (sqrt(v) + ε)

    This folds the bias corrections m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ) of the
    paper's Algorithm 1 into the step size (the paper's own "more efficient"
    ordering, Section 2), so ε sits next to sqrt(v), not sqrt(v̂).

    Parameters
    ----------
    params : iterable of Tensor
        Leaves with ``requires_grad=True``; updated in place.
    lr : float
        η > 0.
    betas : (float, float)
        (β₁, β₂), each in [0, 1).
    eps : float
        ε > 0.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 0.001, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params)
        self.lr = _check_positive(lr, "lr")
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas: expected a pair (beta_1, beta_2), got {betas!r}") from None
        for name, b in (("betas[0]", b1), ("betas[1]", b2)):
            if not isinstance(b, numbers.Real) or isinstance(b, bool) or not 0.0 <= b < 1.0:
                raise ValueError(f"{name}: expected a number in [0, 1), got {b!r}")
        self.beta1, self.beta2 = float(b1), float(b2)
        self.eps = _check_positive(eps, "eps")
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def update(self) -> None:
        b1, b2 = self.beta1, self.beta2
        self.t += 1
        t = self.t
        lr_t = self.lr * np.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            if g is None:  # not in this step's graph: left alone, as SGD leaves it
                continue
            # In place, but in the same operation order as scikit-learn, so the numbers agree bit for bit.
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            p.data -= lr_t * m / (np.sqrt(v) + self.eps)
