"""Numerics at the edges (issue 13, "Silent wrong numbers" 1–6), each against an independent path.

Independent paths: scipy.special (expit, log_expit), the mathematical limit written out by hand,
PyTorch when installed (the edge sweep), and exact scaled arithmetic for the overflow check.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, log_expit

from tinygrad_mlp import MLP, Tensor

# --------------------------------------------------------------------------- 1. sigmoid's tails


def _ulps(got, want, dtype):
    """|got − want| in units of the dtype's spacing at want (want rounded to the dtype)."""
    want = np.asarray(want, np.float64)
    w = want.astype(dtype)
    sp = np.spacing(np.abs(w)).astype(np.float64)
    return np.abs(np.asarray(got, np.float64) - w.astype(np.float64)) / sp


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_is_a_few_ulp_from_expit_over_the_whole_range(dtype):
    fmax = float(np.finfo(dtype).max)
    z = np.concatenate([-np.logspace(-8, np.log10(fmax), 400), [0.0, -0.0], np.logspace(-8, np.log10(fmax), 400),
                        np.linspace(-60, 60, 241)]).astype(dtype)
    t = Tensor(z, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow anywhere
        h = t.sigmoid()
        h.backward(np.ones_like(z))
    ref = expit(z.astype(np.float64))
    normal = np.abs(ref) >= np.finfo(dtype).tiny  # below, the dtype has fewer digits: checked absolutely
    assert _ulps(h.data, ref, dtype)[normal].max() <= 2
    assert np.abs(h.data[~normal] - ref[~normal].astype(dtype)).max(initial=0) <= np.finfo(dtype).smallest_subnormal
    # σ'(z) = σ(z) σ(−z), each factor from scipy in float64
    dref = expit(z.astype(np.float64)) * expit(-z.astype(np.float64))
    dn = np.abs(dref) >= np.finfo(dtype).tiny
    assert _ulps(t.grad, dref, dtype)[dn].max() <= 4
    assert h.dtype == dtype and t.grad.dtype == dtype


def test_sigmoid_tail_values_from_the_issue():
    z = Tensor([-30.0, -35.0, -40.0, -50.0, 50.0], requires_grad=True)
    h = z.sigmoid()
    h.backward(np.ones(5))
    np.testing.assert_allclose(h.data, expit([-30.0, -35.0, -40.0, -50.0, 50.0]), rtol=1e-15)
    assert h.data[2] == pytest.approx(4.248354255291589e-18, rel=1e-15)
    np.testing.assert_allclose(z.grad[3:], [1.9287498479639178e-22] * 2, rtol=1e-14)
    # float32: σ(−20) is not 0, so log σ is finite and equals log_expit
    z32 = Tensor(np.array([-20.0, -50.0, -80.0], np.float32))
    logs = z32.sigmoid().log().data
    np.testing.assert_allclose(logs, log_expit(np.array([-20.0, -50.0, -80.0])).astype(np.float32), rtol=1e-6)


def test_sigmoid_at_infinities_and_nan():
    z = Tensor([-np.inf, np.inf, np.nan], requires_grad=True)
    h = z.sigmoid()
    h.backward(np.ones(3))
    assert h.data[0] == 0.0 and h.data[1] == 1.0 and np.isnan(h.data[2])
    assert z.grad[0] == 0.0 and z.grad[1] == 0.0 and np.isnan(z.grad[2])


# --------------------------------------------------------------------------- 2. pow and relu edges


def test_pow_zero_has_zero_gradient_without_warnings():
    x = Tensor([0.0, 2.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])
    assert (x ** 0).data.tolist() == [1.0, 1.0]


def test_relu_of_minus_inf_is_zero_not_nan():
    x = Tensor([-np.inf, np.inf, -1.0, np.nan], requires_grad=True)
    h = x.relu()
    assert h.data[0] == 0.0 and h.data[1] == np.inf and h.data[2] == 0.0 and np.isnan(h.data[3])
    h.backward(np.ones(4))
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0, 0.0])


