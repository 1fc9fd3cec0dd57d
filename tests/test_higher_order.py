"""Gradients of gradients: backward(create_graph=True), the transforms, and their numbers.

Expected values come from other paths: the practical's hand-written backprop (reference.py)
differentiated by central differences, closed forms of third derivatives, finite differences of
the forward, and PyTorch when installed.
"""
from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import arrays_of_shape
from tinygrad_mlp import Tensor, autograd as ag, reference, tape_size
from tinygrad_mlp import functional as F
from tinygrad_mlp.autograd.tape import sweep
from tinygrad_mlp.practical.exercise import builtin


# ------------------------------------------------------------------ a flat-parameter MLP loss
def unflatten(w, sizes):
    """Slice the flat vector w (a Tensor or an array) into W^[l] (out, in) and b^[l], layer by layer."""
    Ws, bs, at = [], [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        Ws.append(w[at:at + n_out * n_in].reshape(n_out, n_in))
        at += n_out * n_in
        bs.append(w[at:at + n_out])
        at += n_out
    return Ws, bs


def n_params(sizes):
    return sum(o * i + o for i, o in zip(sizes[:-1], sizes[1:]))


def flat(Ws, bs):
    return np.concatenate([a for W, b in zip(Ws, bs) for a in (W.ravel(), b)])


def mlp_loss(sizes, X, Y, hidden="tanh", output="identity", loss="squared_error", fused=False):
    """L(w) = Σ over examples of the practical's loss, for the MLP whose parameters are the flat w.

    ``fused``: each layer as one ``F.linear`` (the Affine primitive nn.Linear uses) instead of
    matmul + add, and cross-entropy from integer labels (the CrossEntropy primitive).
    """
    act = F.ACTIVATIONS[hidden]

    def f(w):
        Ws, bs = unflatten(w, sizes)
        total = None
        for x, y in zip(X, Y):
            h = Tensor(x)
            for l, (W, b) in enumerate(zip(Ws, bs)):
                z = F.linear(h, W, b) if fused else W @ h + b
                h = act(z) if l < len(Ws) - 1 else z
            if loss == "squared_error":
                L = F.squared_error(F.OUTPUTS[output](h), y)
            else:
                L = F.cross_entropy(h, int(np.argmax(y)) if fused else y)
            total = L if total is None else total + L
        return total

    return f


def practical(name, fused=False):
    spec = builtin(name)
    w0 = flat(spec.W, spec.b)
    f = mlp_loss(spec.layers, spec.X, spec.Y, spec.hidden, spec.output, spec.loss, fused)

    def ref_grad(w):  # the hand-written backprop of reference.py: independent of the tape
        Ws, bs = unflatten(w, spec.layers)
        r = reference.batch_backward(Ws, bs, spec.X, spec.Y, spec.hidden, spec.output, spec.loss)
        return flat(r["dW"], r["db"])

    return spec, w0, f, ref_grad


# ------------------------------------------------------------------ create_graph
def test_create_graph_grad_is_differentiable_and_nothing_changes_without_it():
    x0 = np.array([0.3, -1.2, 0.8])
    x = Tensor(x0, requires_grad=True)
    (x.tanh() ** 3).sum().backward()
    assert type(x.grad) is np.ndarray  # the first-order path is untouched

    x = Tensor(x0, requires_grad=True)
    (x.tanh() ** 3).sum().backward(create_graph=True)
    assert isinstance(x.grad, Tensor) and x.grad.requires_grad
    t = np.tanh(x0)
    s = 1 - t * t
    np.testing.assert_allclose(x.grad.data, 3 * t**2 * s, rtol=1e-14)
    (g2,) = ag.grad(x.grad.sum(), x)  # d/dx 3t²(1 − t²) = 6ts² − 6t³s
    np.testing.assert_allclose(g2.data, 6 * t * s * s - 6 * t**3 * s, rtol=1e-13)


def test_grad_leaves_dot_grad_alone_and_returns_fresh_arrays():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    ga, gb = ag.grad((a + b).sum(), [a, b])
    assert a.grad is None and b.grad is None
    assert ga.data is not gb.data
    ga.data[0] = 99.0
    assert gb.data[0] == 1.0


def test_grad_of_an_intermediate_and_of_several_outputs():
    x = Tensor([0.5, -0.25], requires_grad=True)
    h = x.tanh()
    y1, y2 = (h * h).sum(), h.exp().sum()
    gh, gx = ag.grad([y1, y2], [h, x], retain_graph=True)
    hd = np.tanh(x.data)
    np.testing.assert_allclose(gh.data, 2 * hd + np.exp(hd), rtol=1e-14)
    np.testing.assert_allclose(gx.data, (2 * hd + np.exp(hd)) * (1 - hd * hd), rtol=1e-14)


def test_grad_errors_name_the_argument():
    x = Tensor([1.0, 2.0], requires_grad=True)
    c = Tensor([1.0, 2.0])
    y = (x * x).sum()
    with pytest.raises(ValueError, match=r"inputs\[0\]: .*does not require grad"):
        ag.grad(y, c)
    with pytest.raises(TypeError, match=r"inputs\[0\]: expected a Tensor"):
        ag.grad(y, np.ones(2))
    with pytest.raises(ValueError, match=r"grad_outputs\[0\]: may be omitted only for a scalar"):
        ag.grad(x * x, x)
    with pytest.raises(ValueError, match=r"grad_outputs\[0\]: expected shape \(2,\)"):
        ag.grad(x * x, x, grad_outputs=np.ones(3))
    z = Tensor([3.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"inputs\[1\]: the outputs do not depend on this input"):
        ag.grad(y, [x, z], retain_graph=True)
    assert ag.grad(y, [x, z], allow_unused=True, retain_graph=True)[1] is None
    assert np.array_equal(ag.grad(y, [x, z], materialize_grads=True)[1].data, [0.0])


def test_retain_graph_defaults_to_create_graph():
    x = Tensor([0.3, 0.4], requires_grad=True)
    y = x.sigmoid().sum()
    ag.grad(y, x, create_graph=True)
    ag.grad(y, x)  # the first call kept the graph; this one frees it
    with pytest.raises(ag.GraphFreedError):
        ag.grad(y, x)


def test_second_order_graph_is_freed_when_dropped():
    """The recorded backward pass is an ordinary graph: dropping the gradient frees it (weak tape)."""
    gc.collect()
    sweep()
    base = tape_size()
    x = Tensor(np.linspace(-1, 1, 5), requires_grad=True)
    (g,) = ag.grad((x.tanh() * x).sum(), x, create_graph=True)
    ag.grad(g.sum(), x, retain_graph=True)
    assert tape_size() > base
    del g
    gc.collect()
    sweep()
    assert tape_size() == base


def test_second_order_in_another_thread_is_its_own():
    out = {}

    def work():
        x = Tensor([0.2, -0.4], requires_grad=True)
        (g,) = ag.grad((x ** 3).sum(), x, create_graph=True)
        out["h"] = ag.grad(g.sum(), x)[0].data

    t = threading.Thread(target=work)
    t.start()
    t.join()
    np.testing.assert_allclose(out["h"], 6 * np.array([0.2, -0.4]), rtol=1e-14)


def test_capture_refuses_a_second_order_step():
    from tinygrad_mlp import MLP, optim
    from tinygrad_mlp.compiler.compiled import CaptureError, compile as compile_step

    model = MLP([3, 4, 2], hidden="tanh", output="identity", seed=0)
    opt = optim.SGD(model.parameters(), 0.1)

    def step(x, y):
        opt.zero_grad()
        L = F.squared_error(model(x), y)
        L.backward(create_graph=True)
        opt.step()
        return L

    with pytest.raises(CaptureError, match="second-order"):
        compile_step(step)(np.ones(3), np.zeros(2))

    def step2(x, y):
        L = F.squared_error(model(x), y)
        ag.grad(L, model.parameters())
        return L

    with pytest.raises(CaptureError, match="second-order"):
        compile_step(step2)(np.ones(3), np.zeros(2))


# ------------------------------------------------------------------ the practical's Hessians
@pytest.mark.parametrize("fused", [False, True], ids=["matmul+add", "linear"])
@pytest.mark.parametrize("name", ["q1", "q2", "q1-batch", "q2-batch"])
def test_practical_hessian_matches_finite_differences_of_the_gradient(name, fused):
    spec, w0, f, ref_grad = practical(name, fused)
    assert w0.size == 47
    H = ag.hessian(f, w0)
    assert H.shape == (47, 47)
    # the tape's gradient is the hand-written one (so the Hessian below differentiates the right thing)
    np.testing.assert_allclose(ag.value_and_grad(f)(w0)[1], ref_grad(w0), rtol=1e-12, atol=1e-15)
    eps = 1e-5
    fd = np.empty((47, 47))
    for j in range(47):
        e = np.zeros(47)
        e[j] = eps
        fd[:, j] = (ref_grad(w0 + e) - ref_grad(w0 - e)) / (2 * eps)
    scale = np.abs(fd).max()
    assert scale > 0.1  # a real curvature, not a zero matrix compared with noise
    assert np.abs(H - fd).max() <= 1e-6 * scale, np.abs(H - fd).max() / scale
    assert np.abs(H - H.T).max() <= 1e-12
    # the cross blocks are there: W^[1] and W^[3] interact through the network
    assert np.abs(H[:16, -12:]).max() > 1e-3


@pytest.mark.parametrize("name", ["q1", "q2"])
def test_practical_hvp_and_jvp_agree_with_the_hessian(name):
    spec, w0, f, ref_grad = practical(name)
    H = ag.hessian(f, w0)
    v = np.random.default_rng(1).standard_normal(47)
    value, hv = ag.hvp(f, w0, v)
    np.testing.assert_allclose(hv, H @ v, rtol=1e-12, atol=1e-14)
    assert value == pytest.approx(reference.batch_backward(spec.W, spec.b, spec.X, spec.Y, spec.hidden,
                                                           spec.output, spec.loss)["loss"], rel=1e-14)
    # jvp of the gradient map is H v too; jvp of the loss is ∇L·v
    _, jv = ag.jvp(f, w0, v)
    np.testing.assert_allclose(jv, ref_grad(w0) @ v, rtol=1e-12)
    _, jgv = ag.jvp(lambda w: ag.grad(f(w), w, create_graph=True)[0], w0, v)
    np.testing.assert_allclose(jgv, H @ v, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ third derivatives
THIRD = {
    "tanh": (lambda x: x.tanh(), lambda x: -2 * (1 - np.tanh(x) ** 2) * (1 - 3 * np.tanh(x) ** 2), (-4.0, 4.0)),
    "sigmoid": (lambda x: x.sigmoid(),
                lambda x: (lambda s: s * (1 - s) * (1 - 6 * s + 6 * s * s))(1 / (1 + np.exp(-x))), (-8.0, 8.0)),
    "exp": (lambda x: x.exp(), np.exp, (-5.0, 5.0)),
    "log": (lambda x: x.log(), lambda x: 2 / x**3, (0.2, 5.0)),
}


@pytest.mark.parametrize("name", list(THIRD))
def test_third_derivatives_match_closed_forms(name):
    fn, d3, (lo, hi) = THIRD[name]

    @settings(max_examples=30)
    @given(x0=st.integers(1, 6).flatmap(lambda n: arrays_of_shape((n,), lo, hi)))
    def check(x0):
        x = Tensor(x0, requires_grad=True)
        (g1,) = ag.grad(fn(x).sum(), x, create_graph=True)
        (g2,) = ag.grad(g1.sum(), x, create_graph=True)
        (g3,) = ag.grad(g2.sum(), x)
        want = d3(x0)
        np.testing.assert_allclose(g3.data, want, rtol=1e-10, atol=1e-12)

    check()


# ------------------------------------------------------------------ transforms vs finite differences
def test_jacobian_and_jvp_against_finite_differences():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((3, 4))

    def f(w):
        return (Tensor(A) @ w.tanh()).sigmoid() * w[:3]

    w0 = rng.standard_normal(4)

    def f_np(w):
        return 1 / (1 + np.exp(-(A @ np.tanh(w)))) * w[:3]

    eps = 1e-6
    fd = np.stack([(f_np(w0 + eps * e) - f_np(w0 - eps * e)) / (2 * eps) for e in np.eye(4)], axis=1)
    J = ag.jacobian(f, w0)
    np.testing.assert_allclose(J, fd, rtol=1e-7, atol=1e-9)
    v = rng.standard_normal(4)
    value, jv = ag.jvp(f, w0, v)
    np.testing.assert_allclose(value, f_np(w0), rtol=1e-15)
    np.testing.assert_allclose(jv, J @ v, rtol=1e-12, atol=1e-14)


def test_value_and_grad_argnums_and_dtype():
    f = lambda a, b: (a * b.exp()).sum()  # noqa: E731
    a0, b0 = np.array([1.0, 2.0], np.float32), np.array([0.5, -0.5], np.float32)
    val, (ga, gb) = ag.value_and_grad(f, argnums=(0, 1))(a0, b0)
    assert ga.dtype == np.float32
    np.testing.assert_allclose(val, np.sum(a0 * np.exp(b0)), rtol=1e-6)
    np.testing.assert_allclose(ga, np.exp(b0), rtol=1e-6)
    np.testing.assert_allclose(gb, a0 * np.exp(b0), rtol=1e-6)
    _, g1 = ag.value_and_grad(f, argnums=1)(a0, b0)
    np.testing.assert_array_equal(g1, gb)


def test_transform_errors_name_the_argument():
    with pytest.raises(ValueError, match="f: expected a scalar output"):
        ag.hessian(lambda w: w * 2, np.ones(2))
    with pytest.raises(ValueError, match=r"v: expected shape \(2,\)"):
        ag.hvp(lambda w: w.sum(), np.ones(2), np.ones(3))
    with pytest.raises(TypeError, match="f: expected f to return a Tensor"):
        ag.jacobian(lambda w: 1.0, np.ones(2))
    with pytest.raises(TypeError, match="f: expected a callable"):
        ag.hessian(3, np.ones(2))


def test_linear_functions_have_zero_hessians():
    np.testing.assert_array_equal(ag.hessian(lambda w: (w * 3.0).sum() + 1.0, np.ones(3)), np.zeros((3, 3)))
    np.testing.assert_array_equal(ag.hvp(lambda w: w.sum(), np.ones(2), np.ones(2))[1], np.zeros(2))


def test_gradgradcheck_on_an_mlp_loss_float64_and_float32():
    sizes = [3, 4, 2]
    rng = np.random.default_rng(0)
    X = [rng.standard_normal(3) for _ in range(2)]
    Y = [np.eye(2)[k] for k in (0, 1)]
    f = mlp_loss(sizes, X, Y, "sigmoid", "softmax", "cross_entropy")
    w0 = rng.standard_normal(n_params(sizes)) * 0.5
    assert ag.gradgradcheck(f, w0, n_directions=3)
    assert ag.gradgradcheck(f, w0.astype(np.float32), n_directions=3)


# ------------------------------------------------------------------ against PyTorch
@pytest.mark.parametrize("seed", range(4))
def test_against_torch_hessian_hvp_jvp(seed):
    torch = pytest.importorskip("torch")
    from torch.autograd.functional import hessian as t_hessian, hvp as t_hvp, jvp as t_jvp

    rng = np.random.default_rng(seed)
    hidden = ["tanh", "sigmoid", "tanh", "relu"][seed]
    output, loss = [("identity", "squared_error"), ("softmax", "cross_entropy")][seed % 2]
    sizes = [int(rng.integers(2, 4)), int(rng.integers(2, 5)), int(rng.integers(2, 4))]
    X = [rng.standard_normal(sizes[0]) for _ in range(3)]
    Y = [np.eye(sizes[-1])[rng.integers(sizes[-1])] for _ in range(3)]
    w0 = rng.standard_normal(n_params(sizes)) * 0.7
    v = rng.standard_normal(w0.size)
    f = mlp_loss(sizes, X, Y, hidden, output, loss)

    acts = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}

    def f_t(w):
        Ws, bs = unflatten(w, sizes)
        total = 0
        for x, y in zip(X, Y):
            h = torch.tensor(x)
            for l, (W, b) in enumerate(zip(Ws, bs)):
                z = W @ h + b
                h = acts[hidden](z) if l < len(Ws) - 1 else z
            yt = torch.tensor(y)
            if loss == "squared_error":
                total = total + 0.5 * ((h - yt) ** 2).sum()
            else:
                total = total - (yt * torch.log_softmax(h, 0)).sum()
        return total

    wt, vt = torch.tensor(w0), torch.tensor(v)
    H = ag.hessian(f, w0)
    np.testing.assert_allclose(H, t_hessian(f_t, wt).numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ag.hvp(f, w0, v)[1], t_hvp(f_t, wt, vt)[1].numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ag.jvp(f, w0, v)[1], t_jvp(f_t, wt, vt)[1].numpy(), rtol=1e-10, atol=1e-12)
    # a vector function's jvp too: the first layer's pre-activations of all examples
    g = lambda w: unflatten(w, sizes)[0][0] @ Tensor(np.stack(X, 1))  # noqa: E731
    g_t = lambda w: unflatten(w, sizes)[0][0] @ torch.tensor(np.stack(X, 1))  # noqa: E731
    np.testing.assert_allclose(ag.jvp(g, w0, v)[1], t_jvp(g_t, wt, vt)[1].numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ the examples
def _example(name):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("method", ["hessian", "hvp"])
def test_newton_converges_quadratically(method):
    newton = _example("newton")
    X, y = newton.data()
    f = newton.make_loss(X, y)
    w, hist = newton.newton(f, np.zeros(15), method, verbose=False)
    assert hist[-1] < 1e-13 and len(hist) <= 12
    # quadratic: e_(k+1) <= C e_k² with one modest C over the steps above the rounding floor;
    # a linear rate (e_(k+1) ≈ r e_k) would break this as soon as e_k < r / C
    pairs = [(a, b) for a, b in zip(hist, hist[1:]) if a < 1e-2 and b > 1e-14]
    assert len(pairs) >= 2, hist
    assert all(b <= 50 * a * a for a, b in pairs), [b / a**2 for a, b in pairs]
    # the minimiser, checked with a hand-written NumPy gradient of the same loss
    W, b = w[:12].reshape(3, 4), w[12:]
    Z = X @ W.T + b
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    D = (P - np.eye(3)[y]) / len(y)
    grad = np.concatenate([(D.T @ X).ravel(), D.sum(0)]) + newton.LAMBDA * w
    assert np.abs(grad).max() < 1e-12


def test_gradient_penalty_gradient_matches_finite_differences():
    gp = _example("gradient_penalty")
    from tinygrad_mlp import MLP

    X, y = gp.data(n=8)
    model = MLP([2, 5, 2], hidden="tanh", output="softmax", seed=1)
    params = model.parameters()
    L, data_loss, penalty = gp.penalized_loss(model, X, y)
    assert float(penalty.data) > 0.1
    L.backward()
    tape = np.concatenate([p.grad.ravel() for p in params])

    def value():  # the first-order path only: the penalty's value needs no second derivative
        return float(gp.penalized_loss(model, X, y, create_graph=False)[0].data)

    eps = 1e-6
    fd = []
    for p in params:
        flat_p = p.data.reshape(-1)
        for i in range(flat_p.size):
            old = flat_p[i]
            flat_p[i] = old + eps
            fp = value()
            flat_p[i] = old - eps
            fm = value()
            flat_p[i] = old
            fd.append((fp - fm) / (2 * eps))
    fd = np.array(fd)
    np.testing.assert_allclose(tape, fd, rtol=1e-6, atol=1e-8)
    # the penalty's own gradient is a real part of it (missing it would fail the check above)
    model.zero_grad()
    F.cross_entropy(model.logits(X), y).backward()
    data_only = np.concatenate([p.grad.ravel() for p in params])
    assert np.abs(tape - data_only).max() > 1e-2 * np.abs(tape).max()


def test_examples_run(capsys):
    assert _example("gradient_penalty").main() == 0
    out = capsys.readouterr().out
    before, after = (float(line.split("L = ")[1].split()[0]) for line in out.splitlines() if "L = " in line)
    assert after < before


def test_optimizer_steps_on_recorded_gradients_by_value():
    from tinygrad_mlp import optim

    w = Tensor([1.0, -2.0], requires_grad=True)
    opt = optim.SGD([w], 0.1)
    (w * w).sum().backward(create_graph=True)
    g = w.grad
    opt.step()
    assert type(w.data) is np.ndarray
    np.testing.assert_allclose(w.data, [1.0 - 0.2, -2.0 + 0.4], rtol=1e-15)
    assert w.grad is g  # the recorded gradient is still there, still differentiable
