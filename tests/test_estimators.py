"""The scikit-learn estimators: scikit-learn's own estimator checks, and equality with scikit-learn's MLP.

The independent path is scikit-learn itself: with the same parameters our estimators draw the same
weights and shuffles (sklearn_compat) and minimise the same objective, so their coefs_ must equal
``sklearn.neural_network``'s.
"""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neural_network import MLPClassifier as SkClassifier
from sklearn.neural_network import MLPRegressor as SkRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from tinygrad_mlp.training.estimators import MLPClassifier, MLPRegressor, _binary_cross_entropy
from tinygrad_mlp.autograd.tensor import Tensor
from tinygrad_mlp.training.loop import DivergenceError, DivergenceWarning


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """These fits multiply small matrices, (n, 64) by a transposed (64, h) view; on a busy 2-core machine
    OpenBLAS's threaded kernel for that layout was seen to spin for ~10 ms per call (lbfgs tests of 1 s took
    20 s).  One thread changes no number (each product is the same dot products), only the waiting."""
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn
    with threadpool_limits(1, user_api="blas"):
        yield


def _expected_failed_checks(estimator):
    # Every check passes; a check that ever fails must be listed here with its reason
    # (check name -> reason), never silently skipped.
    return {}


# max_iter lowered as scikit-learn's own test suite does for its MLPs (PER_ESTIMATOR_CHECK_PARAMS).
@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)],
                         expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _max_diff(a, b):
    return max(np.abs(u - v).max() for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_))


def _both(ours_cls, sk_cls, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ours_cls(**kw).fit(X, y), sk_cls(**kw).fit(X, y)


# ------------------------------------------------------------------- equality with scikit-learn
@pytest.mark.parametrize("batch_size", [1, 32])
def test_two_epochs_of_plain_sgd_equal_scikit_learns_coefs(digits, batch_size):
    X, y = digits
    kw = dict(hidden_layer_sizes=(30,), activation="tanh", solver="sgd", learning_rate_init=0.01, momentum=0.0,
              alpha=0.0, batch_size=batch_size, max_iter=2, random_state=0)
    ours, sk = _both(MLPClassifier, SkClassifier, X, y, **kw)
    assert [c.shape for c in ours.coefs_] == [(64, 30), (30, 10)]
    assert _max_diff(ours, sk) < 1e-9
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-12)
    assert (ours.n_iter_, ours.t_) == (sk.n_iter_, sk.t_) == (2, 2 * len(X))


@pytest.mark.parametrize("kw", [
    dict(solver="adam", batch_size="auto", activation="relu", alpha=1e-3),
    dict(solver="sgd", batch_size=20, activation="logistic", momentum=0.9, nesterovs_momentum=True, alpha=1e-2),
    dict(solver="sgd", batch_size=50, activation="identity", momentum=0.5, nesterovs_momentum=False),
    dict(solver="sgd", batch_size=64, activation="relu", learning_rate="invscaling", momentum=0.9, power_t=0.25),
], ids=["adam", "nesterov-l2", "momentum", "invscaling"])
def test_other_solvers_and_penalties_equal_scikit_learns(digits, kw):
    X, y = digits
    ours, sk = _both(MLPClassifier, SkClassifier, X, y, hidden_layer_sizes=(16, 8), learning_rate_init=0.01,
                     max_iter=3, random_state=1, **kw)
    assert _max_diff(ours, sk) < 1e-9
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)


@pytest.mark.parametrize("kw", [dict(solver="adam", tol=0.05, n_iter_no_change=2),
                                dict(solver="sgd", learning_rate="adaptive", tol=0.05, n_iter_no_change=1)],
                         ids=["adam-stops", "sgd-adaptive"])
def test_stopping_rule_and_adaptive_rate_follow_scikit_learn(digits, kw):
    X, y = digits
    ours, sk = _both(MLPClassifier, SkClassifier, X, y, hidden_layer_sizes=(8,), batch_size=100, max_iter=40,
                     random_state=7, learning_rate_init=0.01, **kw)
    assert ours.n_iter_ == sk.n_iter_ < 40
    assert _max_diff(ours, sk) < 1e-9
    if kw["solver"] == "sgd":
        assert ours._optimizer.lr == pytest.approx(sk._optimizer.learning_rate) and ours._optimizer.lr < 0.01


