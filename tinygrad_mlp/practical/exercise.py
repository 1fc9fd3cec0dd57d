"""The practical's exercises: a spec, the built-in questions, and one computed step.

A spec (JSON or a dict) describes one step of the practical::

    {"layers": [4, 4, 3, 3], "hidden": "tanh", "output": "identity", "loss": "squared_error",
     "weights": 0.1, "biases": 0.1, "learning_rate": 0.1,
     "examples": [{"x": [1, 0, 1, 0], "y": [0, 1, 0]}]}

One example gives an SGD step; several give one gradient-descent step on
their summed loss.  :func:`run_step` computes it with the autograd MLP,
checks every number against the hand-written backprop
(:mod:`tinygrad_mlp.reference`) and returns them all; a disagreement raises
:class:`ExerciseMismatchError` instead of returning a result.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..autograd import functional as F
from . import reference
from ..nn.layers import MLP
from ..nn.optim import SGD
from .result import ExampleStep, StepResult

__all__ = ["Spec", "SpecError", "ExerciseMismatchError", "BUILTINS", "builtin", "load_spec", "parse_spec",
           "run_step", "build_model", "worked_solution", "solution_for", "StepResult", "ExampleStep"]

REQUIRED = ("layers", "hidden", "output", "loss", "weights", "biases", "learning_rate", "examples")
# Autograd vs hand-written: the same arithmetic in another order, so they differ by rounding only.
# Rounding is relative to the magnitudes that went into a number, not to the number itself (the
# sheet's Question 2 hidden gradients are 0 = Σ of terms of size 0.1), so the tolerance is
# MATCH_ATOL + MATCH_RTOL * scale with the scale of :func:`_error_scales`; 1e-10 leaves a margin
# of about 10⁵ over float64's 2.2e-16 times the few terms summed in these small networks.
MATCH_RTOL = 1e-10
MATCH_ATOL = 1e-12
# A worked solution prints every matrix of the step: beyond these sizes it is no longer an exercise,
# and a typo such as 10000 for 100 would otherwise allocate and print for minutes.
MAX_UNITS = 1000
MAX_LAYERS = 50


class SpecError(ValueError):
    """A malformed exercise spec; the message names the field."""


class ExerciseMismatchError(RuntimeError):
    """Autograd and the hand-written backprop disagree: never printed as a result."""


@dataclass
class Spec:
    """A validated exercise: architecture, parameters, learning rate and examples."""

    layers: list[int]
    hidden: str
    output: str
    loss: str
    W: list[np.ndarray]  # W^[l], shape (out, in)
    b: list[np.ndarray]
    learning_rate: float
    X: list[np.ndarray]
    Y: list[np.ndarray]
    name: str = "spec"
    title: str = ""
    source: dict = field(default_factory=dict)

    @property
    def is_batch(self) -> bool:
        return len(self.X) > 1

    def to_dict(self) -> dict:
        return {"layers": list(self.layers), "hidden": self.hidden, "output": self.output, "loss": self.loss,
                "weights": [w.tolist() for w in self.W], "biases": [c.tolist() for c in self.b],
                "learning_rate": self.learning_rate,
                "examples": [{"x": x.tolist(), "y": y.tolist()} for x, y in zip(self.X, self.Y)]}


_Q1 = {"layers": [4, 4, 3, 3], "hidden": "tanh", "output": "identity", "loss": "squared_error",
       "weights": 0.1, "biases": 0.1, "learning_rate": 0.1,
       "examples": [{"x": [1, 0, 1, 0], "y": [0, 1, 0]}]}
_SECOND = {"x": [0, 0, 10, 0], "y": [0, 0, 1]}
_Q2 = dict(_Q1, output="softmax", loss="cross_entropy")

BUILTINS: dict[str, tuple[str, dict]] = {
    "q1": ("Question 1.1: one SGD step, tanh hidden layers, squared error", _Q1),
    "q1-batch": ("Question 1.2: one batch gradient-descent step, squared error",
                 dict(_Q1, examples=_Q1["examples"] + [_SECOND])),
    "q2": ("Question 2.1: one SGD step, softmax output, cross-entropy", _Q2),
    "q2-batch": ("Question 2.2: one batch gradient-descent step, cross-entropy",
                 dict(_Q2, examples=_Q2["examples"] + [_SECOND])),
}


def builtin(name: str) -> Spec:
    """The sheet's exercise ``q1``, ``q1-batch``, ``q2`` or ``q2-batch``."""
    if name not in BUILTINS:
        raise SpecError(f"exercise: expected one of {sorted(BUILTINS)} or a SPEC.json path, got {name!r}")
    title, raw = BUILTINS[name]
    spec = parse_spec(raw)
    spec.name, spec.title = name, title
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate a JSON spec file.

    Raises TypeError naming ``path`` unless it is a str or os.PathLike, and :class:`SpecError`
    (a ValueError) naming the field for anything wrong inside the file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike naming a JSON spec file, got {type(path).__name__}")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"spec: cannot read {str(p)!r} ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise SpecError(f"spec: {str(p)!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        raw = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise SpecError(f"spec: {str(p)!r} is not valid JSON ({e})") from None
    except ValueError as e:
        raise SpecError(f"spec: {e}") from None
    except RecursionError:
        raise SpecError(f"spec: {str(p)!r} nests too deeply to read (a spec is at most 4 levels deep)") from None
    spec = parse_spec(raw)
    if spec.name == "spec":  # an exercise --json document keeps the name it was written with
        spec.name = p.stem
    return spec


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxlong, _REPR.maxstring, _REPR.maxother = 3, 8, 8, 24, 40, 40


def _r(v: Any) -> str:
    """A short repr for messages: a spec nested 100,000 deep or a 400-digit integer stays one line."""
    return _REPR.repr(v)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed in a spec (numbers must be finite)")


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise SpecError(f"{where}: expected a number, got {_r(v)}")
    try:
        v = float(v)
    except OverflowError:  # a JSON integer of hundreds of digits
        what = (f"an integer of about {int(abs(int(v)).bit_length() * 0.30103) + 1} digits"
                if isinstance(v, numbers.Integral) else "a larger number")
        raise SpecError(f"{where}: expected a number within float64's range (|v| < 1.8e308), got {what}") from None
    if not math.isfinite(v):
        raise SpecError(f"{where}: expected a finite number, got {_r(v)}")
    return v


def _vector(v: Any, n: int, where: str) -> np.ndarray:
    if not isinstance(v, (list, tuple)):
        raise SpecError(f"{where}: expected a list of {n} numbers, got {_r(v)}")
    if len(v) != n:
        raise SpecError(f"{where}: expected {n} numbers, got {len(v)}")
    return np.array([_number(e, f"{where}[{i}]") for i, e in enumerate(v)], dtype=np.float64)


def _matrix(v: Any, rows: int, cols: int, where: str) -> np.ndarray:
    if not isinstance(v, (list, tuple)) or len(v) != rows:
        got = f"{len(v)} rows" if isinstance(v, (list, tuple)) else repr(v)
        raise SpecError(f"{where}: expected a {rows} x {cols} matrix (out x in, as rows), got {got}")
    return np.stack([_vector(r, cols, f"{where}[{i}]") for i, r in enumerate(v)])


def _choice(raw: dict, key: str, options) -> str:
    v = raw[key]
    if not isinstance(v, str) or v not in options:  # a list or dict would make `in` raise TypeError
        raise SpecError(f"{key}: expected one of {sorted(options)}, got {_r(v)}")
    return v


# What ``exercise --json`` adds to a spec (see result.StepResult.to_json): read back, these are set aside.
RESULT_FIELDS = ("name", "title", "loss_name", "initial", "grad_W", "grad_b", "W", "b")
RESULT_EXAMPLE_FIELDS = ("z", "h", "output", "loss", "dz", "dh", "grad_W", "grad_b")


def _spec_of_result(raw: dict) -> tuple[dict, str | None, str | None]:
    """The spec inside an ``exercise --json`` document: ``loss_name`` names the loss (its ``loss`` is the value)."""
    unknown = sorted(set(raw) - set(REQUIRED) - set(RESULT_FIELDS))
    if unknown:
        raise SpecError(f"{unknown[0]}: unknown field (an exercise --json document has "
                        f"{', '.join(REQUIRED + RESULT_FIELDS)})")
    spec = {k: raw[k] for k in REQUIRED if k in raw and k != "loss"}
    spec["loss"] = raw["loss_name"]
    initial = raw.get("initial")
    for key, old in (("weights", "W"), ("biases", "b")):  # documents written before weights/biases were added
        if key not in spec and isinstance(initial, dict) and old in initial:
            spec[key] = initial[old]
    ex = spec.get("examples")
    if isinstance(ex, list):
        keep = []
        for i, e in enumerate(ex):
            if isinstance(e, dict):
                extra = sorted(set(e) - {"x", "y"} - set(RESULT_EXAMPLE_FIELDS))
                if extra:
                    raise SpecError(f"examples[{i}].{extra[0]}: unknown field")
                e = {k: e[k] for k in ("x", "y") if k in e}
            keep.append(e)
        spec["examples"] = keep
    name, title = raw.get("name"), raw.get("title")
    return spec, (name if isinstance(name, str) and name else None), (title if isinstance(title, str) else None)


def parse_spec(raw: Any) -> Spec:
    """Validate a spec dict; every error names its field.

    An ``exercise --json`` document (it has ``loss_name``) is read as the spec it was computed
    from: its computed fields are set aside, and its name and title are kept.
    """
    if not isinstance(raw, dict):
        raise SpecError(f"spec: expected a JSON object, got {type(raw).__name__}")
    if "loss_name" in raw:
        inner, name, title = _spec_of_result(raw)
        spec = parse_spec(inner)
        spec.name, spec.title = name or spec.name, title or spec.title
        return spec
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise SpecError(f"{missing[0]}: missing field (a spec needs {', '.join(REQUIRED)})")
    unknown = sorted(set(raw) - set(REQUIRED))
    if unknown:
        raise SpecError(f"{unknown[0]}: unknown field (a spec has {', '.join(REQUIRED)})")
    layers = raw["layers"]
    if (not isinstance(layers, list) or len(layers) < 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in layers)):
        raise SpecError(f"layers: expected a list of at least two positive ints (input first), got {_r(layers)}")
    if len(layers) - 1 > MAX_LAYERS or max(layers) > MAX_UNITS:
        raise SpecError(f"layers: expected at most {MAX_LAYERS} weight layers of at most {MAX_UNITS} units each "
                        f"(a worked solution prints every matrix), got {len(layers) - 1} layers, the largest "
                        f"{max(layers)} units")
    hidden = _choice(raw, "hidden", F.ACTIVATIONS)
    output = _choice(raw, "output", F.OUTPUTS)
    loss = _choice(raw, "loss", F.LOSSES)
    if (output, loss) not in reference.OUTPUT_LOSS_PAIRS:
        raise SpecError(f"loss: {loss!r} does not go with output {output!r}; expected one of "
                        f"{sorted(reference.OUTPUT_LOSS_PAIRS)}")
    L = len(layers) - 1
    W, b = [], []
    for key, store in (("weights", W), ("biases", b)):
        v = raw[key]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            c = _number(v, key)
            for l in range(L):
                shape = (layers[l + 1], layers[l]) if key == "weights" else (layers[l + 1],)
                store.append(np.full(shape, c))
        elif isinstance(v, list) and len(v) == L:
            for l in range(L):
                where = f"{key}[{l}] ({'W' if key == 'weights' else 'b'}^[{l + 1}])"
                store.append(_matrix(v[l], layers[l + 1], layers[l], where) if key == "weights"
                             else _vector(v[l], layers[l + 1], where))
        else:
            raise SpecError(f"{key}: expected one number for all, or a list of {L} per-layer "
                            f"{'matrices' if key == 'weights' else 'vectors'}, got {_r(v):.80}")
    lr = _number(raw["learning_rate"], "learning_rate")
    if lr <= 0:
        raise SpecError(f"learning_rate: expected a positive number, got {lr!r}")
    ex = raw["examples"]
    if not isinstance(ex, list) or not ex:
        raise SpecError(f"examples: expected a non-empty list of {{'x': [...], 'y': [...]}}, got {_r(ex):.80}")
    X, Y = [], []
    for i, e in enumerate(ex):
        if not isinstance(e, dict) or set(e) != {"x", "y"}:
            raise SpecError(f"examples[{i}]: expected an object with exactly 'x' and 'y', got {_r(e):.80}")
        X.append(_vector(e["x"], layers[0], f"examples[{i}].x"))
        y = _vector(e["y"], layers[-1], f"examples[{i}].y")
        if loss == "cross_entropy" and (np.any(y < 0) or not np.isclose(y.sum(), 1.0)):
            raise SpecError(f"examples[{i}].y: cross-entropy needs a probability vector (one-hot), got {y.tolist()}")
        Y.append(y)
    return Spec(list(layers), hidden, output, loss, W, b, lr, X, Y, source=raw)