# Mathematical limits, written by hand (no torch needed): (op, input, forward, gradient for upstream 1).
LIMITS = [
    ("tanh", np.inf, 1.0, 0.0), ("tanh", -np.inf, -1.0, 0.0), ("tanh", -0.0, -0.0, 1.0),
    ("exp", -np.inf, 0.0, 0.0), ("exp", np.inf, np.inf, np.inf),
    ("log", 0.0, -np.inf, np.inf), ("log", np.inf, np.inf, 0.0),
    ("sqrt", 0.0, 0.0, np.inf), ("sqrt", np.inf, np.inf, 0.0),
    ("abs", -np.inf, np.inf, -1.0), ("abs", 0.0, 0.0, 0.0),
    ("relu", 0.0, 0.0, 0.0), ("relu", -np.inf, 0.0, 0.0),
    ("sigmoid", 0.0, 0.5, 0.25), ("neg", -0.0, 0.0, -1.0),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op, x, fwd, grad", LIMITS, ids=[f"{o}({x})" for o, x, *_ in LIMITS])
def test_primitive_limits(op, x, fwd, grad, dtype):
    t = Tensor(np.array([x], dtype), requires_grad=True)
    with np.errstate(divide="ignore", over="ignore"):
        out = getattr(t, op)() if op != "neg" else -t
        out.backward(np.ones(1, dtype))
    np.testing.assert_array_equal(out.data, np.array([fwd], dtype))
    assert np.signbit(out.data[0]) == np.signbit(fwd)
    np.testing.assert_array_equal(t.grad, np.array([grad], dtype))


# The sweep: every elementwise primitive and reduction at edge values, forward and gradient against
# PyTorch (same dtype), NaN where PyTorch has NaN.  sigmoid is left to scipy above: PyTorch's own
# σ'(z) = (1 − σ)σ cancels to 0 for z > 37, ours keeps the tail.
EDGES = {np.float64: None, np.float32: None}
for _dt in EDGES:
    fi = np.finfo(_dt)
    EDGES[_dt] = [0.0, -0.0, np.inf, -np.inf, float(fi.max), -float(fi.max), float(fi.tiny), -float(fi.tiny),
                  1.0, -1.0, 0.5, 2.0]

UNARY = {
    "neg": lambda t: -t, "tanh": lambda t: t.tanh(), "relu": lambda t: t.relu(), "exp": lambda t: t.exp(),
    "log": lambda t: t.log(), "abs": lambda t: t.abs(), "sqrt": lambda t: t.sqrt(), "clone": lambda t: t.clone(),
    "clamp": lambda t: t.clamp(-1.0, 1.0), "pow2": lambda t: t ** 2, "pow3": lambda t: t ** 3,
    "pow0": lambda t: t ** 0, "pow_half": lambda t: t ** 0.5, "pow_m1": lambda t: t ** -1.0,
    "sum": lambda t: t.sum(), "mean": lambda t: t.mean(), "logsumexp": lambda t: t.logsumexp(dim=-1),
    "max": lambda t: t.max(), "max_dim": lambda t: t.max(dim=0)[0], "min_dim": lambda t: t.min(dim=0)[0],
    "softmax": lambda t: t.softmax(dim=0), "log_softmax": lambda t: t.log_softmax(dim=0),
}
# Outside the real domain PyTorch's pow(x, 0.5) is its sqrt (NaN at −inf, −inf slope at −0.0) while
# IEEE pow gives (−inf)^0.5 = +inf: both are conventions, so the sweep stays on x ≥ 0 there.
NONNEGATIVE = {"pow_half"}
# With a +∞ logit PyTorch's softmax is NaN everywhere; ours is NaN at the +∞ entries only and the exact
# 0 (log: −∞) elsewhere.  Pinned in test_softmax_with_an_infinite_logit; the sweep leaves +∞ out.
FINITE_ABOVE = {"softmax", "log_softmax"}


def _lse_ref(z, u):
    from scipy.special import logsumexp, softmax
    with np.errstate(all="ignore"):
        return np.asarray(logsumexp(z)), u * softmax(z)


# PyTorch's logsumexp slope is exp(z − lse): at z = (max, max) lse rounds to max and the slope comes
# out (1, 1), not softmax's (½, ½).  scipy's shifted softmax is the independent path there.
SCIPY_REF = {"logsumexp": _lse_ref}
BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "div": lambda a, b: a / b, "pow_tensor": lambda a, b: a ** b}


