"""Replay rules: for each primitive, the buffered code of its forward and of its vjp.

:data:`RULES` maps every primitive class of :data:`tinygrad_mlp.autograd.primitives.PRIMITIVES` to a
:class:`Rule`; the code generator (:mod:`.codegen`) reads nothing else to know what a primitive does.
A rule mirrors the primitive's own ``forward`` and ``vjp`` operation for operation, so that the replay
runs the same floating-point operations in the same order, and stays bit-identical to the tape:

* ``forward(b, c)`` emits the forward of call ``c`` (:class:`Call`) into preallocated buffers and
  returns the code name of its output, or None when this call has no buffered form (then the
  generic rule runs the primitive itself);
* ``vjp(b, c, gv, need)`` emits ∂L/∂input for each input where ``need`` says so, from ``gv``, the
  code name of ∂L/∂out, and returns one code name per input (None where not needed);
* both emit small structured statements (``b.op("mul", [a, b], out)``: one NumPy call into a buffer),
  which the NumPy replay renders as NumPy calls and the native backend (:mod:`.native`) as numba
  loops: one rule serves both targets.  Free Python (``b.raw``) carries, where it can, the same
  computation as an op for the native target (``native=``); a statement without one makes the
  native backend fall back to the NumPy replay for that step.

``b`` is the generator (:class:`.codegen.Builder`): it names buffers and constants (``b.ref``,
``b.buf``), emits NumPy calls (``b.op(fn, ins, out)``, structured, so that later passes read them
without parsing text) and free statements (``b.raw``), and makes views (``b.view``).

Adding a primitive: write its two functions here and add one line to :data:`RULES`;
:data:`GENERIC` (the primitive's own ``forward``/``vjp``, allocating) is always a correct rule, and
``tests/test_compiled.py`` fails for a primitive that has no entry.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np

from ..autograd import primitives as P


class Call(NamedTuple):
    """One captured primitive call, as the rules see it."""

    k: int          #: its index in the capture
    prim: Any       #: the primitive class
    ins: tuple      #: the input arrays (or Python scalars) of the capture call
    args: tuple     #: the static arguments
    out: Any        #: the capture's output array
    ctx: Any        #: the capture's ctx
    a: list         #: the code names of the inputs


class Rule(NamedTuple):
    forward: Callable  #: forward(b, call) -> output name, or None for the generic path
    vjp: Callable      #: vjp(b, call, gv, need) -> one gradient name (or None) per input


# ------------------------------------------------------------------------------ generic
def generic_forward(b, c):
    """The primitive's own forward on the replay's arrays (allocates; the same maths)."""
    o = b.dynamic("v")
    cx = b.dynamic("ctx")
    arglist = ", ".join(c.a + [b.const(x) for x in c.args])
    b.raw(f"{o}, {cx} = {b.const(c.prim)}.forward({arglist})")
    b.ctxvars[c.k] = cx
    return o


def generic_vjp(b, c, gv, need):
    cx = b.ctxvars.get(c.k)
    if cx is None or not cx.startswith("ctx"):
        from .capture import CaptureError
        raise CaptureError(f"compiled step: no replay rule for the vjp of {c.prim.name!r} here")
    res = [b.dynamic("d") for _ in c.ins]
    b.raw(f"{', '.join(res)}, = {b.const(c.prim)}.vjp({gv}, {cx})")
    return res


GENERIC = Rule(generic_forward, generic_vjp)


# ------------------------------------------------------------------------------ helpers
def _outbuf(b, c, prefix="v"):
    """A buffer name for the output: the capture's own array when it can serve, else None."""
    return b.outbuf(c.out, prefix)


def _is_one(c, dtype) -> bool:
    """c is exactly 1 and multiplying by it keeps ``dtype`` (so x · c = x, bit for bit)."""
    if type(c) in (int, float):
        return c == 1
    return isinstance(c, (np.generic, np.ndarray)) and np.size(c) == 1 and np.ndim(c) == 0 \
        and np.asarray(c).dtype == dtype and c == 1


def _unit_operand(ins, out):
    """For a product with one operand exactly 1: the index of the other operand (x · 1 = x), else None."""
    for i in (0, 1):
        other = ins[1 - i]
        if isinstance(other, (np.ndarray, np.generic)) and np.shape(other) == np.shape(out) \
                and _is_one(ins[i], np.asarray(out).dtype) and np.asarray(other).dtype == np.asarray(out).dtype:
            return 1 - i
    return None