def test_binary_string_labels_use_one_logistic_unit_as_scikit_learn(digits):
    X, y = digits
    labels = np.where(y % 2 == 1, "odd", "even")
    ours, sk = _both(MLPClassifier, SkClassifier, X, labels, hidden_layer_sizes=(12,), solver="sgd",
                     batch_size=16, learning_rate_init=0.05, max_iter=2, random_state=2)
    assert [c.shape for c in ours.coefs_] == [c.shape for c in sk.coefs_] == [(64, 12), (12, 1)]
    assert list(ours.classes_) == ["even", "odd"]
    assert _max_diff(ours, sk) < 1e-9
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-9)
    assert (ours.predict(X) == sk.predict(X)).all()


def test_multilabel_targets_equal_scikit_learns(digits):
    X, y = digits
    Y = np.c_[y % 2, y > 4, y == 0].astype(int)
    ours, sk = _both(MLPClassifier, SkClassifier, X, Y, hidden_layer_sizes=(10,), solver="adam", max_iter=3,
                     random_state=3)
    assert _max_diff(ours, sk) < 1e-9
    assert ours.predict(X).shape == Y.shape


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_regressor_equals_scikit_learns_single_and_multi_output(digits, n_outputs):
    X, _ = digits
    Y = np.c_[X[:, :5].sum(1), X[:, 20], X[:, 40] - X[:, 41]][:, :n_outputs]
    y = Y.ravel() if n_outputs == 1 else Y
    ours, sk = _both(MLPRegressor, SkRegressor, X, y, hidden_layer_sizes=(20,), solver="sgd", batch_size=10,
                     learning_rate_init=0.01, alpha=1e-3, max_iter=2, random_state=4)
    assert _max_diff(ours, sk) < 1e-9
    # scikit-learn reports the squared error divided by the number of outputs as well: so do we.
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(ours.predict(X), sk.predict(X), atol=1e-9)
    assert ours.predict(X).shape == y.shape
    assert ours.score(X, y) == pytest.approx(sk.score(X, y), abs=1e-9)


def test_partial_fit_and_warm_start_follow_scikit_learn(digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(10,), solver="adam", batch_size=100, random_state=5)
    ours, sk = MLPClassifier(**kw), SkClassifier(**kw)
    for part in np.array_split(np.arange(len(X)), 3):
        ours.partial_fit(X[part], y[part], classes=np.arange(10))
        sk.partial_fit(X[part], y[part], classes=np.arange(10))
    assert _max_diff(ours, sk) < 1e-9
    assert ours.t_ == sk.t_ == len(X)

    kw = dict(hidden_layer_sizes=(10,), solver="sgd", max_iter=2, warm_start=True, random_state=6)
    ours, sk = _both(MLPClassifier, SkClassifier, X, y, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        sk.fit(X, y)
    assert len(ours.loss_curve_) == 4
    assert _max_diff(ours, sk) < 1e-9


def test_partial_fit_needs_classes_first_and_rejects_unseen_labels(digits):
    X, y = digits
    with pytest.raises(ValueError, match="classes"):
        MLPClassifier().partial_fit(X[:10], y[:10])
    clf = MLPClassifier(hidden_layer_sizes=(5,)).partial_fit(X[:10], y[:10] % 3, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"^y: `y` has classes not in"):
        clf.partial_fit(X[:10], y[:10])


# ------------------------------------------------------------------------- the sklearn workflow
def test_pipeline_in_cross_val_score_on_digits_equals_scikit_learns(digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(32,), max_iter=15, learning_rate_init=0.01, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = cross_val_score(make_pipeline(StandardScaler(), MLPClassifier(**kw)), X, y, cv=3)
        sk = cross_val_score(make_pipeline(StandardScaler(), SkClassifier(**kw)), X, y, cv=3)
    assert ours.mean() > 0.9
    np.testing.assert_allclose(ours, sk, atol=2e-3)  # at most one of ~600 test digits may tip the other way


def test_grid_search_on_digits_picks_what_scikit_learn_picks(digits):
    X, y = digits
    grid = {"hidden_layer_sizes": [(8,), (32,)], "learning_rate_init": [1e-3, 1e-2]}
    kw = dict(max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GridSearchCV(MLPClassifier(**kw), grid, cv=3).fit(X, y)
        sk = GridSearchCV(SkClassifier(**kw), grid, cv=3).fit(X, y)
    assert ours.best_params_ == sk.best_params_ == {"hidden_layer_sizes": (32,), "learning_rate_init": 1e-2}
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], sk.cv_results_["mean_test_score"], atol=2e-3)
    assert ours.best_estimator_.score(X, y) > 0.9


# ------------------------------------------------------------------------------- predictions
def test_probabilities_are_consistent(digits):
    X, y = digits
    for target in (y, y % 2):
        clf = MLPClassifier(hidden_layer_sizes=(10,), max_iter=5, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, target)
        p = clf.predict_proba(X)
        assert p.shape == (len(X), len(clf.classes_))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), p, rtol=1e-10, atol=1e-300)
        assert (clf.classes_[p.argmax(axis=1)] == clf.predict(X)).all()


