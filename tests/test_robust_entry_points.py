"""Bad input at the outer entry points: estimators, the three commands, train, the compiled step.

The same contract as ``tests/test_robust.py``, one level up: every entry point,
given malformed input, raises ValueError or TypeError whose message starts with
the argument's name (a command: exits 2 with the flag or field named on
stderr and nothing on stdout), or gives a result checked here against an
independent path (scikit-learn's own ``MLPClassifier``/``MLPRegressor``, the
hand-written :mod:`tinygrad_mlp.practical.reference` backprop, the eager tape, a
validity predicate written in this file).  Anything else (a traceback from
inside NumPy, a NaN, a RuntimeWarning) fails the test.
"""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkClassifier
from sklearn.neural_network import MLPRegressor as SkRegressor

from tinygrad_mlp import MLP, Tensor, reference
from tinygrad_mlp.bench import digits as D
from tinygrad_mlp.cli import exercise as exercise_cli
from tinygrad_mlp.cli import predict as predict_cli
from tinygrad_mlp import functional as F
from tinygrad_mlp import optim
from tinygrad_mlp.compiler.compiled import CaptureError, compile as compile_step
from tinygrad_mlp.training.estimators import MLPClassifier, MLPRegressor
from tinygrad_mlp.practical.exercise import BUILTINS
from tinygrad_mlp.nn.serialize import save
from tinygrad_mlp.training.loop import DivergenceError, train

from test_compiled import make as make_step  # the same SGD + cross-entropy step the compiled tests use

FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def attempt(f):
    """(result, None) or (None, the ValueError/TypeError); RuntimeWarnings (overflow, NaN) are failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            return f(), None
        except (ValueError, TypeError) as e:
            return None, e


def names(err, *args) -> bool:
    """The message starts with one of the argument names (``X: ...``, ``X has ...``)."""
    event("refused")
    return any(str(err).startswith((f"{a}:", f"{a} ")) for a in args)


_RNG = np.random.default_rng(0)
X20 = _RNG.normal(size=(20, 4))
Y20 = np.arange(20) % 3


# ===================================================================================== estimators
_bad_X = st.one_of(
    # NaN / inf somewhere in an otherwise good matrix
    st.tuples(st.integers(0, 19), st.integers(0, 3), st.sampled_from([math.nan, math.inf, -math.inf])).map(
        lambda t: np.where((np.arange(20)[:, None] == t[0]) & (np.arange(4) == t[1]), t[2], X20)),
    st.sampled_from(["empty", "1d", "3d", "str", "none", "ragged", "0 features", "scalar", "complex"]).map(
        {"empty": X20[:0], "1d": X20[:, 0], "3d": X20[:, :, None], "str": np.full((20, 4), "a"), "none": None,
         "ragged": [[1.0, 2.0]] * 19 + [[1.0]], "0 features": X20[:, :0], "scalar": 3.0,
         "complex": X20 + 1j}.get),
)


@FUZZ
@given(_bad_X, st.sampled_from([(MLPClassifier, SkClassifier), (MLPRegressor, SkRegressor)]))
def test_fuzz_estimator_fit_names_X(X, classes):
    ours, sk = classes
    kw = dict(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    _, err = attempt(lambda: ours(**kw).fit(X, Y20))
    assert err is not None and names(err, "X"), err
    _, sk_err = attempt(lambda: sk(**kw).fit(X, Y20))  # the independent verdict: scikit-learn refuses it too
    assert sk_err is not None


_bad_y = st.sampled_from(["short", "long", "nan", "inf", "none", "2d rows", "str matrix"])
_Y_CASES = {"short": Y20[:-1], "long": np.r_[Y20, 0], "nan": np.where(Y20 == 1, np.nan, Y20),
            "inf": np.where(Y20 == 1, np.inf, Y20), "none": None, "2d rows": np.zeros((19, 2)),
            "str matrix": np.full((20, 2, 2), "a")}


@FUZZ
@given(_bad_y, st.sampled_from([(MLPClassifier, SkClassifier), (MLPRegressor, SkRegressor)]))
def test_fuzz_estimator_fit_names_y(case, classes):
    ours, sk = classes
    y = _Y_CASES[case]
    kw = dict(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    _, err = attempt(lambda: ours(**kw).fit(X20, y))
    assert err is not None and names(err, "y"), err
    _, sk_err = attempt(lambda: sk(**kw).fit(X20, y))
    assert sk_err is not None


def test_classifier_refuses_continuous_labels_naming_y():
    with pytest.raises(ValueError, match=r"^y: Unknown label type: continuous"):
        MLPClassifier(max_iter=2).fit(X20, Y20 + 0.5)


@pytest.fixture(scope="module")
def fitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return (MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X20, Y20),
                MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X20, Y20.astype(float)))


@FUZZ
@given(st.one_of(
    st.integers(0, 7).map(lambda d: np.ones((3, d))),  # the wrong number of features (4 is right)
    hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.just(4)),
               elements=st.one_of(st.floats(-1e3, 1e3), st.sampled_from([math.nan, math.inf, -math.inf, 1e308,
                                                                        -1e308]))),
    st.sampled_from([None, "abcd", np.zeros((0, 4)), np.ones(4), np.ones((2, 2, 4))])),
    st.sampled_from(["predict", "predict_proba", "predict_log_proba", "regress"]))
def test_fuzz_estimator_predict(fitted, X, method):
    clf, reg = fitted
    est, method = (reg, "predict") if method == "regress" else (clf, method)
    out, err = attempt(lambda: getattr(est, method)(X))
    if err is not None:
        assert names(err, "X"), err
        return
    event("accepted")
    # Accepted: it was a well-formed finite (n, 4) matrix, and the answer is the hand-written forward pass.
    X = np.asarray(X)
    assert X.ndim == 2 and X.shape[1] == 4 and X.shape[0] >= 1 and np.isfinite(X).all()
    W = [c.T for c in est.coefs_]
    b = list(est.intercepts_)
    output = "identity" if est is reg else "softmax"
    with np.errstate(over="ignore"):
        want = np.stack([reference.forward(W, b, x, "relu", output)[1][-1] for x in X])
    # predict_log_proba is log(predict_proba), as scikit-learn's: −inf where a probability rounds to 0
    assert np.isfinite(np.exp(out) if method == "predict_log_proba" else out).all()
    if method == "predict" and est is clf:
        np.testing.assert_array_equal(out, clf.classes_[want.argmax(axis=1)])
    elif method == "predict_proba":
        np.testing.assert_allclose(out, want, rtol=1e-9, atol=1e-300)
    elif method == "predict":
        np.testing.assert_allclose(out, want[:, 0], rtol=1e-9, atol=1e-12)


def test_estimator_wrong_feature_count_at_partial_fit_and_warm_start(fitted):
    clf, _ = fitted
    with pytest.raises(ValueError, match=r"^X has 3 features, but MLPClassifier is expecting 4"):
        clf.partial_fit(X20[:, :3], Y20)
    with pytest.raises(ValueError, match=r"^X: Input X contains NaN"):
        clf.partial_fit(np.full((2, 4), np.nan), [0, 1])


_PARAMS = {
    "learning_rate_init": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 2),
                                    st.sampled_from(["0.1", None, True])),
    "activation": st.sampled_from(["relu", "tanh", "logistic", "identity", "softmax", "gelu", "", None, 1]),
    "solver": st.sampled_from(["sgd", "adam", "lbfgs", "SGD", None]),
    "max_iter": st.one_of(st.integers(-3, 3), st.floats(0, 3), st.sampled_from(["2", None, True])),
    "alpha": st.one_of(st.floats(-1, 1), st.sampled_from([math.nan, math.inf, "x"])),
    "batch_size": st.one_of(st.integers(-2, 30), st.sampled_from(["auto", "all", 2.5, None])),
    "momentum": st.one_of(st.floats(-0.5, 1.5), st.sampled_from([math.nan, 1.0, "0.9"])),
    "hidden_layer_sizes": st.one_of(st.lists(st.integers(-1, 4), max_size=3).map(tuple),
                                    st.sampled_from([3, 0, 2.5, "3", (3.0,), None])),
    "learning_rate": st.sampled_from(["constant", "invscaling", "adaptive", "optimal", None]),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(_PARAMS)).flatmap(lambda k: st.tuples(st.just(k), _PARAMS[k])),
       st.sampled_from([(MLPClassifier, SkClassifier), (MLPRegressor, SkRegressor)]))
def test_fuzz_estimator_hyperparameters_at_fit(param, classes):
    """One hyper-parameter at a time: refused naming it, or the same coefs_ as scikit-learn's estimator."""
    name, value = param
    ours, sk = classes
    kw = dict(hidden_layer_sizes=(5,), solver="sgd", max_iter=2, random_state=0, batch_size=10,
              learning_rate_init=0.01)
    kw[name] = value
    y = Y20 if ours is MLPClassifier else Y20.astype(float)
    est = ours(**kw)
    _, err = attempt(lambda: est.fit(X20, y))
    if isinstance(err, DivergenceError):  # the documented outcome of a valid but huge rate: last finite weights kept
        assert f"epoch {err.epoch}, step {err.step}" in str(err)
        assert all(np.isfinite(c).all() for c in est.coefs_ + est.intercepts_)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scikit-learn's own overflow, if any
        ref, sk_err = attempt(lambda: sk(**kw).fit(X20, y))
    if err is not None:
        assert names(err, name), err
        return
    event("accepted")
    assert sk_err is None, f"scikit-learn refuses {name}={value!r} ({sk_err}) but it was accepted"
    assert all(np.isfinite(c).all() for c in est.coefs_ + est.intercepts_)
    for a, b in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# ================================================================================ digits CLI flags
