"""Check a student's answers to an exercise: which numbers are wrong, and which mistake made them.

``answers`` holds any subset of the quantities ``python -m tinygrad_mlp exercise NAME --json``
writes, under the same keys: per example (``examples``: a list, one object per example) ``z``,
``h``, ``output``, ``loss``, ``dz`` (δ^[l] = ∂L/∂z^[l]), ``dh`` (∂L/∂h^[l]), ``grad_W``,
``grad_b``; and for the step ``loss``, ``grad_W``, ``grad_b``, ``W``, ``b`` (after the update).
A per-layer quantity is a list over layers 1..L (its first entry is layer 1), with ``null`` for a
layer not answered, or an object keyed by layer number (``{"3": ...}``); any entry may be ``null``.
The other keys of ``exercise --json`` (``name``, ``layers``, ``initial``, ``x``, ``y``, ...) are
givens: accepted and not graded.

**Precision.**  A number is right when the computed value rounds to it at the number of decimals it
was written with: ``0.0965`` (4 decimals) stands for [0.09645, 0.09655], so it matches 0.096504,
and ``0.0966`` does not.  Trailing zeros count (``0.04850`` claims 5 decimals), an exponent shifts
the decimals (``1.23e-3`` has 5), and a number written without a point or exponent (``0``, ``1``)
is read as exact.  This is the rule "the computed value, rounded as you rounded it, gives your
number" and it is the same as counting significant digits for every number written the usual way.

**Verdicts**, in the order of the computation (forward, then backward from layer L down, per example;
then the step's gradients and the updated parameters):

- ``right``: matches the computed step;
- ``wrong``: the first wrong number of a chain; the grader runs every recognised mistake
  (:mod:`tinygrad_mlp.practical.mistakes`, each a mistaken variant of the hand-written backprop)
  and names the one that reproduces it and the most of the student's other numbers (with any
  others that give the same numbers);
- ``carried forward``: wrong, but it follows from an earlier wrong number: either the practical's
  formula applied to the student's own earlier numbers gives it (error carried forward: full credit,
  as a marker gives), or it is what the named mistake gives there (the same slip again, or a
  consequence of it).  Later wrong numbers explained by neither start a new chain.

A number that is wrong against the exact step but right from the student's own *rounded* earlier
numbers, with no mistake to explain it, is accepted as right (a note says so).
"""
from __future__ import annotations

import html
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import mistakes as _mistakes
from .exercise import BUILTINS, Spec, builtin, load_spec, parse_spec, run_step
from .mistakes import Mistake

__all__ = ["check_answers", "CheckReport", "Verdict", "AnswersError", "load_answers", "loads_answers", "RIGHT", "WRONG", "CARRIED"]

RIGHT, WRONG, CARRIED = "right", "wrong", "carried forward"
EXAMPLE_KEYS = ("z", "h", "output", "loss", "dz", "dh", "grad_W", "grad_b")
STEP_KEYS = ("loss", "grad_W", "grad_b", "W", "b")
GIVEN_TOP = ("name", "title", "layers", "hidden", "output", "loss_name", "learning_rate", "initial", "weights",
             "biases")  # the spec part of an `exercise --json` document: given, not graded
GIVEN_EXAMPLE = ("x", "y")
# Float rounding of the computed step itself (1e-16 relative), far below any written precision.
_SLACK_REL, _SLACK_ABS = 1e-9, 1e-12


class AnswersError(ValueError):
    """A malformed answers file; the message starts with the key."""


def _computed(spec: Spec) -> dict:
    """The exercise's computed step as ``exercise --json`` writes it (the one place the grader gets it)."""
    return run_step(spec).to_json()


# ----------------------------------------------------------------------------- written numbers
class _Num:
    """A number as written: its text (for its precision) and its value."""

    __slots__ = ("text", "value")

    def __init__(self, text: str, value: float):
        self.text, self.value = text, value