def test_predict_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        MLPRegressor().predict(np.zeros((2, 3)))


def test_binary_cross_entropy_is_finite_and_exact_for_large_logits():
    # Closed forms: ℓ(z, y) = softplus(z) − y z, ∂ℓ/∂z = σ(z) − y; mean over the rows.
    zs = np.array([[-1000.0], [-30.0], [0.0], [30.0], [1000.0]])
    ys = np.array([[1.0], [0.0], [1.0], [1.0], [0.0]])
    z = Tensor(zs, requires_grad=True)
    loss = _binary_cross_entropy(z, Tensor(ys)).mean()
    expected = np.mean(np.logaddexp(0.0, zs) - ys * zs)
    assert np.isfinite(loss.item()) and loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    sigma = 0.5 * (1 + np.tanh(zs / 2))
    np.testing.assert_allclose(z.grad, (sigma - ys) / len(zs), atol=1e-15)


# ------------------------------------------------------------------------------ divergence
def _diverging(on_divergence):
    return MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=10.0, batch_size=10,
                        max_iter=20, random_state=0, on_divergence=on_divergence)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_divergence_raises_naming_epoch_and_step_and_keeps_finite_weights(digits):
    X, y = digits
    est = _diverging("raise")
    with pytest.raises(DivergenceError, match=r"epoch \d+, step \d+ of 180") as info:
        est.fit(X * 100, y * 1e3)
    assert info.value.epoch >= 1 and 1 <= info.value.step <= 180
    assert all(np.isfinite(c).all() for c in est.coefs_ + est.intercepts_)
    assert len(est.loss_curve_) == info.value.epoch - 1


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_divergence_warns_and_stops_when_asked(digits):
    X, y = digits
    est = _diverging("warn")
    with pytest.warns(DivergenceWarning, match=r"epoch \d+, step \d+"):
        est.fit(X * 100, y * 1e3)
    assert all(np.isfinite(c).all() for c in est.coefs_ + est.intercepts_)
    assert np.isfinite(est.predict(X)).all()


# ------------------------------------------------------------------------------ parameters
def test_init_stores_anything_and_fit_names_the_bad_parameter(digits):
    X, y = digits
    est = MLPClassifier(solver="newton", alpha=-1)  # no validation in __init__, as scikit-learn requires
    assert est.get_params()["solver"] == "newton"
    with pytest.raises(ValueError, match=r"^solver: The 'solver' parameter of MLPClassifier must be a str among "
                                         r"\{.*'lbfgs'.*\}\. Got 'newton' instead\."):
        est.fit(X[:20], y[:20])


@pytest.mark.parametrize("param,value,match", [
    # scikit-learn's own words after the name (its estimators' constraints), where it has the parameter
    ("hidden_layer_sizes", (10, 0), r"^hidden_layer_sizes: expected positive ints .*must be > 0"),
    ("activation", "softmax", r"^activation: The 'activation' parameter of MLPRegressor must be a str among"),
    ("alpha", -1.0, r"^alpha: The 'alpha' parameter of MLPRegressor must be a float in the range \[0.0, inf\)\. "
                    r"Got -1.0 instead\."),
    ("alpha", np.inf, r"^alpha: The 'alpha' parameter .* Got inf instead"),
    ("batch_size", 0, r"^batch_size: The 'batch_size' parameter .* an int in the range \[1, inf\)"),
    ("learning_rate_init", 0.0, r"^learning_rate_init: .* must be a float in the range \(0.0, inf\)"),
    ("max_iter", 0, r"^max_iter: .* must be an int in the range \[1, inf\)"),
    ("momentum", 1.5, r"^momentum: .* must be a float in the range \[0.0, 1.0\]"),
    ("on_divergence", "ignore", r"^on_divergence: expected one of \['raise', 'warn'\]"),
    ("compiled", "yes", r"^compiled: expected a bool"),
])
def test_bad_parameters_are_rejected_at_fit_naming_them(digits, param, value, match):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        MLPRegressor(**{param: value}).fit(X[:20], y[:20])


