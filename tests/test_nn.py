"""Layers, activations, initialisers, losses and SGD: each checked against NumPy written in the test."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_mlp import functional as F
from tinygrad_mlp import init
from tinygrad_mlp.nn import MLP, Linear
from tinygrad_mlp.nn.optim import SGD
from tinygrad_mlp.autograd.tensor import Tensor


def np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


NP_G = {"tanh": np.tanh, "sigmoid": np_sigmoid, "relu": lambda z: np.maximum(z, 0), "identity": lambda z: z}
NP_OUT = {"identity": lambda z: z, "sigmoid": np_sigmoid, "softmax": np_softmax}


# ----------------------------------------------------------------------------- Linear
def test_linear_vector_and_batch():
    rng = np.random.default_rng(0)
    lin = Linear(4, 3, rng=rng)
    assert lin.W.shape == (3, 4) and lin.b.shape == (3,)  # W^[l] is (out, in)
    lin.b.data[:] = rng.standard_normal(3)
    W, b = lin.W.data, lin.b.data
    H = rng.standard_normal((5, 4))
    z_one = lin(Tensor(H[2])).data
    np.testing.assert_allclose(z_one, W @ H[2] + b, rtol=1e-14)  # z = W h + b
    z_batch = lin(Tensor(H)).data
    assert z_batch.shape == (5, 3)
    for i in range(5):  # rows are examples: row i is the single-example z
        np.testing.assert_allclose(z_batch[i], W @ H[i] + b, rtol=1e-14)
    assert lin.parameters() == [lin.W, lin.b]


@pytest.mark.parametrize("args, field", [((0, 3), "in_features"), ((4, -1), "out_features"),
                                         ((2.5, 3), "in_features"), ((True, 3), "in_features")])
def test_linear_rejects_bad_sizes(args, field):
    with pytest.raises(ValueError, match=f"^{field}: expected a positive int"):
        Linear(*args)


# ----------------------------------------------------------------------------- MLP
def test_mlp_parameters_shapes_and_order():
    m = MLP([4, 4, 3, 3], hidden="tanh", output="identity", seed=0)
    assert m.n_layers == 3
    assert [p.shape for p in m.parameters()] == [(4, 4), (4,), (3, 4), (3,), (3, 3), (3,)]
    assert all(p.requires_grad for p in m.parameters())
    assert list(m.state_dict()) == ["W1", "b1", "W2", "b2", "W3", "b3"]


@pytest.mark.parametrize("hidden", sorted(NP_G))
@pytest.mark.parametrize("output", sorted(NP_OUT))
def test_mlp_forward_matches_numpy(hidden, output):
    m = MLP([3, 5, 4, 2], hidden=hidden, output=output, bias_init=0.2, seed=1)
    X = np.random.default_rng(2).standard_normal((6, 3))
    h = X
    for l, layer in enumerate(m.layers):
        z = h @ layer.W.data.T + layer.b.data
        h = NP_OUT[output](z) if l == 2 else NP_G[hidden](z)
    np.testing.assert_allclose(m(X).data, h, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(m(X[0]).data, h[0], rtol=1e-13, atol=1e-15)  # one example as a vector
    zs, hs = m.trace(X)
    np.testing.assert_allclose(hs[-1].data, h, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(m.logits(X).data, zs[-1].data, rtol=0, atol=0)


def test_zero_grad_clears_every_parameter():
    m = MLP([3, 2, 2], seed=0)
    m.loss([[1.0, 2, 3]], [[0.0, 1]], "squared_error").backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_backward_accumulates_until_zero_grad():
    m = MLP([2, 2], hidden="identity", output="identity", weight_init=0.5, bias_init=0.0)
    x, y = [1.0, 2.0], [0.0, 0.0]
    m.loss(x, y, "squared_error").backward()
    g1 = m.layers[0].W.grad.copy()
    m.loss(x, y, "squared_error").backward()
    # ŷ = W x = (1.5, 1.5); ∂L/∂W = (ŷ − y) xᵀ, twice after two backwards.
    np.testing.assert_allclose(g1, np.outer([1.5, 1.5], x), rtol=1e-15)
    np.testing.assert_allclose(m.layers[0].W.grad, 2 * g1, rtol=1e-15)


def test_state_dict_is_a_copy_and_round_trips():
    a = MLP([4, 3, 2], seed=3, bias_init=0.1)
    s = a.state_dict()
    s["W1"][0, 0] = 123.0
    assert a.layers[0].W.data[0, 0] != 123.0  # the dict holds copies
    b = MLP([4, 3, 2], seed=99)
    b.load_state_dict(a.state_dict())
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v)
    X = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(a(X).data, b(X).data)


@pytest.mark.parametrize("mutate, match", [
    (lambda s: s.pop("b2"), r"^state: expected keys .*missing \['b2'\]"),
    (lambda s: s.update(W9=np.zeros(1)), r"^state: expected keys .*unexpected \['W9'\]"),
    (lambda s: s.update(W1=np.zeros((4, 3))), r"^state\['W1'\]: expected shape \(3, 4\), got \(4, 3\)"),
    (lambda s: s.update(b1=np.array([0.0, np.nan, 0.0])), r"^state\['b1'\]: expected finite numbers"),
])
def test_load_state_dict_rejects_and_changes_nothing(mutate, match):
    m = MLP([4, 3, 2], seed=0)
    before = m.state_dict()
    bad = MLP([4, 3, 2], seed=1).state_dict()
    mutate(bad)
    with pytest.raises(ValueError, match=match):
        m.load_state_dict(bad)
    for k, v in before.items():
        np.testing.assert_array_equal(m.state_dict()[k], v)


def test_load_state_dict_rejects_a_non_dict():
    with pytest.raises(TypeError, match="^state: expected a dict"):
        MLP([2, 2], seed=0).load_state_dict([np.zeros((2, 2))])


@pytest.mark.parametrize("kwargs, match", [
    (dict(sizes=[4]), "^sizes: "), (dict(sizes="44"), "^sizes: "),
    (dict(sizes=[4, 2], hidden="gelu"), "^hidden: expected one of .*'gelu'"),
    (dict(sizes=[4, 2], output="tanh"), "^output: expected one of .*'tanh'"),
    (dict(sizes=[4, 2], dtype=np.float16), "^dtype: expected float64 or float32"),
    (dict(sizes=[4, 2], seed=-3), "^seed: expected None, a non-negative int"),
    (dict(sizes=[4, 2], weight_init="he"), "^weight_init: "),
    (dict(sizes=[4, 2], bias_init=float("nan")), "^value: expected a finite number"),
])
def test_mlp_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(**kwargs)


@pytest.mark.parametrize("kwargs, match", [(dict(seed="abc"), "^seed: expected None"), (dict(seed=1.5), "^seed: "),
                                           (dict(dtype="foo"), "^dtype: expected float64 or float32")])
def test_mlp_rejects_bad_argument_types(kwargs, match):
    with pytest.raises(TypeError, match=match):
        MLP([4, 2], **kwargs)


@pytest.mark.parametrize("x, match", [([1.0, 2.0], r"^x: expected 3 features"), ([[1.0, 2, 3, 4]], r"^x: expected 3"),
                                      ([1.0, np.nan, 0.0], "^x: expected finite"), ([], "^x: expected non-empty")])
def test_mlp_rejects_bad_input(x, match):
    with pytest.raises(ValueError, match=match):
        MLP([3, 2], seed=0)(x)


def test_cross_entropy_needs_softmax_output_and_loss_names_are_checked():
    with pytest.raises(ValueError, match="^loss: cross_entropy needs output='softmax'"):
        MLP([2, 2], output="identity", seed=0).loss([1.0, 0.0], [0.0, 1.0], "cross_entropy")
    with pytest.raises(ValueError, match="^loss: expected one of"):
        MLP([2, 2], seed=0).loss([1.0, 0.0], [0.0, 1.0], "hinge")


def test_float32_network_stays_float32():
    m = MLP([3, 4, 2], output="softmax", seed=0, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in m.parameters())
    loss = m.loss(np.ones((2, 3)), [0, 1])
    assert m(np.ones((2, 3))).dtype == np.float32 and loss.dtype == np.float32
    loss.backward()
    assert all(p.grad.dtype == np.float32 for p in m.parameters())


# ----------------------------------------------------------------------------- initialisers
def test_constant_and_zeros():
    m = MLP([4, 4, 3, 3], weight_init=0.1, bias_init=0.1)
    assert all(np.all(p.data == 0.1) for p in m.parameters())
    z = MLP([3, 2], weight_init="zeros", bias_init=init.zeros())
    assert all(np.all(p.data == 0.0) for p in z.parameters())
    assert np.all(init.constant(0.25)((2, 3)) == 0.25)
    with pytest.raises(ValueError, match="^value: expected a finite number"):
        init.constant(float("inf"))


def test_glorot_draws_numpy_uniform_in_layer_order():
    # Independent path: the same Generator drawing U(−a, a), a = sqrt(6 / (fan_in + fan_out)),
    # for W^[1] then W^[2] (zero biases draw nothing).
    m = MLP([5, 4, 3], seed=42)
    rng = np.random.default_rng(42)
    W1 = rng.uniform(-np.sqrt(6 / 9), np.sqrt(6 / 9), (4, 5))
    W2 = rng.uniform(-np.sqrt(6 / 7), np.sqrt(6 / 7), (3, 4))
    np.testing.assert_array_equal(m.layers[0].W.data, W1)
    np.testing.assert_array_equal(m.layers[1].W.data, W2)
    assert np.all(m.layers[0].b.data == 0) and np.all(m.layers[1].b.data == 0)


def test_glorot_bound_and_spread():
    a = np.sqrt(6 / (300 + 200))
    w = init.glorot_uniform()((200, 300), np.random.default_rng(0))
    assert w.shape == (200, 300) and np.all(np.abs(w) <= a)
    assert np.abs(w).max() > 0.99 * a  # fills the interval
    np.testing.assert_allclose(w.var(), a * a / 3, rtol=0.02)  # Var U(−a, a) = a²/3
    w2 = init.xavier_uniform(gain=2.0)((200, 300), np.random.default_rng(0))
    np.testing.assert_allclose(w2, 2 * w, rtol=1e-15)  # the other name, the same draw, scaled by the gain


def test_seeded_runs_repeat_exactly():
    a = MLP([6, 5, 4], hidden="relu", seed=7).state_dict()
    b = MLP([6, 5, 4], hidden="relu", seed=7).state_dict()
    c = MLP([6, 5, 4], hidden="relu", seed=np.random.default_rng(7)).state_dict()
    d = MLP([6, 5, 4], hidden="relu", seed=8).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a[k], c[k])
    assert not np.array_equal(a["W1"], d["W1"])


def test_seeded_training_repeats_exactly():
    def run(seed):
        m = MLP([3, 4, 2], output="softmax", seed=seed)
        opt = SGD(m.parameters(), lr=0.5, momentum=0.5)
        X = np.random.default_rng(seed).standard_normal((8, 3))
        y = (X[:, 0] > 0).astype(np.int64)
        for _ in range(5):
            opt.zero_grad()
            m.loss(X, y).backward()
            opt.step()
        return m.state_dict()
    a, b = run(11), run(11)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


# ----------------------------------------------------------------------------- losses
def test_squared_error_value_and_gradient():
    rng = np.random.default_rng(0)
    yh, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    t = Tensor(yh, requires_grad=True)
    L = F.squared_error(t, y)  # reduction="sum": ½ Σ over examples and units
    np.testing.assert_allclose(L.data, 0.5 * np.sum((yh - y) ** 2), rtol=1e-14)
    L.backward()
    np.testing.assert_allclose(t.grad, yh - y, rtol=1e-14)  # ∂L/∂ŷ = ŷ − y
    t2 = Tensor(yh, requires_grad=True)
    M = F.squared_error(t2, y, reduction="mean")
    np.testing.assert_allclose(M.data, 0.5 * np.sum((yh - y) ** 2) / 4, rtol=1e-14)
    M.backward()
    np.testing.assert_allclose(t2.grad, (yh - y) / 4, rtol=1e-14)
    one = F.squared_error(Tensor(yh[1]), y[1])
    np.testing.assert_allclose(one.data, 0.5 * np.sum((yh[1] - y[1]) ** 2), rtol=1e-14)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_cross_entropy_one_hot_equals_integer_labels(reduction):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((5, 4)) * 3
    labels = rng.integers(0, 4, 5)
    one_hot = np.eye(4)[labels]
    p = np_softmax(z)
    per = -np.log(p[np.arange(5), labels])
    want = per.sum() if reduction == "sum" else per.mean()
    for y in (labels, one_hot, labels.tolist(), Tensor(labels)):
        t = Tensor(z, requires_grad=True)
        L = F.cross_entropy(t, y, reduction)
        np.testing.assert_allclose(L.data, want, rtol=1e-13)
        L.backward()
        np.testing.assert_allclose(t.grad, (p - one_hot) / (1 if reduction == "sum" else 5), rtol=1e-12, atol=1e-15)


def test_cross_entropy_single_example_and_large_logits():
    z = np.array([1000.0, 0.0, -1000.0])  # exp(1000) overflows: only logsumexp survives this
    for y in (0, np.int64(0), [1.0, 0.0, 0.0]):
        t = Tensor(z, requires_grad=True)
        L = F.cross_entropy(t, y)
        assert L.data == pytest.approx(0.0, abs=1e-300)
        L.backward()
        np.testing.assert_allclose(t.grad, [0.0, 0.0, 0.0], atol=1e-300)
    L = F.cross_entropy(Tensor(z), 1)
    np.testing.assert_allclose(L.data, 1000.0, rtol=1e-15)  # −log p₁ = lse − z₁ = 1000


@pytest.mark.parametrize("call, exc, match", [
    (lambda: F.squared_error(Tensor([1.0, 2.0]), [1.0, 2.0], reduction="avg"), ValueError, "^reduction: "),
    (lambda: F.squared_error(Tensor([[1.0, 2.0]]), [[1.0, 2.0]], reduction="avg"), ValueError, "^reduction: "),
    (lambda: F.cross_entropy(Tensor([1.0, 2.0]), 0, reduction="none"), ValueError, "^reduction: "),
    (lambda: F.squared_error(Tensor([1.0, 2.0]), [1.0, 2.0, 3.0]), ValueError, r"^y: expected shape \(2,\)"),
    (lambda: F.squared_error(Tensor([1.0, 2.0]), [1.0, np.nan]), ValueError, "^y: expected finite"),
    (lambda: F.cross_entropy(Tensor([1.0, 2.0]), 2), ValueError, r"^y: class labels must lie in \[0, 2\)"),
    (lambda: F.cross_entropy(Tensor([[1.0, 2.0]]), [5]), ValueError, r"^y: class labels must lie in \[0, 2\)"),
    (lambda: F.cross_entropy(Tensor([[1.0, 2.0]]), [[0.0, 1.0, 0.0]]), ValueError, "^y: expected integer labels"),
    (lambda: F.cross_entropy(Tensor(np.ones((2, 2, 2))), 0), ValueError, "^logits: expected a vector"),
    (lambda: F.squared_error(Tensor([1.0]), ["a"]), TypeError, "^y: expected numeric"),
    (lambda: F.squared_error(np.zeros(2), [1.0, 2.0]), TypeError, "^y_hat: expected a Tensor"),
    (lambda: F.cross_entropy(np.zeros(2), 0), TypeError, "^logits: expected a Tensor"),
    (lambda: F.cross_entropy(Tensor([0.0, 0.0]), [-1.0, 2.0]), ValueError, "^y: expected one-hot"),
    (lambda: F.cross_entropy(Tensor([[0.0, 0.0]]), [[0.5, 0.4]]), ValueError, "^y: expected one-hot"),
])
def test_loss_input_errors_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ----------------------------------------------------------------------------- SGD
def test_sgd_plain_step():
    p = Tensor([1.0, -2.0], requires_grad=True)
    p.grad = np.array([0.5, 1.0])
    opt = SGD([p], lr=0.1)
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.05, -2.0 - 0.1], rtol=1e-15)
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no gradient: nothing moves
    np.testing.assert_allclose(p.data, [0.95, -2.1], rtol=1e-15)


def test_sgd_momentum_against_the_formula_by_hand():
    # v ← μ v + g,  θ ← θ − η v;  μ = 0.9, η = 0.1, θ₀ = (1, −2), three given gradients.
    p = Tensor([1.0, -2.0], requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9)
    grads = [np.array([0.5, 1.0]), np.array([-1.0, 0.25]), np.array([2.0, 2.0])]
    # By hand:
    # v₁ = (0.5, 1),                       θ₁ = (1 − 0.05, −2 − 0.1)        = (0.95, −2.1)
    # v₂ = 0.9 (0.5, 1) + (−1, 0.25)       = (−0.55, 1.15),  θ₂ = (1.005, −2.215)
    # v₃ = 0.9 (−0.55, 1.15) + (2, 2)      = (1.505, 3.035), θ₃ = (0.8545, −2.5185)
    want = [(0.95, -2.1), (1.005, -2.215), (0.8545, -2.5185)]
    for g, w in zip(grads, want):
        p.grad = g.copy()
        opt.step()
        np.testing.assert_allclose(p.data, w, rtol=1e-14)
    np.testing.assert_allclose(opt.velocity[0], [1.505, 3.035], rtol=1e-14)


@given(st.floats(0.0, 0.99), st.floats(1e-3, 1.0), st.integers(1, 6), st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None)
def test_sgd_momentum_matches_sklearn_form(mu, lr, steps, seed):
    # scikit-learn's update u ← μ u − η g, θ ← θ + u is the same trajectory for a constant η.
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(3)
    gs = rng.standard_normal((steps, 3))
    p = Tensor(theta0.copy(), requires_grad=True)
    opt = SGD([p], lr=lr, momentum=mu)
    theta, u = theta0.copy(), np.zeros(3)
    for g in gs:
        p.grad = g.copy()
        opt.step()
        u = mu * u - lr * g
        theta = theta + u
    np.testing.assert_allclose(p.data, theta, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(lr=0.0), ValueError, "^lr: expected a positive"), (dict(lr=float("nan")), ValueError, "^lr: "),
    (dict(lr=0.1, momentum=1.0), ValueError, r"^momentum: expected a number in \[0, 1\)"),
    (dict(lr=0.1, momentum=-0.1), ValueError, "^momentum: "),
])
def test_sgd_rejects_bad_hyperparameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        SGD([Tensor([1.0], requires_grad=True)], **kwargs)


def test_sgd_rejects_bad_params():
    with pytest.raises(ValueError, match="^params: expected at least one"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match=r"^params\[0\]: expected a Tensor with requires_grad=True"):
        SGD([Tensor([1.0])], lr=0.1)
