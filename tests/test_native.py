"""compile(step, backend="native"): the captured step as a numba kernel (tinygrad_mlp.compiler.native).

Expected values come from eager training (the tape), an independent path from the kernel's loops.
"""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_mlp import functional as F, optim
from tinygrad_mlp.compiler.compiled import compile as compile_step
from tinygrad_mlp.nn import Linear

from test_compiled import PAIRS, data, make

numba = pytest.importorskip("numba")


def weights_diff(m1, m2):
    return max(float(np.max(np.abs(a.data - b.data))) for a, b in zip(m1.parameters(), m2.parameters()))


@settings(max_examples=8, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
       hidden=st.sampled_from(["tanh", "sigmoid", "relu", "identity"]),
       pair=st.sampled_from(PAIRS), batch=st.sampled_from([None, 3]),
       reduction=st.sampled_from(["sum", "mean"]), opt=st.sampled_from(["sgd", "momentum", "adam"]),
       seed=st.integers(0, 2**16))
def test_native_agrees_with_eager_over_random_mlps(sizes, hidden, pair, batch, reduction, opt, seed):
    output, loss = pair
    if output == "softmax" and sizes[-1] < 2:
        sizes = sizes[:-1] + [2]
    kw = dict(hidden=hidden, output=output, loss=loss, seed=seed, reduction=reduction,
              lr=0.01,  # 0.05 can diverge (identity output, momentum)
              opt="adam" if opt == "adam" else "sgd", momentum=0.9 if opt == "momentum" else 0.0)
    m1, o1, eager = make(sizes, **kw)
    m2, o2, step = make(sizes, **kw)
    native = compile_step(step, backend="native")
    xs, ys = data(np.random.default_rng(seed), sizes[0], sizes[-1], batch, output, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback: this step must run natively
        for x, y in zip(xs, ys):
            le = float(eager(x, y).data)
            ln = native(x, y)
            assert abs(le - ln) <= 1e-10 * max(1.0, abs(le))
    assert native.fallback_reason is None and native.kernels
    # 1e-10 relative to the weights' size: a drawn run may grow its weights large (identity output, momentum)
    scale = max(1.0, max(float(np.abs(p.data).max()) for p in m1.parameters()))
    assert weights_diff(m1, m2) <= 1e-10 * scale
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p2.grad, p1.grad, rtol=0, atol=1e-10 * max(1.0, float(np.abs(p1.grad).max())))
    if opt == "adam":
        assert o1.t == o2.t == 20
        for a, b in zip(o1.m + o1.v, o2.m + o2.v):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)
    if opt == "momentum":
        for a, b in zip(o1.velocity, o2.velocity):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------- the kernel's exp and tanh
def _ulps(got, want):
    return np.abs(got - want) / np.spacing(np.abs(want))


def test_the_kernels_exp_and_tanh_agree_with_numpys_to_a_few_ulp():
    from tinygrad_mlp.compiler import native_math as nm

    @numba.njit
    def apply(f, a):
        out = np.empty_like(a)
        for i in range(a.size):
            out[i] = f(a[i])
        return out
    rng = np.random.default_rng(0)
    for scale in (1e-9, 1e-3, 0.5, 3.0, 40.0, 300.0):
        a = rng.normal(0.0, scale, 20_000)
        with np.errstate(over="ignore"):
            want_e = np.exp(a)
        got_e = apply(nm.exp, a)
        normal = np.isfinite(want_e) & (want_e > np.finfo(float).tiny)
        assert _ulps(got_e[normal], want_e[normal]).max() <= 1.0, scale
        assert np.array_equal(got_e[~normal] == 0, want_e[~normal] == 0)  # underflow, overflow alike
        assert np.array_equal(np.isinf(got_e), np.isinf(want_e))
        assert _ulps(apply(nm.tanh, a), np.tanh(a)).max() <= 3.0, scale
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 19.99, 20.0, 21.0, -25.0,
                        709.7, 709.8, -708.0, -745.0, -746.0, 1e308, -1e308])
    with np.errstate(over="ignore"):
        for f, ref in ((nm.exp, np.exp), (nm.tanh, np.tanh)):
            got, want = apply(f, special), ref(special)
            finite = np.isfinite(want) & (np.abs(want) > np.finfo(float).tiny)
            assert _ulps(got[finite], want[finite]).max() <= 3.0, f
            np.testing.assert_array_equal(got[~finite], want[~finite])  # NaN, ±inf, 0 and subnormals
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))  # tanh(−0.0) is −0.0


