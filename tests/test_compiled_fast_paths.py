"""The compiled replay's fast paths: one flat SGD update, the fused BLAS mode, gradient layouts.

Expected values come from the eager tape run side by side (Tensors, the primitives' vjps and
``SGD.step``), from plain NumPy formulas written here, and from finite differences.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_mlp import MLP, Tensor, functional as F, optim
from tinygrad_mlp.autograd import primitives as P
from tinygrad_mlp.compiler.compiled import compile as compile_step
from tinygrad_mlp.nn import Linear

from test_compiled import assert_same_weights, data, make


def bits_equal(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ------------------------------------------------------------------------ one parameter buffer
def test_an_mlps_parameters_tile_one_contiguous_buffer_in_parameters_order():
    m = MLP([5, 4, 3], output="softmax", seed=0)
    params = m.parameters()
    base = params[0].data.base
    assert base is not None and base.ndim == 1 and base.size == sum(p.data.size for p in params)
    start = base.__array_interface__["data"][0]
    for p in params:
        assert p.data.base is base and p.data.flags.c_contiguous
        assert p.data.__array_interface__["data"][0] == start
        start += p.data.nbytes
    # the values are the initialiser's, as before the move: the same seed, the same draws
    rng = np.random.default_rng(0)
    a = np.sqrt(6.0 / (5 + 4))
    assert np.array_equal(m.layers[0].W.data, rng.uniform(-a, a, size=(4, 5)))
    # in-place writers keep the views: load_state_dict, SGD
    m.load_state_dict({k: v + 1.0 for k, v in m.state_dict().items()})
    m.loss(np.ones(5), np.eye(3)[0]).backward()
    optim.SGD(params, 0.1).step()
    assert all(p.data.base is base for p in params)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_the_flat_sgd_update_is_bit_identical_to_sgd_step_and_is_used(momentum):
    rng = np.random.default_rng(1)
    m1, _, eager = make([7, 6, 5, 4], momentum=momentum, lr=0.05)
    m2, o2, step = make([7, 6, 5, 4], momentum=momentum, lr=0.05)
    compiled = compile_step(step)
    xs, ys = data(rng, 7, 4, None, "softmax", 12)
    for x, y in zip(xs, ys):
        assert float(eager(x, y).data) == compiled(x, y)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert bits_equal(p1.data, p2.data) and bits_equal(p1.grad, p2.grad)
    # one mul and one sub over all parameters, not one pair per parameter
    src = compiled.source
    assert src.count("sub(F") >= 1 and "if not mu:" in src
    if momentum:  # the velocity SGD keeps is the replay's flat buffer, seen per parameter
        vel = o2.velocity
        assert all(v is not None and v.base is vel[0].base for v in vel)


def test_flat_sgd_follows_the_velocity_and_rate_the_user_changes_between_replays():
    rng = np.random.default_rng(2)
    m1, o1, eager = make([4, 5, 3], momentum=0.9, lr=0.05)
    m2, o2, step = make([4, 5, 3], momentum=0.9, lr=0.05)
    compiled = compile_step(step)
    xs, ys = data(rng, 4, 3, None, "softmax", 16)
    for k, (x, y) in enumerate(zip(xs, ys)):
        if k == 4:  # reset the momentum: the replay starts a fresh flat velocity, as SGD does
            o1.velocity = [None] * 4
            o2.velocity = [None] * 4
        if k == 8:  # a velocity the replay did not make: the per-parameter form takes over
            for o in (o1, o2):
                o.velocity = [np.full_like(p.data, 0.5) for p in o.params]
        if k == 10:
            o1.momentum = o2.momentum = 0.0
            o1.lr = o2.lr = 0.01
        if k == 13:
            o1.momentum = o2.momentum = 0.5
        assert float(eager(x, y).data) == compiled(x, y), k
    assert compiled.captures == 1
    assert_same_weights(m1, m2)


def test_parameters_that_do_not_tile_one_buffer_take_the_per_parameter_update():
    rng = np.random.default_rng(3)

    def build():
        layers = [Linear(4, 5, rng=np.random.default_rng(0)), Linear(5, 3, rng=np.random.default_rng(1))]
        params = [p for l in layers for p in l.parameters()]
        o = optim.SGD(params, 0.1)

        def step(x, y):
            o.zero_grad()
            L = F.cross_entropy(layers[1](layers[0](x).tanh()), y)
            L.backward()
            o.step()
            return L
        return params, step

    p1, eager = build()
    p2, step = build()
    compiled = compile_step(step)
    xs, ys = data(rng, 4, 3, None, "softmax", 6)
    for x, y in zip(xs, ys):
        assert float(eager(x, y).data) == compiled(x, y)
    assert all(bits_equal(a.data, b.data) for a, b in zip(p1, p2))
    assert "sub(F" not in compiled.source


# ------------------------------------------------------------------------ fused BLAS mode
@settings(max_examples=15)
@given(sizes=st.lists(st.integers(1, 7), min_size=2, max_size=4),
       hidden=st.sampled_from(["tanh", "sigmoid", "relu"]),
       pair=st.sampled_from([("identity", "squared_error"), ("softmax", "cross_entropy")]),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16))
def test_fused_replay_matches_eager_to_rounding_over_random_mlps(sizes, hidden, pair, dtype, seed):
    output, loss = pair
    if output == "softmax" and sizes[-1] < 2:
        sizes = sizes[:-1] + [2]
    kw = dict(hidden=hidden, output=output, loss=loss, seed=seed, dtype=dtype, lr=0.05)
    m1, _, eager = make(sizes, **kw)
    m2, _, step = make(sizes, **kw)
    fused = compile_step(step, fused=True)
    xs, ys = data(np.random.default_rng(seed), sizes[0], sizes[-1], None, output, 6)
    xs, ys = [x.astype(dtype) for x in xs], [y.astype(dtype) for y in ys]
    eps = np.finfo(dtype).eps
    for x, y in zip(xs, ys):
        le, lf = float(eager(x, y).data), fused(x, y)
        assert abs(le - lf) <= 64 * eps * max(1.0, abs(le))
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        scale = max(1.0, float(np.abs(p1.data).max()))
        np.testing.assert_allclose(p2.data, p1.data, rtol=0, atol=(1e-12 if dtype == np.float64 else 1e-4) * scale)
    # the per-example W ← W − η δ hᵀ ran as BLAS ger: δ hᵀ never formed, so W.grad is None (the trap)
    assert all(layer.W.grad is None for layer in m2.layers)
    assert all(layer.b.grad is not None for layer in m2.layers)
    for l1, l2 in zip(m1.layers, m2.layers):  # δ itself is computed by the tape's own operations
        assert np.allclose(l2.b.grad, l1.b.grad, rtol=0, atol=64 * eps * max(1.0, np.abs(l1.b.grad).max()))


def test_fused_rank1_update_equals_the_composed_outer_product_and_sgd_step():
    rng = np.random.default_rng(4)
    m, _, step = make([6, 4, 3], lr=0.1)
    fused = compile_step(step, fused=True)
    xs, ys = data(rng, 6, 3, None, "softmax", 3)
    fused(xs[0], ys[0])  # capture (eager)
    for x, y in zip(xs[1:], ys[1:]):
        # the composed ops, in NumPy from this step's starting weights
        (W1, b1), (W2, b2) = [(l.W.data.copy(), l.b.data.copy()) for l in m.layers]
        h = np.tanh(W1 @ x + b1)
        z = W2 @ h + b2
        p = np.exp(z - z.max())
        p /= p.sum()
        d2 = p - y
        d1 = (W2.T @ d2) * (1 - h * h)
        fused(x, y)
        np.testing.assert_allclose(m.layers[1].W.data, W2 - 0.1 * np.outer(d2, h), rtol=0, atol=1e-15)
        np.testing.assert_allclose(m.layers[0].W.data, W1 - 0.1 * np.outer(d1, x), rtol=0, atol=1e-15)
        np.testing.assert_allclose(m.layers[1].b.data, b2 - 0.1 * d2, rtol=0, atol=1e-15)
        np.testing.assert_allclose(m.layers[0].b.data, b1 - 0.1 * d1, rtol=0, atol=1e-15)
    assert "overwrite_a=1" in fused.source


def test_fused_mode_with_momentum_or_nesterov_runs_the_exact_update():
    rng = np.random.default_rng(5)
    for kw in (dict(momentum=0.9), dict(momentum=0.9, nesterov=True)):
        m1 = MLP([5, 4, 3], output="softmax", seed=1)
        m2 = MLP([5, 4, 3], output="softmax", seed=1)
        o1, o2 = optim.SGD(m1.parameters(), 0.05, **kw), optim.SGD(m2.parameters(), 0.05, **kw)

        def eager(x, y):
            o1.zero_grad(); L = m1.loss(x, y); L.backward(); o1.step(); return L

        def step(x, y):
            o2.zero_grad(); L = m2.loss(x, y); L.backward(); o2.step(); return L
        fused = compile_step(step, fused=True)
        xs, ys = data(rng, 5, 3, None, "softmax", 6)
        for x, y in zip(xs, ys):
            assert float(eager(x, y).data) == fused(x, y)
        assert_same_weights(m1, m2)
        assert all(bits_equal(p1.grad, p2.grad) for p1, p2 in zip(m1.parameters(), m2.parameters()))


def test_fused_must_be_a_bool():
    with pytest.raises(TypeError, match="^fused: expected a bool"):
        compile_step(lambda x: None, fused="yes")


# ------------------------------------------------------------------------ layouts and kernels
def test_a_batch_layers_weight_gradient_has_the_weights_memory_order():
    m = MLP([6, 5, 3], output="softmax", seed=0)
    X = np.random.default_rng(0).normal(size=(8, 6))
    m.loss(X, np.eye(3)[np.arange(8) % 3]).backward()
    for layer in m.layers:
        assert layer.W.grad.flags.c_contiguous, "W.grad strided: every update pass over it would be slower"
        # and it is Xᵀδ's transpose: the same numbers as the hand-written δᵀ h
    h = np.tanh(X @ m.layers[0].W.data.T + m.layers[0].b.data)
    z = h @ m.layers[1].W.data.T + m.layers[1].b.data
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(m.layers[1].W.grad, (p - np.eye(3)[np.arange(8) % 3]).T @ h, rtol=1e-12, atol=1e-12)


def test_matmul_vjp_in_both_layouts_agrees_with_finite_differences():
    from tinygrad_mlp.autograd.gradcheck import gradcheck

    rng = np.random.default_rng(6)
    A = Tensor(rng.normal(size=(4, 3)), requires_grad=True)
    W = Tensor(rng.normal(size=(2, 3)), requires_grad=True)
    C = rng.normal(size=(4, 2))
    assert gradcheck(lambda a, w: (a @ w.T) * C, A, W, seed=0)  # Wᵀ: an F-ordered right operand
    assert gradcheck(lambda a, w: (a.T.T @ w.T) ** 2, A, W, seed=1)
    assert gradcheck(lambda a, w: w @ a.T, A, W, seed=2)  # Aᵀ: an F-ordered right operand
    assert gradcheck(lambda a, w: (a.T).T @ (w.T @ w), A, W, seed=3)


def test_strided_or_subclassed_inputs_replay_as_copies_never_as_the_miss_marker():
    rng = np.random.default_rng(7)
    m1, _, eager = make([4, 3, 2])
    m2, _, step = make([4, 3, 2])
    compiled = compile_step(step)
    X = rng.normal(size=(4, 5))  # columns are strided views
    Y = np.eye(2)[[0, 1, 1, 0, 1]]
    for j in range(5):
        got = compiled(X[:, j], Y[j])
        assert isinstance(got, float) and got == float(eager(X[:, j], Y[j]).data)
    assert compiled.captures == 1
    assert_same_weights(m1, m2)


def test_tanh_and_sigmoid_vjps_in_place_equal_the_textbook_formulas_and_leave_inputs_alone():
    rng = np.random.default_rng(8)
    for dt in (np.float64, np.float32):
        z = rng.normal(size=(5, 4)).astype(dt)
        g = rng.normal(size=(5, 4)).astype(dt)
        h = np.tanh(z)
        h0, g0 = h.copy(), g.copy()
        assert bits_equal(P.Tanh.vjp(g, h)[0], g * (dt(1) - h * h))
        s = 0.5 * (1.0 + np.tanh(0.5 * z))
        assert bits_equal(P.Sigmoid.vjp(g, (s, dt(1) - s))[0], g * (s * (dt(1) - s)))  # ctx = (σ(z), σ(−z))
        assert bits_equal(h, h0) and bits_equal(g, g0)
    # a broadcast or wider upstream gradient takes the plain formula
    h = np.tanh(rng.normal(size=3)).astype(np.float32)
    assert P.Tanh.vjp(np.float64(2.0), h)[0].dtype == np.float64


@settings(max_examples=30)
@given(n=st.integers(1, 200), dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16))
def test_flat_max_and_flat_sum_agree_with_numpy(n, dtype, seed):
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=n) * 10).astype(dtype)
    assert P.flat_max(z) == z.max()
    exact = float(np.sum(z.astype(np.float64)))
    # up to FLAT_SUM_MAX entries in double precision (also float32 data), then pairwise in the dtype
    eps = np.finfo(np.float64 if n <= P.FLAT_SUM_MAX else dtype).eps
    assert abs(P.flat_sum(z) - exact) <= n * eps * float(np.abs(z.astype(np.float64)).sum())
    z[rng.integers(n)] = np.nan
    assert np.isnan(P.flat_max(z)) and np.isnan(P.flat_sum(z))
    assert P.flat_max(z.reshape(1, -1)) is not None  # 2-d: the ufunc reduction


def test_one_examples_cross_entropy_with_a_one_hot_row_is_one_dot_product_on_the_tape():
    from tinygrad_mlp.autograd.tensor import tape_size

    z = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    y = np.array([0.0, 0.0, 1.0])
    before = tape_size()
    L = F.cross_entropy(z, y)
    assert tape_size() - before == 3  # logsumexp, yᵀz, the difference
    L.backward()
    p = np.exp(z.data) / np.exp(z.data).sum()
    np.testing.assert_allclose(z.grad, p - y, rtol=0, atol=1e-15)
    assert float(L.data) == pytest.approx(np.log(np.exp(z.data).sum()) - 2.0, abs=1e-15)
