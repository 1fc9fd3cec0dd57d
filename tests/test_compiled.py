"""The compiled (captured and replayed) training step: equal to the eager tape, guarded, and its traps.

Expected numbers come from the eager tape run side by side (a separate code path: Tensors, the tape,
the primitives' own vjps and ``SGD.step``) and from the hand-written backprop in
``tinygrad_mlp.practical.reference``.
"""
import gc
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_mlp import MLP, Tensor, functional as F, reference, tape_size
from tinygrad_mlp import optim
from tinygrad_mlp.compiler.compiled import CaptureError, CompiledStep, compile as compile_step

PAIRS = [("identity", "squared_error"), ("sigmoid", "squared_error"), ("softmax", "cross_entropy")]


def make(sizes, hidden="tanh", output="softmax", loss="cross_entropy", reduction="sum", opt="sgd",
         momentum=0.0, lr=0.05, seed=0, weight_init="glorot_uniform", dtype=np.float64):
    """A model, its optimiser and the step function the brief describes."""
    model = MLP(sizes, hidden=hidden, output=output, seed=seed, weight_init=weight_init, dtype=dtype)
    if opt == "adam":
        o = optim.Adam(model.parameters(), lr=lr)
    else:
        o = optim.SGD(model.parameters(), lr, momentum=momentum)

    def step(x, y):
        o.zero_grad()
        out = model.logits(x) if loss == "cross_entropy" else model(x)
        L = F.cross_entropy(out, y, reduction) if loss == "cross_entropy" else F.squared_error(out, y, reduction)
        L.backward()
        o.step()
        return L

    return model, o, step


def data(rng, n_in, n_out, batch, output, steps):
    shape = (n_in,) if batch is None else (batch, n_in)
    xs = [rng.uniform(-2, 2, shape) for _ in range(steps)]
    if output == "softmax":
        labels = [rng.integers(0, n_out, () if batch is None else (batch,)) for _ in range(steps)]
        ys = [np.eye(n_out)[lab] for lab in labels]
    else:
        ys = [rng.uniform(0, 1, shape[:-1] + (n_out,)) for _ in range(steps)]
    return xs, ys


def assert_same_weights(m1, m2, tol=0.0):
    s1, s2 = m1.state_dict(), m2.state_dict()
    for k in s1:
        if tol == 0.0:
            assert np.array_equal(s1[k], s2[k]), k
        else:
            np.testing.assert_allclose(s1[k], s2[k], rtol=0, atol=tol, err_msg=k)


# ------------------------------------------------------------------------------------ equivalence
@settings(max_examples=25)
@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
       hidden=st.sampled_from(["tanh", "sigmoid", "relu", "identity"]),
       pair=st.sampled_from(PAIRS), batch=st.sampled_from([None, 1, 3]),
       reduction=st.sampled_from(["sum", "mean"]), opt=st.sampled_from(["sgd", "momentum", "adam"]),
       seed=st.integers(0, 2**16))
def test_replay_equals_eager_tape_over_random_mlps(sizes, hidden, pair, batch, reduction, opt, seed):
    output, loss = pair
    if output == "softmax" and sizes[-1] < 2:
        sizes = sizes[:-1] + [2]
    kw = dict(hidden=hidden, output=output, loss=loss, reduction=reduction, seed=seed,
              opt="adam" if opt == "adam" else "sgd", momentum=0.9 if opt == "momentum" else 0.0)
    m1, _, eager = make(sizes, **kw)
    m2, _, step = make(sizes, **kw)
    compiled = compile_step(step)
    xs, ys = data(np.random.default_rng(seed), sizes[0], sizes[-1], batch, output, 4)
    for x, y in zip(xs, ys):
        le = float(eager(x, y).data)
        lc = compiled(x, y)
        assert isinstance(lc, float)
        assert abs(le - lc) <= 1e-12 * max(1.0, abs(le))
    assert compiled.captures == 1
    assert_same_weights(m1, m2, tol=1e-12)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p2.grad, p1.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("output,loss", PAIRS)