def test_defaults_are_scikit_learns():
    ours, sk = MLPClassifier().get_params(), SkClassifier().get_params()
    shared = set(ours) & set(sk)
    assert {"hidden_layer_sizes", "activation", "solver", "learning_rate_init", "alpha", "batch_size", "max_iter",
            "momentum", "tol", "n_iter_no_change", "shuffle", "random_state", "verbose", "warm_start"} <= shared
    assert {k: ours[k] for k in shared} == {k: sk[k] for k in shared}
    assert (ours["compiled"], ours["on_divergence"]) == (False, "raise")


# ------------------------------------------------------------------------------- compiled
@pytest.mark.parametrize("est_cls,target,batch_size,solver", [
    (MLPClassifier, "classes", 32, "sgd"), (MLPClassifier, "classes", 1, "adam"), (MLPClassifier, "binary", 7, "sgd"),
    (MLPRegressor, "values", 32, "sgd"), (MLPRegressor, "values", 1, "adam")])
def test_compiled_training_gives_the_eager_weights(digits, est_cls, target, batch_size, solver):
    pytest.importorskip("tinygrad_mlp.compiler.compiled")
    X, y = digits
    X, y = X[:300], {"classes": y, "binary": y % 2, "values": np.c_[X[:, 3], X[:, 30]]}[target][:300]
    kw = dict(hidden_layer_sizes=(10,), solver=solver, batch_size=batch_size, max_iter=2, random_state=0, alpha=1e-3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eager = est_cls(**kw).fit(X, y)
        compiled = est_cls(compiled=True, **kw).fit(X, y)
    # Same numbers whether the step replayed or (after a failed capture) fell back to eager...
    assert _max_diff(eager, compiled) < 1e-12
    np.testing.assert_allclose(compiled.loss_curve_, eager.loss_curve_, rtol=1e-12)
    # ...but the point of compiled=True is that it replays: no fallback may have happened.
    fallbacks = [str(w.message) for w in caught if "could not be captured" in str(w.message)]
    assert not fallbacks, fallbacks[0]


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_compiled_divergence_stops_at_the_same_step_with_the_same_weights(digits):
    pytest.importorskip("tinygrad_mlp.compiler.compiled")
    X, y = digits
    errors, models = [], []
    for compiled in (False, True):
        est = _diverging("raise").set_params(compiled=compiled)
        with pytest.raises(DivergenceError) as info:
            est.fit(X * 100, y * 1e3)
        errors.append((info.value.epoch, info.value.step))
        models.append(est)
    assert errors[0] == errors[1]
    assert _max_diff(*models) == 0.0


# ------------------------------------------------------------------ lbfgs, as scikit-learn runs it
def _sk_regression_set():
    # scikit-learn's own regression set of its MLP tests (test_mlp.py)
    from sklearn.datasets import make_regression
    from sklearn.preprocessing import scale
    X, y = make_regression(n_samples=200, n_features=10, bias=20.0, noise=100.0, random_state=7)
    return X, scale(y)


@pytest.mark.parametrize("kw", [dict(hidden_layer_sizes=(20,), activation="tanh"),
                                dict(hidden_layer_sizes=(30,), activation="relu", alpha=1e-3),
                                dict(hidden_layer_sizes=(20,), activation="logistic")],
                         ids=["tanh", "relu-l2", "logistic"])
def test_lbfgs_full_fit_on_digits_equals_scikit_learns(digits, kw):
    X, y = digits
    ours, sk = _both(MLPClassifier, SkClassifier, X, y, solver="lbfgs", random_state=0, **kw)
    assert ours.n_iter_ == sk.n_iter_ < 200  # converged (gtol/ftol), not cut off at max_iter
    assert _max_diff(ours, sk) < 1e-8
    assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-10)
    assert not hasattr(ours, "loss_curve_") and not hasattr(sk, "loss_curve_")


