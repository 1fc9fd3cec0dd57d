"""Every primitive's gradient (orders 1 and 2) against central finite differences, through ONE test factory.

Tolerance policy (float64 throughout): central differences with ε = 1e-6 have
truncation error O(ε² f''') and rounding error O(u/ε), u ≈ 2.2e-16, so ≈ 1e-10
relative on the domains drawn here.  We require
``|tape − fd| ≤ 1e-8 + 1e-6·|fd|`` entry by entry: tighter than the issue's 1e-5
relative, and still four orders above the finite-difference noise.

Every op also runs in float32 (its own ``_float32`` test): the finite differences are then
taken in float64 on the float32-rounded inputs, and the tape must meet gradcheck's float32
policy (rtol 2e-3, atol 2e-4), since float32's own rounding (about 6e-8 per op) dominates.

Adding an op is one line in SPECS: ``OpSpec(name, inputs, tensor_fn, np_fn)``; ``prim``
names the primitive a composite exercises (min is -max(-z)).

The finite differences are taken on a plain-NumPy forward written in each spec
(``np_fn``), never on the Tensor code under test, and the upstream gradient u
is random (a vjp that is only right for u = 1 fails).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from strategies import (arrays_in, arrays_of_shape, broadcastable_pairs, matmul_shapes,
                        nonempty_shapes, shapes)
from tinygrad_mlp import Tensor
from tinygrad_mlp import autograd as ag
from tinygrad_mlp import functional as F
from tinygrad_mlp.autograd.gradcheck import tolerances
from tinygrad_mlp.autograd.primitives import CrossEntropy
from tinygrad_mlp.autograd.tensor import apply
from tinygrad_mlp.autograd.primitives import PRIMITIVES
from tinygrad_mlp.autograd.tensor import apply

EPS = 1e-6
RTOL, ATOL = 1e-6, 1e-8


def numeric_vjp(np_fn, arrays, u, eps=EPS):
    """∂⟨u, f(x)⟩/∂x for each input by central differences, entry by entry, in float64."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            fp = np.sum(u * np_fn(*arrays))
            a[idx] = old - eps
            fm = np.sum(u * np_fn(*arrays))
            a[idx] = old
            g[idx] = (fp - fm) / (2 * eps)
        grads.append(g)
    return grads


def assert_close(tape, fd, what, rtol=RTOL, atol=ATOL):
    tape = np.asarray(tape, dtype=np.float64)
    assert tape.shape == fd.shape, f"{what}: gradient shape {tape.shape}, expected {fd.shape}"
    err = np.abs(tape - fd)
    bad = err > atol + rtol * np.abs(fd)
    if bad.any():
        idx = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{what}, index {idx}: tape {tape[idx]!r} vs finite difference {fd[idx]!r}")


@dataclass
class OpSpec:
    """One op under test: how to draw its inputs and static args, its Tensor form and a NumPy forward."""

    name: str  # the op's test name (a key of PRIMITIVES unless ``prim`` says which one it exercises)
    inputs: st.SearchStrategy  # draws (list of arrays, dict of static args)
    tensor_fn: Callable  # (*tensors, **args) -> Tensor
    np_fn: Callable  # (*arrays, **args) -> ndarray, the independent forward
    examples: int = 100
    prim: str | None = None  # the primitive behind a composite op

    @property
    def primitive(self) -> str:
        return self.prim or self.name