@pytest.mark.parametrize("hidden", ["tanh", "sigmoid", "relu"])
def test_one_replayed_step_matches_the_hand_written_backprop(output, loss, hidden):
    rng = np.random.default_rng(3)
    model, _, step = make([4, 5, 3], hidden=hidden, output=output, loss=loss, lr=0.1)
    compiled = compile_step(step)
    xs, ys = data(rng, 4, 3, None, output, 3)
    compiled(xs[0], ys[0])  # capture
    for x, y in zip(xs[1:], ys[1:]):
        W = [l.W.data.copy() for l in model.layers]
        b = [l.b.data.copy() for l in model.layers]
        ref = reference.backward(W, b, x, y, hidden, output, loss)
        got = compiled(x, y)
        assert abs(got - ref["loss"]) <= 1e-12
        W_new, b_new = reference.sgd_update(W, b, ref["dW"], ref["db"], 0.1)
        for l, layer in enumerate(model.layers):
            np.testing.assert_allclose(layer.W.grad, ref["dW"][l], rtol=0, atol=1e-12)
            np.testing.assert_allclose(layer.b.grad, ref["db"][l], rtol=0, atol=1e-12)
            np.testing.assert_allclose(layer.W.data, W_new[l], rtol=0, atol=1e-12)
            np.testing.assert_allclose(layer.b.data, b_new[l], rtol=0, atol=1e-12)


def test_fused_kernels_give_the_composed_ops_gradients_bit_for_bit():
    # linear + bias (one buffer), softmax + cross-entropy gradient (δ = Σy·t/r − y in one buffer)
    # and the rank-1 ∂L/∂W = δ hᵀ: the .grad a replay leaves equals the eager composed ops' exactly.
    rng = np.random.default_rng(7)
    m1, _, eager = make([6, 5, 4], momentum=0.5)
    m2, _, step = make([6, 5, 4], momentum=0.5)
    compiled = compile_step(step)
    for _ in range(5):
        x, y = rng.normal(size=6), np.eye(4)[rng.integers(4)]
        assert float(eager(x, y).data) == compiled(x, y)
        for p1, p2 in zip(m1.parameters(), m2.parameters()):
            assert np.array_equal(p1.grad, p2.grad)
    z = m2.logits(rng.normal(size=6)).data
    # the buffered kernels ran, not the generic fallback: logsumexp's kernel and the softmax t / r
    assert "matmul(" in compiled.source and ".argmax()" in compiled.source and "div(" in compiled.source
    assert z.shape == (4,)


def test_same_seed_gives_bit_identical_weights_after_training_eager_or_compiled():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X[:300] / 16.0
    Y = np.eye(10)[y[:300]]
    order = np.random.default_rng(0).permutation(300)
    m1, _, eager = make([64, 50, 10], lr=0.001, seed=42)
    m2, _, step = make([64, 50, 10], lr=0.001, seed=42)
    compiled = compile_step(step)
    for epoch in range(2):
        for i in order:
            assert float(eager(X[i], Y[i]).data) == compiled(X[i], Y[i])
    assert_same_weights(m1, m2)


def test_replay_creates_no_tensor_and_no_tape_record():
    model, _, step = make([5, 4, 3])
    compiled = compile_step(step)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=5), np.eye(3)[1]
    compiled(x, y)
    gc.collect()
    before_tape = tape_size()
    before = sum(issubclass(type(o), Tensor) for o in gc.get_objects())  # type(): a dead weakproxy (numba) raises on isinstance
    for _ in range(50):
        compiled(rng.normal(size=5), y)
    gc.collect()
    assert tape_size() == before_tape
    assert sum(issubclass(type(o), Tensor) for o in gc.get_objects()) == before


def test_a_thousand_replayed_steps_do_not_grow_memory():
    model, _, step = make([64, 50, 10], lr=0.001)
    compiled = compile_step(step)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(100, 64)), np.eye(10)[rng.integers(0, 10, 100)]
    for i in range(100):  # warm up: capture and first replays
        compiled(X[i], Y[i])
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for k in range(1000):
            compiled(X[k % 100], Y[k % 100])
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < 16_384, grown


