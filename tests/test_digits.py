"""Question 3 (digits benchmark), the shared training loop and the plots.

Expected numbers come from independent paths: ``tinygrad_mlp.practical.reference``'s
per-example backprop (``backward`` + ``sgd_update``), scikit-learn's
``MLPClassifier`` itself, PyTorch when installed, and hand-made divergences
whose outcome is known in closed form.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_mlp import reference
from tinygrad_mlp.bench import digits as D
from tinygrad_mlp.nn import MLP
from tinygrad_mlp.nn.optim import SGD, Adam
from tinygrad_mlp.training.loop import (DivergenceError, DivergenceWarning, History, accuracy, predict,
                                   progress_bar, train)

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-9


# ------------------------------------------------------------------------------ helpers
def reference_run(state: dict, X, Y, orders, lr, hidden="tanh", output="softmax", loss="cross_entropy",
                  batch_size=1, reduction="mean"):
    """SGD from the hand-written backprop: per-batch Σ (or mean) of reference.backward, then sgd_update."""
    L = len(state) // 2
    W = [state[f"W{l}"].copy() for l in range(1, L + 1)]
    b = [state[f"b{l}"].copy() for l in range(1, L + 1)]
    curve = []
    for order in orders:
        total = 0.0
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            res = reference.batch_backward(W, b, X[chunk], Y[chunk], hidden, output, loss)
            scale = 1.0 if reduction == "sum" else 1.0 / len(chunk)
            W, b = reference.sgd_update(W, b, [g * scale for g in res["dW"]], [g * scale for g in res["db"]], lr)
            total += res["loss"]
        curve.append(total / len(order))
    out = {}
    for l in range(L):
        out[f"W{l + 1}"], out[f"b{l + 1}"] = W[l], b[l]
    return out, curve


def max_diff(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def onehot(y, k=10):
    return np.eye(k)[y]


@pytest.fixture(scope="module")
def data():
    return D.load_data()


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory):
    """One CLI run of 3 epochs (tinygrad_mlp + hand-written), shared by several tests."""
    out = tmp_path_factory.mktemp("digits")
    path = out / "r.json"
    code = D.main(["--epochs", "3", "--only", "tinygrad_mlp,reference", "--quiet", "--json", str(path),
                   "--seed", "3"])
    return code, json.loads(path.read_text())


# --------------------------------------------------------------------- the benchmark
def test_three_epochs_reach_090_and_match_the_hand_written_weights(three_epochs):
    code, rep = three_epochs
    assert code == 0
    ours, ref = rep["systems"]
    assert (ours["name"], ref["name"]) == ("tinygrad_mlp", "reference")
    assert ours["test_accuracy"] >= 0.9
    assert rep["max_weight_diff_vs_reference"] <= TOL
    # Both rows see the same weights, so they predict alike.
    assert ours["test_accuracy"] == ref["test_accuracy"] and ours["train_accuracy"] == ref["train_accuracy"]


def test_json_carries_the_fields(three_epochs):
    _, rep = three_epochs
    assert rep["config"]["epochs"] == 3 and rep["config"]["init"] == "glorot"
    assert rep["data"] == {"n_train": 1437, "n_test": 360}
    for row in rep["systems"]:
        for key in ("name", "train_accuracy", "test_accuracy", "seconds", "us_per_step"):
            assert key in row
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["seconds"] > 0
        assert row["us_per_step"] == pytest.approx(row["seconds"] / (3 * 1437) * 1e6)
        assert len(row["loss_curve"]) == 3 and len(row["test_curve"]) == 3
    assert "max_weight_diff_vs_sklearn" not in rep  # only in --init sklearn mode


def test_autograd_and_the_library_reference_agree_from_the_same_start(data):
    """The benchmark's autograd row and its lean loop, against reference.backward (an independent path)."""
    config = D.Config(epochs=2, seed=5, quiet=True)
    setup = D.make_setup(config, data)
    expected, curve = reference_run(setup.initial, data.X_train, onehot(data.y_train), setup.orders, config.lr)
    ours = D.run_tinygrad(setup)
    lean = D.run_reference(setup)
    assert max_diff(expected, ours.weights) <= TOL
    assert max_diff(expected, lean.weights) <= TOL
    np.testing.assert_allclose(ours.loss_curve, curve, rtol=1e-10)
    np.testing.assert_allclose(lean.loss_curve, curve, rtol=1e-10)