def check_op(spec: OpSpec, arrays, args, dtype=np.float64):
    """The body every gradient test shares: forward value, no mutation, vjp vs finite differences."""
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    before = [a.copy() for a in arrays]
    leaves = [Tensor(a, requires_grad=True) for a in arrays]
    out = spec.tensor_fn(*leaves, **args)
    expected = np.asarray(spec.np_fn(*[a.astype(np.float64) for a in before], **args))
    assert out.shape == expected.shape, f"{spec.name}: forward shape {out.shape}, expected {expected.shape}"
    assert out.dtype == dtype, f"{spec.name}: a {np.dtype(dtype)} input gave a {out.dtype} output"
    if dtype == np.float64:
        np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
        rtol, atol = RTOL, ATOL
    else:
        np.testing.assert_allclose(out.data, expected, rtol=1e-5, atol=1e-6)
        rtol, atol = tolerances(dtype)["rtol"], tolerances(dtype)["atol"]
    u = np.random.default_rng(len(arrays) + out.size).standard_normal(out.shape).astype(dtype)
    out.backward(u)
    fds = numeric_vjp(lambda *xs: spec.np_fn(*xs, **args), before, u.astype(np.float64))
    for k, (leaf, fd) in enumerate(zip(leaves, fds)):
        assert leaf.grad is not None, f"{spec.name}: input {k} got no gradient"
        assert leaf.grad.dtype == dtype
        assert_close(leaf.grad, fd, f"{spec.name} input {k} (shapes {[a.shape for a in arrays]}, args {args})",
                     rtol, atol)
    for k, (a, b) in enumerate(zip(arrays, before)):
        np.testing.assert_array_equal(a, b, err_msg=f"{spec.name}: input {k} was mutated")