def elementwise(fn):
    """Forward rule of a primitive that is one NumPy call: ``fn(*inputs, out=o)``."""
    def forward(b, c):
        o = _outbuf(b, c)
        if o is not None:
            b.op(fn, c.a, o)
        return o
    return forward


def _geometry(c):
    return [np.shape(x) for x in c.ins], tuple(np.shape(c.out)), np.asarray(c.out).dtype


# ------------------------------------------------------------------------------ arithmetic
def add_vjp(b, c, gv, need):
    shapes, oshape, odt = _geometry(c)
    return [b.unb(gv, shapes[i], oshape, odt) if need[i] else None for i in range(2)]


def sub_vjp(b, c, gv, need):
    shapes, oshape, odt = _geometry(c)
    res = [None, None]
    if need[0]:
        res[0] = b.unb(gv, shapes[0], oshape, odt)
    if need[1]:
        n = b.buf(oshape, odt)
        b.op("neg", [gv], n)
        res[1] = b.unb(n, shapes[1], oshape, odt)
    return res


def mul_forward(b, c):
    one = _unit_operand(c.ins, c.out)
    if one is not None:  # x · 1 = x exactly (Σy of a one-hot row): no kernel, the same buffer
        return c.a[one]
    return elementwise("mul")(b, c)


def mul_vjp(b, c, gv, need):
    shapes, oshape, odt = _geometry(c)
    res = [None, None]
    for i in range(2):
        if need[i]:
            if _is_one(c.ins[1 - i], odt):
                res[i] = b.unb(gv, shapes[i], oshape, odt)  # g · 1 = g exactly
                continue
            n = b.buf(oshape, odt)
            b.op("mul", [gv, c.a[1 - i]], n)
            res[i] = b.unb(n, shapes[i], oshape, odt)
    return res


def div_vjp(b, c, gv, need):
    shapes, oshape, odt = _geometry(c)
    res = [None, None]
    n = b.buf(oshape, odt)
    b.op("div", [gv, c.a[1]], n)  # g / b
    if need[0]:
        res[0] = b.unb(n, shapes[0], oshape, odt)
    if need[1]:  # −(g / b) · out
        t = b.buf(oshape, odt)
        b.op("neg", [n], t)
        b.op("mul", [t, b.name_of(c.out)], t)
        res[1] = b.unb(t, shapes[1], oshape, odt)
    return res


def neg_vjp(b, c, gv, need):
    _, oshape, odt = _geometry(c)
    n = b.buf(oshape, odt)
    b.op("neg", [gv], n)
    return [n]


# ------------------------------------------------------------------------------ activations
def tanh_vjp(b, c, gv, need):
    _, oshape, odt = _geometry(c)
    h = b.name_of(c.out)
    n, t = b.buf(oshape, odt), b.buf(oshape, odt)
    one = b.const(np.array(1.0, odt))  # a 0-d array of the buffer's dtype: the same 1 − h², faster than a float
    b.op("mul", [h, h], t)
    b.op("sub", [one, t], t)
    b.op("mul", [gv, t], n)
    return [n]


def sigmoid_forward(b, c):
    """Sigmoid.forward as elementwise ops: e = exp(−|z|), d = 1 + e, σ(|z|) = 1/d, σ(−|z|) = e/d, then the
    side of 0 picked with a 0/1 mask m: m·big + (1 − m)·small.  Both are finite and ≥ 0, so adding the
    other side's 0 changes no bit: the same numbers as np.where."""
    o = _outbuf(b, c)
    if o is None or not isinstance(c.ctx, tuple) or len(c.ctx) != 2:
        return None
    z = c.a[0]
    shape, dt = np.shape(c.out), np.asarray(c.out).dtype
    e, d, big, small, m, t = (b.buf(shape, dt) for _ in range(6))
    other = b.name(c.ctx[1], "m")
    b.op("abs", [z], e)
    b.op("neg", [e], e)
    b.op("exp", [e], e)
    b.op("add", ["1.0", e], d)
    b.op("div", ["1.0", d], big)
    b.op("div", [e, d], small)
    b.op("ge", [z, "0"], m)
    b.op("mul", [m, big], o)          # h = σ(z)
    b.op("sub", ["1.0", m], t)
    b.op("mul", [t, small], d)
    b.op("add", [o, d], o)
    b.op("mul", [m, small], other)    # σ(−z), kept for the vjp
    b.op("mul", [t, big], d)
    b.op("add", [other, d], other)
    b.ctxvars[c.k] = other
    return o