# ------------------------------------------------------------------------------------ guards
def test_another_shape_or_dtype_captures_again_and_stays_exact():
    m1, _, eager = make([4, 3, 2])
    m2, _, step = make([4, 3, 2])
    compiled = compile_step(step)
    rng = np.random.default_rng(1)
    calls = [(rng.normal(size=4), np.eye(2)[0]), (rng.normal(size=(3, 4)), np.eye(2)[[0, 1, 1]]),
             (rng.normal(size=4), np.eye(2)[1]), (rng.normal(size=(3, 4)), np.eye(2)[[1, 1, 0]])]
    for x, y in calls:
        assert abs(float(eager(x, y).data) - compiled(x, y)) <= 1e-12
    assert compiled.captures == 2  # (4,) and (3, 4); later calls replay them
    assert_same_weights(m1, m2, tol=1e-12)
    # float32 rows into a float64 model: fn converts them to a float64 copy, which a replay would
    # freeze; the capture refuses instead of replaying stale data
    with pytest.raises(CaptureError, match="copy"):
        compiled(rng.normal(size=4).astype(np.float32), np.eye(2)[1])
    m3, _, e32 = make([4, 2], lr=0.1, dtype=np.float32)
    m4, _, s32 = make([4, 2], lr=0.1, dtype=np.float32)
    c32 = compile_step(s32)
    for _ in range(3):
        x, y = rng.normal(size=4).astype(np.float32), np.eye(2, dtype=np.float32)[rng.integers(2)]
        assert float(e32(x, y).data) == c32(x, y)
    assert_same_weights(m3, m4)


def test_a_python_int_label_is_a_guard_not_a_frozen_index():
    # cross_entropy(z, 3) indexes z[3] with a Python int: each new label captures its own variant.
    m1, _, eager = make([4, 3, 3])
    m2, _, step = make([4, 3, 3])
    compiled = compile_step(step, max_captures=3)
    rng = np.random.default_rng(2)
    for label in [0, 1, 0, 2, 1, 2]:
        x = rng.normal(size=4)
        assert float(eager(x, label).data) == compiled(x, label)
    assert compiled.captures == 3
    assert_same_weights(m1, m2)
    with pytest.raises(CaptureError, match="max_captures"):
        compiled(rng.normal(size=(2, 4)), 1)


def test_a_numpy_integer_label_is_an_input_not_a_guard():
    # y[i] of an integer label vector is an np.int64: data read at every call, one capture for all ten labels
    m1, _, eager = make([4, 6, 10])
    m2, _, step = make([4, 6, 10])
    compiled = compile_step(step)
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 10, 30)
    assert len(set(y.tolist())) > compiled.max_captures
    for i in range(30):
        assert float(eager(X[i], y[i]).data) == compiled(X[i], y[i])
    assert compiled.captures == 1
    assert_same_weights(m1, m2)


def test_data_dependent_control_flow_is_refused():
    model = MLP([3, 2], output="softmax", seed=0)
    opt = optim.SGD(model.parameters(), 0.1)

    def branchy(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model.logits(x), y)
        if x[0] > 0:  # decided by the data: a replay could not follow it
            loss = loss * 2.0
        loss.backward()
        opt.step()
        return loss

    with pytest.raises(CaptureError, match="input array was converted"):
        compile_step(branchy)(np.ones(3), np.eye(2)[0])

    def item_inside(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model.logits(x), y)
        if loss.item() > 1.0:
            loss.backward()
        opt.step()
        return loss

    with pytest.raises(CaptureError, match="converted to a Python value"):
        compile_step(item_inside)(np.ones(3), np.eye(2)[0])


def test_a_returned_python_number_or_an_update_outside_the_optimiser_is_refused():
    model = MLP([3, 2], output="softmax", seed=0)

    def returns_float(x, y):
        loss = F.cross_entropy(model.logits(x), y)
        loss.backward()
        return 1.5

    with pytest.raises(CaptureError, match="Python number"):
        compile_step(returns_float)(np.ones(3), np.eye(2)[0])

    def manual_update(x, y):
        model.zero_grad()
        loss = F.cross_entropy(model.logits(x), y)
        loss.backward()
        for p in model.parameters():
            p.data -= 0.1 * p.grad  # NumPy on .data: invisible to the capture
        return loss

    with pytest.raises(CaptureError, match="outside an optimiser"):
        compile_step(manual_update)(np.ones(3), np.eye(2)[0])


def test_replacing_a_parameters_array_captures_again():
    m1, _, eager = make([3, 2])
    m2, _, step = make([3, 2])
    compiled = compile_step(step)
    x, y = np.ones(3), np.eye(2)[1]
    compiled(x, y), eager(x, y)
    new = np.full((2, 3), 0.25)
    m1.layers[0].W.data = new.copy()
    m2.layers[0].W.data = new.copy()  # the replay's buffers point at the old array
    assert float(eager(x, y).data) == compiled(x, y)
    assert compiled.captures == 2
    assert_same_weights(m1, m2)


