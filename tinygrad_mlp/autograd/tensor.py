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
from typing import Any, Iterator, NamedTuple

import numpy as np

from . import tape as _tape
from .primitives import (Abs, Add, Clamp, Compare, Copy, Div, Exp, GetItem, Log, LogSumExp, MatMul, Max,
                         Mean, Mul, Neg, Pow, PowT, Relu, Reshape, Sigmoid, Sqrt, Sub, Sum, Tanh, Transpose)
from .tape import FREED, GraphFreedError, new_record, run_backward, state, sweep, tape_size

__all__ = ["Tensor", "apply", "no_grad", "is_grad_enabled", "tape_size", "GraphFreedError", "MaxResult"]

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
        tb = type(b)
        if tb is not float and tb is not int:
            if isinstance(b, np.generic) and b.dtype.kind in "iuf":
                # A NumPy scalar is a scalar, as a Python number is: it never promotes the tensor
                # (float32 * np.float64(2) stays float32), PyTorch's rule, not NumPy 2's.
                b = b.item()
            elif isinstance(b, np.ndarray) or not isinstance(b, (int, float, np.number)):
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


class MaxResult(NamedTuple):
    """What ``max(dim)`` / ``min(dim)`` return, as PyTorch's ``torch.return_types.max``."""

    values: "Tensor"
    indices: "Tensor"


def _compare(a: "Tensor", b: Any, op: str):
    """Elementwise comparison: a bool Tensor, never recorded (it has no gradient)."""
    if type(b) is Tensor:
        bt, bd = b, b.data
    elif isinstance(b, (int, float, np.generic)) and not isinstance(b, np.ndarray):
        bt, bd = None, (b.item() if isinstance(b, np.generic) else b)
    else:
        try:
            bd = _as_operand(b)
        except TypeError:
            return NotImplemented  # ``t == None`` is False, as for any two unrelated objects
        bt = None
    st = _local.state
    before = st.grad_enabled
    st.grad_enabled = False  # the capture still sees the op, so a compiled step replays it
    try:
        return apply(Compare, (a, bt), (a.data, bd), (op,))
    except ValueError as e:
        raise ValueError(f"{op}: operands of shapes {a.shape} and {np.shape(bd)} do not broadcast ({e})") from None
    finally:
        st.grad_enabled = before