def make_grad_test(spec: OpSpec, dtype=np.float64):
    """The factory: one hypothesis test per op and dtype, all driven by :func:`check_op`."""

    @settings(max_examples=spec.examples if dtype == np.float64 else max(spec.examples // 4, 10))
    @given(drawn=spec.inputs)
    def test(drawn):
        arrays, args = drawn
        check_op(spec, arrays, args, dtype)

    test.__name__ = f"test_grad_{spec.name}" + ("" if dtype == np.float64 else "_float32")
    return test


# ----------------------------------------------------------------- input strategies
def _pair(lo_a=(-2.0, 2.0), lo_b=(-2.0, 2.0), away_b=None):
    return broadcastable_pairs().flatmap(lambda sh: st.tuples(
        arrays_of_shape(sh[0], *lo_a), arrays_of_shape(sh[1], *lo_b, away_from=away_b, gap=0.3)
    ).map(lambda ab: (list(ab), {})))


def _unary(domain="default", away_from=None):
    return arrays_in(domain, away_from=away_from).map(lambda a: ([a], {}))


@st.composite
def _reduction(draw, keepdims_ok=True):
    shape = draw(nonempty_shapes())
    a = draw(arrays_of_shape(shape))
    axis = draw(st.one_of(
        st.none(),
        st.integers(-len(shape), len(shape) - 1) if shape else st.none(),
        hnp.valid_tuple_axes(len(shape), min_size=1) if shape else st.none()))
    keepdims = draw(st.booleans()) if keepdims_ok else False
    return [a], {"axis": axis, "keepdims": keepdims}


@st.composite
def _matmul(draw):
    sa, sb = draw(matmul_shapes(stacks=True))
    return [draw(arrays_of_shape(sa)), draw(arrays_of_shape(sb))], {}


@st.composite
def _affine(draw):
    n_out, n_in = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch = draw(st.sampled_from([None, 1, 3]))
    h_shape = (n_in,) if batch is None else (batch, n_in)
    return [draw(arrays_of_shape((n_out, n_in))), draw(arrays_of_shape(h_shape)),
            draw(arrays_of_shape((n_out,)))], {}


@st.composite
def _cross_entropy(draw):
    k, batch = draw(st.integers(1, 5)), draw(st.sampled_from([None, 1, 3]))
    if batch is None:
        return [draw(arrays_of_shape((k,)))], {"y": draw(st.integers(0, k - 1))}
    return [draw(arrays_of_shape((batch, k)))], {"y": np.array(draw(st.lists(st.integers(0, k - 1),
                                                                           min_size=batch, max_size=batch)))}


def _np_cross_entropy(z, y):
    lse = _lse(z, axis=-1)
    return lse - (z[y] if z.ndim == 1 else z[np.arange(z.shape[0]), y])


@st.composite
def _pow(draw):
    p = draw(st.sampled_from([2, 3, 0.5, -1.0, 1.5, -2.5, 2.0]))
    return [draw(arrays_in("positive"))], {"p": p}


@st.composite
def _reshape(draw):
    a = draw(arrays_in())
    # Any factorisation of the size, drawn as a permutation of its factors plus some unit axes.
    factors = [d for d in a.shape if d != 1]
    factors = draw(st.permutations(factors)) if factors else []
    shape = list(factors) + [1] * draw(st.integers(0, 1))
    if shape and draw(st.booleans()):
        shape[draw(st.integers(0, len(shape) - 1))] = -1
    return [a], {"shape": tuple(shape)}


@st.composite
def _transpose(draw):
    a = draw(arrays_in())
    axes = draw(st.one_of(st.none(), st.permutations(range(a.ndim)).map(tuple)))
    return [a], {"axes": axes}


@st.composite
def _swap(draw):
    a = draw(arrays_in(shape_strategy=shapes(min_dims=1)))
    n = a.ndim
    return [a], {"d0": draw(st.integers(-n, n - 1)), "d1": draw(st.integers(-n, n - 1))}


def _np_swap(z, d0, d1):
    return np.swapaxes(z, d0, d1)


@st.composite
def _distinct(draw, min_dims=0):
    """Arrays whose entries are at least 0.1 apart (max/min: no tie within a finite difference)."""
    shape = draw(nonempty_shapes(min_dims=min_dims))
    n = int(np.prod(shape, dtype=np.int64))
    order = draw(st.permutations(range(n)))
    jitter = draw(arrays_of_shape((n,), 0.0, 0.05))
    return (np.array(order, dtype=np.float64) * 0.15 - 0.075 * n + jitter).reshape(shape)


@st.composite
def _max(draw):
    a = draw(_distinct())
    dim = draw(st.none() | st.integers(-a.ndim, a.ndim - 1)) if a.ndim else None
    return [a], {"dim": dim, "keepdim": draw(st.booleans())}


def _np_max(z, dim, keepdim):
    if dim is None:
        return np.max(z, keepdims=keepdim)
    return np.max(z, axis=dim, keepdims=keepdim)


def _t_max(a, dim, keepdim):
    return a.max(dim, keepdim).values if dim is not None else a.max(keepdim=keepdim)


def _t_min(a, dim, keepdim):
    return a.min(dim, keepdim).values if dim is not None else a.min(keepdim=keepdim)


@st.composite
def _clamp(draw):
    lo, hi = draw(st.sampled_from([(-1.0, 0.5), (None, 0.3), (-0.2, None), (0.0, 1.0)]))
    a = draw(arrays_in())
    for bound in (lo, hi):  # keep away from the kinks, where a central difference straddles them
        if bound is not None:
            a = np.where(np.abs(a - bound) < 0.05, bound + 0.1, a)
    return [a], {"lo": lo, "hi": hi}


@st.composite
def _pow_tensor(draw):
    sa, sb = draw(broadcastable_pairs())
    return [draw(arrays_of_shape(sa, 0.5, 3.0)), draw(arrays_of_shape(sb, -2.0, 2.0))], {}


@st.composite
def _unsqueeze(draw):
    a = draw(arrays_in())
    return [a], {"dim": draw(st.integers(-a.ndim - 1, a.ndim))}


@st.composite
def _squeeze(draw):
    a = draw(arrays_in(shape_strategy=shapes(min_side=1, max_side=2)))
    dim = draw(st.none() | st.integers(-a.ndim, a.ndim - 1)) if a.ndim else None
    return [a], {"dim": dim}


def _np_squeeze(z, dim):
    if dim is None:
        return np.squeeze(z)
    return np.squeeze(z, dim) if z.shape[dim] == 1 else z


@st.composite
def _flatten(draw):
    a = draw(arrays_in(shape_strategy=shapes(min_dims=1)))
    i, j = sorted(draw(st.lists(st.integers(0, a.ndim - 1), min_size=2, max_size=2)))
    return [a], {"start": i, "end": j}


def _np_flatten(z, start, end):
    return z.reshape(z.shape[:start] + (-1,) + z.shape[end + 1:])


@st.composite
def _softmax(draw):
    a = draw(arrays_in())
    return [a], {"dim": draw(st.integers(-max(a.ndim, 1), max(a.ndim, 1) - 1))}


def _np_log_softmax(z, dim):
    if z.ndim == 0:
        return z - z
    return z - _lse(z, axis=dim, keepdims=True)


def _np_softmax(z, dim):
    return np.exp(_np_log_softmax(z, dim))


@st.composite
def _mse(draw):
    shape = draw(nonempty_shapes())
    return [draw(arrays_of_shape(shape)), draw(arrays_of_shape(shape))], {
        "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}


def _np_mse(a, b, reduction):
    sq = (a - b) ** 2
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](sq)


@st.composite
def _getitem(draw):
    shape = draw(nonempty_shapes(min_dims=1))
    a = draw(arrays_of_shape(shape))
    kind = draw(st.sampled_from(["int", "slice", "intarray", "mixed", "basic_tuple"]))
    n0 = shape[0]
    if kind == "int":
        index = draw(st.integers(-n0, n0 - 1))
    elif kind == "slice":
        index = slice(draw(st.none() | st.integers(-n0, n0)), draw(st.none() | st.integers(-n0, n0)),
                      draw(st.none() | st.sampled_from([1, 2, -1])))
    elif kind == "intarray":  # repeats allowed: their gradients must add up
        index = np.array(draw(st.lists(st.integers(0, n0 - 1), min_size=1, max_size=5)))
    elif kind == "mixed" and len(shape) >= 2:
        index = (np.array(draw(st.lists(st.integers(0, n0 - 1), min_size=1, max_size=4))),
                 draw(st.integers(0, shape[1] - 1)))
    else:
        index = tuple(draw(st.integers(0, d - 1)) if draw(st.booleans()) else slice(None) for d in shape)
    return [a], {"index": index}


def _lse(z, axis=None, keepdims=False):
    m = np.max(z, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))
    return out if keepdims else (np.squeeze(out, axis=axis) if axis is not None else out.reshape(()))


@st.composite
def _scatter(draw):
    drawn, args = draw(_getitem())
    shape = drawn[0].shape
    g_shape = np.zeros(shape)[args["index"]].shape
    return [draw(arrays_of_shape(g_shape))], {"shape": shape, "index": args["index"]}


def _np_scatter(g, shape, index):
    out = np.zeros(shape)
    np.add.at(out, index, g)
    return out


@st.composite
def _broadcast(draw, down: bool):
    """(big, small) with small broadcasting to big: sum_to goes big -> small, broadcast_to small -> big."""
    sa, sb = draw(broadcastable_pairs())
    big = np.broadcast_shapes(sa, sb)
    src, dst = (big, sb) if down else (sb, big)
    return [draw(arrays_of_shape(src))], {"shape": dst}


def _np_sum_to(z, shape):
    z = z.sum(axis=tuple(range(z.ndim - len(shape))))
    return z.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True)