def test_bad_arguments_raise_named_errors():
    with pytest.raises(TypeError, match="fn"):
        compile_step(42)
    with pytest.raises(ValueError, match="max_captures"):
        compile_step(lambda: None, max_captures=0)
    model = MLP([2, 2], seed=0)
    with pytest.raises(TypeError, match="requires grad"):
        compile_step(lambda x: model(x))(Tensor(np.ones(2), requires_grad=True))
    assert isinstance(compile_step(lambda: None), CompiledStep)


# ------------------------------------------------------------------------------------ the traps
def test_trap_python_code_in_fn_runs_only_at_capture():
    model, opt, _ = make([3, 2])
    calls = []

    def step(x, y):
        calls.append(1)  # a side effect: replays skip it
        opt.zero_grad()
        loss = F.cross_entropy(model.logits(x), y)
        loss.backward()
        opt.step()
        return loss

    compiled = compile_step(step)
    for _ in range(4):
        compiled(np.ones(3), np.eye(2)[0])
    assert len(calls) == 1


def test_trap_the_learning_rate_lives_on_the_optimiser_not_in_fn():
    # opt.lr is read at every replay; a rate set inside fn would be frozen at its capture value.
    m1, o1, eager = make([3, 2], lr=0.1, momentum=0.9)
    m2, o2, step = make([3, 2], lr=0.1, momentum=0.9)
    compiled = compile_step(step)
    rng = np.random.default_rng(4)
    for lr in [0.1, 0.5, 0.01, 0.2]:
        o1.lr = o2.lr = lr
        x, y = rng.normal(size=3), np.eye(2)[rng.integers(2)]
        assert float(eager(x, y).data) == compiled(x, y)
    assert_same_weights(m1, m2)

    model, opt, _ = make([3, 2], lr=0.1)
    schedule = iter([0.1, 1.0, 1.0])

    def step_with_schedule(x, y):
        opt.lr = next(schedule)  # runs once: every replay keeps lr = 0.1
        opt.zero_grad()
        loss = F.cross_entropy(model.logits(x), y)
        loss.backward()
        opt.step()
        return loss

    frozen = compile_step(step_with_schedule)
    frozen(np.ones(3), np.eye(2)[0])
    frozen(np.ones(3), np.eye(2)[0])
    assert opt.lr == 0.1


def test_trap_returned_arrays_and_grads_are_buffers_overwritten_by_the_next_replay():
    model, opt, _ = make([3, 2])

    def step(x, y):
        opt.zero_grad()
        z = model.logits(x)
        loss = F.cross_entropy(z, y)
        loss.backward()
        opt.step()
        return loss, z

    compiled = compile_step(step)
    compiled(np.ones(3), np.eye(2)[0])
    loss1, z1 = compiled(np.ones(3), np.eye(2)[0])
    kept, grad1 = z1.copy(), model.layers[0].W.grad
    loss2, z2 = compiled(-np.ones(3), np.eye(2)[1])
    assert z2 is z1 and model.layers[0].W.grad is grad1  # the same buffers ...
    assert not np.array_equal(z1, kept)  # ... so an uncopied result changed under us
    assert isinstance(loss1, float) and loss1 != loss2  # a scalar loss is a float: safe to keep


def test_trap_target_row_sums_and_argument_checks_are_frozen_at_capture():
    # cross_entropy(z, y) with float targets weights logsumexp by Σy computed in NumPy, outside the
    # tape: exact for one-hot rows (Σy = 1 exactly, as at capture), off for a row whose sum differs.
    m1, _, eager = make([3, 3])
    m2, _, step = make([3, 3])
    compiled = compile_step(step)
    x = np.ones(3)
    compiled(x, np.eye(3)[0]), eager(x, np.eye(3)[0])
    assert float(eager(x, np.eye(3)[2]).data) == compiled(x, np.eye(3)[2])
    off = np.array([0.2, 0.3, 0.5 + 8e-7])  # accepted by cross_entropy (|Σy − 1| ≤ 1e-6)
    assert abs(float(eager(x, off).data) - compiled(x, off)) > 1e-8
    # the target check itself ran at capture only: eager refuses this row, a replay computes with it
    doubled = 2 * np.eye(3)[1]
    with pytest.raises(ValueError, match="summing to 1"):
        eager(x, doubled)
    assert np.isfinite(compiled(x, doubled))


