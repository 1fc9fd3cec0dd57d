"""scikit-learn estimators trained by the autograd MLP: :class:`MLPClassifier` and :class:`MLPRegressor`.

They take scikit-learn's parameter names and defaults, draw their weights and
epoch shuffles exactly as ``sklearn.neural_network`` does
(:mod:`tinygrad_mlp.sklearn_compat`), and minimise the same objective, so with
the same parameters they follow scikit-learn's trajectory; but every gradient
comes from the tape's backward pass, not from hand-written backprop.

The objective of one mini-batch B (n_B = |B| rows), as scikit-learn's ``_backprop``::

    L_B = (1/n_B) Σ_{i∈B} ℓ(z_i, y_i)  +  (α / (2 n_B)) Σ_l ‖W^[l]‖²_F

with z_i = z^[L] for example i and ℓ

* multiclass (softmax output):  ℓ = logsumexp(z) − yᵀz  (cross-entropy of softmax(z), y one-hot);
* binary / multilabel (one logistic unit per output):  ℓ = Σ_k softplus(z_k) − y_k z_k, the binary
  cross-entropy of σ(z_k), with softplus(z) = log(1 + eᶻ) = logsumexp([0, z]) so it stays finite for
  any |z|;
* regression (identity output):  ℓ = ½ ‖z − y‖².

The per-epoch loss ``loss_curve_`` is Σ_B n_B L_B / n (each L_B taken before its update), as in
scikit-learn.  One wrinkle copied on purpose: for a regressor with d_L > 1 outputs scikit-learn
*reports* ``((y − ŷ)²).mean() / 2``, i.e. the data term divided by d_L, but its gradient
(δ^[L] = ŷ − y) is that of ½ ‖z − y‖² without the 1/d_L.  Training here follows the gradient (so
``coefs_`` match), and ``loss_curve_`` reports the data term divided by d_L (so the curves match).

Only the stochastic solvers exist ("sgd", "adam"); ``early_stopping`` and ``sample_weight`` do not.

Divergence: a batch whose loss is not finite is not applied; training stops with
:class:`~tinygrad_mlp.training.DivergenceError` naming the epoch and the step
(``on_divergence="raise"``) or a :class:`~tinygrad_mlp.training.DivergenceWarning`
(``"warn"``), and ``coefs_`` / ``intercepts_`` hold the last finite weights.
"""
from __future__ import annotations

import copy
import math
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.multiclass import (_check_partial_fit_first_call, check_classification_targets, type_of_target,
                                      unique_labels)
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ..autograd import functional as F
from ..nn.layers import MLP
from ..nn.optim import SGD, Adam
from .sklearn_compat import sklearn_epoch_order, sklearn_init
from ..autograd.tensor import Tensor, _new, no_grad
from .loop import DivergenceError, DivergenceWarning

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names -> ours
_ACTIVATION = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_SOLVERS = ("sgd", "adam")
_SCHEDULES = ("constant", "invscaling", "adaptive")
_ON_DIVERGENCE = ("raise", "warn")
# z[..., None] * [0, 1] = [0, z]: the pairs whose logsumexp is softplus(z), without a concatenate primitive
_ZERO_ONE = np.array([0.0, 1.0])


# ------------------------------------------------------------------------------------- losses
def _softplus(z: Tensor) -> Tensor:
    """softplus(z) = log(1 + eᶻ) = logsumexp([0, z]) elementwise; its derivative is σ(z), exact at z = 0 too."""
    pairs = z.reshape(z.shape + (1,)) * _ZERO_ONE.astype(z.dtype)
    return pairs.logsumexp(axis=-1)


def _softmax_cross_entropy(z: Tensor, y: Tensor) -> Tensor:
    """mean over rows of logsumexp(z) − yᵀz (y one-hot, so Σ_k y_k = 1)."""
    return (z.logsumexp(axis=-1) - (z * y).sum(axis=-1)).mean()


