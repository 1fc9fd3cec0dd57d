"""Optimisers: they update the parameters in place from ``.grad``."""
from __future__ import annotations

import numbers
from typing import Iterable, NamedTuple

import numpy as np

from ..autograd.tape import state
from ..autograd.tensor import Tensor

__all__ = ["SGD", "Adam", "Optimizer", "Update"]


def _check_positive(value, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


class Update(NamedTuple):
    """One optimiser's elementwise update, written once.

    The eager :meth:`Optimizer.update` runs it on NumPy arrays, and the compiler lowers the same
    text to its replay (NumPy ``out=`` calls over one flat buffer, or a numba loop), so the update
    exists in one place.  Each field is Python source:

    * ``scalars``: statements run once per step, reading the optimiser as ``opt`` (hyper-parameters,
      Adam's step count and bias-corrected rate);
    * ``state``: per-parameter state, as pairs (attribute of the optimiser holding a list with one
      array per parameter, the short name the statements use);
    * ``init``: statements for a parameter whose state is still None (SGD's first velocity is g);
    * ``advance``: the state's update when it exists;
    * ``apply``: θ's update.

    The per-parameter statements see ``p`` (θ, updated in place), ``g`` (∂L/∂θ), the state names and
    the scalars; only in-place or plain assignments, ``+ - * /``, and ``np.sqrt``.
    """

    scalars: str
    state: tuple = ()
    init: str = ""
    advance: str = ""
    apply: str = ""


_RUNNERS: dict = {}
_SELECTORS: dict = {}


def runner(rule: Update):
    """The eager form of ``rule``: a function ``run(opt)`` generated once from its text."""
    fn = _RUNNERS.get(rule)
    if fn is None:
        def block(code, depth):
            pad = "    " * depth
            return "".join(pad + ln.strip() + "\n" for part in code.split("\n") for ln in part.split(";")
                           if ln.strip())
        lists = "".join(f"    _{short} = opt.{attr}\n" for attr, short in rule.state)
        load = "".join(f"        {short} = _{short}[i]\n" for _, short in rule.state)
        if rule.init:
            first = rule.state[0][1]
            stash = "".join(f"            _{short}[i] = {short}\n" for _, short in rule.state)
            state = (f"        if {first} is None:\n" + block(rule.init, 3) + stash
                     + "        else:\n" + block(rule.advance or "pass", 3))
        else:
            state = block(rule.advance, 2)
        src = ("def run(opt):\n" + block(rule.scalars, 1) + lists
               + "    for i, P in enumerate(opt.params):\n        g = P.grad\n        if g is None:\n"
               + "            continue  # not in this step's graph: left alone\n        p = P.data\n"
               + load + state + block(rule.apply, 2))
        ns = {"np": np}
        exec(compile(src, f"<update of {rule.apply}>", "exec"), ns)
        fn = _RUNNERS[rule] = ns["run"]
        fn.source = src
    return fn


def _run_rule(self) -> None:
    runner(self.update_rule())(self)


_run_rule._runs_rule = True  # a capture may lower update_rule() in place of calling update()


class Optimizer:
    """Base class: ``step()`` announces itself to a capture in progress, then runs :meth:`update`.

    A subclass either describes its update (:meth:`update_rule` returns an :class:`Update`; the
    inherited ``update()`` runs it, and a compiled step lowers the same description), or overrides
    ``update()``, the in-place rule θ ← … from ``p.grad`` (a compiled step then calls it).
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

    #: A Python expression over ``opt`` choosing this step's :class:`Update` (None: no description).
    #: One expression, so that a compiled replay can inline the same choice ``update_rule()`` makes.
    RULE_OF = "None"

    def update_rule(self) -> "Update | None":
        """The description of this step's update under the current settings, or None."""
        fn = _SELECTORS.get(self.RULE_OF)
        if fn is None:
            fn = _SELECTORS[self.RULE_OF] = eval(f"lambda opt: {self.RULE_OF}")
        return fn(self)

    update_rule._reads_rule_of = True
    update = _run_rule


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

    # v ← μ v + g in place, as PyTorch; the first step's velocity is g itself.
    PLAIN = Update("lr = opt.lr", apply="p -= lr * g")
    MOMENTUM = Update("lr = opt.lr; mu = opt.momentum", (("velocity", "v"),), init="v = g.copy()",
                      advance="v *= mu; v += g", apply="p -= lr * v")
    NESTEROV = MOMENTUM._replace(apply="p -= lr * (mu * v + g)")
    RULES = (PLAIN, MOMENTUM, NESTEROV)

    RULE_OF = "opt.PLAIN if not opt.momentum else opt.NESTEROV if opt.nesterov else opt.MOMENTUM"

    update = _run_rule


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

    # In place, in the same operation order as scikit-learn, so the numbers agree bit for bit.
    RULE = Update("opt.t += 1; t = opt.t; b1 = opt.beta1; b2 = opt.beta2; eps = opt.eps; "
                  "lr_t = opt.lr * np.sqrt(1.0 - b2**t) / (1.0 - b1**t)",
                  (("m", "m"), ("v", "v")),
                  advance="m *= b1; m += (1.0 - b1) * g; v *= b2; v += (1.0 - b2) * (g * g)",
                  apply="p -= lr_t * m / (np.sqrt(v) + eps)")
    RULES = (RULE,)

    RULE_OF = "opt.RULE"

    update = _run_rule