def sigmoid_vjp(b, c, gv, need):
    other = b.ctxvars.get(c.k)
    if other is None or not other.startswith("m"):
        return generic_vjp(b, c, gv, need)
    _, oshape, odt = _geometry(c)
    n, t = b.buf(oshape, odt), b.buf(oshape, odt)
    b.op("mul", [b.name_of(c.out), other], t)  # g ⊙ (σ(z) σ(−z)), as Sigmoid.vjp
    b.op("mul", [gv, t], n)
    return [n]


def relu_forward(b, c):
    if not b.fresh(c.ctx):
        return None
    o = _outbuf(b, c)
    if o is None:
        return None
    mask = b.name(c.ctx, "m")
    b.op("gt", [c.a[0], "0"], mask)
    b.op("relu", [c.a[0]], o)  # max(z, 0): 0 at −∞, where z · mask would be NaN
    b.ctxvars[c.k] = mask
    return o


def relu_vjp(b, c, gv, need):
    mask = b.ctxvars.get(c.k)
    if mask is None or not mask.startswith("m"):
        return generic_vjp(b, c, gv, need)
    _, oshape, odt = _geometry(c)
    n = b.buf(oshape, odt)
    b.op("mul", [gv, mask], n)
    return [n]


def exp_vjp(b, c, gv, need):
    _, oshape, odt = _geometry(c)
    n = b.buf(oshape, odt)
    b.op("mul", [gv, b.name_of(c.out)], n)
    return [n]


def log_vjp(b, c, gv, need):
    _, oshape, odt = _geometry(c)
    n = b.buf(oshape, odt)
    b.op("div", [gv, c.a[0]], n)
    return [n]


def abs_vjp(b, c, gv, need):
    """g ⊙ sign(a), as Abs.vjp."""
    _, oshape, odt = _geometry(c)
    t, n = b.buf(np.shape(c.ins[0]), np.asarray(c.ins[0]).dtype), b.buf(oshape, odt)
    b.op("sign", [c.a[0]], t)
    b.op("mul", [gv, t], n)
    return [n]


def copy_forward(b, c):
    o = _outbuf(b, c)
    if o is not None:
        b.op("copy", [c.a[0]], o)
    return o


def copy_vjp(b, c, gv, need):
    return [gv]  # ∂L/∂a = g itself, as Copy.vjp (the backward gives each consumer its own memory)


# ------------------------------------------------------------------------------ matmul
def matmul_vjp(b, c, gv, need):
    A, B = c.ins
    a = c.a
    if np.ndim(A) == 1 and np.ndim(B) == 1:  # yᵀz: g·y and g·z
        res = [None, None]
        for i in range(2):
            if need[i]:
                res[i] = b.buf(np.shape(c.ins[i]), np.result_type(*c.ins))
                b.op("mul", [gv, a[1 - i]], res[i])
        return res
    if np.ndim(A) != 2 or np.ndim(B) not in (1, 2):
        return generic_vjp(b, c, gv, need)
    dt = np.result_type(A, B)
    res = [None, None]
    if B.ndim == 1:  # W h: ∂L/∂W = δ hᵀ into a fixed rank-1 buffer, ∂L/∂h = Wᵀ δ a gemv
        if need[0]:
            res[0] = b.buf(A.shape, dt)
            col = b.view(lambda x: x[:, None], gv)
            b.rank1[res[0]] = (gv, a[1], b.op("mul", [col, a[1]], res[0]))
        if need[1]:
            res[1] = b.buf(B.shape, dt)
            b.op("matmul", [b.view(np.transpose, a[0]), gv], res[1])
        return res
    # as MatMul.vjp: a transposed (F-ordered) operand gets its gradient as (·)ᵀ of a C buffer
    T = np.transpose

    def product(operand, operands):  # operands(f) -> the two factors, of the transpose if F-ordered
        f = P._f_order(operand)
        o = b.buf(operand.shape[::-1] if f else operand.shape, dt)
        b.op("matmul", list(operands(f)), o)
        return b.view(T, o) if f else o
    if need[0]:  # ∂L/∂A = g Bᵀ, or (B gᵀ)ᵀ
        res[0] = product(A, lambda f: (a[1], b.view(T, gv)) if f else (gv, b.view(T, a[1])))
    if need[1]:  # ∂L/∂B = Aᵀ g, or (gᵀ A)ᵀ
        res[1] = product(B, lambda f: (b.view(T, gv), a[0]) if f else (b.view(T, a[0]), gv))
    return res