def _binary_cross_entropy(z: Tensor, y: Tensor) -> Tensor:
    """mean over rows of Σ_k softplus(z_k) − y_k z_k = −Σ_k [y_k log σ(z_k) + (1 − y_k) log(1 − σ(z_k))]."""
    return (_softplus(z) - z * y).sum(axis=-1).mean()


def _half_squared_error(z: Tensor, y: Tensor) -> Tensor:
    """mean over rows of ½ ‖z − y‖² (the objective whose gradient scikit-learn's regressor follows)."""
    d = z - y
    return (d * d).sum(axis=-1).mean() * 0.5


class _ScheduledSGD(SGD):
    """SGD with momentum in scikit-learn's form, for a learning rate that changes between epochs.

    u ← μ u − η g, then θ ← θ + u (Nesterov: θ ← θ + μ u − η g).  :class:`SGD`'s v ← μ v + g,
    θ ← θ − η v is the same while η is constant, but rescales all past steps when η changes
    ("invscaling", "adaptive"); here each past step keeps the η it was taken with.
    """

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


# ------------------------------------------------------------------------------- validation
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
            raise ValueError(f"{name}: expected a real number in {lo}{low}, {hi}, got {v!r}")
        return float(v)

    def integer(name, low, allow_inf=False):
        v = getattr(est, name)
        if allow_inf and isinstance(v, float) and v == np.inf:
            return v
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < low:
            raise ValueError(f"{name}: expected an int >= {low}{' or np.inf' if allow_inf else ''}, got {v!r}")
        return int(v)

    def choice(name, options):
        v = getattr(est, name)
        if not isinstance(v, str) or v not in options:
            raise ValueError(f"{name}: expected one of {list(options)}, got {v!r}")
        return v

    def boolean(name):
        v = getattr(est, name)
        if not isinstance(v, (bool, np.bool_)):
            raise ValueError(f"{name}: expected a bool, got {v!r}")
        return bool(v)

    sizes = est.hidden_layer_sizes
    sizes = list(sizes) if hasattr(sizes, "__iter__") and not isinstance(sizes, str) else [sizes]
    for s in sizes:
        if not isinstance(s, numbers.Integral) or isinstance(s, bool) or s <= 0:
            raise ValueError(f"hidden_layer_sizes: expected positive ints (units per hidden layer), got "
                             f"{est.hidden_layer_sizes!r}")
    choice("activation", tuple(_ACTIVATION))
    choice("solver", _SOLVERS)
    choice("learning_rate", _SCHEDULES)
    choice("on_divergence", _ON_DIVERGENCE)
    real("alpha", 0.0)
    real("learning_rate_init", 0.0, low_open=True)
    real("power_t", 0.0)
    integer("max_iter", 1)
    real("tol", 0.0)
    real("momentum", 0.0, 1.0, high_open=True)
    real("beta_1", 0.0, 1.0, high_open=True)
    real("beta_2", 0.0, 1.0, high_open=True)
    real("epsilon", 0.0, low_open=True)
    integer("n_iter_no_change", 1, allow_inf=True)
    for name in ("shuffle", "warm_start", "nesterovs_momentum", "compiled"):
        boolean(name)
    if not (isinstance(est.verbose, numbers.Integral) or isinstance(est.verbose, (bool, np.bool_))):
        raise ValueError(f"verbose: expected a bool or an int, got {est.verbose!r}")
    if est.batch_size != "auto":
        integer("batch_size", 1)
    check_random_state(est.random_state)  # raises ValueError naming what it got
    return [int(s) for s in sizes]


def _named(e: Exception, name: str):
    """scikit-learn's own message, prefixed by the argument it is about ("Found array with 0 sample(s)" names none)."""
    msg = str(e)
    if msg.startswith((f"{name}: ", f"{name} ")):  # "X has 3 features, but ..." names it already
        return e
    return (ValueError if isinstance(e, ValueError) else TypeError)(f"{name}: {msg}")


