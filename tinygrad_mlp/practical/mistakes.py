"""The mistakes students make in the practical's backprop, each a deliberately mistaken variant of it.

Every mistake is one method of :class:`tinygrad_mlp.practical.reference.Rules` overridden, so the
mistaken step runs through the very recursion of :mod:`~tinygrad_mlp.practical.reference` with one
formula changed (:func:`simulate`).  The grader (:mod:`tinygrad_mlp.practical.check`) runs each
variant on the exercise and names the one whose numbers are the student's.

A mistake is a *belief*: the student applies the wrong formula everywhere it fits.  Where its
shapes do not fit (W^[l] δ^[l] needs a square W^[l]; the layer above's g' needs a layer of the same
width) the student is forced back to the right formula, and so is the variant.

Notation: W^[l] has shape (out, in); z^[l] = W^[l] h^[l−1] + b^[l]; h^[l] = g(z^[l]);
δ^[l] = ∂L/∂z^[l]; η is the learning rate.

Mistakes that give the same numbers (the grader names all of them, "equally explained by"):

- ``W_not_transposed`` is invisible where every square W^[l] (l ≥ 2) is symmetric: all four
  built-in exercises (every weight 0.1), and any 1-unit layer.
- ``grad_W_transposed`` changes nothing where δ^[l] h^[l−1]ᵀ is symmetric (1 × 1 layers).
- ``g_prime_wrong_layer`` coincides with the right formula where the two layers hold equal values
  (e.g. 1-unit layers with the same z).
- ``batch_averaged``, ``batch_last_only``, ``batch_first_only`` coincide with each other, or with
  the sum, where the examples' gradients are equal or zero (Question 2.2's hidden layers: every
  hidden gradient is exactly 0, so only layer 3 tells them apart).
- ``update_sign_flipped``, ``update_without_learning_rate`` and ``bias_not_updated`` are invisible
  where the gradient is 0 (Question 2's hidden layers); with η = 1 ``update_without_learning_rate``
  is the right update.
- For a one-unit softmax (p = 1 = y) every softmax mistake gives δ^[L] = 0, the right value.
- ``no_activation_derivative`` equals the right formula for an identity hidden layer, and
  ``g_prime_at_h`` for relu (h > 0 exactly when z > 0) and identity: those are not offered there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from . import reference
from .reference import ACTIVATIONS, Rules

__all__ = ["Mistake", "MISTAKES", "BY_KEY", "applicable", "simulate", "rules_for", "overrides"]


class _Mistaken(Rules):
    """A Rules that knows the spec (the learning rate, the number of examples)."""

    def __init__(self, spec):
        self.spec = spec


def _square(W) -> bool:
    return W.shape[0] == W.shape[1]


# ----------------------------------------------------------------------------- activation derivatives
class _TanhSquared(_Mistaken):
    def local_derivative(self, hidden, hs, zs, k):
        return hs[k] * hs[k] if hidden == "tanh" else super().local_derivative(hidden, hs, zs, k)


class _TanhNoSquare(_Mistaken):
    def local_derivative(self, hidden, hs, zs, k):
        return 1.0 - hs[k] if hidden == "tanh" else super().local_derivative(hidden, hs, zs, k)


class _SigmoidPrime(_Mistaken):
    """σ' replaced by ``wrong(σ)`` in hidden layers and at a sigmoid output."""

    @staticmethod
    def wrong(h):
        raise NotImplementedError

    def local_derivative(self, hidden, hs, zs, k):
        return self.wrong(hs[k]) if hidden == "sigmoid" else super().local_derivative(hidden, hs, zs, k)

    def output_delta(self, out, z, y, output):
        dh_L, delta = super().output_delta(out, z, y, output)
        return (dh_L, dh_L * self.wrong(out)) if output == "sigmoid" else (dh_L, delta)


class _SigmoidAsSigmoid(_SigmoidPrime):
    wrong = staticmethod(lambda h: h)


class _SigmoidSquared(_SigmoidPrime):
    wrong = staticmethod(lambda h: h * h)


class _GPrimeAtH(_Mistaken):
    def local_derivative(self, hidden, hs, zs, k):
        g, g_prime = ACTIVATIONS[hidden]
        return g_prime(g(hs[k]), hs[k])  # g'(h) = g'(z) evaluated at z := h


class _GPrimeWithZ(_Mistaken):
    def local_derivative(self, hidden, hs, zs, k):
        return ACTIVATIONS[hidden][1](zs[k], zs[k])  # 1 − z², z(1 − z): the h-formula fed z


