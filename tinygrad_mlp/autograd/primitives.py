"""The primitive ops: each one's forward and vector-Jacobian product, side by side.

Every primitive is a class with static methods; the first two, in plain NumPy, are the hot path:

* ``forward(*arrays, *args) -> (out, ctx)`` computes the output and keeps in
  ``ctx`` exactly what the backward pass needs;
* ``vjp(g, ctx) -> tuple`` maps the upstream gradient ``g = ∂L/∂out`` to one
  gradient ``∂L/∂input`` per array input (in input order).

Notation follows the practical: for ``out = f(x)`` and a scalar loss ``L``,
``∂L/∂x = (∂out/∂x)ᵀ ∂L/∂out``.  Elementwise ops broadcast as NumPy does, so
their vjp sums each gradient back to its input's shape (:func:`unbroadcast`).

A third is used only by ``backward(create_graph=True)`` and the transforms of
:mod:`tinygrad_mlp.autograd.transforms`:

* ``vjp_t(g, out, rec) -> tuple`` is the same vjp written in Tensor ops, so the
  gradient it returns is itself on the tape and can be differentiated again.

The table :data:`PRIMITIVES` maps names to classes; the tape records the class.
Composite ops (softmax, log_softmax, the losses) are *not* primitives: they are
written from these in :mod:`tinygrad_mlp.functional`.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["PRIMITIVES", "unbroadcast", "sum_to", "broadcast_to"]


_max, _sum = np.maximum.reduce, np.add.reduce


# A single example's logits are a handful of numbers, where a ufunc reduction's call costs ~0.8 µs and
# the arithmetic nothing: these two take a quarter of that.  The compiled replay calls the same two,
# so eager and replayed steps keep the same bits.
def flat_max(z: np.ndarray):
    """max over all of z (NaN if z holds one, as maximum.reduce gives): argmax, then one index."""
    return z[z.argmax()] if z.ndim == 1 else _max(z, None)


FLAT_SUM_MAX = 64


def flat_sum(t: np.ndarray):
    """Σ over all of t: a vector of up to FLAT_SUM_MAX entries left to right in Python floats
    (double precision, also for float32 t), longer ones by NumPy's pairwise add.reduce."""
    return sum(t.tolist()) if t.ndim == 1 and t.size <= FLAT_SUM_MAX else _sum(t, None)


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``g`` over the axes that broadcasting added or stretched, giving ``shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead > 0:
        g = g.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    return g


def _shape(x):
    # Python scalars are constants without a shape; their gradient is never used.
    return getattr(x, "shape", ())


class Primitive:
    """Base class: a namespace for one op's forward and vjp."""

    name = "?"
    nin = 1  # number of array inputs


class Add(Primitive):
    """out = a + b.   ∂L/∂a = g,  ∂L/∂b = g (each summed back to its shape)."""

    name, nin = "add", 2

    @staticmethod
    def forward(a, b):
        return a + b, (getattr(a, "shape", ()), getattr(b, "shape", ()))

    @staticmethod
    def vjp(g, ctx):
        sa, sb = ctx
        return unbroadcast(g, sa), unbroadcast(g, sb)

    @staticmethod
    def vjp_t(g, out, rec):
        sa, sb = rec.ctx
        na, nb = _needs(rec)
        return (sum_to(g, sa) if na else None), (sum_to(g, sb) if nb else None)


class Sub(Primitive):
    """out = a − b.   ∂L/∂a = g,  ∂L/∂b = −g."""

    name, nin = "sub", 2

    @staticmethod
    def forward(a, b):
        return a - b, (_shape(a), _shape(b))

    @staticmethod
    def vjp(g, ctx):
        sa, sb = ctx
        return unbroadcast(g, sa), unbroadcast(-g, sb)

    @staticmethod
    def vjp_t(g, out, rec):
        sa, sb = rec.ctx
        na, nb = _needs(rec)
        return (sum_to(g, sa) if na else None), (sum_to(-g, sb) if nb else None)


class Neg(Primitive):
    """out = −a.   ∂L/∂a = −g."""

    name = "neg"

    @staticmethod
    def forward(a):
        return -a, None

    @staticmethod
    def vjp(g, ctx):
        return (-g,)

    @staticmethod
    def vjp_t(g, out, rec):
        return (-g,)