# ------------------------------------------------------------------------------- the per-call entry
def test_a_numpy_integer_label_runs_in_the_kernel():
    m1, _, eager = make([4, 6, 10], opt="adam", lr=0.01)
    m2, _, step = make([4, 6, 10], opt="adam", lr=0.01)
    native = compile_step(step, backend="native")
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 10, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback
        for i in range(30):
            assert abs(float(eager(X[i], y[i]).data) - native(X[i], y[i])) <= 1e-10
    assert native.fallback_reason is None and native.compiled.captures == 1 and native.kernels
    assert weights_diff(m1, m2) <= 1e-10


def warmed(seed):
    """An eager step and a native one from the same weights, both two steps on, and four examples."""
    m1, _, eager = make([4, 5, 3], seed=seed)
    m2, _, step = make([4, 5, 3], seed=seed)
    native = compile_step(step, backend="native")
    xs, ys = data(np.random.default_rng(seed), 4, 3, None, "softmax", 4)
    for x, y in zip(xs[:2], ys[:2]):
        eager(x, y), native(x, y)
    return m1, m2, eager, native, xs, ys


def test_a_nonfinite_input_is_refused_by_name_and_changes_nothing():
    m1, m2, eager, native, xs, ys = warmed(3)
    before = [p.data.copy() for p in m2.parameters()]
    bad = xs[2].copy()
    bad[1] = np.nan
    with pytest.raises(ValueError, match="x: expected finite"):
        native(bad, ys[2])
    bad[1] = -np.inf
    with pytest.raises(ValueError, match="y: expected finite"):
        native(xs[2], np.where(ys[2] > 0, np.inf, 0.0))
    assert all(np.array_equal(b, p.data) for b, p in zip(before, m2.parameters()))
    for x, y in zip(xs[2:], ys[2:]):  # and the kernel goes on as before
        assert abs(float(eager(x, y).data) - native(x, y)) <= 1e-12
    assert native.fallback_reason is None and weights_diff(m1, m2) <= 1e-12


def test_inputs_of_another_shape_dtype_or_layout_take_the_compiled_steps_path():
    m1, _, eager = make([4, 5, 3], seed=4)
    m2, _, step = make([4, 5, 3], seed=4)
    native = compile_step(step, backend="native")
    rng = np.random.default_rng(2)
    xs, ys = data(rng, 4, 3, None, "softmax", 3)
    xb, yb = data(rng, 4, 3, 2, "softmax", 1)
    wide = rng.uniform(-2, 2, (4, 2))
    calls = [(xs[0], ys[0]), (xs[1], ys[1]), (xb[0], yb[0]), (wide[:, 0], ys[2]),  # a strided view
             (xs[2].tolist(), ys[2]), (xs[1], ys[1])]
    for x, y in calls:
        assert abs(float(eager(np.asarray(x), y).data) - native(x, y)) <= 1e-12
    assert weights_diff(m1, m2) <= 1e-12


def test_another_number_of_arguments_gets_the_step_functions_own_error_and_the_kernel_goes_on():
    m1, m2, eager, native, xs, ys = warmed(5)
    for bad, says in (((xs[2],), "missing 1 required positional argument"),
                      ((xs[2], ys[2], ys[2]), "takes 2 positional arguments but 3 were given")):
        before = [p.data.copy() for p in m2.parameters()]
        with pytest.raises(TypeError, match=says):  # each met by the kernel's caller, the entry after a good call
            native(*bad)
        assert all(np.array_equal(b, p.data) for b, p in zip(before, m2.parameters()))
        assert abs(float(eager(xs[3], ys[3]).data) - native(xs[3], ys[3])) <= 1e-12
    assert native.fallback_reason is None and weights_diff(m1, m2) <= 1e-12


