"""scikit-learn estimators trained by the autograd MLP: :class:`MLPClassifier` and :class:`MLPRegressor`.

They take scikit-learn's parameter names and defaults, draw their weights, epoch shuffles and
early-stopping split exactly as ``sklearn.neural_network`` does (:mod:`.sklearn_compat`), and
minimise the same objective, so with the same parameters they follow scikit-learn's trajectory;
but every gradient comes from the tape's backward pass, not from hand-written backprop.

The objective of one mini-batch B (or of the whole set, for "lbfgs"), with sample weights w_i
(all 1 without ``sample_weight``) and S_B = Σ_{i∈B} w_i, as scikit-learn's ``_backprop``::

    L_B = (1/S_B) Σ_{i∈B} w_i ℓ(z_i, y_i)  +  (α / (2 S_B)) Σ_l ‖W^[l]‖²_F

with z_i = z^[L] for example i and ℓ

* multiclass (softmax output):  ℓ = logsumexp(z) − yᵀz  (cross-entropy of softmax(z), y one-hot);
* binary / multilabel (one logistic unit per output):  ℓ = Σ_k softplus(z_k) − y_k z_k, the binary
  cross-entropy of σ(z_k), with softplus(z) = log(1 + eᶻ) = logsumexp([0, z]) so it stays finite for
  any |z|;
* regression, ``loss="squared_error"`` (identity output):  ℓ = ½ ‖z − y‖²;
* regression, ``loss="poisson"`` (exp output, ŷ = eᶻ):  ℓ = Σ_k e^{z_k} − y_k z_k + (y_k log y_k − y_k),
  half the Poisson deviance; the bracket does not depend on the weights and only shifts the value.

The per-epoch loss ``loss_curve_`` is Σ_B n_B L_B / n (each L_B taken before its update), as in
scikit-learn.  One wrinkle copied on purpose: for a regressor with d_L > 1 outputs and squared error
scikit-learn *reports* ``((y − ŷ)²).mean() / 2``, i.e. the data term divided by d_L, but its gradient
(δ^[L] = ŷ − y) is that of ½ ‖z − y‖² without the 1/d_L.  Training here follows the gradient (so
``coefs_`` match), and the reported loss (``loss_curve_``, ``loss_``, and the value "lbfgs" hands to
scipy) is the data term divided by d_L (so the curves and the line searches match).

Solvers: "sgd" and "adam" step through mini-batches; "lbfgs" hands the loss and the tape's gradient
of the flat parameter vector θ = [vec W^[1]ᵀ, …, vec W^[L]ᵀ, b^[1], …, b^[L]] (scikit-learn's packing)
to ``scipy.optimize.minimize(method="L-BFGS-B")`` with scikit-learn's options.

Divergence: a batch whose loss is not finite is not applied; training stops with
:class:`~tinygrad_mlp.training.loop.DivergenceError` (a ``ValueError`` whose message starts as
scikit-learn's, "Solver produced non-finite parameter weights...", then names the epoch and the
step) under ``on_divergence="raise"``, or with a
:class:`~tinygrad_mlp.training.loop.DivergenceWarning` under ``"warn"``; ``coefs_`` / ``intercepts_``
hold the last finite weights.  With ``early_stopping=True`` the epoch gets a NaN validation score,
the best weights are restored (as scikit-learn ends such a run) and a DivergenceWarning says so.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import scipy
import scipy.optimize
import scipy.sparse as sp
from scipy.special import xlogy
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (_check_partial_fit_first_call, check_classification_targets, type_of_target,
                                      unique_labels)
from sklearn.utils.validation import _check_sample_weight, check_array, check_is_fitted, validate_data

from ..autograd import functional as F
from ..autograd.tensor import Tensor, _new, no_grad
from ..nn.layers import MLP
from ..nn.optim import SGD, Adam
from .loop import DivergenceError, DivergenceWarning, Steps, run_epochs
from .sklearn_compat import sklearn_epoch_order, sklearn_init

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names -> ours
_ACTIVATION = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_SOLVERS = ("lbfgs", "sgd", "adam")
_STOCHASTIC = ("sgd", "adam")
_SCHEDULES = ("constant", "invscaling", "adaptive")
_ON_DIVERGENCE = ("raise", "warn")
_REGRESSION_LOSSES = ("squared_error", "poisson")
# z[..., None] * [0, 1] = [0, z]: the pairs whose logsumexp is softplus(z), without a concatenate primitive
_ZERO_ONE = np.array([0.0, 1.0])
# scikit-learn's own words, so that `except ValueError` and `pytest.raises(match=...)` written for it hold
_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large values and need "
               "to be preprocessed.")


# ------------------------------------------------------------------------------------- losses
# Each returns ℓ per row (shape (n_B,)), so that a batch can average it plainly or with sample weights.
def _softplus(z: Tensor) -> Tensor:
    """softplus(z) = log(1 + eᶻ) = logsumexp([0, z]) elementwise; its derivative is σ(z), exact at z = 0 too."""
    pairs = z.reshape(z.shape + (1,)) * _ZERO_ONE.astype(z.dtype)
    return pairs.logsumexp(axis=-1)


def _softmax_cross_entropy(z: Tensor, y: Tensor) -> Tensor:
    """ℓ = logsumexp(z) − yᵀz per row (y one-hot, so Σ_k y_k = 1)."""
    return z.logsumexp(axis=-1) - (z * y).sum(axis=-1)


def _binary_cross_entropy(z: Tensor, y: Tensor) -> Tensor:
    """ℓ = Σ_k softplus(z_k) − y_k z_k = −Σ_k [y_k log σ(z_k) + (1 − y_k) log(1 − σ(z_k))] per row."""
    return (_softplus(z) - z * y).sum(axis=-1)


def _half_squared_error(z: Tensor, y: Tensor) -> Tensor:
    """ℓ = ½ ‖z − y‖² per row (the objective whose gradient scikit-learn's regressor follows)."""
    d = z - y
    return (d * d).sum(axis=-1) * 0.5


def _half_poisson_deviance(z: Tensor, y: Tensor) -> Tensor:
    """ℓ = Σ_k e^{z_k} − y_k z_k per row: half the Poisson deviance of ŷ = eᶻ, less its constant part."""
    return (z.exp() - z * y).sum(axis=-1)


def _poisson_constant(Y: np.ndarray) -> np.ndarray:
    """Σ_k y_k log y_k − y_k per row: the part of the half deviance without the weights (0 log 0 = 0)."""
    return (xlogy(Y, Y) - Y).sum(axis=1)


class _SGD(SGD):
    """:class:`SGD` under the name scikit-learn's optimiser gives η (code reads ``_optimizer.learning_rate``)."""

    @property
    def learning_rate(self) -> float:
        return self.lr


class _ScheduledSGD(_SGD):
    """SGD with momentum in scikit-learn's form, for a learning rate that changes between epochs.

    u ← μ u − η g, then θ ← θ + u (Nesterov: θ ← θ + μ u − η g).  :class:`SGD`'s v ← μ v + g,
    θ ← θ − η v is the same while η is constant, but rescales all past steps when η changes
    ("invscaling", "adaptive"); here each past step keeps the η it was taken with.  μ = 1 is allowed,
    as scikit-learn allows it.
    """

    def __init__(self, params, lr, momentum=0.0, nesterov=False):
        super().__init__(params, lr, momentum=0.0, nesterov=nesterov)
        self.momentum = float(momentum)

    def update(self) -> None:
        lr, mu = self.lr, self.momentum
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            u = self.velocity[i]
            u = -lr * g if u is None else mu * u - lr * g
            self.velocity[i] = u
            p.data += mu * u - lr * g if self.nesterov else u


class _WeightedSteps:
    """An estimator's steps where :class:`~tinygrad_mlp.training.loop.Steps` does not reach.

    Sparse X (a batch stays sparse into the first matmul), sample weights (L_B = Σ w_i ℓ_i / S_B), a
    Poisson loss's constant, and the multi-output regressor's reported loss: the same epoch protocol
    (``run``, ``begin``, ``weights_finite``, ``recover``), eager steps on the tape.
    """

    def __init__(self, est, X, Y, sample_weight, batch_size, scale):
        self.X, self.Y, self.w, self.batch_size = X, Y, sample_weight, batch_size
        self.optimizer = est._optimizer
        self.params = est._model.parameters()
        self.Ws = [layer.W for layer in est._model.layers]
        self.objective, self.reported = est._objective(scale)
        self._start = None

    def steps_per_epoch(self, n: int) -> int:
        return -(-n // self.batch_size)

    def begin(self) -> None:
        self._start = [p.data.copy() for p in self.params]

    def weights_finite(self) -> bool:
        return all(np.isfinite(p.data).all() for p in self.params)

    def run(self, idx):
        X, Y, w, bs, opt = self.X, self.Y, self.w, self.batch_size, self.optimizer
        objective, reported, Ws, isfinite = self.objective, self.reported, self.Ws, math.isfinite
        total = 0.0
        for s, start in enumerate(range(0, len(idx), bs)):
            rows = idx[start:start + bs]
            opt.zero_grad()
            loss, S = objective(X[rows], Y[rows], None if w is None else w[rows])
            v = loss.data.item()
            if not isfinite(v):  # checked before backward, so the update is never applied
                return total, s, (s, v)
            total += reported(v, [W.data for W in Ws], S) * len(rows)
            loss.backward()
            opt.step()
        return total, self.steps_per_epoch(len(idx)), None

    def recover(self, idx, steps):
        self.optimizer.zero_grad()
        if self.weights_finite():
            return steps, "the weights stay at their last finite values (that step's update was not applied)"
        for p, a in zip(self.params, self._start):
            p.data[...] = a
        return 0, "the weights were restored to their values at the start of this epoch"

# ------------------------------------------------------------------------------- validation
try:  # scikit-learn's class for a bad hyper-parameter: both a ValueError and a TypeError
    from sklearn.utils._param_validation import InvalidParameterError
except ImportError:  # pragma: no cover - scikit-learn < 1.2
    class InvalidParameterError(ValueError, TypeError):
        """A hyper-parameter out of its documented range or of the wrong type."""


def _sklearn_check(est) -> None:
    """scikit-learn's own check of the parameters it shares, its message prefixed by the parameter's name.

    The same rules and words as ``sklearn.neural_network``'s estimators (the constraints are read from
    them), so ``pytest.raises(match=...)`` written for scikit-learn holds; skipped if a scikit-learn
    version lacks that machinery, leaving the checks below.
    """
    try:
        from sklearn import neural_network
        from sklearn.utils._param_validation import validate_parameter_constraints
        constraints = getattr(neural_network, type(est).__name__)._parameter_constraints
    except (ImportError, AttributeError):  # pragma: no cover - other scikit-learn versions
        return
    params = {k: getattr(est, k) for k in constraints if hasattr(est, k)}
    try:
        validate_parameter_constraints(constraints, params, caller_name=type(est).__name__)
    except InvalidParameterError as e:
        name = str(e).split("'")[1] if str(e).startswith("The '") else "parameters"
        raise InvalidParameterError(f"{name}: {e}") from None


def _check_params(est) -> tuple:
    """Validate the hyper-parameters at fit time (scikit-learn validates there, not in ``__init__``)."""
    def real(name, low, high=None, low_open=False, high_open=False):
        v = getattr(est, name)
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
        if ok:
            ok = (v > low if low_open else v >= low) and (high is None or (v < high if high_open else v <= high))
        if not ok:
            lo = "(" if low_open else "["
            hi = "inf)" if high is None else (f"{high})" if high_open else f"{high}]")
            raise InvalidParameterError(f"{name}: expected a real number in {lo}{low}, {hi}, got {v!r}")
        return float(v)

    def integer(name, low, allow_inf=False):
        v = getattr(est, name)
        if allow_inf and isinstance(v, float) and v == np.inf:
            return v
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < low:
            raise InvalidParameterError(f"{name}: expected an int >= {low}{' or np.inf' if allow_inf else ''}, got {v!r}")
        return int(v)

    def choice(name, options):
        v = getattr(est, name)
        if not isinstance(v, str) or v not in options:
            raise InvalidParameterError(f"{name}: expected one of {list(options)}, got {v!r}")
        return v

    def boolean(name):
        v = getattr(est, name)
        if not isinstance(v, (bool, np.bool_)):
            raise InvalidParameterError(f"{name}: expected a bool, got {v!r}")
        return bool(v)

    _sklearn_check(est)
    sizes = est.hidden_layer_sizes
    sizes = list(sizes) if hasattr(sizes, "__iter__") and not isinstance(sizes, str) else [sizes]
    for s in sizes:
        if not isinstance(s, numbers.Integral) or isinstance(s, bool) or s <= 0:
            raise InvalidParameterError(f"hidden_layer_sizes: expected positive ints (units per hidden layer); "
                                        f"hidden_layer_sizes must be > 0, got {est.hidden_layer_sizes!r}.")
    choice("activation", tuple(_ACTIVATION))
    choice("solver", _SOLVERS)
    choice("learning_rate", _SCHEDULES)
    choice("on_divergence", _ON_DIVERGENCE)
    if not is_classifier(est):
        choice("loss", _REGRESSION_LOSSES)
    real("alpha", 0.0)
    real("learning_rate_init", 0.0, low_open=True)
    real("power_t", 0.0)
    integer("max_iter", 1)
    integer("max_fun", 1)
    real("tol", 0.0)
    real("momentum", 0.0, 1.0)
    real("validation_fraction", 0.0, 1.0, high_open=True)
    real("beta_1", 0.0, 1.0, high_open=True)
    real("beta_2", 0.0, 1.0, high_open=True)
    real("epsilon", 0.0, low_open=True)
    integer("n_iter_no_change", 1, allow_inf=True)
    for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping", "compiled"):
        boolean(name)
    if not (isinstance(est.verbose, numbers.Integral) or isinstance(est.verbose, (bool, np.bool_))):
        raise InvalidParameterError(f"verbose: expected a bool or an int, got {est.verbose!r}")
    if est.batch_size != "auto":
        integer("batch_size", 1)
    check_random_state(est.random_state)  # raises ValueError naming what it got
    return [int(s) for s in sizes]


def _named(e: Exception, name: str):
    """scikit-learn's own message, prefixed by the argument it is about ("Found array with 0 sample(s)" names none)."""
    msg = str(e)
    if msg.startswith((f"{name}: ", f"{name} ", f"{name}.")):  # "X has 3 features, but ..." names it already
        return e
    return (ValueError if isinstance(e, ValueError) else TypeError)(f"{name}: {msg}")


_SPARSE = ["csr", "csc"]


def _validate_X_y(est, X, y, reset: bool, **kw):
    """validate_data(est, X, y), with every error naming X or y.

    X is checked alone first (shape, dtype, NaN/inf, emptiness), so what the joint check then
    refuses is y, or X against the fitted model (its number of features or their names).
    """
    # scikit-learn's finiteness check sums X first: inf + (−inf) warns before its own error says the same.
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            check_array(X, accept_sparse=_SPARSE, dtype=(np.float64, np.float32), input_name="X", estimator=est)
    except (ValueError, TypeError) as e:
        raise _named(e, "X") from None
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return validate_data(est, X, y, accept_sparse=_SPARSE, multi_output=True,
                                 dtype=(np.float64, np.float32), reset=reset, **kw)
    except (ValueError, TypeError) as e:
        msg = str(e)
        raise _named(e, "X" if msg.startswith("X ") or "feature names" in msg else "y") from None


# ------------------------------------------------------------------------------------ base
class _BaseMLP(BaseEstimator):
    """Shared by the classifier and the regressor: parameters, the solvers, the forward pass."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, compiled=False,
                 on_divergence="raise"):
        # scikit-learn's contract: __init__ stores the parameters untouched; fit validates them.
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.compiled = compiled
        self.on_divergence = on_divergence

    # --- subclass hooks -----------------------------------------------------------------
    def _validate_input(self, X, y, incremental, reset):
        raise NotImplementedError

    def _output(self) -> str:
        raise NotImplementedError

    def _loss_fn(self):
        raise NotImplementedError

    def _predict_from_logits(self, z):
        raise NotImplementedError

    def _score_fn(self):
        raise NotImplementedError

    # --- fitting ------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden_sizes = _check_params(self)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            try:
                sample_weight = _check_sample_weight(sample_weight, X)
            except (ValueError, TypeError) as e:
                raise _named(e, "sample_weight") from None
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        n_samples, n_features = X.shape
        layer_units = [n_features] + hidden_sizes + [y.shape[1]]
        # As scikit-learn: a fresh RandomState on every call, so an int seed repeats each partial_fit's shuffles.
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(layer_units, X.dtype)
        else:
            self._resume(layer_units, X.dtype)
        model = self._model
        X = X.tocsr() if sp.issparse(X) else np.ascontiguousarray(X, dtype=model.dtype)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=model.dtype)
        try:
            # Divergence is reported once (DivergenceError or DivergenceWarning), not by NumPy's
            # overflow warnings on the way there.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                if self.solver == "lbfgs":
                    self._fit_lbfgs(X, y, sample_weight)
                else:
                    self._fit_stochastic(X, y, sample_weight, incremental)
        finally:
            self._store_weights()
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise DivergenceError(_NON_FINITE, self.n_iter_, 0)
        return self

    def _new_model(self, layer_units, dtype) -> MLP:
        return MLP(layer_units, hidden=_ACTIVATION[self.activation], output="identity", weight_init="zeros",
                   bias_init="zeros", dtype=dtype)

    def _initialize(self, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = layer_units[-1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output()
        # Zeros first: sklearn_init overwrites every entry with scikit-learn's draws, in its order.
        self._model = self._new_model(layer_units, dtype)
        sklearn_init(self._model, self._random_state)
        self._store_weights()
        self._best_params = [p.data.copy() for p in self._model.parameters()]
        if self.solver in _STOCHASTIC:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        if hasattr(self, "_optimizer"):
            del self._optimizer

    def _resume(self, layer_units, dtype):
        """Continue from ``coefs_`` / ``intercepts_``: this estimator's own, or weights a user assigned."""
        have = [np.shape(c)[0] for c in self.coefs_] + [np.shape(self.coefs_[-1])[1]]
        if have != layer_units:
            raise ValueError(f"hidden_layer_sizes, X, y: warm start or partial_fit expected layer sizes {have} "
                             f"from the fitted model, got {layer_units}")
        model = getattr(self, "_model", None)
        if model is None or model.sizes != layer_units:
            # Weights assigned by hand (scikit-learn's own test_fit does it): a model of their shape, and
            # the bookkeeping scikit-learn's fit would have made.
            self._model = self._new_model(layer_units, dtype)
            if hasattr(self, "_optimizer"):
                del self._optimizer
            self.n_outputs_ = layer_units[-1]
            self.n_layers_ = len(layer_units)
            for name, value in (("n_iter_", 0), ("t_", 0), ("loss_curve_", []), ("_no_improvement_count", 0),
                                ("best_loss_", np.inf), ("validation_scores_", None),
                                ("best_validation_score_", None)):
                if not hasattr(self, name):
                    setattr(self, name, value)
            if not hasattr(self, "out_activation_"):
                self.out_activation_ = self._output()
        self._load_weights()
        if not hasattr(self, "_best_params"):
            self._best_params = [p.data.copy() for p in self._model.parameters()]
        if self.solver in _STOCHASTIC and not hasattr(self, "loss_curve_"):  # lbfgs before, sgd/adam now
            self.loss_curve_, self._no_improvement_count = [], 0
            self.best_loss_ = None if self.early_stopping else np.inf
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None

    def _store_weights(self):
        """coefs_[l] = W^[l+1]ᵀ, scikit-learn's (fan_in, fan_out) layout; intercepts_[l] = b^[l+1]."""
        self.coefs_ = [layer.W.data.T.copy() for layer in self._model.layers]
        self.intercepts_ = [layer.b.data.copy() for layer in self._model.layers]

    def _load_weights(self):
        # coefs_ may have been set by the user between calls; the tape's tensors follow them.
        for layer, W, b in zip(self._model.layers, self.coefs_, self.intercepts_):
            layer.W.data[...] = np.asarray(W).T
            layer.b.data[...] = np.asarray(b).reshape(layer.b.data.shape)

    def _objective(self, multi_output_scale: float):
        """(objective, reported): the tape's L_B of a batch, and the loss scikit-learn reports for its value.

        ``objective(xb, yb, wb)`` -> (L_B as a Tensor on the tape, S_B); ``reported(v, weights, S_B)``.
        """
        model = self._model
        hidden = [(layer.W, layer.b) for layer in model.layers[:-1]]
        W_L, b_L = model.layers[-1].W, model.layers[-1].b
        Ws = [layer.W for layer in model.layers]
        g = model._g
        row_loss = self._loss_fn()
        alpha = float(self.alpha)
        poisson = self.out_activation_ == "exp"

        def objective(xb, yb, wb):
            # asarray: a plain ndarray view (no copy), which is also how a compiled capture expects inputs;
            # a sparse batch goes through the first matmul as it is.
            h = _new(xb if sp.issparse(xb) else np.asarray(xb))
            for W, b in hidden:
                h = g(h @ W.T + b)
            rows = row_loss(h @ W_L.T + b_L, _new(np.asarray(yb)))
            if wb is None:
                s = xb.shape[0]
                loss = rows.mean()
                if poisson:
                    loss = loss + float(_poisson_constant(yb).mean())
            else:
                s = float(wb.sum())
                loss = (rows * wb).sum() * (1.0 / s)
                if poisson:
                    loss = loss + float(_poisson_constant(yb) @ wb) / s
            if alpha:
                reg = (Ws[0] * Ws[0]).sum()
                for W in Ws[1:]:
                    reg = reg + (W * W).sum()
                loss = loss + reg * (0.5 * alpha / s)
            return loss, s

        def reported(v, weights, s):
            if multi_output_scale == 1.0:
                return v
            r = 0.5 * alpha * sum(float(np.dot(W.ravel(), W.ravel())) for W in weights) / s if alpha else 0.0
            return (v - r) * multi_output_scale + r

        return objective, reported

    def _reported_scale(self, Y) -> float:
        # Only a multi-output squared-error regressor reports its data term scaled (see the module docstring).
        return 1.0 / Y.shape[1] if self.out_activation_ == "identity" and Y.shape[1] > 1 else 1.0

    # --- lbfgs --------------------------------------------------------------------------
    def _loss_grad_lbfgs(self, packed, X, y, sample_weight=None, *_buffers):
        """(loss, ∂loss/∂θ) at the flat θ in scikit-learn's packing; the gradient comes from the tape.

        ``_buffers`` takes the work arrays scikit-learn's method of this name is handed; none are needed here.
        """
        model = self._model
        params = model.parameters()
        Ws = [layer.W for layer in model.layers]
        bs = [layer.b for layer in model.layers]
        Y = np.asarray(y, dtype=model.dtype)
        Y = Y.reshape(-1, 1) if Y.ndim == 1 else Y
        objective, reported = self._objective(self._reported_scale(Y))
        start = 0
        for W in Ws:  # vec of W^[l]ᵀ, i.e. of coefs_[l] in C order
            fan_out, fan_in = W.data.shape
            W.data[...] = np.reshape(packed[start:start + fan_in * fan_out], (fan_in, fan_out)).T
            start += fan_in * fan_out
        for b in bs:
            b.data[...] = packed[start:start + b.data.size]
            start += b.data.size
        for p in params:
            p.grad = None
        loss, s = objective(X, Y, sample_weight)
        v = loss.data.item()
        loss.backward()
        grad = np.concatenate([W.grad.T.ravel() for W in Ws] + [b.grad.ravel() for b in bs])
        return reported(v, [W.data for W in Ws], s), grad

    def _fit_lbfgs(self, X, Y, sample_weight):
        Y = np.ascontiguousarray(Y, dtype=self._model.dtype)
        Ws = [layer.W for layer in self._model.layers]
        bs = [layer.b for layer in self._model.layers]
        theta0 = np.concatenate([W.data.T.ravel() for W in Ws] + [b.data.ravel() for b in bs])
        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1
        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol}
        # scipy 1.15 deprecated L-BFGS-B's iprint; scikit-learn passes it only to older scipy, and so does this.
        if tuple(int(p) for p in scipy.__version__.split(".")[:2]) < (1, 15):
            options["iprint"] = iprint
        res = scipy.optimize.minimize(self._loss_grad_lbfgs, theta0, method="L-BFGS-B", jac=True,
                                      options=options, args=(X, Y, sample_weight))
        self.n_iter_ = min(res.nit, self.max_iter)
        if res.status != 0:
            msg = (f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={res.status}):\n"
                   f"{res.message}\n")
            if self.n_iter_ == self.max_iter:
                msg += f"\nIncrease the number of iterations to improve the convergence (max_iter={self.max_iter})."
            msg += ("\nYou might also want to scale the data as shown in:\n"
                    "    https://scikit-learn.org/stable/modules/preprocessing.html")
            warnings.warn(msg, ConvergenceWarning, stacklevel=4)
        self.loss_ = res.fun
        # The last evaluation need not be at the optimum: leave the model at scipy's answer.
        start = 0
        for W in Ws:
            fan_out, fan_in = W.data.shape
            W.data[...] = np.reshape(res.x[start:start + fan_in * fan_out], (fan_in, fan_out)).T
            start += fan_in * fan_out
        for b in bs:
            b.data[...] = res.x[start:start + b.data.size]
            start += b.data.size

    # --- sgd / adam ---------------------------------------------------------------------
    def _make_optimizer(self, params):
        if self.solver == "sgd":
            # Plain SGD while η is constant: that is the form a compiled replay fast-paths.
            plain = self.learning_rate == "constant" and self.momentum < 1
            cls = _SGD if plain else _ScheduledSGD
            return cls(params, self.learning_rate_init, momentum=float(self.momentum),
                       nesterov=bool(self.nesterovs_momentum))
        return Adam(params, self.learning_rate_init, (self.beta_1, self.beta_2), self.epsilon)

    def _split_for_early_stopping(self, X, Y, sample_weight):
        """scikit-learn's split: stratified on the binarised labels of a single-output classifier."""
        stratify = Y if is_classifier(self) and self.n_outputs_ == 1 else None
        arrays = (X, Y) if sample_weight is None else (X, Y, sample_weight)
        parts = train_test_split(*arrays, random_state=self._random_state, test_size=self.validation_fraction,
                                 stratify=stratify)
        X_train, X_val, Y_train, Y_val = parts[:4]
        sw_train, sw_val = (parts[4], parts[5]) if sample_weight is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                             "your dataset.")
        if is_classifier(self):
            Y_val = self._label_binarizer.inverse_transform(Y_val)
        return X_train, Y_train, sw_train, X_val, Y_val, sw_val

    def _validation_score(self, X_val, y_val, sw_val) -> float:
        """accuracy (classifier) or R² (regressor) of the current weights; NaN when the output is not finite."""
        with no_grad():
            z = self._forward(X_val, self._model)
        if not np.isfinite(z).all():
            return np.nan
        return self._score_fn()(y_val, self._predict_from_logits(z), sample_weight=sw_val)

    def _step_loss(self):
        """L_B(z, t) for :class:`~tinygrad_mlp.training.loop.Steps`: the data term's mean plus α ΣW² / (2 n_B).

        z is one example's z^[L] (batch_size=1) or a batch's; t its target: a class index for a softmax
        output (so the per-example step is F.cross_entropy's two records, as ``train``'s), else the row(s)
        of Y.
        """
        Ws = [layer.W for layer in self._model.layers]
        alpha = float(self.alpha)
        if self.out_activation_ == "softmax":
            def data(z, t):
                return F.cross_entropy(z, t, "mean")
        else:
            rows = self._loss_fn()

            def data(z, t):
                return rows(z, t).mean()
        if not alpha:
            return data

        def loss(z, t):
            reg = (Ws[0] * Ws[0]).sum()
            for W in Ws[1:]:
                reg = reg + (W * W).sum()
            return data(z, t) + reg * (0.5 * alpha / (z.shape[0] if z.ndim == 2 else 1))
        return loss

    def _fit_stochastic(self, X, Y, sample_weight, incremental):
        """Epochs of mini-batch steps through the shared loop (:func:`~tinygrad_mlp.training.loop.run_epochs`).

        The steps are the loop's :class:`~tinygrad_mlp.training.loop.Steps` (eager or compiled) for
        dense X without sample weights; sparse X, sample weights and the reported-loss wrinkles of a
        multi-output or Poisson regressor take :class:`_WeightedSteps`.  scikit-learn's per-epoch
        bookkeeping (loss curve, validation score, stopping rule, schedules) is the loop's callback.
        """
        model = self._model
        params = model.parameters()
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer(params)
        opt = self._optimizer
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            X, Y, sample_weight, X_val, y_val, sw_val = self._split_for_early_stopping(X, Y, sample_weight)
            if self.validation_scores_ is None:  # warm start after a fit without early stopping
                self.validation_scores_, self.best_validation_score_ = [], -np.inf
        Y = np.ascontiguousarray(Y, dtype=model.dtype)
        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        scale = self._reported_scale(Y)
        if sp.issparse(X) or sample_weight is not None or scale != 1.0 or self.out_activation_ == "exp":
            steps = _WeightedSteps(self, X, Y, sample_weight, batch_size, scale)
        else:
            compiled = "exact" if self.compiled else None
            # Class indices for a softmax output, eagerly; a replay freezes Python ints, so it takes one-hot rows.
            T = Y.argmax(axis=1) if self.out_activation_ == "softmax" and compiled is None else Y
            steps = Steps(model, opt, self._step_loss(), X, T, batch_size=batch_size, compiled=compiled)

        idx = np.arange(n)
        rng = self._random_state

        def order(epoch):
            nonlocal idx
            if self.shuffle:
                idx = sklearn_epoch_order(idx, rng)
            return idx

        def end_of_epoch(epoch, hist):
            """scikit-learn's bookkeeping after an epoch; True stops training."""
            self.n_iter_ += 1
            self.loss_ = hist.loss[-1]
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
            # No improvement by tol for more than n_iter_no_change epochs: of the validation score under
            # early stopping, else of the training loss.
            if early_stopping:
                score = self._validation_score(X_val, y_val, sw_val)
                self.validation_scores_.append(score)
                if self.verbose:
                    print("Validation score: %f" % score)
                if score < self.best_validation_score_ + self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    self._best_params = [p.data.copy() for p in params]
            else:
                if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if self.loss_curve_[-1] < self.best_loss_:
                    self.best_loss_ = self.loss_curve_[-1]
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                opt.lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
            if self._no_improvement_count > self.n_iter_no_change:
                what = "Validation score" if early_stopping else "Training loss"
                msg = ("%s did not improve more than tol=%f for %d consecutive epochs."
                       % (what, self.tol, self.n_iter_no_change))
                if self.solver == "sgd" and self.learning_rate == "adaptive" and opt.lr > 1e-6:
                    opt.lr /= 5.0
                    if self.verbose:
                        print(msg + " Setting learning rate to %f" % opt.lr)
                    self._no_improvement_count = 0
                else:
                    if self.verbose:
                        tail = (" Learning rate too small. Stopping."
                                if self.solver == "sgd" and self.learning_rate == "adaptive" else " Stopping.")
                        print(msg + tail)
                    return True
            if incremental:
                return True
            if self.n_iter_ == self.max_iter:
                warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the optimization "
                              "hasn't converged yet." % self.max_iter, ConvergenceWarning)
            return False

        self.n_iter_ = 0
        hint = "Try a smaller learning_rate_init, a smaller batch-size-to-rate ratio, or scaled inputs."
        if not early_stopping:
            try:
                run_epochs(steps, epochs=self.max_iter, order=order, callback=end_of_epoch, hint=hint,
                           on_divergence=self.on_divergence)
            except DivergenceError as e:  # scikit-learn's words first, then where and what was kept
                raise DivergenceError(f"{_NON_FINITE} {e}", e.epoch, e.step) from None
            return
        # Under early stopping a diverged epoch scores NaN and the run ends with the best weights, as
        # scikit-learn's does: the loop's own report (which keeps the last finite weights) is replaced.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DivergenceWarning)
            hist = run_epochs(steps, epochs=self.max_iter, order=order, callback=end_of_epoch, hint=hint,
                              on_divergence="warn")
        for w in caught:
            if not issubclass(w.category, DivergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if hist.diverged:
            self.n_iter_ += 1
            self.validation_scores_.append(np.nan)
            warnings.warn(f"{hist.message.split('; ')[0]}; its validation score is NaN and the best weights "
                          f"(validation score {self.best_validation_score_}) are restored. {hint}",
                          DivergenceWarning, stacklevel=4)
        for p, best in zip(params, self._best_params):
            p.data[...] = best

    # --- prediction ---------------------------------------------------------------------
    def _forward(self, X, model=None) -> np.ndarray:
        """z^[L] for each row of (validated) X: through ``model``, or the fitted coefs_ / intercepts_."""
        g = F.ACTIVATIONS[_ACTIVATION[self.activation]]
        if model is not None:
            layers = [(layer.W.data.T, layer.b.data) for layer in model.layers]
        else:
            layers = [(np.asarray(W, dtype=X.dtype), np.asarray(b, dtype=X.dtype))
                      for W, b in zip(self.coefs_, self.intercepts_)]
        with no_grad(), np.errstate(over="ignore", invalid="ignore"):
            h = _new(X)  # a sparse X stays sparse: its product with W^[1]ᵀ is the first dense array
            last = len(layers) - 1
            for l, (W, b) in enumerate(layers):
                h = h @ W + b
                if l != last:
                    h = g(h)
        return h.data

    def _logits(self, X) -> np.ndarray:
        """z^[L] for each row of X, through the fitted coefs_ and intercepts_ (nothing recorded)."""
        check_is_fitted(self)
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                X = validate_data(self, X, accept_sparse=_SPARSE, dtype=(np.float64, np.float32), reset=False)
        except (ValueError, TypeError) as e:
            raise _named(e, "X") from None
        z = self._forward(X)
        # Finite but huge X (1e308) can overflow W h + b: an error naming X, not a warning and inf/NaN.
        if not np.isfinite(z).all():
            raise ValueError("X: the forward pass overflowed to inf or NaN; expected inputs small enough for "
                             "W h + b to stay finite (scale the inputs)")
        return z

    def _check_solver(self):
        if self.solver not in _STOCHASTIC:
            raise AttributeError("partial_fit is only available for stochastic optimizers. %s is not stochastic."
                                 % self.solver)
        return True

    def fit(self, X, y, sample_weight=None):
        """Train on (X, y) for up to ``max_iter`` epochs (lbfgs: iterations), from scratch unless ``warm_start``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            CSR and CSC matrices go through the first layer's matmul without a dense copy.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classifier) or real targets (regressor).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights w_i of the examples in the loss: L_B = Σ w_i ℓ_i / Σ w_i (+ α ΣW² / (2 Σ w_i)).

        Returns
        -------
        self

        Raises
        ------
        DivergenceError
            A ValueError: when a batch's loss is not finite and ``on_divergence="raise"``.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        return tags


_PARAMS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        Units of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        g of the hidden layers.
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
        scipy's L-BFGS-B on the whole set, :class:`~tinygrad_mlp.nn.optim.SGD` (with ``momentum``,
        ``nesterovs_momentum``) or :class:`~tinygrad_mlp.nn.optim.Adam` (``beta_1``, ``beta_2``, ``epsilon``).
    alpha : float, default=1e-4
        L2 penalty: adds α/(2 S_B) Σ‖W^[l]‖² to each batch's loss (S_B = the batch's weight sum; biases are
        not penalised).
    batch_size : int or "auto", default="auto"
        Rows per step; 1 is per-example SGD, "auto" is min(200, n_samples).  Not used by "lbfgs".
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Step-size schedule of the "sgd" solver, as scikit-learn's.
    learning_rate_init : float, default=0.001
        η.
    power_t : float, default=0.5
        Exponent of "invscaling": η_t = η / (t + 1)^power_t, t the samples seen.
    max_iter : int, default=200
        Epochs ("sgd", "adam") or L-BFGS-B iterations ("lbfgs").
    shuffle : bool, default=True
        Draw a new example order every epoch (scikit-learn's draws).
    random_state : None, int or RandomState, default=None
        Seeds the weights, the early-stopping split and the shuffles, in scikit-learn's order.
    tol : float, default=1e-4
        Improvement that counts (loss, or validation score under early stopping); L-BFGS-B's ``gtol``.
    verbose : bool, default=False
        Print the loss of every epoch.
    warm_start : bool, default=False
        ``fit`` continues from the current weights (with a fresh optimiser).
    momentum : float in [0, 1], default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified for a single-output classifier, as
        scikit-learn splits it) and stop when its score has not improved by ``tol`` for more than
        ``n_iter_no_change`` epochs; the best weights are restored at the end.
    validation_fraction : float in [0, 1), default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
    n_iter_no_change : int, default=10
        Stop when the epoch loss (or validation score) has not improved by ``tol`` for more than this many epochs.
    max_fun : int, default=15000
        "lbfgs" only: the most loss-and-gradient evaluations.
    compiled : bool, default=False
        Replay each training step with :func:`tinygrad_mlp.compiler.compiled.compile` (same numbers, less
        overhead; dense X only).
    on_divergence : {"raise", "warn"}, default="raise"
        What a non-finite training loss does (see the module docstring).

    Attributes
    ----------
    coefs_ : list of ndarray
        coefs_[l] has shape (fan_in, fan_out): W^[l+1]ᵀ in the practical's notation.  Assigned before
        ``partial_fit`` (with ``intercepts_``), they are its starting weights.
    intercepts_ : list of ndarray
        b^[l+1].
    loss_curve_ : list of float
        The loss of every epoch (regularisation included), as scikit-learn's ("sgd", "adam").
    validation_scores_ : list of float or None
        The held-out score of every epoch under ``early_stopping``, else None.
    best_validation_score_ : float or None
        Their maximum under ``early_stopping``, else None.
    n_iter_ : int
        Epochs (or L-BFGS-B iterations) run by the last ``fit`` (1 after ``partial_fit``).
    t_ : int
        Training samples seen, over all calls.
    loss_ : float
        The last epoch's loss (lbfgs: the final loss).
    best_loss_ : float or None
        The lowest epoch loss; None under ``early_stopping``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X had string column names.
    n_outputs_, n_layers_, out_activation_
        As scikit-learn's.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = ("""Multi-layer perceptron classifier trained through the tape; scikit-learn's ``MLPClassifier``.

    Multiclass targets get a softmax output with cross-entropy; binary targets one
    logistic unit with binary cross-entropy (so ``coefs_`` has scikit-learn's shapes);
    a label-indicator matrix (multilabel) one logistic unit per label.  Labels may be
    any values ``LabelBinarizer`` accepts (ints, strings, ...); ``classes_`` lists them.
    """ + _PARAMS_DOC + """
    classes_ : ndarray
        The class labels, in the order of ``predict_proba``'s columns.
    """)

    loss = "log_loss"  # not a parameter; scikit-learn's classifier carries the same fixed attribute

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_X_y(self, X, y, reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        try:
            check_classification_targets(y)
        except ValueError as e:  # "Unknown label type: continuous ..."
            raise _named(e, "y") from None
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"y: warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"y: `y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        # bool, as scikit-learn keeps it: its early-stopping split stratifies on exactly this array
        return X, self._label_binarizer.transform(y).astype(bool)

    def _output(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _loss_fn(self):
        return _softmax_cross_entropy if self.out_activation_ == "softmax" else _binary_cross_entropy

    def _score_fn(self):
        return accuracy_score

    def _proba_from_logits(self, z):
        with no_grad():
            if self.out_activation_ == "softmax":
                return F.softmax(Tensor(z)).data
            return F.sigmoid(Tensor(z)).data

    def _predict_from_logits(self, z):
        p = self._proba_from_logits(z)
        return self._label_binarizer.inverse_transform(p.ravel() if self.n_outputs_ == 1 else p)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing from the current weights and optimiser state.

        Only for the stochastic solvers ("sgd", "adam"), as scikit-learn: under "lbfgs" the method
        does not exist (``hasattr(est, "partial_fit")`` is False).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array-like, optional
            Every class label; required on the first call (as scikit-learn's).

        Returns
        -------
        self
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        elif not hasattr(self, "_label_binarizer"):  # classes_ assigned by hand, with the weights
            self._label_binarizer = LabelBinarizer().fit(self.classes_)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """The class of each row: argmax of the softmax, or σ(z) > ½ per logistic unit.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) (or (n_samples, n_labels) for multilabel)
        """
        return self._predict_from_logits(self._logits(X))

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Binary: [1 − σ(z), σ(z)]; multiclass: softmax(z); multilabel: σ(z) per label.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        p = self._proba_from_logits(self._logits(X))
        if self.n_outputs_ == 1:
            p = p.ravel()
            return np.vstack([1 - p, p]).T
        return p

    def predict_log_proba(self, X):
        """log(predict_proba(X)), to the bit, as scikit-learn defines it.

        So both rank the classes alike, ties included (multilabel probabilities that round to 1.0),
        and a probability that rounds to 0 has log −inf, as scikit-learn's.  Its exact value, where
        it matters, is log softmax(z) = z − logsumexp(z) or log σ(z) = −softplus(−z) of the logits.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_classes)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        p = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(p, out=p)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = ("""Multi-layer perceptron regressor trained through the tape; scikit-learn's ``MLPRegressor``.

    ``loss="squared_error"``: identity output, loss ½ · mean of (ŷ − y)² over rows and outputs.
    ``loss="poisson"``: exp output ŷ = e^z, loss half the Poisson deviance (y >= 0).
    One or several outputs.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
        The first positional parameter, as in scikit-learn.
    """ + _PARAMS_DOC.replace("Parameters\n    ----------\n", "", 1))

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, compiled=False,
                 on_divergence="raise"):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
                         max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
                         compiled=compiled, on_divergence=on_divergence)
        self.loss = loss

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_X_y(self, X, y, reset, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(f"y: loss='poisson' expects non-negative targets (counts, rates), got a minimum of "
                             f"{y.min()}")
        return X, y

    def _output(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _loss_fn(self):
        return _half_poisson_deviance if self.out_activation_ == "exp" else _half_squared_error

    def _score_fn(self):
        return r2_score

    def _predict_from_logits(self, z):
        if self.out_activation_ == "exp":
            z = np.exp(z)
        return z.ravel() if z.shape[1] == 1 else z

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current weights and optimiser state.

        Only for the stochastic solvers ("sgd", "adam"); under "lbfgs" the method does not exist.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """ŷ for each row: z^[L] (squared error) or e^{z^[L]} (poisson).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        z = self._logits(X)
        if self.out_activation_ == "exp":
            with np.errstate(over="ignore"):
                z = np.exp(z)
            if not np.isfinite(z).all():
                raise ValueError("X: the prediction e^z overflowed; expected inputs small enough for it to stay "
                                 "finite (scale the inputs)")
        return z.ravel() if z.shape[1] == 1 else z