def test_lbfgs_full_fit_on_a_regression_set_equals_scikit_learns():
    X, y = _sk_regression_set()
    ours, sk = _both(MLPRegressor, SkRegressor, X, y, solver="lbfgs", hidden_layer_sizes=(50,), tol=1e-3,
                     random_state=1)
    assert ours.n_iter_ == sk.n_iter_ < 200
    assert _max_diff(ours, sk) < 1e-8


def test_lbfgs_rounding_grows_only_over_long_unconverged_runs():
    """Where L-BFGS runs to max_iter without converging, the two rounding orders part ways, slowly.

    Both start from the same θ and take the same first steps (1e-15 after 10 iterations); differences
    of rounding then grow about tenfold per 10 iterations on this set, which is why the equality tests
    above use fits that converge.
    """
    X, y = _sk_regression_set()
    ours, sk = _both(MLPRegressor, SkRegressor, X, y, solver="lbfgs", hidden_layer_sizes=(20,), activation="tanh",
                     max_iter=10, random_state=0)
    assert _max_diff(ours, sk) < 1e-12


def test_lbfgs_multi_output_and_max_fun_follow_scikit_learn():
    from sklearn.datasets import make_regression
    X, Y = make_regression(n_samples=200, n_targets=3, random_state=11)
    ours, sk = _both(MLPRegressor, SkRegressor, X, Y / Y.std(), solver="lbfgs", hidden_layer_sizes=(20,), max_iter=15,
                     random_state=1)
    assert _max_diff(ours, sk) < 1e-10  # the reported loss (÷ d_L) and the gradient (not) as scikit-learn's
    assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-10)
    X, y = _sk_regression_set()
    with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after \d+ iteration\(s\) \(status=1\)"):
        ours = MLPRegressor(solver="lbfgs", max_fun=10, random_state=1).fit(X, y)
    sk = SkRegressor(solver="lbfgs", max_fun=10, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X, y)
    assert ours.n_iter_ == sk.n_iter_ <= 10
    assert _max_diff(ours, sk) < 1e-12


def test_lbfgs_gradient_is_the_tapes_and_matches_central_differences():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 4)), np.array([0, 1, 2, 0, 1, 2])
    est = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=1, alpha=0.1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    Y = np.eye(3)[y]
    theta = rng.normal(size=sum(c.size for c in est.coefs_ + est.intercepts_))
    w = rng.uniform(0.5, 2.0, size=6)
    _, grad = est._loss_grad_lbfgs(theta, X, Y, w)
    eps, num = 1e-6, np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = eps
        num[i] = (est._loss_grad_lbfgs(theta + e, X, Y, w)[0] - est._loss_grad_lbfgs(theta - e, X, Y, w)[0]) / (2 * eps)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


def test_partial_fit_does_not_exist_under_lbfgs():
    for cls in (MLPClassifier, MLPRegressor):
        est = cls(solver="lbfgs")
        assert not hasattr(est, "partial_fit")
        with pytest.raises(AttributeError, match="has no attribute 'partial_fit'"):  # scikit-learn's words
            est.partial_fit
        assert hasattr(cls(solver="sgd"), "partial_fit")


# ------------------------------------------------------------------------------ early stopping
@pytest.mark.parametrize("cls,sk_cls,target", [(MLPClassifier, SkClassifier, "multiclass"),
                                               (MLPClassifier, SkClassifier, "binary"),
                                               (MLPRegressor, SkRegressor, "values")])
def test_early_stopping_follows_scikit_learns_split_scores_and_best_weights(digits, cls, sk_cls, target):
    X, y = digits
    y = {"multiclass": y, "binary": y % 2, "values": X[:, 20] + X[:, 43]}[target]
    ours, sk = _both(cls, sk_cls, X, y, hidden_layer_sizes=(15,), solver="sgd", learning_rate_init=0.05,
                     batch_size=32, early_stopping=True, validation_fraction=0.2, n_iter_no_change=3, tol=1e-3,
                     max_iter=60, random_state=3)
    assert ours.n_iter_ == sk.n_iter_ < 60  # stopped by the validation score
    np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)
    assert ours.best_validation_score_ == pytest.approx(sk.best_validation_score_, abs=1e-10)
    assert ours.best_loss_ is None and sk.best_loss_ is None
    # the restored weights are the best epoch's, not the last one's
    assert _max_diff(ours, sk) < 1e-8