def build_model(spec: Spec) -> MLP:
    """The spec's network as an autograd :class:`~tinygrad_mlp.nn.MLP` with its parameters."""
    model = MLP(spec.layers, hidden=spec.hidden, output=spec.output, weight_init="zeros", bias_init="zeros")
    model.load_state_dict({**{f"W{l + 1}": w for l, w in enumerate(spec.W)},
                           **{f"b{l + 1}": c for l, c in enumerate(spec.b)}})
    return model


def _compare(name: str, got, want, scale=None) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = np.abs(want) if scale is None else np.maximum(np.abs(want), scale)
    # A bound that overflowed (0 · inf gives NaN) bounds nothing; exact agreement always passes (−0.0 == 0.0).
    scale = np.nan_to_num(scale, nan=np.inf)
    if got.shape != want.shape or not np.all((got == want) | (np.abs(got - want) <= MATCH_ATOL + MATCH_RTOL * scale)):
        raise ExerciseMismatchError(f"{name}: autograd gives {got.tolist()}, the hand-written backprop "
                                    f"gives {want.tolist()}")


def _too_large(spec: Spec, what: str, value=None) -> SpecError:
    """A finite spec whose step overflows float64: name the field most likely at fault (the largest)."""
    mags = {"weights": max(float(np.max(np.abs(w))) for w in spec.W),
            "biases": max(float(np.max(np.abs(c))) for c in spec.b)}
    for i, (x, y) in enumerate(zip(spec.X, spec.Y)):
        mags[f"examples[{i}].x"] = float(np.max(np.abs(x)))
        mags[f"examples[{i}].y"] = float(np.max(np.abs(y)))
    field = "learning_rate" if what.startswith(("W[", "b[")) else max(mags, key=mags.get)
    got = "" if value is None else f" to {_bad_value(value)}"
    largest = ", ".join(f"{k} {v:.3g}" for k, v in mags.items() if k == field or not k.startswith("examples"))
    return SpecError(f"{field}: too large for a float64 step: {what} overflows{got} (largest magnitudes: "
                     f"{largest}, learning_rate {spec.learning_rate:.3g}); expected values whose step stays finite")