# ------------------------------------------------------------------------------ affine
def affine_forward(b, c):
    """z = W h + b (or H Wᵀ + b) in one buffer, as Affine.forward computes it."""
    if np.ndim(c.ins[1]) not in (1, 2):
        return None
    o = _outbuf(b, c)
    if o is None:
        return None
    W, h, bias = c.a
    if np.ndim(c.ins[1]) == 1:
        b.op("matmul", [W, h], o)
    else:
        b.op("matmul", [h, b.view(np.transpose, W)], o)
    b.op("add", [o, bias], o)
    return o


def affine_vjp(b, c, gv, need):
    """Affine.vjp: δ hᵀ (or Δᵀ H), Wᵀ δ (or Δ W), δ (or Σ rows of Δ)."""
    W, H = c.ins[0], c.ins[1]
    if np.ndim(H) not in (1, 2):
        return generic_vjp(b, c, gv, need)
    dt = np.result_type(W, H)
    _, oshape, odt = _geometry(c)
    res = [None, None, None]
    if H.ndim == 1:
        if need[0]:  # ∂L/∂W = δ hᵀ into a fixed rank-1 buffer
            res[0] = b.buf(W.shape, dt)
            col = b.view(lambda x: x[:, None], gv)
            b.rank1[res[0]] = (gv, c.a[1], b.op("mul", [col, c.a[1]], res[0]))
        if need[1]:
            res[1] = b.buf(H.shape, dt)
            b.op("matmul", [b.view(np.transpose, c.a[0]), gv], res[1])
        if need[2]:
            res[2] = gv
    else:
        if need[0]:
            res[0] = b.buf(W.shape, dt)
            b.op("matmul", [b.view(np.transpose, gv), c.a[1]], res[0])
        if need[1]:
            res[1] = b.buf(H.shape, dt)
            b.op("matmul", [gv, c.a[0]], res[1])
        if need[2]:
            res[2] = b.buf(np.shape(c.ins[2]), odt)
            b.op("add_reduce", [gv], res[2], axis="0")
    return res


# ------------------------------------------------------------------------------ logsumexp
def lse_flat_code(z: str, t: str, s: str, m: str, r: str, ndim: int, size: int) -> str:
    """Replay code for log Σ exp z over all of z, as LogSumExp.forward computes it (the same max, sum
    and log, specialised to the captured shape): the value goes into ``s`` (shape (1,)·ndim),
    t = exp(z − m) into ``t``, and r = Σ t into the local ``r`` for the backward's softmax t / r.
    Inline, not a function: a call costs as much as the arithmetic on ten logits."""
    mx = f"{z}[{z}.argmax()]" if ndim == 1 else f"max_reduce({z}, None)"  # primitives.flat_max
    sm = f"sum({t}.tolist())" if ndim == 1 and size <= P.FLAT_SUM_MAX else f"add_reduce({t}, None)"  # flat_sum
    put = f"{s}[0]" if ndim == 1 else f"{s}.flat[0]"
    return (f"{m} = {mx}\nif not isfinite_({m}): {m} = 0.0\n"  # an all −inf input: (−inf) − (−inf) = nan
            f"sub({z}, {m}, out={t}); exp({t}, out={t})\n{r} = {sm}\n"
            f"{put} = {m} + (log_({r}) if {r} > 0 else np.log({r}))")


def lse_axis(z, axis, t, s, rb):
    """log Σ exp z along ``axis`` into ``s`` (keepdims shape), as LogSumExp.forward computes it;
    t = exp(z − m) and r = Σ t stay in ``t`` and ``rb``."""
    m = z.max(axis=axis, keepdims=True)
    if not np.isfinite(m).all():
        m = np.where(np.isfinite(m), m, 0.0)
    np.subtract(z, m, out=t)
    np.exp(t, out=t)
    np.add.reduce(t, axis=axis, keepdims=True, out=rb)
    np.log(rb, out=s)
    s += m