@pytest.mark.parametrize("seed", [0, 7])
def test_sklearn_init_retraces_mlpclassifier_for_two_epochs(data, seed):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    setup = D.make_setup(D.Config(epochs=2, seed=seed, init="sklearn", quiet=True), data)
    ours = D.run_tinygrad(setup)
    clf = MLPClassifier(hidden_layer_sizes=(50,), activation="tanh", solver="sgd", batch_size=1,
                        learning_rate="constant", learning_rate_init=0.001, momentum=0.0, nesterovs_momentum=False,
                        alpha=0.0, max_iter=2, shuffle=True, n_iter_no_change=100, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(data.X_train, data.y_train)
    for l in (0, 1):
        np.testing.assert_allclose(ours.model.layers[l].W.data, clf.coefs_[l].T, rtol=0, atol=TOL)
        np.testing.assert_allclose(ours.model.layers[l].b.data, clf.intercepts_[l], rtol=0, atol=TOL)
    # Our learning curve is measured as scikit-learn's loss_curve_ is.
    np.testing.assert_allclose(ours.loss_curve, clf.loss_curve_, rtol=1e-9)


def test_cli_sklearn_mode_reports_the_weight_difference(tmp_path):
    path = tmp_path / "r.json"
    assert D.main(["--init", "sklearn", "--epochs", "2", "--only", "tinygrad_mlp,sklearn_sgd", "--quiet",
                   "--json", str(path)]) == 0
    rep = json.loads(path.read_text())
    assert [r["name"] for r in rep["systems"]] == ["tinygrad_mlp", "sklearn_sgd"]
    assert rep["max_weight_diff_vs_sklearn"] <= TOL
    assert rep["systems"][0]["test_accuracy"] == rep["systems"][1]["test_accuracy"]


@pytest.mark.parametrize("mode", ["exact", "fused"])
def test_compiled_flag_trains_the_main_model_through_the_replay(tmp_path, mode):
    path = tmp_path / "r.json"
    assert D.main(["--epochs", "2", "--only", "tinygrad_mlp,reference", "--quiet", "--json", str(path),
                   "--compiled", mode]) == 0
    rep = json.loads(path.read_text())
    assert rep["config"]["compiled"] == mode
    assert rep["systems"][0]["label"] == f"tinygrad_mlp (--compiled {mode})"
    # the same weights as the hand-written loop: exactly for the exact replay, to rounding when fused
    assert rep["max_weight_diff_vs_reference"] <= (1e-15 if mode == "exact" else 1e-12)


def test_compiled_rows_report_their_weights_against_eager_and_their_ratio(data):
    rep = D.run_benchmark(D.Config(epochs=1, only=("tinygrad_mlp", "reference", "compiled", "compiled_fused"),
                                   quiet=True), data)
    assert rep.max_weight_diff_compiled["compiled"] == 0.0  # bit-identical to eager
    assert 0.0 < rep.max_weight_diff_compiled["compiled_fused"] <= 1e-12
    sc = rep.speed_checks()
    assert sc["compiled_target_at_most"] == 0.75
    assert sc["compiled_over_reference"] > 0 and sc["compiled_fused_over_reference"] > 0
    assert "compiled_fused / hand-written time" in D.format_table(rep)


@pytest.mark.parametrize("argv, flag", [
    (["--compiled", "fast"], "--compiled"),
    (["--epochs", "-1"], "--epochs"),
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "ten"], "--epochs"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--only", "tinygrad_mlp,bogus"], "--only"),
    (["--init", "he"], "--init"),
    (["--hidden", "0"], "--hidden"),
    (["--seed", "-3"], "--seed"),
    (["--save", "x.npz", "--only", "reference"], "--save"),
])
def test_bad_flags_exit_2_naming_the_flag(argv, flag, capsys):
    assert D.main(argv) == 2
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, name", [(dict(epochs=0), "epochs"), (dict(lr=float("inf")), "lr"),
                                          (dict(init="he"), "init"), (dict(only=("nope",)), "only"),
                                          (dict(hidden=True), "hidden"), (dict(threads=0), "threads"),
                                          (dict(compiled="fast"), "compiled")])