_FLAG_VALUES = st.one_of(st.integers(-3, 2**33).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                         st.sampled_from(["", "ten", "1e3", "0x10", "glorot", "sklearn", "he",
                                          "tinygrad_mlp", "reference,sklearn_sgd", "bogus", ",", "tinygrad_mlp,,x"]))


def _flag_ok(flag: str, value: str):
    """The documented rule for each flag, written independently of digits.py: (ok, parsed value)."""
    def as_int(lo, hi=None):
        try:
            v = int(value)
        except ValueError:
            return False, None
        return (v >= lo and (hi is None or v <= hi)), v
    if flag in ("--epochs", "--hidden"):
        return as_int(1)
    if flag == "--seed":
        return as_int(0, 2**32 - 1)
    if flag == "--threads":
        return as_int(0)
    if flag == "--lr":
        try:
            v = float(value)
        except ValueError:
            return False, None
        return (math.isfinite(v) and v > 0), v
    if flag == "--init":
        return value in ("glorot", "sklearn"), value
    parts = [p.strip() for p in value.split(",") if p.strip()]  # --only
    return (bool(parts) and all(p in D.SYSTEMS for p in parts)), tuple(parts)


@FUZZ
@given(st.sampled_from(["--epochs", "--lr", "--hidden", "--seed", "--init", "--only", "--threads"]), _FLAG_VALUES)
def test_fuzz_digits_flags(capsys, flag, value):
    seen = []

    class _Rep:
        max_weight_diff_vs_reference = None

    def fake_run(config):  # the benchmark itself is not what is tested here
        seen.append(config)
        return _Rep()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(D, "run_benchmark", fake_run)
        mp.setattr(D, "format_table", lambda rep: "table")
        code = D.main([flag, value, "--quiet"])
    out, err = capsys.readouterr()
    ok, parsed = _flag_ok(flag, value)
    if not ok:
        assert code == 2 and flag in err and out == "" and not seen, (code, err)
        return
    event("accepted")
    assert code == 0 and len(seen) == 1, err
    field = {"--threads": "threads"}.get(flag, flag[2:])
    got = getattr(seen[0], field)
    if flag == "--threads":
        assert got == (parsed or None)
    else:
        assert got == parsed