def test_a_step_without_arguments_runs_in_the_kernel():
    """Training on data the step closes over: the kernel takes no inputs (its source once had ``body(, ...``)."""
    (m1, _, eager), (m2, _, step) = make([3, 4, 2], seed=6), make([3, 4, 2], seed=6)
    x, y = np.array([0.5, -1.0, 2.0]), np.array([0.0, 1.0])
    native = compile_step(lambda: step(x, y), backend="native")
    for _ in range(4):
        assert abs(float(eager(x, y).data) - native()) <= 1e-12
    assert native.fallback_reason is None and native.kernels  # a kernel was built and ran
    assert weights_diff(m1, m2) <= 1e-12


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_gradients_are_the_last_steps_after_an_epoch_also_when_a_weight_is_used_twice(opt):
    """The update forms δ hᵀ itself and stores it only for the last example of an epoch: .grad must still
    be eager's.  A gradient with two contributions (weight decay) must not be formed that way."""
    rng = np.random.default_rng(7)
    X, Y = rng.uniform(-1, 1, (30, 6)), np.eye(3)[rng.integers(0, 3, 30)]
    kw = dict(opt="adam" if opt == "adam" else "sgd", momentum=0.9 if opt == "momentum" else 0.0, lr=0.01)
    m1, _, eager = make([6, 5, 3], **kw)
    m2, _, step = make([6, 5, 3], **kw)
    native = compile_step(step, backend="native")
    order = rng.permutation(30)
    for i in order:
        eager(X[i], Y[i])
    native.epoch(X, Y, order)
    assert weights_diff(m1, m2) <= 1e-12
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p2.grad, p1.grad, rtol=0, atol=1e-12)

    def decayed(model, o):  # W^[1] is used twice: its gradient is the sum of two contributions
        W1 = model.parameters()[0]

        def run(x, y):
            o.zero_grad()
            L = model.loss(x, y) + 1e-3 * (W1 * W1).sum()
            L.backward()
            o.step()
            return L
        return run
    m3, o3, _ = make([6, 5, 3], **kw)
    m4, o4, _ = make([6, 5, 3], **kw)
    eager, native = decayed(m3, o3), compile_step(decayed(m4, o4), backend="native")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback
        for i in order[:10]:
            assert abs(float(eager(X[i], Y[i]).data) - native(X[i], Y[i])) <= 1e-10
        native.epoch(X, Y, order[10:])
    for i in order[10:]:
        eager(X[i], Y[i])
    assert native.fallback_reason is None
    assert weights_diff(m3, m4) <= 1e-10
    for p1, p2 in zip(m3.parameters(), m4.parameters()):
        np.testing.assert_allclose(p2.grad, p1.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_float32_native_agrees_with_eager_to_float32_rounding(opt):
    kw = dict(hidden="tanh", dtype=np.float32, opt="adam" if opt == "adam" else "sgd",
              momentum=0.9 if opt == "momentum" else 0.0)
    m1, _, eager = make([5, 4, 3], **kw)
    m2, _, step = make([5, 4, 3], **kw)
    native = compile_step(step, backend="native")
    xs, ys = data(np.random.default_rng(0), 5, 3, None, "softmax", 20)
    for x, y in zip(xs, ys):
        x, y = x.astype(np.float32), y.astype(np.float32)
        le, ln = float(eager(x, y).data), native(x, y)
        assert abs(le - ln) <= 1e-5 * max(1.0, abs(le))
    assert native.fallback_reason is None
    assert all(p.data.dtype == np.float32 for p in m2.parameters())
    assert weights_diff(m1, m2) <= 1e-5


def test_epoch_entry_runs_the_same_steps_as_the_per_call_entry_and_as_eager():
    rng = np.random.default_rng(5)
    X = rng.uniform(0, 16, (60, 8))
    Y = np.eye(4)[rng.integers(0, 4, 60)]
    orders = [rng.permutation(60) for _ in range(3)]
    m1, _, eager = make([8, 6, 4], momentum=0.9, lr=0.01, seed=2)
    m2, _, s2 = make([8, 6, 4], momentum=0.9, lr=0.01, seed=2)
    m3, _, s3 = make([8, 6, 4], momentum=0.9, lr=0.01, seed=2)
    per_call, whole = compile_step(s2, backend="native"), compile_step(s3, backend="native")
    totals = [[], [], []]
    for order in orders:
        totals[0].append(sum(float(eager(X[i], Y[i]).data) for i in order))
        totals[1].append(sum(per_call(X[i], Y[i]) for i in order))
        totals[2].append(whole.epoch(X, Y, order))
    np.testing.assert_allclose(totals[1], totals[0], rtol=1e-10)
    np.testing.assert_allclose(totals[2], totals[0], rtol=1e-10)
    # the two entries run the same kernel body, so they agree with each other exactly
    assert weights_diff(m1, m2) <= 1e-9 and weights_diff(m2, m3) == 0.0
    # the optimiser's state is the kernel's: the user reads (and may reset) it as always
    with pytest.raises(ValueError, match="order"):
        whole.epoch(X, Y, np.array([0, 60]))


def test_the_learning_rate_and_a_velocity_reset_are_read_at_every_call():
    m1, o1, eager = make([4, 5, 3], momentum=0.9, lr=0.05)
    m2, o2, step = make([4, 5, 3], momentum=0.9, lr=0.05)
    native = compile_step(step, backend="native")
    xs, ys = data(np.random.default_rng(2), 4, 3, None, "softmax", 16)
    for k, (x, y) in enumerate(zip(xs, ys)):
        if k == 4:
            o1.velocity = [None] * 4
            o2.velocity = [None] * 4
        if k == 8:
            o1.lr = o2.lr = 0.01
        if k == 11:  # momentum off: another description, another kernel
            o1.momentum = o2.momentum = 0.0
        assert abs(float(eager(x, y).data) - native(x, y)) <= 1e-12, k
    assert len(native.kernels) == 2
    assert weights_diff(m1, m2) <= 1e-12


# ------------------------------------------------------------------------------- fallbacks
def _assert_falls_back_once(native, eager_step, xs, ys, m1, m2, match):
    with pytest.warns(RuntimeWarning, match=match) as rec:
        for x, y in zip(xs, ys):
            assert float(eager_step(x, y).data) == native(x, y)  # the NumPy replay: bit-identical
    assert len([w for w in rec if "native" in str(w.message)]) == 1
    assert weights_diff(m1, m2) == 0.0


def test_parameters_that_do_not_tile_one_buffer_fall_back_with_one_warning():
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

        class Holder:
            def parameters(self):
                return params
        return Holder(), step

    m1, eager = build()
    m2, step = build()
    xs, ys = data(np.random.default_rng(3), 4, 3, None, "softmax", 6)
    _assert_falls_back_once(compile_step(step, backend="native"), eager, xs, ys, m1, m2, "tile one flat buffer")


def test_an_optimiser_with_its_own_update_method_falls_back_with_one_warning():
    class Halving(optim.SGD):
        def update(self):
            for p in self.params:
                p.data -= 0.5 * self.lr * p.grad

    def build():
        model, _, _ = make([4, 3])
        o = Halving(model.parameters(), 0.1)

        def step(x, y):
            o.zero_grad()
            L = model.loss(x, y)
            L.backward()
            o.step()
            return L
        return model, step

    m1, eager = build()
    m2, step = build()
    xs, ys = data(np.random.default_rng(4), 4, 3, None, "softmax", 5)
    _assert_falls_back_once(compile_step(step, backend="native"), eager, xs, ys, m1, m2, "update description")


def test_a_primitive_without_a_native_form_falls_back_with_one_warning():
    # an integer label picks one logit: the getitem's vjp (a scatter) has no native form
    m1, o1, _ = make([4, 3])
    m2, o2, _ = make([4, 3])

    def stepper(model, o):
        def step(x, y):
            o.zero_grad()
            L = model.logits(x).logsumexp() - model.logits(x)[y]
            L.backward()
            o.step()
            return L
        return step
    eager, native = stepper(m1, o1), compile_step(stepper(m2, o2), backend="native")
    xs = list(np.random.default_rng(6).uniform(-1, 1, (5, 4)))
    with pytest.warns(RuntimeWarning, match="cannot be lowered") as rec:
        for x in xs:
            assert float(eager(x, 2).data) == native(x, 2)
    assert len(rec) == 1 and weights_diff(m1, m2) == 0.0


def test_bad_backend_is_refused_by_name():
    with pytest.raises(ValueError, match="backend"):
        compile_step(lambda x: None, backend="cuda")


def test_the_kernel_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_MLP_CACHE", str(tmp_path))
    _, _, step = make([3, 4, 2], hidden="relu", seed=123)
    native = compile_step(step, backend="native")
    x, y = data(np.random.default_rng(0), 3, 2, None, "softmax", 1)
    native(x[0], y[0])
    assert native.fallback_reason is None
    files = os.listdir(tmp_path)
    assert any(f.startswith("k_") and f.endswith(".py") for f in files)
    cached = os.listdir(tmp_path / "__pycache__")
    assert any(f.endswith(".nbi") for f in cached) and any(f.endswith(".nbc") for f in cached)
    assert native.from_cache is False  # compiled here, for the first time
    # another process loads that machine code instead of compiling it again
    code = f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
import numpy as np
from test_compiled import data, make
from tinygrad_mlp.compiler.compiled import compile as compile_step
_, _, step = make([3, 4, 2], hidden="relu", seed=123)
native = compile_step(step, backend="native")
x, y = data(np.random.default_rng(0), 3, 2, None, "softmax", 1)
native(x[0], y[0])
print(native.fallback_reason, native.from_cache)
"""
    env = dict(os.environ, TINYGRAD_MLP_CACHE=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["None", "True"]


# ------------------------------------------------------------------------------- without numba
def test_without_numba_the_package_and_the_numpy_replay_work_and_native_says_how_to_install():
    code = r"""
import sys
sys.modules["numba"] = None  # import numba now raises ImportError
import numpy as np
import tinygrad_mlp
from tinygrad_mlp import MLP, optim
from tinygrad_mlp.compiler.compiled import compile
m = MLP([3, 4, 2], output="softmax", seed=0)
o = optim.SGD(m.parameters(), 0.1)
def step(x, y):
    o.zero_grad(); L = m.loss(x, y); L.backward(); o.step(); return L
s = compile(step)
print(s(np.ones(3), np.eye(2)[0]) > 0, s(np.ones(3), np.eye(2)[1]) > 0)
try:
    compile(step, backend="native")
except ImportError as e:
    print("ImportError:", e)
"""
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "True True" in r.stdout
    assert "ImportError:" in r.stdout and "pip install" in r.stdout and "jit" in r.stdout


def test_the_estimator_trains_natively_to_the_eager_estimators_weights():
    from sklearn.datasets import load_digits

    from tinygrad_mlp.training.estimators import MLPClassifier
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    kw = dict(hidden_layer_sizes=(12,), activation="tanh", solver="sgd", batch_size=1, learning_rate_init=0.01,
              momentum=0.0, alpha=0.0, max_iter=3, shuffle=True, random_state=0, n_iter_no_change=10)
    import warnings as w
    with w.catch_warnings():
        w.simplefilter("ignore")
        eager = MLPClassifier(**kw).fit(X, y)
        native = MLPClassifier(compiled="native", **kw).fit(X, y)
    for a, b in zip(eager.coefs_ + eager.intercepts_, native.coefs_ + native.intercepts_):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)
    assert (eager.predict(X) == native.predict(X)).all()


# ------------------------------------------------------------------------------- integer class labels
def _count_numpy_replays(native):
    """After the capture: a list that grows at every call of the NumPy replay (the kernel must run instead)."""
    c, calls = native.compiled, []
    for prog in c.programs.values():
        def counted(*a, _run=prog.replay):
            calls.append(1)
            return _run(*a)
        prog.replay = c._replay = counted
    return calls


def _int_label_data(rng, batch, steps, dtype=np.int64):
    xs = [rng.uniform(-2, 2, (5,) if batch is None else (batch, 5)) for _ in range(steps)]
    ys = [rng.integers(0, 3, () if batch is None else (batch,)).astype(dtype) for _ in range(steps)]
    return xs, ys


def _assert_agrees_with_eager(m1, o1, m2, o2, opt):
    assert weights_diff(m1, m2) <= 1e-10
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p2.grad, p1.grad, rtol=0, atol=1e-10)
    state = {"adam": lambda o: o.m + o.v, "momentum": lambda o: o.velocity}.get(opt, lambda o: [])
    for a, b in zip(state(o1), state(o2)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("batch,reduction,dtype", [(None, "sum", np.int64), (4, "sum", np.int64),
                                                   (4, "mean", np.int32)])
def test_integer_labels_run_natively_and_agree_with_eager(opt, batch, reduction, dtype):
    # the label is read from the input array at every call (a 0-d array per example, a vector per batch)
    kw = dict(reduction=reduction, opt="adam" if opt == "adam" else "sgd", momentum=0.9 if opt == "momentum" else 0.0)
    m1, o1, eager = make([5, 6, 3], **kw)
    m2, o2, step = make([5, 6, 3], **kw)
    native = compile_step(step, backend="native")
    xs, ys = _int_label_data(np.random.default_rng(7), batch, 20, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback
        assert abs(float(eager(xs[0], ys[0]).data) - native(xs[0], ys[0])) <= 1e-10  # the capture
        numpy_replays = _count_numpy_replays(native)
        for x, y in zip(xs[1:], ys[1:]):
            le = float(eager(x, y).data)
            assert abs(le - native(x, y)) <= 1e-10 * max(1.0, abs(le))
    assert native.fallback_reason is None and native.kernels and not numpy_replays
    assert native.compiled.captures == 1
    _assert_agrees_with_eager(m1, o1, m2, o2, opt)


def test_a_python_int_label_follows_the_label():
    # a Python int is guarded by value (compiler/compiled.py): each label value is its own capture, and
    # today these steps run as the NumPy replay (the kernel takes arrays only; no warning is given)
    m1, o1, eager = make([5, 6, 3], momentum=0.9)
    m2, o2, step = make([5, 6, 3], momentum=0.9)
    native = compile_step(step, backend="native")
    xs, ys = _int_label_data(np.random.default_rng(8), None, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x, y in zip(xs, ys):
            le = float(eager(x, int(y)).data)
            assert abs(le - native(x, int(y))) <= 1e-10 * max(1.0, abs(le))
    assert native.compiled.captures == 3
    _assert_agrees_with_eager(m1, o1, m2, o2, "momentum")


def test_the_epoch_entry_takes_a_vector_of_integer_labels():
    rng = np.random.default_rng(9)
    X, Y = rng.uniform(-2, 2, (40, 5)), rng.integers(0, 3, 40)
    m1, o1, eager = make([5, 6, 3], opt="adam", lr=0.01)
    m2, o2, step = make([5, 6, 3], opt="adam", lr=0.01)
    native = compile_step(step, backend="native")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for order in (rng.permutation(40), rng.permutation(40)):
            total = sum(float(eager(X[i], Y[i, ...]).data) for i in order)
            assert abs(native.epoch(X, Y, order) - total) <= 1e-10 * total
    assert native.fallback_reason is None and native.compiled.captures == 1
    assert o1.t == o2.t == 80
    _assert_agrees_with_eager(m1, o1, m2, o2, "adam")


@pytest.mark.parametrize("bad", [np.array(3), np.array(-1), np.array([0, 1, 7, 2]), np.array([2, -3, 0, 0])])
def test_an_out_of_range_label_raises_a_named_error_and_changes_nothing(bad):
    m, o, step = make([5, 6, 3], opt="adam")
    native = compile_step(step, backend="native")
    x = np.ones(5) if bad.ndim == 0 else np.ones((bad.size, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        native(x, np.zeros_like(bad))
        native(x, np.ones_like(bad))  # the kernel's own entry
    before = [p.data.copy() for p in m.parameters()] + [p.grad.copy() for p in m.parameters()]
    t = o.t
    with pytest.raises(ValueError, match=r"y: class labels must lie in \[0, 3\)"):
        native(x, bad)
    assert native.fallback_reason is None and o.t == t  # the kernel refused it, before any write
    assert all(np.array_equal(b, a) for b, a in zip(before, [p.data for p in m.parameters()] +
                                                    [p.grad for p in m.parameters()]))


def test_an_out_of_range_label_in_an_epoch_stops_it_where_an_eager_loop_stops():
    rng = np.random.default_rng(10)
    X, Y = rng.uniform(-2, 2, (12, 5)), rng.integers(0, 3, 12)
    Y[7] = 3
    m1, o1, eager = make([5, 6, 3], opt="adam", lr=0.01)
    m2, o2, step = make([5, 6, 3], opt="adam", lr=0.01)
    native = compile_step(step, backend="native")
    order = np.arange(12)
    with pytest.raises(ValueError, match=r"y: class labels must lie in \[0, 3\)"):
        for i in order:
            eager(X[i], Y[i, ...])
    with pytest.raises(ValueError, match=r"^y: class labels must lie in \[0, 3\), got 3$"):  # one line, the value
        native.epoch(X, Y, order)
    assert native.fallback_reason is None and o1.t == o2.t == 7  # the optimiser's state is the kernel's
    assert weights_diff(m1, m2) <= 1e-10


def test_a_kernel_numba_refuses_falls_back_with_one_warning_not_a_crash(monkeypatch, tmp_path):
    # a renderer bug (here: a line numba cannot type) must reach the user as the NumPy replay plus one
    # warning, never as a numba TypingError from inside the training loop
    from tinygrad_mlp.compiler import native as N
    monkeypatch.setenv("TINYGRAD_MLP_CACHE", str(tmp_path))
    broken = N.Renderer.r_label_sub

    def r_label_sub(self, op):
        broken(self, op)
        self.emit("no_such_name_in_the_kernel += 1")
    monkeypatch.setattr(N.Renderer, "r_label_sub", r_label_sub)
    m1, _, eager = make([5, 6, 3])
    m2, _, step = make([5, 6, 3])
    xs, ys = _int_label_data(np.random.default_rng(12), None, 5)
    _assert_falls_back_once(compile_step(step, backend="native"), eager, xs, ys, m1, m2, "numba could not compile")


@settings(max_examples=6, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
       hidden=st.sampled_from(["tanh", "sigmoid", "relu", "identity"]), batch=st.sampled_from([None, 1, 3]),
       reduction=st.sampled_from(["sum", "mean"]), opt=st.sampled_from(["sgd", "momentum", "adam"]),
       seed=st.integers(0, 2**16))
def test_native_agrees_with_eager_with_integer_labels_over_random_mlps(sizes, hidden, batch, reduction, opt, seed):
    sizes = sizes[:-1] + [max(sizes[-1], 2)]
    kw = dict(hidden=hidden, reduction=reduction, seed=seed, opt="adam" if opt == "adam" else "sgd",
              momentum=0.9 if opt == "momentum" else 0.0)
    m1, o1, eager = make(sizes, **kw)
    m2, o2, step = make(sizes, **kw)
    native = compile_step(step, backend="native")
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(20):
            x = rng.uniform(-2, 2, (sizes[0],) if batch is None else (batch, sizes[0]))
            y = rng.integers(0, sizes[-1], () if batch is None else (batch,))
            le = float(eager(x, y).data)
            assert abs(le - native(x, y)) <= 1e-10 * max(1.0, abs(le))
    assert native.fallback_reason is None and native.compiled.captures == 1
    _assert_agrees_with_eager(m1, o1, m2, o2, opt)