def _via(prim_name):
    """The Tensor form of a primitive that no Tensor method exposes (the vjps' own helpers)."""
    prim = PRIMITIVES[prim_name]
    return lambda a, **args: apply(prim, (a,), (a.data,), tuple(args.values()))


SPECS = [
    OpSpec("add", _pair(), lambda a, b: a + b, np.add),
    OpSpec("sub", _pair(), lambda a, b: a - b, np.subtract),
    OpSpec("mul", _pair(), lambda a, b: a * b, np.multiply),
    OpSpec("div", _pair(away_b=0.0), lambda a, b: a / b, np.divide),
    OpSpec("neg", _unary(), lambda a: -a, np.negative),
    OpSpec("pow", _pow(), lambda a, p: a ** p, lambda a, p: a ** p),
    OpSpec("matmul", _matmul(), lambda a, b: a @ b, np.matmul),
    OpSpec("affine", _affine(), lambda W, h, b: F.linear(h, W, b), lambda W, h, b: h @ W.T + b),
    OpSpec("tanh", _unary(), lambda a: a.tanh(), np.tanh),
    OpSpec("sigmoid", _unary(), lambda a: a.sigmoid(), lambda z: 1 / (1 + np.exp(-z))),
    OpSpec("relu", _unary(away_from=0.0), lambda a: a.relu(), lambda z: np.maximum(z, 0)),
    OpSpec("exp", _unary("exp"), lambda a: a.exp(), np.exp),
    OpSpec("log", _unary("positive"), lambda a: a.log(), np.log),
    OpSpec("logsumexp", _reduction(), lambda a, axis, keepdims: a.logsumexp(axis, keepdims), _lse),
    OpSpec("cross_entropy", _cross_entropy(), lambda z, y: apply(CrossEntropy, (z,), (z.data,), (y,)),
           _np_cross_entropy),
    OpSpec("sum", _reduction(), lambda a, axis, keepdims: a.sum(axis, keepdims),
           lambda z, axis, keepdims: np.sum(z, axis=axis, keepdims=keepdims)),
    OpSpec("mean", _reduction(), lambda a, axis, keepdims: a.mean(axis, keepdims),
           lambda z, axis, keepdims: np.mean(z, axis=axis, keepdims=keepdims)),
    OpSpec("reshape", _reshape(), lambda a, shape: a.reshape(shape), lambda z, shape: np.reshape(z, shape)),
    OpSpec("transpose", _transpose(), lambda a, axes: a.permute(axes) if axes is not None else a.T,
           lambda z, axes: np.transpose(z, axes)),
    OpSpec("getitem", _getitem(), lambda a, index: a[index], lambda z, index: z[index]),
    # ops added for PyTorch users (issue 14): primitives, then composites of primitives
    OpSpec("pow_tensor", _pow_tensor(), lambda a, b: a ** b, np.power),
    OpSpec("abs", _unary(away_from=0.0), lambda a: a.abs(), np.abs),
    OpSpec("sqrt", _unary("positive"), lambda a: a.sqrt(), np.sqrt),
    OpSpec("clamp", _clamp(), lambda a, lo, hi: a.clamp(lo, hi), lambda z, lo, hi: np.clip(z, lo, hi)),
    OpSpec("max", _max(), _t_max, _np_max),
    OpSpec("copy", _unary(), lambda a: a.clone(), np.copy),
    OpSpec("min", _max(), _t_min, lambda z, dim, keepdim: -_np_max(-z, dim, keepdim), prim="max"),
    OpSpec("rpow", _unary(), lambda a: 2 ** a, lambda z: 2.0 ** z, prim="pow_tensor"),
    OpSpec("transpose_dims", _swap(), lambda a, d0, d1: a.transpose(d0, d1), _np_swap, prim="transpose"),
    OpSpec("unsqueeze", _unsqueeze(), lambda a, dim: a.unsqueeze(dim), lambda z, dim: np.expand_dims(z, dim),
           prim="reshape"),
    OpSpec("squeeze", _squeeze(), lambda a, dim: a.squeeze(dim), _np_squeeze, prim="reshape"),
    OpSpec("flatten", _flatten(), lambda a, start, end: a.flatten(start, end), _np_flatten, prim="reshape"),
    OpSpec("softmax", _softmax(), lambda a, dim: a.softmax(dim), _np_softmax, prim="logsumexp"),
    OpSpec("log_softmax", _softmax(), lambda a, dim: a.log_softmax(dim), _np_log_softmax, prim="logsumexp"),
    OpSpec("mse_loss", _mse(), lambda a, b, reduction: F.mse_loss(a, b, reduction), _np_mse, prim="mul"),
    # the vjps' own helpers, primitives so that second order can differentiate them (issue 15)
    OpSpec("scatter", _scatter(), _via("scatter"), _np_scatter),
    OpSpec("sum_to", _broadcast(down=True), _via("sum_to"), _np_sum_to),
    OpSpec("broadcast_to", _broadcast(down=False), _via("broadcast_to"), lambda z, shape: np.broadcast_to(z, shape)),
]