@pytest.mark.parametrize("argv, flag", [
    (["--seed", str(2**32)], "--seed"),  # scikit-learn's RandomState would fail only after the other rows ran
    (["--json", "."], "--json"), (["--save", "."], "--save"), (["--save", ""], "--save"),
])
def test_digits_refuses_before_running(argv, flag, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(D, "run_benchmark", lambda config: pytest.fail("the benchmark ran"))
    assert D.main(argv) == 2
    out, err = capsys.readouterr()
    assert flag in err and out == ""


def test_digits_plots_into_a_file_is_refused(capsys, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(D, "run_benchmark", lambda config: pytest.fail("the benchmark ran"))
    f = tmp_path / "f.png"
    f.write_bytes(b"")
    assert D.main(["--plots", str(f)]) == 2
    assert "--plots" in capsys.readouterr().err


# ================================================================================ exercise CLI
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 5), st.floats(-10, 10), st.integers(1001, 10**5),
              st.sampled_from([math.nan, math.inf, "tanh", "softmax", "x", 1e300])),
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.sampled_from(["x", "y", "z"]), c, max_size=3)),
    max_leaves=10)
_FIELDS = ["layers", "hidden", "output", "loss", "weights", "biases", "learning_rate", "examples", "extra"]


@FUZZ
@given(st.sampled_from(sorted(BUILTINS)),
       st.lists(st.tuples(st.sampled_from(_FIELDS), st.one_of(st.just("<delete>"), _json, st.floats(0.01, 2))),
                min_size=0, max_size=3))