def test_config_rejects_bad_values_naming_the_field(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        D.Config(**kwargs)


def test_describe_prints_the_dataset_description(capsys):
    from sklearn.datasets import load_digits

    assert D.main(["--describe"]) == 0
    assert load_digits().DESCR.strip() in capsys.readouterr().out


def test_help_names_the_default_init(capsys):
    assert D.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "glorot (default)" in out and "--only" in out


def test_missing_optional_rows_say_so(data, monkeypatch):
    for mod in ("torch", "tinygrad_mlp.compiler", "tinygrad_mlp.training.estimators"):
        monkeypatch.setitem(sys.modules, mod, None)  # makes `import mod` raise ImportError
    rep = D.run_benchmark(D.Config(epochs=1, only=("torch", "compiled", "estimator"), quiet=True), data)
    assert [(r.name, r.status) for r in rep.results] == [
        ("torch", "not installed"), ("compiled", "not available"), ("estimator", "not available")]
    table = D.format_table(rep)
    assert table.count("not available") == 2 and "not installed" in table


def test_a_broken_optional_row_does_not_sink_the_run(data, monkeypatch):
    def boom(setup):
        raise RuntimeError("kaput")

    monkeypatch.setitem(D.SYSTEMS, "torch", D.System("torch", "PyTorch", boom))
    rep = D.run_benchmark(D.Config(epochs=1, only=("torch",), quiet=True), data)
    assert rep.results[0].status == "error: RuntimeError: kaput"


def test_torch_row_matches_the_autograd_weights(data):
    pytest.importorskip("torch")
    rep = D.run_benchmark(D.Config(epochs=1, only=("tinygrad_mlp", "torch"), quiet=True), data)
    assert [r.status for r in rep.results] == ["ok", "ok"]
    assert rep.max_weight_diff_vs_torch <= TOL


@pytest.mark.parametrize("scale", [False, True])
def test_save_writes_a_model_that_predicts_as_reported(tmp_path, data, scale):
    serialize = pytest.importorskip("tinygrad_mlp.nn.serialize")
    model_path, json_path = tmp_path / "m.npz", tmp_path / "r.json"
    assert D.main(["--epochs", "1", "--only", "tinygrad_mlp", "--quiet", "--save", str(model_path),
                   "--json", str(json_path)] + (["--scale"] if scale else [])) == 0
    loaded, meta = serialize.load_with_meta(model_path)
    factor = float(meta["input_scale"])
    assert factor == (1 / 16 if scale else 1.0)
    W = [loaded.layers[l].W.data for l in (0, 1)]
    b = [loaded.layers[l].b.data for l in (0, 1)]
    # An independent forward pass (the reference's) on every raw test row, scaled as the meta says.
    pred = [reference.forward(W, b, x * factor, "tanh", "softmax")[1][-1].argmax() for x in data.X_test]
    assert np.mean(np.array(pred) == data.y_test) == json.loads(json_path.read_text())["systems"][0]["test_accuracy"]


def test_scale_divides_the_pixels_by_16(data):
    scaled = D.load_data(scale=True)
    np.testing.assert_array_equal(scaled.X_train * 16.0, data.X_train)
    np.testing.assert_array_equal(scaled.y_test, data.y_test)


def test_split_is_the_practicals(data):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(d.data, d.target, test_size=0.2, random_state=42)
    np.testing.assert_array_equal(data.X_test, X_test)
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.images_test.reshape(len(X_test), 64), X_test)


def test_confusion_matrix_matches_sklearn():
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 10, 200), rng.integers(0, 10, 200)
    np.testing.assert_array_equal(D.confusion_matrix(t, p), confusion_matrix(t, p, labels=range(10)))


def test_epoch_orders_are_fresh_permutations_and_seeded(data):
    a = D.make_setup(D.Config(epochs=3, seed=1), data)
    b = D.make_setup(D.Config(epochs=3, seed=1), data)
    c = D.make_setup(D.Config(epochs=3, seed=2), data)
    n = len(data.X_train)
    for o in a.orders:
        assert sorted(o.tolist()) == list(range(n))
    assert not np.array_equal(a.orders[0], a.orders[1])
    assert all(np.array_equal(x, y) for x, y in zip(a.orders, b.orders))
    assert not np.array_equal(a.initial["W1"], c.initial["W1"])


# ------------------------------------------------------------------------ training loop
@st.composite
def training_problems(draw):
    sizes = draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
    hidden = draw(st.sampled_from(["tanh", "sigmoid", "relu", "identity"]))
    kind = draw(st.sampled_from(["ce", "se-identity", "se-sigmoid"]))
    if kind == "ce" and sizes[-1] < 2:
        sizes[-1] = 2
    n = draw(st.integers(1, 7))
    batch_size = draw(st.integers(1, 8))
    reduction = draw(st.sampled_from(["mean", "sum"]))
    seed = draw(st.integers(0, 2**16))
    return sizes, hidden, kind, n, batch_size, reduction, seed