def label_error(y, k):
    """The error eager's ``cross_entropy`` gives for a label outside [0, k), raised by a replay."""
    y = np.asarray(y)
    raise ValueError(f"y: class labels must lie in [0, {k}), got "
                     + (f"{y}" if y.ndim == 0 else f"values from {y.min()} to {y.max()}"))


# The names the generated NumPy code calls (the replay's globals).
FUNCS = {"lse_axis": lse_axis, "isfinite_": math.isfinite, "log_": math.log, "np": np, "math": math,
         "matmul": np.matmul, "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
         "neg": np.negative, "tanh": np.tanh, "exp": np.exp, "log": np.log, "gt": np.greater,
         "copyto": np.copyto, "add_reduce": np.add.reduce, "max_reduce": np.maximum.reduce,
         "isfinite": np.isfinite, "sqrt": np.sqrt, "label_error": label_error,
         "copy": np.positive, "abs": np.abs, "sign": np.sign, "ge": np.greater_equal,
         "relu": lambda z, out=None: np.maximum(z, 0, out=out)}  # copy(a, out=o): the values of a, as an out= call


def _lse_ok(z, args, out, ctx) -> bool:
    """Use the buffered logsumexp kernel only if it reproduces this capture's value bit for bit."""
    if not isinstance(z, np.ndarray) or z.dtype not in (np.float64, np.float32) or len(args) != 2:
        return False
    axis, keep = args
    lse = ctx[1] if isinstance(ctx, tuple) and len(ctx) == 5 else None
    if not isinstance(lse, np.ndarray) or np.shape(out) != (lse.shape if keep else np.shape(out)):
        return False
    s, t, r = np.empty(lse.shape, lse.dtype), np.empty(z.shape, z.dtype), np.empty(lse.shape, lse.dtype)
    if axis is None or z.ndim == 1:
        ns = dict(FUNCS, z=z, t=t, s=s)
        exec(lse_flat_code("z", "t", "s", "m", "r", z.ndim, z.size), ns)
        r = ns["r"]
    else:
        lse_axis(z, axis, t, s, r)
    return (np.array_equal(s, lse, equal_nan=True) and np.array_equal(t, ctx[3], equal_nan=True)
            and np.array_equal(r, np.broadcast_to(ctx[4], np.shape(r)), equal_nan=True)
            and s.reshape(np.shape(out)).shape == np.shape(out))


def lse_forward(b, c):
    z = c.ins[0]
    if not _lse_ok(z, c.args, c.out, c.ctx):
        return None
    axis, keep = c.args
    lse = c.ctx[1]
    sb = np.empty(lse.shape, lse.dtype)
    s, tn = b.name(sb, "s"), b.buf(z.shape, z.dtype, "t")
    o = s if keep else b.alias_view(sb.reshape(np.shape(c.out)), s)  # a view of the lse buffer
    if axis is None or z.ndim == 1:  # r = Σ t comes back as a scalar, a local of the replay
        rn, mn = b.local("_r"), b.local("_m")
        b.raw(lse_flat_code(c.a[0], tn, s, mn, rn, z.ndim, z.size),
              native=b.make_op("lse_flat", [c.a[0]], s, t=tn, r=rn))
    else:
        rn = b.buf(lse.shape, lse.dtype, "r")
        b.raw(f"lse_axis({c.a[0]}, {b.const(axis)}, {tn}, {s}, {rn})",
              native=b.make_op("lse_axis", [c.a[0]], s, t=tn, r=rn, axis=b.const(axis)))
    b.ctxvars[c.k] = s
    b.lse_parts[c.k] = (tn, rn)
    return o


def lse_vjp(b, c, gv, need):
    lse = b.ctxvars.get(c.k)
    if lse is None or not lse.startswith("s"):
        return generic_vjp(b, c, gv, need)
    _, oshape, odt = _geometry(c)
    axis, keep = c.args
    n = b.buf(np.shape(c.ins[0]), odt)
    gg = gv if keep else b.view(lambda x, _s=b.value(lse).shape: x.reshape(_s), gv)
    # the softmax + cross-entropy gradient: g · t / r, from the forward's buffers as the primitive does
    tn, rn = b.lse_parts[c.k]
    b.op("div", [tn, rn], n)
    if not b.is_ones(gv):  # 1 · e = e exactly: a loss that is the graph's root skips the product
        b.op("mul", [gg, n], n)
    return [n]