def _same(ours, theirs, dtype, what, atol=None):
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, what
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=f"{what}: NaN positions")
    fin = np.isfinite(theirs)
    np.testing.assert_array_equal(ours[~fin & ~np.isnan(theirs)], theirs[~fin & ~np.isnan(theirs)],
                                  err_msg=f"{what}: infinities")
    atol = float(np.finfo(dtype).tiny) if atol is None else atol
    rtol = 1e-14 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(ours[fin], theirs[fin], rtol=rtol, atol=atol, err_msg=what)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float64, np.float32]))
def test_edge_sweep_against_torch(data, dtype):
    torch = pytest.importorskip("torch")
    name = data.draw(st.sampled_from(sorted(UNARY) + sorted(BINARY)))
    edges = st.sampled_from(EDGES[dtype])
    n = data.draw(st.integers(1, 4))
    arrays = [np.array(data.draw(st.lists(edges, min_size=n, max_size=n)), dtype)
              for _ in range(2 if name in BINARY else 1)]
    if name in NONNEGATIVE:
        arrays = [np.abs(a) + 0.0 for a in arrays]  # + 0.0 turns −0.0 into 0.0
    if name in FINITE_ABOVE:
        arrays = [np.where(a == np.inf, np.finfo(dtype).max, a).astype(dtype) for a in arrays]
    fn = BINARY.get(name) or UNARY[name]
    u = np.array(data.draw(st.lists(st.sampled_from([1.0, -0.5, 2.0]), min_size=n, max_size=n)), dtype)
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    with np.errstate(all="ignore"):
        o = fn(*ours)
        uo = u[:o.size].reshape(o.shape)
        o.backward(uo)
    what = f"{name}{tuple(a.tolist() for a in arrays)} {np.dtype(dtype)}"
    if name in SCIPY_REF and not (arrays[0] == np.inf).any():  # with +∞, PyTorch's exp(z − ∞) is right
        fwd, grad = SCIPY_REF[name](arrays[0].astype(np.float64), uo.astype(np.float64))
        _same(o.data, fwd.astype(dtype), dtype, what + " forward")
        _same(ours[0].grad, grad.astype(dtype), dtype, what + " gradient 0", atol=8 * float(np.finfo(dtype).eps))
        return
    t = fn(*theirs)
    t.backward(torch.tensor(uo))
    _same(o.data, t.detach().numpy(), dtype, what + " forward")
    for k, (a, b) in enumerate(zip(ours, theirs)):
        # a gradient that cancels to 0 (u − p Σu at equal logits) is 0 only up to rounding of |u| ≤ 2
        _same(a.grad, b.grad.numpy(), dtype, what + f" gradient {k}", atol=8 * float(np.finfo(dtype).eps))


def test_softmax_with_an_infinite_logit():
    with np.errstate(invalid="ignore"):
        p = Tensor([0.0, np.inf, -np.inf]).softmax(0).data
        lp = Tensor([0.0, np.inf]).log_softmax(0).data
    assert p[0] == 0.0 and np.isnan(p[1]) and p[2] == 0.0
    assert lp[0] == -np.inf and np.isnan(lp[1])
    # and at the other end of the range, where z − logsumexp z would round to 0: the exact −log 2
    big = np.finfo(np.float64).max
    np.testing.assert_allclose(Tensor([big, big]).log_softmax(0).data, [-np.log(2.0)] * 2, rtol=1e-15)