@settings(max_examples=25)
@given(training_problems())
def test_train_matches_the_hand_written_backprop(problem):
    sizes, hidden, kind, n, batch_size, reduction, seed = problem
    rng = np.random.default_rng(seed)
    output, loss = {"ce": ("softmax", "cross_entropy"), "se-identity": ("identity", "squared_error"),
                    "se-sigmoid": ("sigmoid", "squared_error")}[kind]
    model = MLP(sizes, hidden=hidden, output=output, seed=seed, bias_init=0.1)
    X = rng.normal(size=(n, sizes[0]))
    if kind == "ce":
        y = rng.integers(0, sizes[-1], n)
        Y = onehot(y, sizes[-1])
    else:
        Y = y = rng.uniform(size=(n, sizes[-1]))
    orders = [rng.permutation(n) for _ in range(2)]
    start = model.state_dict()
    hist = train(model, X, y, epochs=2, lr=0.05, batch_size=batch_size, loss=loss, reduction=reduction,
                 order=lambda e: orders[e])
    expected, curve = reference_run(start, X, Y, orders, 0.05, hidden, output, loss, batch_size, reduction)
    assert max_diff(expected, model.state_dict()) <= TOL
    np.testing.assert_allclose(hist.loss, curve, rtol=1e-9, atol=1e-12)
    assert hist.epochs == 2 and hist.steps == 2 * -(-n // batch_size)


def test_train_records_validation_accuracy_and_reproduces_with_a_seed():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 3)), rng.integers(0, 2, 30)
    runs = []
    for seed in (4, 4, 5):
        m = MLP([3, 5, 2], output="softmax", seed=0)
        h = train(m, X, y, epochs=3, lr=0.1, seed=seed, X_val=X, y_val=y)
        runs.append(m.state_dict())
        assert len(h.val_accuracy) == 3 and h.val_accuracy[-1] == accuracy(m, X, y)
    assert max_diff(runs[0], runs[1]) == 0.0 and max_diff(runs[0], runs[2]) > 0.0


def test_accuracy_and_predict_count_argmax_hits():
    m = MLP([2, 3], output="softmax", seed=1)
    X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]])
    W, b = m.layers[0].W.data, m.layers[0].b.data
    expected = [(W @ x + b).argmax() for x in X]
    np.testing.assert_array_equal(predict(m, X), expected)
    assert accuracy(m, X, np.array(expected)) == 1.0
    assert accuracy(m, X, (np.array(expected) + 1) % 3) == 0.0