def _element(b, nm, i):
    """A 0-d view of element i of the 1-d buffer ``nm``."""
    return b.view(lambda x, _i=i: x[_i:_i + 1].reshape(()), nm)


def _label(b, c):
    """The code name of the call's label array, read at every replay (an input's array, or a constant
    of fn), or None for a Python int label (a value the capture guards)."""
    y = c.args[0]
    if isinstance(y, np.ndarray) and y.dtype.kind in "iu" and y.shape == np.shape(c.ins[0])[:-1]:
        return b.ref(y)
    return None


def cross_entropy_forward(b, c):
    """L = logsumexp(z) − z_y for one example (or L_i = logsumexp(z_i) − z_{i,y_i} per row of a batch),
    as CrossEntropy.forward computes it.  A label array is read at every replay and checked against
    [0, k) as eager's ``cross_entropy`` checks it; a Python int label is the capture's constant."""
    z = c.ins[0]
    if not isinstance(z, np.ndarray) or z.ndim not in (1, 2) or z.size == 0 or not b.fixed_array(c.a[0]):
        return None
    lctx = c.ctx[0]
    lse = lctx[1]
    label = _label(b, c)
    if z.ndim == 2:
        if label is None or not _lse_ok(z, (-1, False), lse.reshape(z.shape[0]), lctx):
            return None
    elif not _lse_ok(z, (None, False), lse.reshape(()), lctx):
        return None
    o = _outbuf(b, c)
    if o is None:
        return None
    k = z.shape[-1]
    sb = np.empty(lse.shape, lse.dtype)
    s, tn = b.name(sb, "s"), b.buf(z.shape, z.dtype, "t")
    if z.ndim == 1:
        rn, mn = b.local("_r"), b.local("_m")
        b.raw(lse_flat_code(c.a[0], tn, s, mn, rn, 1, z.size),
              native=b.make_op("lse_flat", [c.a[0]], s, t=tn, r=rn))
        s0 = b.alias_view(sb.reshape(()), s)
        if label is None:
            b.op("sub", [s0, _element(b, c.a[0], int(c.args[0]))], o)
        else:
            yl = b.local("_y")
            b.raw(f"{yl} = int({label})\nif not 0 <= {yl} < {k}: label_error({yl}, {k})\n"
                  f"sub({s0}, {c.a[0]}[{yl}], out={o})",
                  native=b.make_op("label_sub", [s0, c.a[0], label], o))
            b.ctxvars[("label", c.k)] = (label, yl)
    else:  # lse = log Σ exp along the rows, then lse_i − z_{i, y_i}
        rn = b.buf(lse.shape, lse.dtype, "r")
        b.raw(f"lse_axis({c.a[0]}, -1, {tn}, {s}, {rn})",
              native=b.make_op("lse_axis", [c.a[0]], s, t=tn, r=rn, axis="-1"))
        sv = b.alias_view(sb.reshape(z.shape[0]), s)
        rows = b.const(np.arange(z.shape[0]))
        yl = b.local("_y")
        b.raw(f"{yl} = {label}\nif {yl}.min() < 0 or {yl}.max() >= {k}: label_error({yl}, {k})\n"
              f"sub({sv}, {c.a[0]}[{rows}, {yl}], out={o})",
              native=b.make_op("label_sub", [sv, c.a[0], label], o))
        b.ctxvars[("label", c.k)] = (label, f"{rows}, {yl}")
    b.ctxvars[c.k] = s
    b.lse_parts[c.k] = (tn, rn)
    return o


def cross_entropy_vjp(b, c, gv, need):
    """CrossEntropy.vjp: g ⊙ t / r from the forward's buffers, then − g at the label (of each row)."""
    s = b.ctxvars.get(c.k)
    if s is None or not s.startswith("s"):
        return generic_vjp(b, c, gv, need)
    z = c.ins[0]
    _, _, odt = _geometry(c)
    n = b.buf(np.shape(z), odt)
    tn, rn = b.lse_parts[c.k]
    b.op("div", [tn, rn], n)
    if not b.is_ones(gv):
        gg = gv if z.ndim == 1 else b.view(lambda x, _s=(z.shape[0], 1): x.reshape(_s), gv)
        b.op("mul", [gg, n], n)
    label = b.ctxvars.get(("label", c.k))
    if label is None:
        at = _element(b, n, int(c.args[0]))
        b.op("sub", [at, gv], at)
    else:  # the forward has read and checked the label (same replay, an input nothing writes)
        y, index = label
        b.raw(f"{n}[{index}] -= {gv}", native=b.make_op("label_sub_at", [n, gv, y], n))
    return [n]