class Mul(Primitive):
    """out = a ⊙ b.   ∂L/∂a = g ⊙ b,  ∂L/∂b = g ⊙ a."""

    name, nin = "mul", 2

    @staticmethod
    def forward(a, b):
        return a * b, (a, b)

    @staticmethod
    def vjp(g, ctx):
        a, b = ctx
        return unbroadcast(g * b, _shape(a)), unbroadcast(g * a, _shape(b))

    @staticmethod
    def vjp_t(g, out, rec):
        a, b = _operands(rec)
        na, nb = _needs(rec)
        return (sum_to(g * b, _shape(a)) if na else None), (sum_to(g * a, _shape(b)) if nb else None)


class Div(Primitive):
    """out = a / b.   ∂L/∂a = g / b,  ∂L/∂b = −g ⊙ a / b²."""

    name, nin = "div", 2

    @staticmethod
    def forward(a, b):
        out = a / b
        return out, (a, b, out)

    @staticmethod
    def vjp(g, ctx):
        a, b, out = ctx
        ga = g / b
        return unbroadcast(ga, _shape(a)), unbroadcast(-ga * out, _shape(b))

    @staticmethod
    def vjp_t(g, out, rec):
        a, b = _operands(rec)
        na, nb = _needs(rec)
        ga = g / b
        return (sum_to(ga, _shape(a)) if na else None), (sum_to(-(ga * out), _shape(b)) if nb else None)


class Pow(Primitive):
    """out = aᵖ for a scalar exponent p.   ∂L/∂a = g ⊙ p a^(p−1),  and 0 for p = 0.

    For p = 0 the derivative of the constant a⁰ = 1 is 0 everywhere, also at a = 0, where the
    general formula would give 0 · 0⁻¹ = NaN (and a RuntimeWarning): PyTorch's convention too.
    """

    name = "pow"

    @staticmethod
    def forward(a, p):
        return a**p, (a, p)

    @staticmethod
    def vjp(g, ctx):
        a, p = ctx
        if p == 2:
            return (g * (2.0 * a),)
        if p == 0:
            return (np.zeros(np.broadcast_shapes(np.shape(g), np.shape(a)), np.result_type(g, a)),)
        if p == 1:
            return (g * np.ones_like(a),)
        return (g * (p * a ** (p - 1)),)

    @staticmethod
    def vjp_t(g, out, rec):
        a, p = rec.parents[0], rec.ctx[1]
        if p == 0:  # a constant: no gradient, and no 0 · 0⁻¹ at a = 0
            return (g * np.zeros(a.shape, a.dtype),)
        if p == 1:
            return (g,)
        return (g * (2.0 * a) if p == 2 else g * (p * a ** (p - 1)),)


class PowT(Primitive):
    """out = aᵇ with a tensor (or a constant) exponent b, elementwise and broadcast.

    ∂L/∂a = g ⊙ b a^(b−1)   (0 where b = 0),
    ∂L/∂b = g ⊙ aᵇ log a    (0 where a = 0 and b ≥ 0: the limit of aᵇ log a; PyTorch's convention).
    ``2 ** x`` is this op with the constant base 2.
    """

    name, nin = "pow_tensor", 2

    @staticmethod
    def forward(a, b):
        out = a**b
        return out, (a, b, out)

    @staticmethod
    def vjp(g, ctx):
        a, b, out = ctx
        with np.errstate(divide="ignore", invalid="ignore"):
            da = np.where(b == 0, 0.0, b * a ** (b - 1)) * g
            # log of a constant base (2 ** x) in the output's dtype: np.log(2) alone is a float64
            db = np.where((a == 0) & (b >= 0), 0.0, out * np.log(np.asarray(a, np.result_type(out, g)))) * g
        return unbroadcast(da, _shape(a)), unbroadcast(db, _shape(b))

    @staticmethod
    def vjp_t(g, out, rec):
        # The vjp's conventions as constant masks, only where the formula itself breaks down (a = 0):
        # there the base is replaced by 1, so that no 0⁻¹ or log 0 enters the recorded graph.  Where
        # b = 0 and a ≠ 0 the formula already gives 0 and keeps its derivative in b.
        a, b = _operands(rec)
        na, nb = _needs(rec)
        av, bv = np.asarray(rec.ctx[0]), np.asarray(rec.ctx[1])
        ga = gb = None
        if na:
            keep = np.asarray(~((bv == 0) & (av == 0)))
            ga = sum_to(g * (b * _where_one(a, keep) ** (b - 1)) * keep, _shape(rec.ctx[0]))
        if nb:
            keep = np.asarray(~((av == 0) & (bv >= 0)))
            log_a = (_where_one(a, keep).log() if isinstance(a, _tensor.Tensor)  # a constant base (2 ** x):
                     else np.log(np.where(keep, av, 1.0)).astype(rec.ctx[2].dtype))  # in the output's dtype
            gb = sum_to(g * (out * log_a) * keep, _shape(rec.ctx[1]))
        return ga, gb