def test_fuzz_exercise_cli_spec_files(tmp_path_factory, capsys, name, mutations):
    raw = json.loads(json.dumps(BUILTINS[name][1]))
    for key, value in mutations:
        if value == "<delete>":
            raw.pop(key, None)
        else:
            raw[key] = value
    path = tmp_path_factory.mktemp("spec") / "spec.json"
    path.write_text(json.dumps(raw), encoding="utf-8")  # NaN/Infinity written as JSON's extension
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        code = exercise_cli.main([str(path), "--json"])
    out, err = capsys.readouterr()
    if code != 0:
        assert code == 2 and out == "", (code, err)
        field = err.removeprefix("error: ").split(":")[0].split("[")[0].split(".")[0].split(" ")[0]
        assert field in _FIELDS + ["spec"], err
        return
    event("accepted")
    # Accepted: the printed loss is the hand-written backprop's, summed over the examples.
    res = json.loads(out)
    W = [np.asarray(w, dtype=float) for w in res["initial"]["W"]]
    b = [np.asarray(c, dtype=float) for c in res["initial"]["b"]]
    want = sum(reference.backward(W, b, np.asarray(e["x"]), np.asarray(e["y"]), res["hidden"], res["output"],
                                  res["loss_name"])["loss"] for e in res["examples"])
    assert math.isfinite(res["loss"])
    assert res["loss"] == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_exercise_cli_refuses_a_huge_layer(tmp_path, capsys):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(dict(BUILTINS["q1"][1], layers=[4, 10_000, 3])), encoding="utf-8")
    assert exercise_cli.main([str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: layers: expected at most") and out == ""


# ===================================================================================== train
def _sgd_by_hand(W, b, X, Y, lr, epochs, hidden):
    for _ in range(epochs):
        for x, y in zip(X, Y):
            g = reference.backward(W, b, x, y, hidden, "softmax", "cross_entropy")
            W, b = reference.sgd_update(W, b, g["dW"], g["db"], lr)
    return W, b


_lrs = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from([0, -1, True, "0.1", None]))
_epochs = st.one_of(st.integers(-2, 2), st.sampled_from([1.0, True, "1", None]))
_Xs = st.one_of(
    st.just("good"),
    hnp.arrays(np.float64, st.sampled_from([(5, 3), (5, 2), (0, 3), (5,), (5, 3, 1), (4, 3)]),
               elements=st.one_of(st.floats(-2, 2), st.sampled_from([math.nan, math.inf]))),
    st.sampled_from([None, "abc", [[1, 2, 3], [1, 2]]]))
_ys = st.one_of(
    st.just("good"),
    hnp.arrays(st.sampled_from([np.int64, np.int8, np.float64]), st.sampled_from([(5,), (4,), (5, 2)]),
               elements=st.integers(-1, 2)),
    hnp.arrays(np.bool_, st.sampled_from([(5,), (5, 2)])),
    st.sampled_from([None, "ab", [0, 1, 0, 1, 3]]))


@FUZZ
@given(st.sampled_from(["lr", "epochs", "X", "y"]).flatmap(
    lambda k: st.tuples(st.just(k), {"lr": _lrs, "epochs": _epochs, "X": _Xs, "y": _ys}[k])),
    st.sampled_from(["tanh", "relu"]))
def test_fuzz_train(arg, hidden):
    """One argument at a time drawn from good and bad values; the others are good."""
    args = {"lr": 0.1, "epochs": 2, "X": np.random.default_rng(1).normal(size=(5, 3)), "y": np.array([0, 1, 1, 0, 1])}
    if not (isinstance(arg[1], str) and arg[1] == "good"):
        args[arg[0]] = arg[1]
    lr, epochs, X, y = args["lr"], args["epochs"], args["X"], args["y"]
    model = MLP([3, 4, 2], hidden=hidden, output="softmax", seed=0)
    W0, b0 = [l.W.data.copy() for l in model.layers], [l.b.data.copy() for l in model.layers]
    try:
        hist, err = attempt(lambda: train(model, X, y, epochs=epochs, lr=lr, shuffle=False))
    except DivergenceError as e:  # a valid but huge rate: the documented stop, last finite weights kept
        assert f"epoch {e.epoch}, step {e.step}" in str(e) and lr > 1
        assert all(np.isfinite(p.data).all() for p in model.parameters())
        return
    if err is not None:
        assert names(err, "lr", "lr, optimizer", "epochs", "X", "y"), err
        return
    event("accepted")
    # Accepted: every argument was valid by the documented rules, and the weights are the hand-written SGD's.
    Xa, ya = np.asarray(X, dtype=float), np.asarray(y)
    assert isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 0
    assert isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 < lr < math.inf
    assert Xa.shape == (5, 3) and np.isfinite(Xa).all()
    assert ya.shape == (5,) and ya.dtype.kind in "iu" and ya.min() >= 0 and ya.max() < 2
    W, b = _sgd_by_hand(W0, b0, Xa, np.eye(2)[ya], float(lr), epochs, hidden)
    if hist.diverged:  # not with these sizes, but the check would then be the last finite weights
        return
    for layer, w, c in zip(model.layers, W, b):
        np.testing.assert_allclose(layer.W.data, w, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.b.data, c, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(X_val=np.full((2, 3), np.nan), y_val=[0, 1]), r"^X_val: expected finite"),
    (dict(X_val=np.zeros((2, 4)), y_val=[0, 1]), r"^X_val: expected shape \(n, 3\)"),
    (dict(X_val=np.zeros((2, 3)), y_val=[0, 5]), r"^y_val: class labels must lie in \[0, 2\)"),
    (dict(X_val=np.zeros((2, 3)), y_val=[0.0, 1.0]), r"^y_val: expected 2 integer labels"),
    (dict(seed=-1), r"^seed: expected None, a non-negative int"),
    (dict(seed="abc"), r"^seed: expected"),
])
def test_train_validation_set_and_seed_are_named(kwargs, pattern):
    m = MLP([3, 2], output="softmax", seed=0)
    with pytest.raises(ValueError, match=pattern):
        train(m, np.zeros((4, 3)), [0, 1, 0, 1], epochs=1, lr=0.1, **kwargs)


def test_train_refuses_bool_labels():
    m = MLP([3, 2], output="softmax", seed=0)
    with pytest.raises(ValueError, match=r"^y: expected integer class labels or float targets, got dtype bool"):
        train(m, np.zeros((4, 3)), np.array([True, False, True, False]), epochs=1, lr=0.1)


# ================================================================================ compiled step
def _compiled_pair():
    """Two identical models with their SGD + cross-entropy steps; the second one compiled."""
    m1, _, eager = make_step([4, 3, 2], lr=0.1)
    m2, _, step = make_step([4, 3, 2], lr=0.1)
    return m1, eager, m2, compile_step(step)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from([(4,), (3,), (5,), (2, 4), (3, 4), (2, 5), (1, 2, 4), (0, 4)]),
                          st.sampled_from([np.float64, np.float32])), min_size=1, max_size=5))
