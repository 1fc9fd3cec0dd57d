"""The tape: random compositions against finite differences, accumulation, freeing, no_grad,
stability at extreme inputs, Tensor basics, and clear errors on bad input."""
from __future__ import annotations

import gc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import arrays_of_shape, shapes
from test_primitives import assert_close, numeric_vjp
from tinygrad_mlp import GraphFreedError, Tensor, no_grad, tape_size
from tinygrad_mlp import functional as F
from tinygrad_mlp.autograd import tape as tape_mod
from tinygrad_mlp.autograd import tensor as T


@pytest.fixture(autouse=True)
def _clean_tape():
    # Tape counts below are relative; sweeping dead records left by earlier tests first means a
    # sweep triggered mid-test (at 10,000 records) cannot shrink the count under the baseline.
    gc.collect()
    tape_mod.sweep()
    yield


# --------------------------------------------------------------- random programs
# Each op is written twice: on Tensors (under test) and on ndarrays (the finite-difference side).
# All are smooth on the whole real line so a drawn program never leaves its domain.
UNARY = {
    "tanh": (lambda t: t.tanh(), np.tanh),
    "sigmoid": (lambda t: t.sigmoid(), lambda z: 1 / (1 + np.exp(-z))),
    "neg": (lambda t: -t, np.negative),
    "square": (lambda t: t ** 2, np.square),
    "exp_tanh": (lambda t: t.tanh().exp(), lambda z: np.exp(np.tanh(z))),
    "log1p_sq": (lambda t: (t * t + 1.0).log(), lambda z: np.log(z * z + 1.0)),
    "sum_keep": (lambda t: t.sum(axis=-1, keepdims=True) if t.ndim else t,
                 lambda z: z.sum(axis=-1, keepdims=True) if z.ndim else z),
    "mean_keep": (lambda t: t.mean(axis=0, keepdims=True) if t.ndim else t,
                  lambda z: z.mean(axis=0, keepdims=True) if z.ndim else z),
    "lse_keep": (lambda t: t.logsumexp(axis=-1, keepdims=True) if t.ndim else t,
                 lambda z: np.log(np.exp(z).sum(axis=-1, keepdims=True)) if z.ndim else z),
    "relu_shift": (lambda t: (t * t + 0.5).relu(), lambda z: np.maximum(z * z + 0.5, 0)),
}
BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / (b * b + 1.0), lambda a, b: a / (b * b + 1.0)),
}


@st.composite
def programs(draw):
    """A random expression graph: n_in inputs of one shape, then steps reading any earlier value (fan-out)."""
    shape = draw(shapes(max_dims=2, max_side=3))
    n_in = draw(st.integers(1, 3))
    inputs = [draw(arrays_of_shape(shape, -1.5, 1.5)) for _ in range(n_in)]
    steps = []
    for k in range(draw(st.integers(2, 8))):
        n_vals = n_in + k
        if draw(st.booleans()):
            steps.append(("u", draw(st.sampled_from(sorted(UNARY))), draw(st.integers(0, n_vals - 1))))
        else:
            steps.append(("b", draw(st.sampled_from(sorted(BINARY))),
                          draw(st.integers(0, n_vals - 1)), draw(st.integers(0, n_vals - 1))))
    return inputs, steps


def run_program(steps, values, table_index):
    """Evaluate ``steps`` on ``values`` (Tensors or arrays); the output sums every value once (all nodes matter)."""
    vals = list(values)
    for step in steps:
        if step[0] == "u":
            vals.append(UNARY[step[1]][table_index](vals[step[2]]))
        else:
            vals.append(BINARY[step[1]][table_index](vals[step[2]], vals[step[3]]))
    out = vals[len(values)]
    for v in vals[len(values) + 1:]:
        out = out + v
    return out