class _GPrimeWrongLayer(_Mistaken):
    def local_derivative(self, hidden, hs, zs, k):
        if hs[k + 1].shape == hs[k].shape:  # the layer above, with the hidden g' (even at the output)
            return ACTIVATIONS[hidden][1](hs[k + 1], zs[k + 1])
        return super().local_derivative(hidden, hs, zs, k)


class _NoActivationDerivative(_Mistaken):
    def hidden_delta(self, dh_prev, g_prime, k):
        return dh_prev


# ----------------------------------------------------------------------------- backward through W
class _WNotTransposed(_Mistaken):
    def back(self, W, delta, h_prev, k):
        return W @ delta if _square(W) else super().back(W, delta, h_prev, k)


class _UpdatedWInBackprop(_Mistaken):
    def back(self, W, delta, h_prev, k):
        return super().back(W - self.spec.learning_rate * np.outer(delta, h_prev), delta, h_prev, k)


# ----------------------------------------------------------------------------- the loss and the output layer
class _NoHalf(_Mistaken):
    def loss(self, out, z, y, loss):
        return 2.0 * super().loss(out, z, y, loss)

    def output_delta(self, out, z, y, output):
        dh_L, delta = super().output_delta(out, z, y, output)
        return 2.0 * dh_L, 2.0 * delta


class _HiddenActivationAtOutput(_Mistaken):
    def activate(self, z, k, L, hidden, output):
        return ACTIVATIONS[hidden][0](z) if k == L - 1 else super().activate(z, k, L, hidden, output)

    def output_delta(self, out, z, y, output):
        dh_L = out - y
        return dh_L, dh_L * ACTIVATIONS[self.spec.hidden][1](out, z)


class _SoftmaxYMinusP(_Mistaken):
    def output_delta(self, out, z, y, output):
        dh_L, _ = super().output_delta(out, z, y, output)
        return dh_L, y - out


class _SoftmaxPOneMinusP(_Mistaken):
    def output_delta(self, out, z, y, output):
        dh_L, _ = super().output_delta(out, z, y, output)
        return dh_L, out * (1.0 - out)


class _SoftmaxDiagonal(_Mistaken):
    def output_delta(self, out, z, y, output):
        dh_L, _ = super().output_delta(out, z, y, output)
        return dh_L, y * (out - 1.0)  # (−y/p) ⊙ p(1 − p)


class _NoBiasForward(_Mistaken):
    def pre_activation(self, W, h_prev, b, k):
        return W @ h_prev


# ----------------------------------------------------------------------------- the parameter gradients
class _GradWTransposed(_Mistaken):
    def grad_W(self, delta, h_prev, k):
        return np.outer(h_prev, delta) if len(h_prev) == len(delta) else super().grad_W(delta, h_prev, k)


class _GradBTimesH(_Mistaken):
    def grad_b(self, delta, h, k):
        return delta * h


# ----------------------------------------------------------------------------- the batch and the update
class _BatchAveraged(_Mistaken):
    def combine(self, grads):
        grads = list(grads)
        return sum(grads) / len(grads)


class _BatchLast(_Mistaken):
    def combine(self, grads):
        return list(grads)[-1].copy()


class _BatchFirst(_Mistaken):
    def combine(self, grads):
        return list(grads)[0].copy()


class _SignFlipped(_Mistaken):
    def update(self, p, g, lr, bias):
        return p + lr * g


class _NoLearningRate(_Mistaken):
    def update(self, p, g, lr, bias):
        return p - g


class _BiasNotUpdated(_Mistaken):
    def update(self, p, g, lr, bias):
        return p.copy() if bias else super().update(p, g, lr, bias)


@dataclass(frozen=True)
class Mistake:
    """One recognised mistake: its name in words, the formula as the student used it, the right one."""

    key: str
    name: str
    wrong: str
    right: str
    rules: type = Rules
    applies: Callable = lambda spec: True

    def __str__(self) -> str:
        return self.name


def _hidden(*names):
    return lambda s: len(s.layers) > 2 and s.hidden in names


def _batch(s):
    return len(s.X) > 1


def _square_below_top(s):
    return any(_square(w) for w in s.W[1:])


def _wrong_layer_fits(s):
    return len(s.layers) > 2 and any(s.layers[k + 1] == s.layers[k + 2] for k in range(len(s.layers) - 2))


_DELTA = "δ^[l] = ∂L/∂h^[l] ⊙ g'(z^[l])"