def _diverging_problem():
    """Identity network, squared error, η far too large: the loss grows ~100× a step until it overflows."""
    X = np.array([[3.0, -2.0], [1.0, 4.0]])
    Y = np.array([[1.0], [-1.0]])
    return X, Y


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_divergence_raises_naming_epoch_and_step_and_keeps_the_last_finite_weights():
    X, Y = _diverging_problem()
    model = MLP([2, 1], hidden="identity", output="identity", weight_init=0.1, bias_init=0.0)
    start = model.state_dict()
    with pytest.raises(DivergenceError) as info:
        train(model, X, Y, epochs=1000, lr=5.0, loss="squared_error", shuffle=False)
    e = info.value
    assert f"epoch {e.epoch}" in str(e) and f"step {e.step} of 2" in str(e)
    assert all(np.isfinite(v).all() for v in model.state_dict().values())
    # Exactly the updates before the failing step were applied: redo them by hand.
    applied = 2 * (e.epoch - 1) + (e.step - 1)
    order = [np.array([0, 1])] * (applied // 2) + ([np.array([0])] if applied % 2 else [])
    expected, _ = reference_run(start, X, Y, order, 5.0, "identity", "identity", "squared_error")
    assert max_diff(expected, model.state_dict()) == 0.0
    # and the next step's loss is indeed not finite.
    W, b = expected["W1"], expected["b1"]
    with np.errstate(all="ignore"):
        nxt = X[applied % 2]
        assert not math.isfinite(0.5 * float(np.sum((W @ nxt + b - Y[applied % 2]) ** 2)))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_divergence_warns_when_asked():
    X, Y = _diverging_problem()
    model = MLP([2, 1], hidden="identity", output="identity", weight_init=0.1, bias_init=0.0)
    with pytest.warns(DivergenceWarning, match=r"epoch \d+, step \d+"):
        hist = train(model, X, Y, epochs=1000, lr=5.0, loss="squared_error", shuffle=False, on_divergence="warn")
    assert hist.diverged and hist.epochs < 1000 and "diverged" in hist.message
    assert all(np.isfinite(v).all() for v in model.state_dict().values())
    assert all(math.isfinite(v) for v in hist.loss)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_weights_that_overflow_under_a_finite_loss_keep_their_last_finite_values():
    # z = 1e75 · 1e75 = 1e150: L = ½ z² = 5e299 is finite, but ∂L/∂W = z x = 1e225 and η ∂L/∂W = inf.
    model = MLP([1, 1], hidden="identity", output="identity", weight_init=1e75, bias_init=0.0)
    X, Y = np.array([[1e75], [1e75]]), np.array([[0.0], [0.0]])
    with pytest.raises(DivergenceError, match="last finite values, those at the start") as info:
        train(model, X, Y, epochs=3, lr=1e100, loss="squared_error", shuffle=False)
    assert (info.value.epoch, info.value.step) == (1, 2)
    assert model.layers[0].W.data[0, 0] == 1e75 and model.layers[0].b.data[0] == 0.0


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("batch_size", [1, 16])
def test_train_compiled_gives_the_eager_weights_bit_for_bit(opt, batch_size):
    """One loop, two kinds of step: the replay (re-captured for the smaller last batch) is the tape's arithmetic."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 5)), rng.integers(0, 3, 50)
    runs = []
    for compiled in (None, "exact"):
        m = MLP([5, 7, 3], output="softmax", seed=1)
        o = {"sgd": lambda: SGD(m.parameters(), 0.05), "momentum": lambda: SGD(m.parameters(), 0.05, momentum=0.9),
             "adam": lambda: Adam(m.parameters(), 0.01)}[opt]()
        h = train(m, X, y, epochs=3, optimizer=o, batch_size=batch_size, seed=2, compiled=compiled)
        runs.append((m.state_dict(), h.loss))
    assert max_diff(runs[0][0], runs[1][0]) == 0.0 and runs[0][1] == runs[1][1]


NATIVE = pytest.param("native", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("numba") is None, reason="numba is not installed"))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("compiled", [None, "exact", NATIVE])
def test_divergence_keeps_the_finite_updates_made_earlier_in_the_epoch(compiled):
    """Issue 13, item 8: the README promises the last finite values, not the epoch's start.

    Step 1 (x = 0, y = 1e-100) moves only b: b = 0 − η (0 − 1e-100) with η = 1e100.  Step 2
    (x = 1e75, y = 0): L = ½ (1e150)² is finite, but η ∂L/∂W = 1e100 · 1e225 overflows W.
    The last finite weights are those after step 1.
    """
    model = MLP([1, 1], hidden="identity", output="identity", weight_init=1e75, bias_init=0.0)
    X, Y = np.array([[0.0], [1e75]]), np.array([[1e-100], [0.0]])
    with pytest.raises(DivergenceError, match="last finite values, those after step 1") as info:
        train(model, X, Y, epochs=3, lr=1e100, loss="squared_error", shuffle=False,
              **({"compiled": compiled} if compiled else {}))
    assert info.value.epoch == 1
    assert model.layers[0].W.data[0, 0] == 1e75
    assert model.layers[0].b.data[0] == 0.0 - 1e100 * (0.0 - 1e-100)  # the finite update of step 1, kept
    assert model.layers[0].b.data[0] != 0.0


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("compiled", ["exact", NATIVE])
def test_compiled_divergence_keeps_the_same_weights_as_eager(compiled):
    """The native kernel runs a whole epoch in one call; on a non-finite loss the epoch is run again step by
    step from its start, so the error names the same step as eager's."""
    X, Y = _diverging_problem()
    finals = []
    for c in (None, compiled):
        model = MLP([2, 1], hidden="identity", output="identity", weight_init=0.1, bias_init=0.0)
        with pytest.raises(DivergenceError) as info:
            train(model, X, Y, epochs=1000, lr=5.0, loss="squared_error", shuffle=False, compiled=c)
        finals.append((model.state_dict(), info.value.epoch, info.value.step))
    (a, ea, sa), (b, eb, sb) = finals
    assert (ea, sa) == (eb, sb)
    if compiled == "exact":
        assert max_diff(a, b) == 0.0
    else:  # reassociated sums: equal to rounding, relative to weights that have grown large
        assert all(np.allclose(a[k], b[k], rtol=1e-9, atol=0) for k in a)
    assert all(np.isfinite(v).all() for v in b.values())


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_divergence_is_a_value_error_as_in_scikit_learn():
    """scikit-learn raises ValueError("Solver produced non-finite parameter weights"): the same except catches ours."""
    from tinygrad_mlp.training.estimators import MLPRegressor

    X, Y = _diverging_problem()
    with pytest.raises(ValueError, match="diverged"):
        train(MLP([2, 1], hidden="identity", output="identity", weight_init=0.1), X, Y, epochs=1000, lr=5.0,
              loss="squared_error", shuffle=False)
    rng = np.random.default_rng(0)
    est = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=10.0, batch_size=10,
                       max_iter=20, random_state=0)
    with pytest.raises(ValueError, match="diverged"):
        est.fit(rng.normal(size=(60, 5)) * 100, rng.normal(size=60) * 1e3)