def _bad_value(a) -> str:
    a = np.asarray(a, dtype=np.float64)
    return "NaN" if np.isnan(a).any() else "infinity"


def _finite(spec: Spec, name: str, a) -> None:
    if not np.all(np.isfinite(a)):
        raise _too_large(spec, name, a)


def _error_scales(spec: Spec, x: np.ndarray, y: np.ndarray) -> dict:
    """Entry-wise magnitudes that bound the rounding of each quantity of one example (first order).

    The forward pass in absolute values: s_z^[l] = |W^[l]| s_h^[l−1] + |b^[l]|, s_h^[0] = |x|,
    s_h^[l] = s_z^[l] (|g'| ≤ 1 for every activation here).  A softmax rounds relative to its
    logits' size (p = exp(z − logsumexp z)), so s_p = p (1 + max s_z^[L]).  Backward likewise:
    s_δ^[L] = s_out + |y|, s_{∂h}^[l−1] = |W^[l]|ᵀ s_δ^[l], s_δ^[l−1] = s_{∂h}^[l−1] (1 + s_z^[l−1])
    (the second term: rounding in z moves g'(z)), s_{∂W}^[l] = s_δ^[l] s_h^[l−1]ᵀ, s_{∂b} = s_δ.
    """
    L = len(spec.W)
    absW = [np.abs(w) for w in spec.W]
    sz, sh = [], []
    h = np.abs(x)
    for l in range(L):
        z = absW[l] @ h + np.abs(spec.b[l])
        sz.append(z)
        h = z
        sh.append(h)
    _, hs = reference.forward(spec.W, spec.b, x, spec.hidden, spec.output)
    out = np.abs(hs[-1])
    if spec.output == "softmax":
        sh[-1] = out * (1.0 + sz[-1].max())
    d = sh[-1] + np.abs(y)
    sd, sdh = [None] * L, [None] * L
    sd[L - 1], sdh[L - 1] = d, d
    for l in range(L - 1, 0, -1):
        sdh[l - 1] = absW[l].T @ sd[l]
        sd[l - 1] = sdh[l - 1] * (1.0 + sz[l - 1])
    prev = [np.abs(x)] + sh[:-1]
    loss = (float(np.sum(d * d)) if spec.loss == "squared_error" else float(np.sum(np.abs(y))) * (1.0 + sz[-1].max()))
    return {"z": sz, "h": sh, "delta": sd, "dh": sdh, "dW": [np.outer(sd[l], prev[l]) for l in range(L)],
            "db": sd, "loss": loss}