for _spec in SPECS:
    globals()[f"test_grad_{_spec.name}"] = make_grad_test(_spec)
    globals()[f"test_grad_{_spec.name}_float32"] = make_grad_test(_spec, np.float32)
del _spec

NO_GRADIENT = {"compare"}  # piecewise constant, never recorded: tested in test_ops.py


def test_every_primitive_has_a_gradient_test():
    assert set(PRIMITIVES) - NO_GRADIENT == {s.primitive for s in SPECS}


# ----------------------------------------------------------------- order 2
# The same specs drive a second-order check of every primitive's vjp_t (its vjp in Tensor ops), in
# float64 and float32: gradgradcheck compares the tape's Hessian-vector product ∇²⟨u, f⟩ w and its
# derivative in the upstream, J w, with five-point differences of the first-order (NumPy) gradient
# and of the forward.  A new OpSpec line gets both orders.
ORDER2_EXAMPLES = 25


def check_op2(spec: OpSpec, arrays, args, dtype):
    before = [a.copy() for a in arrays]
    xs = [a.astype(dtype) for a in arrays]
    fn = (lambda *ts: spec.tensor_fn(*ts, **args))
    # the recorded gradient has the first-order gradient's values, in the input's dtype
    leaves = [Tensor(x, requires_grad=True) for x in xs]
    out = fn(*leaves)
    u = np.random.default_rng(out.size).standard_normal(out.shape).astype(dtype)
    recorded = ag.grad(out, leaves, grad_outputs=u, create_graph=True, materialize_grads=True)
    out.backward(u)
    for k, (leaf, g) in enumerate(zip(leaves, recorded)):
        assert g.dtype == dtype, f"{spec.name}: recorded gradient {k} is {g.dtype}, expected {dtype}"
        # the same maths in other roundings: a few ulps of the gradient's scale apart
        ulp = np.finfo(dtype).eps * max(1.0, float(np.abs(leaf.grad).max(initial=0.0)))
        np.testing.assert_allclose(g.data, leaf.grad, rtol=1e3 * np.finfo(dtype).eps, atol=64 * ulp,
                                   err_msg=f"{spec.name}: create_graph gradient {k} differs from backward's")
    assert ag.gradgradcheck(fn, *xs, n_directions=2, seed=len(xs))
    for k, (a, b) in enumerate(zip(arrays, before)):
        np.testing.assert_array_equal(a, b, err_msg=f"{spec.name}: input {k} was mutated")