@settings(max_examples=200)
@given(prog=programs())
def test_random_programs_match_finite_differences(prog):
    inputs, steps = prog
    before = [a.copy() for a in inputs]
    n0 = tape_size()
    leaves = [Tensor(a, requires_grad=True) for a in inputs]
    out = run_program(steps, leaves, 0)
    expected = run_program(steps, before, 1)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    u = np.random.default_rng(len(steps)).standard_normal(out.shape)
    out.backward(u)
    fds = numeric_vjp(lambda *xs: run_program(steps, xs, 1), before, u)
    for k, (leaf, fd) in enumerate(zip(leaves, fds)):
        # An input no step reads has no gradient; finite differences then say 0 too.
        got = np.zeros_like(fd) if leaf.grad is None else leaf.grad
        assert_close(got, fd, f"input {k} of program {steps}")
    for a, b in zip(inputs, before):
        np.testing.assert_array_equal(a, b)  # neither forward nor backward mutated an input
    assert tape_size() == n0  # every record this graph made was freed


# ------------------------------------------------------------------ properties
def test_reused_tensor_accumulates_both_contributions():
    x = Tensor([1.5, -2.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, -4.0])  # d/dx x² = 2x, not x
    y = Tensor(0.3, requires_grad=True)
    (y * y.tanh() + y + y).backward()
    assert y.grad == pytest.approx(np.tanh(0.3) + 0.3 * (1 - np.tanh(0.3) ** 2) + 2)


def test_grad_accumulates_across_backwards_on_leaves():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])


def test_leaf_grad_is_a_fresh_writable_array():
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    x.sum().backward()  # Sum's vjp is a read-only broadcast view; the leaf must not keep it as is
    x.grad += 1.0
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0))


def test_no_grad_records_nothing():
    x = Tensor([1.0, 2.0], requires_grad=True)
    n0 = tape_size()
    with no_grad():
        y = (x * 2.0).tanh().sum()
    assert tape_size() == n0
    assert not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_records_freed_after_backward_and_second_backward_raises():
    n0 = tape_size()
    x = Tensor([0.5, -0.5], requires_grad=True)
    loss = (x.tanh() * x).sum()
    assert tape_size() == n0 + 3
    loss.backward()
    assert tape_size() == n0
    with pytest.raises(GraphFreedError, match="retain_graph"):
        loss.backward()


def test_retain_graph_allows_a_second_backward():
    x = Tensor([0.5, -0.5], requires_grad=True)
    loss = (x.exp() * x).sum()
    loss.backward(retain_graph=True)
    g1 = x.grad.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * g1)
    np.testing.assert_allclose(g1, np.exp([0.5, -0.5]) * (1 + np.array([0.5, -0.5])))


def test_dropped_graph_is_swept_without_backward():
    gc.collect()
    tape_mod.sweep()  # earlier tests may have left dead records; start from a clean count
    n0 = tape_size()
    x = Tensor([1.0], requires_grad=True)
    y = (x * 2.0 + 1.0).tanh()
    assert tape_size() == n0 + 3
    del y
    gc.collect()
    tape_mod.sweep()
    assert tape_size() == n0


def test_chain_of_ten_thousand_ops():
    x = Tensor(0.5, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001 ** 10_000, rel=1e-9)


def test_backward_on_independent_graphs_only_touches_its_own():
    a = Tensor([1.0], requires_grad=True)
    b = Tensor([2.0], requires_grad=True)
    la = (a * 3.0).sum()
    lb = (b * 5.0).sum()
    n = tape_size()
    la.backward()
    assert a.grad.tolist() == [3.0] and b.grad is None
    assert tape_size() == n - 2
    lb.backward()
    assert b.grad.tolist() == [5.0]


def test_retain_grad_keeps_intermediate_gradient():
    x = Tensor([0.2, 0.4], requires_grad=True)
    h = (x * 2.0).retain_grad()
    h.tanh().sum().backward()
    np.testing.assert_allclose(h.grad, 1 - np.tanh([0.4, 0.8]) ** 2)
    np.testing.assert_allclose(x.grad, 2 * h.grad)
    z = x * 3.0
    z.sum().backward()
    assert z.grad is None  # an intermediate without retain_grad keeps none