class MatMul(Primitive):
    """out = A B (NumPy ``@`` rules for vectors, matrices and stacks).

    For matrices: ∂L/∂A = g Bᵀ and ∂L/∂B = Aᵀ g.  The practical's
    ∂L/∂W^[l] = δ^[l] h^[l−1]ᵀ is the matrix·vector case: an outer product.
    """

    name, nin = "matmul", 2

    @staticmethod
    def forward(a, b, need=(True, True)):
        # ``need`` says which operands require a gradient: a constant one (the input x) gets none.
        return a @ b, (a, b, need)

    @staticmethod
    def vjp(g, ctx):
        a, b, (need_a, need_b) = ctx
        if a.ndim == 2 and b.ndim == 1:  # W h: the per-example layer; δ hᵀ is an outer product
            return (g[:, None] * b if need_a else None), (a.T @ g if need_b else None)
        if a.ndim == 2 and b.ndim == 2:
            # Each gradient takes its operand's memory order: the batch layer's Wᵀ is a transposed view,
            # so its gradient is computed as (gᵀ A)ᵀ and W.grad comes out C-ordered, like W, for a
            # contiguous update (Aᵀ g would leave W.grad strided, and every pass over it slower).
            ga = gb = None
            if need_a:
                ga = (b @ g.T).T if _f_order(a) else g @ b.T
            if need_b:
                gb = (g.T @ a).T if _f_order(b) else a.T @ g
            return ga, gb
        if a.ndim == 1 and b.ndim == 1:  # yᵀz: a dot product
            return (g * b if need_a else None), (g * a if need_b else None)
        if a.ndim == 1 and b.ndim == 2:
            return b @ g, a[:, None] * g
        # Stacks: promote vectors to matrices, then sum broadcast batch axes away.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g.reshape(np.matmul(a2[..., :1, :], b2[..., :, :1]).shape[:-2] + (a2.shape[-2], b2.shape[-1]))
        ga = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
        return ga, gb

    @staticmethod
    def vjp_t(g, out, rec):
        a, b = rec.parents  # the Tensor's @ wraps a constant operand, so both are Tensors
        na, nb = _needs(rec)
        if a.ndim == 2 and b.ndim == 1:  # δ hᵀ as a broadcast product (n, 1) ⊙ (1, k)
            return (g.reshape(-1, 1) * b.reshape(1, -1) if na else None), (a.T @ g if nb else None)
        if a.ndim == 2 and b.ndim == 2:
            return (g @ b.T if na else None), (a.T @ g if nb else None)
        if a.ndim == 1 and b.ndim == 1:
            return (g * b if na else None), (g * a if nb else None)
        if a.ndim == 1 and b.ndim == 2:
            return (b @ g if na else None), (a.reshape(-1, 1) * g.reshape(1, -1) if nb else None)
        a2 = a.reshape(1, -1) if a.ndim == 1 else a
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b
        g2 = g.reshape(np.matmul(a2.data[..., :1, :], b2.data[..., :, :1]).shape[:-2]
                       + (a2.shape[-2], b2.shape[-1]))
        ga = sum_to(g2 @ _swap_last(b2), a2.shape).reshape(a.shape) if na else None
        gb = sum_to(_swap_last(a2) @ g2, b2.shape).reshape(b.shape) if nb else None
        return ga, gb