class Tensor:
    """An ndarray with an optional gradient, recorded on the tape when it requires grad.

    Parameters
    ----------
    data : array_like
        Lists and Python scalars become float64 (also lists of ints: unlike PyTorch, which makes
        int64, so that the practical's ``[1, 0, 0]`` is a float vector); float32 and float64 arrays
        keep their dtype; integer arrays become int64 (labels, indices: no int8 wrap-around), bool
        stays bool.  float16 and longdouble are refused.  NaN and infinity are accepted, as in
        PyTorch: the model's boundary (``MLP``, the losses) is where they are refused.
    requires_grad : bool
        Record ops on this tensor and give it a ``.grad``; needs a float dtype.
    dtype : {None, "float64", "float32", "int64", "bool", ...}
        Convert to this dtype (values are checked to fit it first).
    """

    # _pg holds the gradient pending for a non-leaf during one backward walk.
    __slots__ = ("data", "_grad", "requires_grad", "_rec", "_retain", "_pg", "__weakref__")
    # ndarray (+-*/@) Tensor must defer to Tensor's reflected operators.
    __array_ufunc__ = None
    # == compares elementwise (PyTorch), so hashing is by identity, as PyTorch's is: tensors stay dict keys.
    __hash__ = object.__hash__

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
                if dtype.kind == "f" and dtype not in _FLOATS:
                    raise ValueError(f"dtype: expected float32 or float64 for floating-point data, got {dtype} "
                                     f"(the engine computes in float32 or float64 only)")
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
            if str(e).startswith(("data: ", "dtype: ")):
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
            # float16 would be silently widened, longdouble silently rounded: say so instead
            raise ValueError(f"data: expected float32 or float64 data, got {arr.dtype}; convert it first, "
                             f"e.g. Tensor(a.astype(np.float32))")
        if arr.dtype.kind in "iu" and arr.dtype != np.int64 and dtype is None:
            # Integer data (labels, indices) is kept as int64, as PyTorch keeps Python ints: int8 or uint8
            # arithmetic would wrap silently (a sum of 100 x 100 int8 ones is 16 in int8).
            if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
                raise ValueError(f"data: uint64 values up to {arr.max()} do not fit int64")
            arr = arr.astype(np.int64)
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

    def __format__(self, spec: str) -> str:
        if self.data.size == 1 and spec:  # f"{loss:.3f}": PyTorch formats a one-element tensor as its number
            return format(self._scalar("format"), spec)
        if spec:
            raise TypeError(f"format: a format spec ({spec!r}) needs a tensor with one element, got shape {self.shape}")
        return str(self)

    def tolist(self):
        """The values as (nested) Python lists of numbers; a 0-d tensor gives one number."""
        cap = _local.state.capture
        if cap is not None:
            cap.conversion(self, "tolist")
        return self.data.tolist()

    def numel(self) -> int:
        """The number of elements (PyTorch's name for ``size``)."""
        return self.data.size

    def dim(self) -> int:
        """The number of dimensions (PyTorch's name for ``ndim``)."""
        return self.data.ndim

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Set ``requires_grad`` in place on a leaf tensor; returns self (as PyTorch)."""
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise TypeError(f"requires_grad: expected a bool, got {type(requires_grad).__name__}")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(): only a leaf tensor's flag can be turned off; use detach()")
        if requires_grad and self.data.dtype not in _FLOATS:
            raise TypeError(f"requires_grad: only float32 or float64 tensors can require grad, got dtype {self.dtype}")
        if self.is_leaf:
            self.requires_grad = bool(requires_grad)
        return self

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
        if type(p) is not int and type(p) is not float:
            if isinstance(p, np.generic) and p.dtype.kind in "iuf":
                p = p.item()  # a NumPy scalar is a scalar (no promotion), as in _binary
            elif isinstance(p, Tensor) or isinstance(p, (np.ndarray, list, tuple)):
                return _binary(PowT, self, p if isinstance(p, Tensor) else _as_operand(p))
            elif not isinstance(p, (int, float)):
                raise TypeError(f"exponent: expected a number, an ndarray or a Tensor, got {type(p).__name__}")
        return apply(Pow, (self,), (self.data,), (p,))

    def __rpow__(self, base):
        """``2 ** x``: a constant base, the tensor in the exponent."""
        if isinstance(base, np.generic) and base.dtype.kind in "iuf":
            base = base.item()
        elif not isinstance(base, (int, float)):
            base = _as_operand(base)
        return _binary(PowT, self, base, reverse=True)

    def __eq__(self, o):
        return _compare(self, o, "eq")

    def __ne__(self, o):
        return _compare(self, o, "ne")

    def __lt__(self, o):
        return _compare(self, o, "lt")

    def __le__(self, o):
        return _compare(self, o, "le")

    def __gt__(self, o):
        return _compare(self, o, "gt")

    def __ge__(self, o):
        return _compare(self, o, "ge")

    def matmul(self, o) -> "Tensor":
        """``self @ o``."""
        return self @ o

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
            parts = index if isinstance(index, tuple) else (index,)
            if any(isinstance(p, np.ndarray) and p.dtype.kind == "f" for p in parts):
                raise IndexError(f"index: a float array or tensor cannot index (Tensor([0, 1]) is float64 here, "
                                 f"unlike PyTorch); build indices from an integer ndarray or with dtype='int64' "
                                 f"(tensor shape {self.shape})") from None
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

    def abs(self) -> "Tensor":
        return apply(Abs, (self,), (self.data,))

    __abs__ = abs

    def sqrt(self) -> "Tensor":
        return apply(Sqrt, (self,), (self.data,))

    def clamp(self, min=None, max=None) -> "Tensor":
        """min(max(self, min), max); the gradient passes where min ≤ self ≤ max (PyTorch's clamp)."""
        if min is None and max is None:
            raise ValueError("clamp: expected at least one of min and max, got neither")
        for name, v in (("min", min), ("max", max)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))):
                raise TypeError(f"{name}: expected a number or None, got {type(v).__name__}")
        lo = None if min is None else float(min)
        hi = None if max is None else float(max)
        return apply(Clamp, (self,), (self.data,), (lo, hi))

    clip = clamp

    def clone(self) -> "Tensor":
        """A copy with its own memory; gradients flow through it to self (PyTorch's clone)."""
        return apply(Copy, (self,), (self.data,))

    def softmax(self, dim: int = -1) -> "Tensor":
        """exp(zᵢ − logsumexp z) along ``dim`` (see :func:`tinygrad_mlp.autograd.functional.softmax`)."""
        from .functional import softmax
        return softmax(self, dim)

    def log_softmax(self, dim: int = -1) -> "Tensor":
        """zᵢ − logsumexp z along ``dim``, computed stably."""
        from .functional import log_softmax
        return log_softmax(self, dim)

    # -------------------------------------------------------------- reductions
    # ``dim``/``keepdim`` are PyTorch's spellings of NumPy's ``axis``/``keepdims``: both are accepted.
    def sum(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> "Tensor":
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_args("sum", axis, keepdims, dim, keepdim)
        axis = _check_axis(axis, self.ndim)
        return apply(Sum, (self,), (self.data,), (axis, keepdims))

    def mean(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> "Tensor":
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_args("mean", axis, keepdims, dim, keepdim)
        axis = _check_axis(axis, self.ndim)
        if self.data.size == 0:
            raise ValueError("mean: expected a non-empty tensor, got shape " + str(self.shape))
        return apply(Mean, (self,), (self.data,), (axis, keepdims))

    def logsumexp(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> "Tensor":
        """log Σ exp along ``axis``, computed stably (see :class:`~tinygrad_mlp.primitives.LogSumExp`)."""
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_args("logsumexp", axis, keepdims, dim, keepdim)
        if axis is not None:
            axis = _check_axis(axis, self.data.ndim)
        if self.data.size == 0:
            raise ValueError("logsumexp: expected a non-empty tensor, got shape " + str(self.shape))
        return apply(LogSumExp, (self,), (self.data,), (axis, keepdims))

    def max(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """The largest entry; with ``dim``, PyTorch's ``(values, indices)`` along that dim.

        The gradient goes to the maximal entry (for ``max(dim)``, the one ``indices`` names; for a
        full ``max()``, shared evenly among ties, as in PyTorch).
        """
        return self._extremum("max", dim, keepdim, axis, keepdims)

    def min(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """The smallest entry, or ``(values, indices)`` along ``dim``: −max(−self), so the same gradient rules."""
        return self._extremum("min", dim, keepdim, axis, keepdims)

    def _shift(self, axis) -> "Tensor":
        """max along ``axis`` (keepdims), as a constant: softmax's shift.  Applied with grad mode off, so
        it is not recorded (the shift has no gradient) yet a capture still sees it and replays it."""
        axis = _check_axis(axis, self.ndim)
        if self.data.size == 0:
            raise ValueError("z: expected a non-empty tensor, got shape " + str(self.shape))
        st = _local.state
        before = st.grad_enabled
        st.grad_enabled = False
        try:
            if axis is None or isinstance(axis, tuple):
                m = apply(Max, (self,), (self.data,), (None, True))
            else:
                m = apply(Max, (self,), (self.data,), (int(axis), True))
        finally:
            st.grad_enabled = before
        if not np.isfinite(m.data).all():  # ±inf or NaN rows: no shift (inf − inf would add NaNs)
            m = _new(np.where(np.isfinite(m.data), m.data, 0).astype(m.data.dtype))
        return m

    def _extremum(self, what, dim, keepdim, axis, keepdims):
        if isinstance(dim, Tensor):
            raise TypeError(f"dim: {what}(other) (an elementwise {what}imum) is not supported; pass an int dim")
        if axis is not None:
            if dim is not None:
                raise TypeError(f"{what}: pass dim or axis, not both")
            dim = axis
        if keepdims is not None:
            keepdim = keepdims
        if self.data.size == 0:
            raise ValueError(f"{what}: expected a non-empty tensor, got shape {self.shape}")
        if dim is not None and (not isinstance(dim, (int, np.integer)) or isinstance(dim, bool)):
            raise TypeError(f"dim: expected an int, got {dim!r}")
        ax = _check_axis(dim, self.ndim)
        src = self if what == "max" else -self
        if ax is None:
            out = apply(Max, (src,), (src.data,), (None, bool(keepdim)))
            out = out if what == "max" else -out
            if dim is None:
                return out
            return MaxResult(out, _new(np.zeros(out.shape, np.int64)))  # a 0-d tensor's only index
        out = apply(Max, (src,), (src.data,), (int(ax), bool(keepdim)))
        idx = np.argmax(src.data, axis=ax, keepdims=bool(keepdim))
        return MaxResult(out if what == "max" else -out, _new(np.asarray(idx, np.int64)))

    # ------------------------------------------------------------------ shapes
    def reshape(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            return apply(Reshape, (self,), (self.data,), (shape,))
        except (ValueError, TypeError) as e:
            raise ValueError(f"shape: cannot reshape a tensor of shape {self.shape} into {shape} ({e})") from None

    view = reshape  # no strides here: every view() is allowed, as reshape

    def transpose(self, *dims) -> "Tensor":
        """PyTorch's ``transpose(dim0, dim1)``: swap two dims.  With no argument, reverse all dims (``.T``).

        NumPy's ``transpose(axes)`` (a permutation) is :meth:`permute` here: on a 2-D tensor
        NumPy's ``transpose(0, 1)`` is the identity, PyTorch's is the transpose.
        """
        if not dims:
            return apply(Transpose, (self,), (self.data,), (None,))
        if len(dims) != 2 or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
            raise TypeError(f"dims: transpose(dim0, dim1) swaps two dims, as in PyTorch; got {dims!r} "
                            f"(for a permutation of all dims use permute(...))")
        n = max(self.ndim, 1)
        for d in dims:
            if not -n <= d < n:
                raise ValueError(f"dims: expected dims in [-{n}, {n}), got {tuple(dims)} for shape {self.shape}")
        if self.ndim == 0:
            return apply(Reshape, (self,), (self.data,), ((),))
        perm = list(range(self.ndim))
        i, j = dims[0] % self.ndim, dims[1] % self.ndim
        perm[i], perm[j] = perm[j], perm[i]
        return apply(Transpose, (self,), (self.data,), (tuple(perm),))

    def permute(self, *dims) -> "Tensor":
        """Reorder the dims: ``out.shape[i] = self.shape[dims[i]]`` (NumPy's ``transpose(axes)``)."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        n = self.ndim
        try:
            norm = tuple(int(d) % n if n else int(d) for d in dims)
        except (TypeError, ValueError):
            norm = None
        if norm is None or sorted(norm) != list(range(n)) or any(not -n <= d < n for d in dims):
            raise ValueError(f"dims: expected a permutation of {tuple(range(n))}, got {dims}")
        return apply(Transpose, (self,), (self.data,), (norm,))

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def unsqueeze(self, dim: int) -> "Tensor":
        """Insert a dim of size 1 at ``dim`` (in [−ndim−1, ndim])."""
        n = self.ndim + 1
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not -n <= dim < n:
            raise ValueError(f"dim: expected an int in [-{n}, {n}), got {dim!r}")
        shape = list(self.shape)
        shape.insert(dim % n, 1)
        return apply(Reshape, (self,), (self.data,), (tuple(shape),))

    def squeeze(self, dim=None) -> "Tensor":
        """Drop dims of size 1 (only ``dim``, if given; a dim whose size is not 1 stays, as in PyTorch)."""
        if dim is None:
            shape = tuple(s for s in self.shape if s != 1)
        else:
            dims = dim if isinstance(dim, tuple) else (dim,)
            n = max(self.ndim, 1)
            for d in dims:
                if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not -n <= d < n:
                    raise ValueError(f"dim: expected an int in [-{n}, {n}), got {dim!r}")
            drop = {d % n for d in dims}
            shape = tuple(s for i, s in enumerate(self.shape) if not (i in drop and s == 1))
        return apply(Reshape, (self,), (self.data,), (shape,))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        """Merge dims start_dim..end_dim into one (a 0-d tensor becomes shape (1,), as in PyTorch)."""
        if self.ndim == 0:
            return apply(Reshape, (self,), (self.data,), ((1,),))
        n = self.ndim
        for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not -n <= d < n:
                raise ValueError(f"{name}: expected an int in [-{n}, {n}), got {d!r}")
        a, b = start_dim % n, end_dim % n
        if a > b:
            raise ValueError(f"start_dim: expected start_dim <= end_dim, got {start_dim} and {end_dim}")
        shape = self.shape[:a] + (int(np.prod(self.shape[a:b + 1], dtype=np.int64)),) + self.shape[b + 1:]
        return apply(Reshape, (self,), (self.data,), (shape,))

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
            if type(grad) is np.ndarray and grad.dtype.kind == "f":  # the common case: no checks to pay for
                g = np.array(grad, dtype=self.data.dtype)
            else:
                g = _grad_array(grad, self.data.dtype)
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
            if ndim == 0 and ax in (0, -1) and not isinstance(ax, bool):
                continue  # PyTorch: a 0-d tensor has the one dim 0 (= -1); reducing over it changes nothing
            raise ValueError(f"axis: expected an int in [-{ndim}, {ndim}) or a tuple of them, got {axis!r}")
    return None if ndim == 0 else axis


def _torch_args(what: str, axis, keepdims, dim, keepdim):
    """Merge PyTorch's dim/keepdim into NumPy's axis/keepdims (either spelling, not both)."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{what}: pass dim or axis, not both")
        axis = tuple(dim) if isinstance(dim, list) else dim
    if keepdim is not None:
        keepdims = keepdim
    return axis, bool(keepdims)


def _grad_array(grad, dtype) -> np.ndarray:
    """The upstream gradient given to backward(), checked: real numbers only, named ``grad``."""
    src = grad.data if isinstance(grad, Tensor) else grad
    try:
        arr = np.asarray(src)
    except (TypeError, ValueError) as e:
        raise TypeError(f"grad: expected an array of real numbers, got {type(grad).__name__} ({e})") from None
    if arr.dtype.kind == "c":
        raise ValueError("grad: expected real numbers, got complex values (the imaginary part would be dropped)")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"grad: expected an array of real numbers, got {type(grad).__name__} of dtype {arr.dtype}")
    return np.array(arr, dtype=dtype)