def test_inputs_are_copied_so_fn_may_keep_views_and_callers_may_reuse_arrays():
    m1, _, eager = make([4, 3])
    m2, _, step = make([4, 3])
    compiled = compile_step(step)
    x, y = np.zeros(4), np.eye(3)[2]
    rng = np.random.default_rng(5)
    for _ in range(4):
        x[:] = rng.normal(size=4)  # the caller overwrites one array in place between calls
        assert float(eager(x, y).data) == compiled(x, y)
    assert_same_weights(m1, m2)
    assert compiled(x.tolist(), Tensor(y)) == pytest.approx(float(eager(x, y).data), abs=1e-12)


def test_the_digits_benchmark_step_through_model_loss_replays_exactly():
    m1, o1 = MLP([8, 6, 4], output="softmax", seed=1), None
    m2 = MLP([8, 6, 4], output="softmax", seed=1)
    o1, o2 = optim.SGD(m1.parameters(), 0.01), optim.SGD(m2.parameters(), 0.01)

    def step_fn(model, opt):
        def f(x, y):
            opt.zero_grad()
            loss = model.loss(x, y)
            loss.backward()
            opt.step()
            return loss
        return f

    eager, compiled = step_fn(m1, o1), compile_step(step_fn(m2, o2))
    rng = np.random.default_rng(8)
    X, Y = list(rng.uniform(0, 1, (30, 8))), list(np.eye(4)[rng.integers(0, 4, 30)])
    for x, y in zip(X, Y):
        assert float(eager(x, y).data) == compiled(x, y)
    assert compiled.captures == 1
    assert_same_weights(m1, m2)


def test_capture_leaves_the_library_as_it_found_it_even_when_it_fails():
    import tinygrad_mlp.autograd.tensor as T
    from tinygrad_mlp.autograd.primitives import PRIMITIVES

    before = (dict(Tensor.__dict__), T.apply, {n: p.__dict__["forward"] for n, p in PRIMITIVES.items()},
              optim.Optimizer.__dict__["step"], optim.SGD.__dict__["update"])
    model, opt, step = make([3, 2])
    compile_step(step)(np.ones(3), np.eye(2)[0])

    def bad(x, y):
        return float(x[0])

    with pytest.raises(CaptureError):
        compile_step(bad)(np.ones(3), np.eye(2)[0])
    after = (dict(Tensor.__dict__), T.apply, {n: p.__dict__["forward"] for n, p in PRIMITIVES.items()},
             optim.Optimizer.__dict__["step"], optim.SGD.__dict__["update"])
    assert before == after


def test_every_primitive_has_a_replay_rule():
    """The code generator reads the rules table only: a primitive without an entry cannot be replayed."""
    from tinygrad_mlp.autograd.primitives import PRIMITIVES
    from tinygrad_mlp.compiler.rules import RULES, Rule

    missing = [name for name, prim in PRIMITIVES.items() if prim not in RULES]
    assert not missing, f"primitives without a replay rule in compiler/rules.py: {missing}"
    assert all(isinstance(r, Rule) and callable(r.forward) and callable(r.vjp) for r in RULES.values())


def test_a_capture_in_one_thread_never_changes_what_another_thread_runs():
    import threading

    def train(model, opt, step, xs, ys):
        for x, y in zip(xs, ys):
            step(x, y)

    rng = np.random.default_rng(11)
    xs, ys = data(rng, 6, 3, None, "softmax", 400)
    solo, _, solo_step = make([6, 5, 3], momentum=0.9, seed=3)
    train(None, None, solo_step, xs, ys)

    eager_model, _, eager_step = make([6, 5, 3], momentum=0.9, seed=3)
    comp_model, _, comp_step = make([6, 5, 3], seed=4)
    errors = []

    def run_compiled():
        try:
            for _ in range(5):  # several captures while the other thread records
                c = compile_step(comp_step)
                for x, y in zip(xs[:80], ys[:80]):
                    c(x, y)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    a = threading.Thread(target=run_compiled)
    b = threading.Thread(target=train, args=(None, None, eager_step, xs, ys))
    a.start(), b.start()
    a.join(), b.join()
    assert not errors
    assert_same_weights(solo, eager_model)