class Affine(Primitive):
    """z = W h + b: one layer's pre-activation, the practical's z^[l] = W^[l] h^[l−1] + b^[l].

    W has shape (out, in).  For one example h (a vector), ∂L/∂W = δ hᵀ (an outer product),
    ∂L/∂h = Wᵀ δ and ∂L/∂b = δ, where δ = ∂L/∂z.  For a batch H (rows are examples) z = H Wᵀ + b,
    so ∂L/∂W = Δᵀ H (the sum over examples of δ hᵀ), ∂L/∂H = Δ W and ∂L/∂b = Σ over rows of Δ.
    One record instead of matmul + add (and a transpose for a batch), with the same floating-point
    operations as those three, so the numbers are bit for bit theirs.  ``need_h`` is False when h is
    a constant (the input x): its gradient is then not computed.
    """

    name, nin = "affine", 3

    @staticmethod
    def forward(W, h, b, need_h=True):
        if h.ndim == 1:
            z = W @ h
        else:
            z = h @ W.T
        z += b
        return z, (W, h, need_h)

    @staticmethod
    def vjp(g, ctx):
        W, h, need_h = ctx
        if h.ndim == 1:
            return g[:, None] * h, (W.T @ g if need_h else None), g
        return g.T @ h, (g @ W if need_h else None), g.sum(axis=0)

    @staticmethod
    def vjp_t(g, out, rec):
        W, h, b = rec.parents
        nW, nh, nb = _needs(rec)
        if h.ndim == 1:  # δ hᵀ as a broadcast product (out, 1) ⊙ (1, in)
            return (g.reshape(-1, 1) * h.reshape(1, -1) if nW else None), (W.T @ g if nh else None), \
                (g if nb else None)
        return (g.T @ h if nW else None), (g @ W if nh else None), (g.sum(axis=0) if nb else None)


def _f_order(x: np.ndarray) -> bool:
    return x.flags.f_contiguous and not x.flags.c_contiguous


class Tanh(Primitive):
    """h = tanh(z).   ∂L/∂z = g ⊙ (1 − h²)   (not tanh², as the sheet's derivation ends)."""

    name = "tanh"

    @staticmethod
    def forward(z):
        h = np.tanh(z)
        return h, h

    @staticmethod
    def vjp(g, h):
        t = h * h
        if type(t) is not np.ndarray or t.shape != g.shape or t.dtype != g.dtype:  # 0-d, broadcast, mixed dtypes
            return (g * (1.0 - t),)
        # the same three roundings into one buffer: a batch of hidden units allocates once, not thrice
        np.subtract(1.0, t, out=t)
        return (np.multiply(g, t, out=t),)

    @staticmethod
    def vjp_t(g, out, rec):
        return (g * (1.0 - out * out),)


class Sigmoid(Primitive):
    """h = σ(z) = 1 / (1 + e^(−z)).   ∂L/∂z = g ⊙ σ(z) σ(−z)   (= σ(z)(1 − σ(z))).

    Both tails are computed from e = exp(−|z|) ∈ (0, 1], which never overflows:
    σ(|z|) = 1 / (1 + e) and σ(−|z|) = e / (1 + e), each a few ulp from the true value
    over the whole float range (σ(−40) = 4.2e-18, not 0).  The derivative is the product
    σ(z) σ(−z) of two such values, so it keeps its tail on both sides (σ'(±50) = 1.9e-22),
    where 1 − σ(z) would cancel to 0 for large positive z.  ctx = (σ(z), σ(−z)).
    """

    name = "sigmoid"

    @staticmethod
    def forward(z):
        e = np.exp(-np.abs(z))
        d = 1.0 + e
        big = 1.0 / d   # σ(|z|)
        small = e / d   # σ(−|z|)
        pos = z >= 0
        h = np.where(pos, big, small)
        return h, (h, np.where(pos, small, big))

    @staticmethod
    def vjp(g, ctx):
        h, c = ctx
        return (g * (h * c),)

    @staticmethod
    def vjp_t(g, out, rec):
        return (g * (out * (1.0 - out)),)


class Relu(Primitive):
    """h = max(z, 0).   ∂L/∂z = g ⊙ 1[z > 0]   (0 at z = 0; relu(−∞) = 0, NaN stays NaN)."""

    name = "relu"

    @staticmethod
    def forward(z):
        mask = z > 0
        # maximum, not z · mask: −∞ · 0 would be NaN (maximum keeps a NaN input NaN)
        return np.maximum(z, 0), mask

    @staticmethod
    def vjp(g, mask):
        return (g * mask,)

    @staticmethod
    def vjp_t(g, out, rec):
        return (g * rec.ctx,)  # the mask is a constant: relu'' = 0 away from the kink


class Exp(Primitive):
    """out = eᶻ.   ∂L/∂z = g ⊙ eᶻ.   Overflows to inf (NumPy's RuntimeWarning) past z ≈ 709.78 in float64."""

    name = "exp"

    @staticmethod
    def forward(z):
        out = np.exp(z)
        return out, out

    @staticmethod
    def vjp(g, out):
        return (g * out,)

    @staticmethod
    def vjp_t(g, out, rec):
        return (g * out,)