# --------------------------------------------------------------------------- 3. overflow in a hidden layer


def test_hidden_layer_overflow_raises_or_is_right():
    """MLP([8, 4, 3], tanh, softmax, seed=404) on huge finite x: the issue saw 10 of 3,000 silently wrong.

    The independent path scales x by 2⁻⁶⁰ before W^[1] (exact in binary floating point), so W^[1] x is
    computed without an intermediate overflow, then scales back.
    """
    m = MLP([8, 4, 3], hidden="tanh", output="softmax", seed=404)
    W1, b1, W2, b2 = (p.data for p in m.parameters())
    rng = np.random.default_rng(0)
    wrong = raised = 0
    s = 2.0 ** -60
    for _ in range(3000):
        x = rng.uniform(-1, 1, 8) * 1.7e308
        with np.errstate(over="ignore"):
            z1 = (W1 @ (x * s)) / s + b1
        z2 = W2 @ np.tanh(z1) + b2
        p = np.exp(z2 - z2.max())
        p /= p.sum()
        try:
            out = m(x).data
        except ValueError as e:
            assert str(e).startswith("x: the forward pass overflowed"), e
            raised += 1
            continue
        wrong += not np.allclose(out, p, rtol=1e-9, atol=0)
    assert wrong == 0 and raised > 0


def test_hidden_overflow_hidden_by_relu_is_caught():
    m = MLP([2, 2, 1], hidden="relu", output="identity", weight_init=1.0, bias_init=0.0, seed=0)
    m.layers[0].W.data[...] = [[1.0, 1.0], [-1.0, -1.0]]
    with pytest.raises(ValueError, match="^x: the forward pass overflowed"):
        m(np.array([1.5e308, 1.5e308]))  # z^[1] = (inf, −inf): relu makes (inf, 0), then inf
    with pytest.raises(ValueError, match="^x: the forward pass overflowed"):
        m.trace(np.array([-1.5e308, -1.5e308]))  # (−inf, inf)


# --------------------------------------------------------------------------- 4. NaN: data, not the model's input


def test_tensor_accepts_nan_and_the_model_boundary_refuses_it():
    t = Tensor([np.nan, 1.0])
    assert np.isnan(t.data[0])  # PyTorch accepts NaN in a tensor; so does ours (README)
    with pytest.raises(ValueError, match="^x: expected finite values"):
        MLP([2, 1], seed=0)(t)


# --------------------------------------------------------------------------- 5. dtypes


def test_float16_is_refused_not_silently_widened():
    with pytest.raises(ValueError, match="^dtype: expected float32 or float64"):
        Tensor([1.5], dtype="float16")
    with pytest.raises(ValueError, match="^data: expected float32 or float64 data, got float16"):
        Tensor(np.array([1.5], np.float16))


def test_narrow_integers_do_not_wrap():
    a = Tensor(np.ones((100, 100), np.int8))
    assert a.dtype == np.int64
    flat = a.reshape(-1)
    assert (flat @ flat).item() == 10_000  # int8 arithmetic would give 10000 mod 256 = 16
    assert Tensor(np.array([200], np.uint8)).data[0] == 200
    with pytest.raises(ValueError, match="^data: uint64 values"):
        Tensor(np.array([2**64 - 1], np.uint64))


# --------------------------------------------------------------------------- 6. backward's grad named


def test_backward_grad_complex_or_text_is_named():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(ValueError, match="^grad: expected real numbers, got complex"):
        y.backward(grad=1 + 1j)
    with pytest.raises(TypeError, match="^grad: expected an array of real numbers"):
        y.backward(grad="a")
    with pytest.raises(TypeError, match="^grad: "):
        (x * 2).backward(grad=[[1.0], [1.0, 2.0]])
    y.backward(grad=np.float32(1.0))  # a real number of another dtype is fine
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