MISTAKES: tuple[Mistake, ...] = (
    Mistake("no_bias_in_forward", "the bias b^[l] left out of z^[l]",
            "z^[l] = W^[l] h^[l−1]", "z^[l] = W^[l] h^[l−1] + b^[l]", _NoBiasForward),
    Mistake("hidden_activation_at_output", "the hidden activation applied at the output layer too",
            "ŷ = g(z^[L]), δ^[L] = (ŷ − y) ⊙ g'(z^[L])",
            "the output layer is linear: ŷ = z^[L], δ^[L] = ŷ − y", _HiddenActivationAtOutput,
            lambda s: s.output == "identity" and s.hidden != "identity"),
    Mistake("no_half_in_squared_error", "the squared error written without its ½ (so the output gradient doubles)",
            "L = Σ (ŷ − y)², ∂L/∂ŷ = 2 (ŷ − y)", "L = ½ Σ (ŷ − y)², ∂L/∂ŷ = ŷ − y", _NoHalf,
            lambda s: s.loss == "squared_error"),
    Mistake("softmax_y_minus_p", "softmax with cross-entropy: y − p instead of p − y",
            "δ^[L] = y − p", "δ^[L] = ∂L/∂z^[L] = p − y", _SoftmaxYMinusP, lambda s: s.output == "softmax"),
    Mistake("softmax_p_one_minus_p", "softmax with cross-entropy: ∂L/∂z taken as p(1 − p)",
            "δ^[L] = p ⊙ (1 − p)", "δ^[L] = ∂L/∂z^[L] = p − y", _SoftmaxPOneMinusP, lambda s: s.output == "softmax"),
    Mistake("softmax_diagonal_only", "softmax's Jacobian taken as its diagonal p(1 − p) only",
            "δ^[L] = ∂L/∂p ⊙ p(1 − p) = −y ⊙ (1 − p)",
            "every p_k depends on every z_j: δ^[L] = p − y", _SoftmaxDiagonal, lambda s: s.output == "softmax"),
    Mistake("sigmoid_prime_as_sigmoid", "σ' taken as σ", "σ'(z) = σ(z)", "σ'(z) = σ(z)(1 − σ(z)) = h ⊙ (1 − h)",
            _SigmoidAsSigmoid, lambda s: s.output == "sigmoid" or _hidden("sigmoid")(s)),
    Mistake("sigmoid_prime_squared", "σ' taken as σ²", "σ'(z) = σ(z)²", "σ'(z) = σ(z)(1 − σ(z)) = h ⊙ (1 − h)",
            _SigmoidSquared, lambda s: s.output == "sigmoid" or _hidden("sigmoid")(s)),
    Mistake("tanh_prime_squared", "tanh' taken as tanh² (the sheet's own slip)",
            "δ^[l] = ∂L/∂h^[l] ⊙ (h^[l])²", "tanh'(z) = 1 − tanh²(z): δ^[l] = ∂L/∂h^[l] ⊙ (1 − (h^[l])²)",
            _TanhSquared, _hidden("tanh")),
    Mistake("tanh_prime_no_square", "tanh' taken as 1 − tanh (the square forgotten)",
            "δ^[l] = ∂L/∂h^[l] ⊙ (1 − h^[l])", "tanh'(z) = 1 − tanh²(z): δ^[l] = ∂L/∂h^[l] ⊙ (1 − (h^[l])²)",
            _TanhNoSquare, _hidden("tanh")),
    Mistake("g_prime_at_h", "g' evaluated at h instead of at z (the activation applied twice)",
            "δ^[l] = ∂L/∂h^[l] ⊙ g'(h^[l])", _DELTA + ", g' taken at z^[l]", _GPrimeAtH, _hidden("tanh", "sigmoid")),
    Mistake("g_prime_z_for_h", "g' written with z where its formula needs h (1 − z² for 1 − h²)",
            "δ^[l] = ∂L/∂h^[l] ⊙ (1 − (z^[l])²)  (σ: z(1 − z))",
            "δ^[l] = ∂L/∂h^[l] ⊙ (1 − (h^[l])²)  (σ: h(1 − h)), h^[l] = g(z^[l])", _GPrimeWithZ,
            _hidden("tanh", "sigmoid")),
    Mistake("g_prime_wrong_layer", "g' taken at the layer above (z^[l+1] instead of z^[l])",
            "δ^[l] = ∂L/∂h^[l] ⊙ g'(z^[l+1])", _DELTA, _GPrimeWrongLayer, _wrong_layer_fits),
    Mistake("no_activation_derivative", "the activation's derivative left out of δ",
            "δ^[l] = ∂L/∂h^[l] = W^[l+1]ᵀ δ^[l+1]", _DELTA, _NoActivationDerivative,
            _hidden("tanh", "sigmoid", "relu")),
    Mistake("W_not_transposed", "W^[l] instead of W^[l]ᵀ when going back a layer",
            "∂L/∂h^[l−1] = W^[l] δ^[l]", "∂L/∂h^[l−1] = W^[l]ᵀ δ^[l], δ^[l−1] = (W^[l]ᵀ δ^[l]) ⊙ g'(z^[l−1])",
            _WNotTransposed, _square_below_top),
    Mistake("updated_W_in_backprop", "δ^[l−1] computed with W^[l] already updated",
            "∂L/∂h^[l−1] = (W^[l] − η ∂L/∂W^[l])ᵀ δ^[l]",
            "∂L/∂h^[l−1] = W^[l]ᵀ δ^[l] with the W^[l] of the forward pass; update only after the backward pass",
            _UpdatedWInBackprop, lambda s: len(s.layers) > 2),
    Mistake("grad_W_transposed", "∂L/∂W written transposed, as h δᵀ",
            "∂L/∂W^[l] = h^[l−1] δ^[l]ᵀ", "∂L/∂W^[l] = δ^[l] h^[l−1]ᵀ (shape (out, in), like W^[l])",
            _GradWTransposed, lambda s: any(_square(w) for w in s.W)),
    Mistake("grad_b_times_h", "∂L/∂b taken as δ · h (the bias treated like a weight)",
            "∂L/∂b^[l] = δ^[l] ⊙ h^[l]", "∂L/∂b^[l] = δ^[l] (the bias's input is the constant 1)", _GradBTimesH),
    Mistake("batch_averaged", "the batch's gradients averaged instead of summed",
            "∂L/∂W = (1/N) Σₙ ∂Lₙ/∂W", "the batch loss is a sum: ∂L/∂W = Σₙ ∂Lₙ/∂W", _BatchAveraged, _batch),
    Mistake("batch_last_only", "only the batch's last example used", "∂L/∂W = ∂L_N/∂W",
            "∂L/∂W = Σₙ ∂Lₙ/∂W over every example", _BatchLast, _batch),
    Mistake("batch_first_only", "only the batch's first example used (the previous question's gradient)",
            "∂L/∂W = ∂L₁/∂W", "∂L/∂W = Σₙ ∂Lₙ/∂W over every example", _BatchFirst, _batch),
    Mistake("update_sign_flipped", "the update's sign flipped", "W^[l] + η ∂L/∂W^[l]",
            "W^[l] − η ∂L/∂W^[l], b^[l] − η ∂L/∂b^[l] (a step down the gradient)", _SignFlipped),
    Mistake("update_without_learning_rate", "the learning rate left out of the update", "W^[l] − ∂L/∂W^[l]",
            "W^[l] − η ∂L/∂W^[l], b^[l] − η ∂L/∂b^[l]", _NoLearningRate, lambda s: s.learning_rate != 1.0),
    Mistake("bias_not_updated", "the bias update forgotten", "b^[l] unchanged", "b^[l] − η ∂L/∂b^[l]",
            _BiasNotUpdated),
)
BY_KEY = {m.key: m for m in MISTAKES}