def test_early_stopping_split_is_stratified_as_scikit_learns():
    with pytest.raises(ValueError, match=r"The least populated classes in y have only 1 member"):
        MLPClassifier(early_stopping=True).fit([[1, 2], [2, 3], [3, 4], [4, 5]], [0, 0, 0, 1])
    with pytest.raises(ValueError, match="The validation set is too small"):
        MLPRegressor(early_stopping=True).fit(np.ones((2, 3)), [1.0, 2.0])
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        MLPRegressor(early_stopping=True, max_iter=2).partial_fit(np.ones((20, 3)), np.arange(20.0))


# ------------------------------------------------------------------------------- sample_weight
@pytest.mark.parametrize("cls,sk_cls,solver", [(MLPClassifier, SkClassifier, "sgd"), (MLPClassifier, SkClassifier, "lbfgs"),
                                              (MLPRegressor, SkRegressor, "adam"), (MLPRegressor, SkRegressor, "lbfgs")])
def test_sample_weight_equals_scikit_learns(digits, cls, sk_cls, solver):
    X, y = digits
    X, y = X[:400], (y if cls is MLPClassifier else np.c_[X[:, 20], X[:, 43] * 2])[:400]
    w = np.random.default_rng(0).uniform(0.0, 3.0, size=len(X))
    kw = dict(hidden_layer_sizes=(12,), solver=solver, batch_size=50, max_iter=8, learning_rate_init=0.02,
              alpha=1e-2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, sk = cls(**kw).fit(X, y, sample_weight=w), sk_cls(**kw).fit(X, y, sample_weight=w)
        unweighted = cls(**kw).fit(X, y)
    assert _max_diff(ours, sk) < 1e-9
    assert _max_diff(ours, unweighted) > 1e-3  # the weights changed the fit
    if solver != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)
        ours.partial_fit(X, y, sample_weight=w)
        sk.partial_fit(X, y, sample_weight=w)
        assert _max_diff(ours, sk) < 1e-9


def test_sample_weight_is_checked_naming_it(digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"^sample_weight\.shape == \(3,\), expected \(20,\)"):
        MLPClassifier(max_iter=1).fit(X[:20], y[:20], sample_weight=np.ones(3))


# ------------------------------------------------------------------------------------ poisson
@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_poisson_loss_equals_scikit_learns(digits, solver):
    X, _ = digits
    y = np.random.default_rng(0).poisson(np.exp(X[:, 20] + X[:, 43]))
    ours, sk = _both(MLPRegressor, SkRegressor, X, y, loss="poisson", hidden_layer_sizes=(10,), solver=solver,
                     max_iter=10, batch_size=64, learning_rate_init=0.01, random_state=0)
    assert ours.out_activation_ == sk.out_activation_ == "exp"
    assert _max_diff(ours, sk) < 1e-10
    assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-10)  # the deviance's constant part included
    np.testing.assert_allclose(ours.predict(X), sk.predict(X), rtol=1e-10)
    with pytest.raises(ValueError, match=r"^y: loss='poisson' expects non-negative targets"):
        MLPRegressor(loss="poisson").fit(X[:10], -np.ones(10))


# ------------------------------------------------------------------------------------- sparse X
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_sparse_X_trains_as_dense_and_as_scikit_learn(digits, fmt, solver):
    import scipy.sparse as sp
    X, y = digits
    Xs = sp.csr_matrix(X) if fmt == "csr" else sp.csc_matrix(X)
    kw = dict(hidden_layer_sizes=(10,), solver=solver, batch_size=40, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sparse, dense, sk = MLPClassifier(**kw).fit(Xs, y), MLPClassifier(**kw).fit(X, y), SkClassifier(**kw).fit(Xs, y)
    assert _max_diff(sparse, dense) < 1e-12
    assert _max_diff(sparse, sk) < 1e-10
    np.testing.assert_array_equal(sparse.predict(Xs), dense.predict(X))


def test_sparse_X_is_never_densified_whole(digits, monkeypatch):
    import scipy.sparse as sp
    X, y = digits
    Xs = sp.csr_matrix(X)
    calls = []
    for cls in (sp.csr_matrix, sp.csc_matrix):
        for name in ("toarray", "todense"):
            orig = getattr(cls, name)
            monkeypatch.setattr(cls, name, lambda self, *a, _o=orig, **k: calls.append(self.shape) or _o(self, *a, **k))
    MLPClassifier(hidden_layer_sizes=(5,), max_iter=1, solver="sgd", batch_size=100).partial_fit(Xs, y, classes=range(10))
    assert calls == []


# --------------------------------------------------------------- divergence, hand-set weights, momentum=1
def test_divergence_is_scikit_learns_value_error(digits):
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights. The input data may contain "
                                         "large values and need to be preprocessed."):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MLPRegressor().fit(X, rng.standard_normal(size=10))