def make_grad2_test(spec: OpSpec, dtype):
    @settings(max_examples=ORDER2_EXAMPLES)
    @given(drawn=spec.inputs)
    def test(drawn):
        arrays, args = drawn
        check_op2(spec, arrays, args, dtype)

    test.__name__ = f"test_grad2_{spec.name}_{np.dtype(dtype).name}"
    return test


for _spec in SPECS:
    for _dt in (np.float64, np.float32):
        globals()[f"test_grad2_{_spec.name}_{np.dtype(_dt).name}"] = make_grad2_test(_spec, _dt)
del _spec, _dt


def test_every_primitive_has_a_second_order_rule():
    missing = [n for n, p in PRIMITIVES.items() if not callable(getattr(p, "vjp_t", None))]
    assert not missing, f"primitives without vjp_t: {missing}"


WRONG_TANH = {
    "the sheet's typo tanh² for 1 − tanh²": lambda g, out, rec: (g * (out * out),),
    # right values, but 1 − h² as a constant: the first order is exact, the second misses tanh''
    "a constant derivative": lambda g, out, rec: (g * (1.0 - out.data * out.data),),
}


@pytest.mark.parametrize("rule", list(WRONG_TANH.values()), ids=list(WRONG_TANH))
def test_gradgradcheck_catches_a_wrong_second_order_rule(monkeypatch, rule):
    """The order-2 check can fail: a tanh vjp_t that is wrong in value, or only in its own derivative."""
    tanh = PRIMITIVES["tanh"]
    monkeypatch.setattr(tanh, "vjp_t", staticmethod(rule))
    with pytest.raises(ag.GradcheckError, match="gradgradcheck"):
        ag.gradgradcheck(lambda a: a.tanh(), np.array([0.3, -0.7, 1.1]))