# ------------------------------------------------------------------------------ reductions
def reduce_forward(b, c):
    o = _outbuf(b, c)
    if o is None:
        return None
    axis, keep = c.args
    b.op("add_reduce", [c.a[0]], o, axis=b.const(axis), keepdims=repr(keep))
    if c.prim is P.Mean:
        b.op("div", [o, repr(c.ctx[3])], o)
    return o


def reduce_vjp(b, c, gv, need):
    shape, axis, keep = c.ctx[:3]
    _, oshape, odt = _geometry(c)
    src = gv
    if c.prim is P.Mean:
        src = b.buf(oshape, odt)
        b.op("div", [gv, repr(c.ctx[3])], src)
    if not keep and axis is not None:
        src = b.view(lambda x, _a=axis: np.expand_dims(x, _a), src)
    return [b.view(lambda x, _s=shape: np.broadcast_to(x, _s), src)]


# ------------------------------------------------------------------------------ views
def view_forward(b, c):
    """reshape, transpose, basic indexing of a buffer that never moves: a view made once."""
    if isinstance(c.out, np.ndarray) and b.fixed_array(c.a[0]) and np.shares_memory(c.out, c.ins[0]) \
            and (c.prim is not P.GetItem or P._is_basic(c.args[0])):
        return b.alias_view(c.out, c.a[0])
    return None


def reshape_vjp(b, c, gv, need):
    return [b.view(lambda x, _s=c.ctx: x.reshape(_s), gv)]


def transpose_vjp(b, c, gv, need):
    axes = c.ctx
    return [b.view((lambda x: np.transpose(x)) if axes is None
                   else (lambda x, _p=tuple(np.argsort(axes)): np.transpose(x, _p)), gv)]


def getitem_vjp(b, c, gv, need):
    shape, dtype, index = c.ctx
    n, ix = b.buf(shape, dtype), b.const(index)
    if P._is_basic(index):
        b.raw(f"{n}.fill(0); {n}[{ix}] = {gv}")
    else:
        b.raw(f"{n}.fill(0); np.add.at({n}, {ix}, {gv})")
    return [n]


# ------------------------------------------------------------------------------ the table
RULES: dict = {
    P.Add: Rule(elementwise("add"), add_vjp),
    P.Sub: Rule(elementwise("sub"), sub_vjp),
    P.Neg: Rule(elementwise("neg"), neg_vjp),
    P.Mul: Rule(mul_forward, mul_vjp),
    P.Div: Rule(elementwise("div"), div_vjp),
    P.Pow: GENERIC,
    P.MatMul: Rule(elementwise("matmul"), matmul_vjp),
    P.Affine: Rule(affine_forward, affine_vjp),
    P.Tanh: Rule(elementwise("tanh"), tanh_vjp),
    P.Sigmoid: Rule(sigmoid_forward, sigmoid_vjp),
    P.Relu: Rule(relu_forward, relu_vjp),
    P.Exp: Rule(elementwise("exp"), exp_vjp),
    P.Abs: Rule(elementwise("abs"), abs_vjp),
    P.Copy: Rule(copy_forward, copy_vjp),
    # no buffered form yet: the primitive's own forward and vjp (allocating, the same bits)
    P.PowT: GENERIC,
    P.Sqrt: GENERIC,
    P.Clamp: GENERIC,
    P.Max: GENERIC,
    P.Compare: GENERIC,
    P.Log: Rule(elementwise("log"), log_vjp),
    P.LogSumExp: Rule(lse_forward, lse_vjp),
    P.CrossEntropy: Rule(cross_entropy_forward, cross_entropy_vjp),
    P.Sum: Rule(reduce_forward, reduce_vjp),
    P.Mean: Rule(reduce_forward, reduce_vjp),
    P.Reshape: Rule(view_forward, reshape_vjp),
    P.Transpose: Rule(view_forward, transpose_vjp),
    P.GetItem: Rule(view_forward, getitem_vjp),
    # the building blocks of second-order backward passes, which a capture refuses: never replayed
    P.Scatter: GENERIC,
    P.SumTo: GENERIC,
    P.BroadcastTo: GENERIC,
}