class Log(Primitive):
    """out = log z.   ∂L/∂z = g / z."""

    name = "log"

    @staticmethod
    def forward(z):
        return np.log(z), z

    @staticmethod
    def vjp(g, z):
        return (g / z,)

    @staticmethod
    def vjp_t(g, out, rec):
        return (g / rec.parents[0],)


class Abs(Primitive):
    """out = |a|.   ∂L/∂a = g ⊙ sign(a)   (0 at a = 0, as PyTorch's subgradient)."""

    name = "abs"

    @staticmethod
    def forward(a):
        return np.abs(a), a

    @staticmethod
    def vjp(g, a):
        return (g * np.sign(a),)

    @staticmethod
    def vjp_t(g, out, rec):
        return (g * np.sign(rec.ctx),)  # sign is piecewise constant: |a|'' = 0 away from 0


class Sqrt(Primitive):
    """out = √a.   ∂L/∂a = g / (2√a)   (+∞ at a = 0, NaN below: the derivative's own values)."""

    name = "sqrt"

    @staticmethod
    def forward(a):
        out = np.sqrt(a)
        return out, out

    @staticmethod
    def vjp(g, out):
        with np.errstate(divide="ignore"):
            return (g / (2.0 * out),)

    @staticmethod
    def vjp_t(g, out, rec):
        return (g / (out * 2.0),)


class Clamp(Primitive):
    """out = min(max(a, lo), hi) (either bound may be None).

    ∂L/∂a = g ⊙ 1[lo ≤ a ≤ hi]: the gradient passes where a is inside the closed interval,
    bounds included, as PyTorch's clamp does; it is 0 where a bound took over.
    """

    name = "clamp"

    @staticmethod
    def forward(a, lo=None, hi=None):
        out = a
        inside = np.ones(np.shape(a), dtype=bool)
        if lo is not None:
            out = np.maximum(out, lo)
            inside &= a >= lo
        if hi is not None:
            out = np.minimum(out, hi)
            inside &= a <= hi
        if out is a:
            out = np.array(a, copy=True)
        return out.astype(np.result_type(a), copy=False), inside

    @staticmethod
    def vjp(g, inside):
        return (g * inside,)

    @staticmethod
    def vjp_t(g, out, rec):
        return (g * rec.ctx,)


class Max(Primitive):
    """out = max z along ``axis`` (all of z for ``axis=None``).

    ∂L/∂zᵢ = g where zᵢ is the maximum, 0 elsewhere.  Ties follow PyTorch: a reduction along one
    axis (``max(dim)``) sends g to the first maximal entry, the one its indices name; a reduction
    over everything (``max()``) shares g evenly among the tied entries.  ``min`` is −max(−z).
    ctx = (weights, axis, keepdims) with weights summing to 1 over each reduced slice.
    """

    name = "max"

    @staticmethod
    def forward(z, axis=None, keepdims=False):
        if axis is None:
            out = np.max(z, keepdims=keepdims)
            hit = z == np.max(z)
            if np.isnan(out).any():  # NaN is the max: the gradient goes to the NaNs
                hit = np.isnan(z)
            w = hit.astype(np.result_type(z, np.float32))
            w /= w.sum()
        else:
            idx = np.expand_dims(np.argmax(z, axis=axis), axis)
            out = np.take_along_axis(z, idx, axis)
            w = np.zeros(z.shape, dtype=bool)
            np.put_along_axis(w, idx, True, axis)
            if not keepdims:
                out = np.squeeze(out, axis)
        return out, (w, axis, keepdims)

    @staticmethod
    def vjp(g, ctx):
        w, axis, keepdims = ctx
        if axis is not None and not keepdims:
            g = np.expand_dims(g, axis)
        return (g * w,)

    @staticmethod
    def vjp_t(g, out, rec):
        w, axis, keepdims = rec.ctx  # constant weights: the maximum's place does not move under a nudge
        if axis is not None and not keepdims:
            g = g.reshape(_kept_shape(w.shape, axis))
        return (g * w,)


class Copy(Primitive):
    """out = a copy of a (``clone``).   ∂L/∂a = g."""

    name = "copy"

    @staticmethod
    def forward(a):
        return np.array(a, copy=True), None

    @staticmethod
    def vjp(g, ctx):
        return (g,)

    @staticmethod
    def vjp_t(g, out, rec):
        return (g,)