def test_fuzz_compiled_step_recaptures_or_refuses(calls):
    """A compiled step called with changing shapes gives the eager step's numbers, or the eager step's error."""
    m1, eager, m2, compiled = _compiled_pair()
    rng = np.random.default_rng(5)
    for shape, dtype in calls:
        x = rng.normal(size=shape).astype(dtype)
        y = np.eye(2)[rng.integers(0, 2, shape[:-1])]
        want, want_err = attempt(lambda: eager(x, y))
        try:
            got, got_err = attempt(lambda: compiled(x, y))
        except CaptureError as e:
            # The documented refusal (a float32 row into a float64 model is copied, and a replay would freeze
            # the copy); the capture call itself was an eager step, so the weights still match below.
            assert want_err is None and x.dtype == np.float32 and "input 0" in str(e), e
            got, got_err = float(want.data), None
        if want_err is not None:
            assert got_err is not None and type(got_err) is type(want_err) and str(got_err) == str(want_err)
            assert names(got_err, "x", "y"), got_err
            continue
        assert got_err is None, got_err
        assert got == pytest.approx(float(want.data), rel=1e-12, abs=1e-12)
        for a, b in zip(m1.parameters(), m2.parameters()):
            np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("poison", [
    math.nan, math.inf,
    pytest.param(1e308, marks=pytest.mark.xfail(strict=True, reason=(
        "a finite but huge row of an already captured shape replays to an inf/NaN loss (with NumPy's "
        "RuntimeWarning) where the eager step raises 'x: the forward pass overflowed'; the replay checks "
        "only finiteness (check_finite=True), not overflow"))),
])
def test_compiled_replay_refuses_non_finite_input_as_eager_does(poison):
    m1, eager, m2, compiled = _compiled_pair()
    compiled(np.ones(4), np.eye(2)[0])  # captures shape (4,)
    eager(np.ones(4), np.eye(2)[0])
    _, want_err = attempt(lambda: eager(np.full(4, poison), np.eye(2)[0]))
    assert want_err is not None and str(want_err).startswith("x:")
    got, got_err = attempt(lambda: compiled(np.full(4, poison), np.eye(2)[0]))
    assert got_err is not None and str(got_err).startswith("x:"), got
    for a, b in zip(m1.parameters(), m2.parameters()):  # the refused step changed no weight
        np.testing.assert_array_equal(a.data, b.data)


# ================================================================================= predict CLI
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    m = MLP([64, 8, 10], hidden="tanh", output="softmax", seed=3)
    path = tmp_path_factory.mktemp("model") / "m.npz"
    save(m, path)
    return m, path


@FUZZ
@given(hnp.arrays(st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.bool_, np.complex128]),
                  st.sampled_from([(64,), (8, 8), (2, 64), (3, 8, 8), (0, 64), (2, 63), (65,), (2, 2, 64)])),
       st.sampled_from([None, math.nan, math.inf, 1e308]))
def test_fuzz_predict_cli(model_file, tmp_path_factory, capsys, images, poison):
    m, path = model_file
    images = images.copy()
    if poison is not None and images.size and images.dtype.kind == "f":
        images.flat[0] = poison
    f = tmp_path_factory.mktemp("img") / "x.npy"
    np.save(f, images)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        code = predict_cli.main([str(path), str(f), "--json"])
    out, err = capsys.readouterr()
    if code != 0:
        assert code == 2 and out == "" and err.startswith("error: "), (code, err)
        assert "IMAGES" in err or "model produced NaN" in err, err
        return
    event("accepted")
    X = images.reshape(-1, 64).astype(np.float64)
    assert images.dtype.kind in "biuf" and X.shape[0] >= 1 and np.isfinite(X).all()
    W = [l.W.data for l in m.layers]
    b = [l.b.data for l in m.layers]
    want = np.stack([reference.forward(W, b, x, "tanh", "softmax")[1][-1] for x in X])
    res = json.loads(out)
    np.testing.assert_allclose(np.array(res["outputs"]), want, rtol=1e-10, atol=1e-300)
    assert res["labels"] == want.argmax(axis=1).tolist()