def _validate_X_y(est, X, y, reset: bool, **kw):
    """validate_data(est, X, y), with every error naming X or y.

    X is checked alone first (shape, dtype, NaN/inf, emptiness), so what the joint check then
    refuses is y, or X against the fitted model (its number of features or their names).
    """
    # scikit-learn's finiteness check sums X first: inf + (−inf) warns before its own error says the same.
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            check_array(X, dtype=(np.float64, np.float32), input_name="X", estimator=est)
    except (ValueError, TypeError) as e:
        raise _named(e, "X") from None
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return validate_data(est, X, y, multi_output=True, dtype=(np.float64, np.float32), reset=reset, **kw)
    except (ValueError, TypeError) as e:
        msg = str(e)
        raise _named(e, "X" if msg.startswith("X ") or "feature names" in msg else "y") from None


# ------------------------------------------------------------------------------------ base
class _BaseMLP(BaseEstimator):
    """Shared by the classifier and the regressor: parameters, the training loop, the forward pass."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, compiled=False, on_divergence="raise"):
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
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.compiled = compiled
        self.on_divergence = on_divergence

    # --- subclass hooks -----------------------------------------------------------------
    def _validate_input(self, X, y, incremental, reset):
        raise NotImplementedError

    def _output(self) -> str:
        raise NotImplementedError

    def _loss_fn(self):
        raise NotImplementedError

    # --- fitting ------------------------------------------------------------------------
    def _fit(self, X, y, incremental):
        hidden_sizes = _check_params(self)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        n_samples, n_features = X.shape
        layer_units = [n_features] + hidden_sizes + [y.shape[1]]
        # As scikit-learn: a fresh RandomState on every call, so an int seed repeats each partial_fit's shuffles.
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(layer_units, X.dtype)
        elif [n_features] + [c.shape[1] for c in self.coefs_] != layer_units:
            raise ValueError(f"hidden_layer_sizes, X, y: warm start or partial_fit expected layer sizes "
                             f"{[n_features] + [c.shape[1] for c in self.coefs_]} from the fitted model, "
                             f"got {layer_units}")
        else:
            self._load_weights()
        model = self._model
        X = np.ascontiguousarray(X, dtype=model.dtype)
        y = np.ascontiguousarray(y, dtype=model.dtype)
        if not incremental or not hasattr(self, "_optimizer"):
            params = model.parameters()
            if self.solver == "sgd":
                # Plain SGD while η is constant: that is the form a compiled replay fast-paths.
                cls = SGD if self.learning_rate == "constant" else _ScheduledSGD
                self._optimizer = cls(params, self.learning_rate_init, momentum=float(self.momentum),
                                      nesterov=bool(self.nesterovs_momentum))
            else:
                self._optimizer = Adam(params, self.learning_rate_init, (self.beta_1, self.beta_2), self.epsilon)
        try:
            # Divergence is reported once, naming the epoch and step (_diverged), not by NumPy's overflow
            # warnings on the way there.
            with np.errstate(over="ignore", invalid="ignore"):
                self._fit_stochastic(X, y, incremental)
        finally:
            self._store_weights()
        return self

    def _initialize(self, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = layer_units[-1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output()
        # Zeros first: sklearn_init overwrites every entry with scikit-learn's draws, in its order.
        self._model = MLP(layer_units, hidden=_ACTIVATION[self.activation],
                          output={"logistic": "sigmoid"}.get(self.out_activation_, self.out_activation_),
                          weight_init="zeros", bias_init="zeros", dtype=dtype)
        sklearn_init(self._model, self._random_state)
        self._store_weights()
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self.best_loss_ = np.inf
        if hasattr(self, "_optimizer"):
            del self._optimizer

    def _store_weights(self):
        """coefs_[l] = W^[l+1]ᵀ, scikit-learn's (fan_in, fan_out) layout; intercepts_[l] = b^[l+1]."""
        self.coefs_ = [layer.W.data.T.copy() for layer in self._model.layers]
        self.intercepts_ = [layer.b.data.copy() for layer in self._model.layers]

    def _load_weights(self):
        # coefs_ may have been set by the user between calls; the tape's tensors follow them.
        for layer, W, b in zip(self._model.layers, self.coefs_, self.intercepts_):
            layer.W.data[...] = np.asarray(W).T
            layer.b.data[...] = b

    def _fit_stochastic(self, X, Y, incremental):
        model, opt = self._model, self._optimizer
        params = model.parameters()
        hidden = [(layer.W, layer.b) for layer in model.layers[:-1]]
        W_L, b_L = model.layers[-1].W, model.layers[-1].b
        Ws = [layer.W for layer in model.layers]
        g = model._g
        loss_of = self._loss_fn()
        alpha = float(self.alpha)
        # Only a multi-output regressor reports its data term scaled (see the module docstring).
        scale = 1.0 / Y.shape[1] if isinstance(self, RegressorMixin) and Y.shape[1] > 1 else 1.0

        def reported(v, weights, n_b):
            if scale == 1.0:
                return v
            r = 0.5 * alpha * sum(float(np.dot(W.ravel(), W.ravel())) for W in weights) / n_b if alpha else 0.0
            return (v - r) * scale + r

        def step_fn(xb, yb):
            """One step: L_B, its backward pass, the optimiser's update; returns L_B (before the update)."""
            opt.zero_grad()
            # asarray: a plain ndarray view (no copy), which is also how a compiled capture expects inputs
            h = _new(np.asarray(xb))
            for W, b in hidden:
                h = g(h @ W.T + b)
            loss = loss_of(h @ W_L.T + b_L, _new(np.asarray(yb)))
            if alpha:
                reg = (Ws[0] * Ws[0]).sum()
                for W in Ws[1:]:
                    reg = reg + (W * W).sum()
                loss = loss + reg * (0.5 * alpha / xb.shape[0])
            return loss

        run = None
        if self.compiled:
            try:
                from ..compiler.compiled import CaptureError as capture_error, compile as compile_step
            except ImportError as e:
                raise ImportError(f"compiled: compiled=True needs tinygrad_mlp.compiled, which failed to import "
                                  f"({e})") from e

            def full_step(xb, yb):
                loss = step_fn(xb, yb)
                loss.backward()
                opt.step()
                return loss

            # X was validated once in fit; captures once per batch shape (the last batch may be smaller)
            run = compile_step(full_step, check_finite=False)
            saved = [p.data.copy() for p in params]
            captured = set()

        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        starts = range(0, n, batch_size)
        idx = np.arange(n)
        rng = self._random_state
        isfinite = math.isfinite
        self.n_iter_ = 0
        for epoch in range(self.max_iter):
            if self.shuffle:
                idx = sklearn_epoch_order(idx, rng)
            at_start = [p.data.copy() for p in params]
            total = 0.0
            bad = None
            for s, start in enumerate(starts):
                rows = idx[start:start + batch_size] if self.shuffle else slice(start, start + batch_size)
                xb, yb = X[rows], Y[rows]
                v = None
                if run is not None:
                    for buf, p in zip(saved, params):
                        np.copyto(buf, p.data)
                    # A new batch shape means a capture, which runs the step eagerly and may fail after the
                    # optimiser moved: keep its state (velocity, moments, t) to undo that.
                    opt_state = None
                    if xb.shape not in captured:
                        captured.add(xb.shape)
                        opt_state = {k: copy.deepcopy(v) for k, v in vars(opt).items() if k != "params"}
                    try:
                        out = run(xb, yb)
                    except capture_error as e:
                        warnings.warn(f"compiled: this step could not be captured, training continues eagerly ({e})",
                                      RuntimeWarning, stacklevel=3)
                        for buf, p in zip(saved, params):
                            p.data[...] = buf
                        if opt_state is not None:
                            vars(opt).update(opt_state)
                        run = None
                    else:
                        v = float(out.data) if isinstance(out, Tensor) else float(out)
                        if not isfinite(v):  # the replay has already applied this step: undo it
                            for buf, p in zip(saved, params):
                                p.data[...] = buf
                            bad = (s, v)
                            break
                        v = reported(v, saved[0::2], xb.shape[0])
                if v is None:
                    loss = step_fn(xb, yb)
                    v = loss.data.item()
                    if not isfinite(v):  # checked before backward, so the update is never applied
                        bad = (s, v)
                        break
                    v = reported(v, [W.data for W in Ws], xb.shape[0])
                    loss.backward()
                    opt.step()
                total += v * xb.shape[0]
            weights_ok = bad is None and all(np.isfinite(p.data).all() for p in params)
            if not weights_ok:
                opt.zero_grad()
                self._diverged(epoch, bad, len(starts), params, at_start)
                return
            self.n_iter_ += 1
            self.loss_ = total / n
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
            # scikit-learn's stopping rule: no improvement by tol for more than n_iter_no_change epochs.
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                opt.lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
            if self._no_improvement_count > self.n_iter_no_change:
                msg = ("Training loss did not improve more than tol=%f for %d consecutive epochs."
                       % (self.tol, self.n_iter_no_change))
                if self.solver == "sgd" and self.learning_rate == "adaptive" and opt.lr > 1e-6:
                    opt.lr /= 5.0
                    if self.verbose:
                        print(msg + " Setting learning rate to %f" % opt.lr)
                    self._no_improvement_count = 0
                else:
                    if self.verbose:
                        print(msg + " Stopping.")
                    break
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the optimization "
                              "hasn't converged yet." % self.max_iter, ConvergenceWarning)

    def _diverged(self, epoch, bad, n_steps, params, at_start):
        if bad is not None:
            where = f"epoch {epoch + 1}, step {bad[0] + 1} of {n_steps}: the loss is {bad[1]}"
            step = bad[0] + 1
            kept = "the weights stay at their last finite values (that step's update was not applied)"
        else:
            where = f"epoch {epoch + 1}: the weights became non-finite while the loss stayed finite"
            step = n_steps
            for p, a in zip(params, at_start):
                p.data[...] = a
            kept = f"the weights were restored to their values at the start of epoch {epoch + 1}"
        msg = (f"training diverged at {where}; {kept}. Try a smaller learning_rate_init, a smaller "
               f"batch-size-to-rate ratio, or scaled inputs.")
        if self.on_divergence == "raise":
            raise DivergenceError(msg, epoch + 1, step)
        warnings.warn(msg, DivergenceWarning, stacklevel=4)

    # --- prediction ---------------------------------------------------------------------
    def _logits(self, X) -> np.ndarray:
        """z^[L] for each row of X, through the fitted coefs_ and intercepts_ (nothing recorded)."""
        check_is_fitted(self)
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        except (ValueError, TypeError) as e:
            raise _named(e, "X") from None
        g = F.ACTIVATIONS[_ACTIVATION[self.activation]]
        # Finite but huge X (1e308) can overflow W h + b: an error naming X, not a warning and inf/NaN.
        with no_grad(), np.errstate(over="ignore", invalid="ignore"):
            h = Tensor(X)
            last = len(self.coefs_) - 1
            for l, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
                h = h @ np.asarray(W, dtype=X.dtype) + np.asarray(b, dtype=X.dtype)
                if l != last:
                    h = g(h)
        if not np.isfinite(h.data).all():
            raise ValueError("X: the forward pass overflowed to inf or NaN; expected inputs small enough for "
                             "W h + b to stay finite (scale the inputs)")
        return h.data

    def partial_fit(self, X, y):
        """One epoch over (X, y), continuing from the current weights and optimiser state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True)

    def fit(self, X, y):
        """Train on (X, y) for up to ``max_iter`` epochs (from scratch unless ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classifier) or real targets (regressor).

        Returns
        -------
        self

        Raises
        ------
        DivergenceError
            When a batch's loss is not finite and ``on_divergence="raise"``.
        """
        return self._fit(X, y, incremental=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


_PARAMS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        Units of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        g of the hidden layers.
    solver : {"sgd", "adam"}, default="adam"
        :class:`~tinygrad_mlp.optim.SGD` (with ``momentum``, ``nesterovs_momentum``) or
        :class:`~tinygrad_mlp.optim.Adam` (``beta_1``, ``beta_2``, ``epsilon``).
    alpha : float, default=1e-4
        L2 penalty: adds α/(2 n_B) Σ‖W^[l]‖² to each batch's loss (biases are not penalised).
    batch_size : int or "auto", default="auto"
        Rows per step; 1 is per-example SGD, "auto" is min(200, n_samples).
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Step-size schedule of the "sgd" solver, as scikit-learn's.
    learning_rate_init : float, default=0.001
        η.
    power_t : float, default=0.5
        Exponent of "invscaling": η_t = η / (t + 1)^power_t, t the samples seen.
    max_iter : int, default=200
        Epochs.
    shuffle : bool, default=True
        Draw a new example order every epoch (scikit-learn's draws).
    random_state : None, int or RandomState, default=None
        Seeds the weights and the shuffles, in scikit-learn's order.
    tol : float, default=1e-4
    n_iter_no_change : int, default=10
        Stop when the epoch loss has not improved by ``tol`` for more than this many epochs.
    verbose : bool, default=False
        Print the loss of every epoch.
    warm_start : bool, default=False
        ``fit`` continues from the current weights (with a fresh optimiser).
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
    compiled : bool, default=False
        Replay each training step with :func:`tinygrad_mlp.compiled.compile` (same numbers, less overhead).
    on_divergence : {"raise", "warn"}, default="raise"
        What a non-finite training loss does (see the module docstring).

    Attributes
    ----------
    coefs_ : list of ndarray
        coefs_[l] has shape (fan_in, fan_out): W^[l+1]ᵀ in the practical's notation.
    intercepts_ : list of ndarray
        b^[l+1].
    loss_curve_ : list of float
        The loss of every epoch (regularisation included), as scikit-learn's.
    n_iter_ : int
        Epochs run by the last ``fit`` (or 1 after ``partial_fit``).
    t_ : int
        Training samples seen, over all calls.
    loss_ : float
        The last epoch's loss.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X had string column names.
    n_outputs_, n_layers_, out_activation_, best_loss_
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
        return X, self._label_binarizer.transform(y).astype(X.dtype)

    def _output(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _loss_fn(self):
        return _softmax_cross_entropy if self.out_activation_ == "softmax" else _binary_cross_entropy

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), continuing from the current weights and optimiser state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
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
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """The class of each row: argmax of the softmax, or σ(z) > ½ per logistic unit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) (or (n_samples, n_labels) for multilabel)
        """
        p = self._proba_raw(X)
        return self._label_binarizer.inverse_transform(p.ravel() if self.n_outputs_ == 1 else p)

    def _proba_raw(self, X):
        z = self._logits(X)
        if self.out_activation_ == "softmax":
            with no_grad():
                return F.softmax(Tensor(z)).data
        with no_grad():
            return F.sigmoid(Tensor(z)).data

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Binary: [1 − σ(z), σ(z)]; multiclass: softmax(z); multilabel: σ(z) per label.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        p = self._proba_raw(X)
        if self.n_outputs_ == 1:
            p = p.ravel()
            return np.vstack([1 - p, p]).T
        return p

    def predict_log_proba(self, X):
        """log of :meth:`predict_proba`, computed from z without rounding small probabilities to 0.

        log softmax(z) = z − logsumexp(z); log σ(z) = −softplus(−z); log(1 − σ(z)) = −softplus(z).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        z = self._logits(X)
        if self.out_activation_ == "softmax":
            with no_grad():
                return F.log_softmax(Tensor(z)).data
        if self.n_outputs_ == 1:
            z = z.ravel()
            return np.vstack([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)]).T
        return -np.logaddexp(0.0, -z)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = ("""Multi-layer perceptron regressor trained through the tape; scikit-learn's ``MLPRegressor``.

    Identity output, loss ½ · mean of (ŷ − y)² over rows and outputs; one or several outputs.
    """ + _PARAMS_DOC)

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_X_y(self, X, y, reset, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _output(self):
        return "identity"

    def _loss_fn(self):
        return _half_squared_error

    def predict(self, X):
        """ŷ = z^[L] for each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        z = self._logits(X)
        return z.ravel() if z.shape[1] == 1 else z