class Compare(Primitive):
    """out = a ∘ b elementwise for ∘ one of ==, !=, <, <=, >, >= (``op`` names the ufunc): a bool array.

    Piecewise constant, so it has no gradient: Tensor applies it with grad mode off (PyTorch's
    comparisons give a tensor that does not require grad).  The vjp exists for completeness: zeros.
    """

    name, nin = "compare", 2
    OPS = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
           "gt": np.greater, "ge": np.greater_equal}

    @staticmethod
    def forward(a, b, op):
        return Compare.OPS[op](a, b), (_shape(a), _shape(b))

    @staticmethod
    def vjp(g, ctx):
        sa, sb = ctx
        return np.zeros(sa, g.dtype), np.zeros(sb, g.dtype)

    @staticmethod
    def vjp_t(g, out, rec):
        return None, None


class LogSumExp(Primitive):
    """out = log Σⱼ exp(zⱼ) along ``axis``, shifted by m = max z so no exp overflows.

    With t = exp(z − m) and r = Σⱼ tⱼ:  out = m + log r.
    ∂L/∂zᵢ = g ⊙ softmax(z)ᵢ = g ⊙ tᵢ / r, from the forward's own t and r (exact even where
    |z| is so large that z − out would lose digits).
    """

    name = "logsumexp"

    @staticmethod
    def forward(z, axis=None, keepdims=False):
        if axis is None or z.ndim == 1:
            # One reduction over everything (a single example's logits): scalars skip the axis
            # bookkeeping, which costs more than the arithmetic on a tiny vector.
            m = flat_max(z)
            if not math.isfinite(m):
                if m == math.inf:  # log Σ exp is +∞; its slope is NaN at the +∞ entries, 0 elsewhere (PyTorch's)
                    t = np.where(z == np.inf, np.nan, 0.0).astype(z.dtype)
                    lse = np.array(np.inf, dtype=z.dtype).reshape((1,) * z.ndim)
                    return (lse if keepdims else lse.reshape(())), (z, lse, keepdims, t, 1.0)
                m = 0.0  # an all −inf input would give (−inf) − (−inf) = nan
            t = np.exp(z - m)
            r = flat_sum(t)
            val = m + (math.log(r) if r > 0 else np.log(r))  # np.log keeps log 0 = −inf, nan = nan
            lse = np.array(val, dtype=z.dtype).reshape((1,) * z.ndim)
            out = lse if keepdims else lse.reshape(())
            return out, (z, lse, keepdims, t, r)
        m = z.max(axis=axis, keepdims=True)
        pinf = None
        if not np.isfinite(m).all():
            pinf = m == np.inf
            m = np.where(np.isfinite(m), m, 0.0)  # an all −inf row would give (−inf) − (−inf) = nan
        t = np.exp(z - m)
        r = t.sum(axis=axis, keepdims=True)
        lse = np.log(r)
        lse += m
        if pinf is not None and pinf.any():  # rows holding +∞: lse = +∞, slope NaN at the +∞ entries, 0 elsewhere
            t = np.where(pinf, np.where(z == np.inf, np.nan, 0.0), t).astype(t.dtype)
            r = np.where(pinf, 1.0, r).astype(r.dtype)
            lse = np.where(pinf, np.inf, lse).astype(lse.dtype)
        out = lse if keepdims else lse.squeeze(axis)
        return out, (z, lse, keepdims, t, r)

    @staticmethod
    def vjp(g, ctx):
        _, lse, keepdims, t, r = ctx
        if not keepdims and g.ndim:  # a 0-d g broadcasts as it is
            g = g.reshape(lse.shape)
        return (g * (t / r),)

    @staticmethod
    def vjp_t(g, out, rec):
        # softmax(z) = exp(z − out), written in Tensor ops so that it is differentiable again.
        kept = rec.ctx[1].shape
        return (g.reshape(kept) * (rec.parents[0] - out.reshape(kept)).exp(),)