def _half_unit(text: str) -> float:
    """Half a unit in the last written place: the rounding interval's half-width (0: exact)."""
    mant, _, exp = text.strip().lstrip("+-").lower().partition("e")
    if "." not in mant and not exp:
        return 0.0
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    return 0.5 * 10.0 ** (-(decimals - int(exp or 0)))


def _pairs(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise AnswersError(f"{k}: the key appears twice in one object")
        seen[k] = v
    return seen


def _loads(text: str, where: str):
    try:
        return json.loads(text, parse_float=lambda s: _Num(s, float(s)), parse_int=lambda s: _Num(s, float(int(s))),
                          parse_constant=lambda s: _Num(s, float("nan")), object_pairs_hook=_pairs)
    except json.JSONDecodeError as e:
        raise AnswersError(f"answers: {where} is not valid JSON ({e})") from None


def loads_answers(text: str):
    """Parse answers from JSON text, keeping each number's written text (its precision)."""
    return _loads(text, "the text")


def load_answers(path: str | os.PathLike):
    """Read an answers file, keeping each number's written text (its precision)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise AnswersError(f"answers: cannot read {str(p)!r} ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise AnswersError(f"answers: {str(p)!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    return _loads(text, repr(str(p)))


def _leaf(v, where: str):
    if v is None:
        return None
    if isinstance(v, _Num):
        if not math.isfinite(v.value):
            raise AnswersError(f"{where}: expected a finite number, got {v.text}")
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise AnswersError(f"{where}: expected a number, got {v!r:.60}")
    if isinstance(v, numbers.Integral):
        return _Num(str(int(v)), float(v))
    f = float(v)
    if not math.isfinite(f):
        raise AnswersError(f"{where}: expected a finite number, got {f!r}")
    return _Num(repr(f), f)  # Python's shortest repr is the number as typed (0.0965 stays '0.0965')


def _array(v, shape: tuple, where: str, what: str):
    """(values with NaN where not given, half-units, texts) of a number / vector / matrix."""
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if not shape:
        n = _leaf(v, where)
        vals, half, texts = (np.array(np.nan), np.array(0.0), np.array("", dtype=object)) if n is None else (
            np.array(n.value), np.array(_half_unit(n.text)), np.array(n.text, dtype=object))
        return vals, half, texts
    if not isinstance(v, (list, tuple)) or len(v) != shape[0]:
        got = f"{len(v)} entries" if isinstance(v, (list, tuple)) else (v.text if isinstance(v, _Num) else repr(v)[:60])
        raise AnswersError(f"{where}: expected {what}, got {got}")
    parts = [_array(e, shape[1:], f"{where}[{i}]", what) for i, e in enumerate(v)]
    return tuple(np.stack([p[j] for p in parts]) for j in range(3))


@dataclass
class _Given:
    vals: np.ndarray
    half: np.ndarray
    texts: np.ndarray

    @property
    def mask(self):
        return ~np.isnan(self.vals)


def _layers(v, L: int, where: str):
    """A per-layer quantity: a list over layers 1..L, or an object keyed by layer number."""
    if isinstance(v, dict):
        out = [None] * L
        for k, e in v.items():
            if isinstance(k, int) and not isinstance(k, bool):  # from Python: {3: ...}
                k = str(k)
            if not (isinstance(k, str) and k.isdigit() and 1 <= int(k) <= L):
                raise AnswersError(f"{where}: expected layer numbers 1..{L} as keys, got {k!r}")
            out[int(k) - 1] = e
        return out
    if not isinstance(v, (list, tuple)) or len(v) != L:
        got = f"{len(v)} entries" if isinstance(v, (list, tuple)) else repr(v)[:60]
        raise AnswersError(f"{where}: expected a list of {L} per-layer entries (layers 1..{L}, null for one not "
                           f"answered), got {got}")
    return list(v)


def _shape(spec: Spec, key: str, k: int | None) -> tuple:
    n = spec.layers
    if key == "loss":
        return ()
    if key == "output":
        return (n[-1],)
    if key in ("grad_W", "W"):
        return (n[k + 1], n[k])
    return (n[k + 1],)


def _what(shape: tuple, key: str) -> str:
    if not shape:
        return "a number"
    if len(shape) == 1:
        return f"a list of {shape[0]} numbers"
    return f"a {shape[0]} x {shape[1]} matrix (out x in, as rows)"


def _parse(spec: Spec, raw) -> dict:
    """Validate the answers against the exercise's shapes: {path: _Given} for what was given."""
    if not isinstance(raw, dict):
        raise AnswersError(f"answers: expected a JSON object with keys such as 'examples', 'grad_W', 'W', got "
                           f"{type(raw).__name__}")
    L, out = len(spec.W), {}

    def take(value, key, path, where):
        if value is None:
            return
        if key in ("loss", "output"):
            items = [(path, value, where, None)]
        else:
            items = [((*path, k), e, f"{where}[{k}]", k) for k, e in enumerate(_layers(value, L, where))]
        for p, v, w, k in items:
            if v is None:
                continue
            shape = _shape(spec, key, k)
            what = _what(shape, key) + ("" if k is None else f" for layer {k + 1}")
            g = _Given(*_array(v, shape, w, what))
            if g.mask.any():
                out[p] = g

    for key, value in raw.items():
        if key == "examples":
            if not isinstance(value, list) or len(value) > len(spec.X):
                got = f"{len(value)} entries" if isinstance(value, list) else repr(value)[:60]
                raise AnswersError(f"examples: expected a list of at most {len(spec.X)} objects (one per example "
                                   f"of the exercise), got {got}")
            for e, ex in enumerate(value):
                if ex is None:
                    continue
                if not isinstance(ex, dict):
                    raise AnswersError(f"examples[{e}]: expected an object with keys such as 'z', 'dz', 'grad_W', "
                                       f"got {ex if not isinstance(ex, _Num) else ex.text!r:.60}")
                for k2, v2 in ex.items():
                    if k2 in GIVEN_EXAMPLE:
                        continue
                    if k2 not in EXAMPLE_KEYS:
                        raise AnswersError(f"examples[{e}].{k2}: unknown key (an example has "
                                           f"{', '.join(EXAMPLE_KEYS)})")
                    take(v2, k2, ("examples", e, k2), f"examples[{e}].{k2}")
        elif key in STEP_KEYS:
            take(value, key, (key,), key)
        elif key not in GIVEN_TOP:
            raise AnswersError(f"{key}: unknown key (answers have 'examples' with {', '.join(EXAMPLE_KEYS)}, "
                               f"and {', '.join(STEP_KEYS)})")
    if not out:
        raise AnswersError("answers: no numbers given (expected any of the quantities 'exercise --json' writes)")
    return out


# ----------------------------------------------------------------------------- the step's quantities
def _flat(result: dict) -> dict:
    """{path: array} of a step dict (``exercise --json``'s keys, layers as lists)."""
    out = {}
    for e, ex in enumerate(result["examples"]):
        for key in EXAMPLE_KEYS:
            if key in ("loss", "output"):
                out[("examples", e, key)] = np.asarray(ex[key], dtype=np.float64)
            else:
                for k, v in enumerate(ex[key]):
                    out[("examples", e, key, k)] = np.asarray(v, dtype=np.float64)
    out[("loss",)] = np.asarray(result["loss"], dtype=np.float64)
    for key in ("grad_W", "grad_b", "W", "b"):
        for k, v in enumerate(result[key]):
            out[(key, k)] = np.asarray(v, dtype=np.float64)
    return out


def _order(spec: Spec) -> list[tuple]:
    """Every quantity's path, in the order of the computation."""
    L, order = len(spec.W), []
    for e in range(len(spec.X)):
        for k in range(L):
            order += [("examples", e, "z", k), ("examples", e, "h", k)]
        order += [("examples", e, "output"), ("examples", e, "loss")]
        for k in range(L - 1, -1, -1):
            order += [("examples", e, key, k) for key in ("dh", "dz", "grad_W", "grad_b")]
    order.append(("loss",))
    for k in range(L - 1, -1, -1):
        order += [("grad_W", k), ("grad_b", k)]
    for k in range(L):
        order += [("W", k), ("b", k)]
    return order


def _key(path: tuple) -> str:
    """The path as written in the answers file: examples[0].dz[2] (list indices; layer = index + 1)."""
    if path[0] == "examples":
        s = f"examples[{path[1]}].{path[2]}"
        return s + (f"[{path[3]}]" if len(path) > 3 else "")
    return path[0] + (f"[{path[1]}]" if len(path) > 1 else "")


def _label(spec: Spec, path: tuple) -> str:
    """The quantity in the practical's notation."""
    L, batch = len(spec.W), len(spec.X) > 1
    out_name = "p" if spec.output == "softmax" else "ŷ"
    if path[0] == "examples":
        e, key = path[1], path[2]
        l = path[3] + 1 if len(path) > 3 else L
        name = {"z": f"z^[{l}]", "h": f"h^[{l}]" + (f" = {out_name}" if l == L else ""), "output": out_name,
                "loss": "L", "dz": f"δ^[{l}] = ∂L/∂z^[{l}]",
                "dh": f"∂L/∂h^[{l}]" if l < L else f"∂L/∂{out_name}",
                "grad_W": f"∂L/∂W^[{l}]", "grad_b": f"∂L/∂b^[{l}]"}[key]
        return f"{name} (example {e + 1})" if batch else name
    key, l = path[0], (path[1] + 1 if len(path) > 1 else None)
    step = "summed over the batch" if batch else "the step"
    return {"loss": f"L ({'batch total' if batch else 'the step'})", "grad_W": f"∂L/∂W^[{l}] ({step})",
            "grad_b": f"∂L/∂b^[{l}] ({step})", "W": f"W^[{l}] after the update",
            "b": f"b^[{l}] after the update"}[key]


# ----------------------------------------------------------------------------- error carried forward
def _local(spec: Spec, path: tuple, get):
    """The practical's formula for ``path`` applied to the student's own earlier numbers.

    ``get(path)`` gives (value, uncertainty): the student's number where given (uncertainty: half a
    unit of its last digit), else the step as the student's identified mistakes make it.  Returns
    (value, uncertainty) with the uncertainty carried to first order, or None where the formula
    cannot be applied (a log of a non-positive p).
    """
    L = len(spec.W)
    W = spec.W
    if path[0] == "examples":
        e, key = path[1], path[2]
        k = path[3] if len(path) > 3 else L - 1
        x, y = spec.X[e], spec.Y[e]

        def prev(k):
            return (x, np.zeros_like(x)) if k == 0 else get(("examples", e, "h", k - 1))

        if key == "z":
            h, u = prev(k)
            return W[k] @ h + spec.b[k], np.abs(W[k]) @ u
        if key in ("h", "output") and (key == "output" or k == L - 1):
            if key == "output":
                return get(("examples", e, "h", L - 1))
            z, u = get(("examples", e, "z", k))
            if spec.output == "softmax":
                p = np.exp(z - z.max())
                p /= p.sum()
                return p, p * (u + p @ u)
            if spec.output == "sigmoid":
                s = 0.5 * (1.0 + np.tanh(0.5 * z))
                return s, s * (1 - s) * u
            return z, u
        if key == "h":
            z, u = get(("examples", e, "z", k))
            h = _ACT[spec.hidden](z)
            return h, np.abs(_GPRIME[spec.hidden](h, z)) * u
        out, u_out = get(("examples", e, "h", L - 1))
        if key == "loss":
            if spec.loss == "squared_error":
                return 0.5 * np.sum((out - y) ** 2), np.sum(np.abs(out - y) * u_out)
            on = y != 0
            if np.any(out[on] <= 0):
                return None
            return -np.sum(y[on] * np.log(out[on])), np.sum(y[on] * u_out[on] / out[on])
        if key == "dh" and k == L - 1:
            if spec.loss == "squared_error":
                return out - y, u_out
            on = y != 0
            if np.any(out[on] <= 0):
                return None
            v, u = np.zeros_like(out), np.zeros_like(out)
            v[on], u[on] = -y[on] / out[on], y[on] * u_out[on] / out[on] ** 2
            return v, u
        if key == "dz" and k == L - 1:
            if spec.output == "softmax":
                return out - y, u_out
            dh, u_dh = get(("examples", e, "dh", L - 1))
            if spec.output == "sigmoid":
                s = out * (1 - out)
                return dh * s, u_dh * np.abs(s) + np.abs(dh) * np.abs(1 - 2 * out) * u_out
            return dh, u_dh
        if key == "dh":
            d, u = get(("examples", e, "dz", k + 1))
            return W[k + 1].T @ d, np.abs(W[k + 1]).T @ u
        if key == "dz":
            dh, u_dh = get(("examples", e, "dh", k))
            h, u_h = get(("examples", e, "h", k))
            z, _ = get(("examples", e, "z", k))
            gp = _GPRIME[spec.hidden](h, z)
            return dh * gp, u_dh * np.abs(gp) + np.abs(dh) * _GPRIME_SLOPE[spec.hidden](h) * u_h
        d, u_d = get(("examples", e, "dz", k))
        if key == "grad_b":
            return d, u_d
        h, u_h = prev(k)
        return np.outer(d, h), np.outer(u_d, np.abs(h)) + np.outer(np.abs(d), u_h)
    key = path[0]
    if key == "loss":
        parts = [get(("examples", e, "loss")) for e in range(len(spec.X))]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)
    k = path[1]
    if key in ("grad_W", "grad_b"):
        parts = [get(("examples", e, key, k)) for e in range(len(spec.X))]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)
    g, u = get(("grad_W" if key == "W" else "grad_b", k))
    p0 = spec.W[k] if key == "W" else spec.b[k]
    return p0 - spec.learning_rate * g, spec.learning_rate * u


