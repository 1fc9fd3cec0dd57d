"""The Tensor, and :func:`apply`: the one way an op is applied.

A :class:`Tensor` wraps an ndarray.  Every Tensor method that computes goes through
:func:`apply`, which runs the primitive's forward on the arrays and, if any input requires grad
and grad mode is on in this thread, gives the result a :class:`~tinygrad_mlp.autograd.tape.Record`
and puts it on the thread's tape (see :mod:`tinygrad_mlp.autograd.tape` for the walk, the
ownership rules and the per-thread state).
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from . import tape as _tape
from .primitives import (Add, Div, Exp, GetItem, Log, LogSumExp, MatMul, Mean, Mul, Neg, Pow,
                         Relu, Reshape, Sigmoid, Sub, Sum, Tanh, Transpose)
from .tape import FREED, GraphFreedError, new_record, run_backward, state, sweep, tape_size

__all__ = ["Tensor", "apply", "no_grad", "is_grad_enabled", "tape_size", "GraphFreedError"]

_local = _tape._local
_Record = _tape.Record
_ref = weakref.ref


def is_grad_enabled() -> bool:
    """True unless inside :func:`no_grad` in this thread."""
    return _local.state.grad_enabled


@contextmanager
def no_grad() -> Iterator[None]:
    """Record nothing inside this block (evaluation, parameter updates); other threads are unaffected."""
    st = _local.state
    before = st.grad_enabled
    st.grad_enabled = False
    try:
        yield
    finally:
        st.grad_enabled = before


_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def _new(data: np.ndarray) -> "Tensor":
    """Wrap an array the library computed: no validation, no copy, no record."""
    t = object.__new__(Tensor)
    t.data = data
    t._grad = None
    t.requires_grad = False
    t._rec = None
    t._retain = False
    t._pg = None
    return t


def apply(prim, parents: tuple, arrays: tuple, args: tuple = ()) -> "Tensor":
    """Apply primitive ``prim``: ``out, ctx = prim.forward(*arrays, *args)``, wrapped in a Tensor.

    ``parents`` are the Tensors behind ``arrays`` (None for a constant operand).  If grad mode is on
    in this thread and a parent requires grad, the result records ``(prim, parents, ctx, args)`` and
    joins the tape.  The per-op hot path: no validation here (the callers check at the boundary).
    """
    out, ctx = prim.forward(*arrays, *args) if args else prim.forward(*arrays)
    t = object.__new__(Tensor)
    t.data = out
    t._grad = None
    t._retain = False
    t._pg = None
    st = _local.state
    t.requires_grad = False
    t._rec = None
    if st.grad_enabled:
        for p in parents:
            if p is not None and p.requires_grad:
                t.requires_grad = True
                t._rec = new_record(_Record, (prim, parents, ctx, args))
                tape = st.tape
                tape.append(_ref(t))
                if len(tape) > st.sweep_at:
                    sweep(st)
                break
    if st.capture is not None:
        st.capture.op(prim, parents, arrays, args, out, ctx, t)
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
            return apply(prim, (bt, a), (bd, a.data))
        return apply(prim, (a, bt), (a.data, bd))
    except ValueError as e:  # only a failed op pays for the readable message
        l, r = (np.shape(bd), a.shape) if reverse else (a.shape, np.shape(bd))
        raise ValueError(f"{prim.name}: operands of shapes {l} and {r} do not broadcast ({e})") from None


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
    __slots__ = ("data", "_grad", "requires_grad", "_rec", "_retain", "_pg", "__weakref__")
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
        self._grad = None
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

    @property
    def grad(self) -> np.ndarray | None:
        """∂L/∂self after a backward: an array of this tensor's own (never shared with another's);
        a Tensor on the tape after ``backward(create_graph=True)``."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is None:
            cap = _local.state.capture
            if cap is not None:
                cap.grad_cleared(self)
        self._grad = value

    def item(self) -> float:
        cap = _local.state.capture
        if cap is not None:
            cap.conversion(self, "item")
        if self.data.size != 1:
            raise ValueError(f"item(): expected a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def _scalar(self, what: str):
        cap = _local.state.capture
        if cap is not None:  # a replay would freeze the value: the capture refuses it
            cap.conversion(self, what)
        if self.data.size != 1:
            raise ValueError(f"{what}(): only a tensor with one element can be converted to a Python scalar, "
                             f"got shape {self.shape}")
        return self.data.item()

    def __float__(self) -> float:
        return float(self._scalar("float"))

    def __int__(self) -> int:
        return int(self._scalar("int"))

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub":
            raise TypeError(f"index: only an integer tensor can be used as an index, got dtype {self.dtype}")
        return int(self._scalar("index"))

    def __bool__(self) -> bool:
        if self.data.size != 1:  # PyTorch: the truth value of several numbers is ambiguous
            raise RuntimeError(f"bool(): the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self._scalar("bool"))

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
            if self.requires_grad and o.requires_grad:
                return apply(MatMul, (self, o), (self.data, o.data))
            # Backward may skip the gradient of a constant operand (x in W x or in X Wᵀ).
            return apply(MatMul, (self, o), (self.data, o.data), ((self.requires_grad, o.requires_grad),))
        except ValueError as e:  # only a failed op pays for the readable message
            _check_matmul(self.data, o.data)
            raise ValueError(f"matmul: batch axes of {self.shape} and {o.shape} do not broadcast ({e})") from None

    def __rmatmul__(self, o):
        o = _new(_as_operand(o))
        return o @ self

    def __pow__(self, p):
        if isinstance(p, Tensor) or not isinstance(p, (int, float, np.number)):
            raise TypeError(f"exponent: expected a Python or NumPy scalar, got {type(p).__name__}")
        return apply(Pow, (self,), (self.data,), (p,))

    def __neg__(self):
        return apply(Neg, (self,), (self.data,))

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        try:
            return apply(GetItem, (self,), (self.data,), (index,))
        except IndexError as e:
            raise IndexError(f"index: {e} (tensor shape {self.shape})") from None

    # ------------------------------------------------------- elementwise unary
    def tanh(self) -> "Tensor":
        return apply(Tanh, (self,), (self.data,))

    def sigmoid(self) -> "Tensor":
        return apply(Sigmoid, (self,), (self.data,))

    def relu(self) -> "Tensor":
        return apply(Relu, (self,), (self.data,))

    def exp(self) -> "Tensor":
        return apply(Exp, (self,), (self.data,))

    def log(self) -> "Tensor":
        return apply(Log, (self,), (self.data,))

    # -------------------------------------------------------------- reductions
    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        axis = _check_axis(axis, self.ndim)
        return apply(Sum, (self,), (self.data,), (axis, keepdims))

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        axis = _check_axis(axis, self.ndim)
        if self.data.size == 0:
            raise ValueError("mean: expected a non-empty tensor, got shape " + str(self.shape))
        return apply(Mean, (self,), (self.data,), (axis, keepdims))

    def logsumexp(self, axis=None, keepdims: bool = False) -> "Tensor":
        """log Σ exp along ``axis``, computed stably (see :class:`~tinygrad_mlp.primitives.LogSumExp`)."""
        if axis is not None:
            axis = _check_axis(axis, self.data.ndim)
        if self.data.size == 0:
            raise ValueError("logsumexp: expected a non-empty tensor, got shape " + str(self.shape))
        return apply(LogSumExp, (self,), (self.data,), (axis, keepdims))

    # ------------------------------------------------------------------ shapes
    def reshape(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            return apply(Reshape, (self,), (self.data,), (shape,))
        except (ValueError, TypeError) as e:
            raise ValueError(f"shape: cannot reshape a tensor of shape {self.shape} into {shape} ({e})") from None

    def transpose(self, *axes) -> "Tensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        axes = axes or None
        if axes is not None and sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"axes: expected a permutation of {tuple(range(self.ndim))}, got {axes}")
        return apply(Transpose, (self,), (self.data,), (axes,))

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    # ---------------------------------------------------------------- backward
    def backward(self, grad: Any = None, retain_graph: bool | None = None, create_graph: bool = False) -> None:
        """Accumulate ∂self/∂x into ``x.grad`` for every leaf x that requires grad.

        ``grad`` is the upstream gradient ∂L/∂self (defaults to 1 for a
        scalar).  The tape is walked once, newest record first; records are
        freed afterwards unless ``retain_graph`` (which defaults to ``create_graph``).

        With ``create_graph=True`` the backward pass is itself recorded, as in PyTorch: each
        ``x.grad`` becomes a Tensor on the tape that can be differentiated again
        (:mod:`tinygrad_mlp.autograd.higher`).  Without it nothing changes: ``.grad`` is an ndarray.
        """
        if create_graph:
            return _backward_graph(self, grad, retain_graph)
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
        cap = _local.state.capture
        if cap is not None:
            cap.backward(self, grad, retain_graph)
        root = self._rec
        if root is FREED:
            raise GraphFreedError(
                "backward(): the graph behind this tensor was freed by an earlier backward; "
                "pass retain_graph=True to the first backward to go through it twice")
        if root is None:  # a leaf: d self / d self = 1
            self._grad = g if self._grad is None else self._grad + g
        else:
            run_backward(self, g, retain_graph)
        if cap is not None:
            cap.after_backward(self)


def _backward_graph(t: Tensor, grad: Any, retain_graph: bool | None) -> None:
    """backward(create_graph=True): the recorded walk of :mod:`.higher`, gradients as Tensors."""
    from .higher import walk  # the second-order walk loads only when first asked for

    if not t.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad and has no recorded ops")
    if grad is None:
        if t.data.size != 1:
            raise ValueError(
                f"backward(): grad can be omitted only for a scalar, but this tensor has shape {t.shape}; "
                "pass grad= of the same shape")
        g = _new(np.ones(t.shape, t.data.dtype))
    else:
        g = grad if isinstance(grad, Tensor) else _new(np.array(grad, dtype=t.data.dtype))
        if g.shape != t.shape:
            raise ValueError(f"grad: expected shape {t.shape}, got {g.shape}")
    cap = _local.state.capture
    if cap is not None:  # the observer refuses: a replay runs one first-order backward
        cap.backward(t, grad, retain_graph, create_graph=True)
    walk([t], [g], create_graph=True, retain_graph=True if retain_graph is None else bool(retain_graph))


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