def run_step(spec: Spec) -> StepResult:
    """One SGD (one example) or batch gradient-descent (several) step, with every intermediate.

    Every number is computed with the autograd MLP and checked against the hand-written backprop
    (:mod:`~tinygrad_mlp.practical.reference`) first; a disagreement raises
    :class:`ExerciseMismatchError`.  A finite spec whose step overflows float64 raises
    :class:`SpecError` naming the field at fault, never a result with inf or NaN in it.

    Returns
    -------
    StepResult
        Per example ``z``, ``h``, ``output``, ``loss``, ``dz`` (δ^[l]), ``dh``, ``grad_W``,
        ``grad_b``; the summed ``grad_W``, ``grad_b``; ``W``, ``b`` after the update; the spec.
        ``to_json()`` is what ``exercise --json`` prints.
    """
    # Overflow is checked explicitly below and reported as a SpecError; NumPy's warnings would only
    # add noise on stderr before that one line.
    with np.errstate(all="ignore"):
        return _run_step(spec)


def _run_step(spec: Spec) -> StepResult:
    model = build_model(spec)
    params = model.parameters()
    L = len(spec.W)
    examples, scales = [], []
    for i, (x, y) in enumerate(zip(spec.X, spec.Y)):
        model.zero_grad()
        try:
            zs, hs = model.trace(x)
            loss = (F.cross_entropy(zs[-1], y) if spec.loss == "cross_entropy" else F.squared_error(hs[-1], y))
        except ValueError:  # the model refuses a forward pass that overflowed (it names x)
            raise _too_large(spec, f"the forward pass of examples[{i}]") from None
        _finite(spec, f"the loss of examples[{i}]", loss.data)
        loss.backward()
        rec = {"z": [z.data.copy() for z in zs], "h": [h.data.copy() for h in hs], "loss": float(loss.data),
               "dz": [z.grad.copy() for z in zs], "dh": [None if h.grad is None else h.grad.copy() for h in hs],
               "grad_W": [p.grad.copy() for p in params[0::2]], "grad_b": [p.grad.copy() for p in params[1::2]]}
        for key in ("z", "h", "dz", "dh", "grad_W", "grad_b"):
            for l in range(L):
                if rec[key][l] is not None:  # softmax + cross-entropy: ∂L/∂p is not on the graph (below)
                    _finite(spec, f"examples[{i}].{key}[{l}]", rec[key][l])
        ref = reference.backward(spec.W, spec.b, x, y, spec.hidden, spec.output, spec.loss)
        sc = _error_scales(spec, x, y)
        scales.append(sc)
        for key, rkey in (("z", "z"), ("h", "h"), ("dz", "delta"), ("grad_W", "dW"), ("grad_b", "db")):
            for l in range(L):
                _compare(f"examples[{i}].{key}[{l}]", rec[key][l], ref[rkey][l], sc[rkey][l])
        # ∂L/∂p for softmax + cross-entropy is −y/p, which the autograd graph never forms
        # (it differentiates logsumexp directly); the hand-written value is reported.
        for l in range(L):
            if not (spec.output == "softmax" and l == L - 1):
                _compare(f"examples[{i}].dh[{l}]", rec["dh"][l], ref["dh"][l], sc["dh"][l])
        dhL = np.asarray(ref["dh"][-1], dtype=np.float64)
        if spec.output == "softmax":
            # −y ⊘ p: 0 where y_k = 0 (even where p_k underflowed to 0); −y_k/p_k can exceed float64
            # (p_k < 1e-308) and is then −inf, the one value shown out of range: the step never uses it.
            dhL = np.where(y == 0, 0.0, dhL)
        else:
            _finite(spec, f"examples[{i}].dh[{L - 1}]", dhL)
        rec["dh"][-1] = dhL
        _compare(f"examples[{i}].loss", rec["loss"], ref["loss"], sc["loss"])
        examples.append(ExampleStep(x=x.copy(), y=y.copy(), z=tuple(rec["z"]), h=tuple(rec["h"]),
                                    output=rec["h"][-1], loss=rec["loss"], dz=tuple(rec["dz"]),
                                    dh=tuple(rec["dh"]), grad_W=tuple(rec["grad_W"]), grad_b=tuple(rec["grad_b"])))
    # The step itself: one backward of the summed loss, one SGD update.
    model.zero_grad()
    X, Y = np.stack(spec.X), np.stack(spec.Y)
    try:
        total = model.loss(X, Y, spec.loss, reduction="sum")
    except ValueError:
        raise _too_large(spec, "the forward pass of the batch") from None
    _finite(spec, "the summed loss", total.data)
    total.backward()
    grad_W = [p.grad.copy() for p in params[0::2]]
    grad_b = [p.grad.copy() for p in params[1::2]]
    for l in range(L):
        _finite(spec, f"grad_W[{l}]", grad_W[l])
        _finite(spec, f"grad_b[{l}]", grad_b[l])
    ref = reference.batch_backward(spec.W, spec.b, spec.X, spec.Y, spec.hidden, spec.output, spec.loss)
    lr = spec.learning_rate
    SGD(params, lr=lr).step()
    W_new, b_new = reference.sgd_update(spec.W, spec.b, ref["dW"], ref["db"], lr)
    W_out = [layer.W.data.copy() for layer in model.layers]
    b_out = [layer.b.data.copy() for layer in model.layers]
    for l in range(L):
        _finite(spec, f"W[{l}] after the update", W_out[l])
        _finite(spec, f"b[{l}] after the update", b_out[l])
        s_dW, s_db = sum(sc["dW"][l] for sc in scales), sum(sc["db"][l] for sc in scales)
        _compare(f"grad_W[{l}]", grad_W[l], ref["dW"][l], s_dW)
        _compare(f"grad_b[{l}]", grad_b[l], ref["db"][l], s_db)
        _compare(f"W[{l}]", W_out[l], W_new[l], np.abs(spec.W[l]) + lr * s_dW)
        _compare(f"b[{l}]", b_out[l], b_new[l], np.abs(spec.b[l]) + lr * s_db)
    return StepResult(spec=spec, examples=tuple(examples), loss=float(total.data), grad_W=tuple(grad_W),
                      grad_b=tuple(grad_b), W=tuple(W_out), b=tuple(b_out))