@pytest.mark.parametrize("kwargs, name", [
    (dict(epochs=-1, lr=0.1), "epochs"),
    (dict(epochs=1), "lr, optimizer"),
    (dict(epochs=1, lr=0.1, batch_size=0), "batch_size"),
    (dict(epochs=1, lr=0.1, loss="hinge"), "loss"),
    (dict(epochs=1, lr=0.1, reduction="max"), "reduction"),
    (dict(epochs=1, lr=0.1, on_divergence="ignore"), "on_divergence"),
    (dict(epochs=1, lr=-1.0), "lr"),
    (dict(epochs=1, lr=0.1, X_val=np.zeros((2, 3))), "X_val, y_val"),
    (dict(epochs=1, lr=0.1, order=lambda e: [0]), "order"),
    (dict(epochs=1, lr=0.1, compiled="fast"), "compiled"),
])
def test_train_rejects_bad_arguments_naming_them(kwargs, name):
    m = MLP([3, 2], output="softmax", seed=0)
    X, y = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    with pytest.raises((ValueError, TypeError)) as info:
        train(m, X, y, **kwargs)
    assert str(info.value).startswith(name)


@pytest.mark.parametrize("X, y, name", [
    (np.zeros((4, 2)), np.array([0, 1, 0, 1]), "X"),
    (np.full((4, 3), np.nan), np.array([0, 1, 0, 1]), "X"),
    (np.zeros((4, 3)), np.array([0, 1, 2, 1]), "y"),
    (np.zeros((4, 3)), np.array([0, 1, 0]), "y"),
])
def test_train_rejects_bad_data_naming_it(X, y, name):
    m = MLP([3, 2], output="softmax", seed=0)
    with pytest.raises(ValueError) as info:
        train(m, X, y, epochs=1, lr=0.1)
    assert str(info.value).startswith(name + ":")


def test_cross_entropy_needs_a_softmax_output_and_train_takes_an_optimizer():
    m = MLP([3, 2], output="identity", seed=0)
    with pytest.raises(ValueError, match="^loss: cross_entropy needs a softmax output"):
        train(m, np.zeros((2, 3)), [0, 1], epochs=1, lr=0.1)
    with pytest.raises(TypeError, match="^model"):
        train(object(), np.zeros((2, 3)), [0, 1], epochs=1, lr=0.1)
    m = MLP([3, 2], output="softmax", seed=0)
    h = train(m, np.ones((2, 3)), [0, 1], epochs=2, optimizer=SGD(m.parameters(), 0.1, momentum=0.5))
    assert isinstance(h, History) and h.steps == 4


def test_progress_is_a_line_per_epoch_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    m = MLP([3, 2], output="softmax", seed=0)
    train(m, np.ones((2, 3)), [0, 1], epochs=3, lr=0.1, progress=True, desc="run")
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" loss")[0] for line in err] == ["run: epoch 1/3", "run: epoch 2/3", "run: epoch 3/3"]