def applicable(spec) -> list[Mistake]:
    """The mistakes that can happen in this exercise (the others need another activation, loss, shape)."""
    return [m for m in MISTAKES if m.applies(spec)]


def rules_for(spec, mistakes: Sequence[Mistake] = ()) -> Rules:
    """One Rules with every mistake in ``mistakes`` applied (they must override different formulas)."""
    if not mistakes:
        return Rules()
    cls = type("Mistaken", tuple(m.rules for m in mistakes), {})
    return cls(spec)


def simulate(spec, mistakes: Sequence[Mistake] = ()) -> dict:
    """The step with ``mistakes`` made, under the keys ``exercise --json`` writes (layers 1..L as lists)."""
    rules = rules_for(spec, mistakes)
    with np.errstate(all="ignore"):  # a mistaken step may overflow; its numbers are compared, not trusted
        res = reference.batch_backward(spec.W, spec.b, spec.X, spec.Y, spec.hidden, spec.output, spec.loss, rules)
        W, b = reference.sgd_update(spec.W, spec.b, res["dW"], res["db"], spec.learning_rate, rules)
    examples = [{"z": r["z"], "h": r["h"], "output": r["h"][-1], "loss": r["loss"], "dz": r["delta"], "dh": r["dh"],
                 "grad_W": r["dW"], "grad_b": r["db"]} for r in res["examples"]]
    return {"loss": float(res["loss"]), "examples": examples, "grad_W": res["dW"], "grad_b": res["db"], "W": W, "b": b}


def overrides(mistake: Mistake) -> set[str]:
    """The formulas (Rules methods) a mistake changes: two mistakes compose when these are disjoint."""
    names = set()
    for cls in mistake.rules.__mro__:
        if cls in (_Mistaken, Rules):
            break
        names.update(n for n in vars(cls) if not n.startswith("_") and callable(getattr(Rules, n, None)))
    return names