class CrossEntropy(Primitive):
    """Softmax cross-entropy with integer labels: L = logsumexp(z) − z_y per example.

    For one example z (a vector of logits) and its class y, L = −log p_y with p = softmax(z), and
    ∂L/∂z = g ⊙ (p − e_y): the practical's δ^[L] = p − y for a one-hot y.  For a batch (rows of z,
    a vector of labels) each row is one example's loss.  One record instead of logsumexp, an index
    and a subtraction; logsumexp's own forward and vjp run inside, so the numbers are theirs bit for bit.
    """

    name = "cross_entropy"

    @staticmethod
    def forward(z, y):
        if z.ndim == 1:
            lse, ctx = LogSumExp.forward(z)
            return lse - z[y], (ctx, y)
        lse, ctx = LogSumExp.forward(z, -1)
        rows = np.arange(z.shape[0])
        return lse - z[rows, y], (ctx, (rows, y))

    @staticmethod
    def vjp(g, ctx):
        lctx, index = ctx
        (d,) = LogSumExp.vjp(g, lctx)  # g ⊙ p
        d[index] -= g  # g ⊙ (p − e_y)
        return (d,)

    @staticmethod
    def vjp_t(g, out, rec):
        # g ⊙ (softmax(z) − e_y) in Tensor ops: softmax from a recorded logsumexp, e_y scattered.
        z = rec.parents[0]
        lctx, index = rec.ctx
        axis = None if z.ndim == 1 else -1
        lse = _tensor.apply(LogSumExp, (z,), (z.data,), (axis, True))
        gk = g if z.ndim == 1 else g.reshape(-1, 1)
        return (gk * (z - lse).exp() - _apply(Scatter, g, z.shape, index),)


class Sum(Primitive):
    """out = Σ z along ``axis``.   ∂L/∂z = g broadcast back to z's shape."""

    name = "sum"

    @staticmethod
    def forward(z, axis=None, keepdims=False):
        return z.sum(axis=axis, keepdims=keepdims), (z.shape, axis, keepdims)

    @staticmethod
    def vjp(g, ctx):
        shape, axis, keepdims = ctx
        if not keepdims and axis is not None:
            g = np.expand_dims(g, axis)
        return (np.broadcast_to(g, shape),)

    @staticmethod
    def vjp_t(g, out, rec):
        shape, axis, keepdims = rec.ctx
        if not keepdims and axis is not None:
            g = g.reshape(_kept_shape(shape, axis))
        return (broadcast_to(g, shape),)


class Mean(Primitive):
    """out = (1/n) Σ z along ``axis``, n the number of summed entries.   ∂L/∂z = g / n, broadcast."""

    name = "mean"

    @staticmethod
    def forward(z, axis=None, keepdims=False):
        out = z.mean(axis=axis, keepdims=keepdims)
        n = z.size // max(np.size(out), 1) if z.size else 1
        return out, (z.shape, axis, keepdims, n)

    @staticmethod
    def vjp(g, ctx):
        shape, axis, keepdims, n = ctx
        if not keepdims and axis is not None:
            g = np.expand_dims(g, axis)
        return (np.broadcast_to(g / n, shape),)

    @staticmethod
    def vjp_t(g, out, rec):
        shape, axis, keepdims, n = rec.ctx
        if not keepdims and axis is not None:
            g = g.reshape(_kept_shape(shape, axis))
        return (broadcast_to(g / n, shape),)


class Reshape(Primitive):
    """out = z viewed with a new shape.   ∂L/∂z = g reshaped back."""

    name = "reshape"

    @staticmethod
    def forward(z, shape):
        return z.reshape(shape), z.shape

    @staticmethod
    def vjp(g, shape):
        return (g.reshape(shape),)

    @staticmethod
    def vjp_t(g, out, rec):
        return (g.reshape(rec.ctx),)


class Transpose(Primitive):
    """out = zᵀ, or z's axes permuted by ``axes``.   ∂L/∂z = g permuted back."""

    name = "transpose"

    @staticmethod
    def forward(z, axes=None):
        return np.transpose(z, axes), axes

    @staticmethod
    def vjp(g, axes):
        if axes is None:
            return (np.transpose(g),)
        return (np.transpose(g, np.argsort(axes)),)

    @staticmethod
    def vjp_t(g, out, rec):
        axes = rec.ctx
        return (_apply(Transpose, g, None if axes is None else tuple(int(i) for i in np.argsort(axes))),)


class GetItem(Primitive):
    """out = z[index] (integers, slices, integer arrays).

    ∂L/∂z = a zero array with g scattered into the indexed places; indices that
    repeat add up (``np.add.at``), as a tensor used twice gets both gradients.
    """

    name = "getitem"

    @staticmethod
    def forward(z, index):
        return z[index], (z.shape, z.dtype, index)

    @staticmethod
    def vjp(g, ctx):
        shape, dtype, index = ctx
        out = np.zeros(shape, dtype=dtype)
        if _is_basic(index):
            out[index] = g
        else:
            np.add.at(out, index, g)
        return (out,)

    @staticmethod
    def vjp_t(g, out, rec):
        shape, _, index = rec.ctx
        return (_apply(Scatter, g, shape, index),)