def test_progress_uses_tqdm_on_a_terminal_and_quiet_prints_nothing(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress_bar(2, "x")
    assert type(bar).__module__.startswith("tqdm")
    bar.close()
    assert "x:" in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert type(progress_bar(2, "x")).__name__ == "LineProgress"  # a log gets lines, not \r redraws
    assert D.main(["--epochs", "1", "--only", "reference", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ outputs: nothing lost
@pytest.fixture(scope="module")
def one_epoch_report(data):
    return D.run_benchmark(D.Config(epochs=1, only=("tinygrad_mlp", "reference"), quiet=True), data)


def _no_run(config):
    pytest.fail("the benchmark ran before the output paths were checked")


@pytest.mark.parametrize("flag, where", [
    ("--save", "missing/m.npz"), ("--json", "missing/r.json"), ("--json", "newdir/"), ("--json", "."),
    ("--plots", "missing/pics"), ("--plots", "afile/pics"), ("--save", "afile/m.npz"),
])
def test_output_paths_are_refused_before_training(tmp_path, monkeypatch, capsys, flag, where):
    """Issue 13: a folder that does not exist, a name ending in '/', a path under a file: exit 2 first."""
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(D, "run_benchmark", _no_run)
    monkeypatch.chdir(tmp_path)
    assert D.main([flag, where, "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"error: {flag}: ") and err.count("\n") == 1 and out == ""
    assert not (tmp_path / "missing").exists() and not (tmp_path / "newdir").exists()


def test_json_and_save_cannot_name_the_same_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(D, "run_benchmark", _no_run)
    assert D.main(["--save", str(tmp_path / "m"), "--json", str(tmp_path / "m"), "--quiet"]) == 2
    assert "--json" in capsys.readouterr().err


@pytest.mark.parametrize("failing", ["--json", "--plots"])
def test_a_failing_write_after_training_keeps_the_model(tmp_path, monkeypatch, capsys, one_epoch_report, failing):
    """The model is written first; a later write that fails prints one error line naming its flag."""
    serialize = pytest.importorskip("tinygrad_mlp.nn.serialize")
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    victim = out_dir if failing == "--json" else tmp_path / "pics"

    def run_then_lose_the_folder(config):  # the folder disappears while training runs
        import shutil

        if victim.exists():
            shutil.rmtree(victim)
        victim.write_text("now a file")
        return one_epoch_report

    monkeypatch.setattr(D, "run_benchmark", run_then_lose_the_folder)
    model_path = tmp_path / "m.npz"
    code = D.main(["--quiet", "--save", str(model_path), "--json", str(out_dir / "r.json"),
                   "--plots", str(tmp_path / "pics")])
    out, err = capsys.readouterr()
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {failing}: ") and "Traceback" not in err
    assert "the model is saved" in errors[0]
    loaded = serialize.load(model_path)
    assert max_diff(loaded.state_dict(), one_epoch_report.get("tinygrad_mlp").weights) == 0.0


def test_a_picture_that_fails_mid_write_leaves_the_old_one_whole(tmp_path, monkeypatch, capsys, one_epoch_report):
    """Issue 13: outputs are atomic. savefig writes half a file, then the disk is full."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    old = b"the previous picture"
    (tmp_path / "digits_samples.png").write_bytes(old)

    def torn(self, fname, *a, **k):
        if hasattr(fname, "write"):
            fname.write(b"\x89PNG half")
        else:
            Path(fname).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", torn)
    monkeypatch.setattr(D, "run_benchmark", lambda config: one_epoch_report)
    assert D.main(["--quiet", "--plots", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --plots: ") and "No space left on device" in err
    assert (tmp_path / "digits_samples.png").read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits_samples.png"]  # no temporary file left


def test_json_is_written_atomically_and_replaces_the_old_one(tmp_path, monkeypatch, one_epoch_report):
    path = tmp_path / "r.json"
    path.write_text("old")
    monkeypatch.setattr(D, "run_benchmark", lambda config: one_epoch_report)
    assert D.main(["--quiet", "--json", str(path)]) == 0
    assert json.loads(path.read_text())["config"]["epochs"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


# ---------------------------------------------------------------------------- pictures
def test_plots_are_written_and_are_pngs(tmp_path, one_epoch_report):
    pytest.importorskip("matplotlib")
    paths = D.write_plots(one_epoch_report, tmp_path)
    assert sorted(p.name for p in paths) == ["digits_confusion.png", "digits_learning_curves.png",
                                              "digits_samples.png", "digits_systems.png"]
    for p in paths:
        head = p.read_bytes()[:8]
        assert head == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def _report(rows, epochs=3, init="glorot"):
    """A Report built by hand: the pictures are tested on known numbers, not on a run."""
    data = D.Data(*(np.zeros((2, 64)),) * 2, np.array([0, 1]), np.array([0, 1]), *(np.zeros((2, 8, 8)),) * 2)
    setup = D.Setup(D.Config(epochs=epochs, init=init), data, {}, [])
    return D.Report(setup, [D.Result(name, name + " (row)", train_accuracy=tr, test_accuracy=te, seconds=sec,
                                     loss_curve=list(loss), test_curve=list(acc), test_predictions=np.array([0, 1]))
                            for name, tr, te, sec, loss, acc in rows])


def test_systems_picture_starts_accuracy_at_zero_and_labels_every_bar():
    """Issue 20: an axis from 0.93 made a fraction of a point look large; every bar carries its value."""
    pytest.importorskip("matplotlib")
    rows = [("tinygrad_mlp", 1.0, 0.975, 2.0, [1.0], [0.9]), ("reference", 0.9986, 0.9722, 1.0, [1.0], [0.9]),
            ("sklearn_sgd", 0.991, 0.93, 8.0, [1.0], [])]
    fig = D.make_figures(_report(rows))["digits_systems.png"]
    ax = fig.axes[0]
    assert ax.get_xlim()[0] == 0.0 and ax.get_xlim()[1] >= 1.0
    texts = [t.get_text() for t in ax.texts]
    for _, tr, te, *_ in rows:
        assert f"train {tr:.3f}" in texts and f"test {te:.3f}" in texts
    assert len([p for p in ax.patches]) == 2 * len(rows)


def test_learning_curves_stop_at_the_epochs_run_and_say_which_coincide():
    """Issue 20: scikit-learn's Adam ran 197 epochs beside 100; overlapping curves must show."""
    pytest.importorskip("matplotlib")
    same = list(np.linspace(1, 0.1, 16))
    rows = [("tinygrad_mlp", 1, 1, 1, same, [0.8] * 16), ("reference", 1, 1, 1, same, [0.8] * 16),
            ("compiled", 1, 1, 1, same, [0.8] * 16), ("sklearn_adam", 1, 1, 1, [0.9] * 31, [])]
    fig = D.make_figures(_report(rows, epochs=16))["digits_learning_curves.png"]
    lines = [line for ax in fig.axes for line in ax.lines]
    assert lines and max(float(np.max(line.get_xdata())) for line in lines) == 16
    markers = [line.get_marker() for line in fig.axes[0].lines]
    assert len(set(markers)) == len(markers) and "None" not in markers  # each system its own marker
    starts = {line.get_markevery()[0] for line in fig.axes[0].lines}
    assert len(starts) > 1  # placed at different epochs, so coinciding curves show each marker
    note = " ".join(" ".join(t.get_text() for t in fig.texts).split())  # wrapped lines joined
    assert "These 3 start from the same weights" in note and "tinygrad_mlp, reference, compiled" in note
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "sklearn_adam (row) (31 epochs, first 16 shown)" in labels


def test_samples_picture_titles_the_misclassified_row_for_what_it_is():
    pytest.importorskip("matplotlib")
    rep = _report([("tinygrad_mlp", 1, 0.5, 1, [1.0], [0.5])])
    n = 40
    d = rep.setup.data
    d.images_test, d.y_test = np.zeros((n, 8, 8)), np.arange(n) % 10
    pred = d.y_test.copy()
    pred[[3, 20, 30]] = (pred[[3, 20, 30]] + 1) % 10
    r = rep.results[0]
    r.test_predictions, r.test_accuracy = pred, float(np.mean(pred == d.y_test))
    fig = D.make_figures(rep)["digits_samples.png"]
    titles = [sub._suptitle.get_text() for sub in fig.subfigs]
    assert titles[0].startswith("The first 16 test digits")
    assert titles[1].startswith("Picked on purpose: 2 of the 3 test digits (of 40) that tinygrad_mlp gets wrong")


def test_plots_without_matplotlib_fail_clearly(monkeypatch, tmp_path, capsys):
    from tinygrad_mlp.bench import plots

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install"):
        plots.require_matplotlib()
    assert D.main(["--plots", str(tmp_path), "--epochs", "1", "--quiet"]) == 2
    assert "--plots" in capsys.readouterr().err


# --------------------------------------------------------------------- scripts
def _run(args):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_example_trains_and_reports_accuracy():
    r = _run(["examples/train_digits.py", "2"])
    assert r.returncode == 0, r.stderr
    test_acc = float(r.stdout.split("test accuracy")[1])
    assert test_acc >= 0.85


def test_redirected_progress_has_no_carriage_returns_and_one_name_for_the_test_set():
    """Issue 20: tqdm's \\r redraws only on a terminal; "test acc" everywhere, never "val acc"."""
    r = _run(["-m", "tinygrad_mlp", "digits", "--epochs", "2", "--only", "tinygrad_mlp,reference,compiled"])
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "val acc" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.splitlines() if "epoch 2/2" in line]
    assert len(lines) == 3 and all("test acc 0." in line for line in lines)
    r = _run(["examples/train_digits.py", "1"])
    assert "\r" not in r.stderr and "test acc" in r.stderr and "val acc" not in r.stderr


def test_a_bad_value_prints_one_error_line_and_a_hint_not_the_usage(capsys):
    assert D.main(["--lr", "x"]) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0].startswith("error: argument --lr: ") and len(lines) <= 2 and "usage" not in err
    assert out == ""


def test_benchmark_script_and_module_entry_point():
    r = _run(["benchmarks/digits.py", "--epochs", "1", "--only", "reference", "--quiet"])
    assert r.returncode == 0, r.stderr
    assert "hand-written backprop" in r.stdout
    r = _run(["-m", "tinygrad_mlp", "digits", "--lr", "0"])
    assert r.returncode == 2 and "--lr" in r.stderr