_ACT = {"identity": lambda z: z, "tanh": np.tanh, "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),
        "relu": lambda z: np.maximum(z, 0.0)}
_GPRIME = {"identity": lambda h, z: np.ones_like(h), "tanh": lambda h, z: 1.0 - h * h,
           "sigmoid": lambda h, z: h * (1.0 - h), "relu": lambda h, z: (z > 0).astype(np.float64)}
_GPRIME_SLOPE = {"identity": lambda h: 0.0 * h, "tanh": lambda h: 2.0 * np.abs(h),
                 "sigmoid": lambda h: np.abs(1.0 - 2.0 * h), "relu": lambda h: 0.0 * h}


def _matches(g: _Given, ref: np.ndarray, unc=0.0) -> np.ndarray:
    """Entry-wise: the given number is ref rounded at its written precision (NaN entries: True)."""
    ref = np.broadcast_to(np.asarray(ref, dtype=np.float64), g.vals.shape)
    with np.errstate(invalid="ignore"):
        ok = np.abs(g.vals - ref) <= g.half + unc + _SLACK_ABS + _SLACK_REL * np.abs(ref)
    return ok | ~g.mask


# ----------------------------------------------------------------------------- the report
@dataclass
class Verdict:
    """One quantity of the student's answers."""

    key: str                     # as in the answers file: examples[0].dz[2]
    label: str                   # in the practical's notation: δ^[3] = ∂L/∂z^[3]
    status: str                  # RIGHT, WRONG or CARRIED
    given: Any                   # the student's numbers as written (nested lists of str, None where blank)
    right: Any                   # the computed step's value (nested lists of float)
    yours: Any = None            # the formula applied to the student's own earlier numbers, where it applies
    mistake: Mistake | None = None      # on a WRONG verdict: the mistake that explains it
    equivalent: tuple = ()               # other mistakes that give the same numbers
    note: str = ""

    def to_dict(self) -> dict:
        return {"key": self.key, "label": self.label, "status": self.status, "given": self.given,
                "right": self.right, "from_your_numbers": self.yours,
                "mistake": None if self.mistake is None else _mistake_dict(self.mistake),
                "equivalent": [m.key for m in self.equivalent], "note": self.note}


