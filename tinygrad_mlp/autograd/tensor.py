"""The Tensor and its tape.

A :class:`Tensor` wraps an ndarray.  Each primitive applied to a tensor that
requires grad appends one record to the tape::

    (primitive, parents, weakref(out), ctx, args)

``parents`` are the input Tensors (None for constants), ``ctx`` is what the
primitive's vjp needs, and ``args`` are its static arguments (axis, exponent,
index) so that a compiled replay can rerun the forward.

Records are appended in execution order, which is already a topological order
of the graph: :meth:`Tensor.backward` walks the tape from the loss's record
backwards until no gradient is pending, calls each reached record's vjp once,
and accumulates into ``.grad``.  There is no recursive graph search, so a
chain of any length works.

The tape keeps its outputs through weak references and its inputs through
strong ones.  A graph nobody can reach any more (the loss was dropped without
a backward) therefore dies with its tensors and is swept off the tape.
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from .primitives import (Add, Div, Exp, GetItem, Log, LogSumExp, MatMul, Mean, Mul, Neg, Pow,
                         Relu, Reshape, Sigmoid, Sub, Sum, Tanh, Transpose)

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "tape_size", "GraphFreedError"]

_TAPE: list = []  # the records, oldest first
_FREED = object()  # marks a tensor whose record a backward has already consumed
_grad_enabled = True
_sweep_at = 10_000  # tape length at which dead records are swept off


class GraphFreedError(RuntimeError):
    """A backward pass needed records that an earlier backward already freed."""


def is_grad_enabled() -> bool:
    """True unless inside :func:`no_grad`."""
    return _grad_enabled


@contextmanager
def no_grad() -> Iterator[None]:
    """Record nothing inside this block (evaluation, parameter updates)."""
    global _grad_enabled
    before = _grad_enabled
    _grad_enabled = False
    try:
        yield
    finally:
        _grad_enabled = before


def tape_size() -> int:
    """How many records are on the tape now (tests count them to prove they are freed)."""
    return len(_TAPE)


def _sweep() -> None:
    """Drop records whose output died; walking newest first lets a dead chain die in one pass."""
    global _sweep_at
    live = []
    for i in range(len(_TAPE) - 1, -1, -1):
        # Take the record off the tape before the next one is checked: a dead record must release
        # its parents now, or the older records producing them still look alive in this pass.
        rec, _TAPE[i] = _TAPE[i], None
        if rec[2]() is not None:
            live.append(rec)
    rec = None
    live.reverse()
    _TAPE[:] = live
    _sweep_at = max(10_000, 2 * len(_TAPE))


_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def _new(data: np.ndarray) -> "Tensor":
    """Wrap an array the library computed: no validation, no copy."""
    t = object.__new__(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = False
    t._rec = None
    t._retain = False
    t._pg = None
    return t


def _record(prim, parents: tuple, out: np.ndarray, ctx: Any, args: tuple = ()) -> "Tensor":
    """Wrap ``out`` and, if any parent requires grad, append its record: the per-op hot path."""
    t = object.__new__(Tensor)  # _new inlined: this runs once per op
    t.data = out
    t.grad = None
    t._retain = False
    t._pg = None
    if _grad_enabled:
        for p in parents:
            if p is not None and p.requires_grad:
                t.requires_grad = True
                t._rec = rec = (prim, parents, weakref.ref(t), ctx, args)
                _TAPE.append(rec)
                if len(_TAPE) > _sweep_at:
                    _sweep()
                return t
    t.requires_grad = False
    t._rec = None
    return t


def _binary(prim, a: "Tensor", b: Any, reverse: bool = False) -> "Tensor":
    if type(b) is Tensor:
        bt, bd = b, b.data
    else:
        if isinstance(b, np.ndarray) or not isinstance(b, (int, float, np.number)):
            b = _as_operand(b)
        bt, bd = None, b
    try:
        if reverse:
            out, ctx = prim.forward(bd, a.data)
            return _record(prim, (bt, a), out, ctx)
        out, ctx = prim.forward(a.data, bd)
    except ValueError as e:  # only a failed op pays for the readable message
        l, r = (np.shape(bd), a.shape) if reverse else (a.shape, np.shape(bd))
        raise ValueError(f"{prim.name}: operands of shapes {l} and {r} do not broadcast ({e})") from None
    return _record(prim, (a, bt), out, ctx)


def _as_operand(b: Any) -> np.ndarray:
    if isinstance(b, Tensor):
        return b.data
    try:
        arr = np.asarray(b)
    except Exception as e:  # ragged lists and the like
        raise TypeError(f"operand: expected a Tensor, ndarray or number, got {type(b).__name__} ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"operand: expected numeric data, got dtype {arr.dtype}")
    return arr


class Tensor:
    """An ndarray with an optional gradient, recorded on the tape when it requires grad.

    Parameters
    ----------
    data : array_like
        Lists and Python scalars become float64; float32 and float64 arrays keep
        their dtype; integer and bool arrays stay integer (targets, indices).
    requires_grad : bool
        Record ops on this tensor and give it a ``.grad``; needs a float dtype.
    dtype : {None, "float64", "float32", ...}
        Convert to this dtype.
    """

    # _pg holds the gradient pending for a non-leaf during one backward walk.
    __slots__ = ("data", "grad", "requires_grad", "_rec", "_retain", "_pg", "__weakref__")
    # ndarray (+-*/@) Tensor must defer to Tensor's reflected operators.
    __array_ufunc__ = None

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise TypeError(f"requires_grad: expected a bool, got {type(requires_grad).__name__}")
        if data is None:  # np.array(None, dtype=float64) would be a silent NaN
            raise TypeError("data: expected a number, a (nested) list of numbers or an ndarray, got None")
        try:
            if dtype is not None:
                dtype = np.dtype(dtype)
            is_array = isinstance(data, (np.ndarray, np.generic))
            if dtype is not None:
                # NumPy casts on request without a word (complex drops its imaginary part, NaN or 1e19
                # become garbage ints, 1e39 becomes a float32 inf): check the values against the target
                # first, on the data's own dtype.  Only when a dtype is asked for, so the default is free.
                try:
                    src = np.asarray(data) if is_array else np.array(data)
                except (TypeError, ValueError, OverflowError):
                    src = None  # ragged or mixed: the conversion below reports it
                sk, tk = (src.dtype.kind if src is not None else "O"), dtype.kind
                if sk == "c" and tk != "c":
                    raise ValueError(f"data: cannot convert complex data to {dtype} without dropping "
                                     f"the imaginary part; pass the real part explicitly")
                if sk in "biuf" and src.size and tk in "iu":
                    info = np.iinfo(dtype)
                    if sk == "f":
                        if not np.isfinite(src).all():
                            raise ValueError(f"data: cannot convert NaN or infinity to {dtype}")
                        if (src != np.trunc(src)).any():
                            raise ValueError(f"data: cannot convert fractional values to {dtype} exactly")
                        lo, hi = float(src.min()), float(src.max())
                        # float(2**63 - 1) rounds up to 2**63, so the upper bound is tested with >=
                        fits = lo >= float(info.min) and hi < float(info.max) + 1.0
                    else:
                        lo, hi = int(src.min()), int(src.max())
                        fits = info.min <= lo and hi <= info.max
                    if not fits:
                        raise ValueError(f"data: values from {lo} to {hi} do not fit {dtype} "
                                         f"[{info.min}, {info.max}]")
                elif sk == "f" and src.size and tk == "f" and dtype.itemsize < src.dtype.itemsize:
                    finite = np.abs(src[np.isfinite(src)])
                    if finite.size and finite.max() > np.finfo(dtype).max:
                        raise ValueError(f"data: {finite.max():.6g} overflows {dtype} "
                                         f"(largest finite {np.finfo(dtype).max:.6g})")
                elif sk in "iuf" and src.size and tk == "b" and not np.isin(src, (0, 1)).all():
                    raise ValueError("data: cannot convert values other than 0 and 1 to bool")
            if is_array:
                arr = np.array(data, dtype=dtype)
            else:
                arr = np.array(data, dtype=dtype if dtype is not None else np.float64)
        except OverflowError as e:  # a Python int beyond int64 / float range
            raise ValueError(f"data: a number is out of range for {dtype or np.dtype(np.float64)} ({e})") from None
        except (TypeError, ValueError) as e:
            if str(e).startswith("data: "):
                raise
            raise TypeError(
                f"data: expected a number, a (nested) list of numbers or an ndarray, "
                f"got {type(data).__name__} ({e})") from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"data: expected numeric data, got dtype {arr.dtype}")
        if arr.dtype.kind == "f" and not is_array and arr.size and np.isnan(arr).any():
            # a None inside a list becomes NaN under dtype=float64: refuse it, keep a written NaN
            if any(v is None for v in np.array(data, dtype=object).flat):
                raise TypeError("data: expected numbers, got None inside the list")
        if arr.dtype.kind == "f" and arr.dtype not in _FLOATS:
            arr = arr.astype(np.float64)
        if requires_grad and arr.dtype not in _FLOATS:
            raise TypeError(
                f"requires_grad: only float32 or float64 tensors can require grad, got dtype {arr.dtype}")
        self.data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._rec = None
        self._retain = False
        self._pg = None

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        """True for tensors the user made, False for results of recorded ops."""
        return self._rec is None

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item(): expected a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def __array__(self, dtype=None, copy=None):
        if dtype is None and not copy:
            return self.data
        return np.array(self.data, dtype=dtype, copy=True if copy else None)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        extra = ""
        if self.data.dtype != np.float64:
            extra += f", dtype={self.data.dtype}"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    def detach(self) -> "Tensor":
        """The same data, cut off from the tape."""
        return _new(self.data)

    def retain_grad(self) -> "Tensor":
        """Keep ``.grad`` on this intermediate after backward (leaves always keep theirs)."""
        self._retain = True
        return self

    def zero_grad(self) -> None:
        self.grad = None

    # --------------------------------------------------------------- operators
    def __add__(self, o):
        return _binary(Add, self, o)

    def __radd__(self, o):
        return _binary(Add, self, o, reverse=True)

    def __sub__(self, o):
        return _binary(Sub, self, o)

    def __rsub__(self, o):
        return _binary(Sub, self, o, reverse=True)

    def __mul__(self, o):
        return _binary(Mul, self, o)

    def __rmul__(self, o):
        return _binary(Mul, self, o, reverse=True)

    def __truediv__(self, o):
        return _binary(Div, self, o)

    def __rtruediv__(self, o):
        return _binary(Div, self, o, reverse=True)

    def __matmul__(self, o):
        if type(o) is not Tensor:
            o = _new(_as_operand(o))
        try:
            out, ctx = MatMul.forward(self.data, o.data)
        except ValueError as e:  # only a failed op pays for the readable message
            _check_matmul(self.data, o.data)
            raise ValueError(f"matmul: batch axes of {self.shape} and {o.shape} do not broadcast ({e})") from None
        if not (self.requires_grad and o.requires_grad):
            # Backward may skip the gradient of a constant operand (x in W x or in X Wᵀ).
            ctx = (ctx[0], ctx[1], (self.requires_grad, o.requires_grad))
        return _record(MatMul, (self, o), out, ctx)

    def __rmatmul__(self, o):
        o = _new(_as_operand(o))
        return o @ self

    def __pow__(self, p):
        if isinstance(p, Tensor) or not isinstance(p, (int, float, np.number)):
            raise TypeError(f"exponent: expected a Python or NumPy scalar, got {type(p).__name__}")
        out, ctx = Pow.forward(self.data, p)
        return _record(Pow, (self,), out, ctx, (p,))

    def __neg__(self):
        out, ctx = Neg.forward(self.data)
        return _record(Neg, (self,), out, ctx)

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        try:
            out, ctx = GetItem.forward(self.data, index)
        except IndexError as e:
            raise IndexError(f"index: {e} (tensor shape {self.shape})") from None
        return _record(GetItem, (self,), out, ctx, (index,))

    # ------------------------------------------------------- elementwise unary
    def tanh(self) -> "Tensor":
        out, ctx = Tanh.forward(self.data)
        return _record(Tanh, (self,), out, ctx)

    def sigmoid(self) -> "Tensor":
        out, ctx = Sigmoid.forward(self.data)
        return _record(Sigmoid, (self,), out, ctx)

    def relu(self) -> "Tensor":
        out, ctx = Relu.forward(self.data)
        return _record(Relu, (self,), out, ctx)

    def exp(self) -> "Tensor":
        out, ctx = Exp.forward(self.data)
        return _record(Exp, (self,), out, ctx)

    def log(self) -> "Tensor":
        out, ctx = Log.forward(self.data)
        return _record(Log, (self,), out, ctx)

    # -------------------------------------------------------------- reductions
    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        axis = _check_axis(axis, self.ndim)
        out, ctx = Sum.forward(self.data, axis, keepdims)
        return _record(Sum, (self,), out, ctx, (axis, keepdims))

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        axis = _check_axis(axis, self.ndim)
        if self.data.size == 0:
            raise ValueError("mean: expected a non-empty tensor, got shape " + str(self.shape))
        out, ctx = Mean.forward(self.data, axis, keepdims)
        return _record(Mean, (self,), out, ctx, (axis, keepdims))

    def logsumexp(self, axis=None, keepdims: bool = False) -> "Tensor":
        """log Σ exp along ``axis``, computed stably (see :class:`~tinygrad_mlp.primitives.LogSumExp`)."""
        if axis is not None:
            axis = _check_axis(axis, self.data.ndim)
        if self.data.size == 0:
            raise ValueError("logsumexp: expected a non-empty tensor, got shape " + str(self.shape))
        out, ctx = LogSumExp.forward(self.data, axis, keepdims)
        return _record(LogSumExp, (self,), out, ctx, (axis, keepdims))

    # ------------------------------------------------------------------ shapes
    def reshape(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            out, ctx = Reshape.forward(self.data, shape)
        except (ValueError, TypeError) as e:
            raise ValueError(f"shape: cannot reshape a tensor of shape {self.shape} into {shape} ({e})") from None
        return _record(Reshape, (self,), out, ctx, (shape,))

    def transpose(self, *axes) -> "Tensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        axes = axes or None
        if axes is not None and sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"axes: expected a permutation of {tuple(range(self.ndim))}, got {axes}")
        out, ctx = Transpose.forward(self.data, axes)
        return _record(Transpose, (self,), out, ctx, (axes,))

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    # ---------------------------------------------------------------- backward
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate ∂self/∂x into ``x.grad`` for every leaf x that requires grad.

        ``grad`` is the upstream gradient ∂L/∂self (defaults to 1 for a
        scalar).  The tape is walked once, newest record first; records are
        freed afterwards unless ``retain_graph``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no recorded ops")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward(): grad can be omitted only for a scalar, but this tensor has shape {self.shape}; "
                    "pass grad= of the same shape")
            g = np.array(1.0, self.data.dtype)  # np.ones costs 5x more on a scalar
            if self.data.ndim:
                g = g.reshape(self.data.shape)
        else:
            g = np.array(grad.data if isinstance(grad, Tensor) else grad, dtype=self.data.dtype)
            if g.shape != self.shape:
                raise ValueError(f"grad: expected shape {self.shape}, got {g.shape}")
        root = self._rec
        if root is _FREED:
            raise GraphFreedError(
                "backward(): the graph behind this tensor was freed by an earlier backward; "
                "pass retain_graph=True to the first backward to go through it twice")
        if root is None:  # a leaf: d self / d self = 1
            self.grad = g if self.grad is None else self.grad + g
            return
        _run_backward(self, g, retain_graph)


def _run_backward(root: "Tensor", g: np.ndarray, retain_graph: bool) -> None:
    tape = _TAPE
    rec0 = root._rec
    i = len(tape) - 1
    while i >= 0 and tape[i] is not rec0:  # records newer than the root belong to other graphs
        i -= 1
    if i < 0:
        raise GraphFreedError("backward(): this tensor's record is no longer on the tape")
    # A non-leaf's incoming gradient waits in its _pg slot until its own record is reached;
    # ``pending`` counts those slots, so the walk stops as soon as nothing older can be reached.
    root._pg = g
    pending = 1
    kept = []  # records in the walked stretch that this graph did not reach
    j = i
    try:
        while pending and j >= 0:
            rec = tape[j]
            j -= 1
            out = rec[2]()
            if out is None:
                continue
            g = out._pg
            if g is None:
                kept.append(rec)
                continue
            out._pg = None
            pending -= 1
            if out._retain:
                out.grad = g if out.grad is None else out.grad + g
            for p, gp in zip(rec[1], rec[0].vjp(g, rec[3])):
                if p is None or not p.requires_grad:
                    continue
                if p._rec is None:  # a leaf keeps its gradient
                    if p.grad is None:
                        # sum's vjp hands back a read-only broadcast view; .grad must be writable.
                        p.grad = gp if gp.flags.writeable else gp.copy()
                    else:
                        p.grad = p.grad + gp
                else:
                    prev = p._pg
                    if prev is None:
                        p._pg = gp
                        pending += 1
                    else:
                        p._pg = prev + gp
            if retain_graph:
                kept.append(rec)
            else:
                out._rec = _FREED
    except BaseException:
        _clear_pending(tape, j + 1, i)
        raise
    if pending:
        # Only a tensor whose record an earlier backward freed can be left waiting.
        _clear_pending(tape, 0, len(tape) - 1)
        raise GraphFreedError(
            "backward(): part of this graph was freed by an earlier backward; "
            "pass retain_graph=True to the first backward to go through it twice")
    if not retain_graph:
        kept.reverse()
        tape[j + 1:i + 1] = kept


def _clear_pending(tape: list, lo: int, hi: int) -> None:
    """After a failed walk, drop the gradients left waiting on the parents of records lo..hi."""
    for rec in tape[max(lo, 0):hi + 1]:
        for p in rec[1]:
            if p is not None:
                p._pg = None
        out = rec[2]()
        if out is not None:
            out._pg = None


def _check_matmul(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: expected operands with at least one dimension, got shapes {a.shape} and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} do not align: "
            f"{ka} (last axis of the left) != {kb} (the right's {'only' if b.ndim == 1 else 'second-to-last'} axis)")


def _check_axis(axis, ndim: int):
    if axis is None:
        return None
    axes = axis if isinstance(axis, tuple) else (axis,)
    for ax in axes:
        if not isinstance(ax, (int, np.integer)) or isinstance(ax, bool) or not -ndim <= ax < ndim:
            raise ValueError(f"axis: expected an int in [-{ndim}, {ndim}) or a tuple of them, got {axis!r}")
    return axis