def test_detach_cuts_the_tape():
    x = Tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.is_leaf
    (x * d).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_backward_with_explicit_grad_on_nonscalar():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x * x
    y.backward(np.array([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_array_equal(x.grad, [[2.0, 0.0], [3.0, 16.0]])


# ------------------------------------------------------------------- stability
@pytest.mark.parametrize("centre", [1e4, -1e4])
def test_logsumexp_stable_at_large_logits(centre):
    z = np.array([[centre, centre + 1.0, centre - 2.0], [centre + 3.0, centre, centre]])
    t = Tensor(z, requires_grad=True)
    out = t.logsumexp(axis=1)
    shifted = z - z.max(axis=1, keepdims=True)  # the textbook stable form, written independently
    expected = z.max(axis=1) + np.log(np.exp(shifted).sum(axis=1))
    assert np.isfinite(out.data).all()
    np.testing.assert_allclose(out.data, expected, rtol=1e-15)
    out.sum().backward()
    softmax = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(t.grad, softmax, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("v", [1e3, -1e3])
def test_tanh_and_sigmoid_saturate_finitely(v):
    # an overflow inside would raise here (σ's exp(−|z|) may underflow to 0: that is its exact value)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        x = Tensor([v], requires_grad=True)
        x.tanh().sum().backward()
        assert np.isfinite(x.grad).all() and x.grad[0] == 0.0
        x2 = Tensor([v], requires_grad=True)
        s = x2.sigmoid()
        assert s.data[0] == (1.0 if v > 0 else 0.0)
        s.sum().backward()
        assert np.isfinite(x2.grad).all() and x2.grad[0] == 0.0


def test_log_softmax_and_cross_entropy_stable_at_large_logits():
    z = Tensor([[1e4, 0.0, -1e4]], requires_grad=True)
    loss = F.cross_entropy(z, np.array([1]))
    assert loss.item() == pytest.approx(1e4)
    loss.backward()
    np.testing.assert_allclose(z.grad, [[1.0, -1.0, 0.0]], atol=1e-12)


# ---------------------------------------------------------------- Tensor basics
def test_construction_and_attributes():
    t = Tensor([[1, 2], [3, 4]])
    assert t.dtype == np.float64 and t.shape == (2, 2) and t.ndim == 2
    assert Tensor(3).shape == () and Tensor(3).item() == 3.0
    assert Tensor(np.ones(2, dtype=np.float32)).dtype == np.float32
    assert Tensor([1.0], dtype="float32").dtype == np.float32
    assert Tensor([1.0], dtype=np.float32, requires_grad=True).requires_grad
    assert Tensor(np.arange(3)).dtype.kind == "i"  # integer arrays stay integer (indices, labels)
    assert t.grad is None
    assert np.asarray(t) is t.data and t.numpy() is t.data
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float32), t.data)


def test_repr_is_readable():
    r = repr(Tensor([1.0, 2.5], requires_grad=True))
    assert r.startswith("Tensor([1. , 2.5]") and "requires_grad=True" in r
    assert "float32" in repr(Tensor([1.0], dtype="float32"))


def test_ndarray_on_the_left_defers_to_tensor():
    out = np.array([1.0, 2.0]) * Tensor([3.0, 4.0], requires_grad=True)
    assert isinstance(out, Tensor)
    np.testing.assert_array_equal(out.data, [3.0, 8.0])


# ----------------------------------------------------------------- bad input
def test_matmul_mismatch_names_both_shapes():
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    b = Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        a @ b
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        Tensor(np.ones(3)) @ Tensor(np.ones(2))


def test_requires_grad_on_integer_data_is_rejected():
    with pytest.raises(TypeError, match="requires_grad.*int"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="requires_grad"):
        Tensor([1.0], requires_grad="yes")


def test_backward_on_nonscalar_without_grad_is_rejected():
    y = Tensor([1.0, 2.0], requires_grad=True) * 2.0
    with pytest.raises(ValueError, match=r"scalar.*shape \(2,\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"grad: expected shape \(2,\), got \(3,\)"):
        y.backward(np.ones(3))


def test_other_bad_inputs_are_named():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"do not broadcast"):
        x + np.ones(4)
    with pytest.raises(TypeError, match="data"):
        Tensor("abc")
    with pytest.raises(TypeError, match="exponent"):
        x ** "a"
    with pytest.raises(ValueError, match="axis"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match="shape"):
        x.reshape(4)
    with pytest.raises(IndexError, match=r"index.*\(2, 3\)"):
        x[5]
    with pytest.raises(ValueError, match="dims"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match="item"):
        x.item()


@pytest.mark.parametrize("axis", [None, -1])
def test_logsumexp_of_all_minus_inf_is_minus_inf_not_nan(axis):
    with np.errstate(divide="ignore"):
        out = Tensor([[-np.inf, -np.inf]]).logsumexp(axis=axis)
        out1 = Tensor([-np.inf, -np.inf]).logsumexp()
    assert np.all(out.data == -np.inf) and out1.item() == -np.inf
    assert np.isnan(Tensor([0.0, np.nan]).logsumexp().item())
    assert Tensor([0.0, np.inf]).logsumexp().item() == np.inf


@pytest.mark.parametrize("shapes", [((3, 4), (4,)), ((3, 4), (4, 2)), ((5, 3), (3, 4))])
@pytest.mark.parametrize("constant", [0, 1])
def test_matmul_with_a_constant_operand_skips_only_its_gradient(shapes, constant):
    """The tape drops ∂L/∂x for a constant x (the first layer's input); the other gradient stays exact."""
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) for s in shapes]
    u = rng.standard_normal(np.matmul(*arrays).shape)
    ts = [Tensor(a, requires_grad=(i != constant)) for i, a in enumerate(arrays)]
    (ts[0] @ ts[1]).backward(u)
    assert ts[constant].grad is None
    k = 1 - constant
    a, b = arrays
    if k == 0:
        expected = np.outer(u, b) if b.ndim == 1 else u @ b.T
    else:
        expected = a.T @ u
    np.testing.assert_allclose(ts[k].grad, expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ ownership
def test_leaf_gradients_never_share_memory():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    ((a + b) * 2.0).sum().backward()
    assert a.grad is not b.grad and not np.shares_memory(a.grad, b.grad)
    a.grad[0] = 99.0
    np.testing.assert_array_equal(b.grad, [2.0, 2.0])
    c = Tensor(np.array([1.0, -1.0]), requires_grad=True)
    (c + c).sum().backward()  # one tensor reached twice through a pass-through vjp: 2, not an aliased 1
    np.testing.assert_array_equal(c.grad, [2.0, 2.0])


def test_a_retained_gradient_is_its_own_array():
    W = Tensor(np.eye(2), requires_grad=True)
    b = Tensor(np.zeros(2), requires_grad=True)
    z = (W @ np.array([1.0, 2.0]) + b).retain_grad()
    (z * np.array([3.0, 5.0])).sum().backward()
    assert not np.shares_memory(z.grad, b.grad)
    z.grad[:] = 0.0
    np.testing.assert_array_equal(b.grad, [3.0, 5.0])


def test_a_view_gradient_does_not_alias_a_sibling():
    a = Tensor(np.arange(4.0), requires_grad=True)
    b = Tensor(np.arange(4.0).reshape(2, 2), requires_grad=True)
    (a.reshape(2, 2) + b).sum().backward()
    assert not np.shares_memory(a.grad, b.grad)
    b.grad[0, 0] = -1.0
    np.testing.assert_array_equal(a.grad, np.ones(4))


# ------------------------------------------------------------------ PyTorch's meaning (issue 14), no torch needed
def test_transpose_swaps_two_dims_as_in_pytorch():
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(Tensor(a).transpose(0, 1).data, a.T)  # NumPy's transpose(0, 1) is a no-op
    b = np.arange(24.0).reshape(2, 3, 4)
    assert Tensor(b).transpose(1, 2).shape == (2, 4, 3)
    assert Tensor(b).permute(2, 0, 1).shape == (4, 2, 3) and Tensor(b).T.shape == (4, 3, 2)
    with pytest.raises(TypeError, match="^dims: transpose\\(dim0, dim1\\)"):
        Tensor(b).transpose((2, 0, 1))


def test_comparisons_are_elementwise_bool_tensors_without_grad():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    eq = x == Tensor([1.0, 0.0, 3.0])
    assert eq.dtype == np.bool_ and not eq.requires_grad and eq.data.tolist() == [True, False, True]
    assert (x > 1).data.tolist() == [False, True, True] and (x <= 2.0).data.tolist() == [True, True, False]
    assert (x != x).data.tolist() == [False] * 3 and (1.5 < x).data.tolist() == [False, True, True]
    assert (x == None) is False  # noqa: E711  (unrelated objects compare unequal, as in PyTorch)
    assert {x: 1}[x] == 1  # hashing stays by identity
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(Tensor([0.0, 1.0]))
    assert bool(Tensor([0.0])) is False and bool(Tensor(2.0) > 1)


def test_scalar_conversions_on_one_element_tensors():
    loss = Tensor([[2.5]], requires_grad=True) * 1.0
    assert float(loss) == 2.5 and int(loss) == 2 and f"{loss:.3f}" == "2.500"
    assert Tensor([[1.0, 2.0]]).tolist() == [[1.0, 2.0]] and Tensor(3.0).tolist() == 3.0
    with pytest.raises(TypeError, match="^format: "):
        f"{Tensor([1.0, 2.0]):.3f}"
    assert f"{Tensor([1.0, 2.0])}" == str(Tensor([1.0, 2.0]))
    assert Tensor(np.zeros((2, 3))).numel() == 6 and Tensor(np.zeros((2, 3))).dim() == 2


def test_requires_grad_in_place():
    t = Tensor([1.0, 2.0])
    assert t.requires_grad_() is t and t.requires_grad
    (t * t).sum().backward()
    np.testing.assert_array_equal(t.grad, [2.0, 4.0])
    with pytest.raises(TypeError, match="^requires_grad: only float32 or float64"):
        Tensor(np.arange(3)).requires_grad_()


def test_dim_and_keepdim_are_accepted_beside_axis_and_keepdims():
    a = np.arange(6.0).reshape(2, 3)
    t = Tensor(a)
    np.testing.assert_array_equal(t.sum(dim=1, keepdim=True).data, a.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(t.sum(axis=1, keepdims=True).data, a.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(t.mean(dim=0).data, a.mean(axis=0))
    np.testing.assert_allclose(t.logsumexp(dim=-1).data, np.log(np.exp(a).sum(-1)))
    with pytest.raises(TypeError, match="^sum: pass dim or axis, not both"):
        t.sum(axis=0, dim=0)


def test_zero_d_reductions_accept_dim_0_and_minus_1():
    z = Tensor(2.0, requires_grad=True)
    assert z.sum(0).item() == 2.0 and z.sum(-1).item() == 2.0 and z.mean(dim=0).item() == 2.0
    assert z.logsumexp(dim=-1).item() == 2.0 and z.softmax(dim=0).item() == 1.0
    with pytest.raises(ValueError, match="^axis: "):
        z.sum(1)


def test_numpy_scalars_do_not_promote_float32():
    x = Tensor(np.ones(2, np.float32), requires_grad=True)
    for y in (x * np.float64(2.0), np.float64(2.0) * x, x + np.int64(1), x ** np.float64(2.0), x / np.float64(3)):
        assert y.dtype == np.float32
    assert (x * np.ones(2)).dtype == np.float64  # an ndarray promotes, as NumPy and a dimensioned torch tensor


def test_conversions_tell_the_capture():
    from tinygrad_mlp.autograd.tape import state

    seen = []

    class Watch:
        def op(self, *a):
            pass

        def conversion(self, tensor, what):
            seen.append(what)

    t = Tensor([1.5])
    st = state()
    st.capture = Watch()
    try:
        float(t), int(t), f"{t:.1f}", t.tolist(), bool(t), t.item()
        t == 1.0  # a comparison is an op, seen by the capture, not a conversion
    finally:
        st.capture = None
    assert seen == ["float", "int", "format", "tolist", "bool", "item"]