def _mistake_dict(m: Mistake) -> dict:
    return {"key": m.key, "name": m.name, "you_used": m.wrong, "right_formula": m.right}


@dataclass
class CheckReport:
    """The verdict on a student's answers: one :class:`Verdict` per quantity, in the order of the computation."""

    exercise: str
    title: str
    verdicts: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(v.status == RIGHT for v in self.verdicts)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def first_wrong(self) -> Verdict | None:
        return next((v for v in self.verdicts if v.status == WRONG), None)

    @property
    def mistakes(self) -> list[Mistake]:
        return [v.mistake for v in self.verdicts if v.mistake is not None]

    def counts(self) -> dict:
        return {s: sum(v.status == s for v in self.verdicts) for s in (RIGHT, WRONG, CARRIED)}

    def __getitem__(self, key: str) -> Verdict:
        for v in self.verdicts:
            if v.key == key:
                return v
        raise KeyError(key)

    def to_dict(self) -> dict:
        fw = self.first_wrong
        return {"exercise": self.exercise, "title": self.title, "ok": self.ok, "counts": self.counts(),
                "first_wrong": None if fw is None else fw.key,
                "mistakes": [dict(_mistake_dict(v.mistake), at=v.key) for v in self.verdicts if v.mistake],
                "quantities": [v.to_dict() for v in self.verdicts]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{c[RIGHT]} right", f"{c[WRONG]} wrong"] + ([f"{c[CARRIED]} carried forward"] if c[CARRIED] else [])
        s = ", ".join(parts) + f" of {len(self.verdicts)} quantities."
        fw = self.first_wrong
        if fw is not None:
            s += f" First wrong: {fw.label} ({fw.key})"
            s += f": {fw.mistake.name}." if fw.mistake else ": not one of the recognised mistakes."
        return s

    def __str__(self) -> str:
        head = f"check {self.exercise}" + (f": {self.title}" if self.title else "")
        rows = [("quantity", "verdict", "yours", "right")]
        lines = []
        for v in self.verdicts:
            rows.append((v.label, v.status.upper() if v.status == WRONG else v.status, _short(v.given), _short(v.right)))
            extra = []
            if v.mistake is not None:
                extra += [f"mistake: {v.mistake.name}", f"  you used: {v.mistake.wrong}",
                          f"  right:    {v.mistake.right}"]
                if v.equivalent:
                    extra.append("  (the same numbers come from: " + "; ".join(m.name for m in v.equivalent) + ")")
            if v.note:
                extra.append(v.note)
            lines.append(extra)
        widths = [min(max(len(r[i]) for r in rows), w) for i, w in enumerate((34, 15, 34, 34))]
        out = [head, ""]
        for i, r in enumerate(rows):
            out.append("  " + "  ".join(_cut(c, w).ljust(w) for c, w in zip(r, widths)).rstrip())
            if i:
                out += ["      " + e for e in lines[i - 1]]
        out += ["", self.summary()]
        return "\n".join(out) + "\n"

    def _repr_html_(self) -> str:
        colour = {RIGHT: "#e6f4ea", WRONG: "#fce8e6", CARRIED: "#fef7e0"}
        esc = html.escape
        body = []
        for v in self.verdicts:
            notes = []
            if v.mistake is not None:
                notes.append(f"<b>{esc(v.mistake.name)}</b><br>you used: {esc(v.mistake.wrong)}<br>"
                             f"right: {esc(v.mistake.right)}")
                if v.equivalent:
                    notes.append("same numbers: " + esc("; ".join(m.name for m in v.equivalent)))
            if v.note:
                notes.append(esc(v.note))
            body.append(f'<tr style="background:{colour[v.status]}"><td style="white-space:nowrap">{esc(v.label)}</td>'
                        f'<td style="white-space:nowrap">{esc(v.status)}</td>'
                        f"<td><code>{esc(_short(v.given, 400))}</code></td><td><code>{esc(_short(v.right, 400))}"
                        f"</code></td><td>{'<br>'.join(notes)}</td></tr>")
        return (f"<p><b>check {esc(self.exercise)}</b> {esc(self.title)}</p><table><thead><tr><th>quantity</th>"
                "<th>verdict</th><th>yours</th><th>right</th><th>mistake / note</th></tr></thead><tbody>"
                + "".join(body) + f"</tbody></table><p>{esc(self.summary())}</p>")


def _short(v, width: int = 10_000) -> str:
    if v is None:
        return "–"
    if isinstance(v, list):
        s = "[" + ", ".join(_short(e) for e in v) + "]"
    elif isinstance(v, float):
        s = f"{v:.6g}"
    else:
        s = str(v)
    return _cut(s, width)


def _cut(s: str, w: int) -> str:
    return s if len(s) <= w else s[: w - 1] + "…"


def _written(g: _Given):
    t = np.where(g.mask, g.texts, None)
    return t.tolist() if t.ndim else t.item()


def _plain(a: np.ndarray):
    return np.asarray(a, dtype=np.float64).tolist()


# ----------------------------------------------------------------------------- grading
def _spec_of(spec_or_name) -> Spec:
    if isinstance(spec_or_name, Spec):
        return spec_or_name
    if isinstance(spec_or_name, dict):
        return parse_spec(spec_or_name)
    if isinstance(spec_or_name, str) and spec_or_name in BUILTINS:
        return builtin(spec_or_name)
    if isinstance(spec_or_name, (str, os.PathLike)):
        return load_spec(spec_or_name)
    raise TypeError(f"spec_or_name: expected a Spec, a spec dict, one of {sorted(BUILTINS)} or a SPEC.json path, "
                    f"got {type(spec_or_name).__name__}")


def check_answers(spec_or_name, answers) -> CheckReport:
    """Grade a student's answers to one exercise, as a careful marker would.

    Parameters
    ----------
    spec_or_name : Spec, dict, str or os.PathLike
        The exercise: a built-in name (``"q1"``, ``"q1-batch"``, ``"q2"``, ``"q2-batch"``), a spec
        dict, a :class:`~tinygrad_mlp.practical.exercise.Spec`, or a SPEC.json path.
    answers : dict, str or os.PathLike
        Any subset of the quantities ``exercise --json`` writes (see the module doc), or the path of
        a JSON file holding them.  Each number is judged at the precision it was written to (a
        Python float: its shortest repr, so ``0.0965`` is read as written).

    Returns
    -------
    CheckReport
        One :class:`Verdict` per quantity given; ``report.ok``, ``report.first_wrong``,
        ``report.mistakes``, ``report.to_json()``; shown as a table in a notebook.

    Raises
    ------
    AnswersError
        A malformed answers file (a wrong key, a wrong shape, a non-number); the message starts
        with the key.
    SpecError
        A malformed exercise spec.
    """
    spec = _spec_of(spec_or_name)
    raw = load_answers(answers) if isinstance(answers, (str, os.PathLike)) else answers
    given = _parse(spec, raw)
    truth = _flat(_computed(spec))
    report = CheckReport(spec.name, spec.title)
    candidates = _mistakes.applicable(spec)
    sims: dict = {}

    def sim(active: tuple) -> dict:
        if active not in sims:
            sims[active] = _flat(_mistakes.simulate(spec, active))
        return sims[active]

    active: tuple = ()
    basis = truth
    seen_error = False
    right_paths = []

    filled = []  # the formula used a number the student did not give, as their mistake makes it

    def get(path):
        v = np.array(basis[path], dtype=np.float64)
        u = np.zeros_like(v)
        g = given.get(path)
        if g is None and path[0] in ("grad_W", "grad_b") and len(spec.X) == 1:  # one example: the step's gradient
            g = given.get(("examples", 0, *path))
        if (g is None or not g.mask.all()) and basis is not truth and not np.array_equal(basis[path], truth[path]):
            filled.append(path)
        if g is not None:
            v = np.where(g.mask, g.vals, v)
            u = np.where(g.mask, g.half, 0.0)
        return v, u

    for path in _order(spec):
        g = given.get(path)
        if g is None:
            continue
        verdict = Verdict(_key(path), _label(spec, path), RIGHT, _written(g), _plain(truth[path]))
        report.verdicts.append(verdict)
        filled.clear()
        with np.errstate(all="ignore"):
            local = _local(spec, path, get)
        from_basis = bool(filled) and bool(active)
        if local is not None:
            verdict.yours = _plain(local[0])
        if _matches(g, truth[path]).all():
            right_paths.append(path)
            continue
        own = local is not None and bool(_matches(g, local[0], local[1]).all())
        if seen_error and own:
            verdict.status = CARRIED
            verdict.note = (f"right given the mistake above ({active[-1].name}) and your numbers (error carried "
                            "forward)" if from_basis else "right from your own earlier numbers (error carried forward)")
            continue
        if active and _matches(g, basis[path]).all():
            verdict.status = CARRIED
            verdict.note = f"follows from the mistake above ({active[-1].name})"
            continue
        bad = ~_matches(g, truth[path])
        if g.vals.ndim and bad.sum() < bad.size:  # point at the entries when only some are wrong
            where = [f"({', '.join(str(i + 1) for i in ix)})" for ix in zip(*np.nonzero(bad))]
            verdict.note = "wrong entries " + ", ".join(where[:8]) + (" …" if len(where) > 8 else "")
        found = _identify(path, given, candidates, active, sim, right_paths)
        if found:
            best, equivalent = found
            active = active + (best,)
            basis = sim(active)
            verdict.status, verdict.mistake, verdict.equivalent = WRONG, best, tuple(equivalent)
            seen_error = True
            continue
        if own:  # no mistake explains it, and the student's own rounded numbers give it: rounding, not an error
            verdict.note = "right from your own rounded earlier numbers (not from the exact ones)"
            right_paths.append(path)
            continue
        verdict.status, seen_error = WRONG, True
        verdict.note = "; ".join(filter(None, [verdict.note, "not one of the recognised mistakes"]))
    return report


def _identify(path, given, candidates, active, sim, right_paths):
    """The mistake (added to those already found) that reproduces the student's number at ``path``.

    Among those that do, and keep every number the student got right right, the one reproducing
    the most of the student's numbers wins; the others reproducing as many are equivalent.
    """
    used = set().union(*(_mistakes.overrides(m) for m in active)) if active else set()
    scored = []
    for m in candidates:
        if m in active or _mistakes.overrides(m) & used:
            continue
        values = sim(active + (m,))
        if not _matches(given[path], values[path]).all():
            continue
        if not all(_matches(given[p], values[p]).all() for p in right_paths):
            continue
        score = sum(int((_matches(g, values[p]) & g.mask).sum()) for p, g in given.items())
        scored.append((score, m))
    if not scored:
        return None
    top = max(s for s, _ in scored)
    best = [m for s, m in scored if s == top]
    return best[0], best[1:]