def worked_solution(model, X, Y, loss: str = "squared_error", learning_rate: float = 0.1,
                    digits: int = 4, title: str = ""):
    """The worked solution of one step of ``model`` on inputs ``X`` and targets ``Y``.

    One example (``X`` a vector, or one row) gives an SGD step; several rows give
    one gradient-descent step on the summed loss.  The model is left unchanged:
    its parameters are copied into a spec (via ``state_dict``), validated by
    :func:`parse_spec` and run by :func:`run_step`.

    Parameters
    ----------
    model : MLP
    X : array_like, shape (d₀,) or (n, d₀)
        One example as a vector, as ``model.loss`` takes it, or one per row.
    Y : array_like, shape (d_L,) or (n, d_L); or integer class labels, shape (n,), one-hot encoded
    loss : {"squared_error", "cross_entropy"}
    learning_rate : float
        η.
    digits : int
        Significant digits printed.

    Returns
    -------
    WorkedSolution
    """
    from .render import WorkedSolution, _check_digits

    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a tinygrad_mlp.nn.MLP, got {type(model).__name__}")
    _check_digits(digits)
    Xa = np.asarray(X, dtype=np.float64)
    if Xa.ndim == 1:
        Xa = Xa[None, :]
    n_out = model.sizes[-1]
    Ya = np.asarray(Y)
    # Integer labels, one per example (a 1-D Y whose length is the number of examples); a 1-D Y of
    # d_L numbers beside one example is that example's target vector, as model.loss reads it.
    if Ya.dtype.kind in "iu" and Ya.ndim <= 1 and n_out > 1 and Ya.size == len(Xa):
        labels = Ya.reshape(-1)
        if labels.min() < 0 or labels.max() >= n_out:
            raise ValueError(f"Y: class labels must lie in [0, {n_out}), got {labels.tolist()}")
        Ya = np.eye(n_out)[labels]
    Ya = np.asarray(Ya, dtype=np.float64)
    if Ya.ndim == 1:
        Ya = Ya[None, :]
    if Xa.ndim != 2 or Ya.ndim != 2 or len(Xa) != len(Ya):
        raise ValueError(f"X, Y: expected the same number of examples (rows), got shapes {np.shape(X)} and "
                         f"{np.shape(Y)}")
    sd = model.state_dict()
    L = model.n_layers
    raw = {"layers": list(model.sizes), "hidden": model.hidden, "output": model.output, "loss": loss,
           "weights": [sd[f"W{l}"].tolist() for l in range(1, L + 1)],
           "biases": [sd[f"b{l}"].tolist() for l in range(1, L + 1)],
           "learning_rate": learning_rate,
           "examples": [{"x": x.tolist(), "y": y.tolist()} for x, y in zip(Xa, Ya)]}
    spec = parse_spec(raw)
    spec.name, spec.title = "model", title or "Worked solution: one training step"
    return WorkedSolution(run_step(spec), digits)


def solution_for(spec: Spec, digits: int = 4):
    """The worked solution of a :class:`Spec` (runs :func:`run_step`)."""
    from .render import WorkedSolution

    return WorkedSolution(run_step(spec), digits)