def test_hand_set_weights_are_partial_fits_starting_point_as_in_scikit_learn():
    X, y = np.array([[0.6, 0.8, 0.7], [0.1, 0.2, 0.9]]), np.array([0, 1])
    W = [np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0.0]]), np.array([[0.1], [0.2]])]
    b = [np.array([0.1, 0.1]), np.array([1.0])]
    fitted = []
    for cls in (MLPClassifier, SkClassifier):
        est = cls(solver="sgd", learning_rate_init=0.1, alpha=0.1, activation="logistic", hidden_layer_sizes=2,
                  momentum=0.5, random_state=1)
        est.coefs_, est.intercepts_ = [w.copy() for w in W], [c.copy() for c in b]
        est.n_features_in_, est.n_layers_, est.n_outputs_, est.out_activation_ = 3, 3, 1, "logistic"
        est.t_, est.n_iter_, est.best_loss_, est.loss_curve_, est._no_improvement_count = 0, 0, np.inf, [], 0
        for _ in range(3):
            est.partial_fit(X, y, classes=[0, 1])
        fitted.append(est)
    assert _max_diff(*fitted) < 1e-12
    assert _max_diff(fitted[0], type("W", (), {"coefs_": W, "intercepts_": b})) > 1e-3  # it did train from them


def test_momentum_one_is_allowed_and_equals_scikit_learns(digits):
    X, y = digits
    ours, sk = _both(MLPClassifier, SkClassifier, X[:300], y[:300], hidden_layer_sizes=(8,), solver="sgd",
                     momentum=1.0, learning_rate_init=1e-3, batch_size=50, max_iter=3, random_state=0)
    assert _max_diff(ours, sk) < 1e-10


def test_bad_hyper_parameters_raise_scikit_learns_exception_class(digits):
    from sklearn.utils._param_validation import InvalidParameterError
    X, y = digits
    for kw in (dict(alpha=-1.0), dict(solver="newton"), dict(max_fun=0), dict(validation_fraction=1.0),
               dict(early_stopping="yes")):
        with pytest.raises(InvalidParameterError) as ours:
            MLPClassifier(**kw).fit(X[:20], y[:20])
        with pytest.raises(InvalidParameterError):
            SkClassifier(**kw).fit(X[:20], y[:20])
        assert isinstance(ours.value, ValueError) and isinstance(ours.value, TypeError)
        assert str(ours.value).startswith(next(iter(kw)) + ":")


def test_early_stopping_with_sample_weight_and_sparse_X_equals_scikit_learns(digits):
    import scipy.sparse as sp
    X, y = digits
    w = np.random.default_rng(1).uniform(0.2, 2.0, size=len(X))
    kw = dict(hidden_layer_sizes=(10,), solver="adam", batch_size=64, early_stopping=True, n_iter_no_change=2,
              tol=1e-3, max_iter=40, random_state=5, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**kw).fit(sp.csr_matrix(X), y, sample_weight=w)
        sk = SkClassifier(**kw).fit(sp.csr_matrix(X), y, sample_weight=w)
    assert ours.n_iter_ == sk.n_iter_ < 40
    np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=0, atol=1e-8)
    assert _max_diff(ours, sk) < 1e-8


def test_regressor_parameters_are_scikit_learns_in_order():
    import inspect
    for ours, sk in ((MLPRegressor, SkRegressor), (MLPClassifier, SkClassifier)):
        ours_p = list(inspect.signature(ours.__init__).parameters)[1:]
        sk_p = list(inspect.signature(sk.__init__).parameters)[1:]
        assert ours_p[:len(sk_p)] == sk_p  # same names, same order (MLPRegressor's first positional is loss)
        assert ours_p[len(sk_p):] == ["compiled", "on_divergence"]
        shared = ours().get_params()
        assert {k: shared[k] for k in sk_p} == sk().get_params()