# Scalars and ndarrays on either side of an operator are constants: only the Tensor side gets a gradient.
MIXED = [
    ("scalar + t", lambda t: 2.5 + t, lambda z: 2.5 + z),
    ("t - scalar", lambda t: t - 1.5, lambda z: z - 1.5),
    ("scalar - t", lambda t: 1.5 - t, lambda z: 1.5 - z),
    ("scalar * t", lambda t: 3.0 * t, lambda z: 3.0 * z),
    ("scalar / t", lambda t: 2.0 / t, lambda z: 2.0 / z),
    ("t / scalar", lambda t: t / 4.0, lambda z: z / 4.0),
    ("ndarray - t", lambda t: np.arange(3.0) - t, lambda z: np.arange(3.0) - z),
    ("ndarray / t", lambda t: np.arange(1.0, 4.0) / t, lambda z: np.arange(1.0, 4.0) / z),
    ("t * ndarray", lambda t: t * np.arange(3.0), lambda z: z * np.arange(3.0)),
    ("ndarray @ t", lambda t: np.ones((2, 3)) @ t, lambda z: np.ones((2, 3)) @ z),
    ("t @ ndarray", lambda t: t @ np.arange(6.0).reshape(3, 2), lambda z: z @ np.arange(6.0).reshape(3, 2)),
    ("list + t", lambda t: [1.0, 2.0, 3.0] + t, lambda z: np.array([1.0, 2.0, 3.0]) + z),
    ("ndarray ** t", lambda t: np.arange(1.0, 4.0) ** t, lambda z: np.arange(1.0, 4.0) ** z),
    ("t ** ndarray", lambda t: abs(t) ** np.array([2.0, 0.5, 3.0]), lambda z: np.abs(z) ** np.array([2.0, 0.5, 3.0])),
    ("np.float64 * t", lambda t: np.float64(2.5) * t, lambda z: 2.5 * z),
]


@pytest.mark.parametrize("name,tensor_fn,np_fn", MIXED, ids=[m[0] for m in MIXED])
def test_constant_operands_on_either_side(name, tensor_fn, np_fn):
    x = np.array([0.7, -1.3, 2.1])
    spec = OpSpec(name, st.nothing(), tensor_fn, np_fn)
    check_op(spec, [x], {})


@pytest.mark.parametrize("spec", [s for s in SPECS if s.name in ("add", "mul", "tanh", "matmul", "sum")],
                         ids=lambda s: s.name)
def test_float32_stays_float32(spec):
    arrays, args = _fixed_inputs(spec.name)
    leaves = [Tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    out = spec.tensor_fn(*leaves, **args)
    assert out.dtype == np.float32
    out.backward(np.ones(out.shape, dtype=np.float32))
    for leaf in leaves:
        assert leaf.grad.dtype == np.float32


def _fixed_inputs(name):
    a = np.linspace(-1, 1, 6).reshape(2, 3)
    if name == "matmul":
        return [a, a.T.copy()], {}
    if name in ("add", "mul"):
        return [a, a[0].copy()], {}
    if name == "sum":
        return [a], {"axis": 0, "keepdims": False}
    return [a], {}