@pytest.mark.parametrize("backend", ["numpy", "native"])
def test_the_newer_primitives_replay_as_eager_runs_them(backend):
    """abs, sqrt, clamp, max, clone, a tensor exponent: replayed bit for bit (numpy) or to rounding (native)."""
    if backend == "native":
        pytest.importorskip("numba")

    def build():
        model = MLP([4, 5, 3], output="identity", seed=1)
        opt = optim.SGD(model.parameters(), 0.05)

        def step(x, y):
            opt.zero_grad()
            z = model(x)
            a = (z - y).abs().clone()
            L = (a.clamp(0.01, 3.0).sqrt() + a ** (z * 0 + 2.0)).sum() + z.max()
            L.backward()
            opt.step()
            return L
        return model, step

    import warnings
    m1, eager = build()
    m2, step = build()
    replay = compile_step(step, backend=backend)
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # native: the generic rules fall back, by design
        for _ in range(6):
            x, y = rng.uniform(-1, 1, 4), rng.uniform(-1, 1, 3)
            le, lc = float(eager(x, y).data), replay(x, y)
            assert le == lc if backend == "numpy" else abs(le - lc) <= 1e-12
    assert_same_weights(m1, m2, tol=0.0 if backend == "numpy" else 1e-12)


@pytest.mark.parametrize("hidden", ["sigmoid", "relu", "tanh", "identity"])
def test_every_activation_replays_bit_identical_far_into_its_tails(hidden):
    # sigmoid's forward takes each tail from e^−|z| and relu is max(z, 0): a replay rule that kept the old
    # formulas would differ from eager by an ulp here, where |z| reaches the tens
    m1, o1, step1 = make([5, 7, 3], hidden=hidden, momentum=0.5, lr=0.1, seed=1)
    m2, o2, step2 = make([5, 7, 3], hidden=hidden, momentum=0.5, lr=0.1, seed=1)
    eager, compiled = step1, compile_step(step2)
    rng = np.random.default_rng(0)
    for _ in range(40):
        x, y = rng.uniform(-30, 30, 5), np.eye(3)[rng.integers(0, 3)]
        assert float(eager(x, y).data) == compiled(x, y)
    assert_same_weights(m1, m2)


# ------------------------------------------------------------------------------------ integer labels
@pytest.mark.parametrize("batch", [None, 4])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_integer_label_arrays_are_read_at_every_replay_bit_identical_to_eager(batch, reduction, dtype):
    # a 0-d label array (one example) or a label vector (a batch) is an input: the replay reads the
    # label of each call (one capture for all), through the buffered rule, not the primitive itself
    m1, _, eager = make([5, 6, 3], reduction=reduction, momentum=0.9)
    m2, _, step = make([5, 6, 3], reduction=reduction, momentum=0.9)
    compiled = compile_step(step)
    rng = np.random.default_rng(11)
    for _ in range(12):
        x = rng.uniform(-2, 2, (5,) if batch is None else (batch, 5))
        y = rng.integers(0, 3, () if batch is None else (batch,)).astype(dtype)
        assert float(eager(x, y).data) == compiled(x, y)
        for p1, p2 in zip(m1.parameters(), m2.parameters()):
            assert np.array_equal(p1.grad, p2.grad)
    assert compiled.captures == 1
    assert "CrossEntropy" not in compiled.source and "label_error" in compiled.source
    assert_same_weights(m1, m2)


@pytest.mark.parametrize("label", [np.array(3), np.array(-1), np.array([0, 2, 3]), np.array([1, -1, 0])])
def test_an_out_of_range_label_in_a_replay_is_the_eager_error_not_a_wrong_number(label):
    model, _, step = make([4, 5, 3])
    compiled = compile_step(step)
    x = np.ones(4) if label.ndim == 0 else np.ones((label.size, 4))
    compiled(x, np.zeros_like(label))  # capture with good labels
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"y: class labels must lie in \[0, 3\)"):
        make([4, 5, 3])[2](x, label)  # eager refuses it
    with pytest.raises(ValueError, match=r"y: class labels must lie in \[0, 3\)"):
        compiled(x, label)  # -1 would silently pick the last logit, 3 an IndexError
    assert all(np.array_equal(b, p.data) for b, p in zip(before, model.parameters()))