# ====================================================================== Tensor / losses / optimisers
@FUZZ
@given(st.sampled_from(["SGD", "Adam"]),
       st.one_of(st.just("tensor"), st.just("int"), st.just("none"), st.just("arrays"), st.just("frozen"),
                 st.just("good")))
def test_fuzz_optimiser_params(cls, kind):
    W = Tensor(np.ones((2, 2)), requires_grad=True)
    params = {"tensor": W, "int": 3, "none": None, "arrays": [np.ones(2)], "frozen": [Tensor(np.ones(2))],
              "good": [W]}[kind]
    opt, err = attempt(lambda: getattr(optim, cls)(params, lr=0.1))
    if err is not None:
        assert names(err, "params", "params[0]"), err
        return
    event("accepted")
    assert kind == "good"
    W.grad = np.full((2, 2), 0.5)
    opt.step()
    # SGD: 1 − 0.1·0.5; Adam's first step moves each entry by lr·sign(g) (m̂/√v̂ = 1 up to ε)
    np.testing.assert_allclose(W.data, np.full((2, 2), 0.95 if cls == "SGD" else 0.9), rtol=1e-6)


def test_non_scalar_backward_without_gradient_names_grad():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(ValueError, match=r"pass grad="):
        y.backward()


@FUZZ
@given(st.one_of(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
                            elements=st.one_of(st.floats(-10, 10), st.sampled_from([math.nan, math.inf]))),
                 st.lists(st.floats(-10, 10), max_size=4), st.sampled_from(["abc", None, [[1.0, 2.0], [3.0]]])))
def test_fuzz_linear_layer_called_on_user_data(h):
    from tinygrad_mlp import Linear
    layer = Linear(3, 2, rng=np.random.default_rng(0))
    out, err = attempt(lambda: layer(h))
    if err is not None:
        assert names(err, "h"), err
        return
    event("accepted")
    h = np.asarray(h, dtype=np.float64)
    assert h.ndim in (1, 2) and h.shape[-1] == 3 and h.size and np.isfinite(h).all()
    np.testing.assert_allclose(out.data, h @ layer.W.data.T + layer.b.data, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("fn", ["tanh", "sigmoid", "relu", "softmax", "log_softmax"])
@pytest.mark.parametrize("z", [np.zeros(3), [0.0, 1.0], "abc", None])
def test_activations_of_non_tensors_name_z(fn, z):
    with pytest.raises(TypeError, match=r"^z: expected a Tensor, got "):
        getattr(F, fn)(z)


def test_activations_still_compute_on_tensors():
    z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(F.tanh(Tensor(z)).data, np.tanh(z), rtol=1e-15)
    np.testing.assert_allclose(F.sigmoid(Tensor(z)).data, 1 / (1 + np.exp(-z)), rtol=1e-15)
    np.testing.assert_array_equal(F.relu(Tensor(z)).data, np.maximum(z, 0))
    np.testing.assert_allclose(F.softmax(Tensor(z)).data, np.exp(z) / np.exp(z).sum(), rtol=1e-14)


# ==================================================================================== divergence
def test_divergence_is_reported_once_without_numpys_overflow_warnings():
    """warn mode: exactly one DivergenceWarning naming epoch and step, no RuntimeWarning from NumPy on the way."""
    from tinygrad_mlp.training.loop import DivergenceWarning
    X = np.random.default_rng(0).normal(size=(10, 3)) * 100
    m = MLP([3, 8, 2], hidden="relu", output="identity", seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = train(m, X, X[:, :2] * 1e3, epochs=50, lr=10.0, loss="squared_error", shuffle=False,
                     on_divergence="warn")
    assert hist.diverged
    assert [type(w.message) for w in caught] == [DivergenceWarning], [str(w.message) for w in caught]
    assert "epoch" in str(caught[0].message) and "step" in str(caught[0].message)
    assert all(np.isfinite(p.data).all() for p in m.parameters())
    est = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=10.0, batch_size=2, max_iter=50,
                       random_state=0, on_divergence="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, X[:, 0] * 1e3)
    assert [type(w.message) for w in caught] == [DivergenceWarning], [str(w.message) for w in caught]
    assert all(np.isfinite(c).all() for c in est.coefs_ + est.intercepts_)