def _is_basic(index) -> bool:
    """Basic indexing (ints and slices) never selects an element twice."""
    if type(index) is int:  # the common case (a label picking one logit) skips the scan
        return True
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


class Scatter(Primitive):
    """out = a zeros array of ``shape`` with g added into the places ``index`` selects
    (GetItem's vjp as an op of its own, so that it can be differentiated again).

    ∂L/∂g = (∂L/∂out)[index]: gathering is the adjoint of scattering.
    """

    name = "scatter"

    @staticmethod
    def forward(g, shape, index):
        out = np.zeros(shape, dtype=g.dtype)
        if _is_basic(index):
            out[index] = g
        else:
            np.add.at(out, index, g)
        return out, index

    @staticmethod
    def vjp(g, index):
        return (g[index],)

    @staticmethod
    def vjp_t(g, out, rec):
        return (g[rec.ctx],)


class SumTo(Primitive):
    """out = z summed over the axes broadcasting added or stretched, down to ``shape``
    (the vjp of every broadcasting op, as an op).   ∂L/∂z = g broadcast back to z's shape."""

    name = "sum_to"

    @staticmethod
    def forward(z, shape):
        return unbroadcast(z, shape), z.shape

    @staticmethod
    def vjp(g, shape):
        return (np.broadcast_to(g, shape),)

    @staticmethod
    def vjp_t(g, out, rec):
        return (broadcast_to(g, rec.ctx),)


class BroadcastTo(Primitive):
    """out = z broadcast to ``shape`` (a read-only view).   ∂L/∂z = g summed back to z's shape."""

    name = "broadcast_to"

    @staticmethod
    def forward(z, shape):
        return np.broadcast_to(z, shape), np.shape(z)

    @staticmethod
    def vjp(g, shape):
        return (unbroadcast(g, shape),)

    @staticmethod
    def vjp_t(g, out, rec):
        return (sum_to(g, rec.ctx),)


# ------------------------------------------------------------------ second order
# Each primitive's ``vjp_t(g, out, rec)`` is its vjp written in Tensor ops: ``g`` is ∂L/∂out as a
# Tensor, ``out`` the op's output Tensor and ``rec`` its Record (parents, ctx, args).  Only the
# create_graph walk (:mod:`tinygrad_mlp.autograd.higher`) calls it; the ops it applies are recorded
# like any others, so the gradient it returns can be differentiated again.  It returns None for an
# input that needs no gradient.  The first-order walk never touches it.

def _needs(rec) -> tuple:
    return tuple(p is not None and p.requires_grad for p in rec.parents)


def _operands(rec) -> tuple:
    """Each input as its Tensor, or as the constant array or number the forward saved in ctx[:2]."""
    return tuple(c if p is None else p for p, c in zip(rec.parents, rec.ctx))


def _kept_shape(shape: tuple, axis) -> tuple:
    axes = {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _swap_last(t):
    axes = list(range(t.ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return _apply(Transpose, t, tuple(axes))


def _where_one(x, keep):
    """x where ``keep`` (a constant mask), 1 elsewhere, differentiable in x where kept."""
    if keep.all():
        return x
    if not isinstance(x, _tensor.Tensor):
        return np.where(keep, x, 1).astype(np.result_type(x), copy=False)
    return x * keep + (~keep).astype(x.dtype)


def _apply(prim, t, *args):
    return _tensor.apply(prim, (t,), (t.data,), args)


def sum_to(g, shape: tuple):
    """Tensor ``g`` summed down to ``shape`` (recorded as :class:`SumTo`); g itself when it has that shape."""
    return g if g.shape == tuple(shape) else _apply(SumTo, g, tuple(shape))


def broadcast_to(g, shape: tuple):
    """Tensor ``g`` broadcast to ``shape`` (recorded as :class:`BroadcastTo`)."""
    return g if g.shape == tuple(shape) else _apply(BroadcastTo, g, tuple(shape))


PRIMITIVES: dict[str, type[Primitive]] = {
    p.name: p
    for p in (Add, Sub, Neg, Mul, Div, Pow, PowT, MatMul, Affine, Tanh, Sigmoid, Relu, Exp, Log, Abs, Sqrt,
              Clamp, Max, Copy, Compare, LogSumExp, CrossEntropy, Sum, Mean, Reshape, Transpose, GetItem,
              Scatter, SumTo, BroadcastTo)
}

# The cycle is deliberate and harmless: vjp_t builds Tensors, and only runs once both modules are loaded.
from . import tensor as _tensor  # noqa: E402
