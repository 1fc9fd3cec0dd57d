"""The one training loop: epochs, shuffles, divergence, learning curves, progress, timing.

Everything that trains in this project goes through :func:`run_epochs`: :func:`train`, the
scikit-learn estimators, and every row of the digits benchmark (the hand-written NumPy and
PyTorch rows bring their own inner loop, so that they stay independent baselines, and still get
the same timer, curve and progress line).  What changes from one caller to the next is the part
inside an epoch, an object with ``run(idx)``: :class:`Steps` is the one for an :class:`MLP`.

One step on a batch B of examples (B = one example for per-example SGD)::

    forward   h^[0] = x,  z^[l] = W^[l] h^[l−1] + b^[l],  h^[l] = g(z^[l])   (MLP.forward_logits)
    loss      L_B = Σ_{i∈B} L(x_i, y_i)            (reduction="sum", the practical's batch loss)
              L_B = (1/|B|) Σ_{i∈B} L(x_i, y_i)    (reduction="mean", scikit-learn's)
    update    θ ← θ − η ∂L_B/∂θ                     (or whatever ``optimizer.step()`` does)

With one example per batch the two reductions are the same step.  An epoch
visits every example once, in an order drawn afresh each epoch (a seeded
``numpy.random.Generator``, or any order the caller supplies, e.g. the one
scikit-learn would draw: :func:`tinygrad_mlp.training.sklearn_compat.sklearn_epoch_order`).
A step may be eager (the tape) or a replay captured by :func:`tinygrad_mlp.compiler.compile`
(``compiled="exact"``, bit-identical weights, or ``"fused"``, equal to rounding).

The learning curve ``History.loss`` holds, per epoch, the mean per-example loss
of the steps taken during that epoch, each measured *before* its update; this
is what scikit-learn's ``loss_curve_`` records, so the two curves compare
directly.

Divergence: the loss of every step is checked.  A loss that is not finite stops training with
:class:`DivergenceError` (a ``ValueError``, as scikit-learn's "Solver produced non-finite
parameter weights" is) naming the epoch and the step (``on_divergence="raise"``, the default),
or with a :class:`DivergenceWarning` (``on_divergence="warn"``).  Either way the weights stay at
their last finite values: those after the last step whose update left every weight finite.
An eager step checks its loss before its update, so that update is never applied; where the
update already happened (a compiled replay applies it in the same call), or where an earlier
update overflowed the weights while its loss was still finite, the loop goes back to the start
of the epoch (weights and optimiser state, kept once per epoch) and replays the epoch's steps
eagerly, checking the weights after each, up to the last finite one.  Nothing is copied per step
on the way; the replay costs time only when training has diverged.

Public API
----------
:func:`train` (the loop for an MLP), :func:`run_epochs` (the loop itself), :class:`Steps` (an
MLP's steps, eager or compiled), :class:`History` (what they return),
:func:`predict` / :func:`accuracy` (argmax of z^[L], no tape),
:class:`DivergenceError`, :class:`DivergenceWarning`, :func:`progress_bar`.
"""
from __future__ import annotations

import copy
import math
import numbers
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..autograd import functional as F
from ..nn.layers import MLP
from ..nn.optim import SGD
from ..autograd.tensor import Tensor, _new, no_grad

from .progress import LineProgress, progress_bar

__all__ = ["train", "run_epochs", "Steps", "History", "predict", "accuracy", "DivergenceError",
           "DivergenceWarning", "progress_bar", "ON_DIVERGENCE", "COMPILED"]

ON_DIVERGENCE = ("raise", "warn")
COMPILED = (None, "exact", "fused", "native")


class DivergenceError(ValueError, FloatingPointError):
    """The training loss (or the weights) stopped being finite.  ``epoch`` and ``step`` are 1-based.

    A ``ValueError``, as scikit-learn's "Solver produced non-finite parameter weights" is, so code
    written for scikit-learn's estimators catches it; still a ``FloatingPointError`` too.
    """

    def __init__(self, message: str, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step


class DivergenceWarning(RuntimeWarning):
    """Training stopped early because the loss stopped being finite (``on_divergence="warn"``)."""


@dataclass
class History:
    """What :func:`train` measured.

    Attributes
    ----------
    loss : list of float
        Per epoch, the mean per-example training loss over the epoch's steps
        (each taken before its update), as scikit-learn's ``loss_curve_``.
    val_accuracy : list of float
        Per epoch, the accuracy on ``(X_val, y_val)`` after the epoch (empty without them).
    epochs : int
        Epochs completed (their losses are in ``loss``).
    steps : int
        Parameter updates applied.
    seconds : float
        Wall time of the training steps alone: evaluation and progress
        reporting are left out, so it compares with another library's ``fit``.
    cpu_seconds : float
        This process's CPU time over the same stretches (steadier than wall
        time on a busy machine; counts every thread of the process).
    diverged : bool
        True when training stopped on a non-finite loss (``on_divergence="warn"``).
    message : str
        Why training stopped early, or "".
    """

    loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    epochs: int = 0
    steps: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    diverged: bool = False
    message: str = ""

    @property
    def us_per_step(self) -> float:
        """Microseconds per parameter update (nan before the first one)."""
        return self.seconds / self.steps * 1e6 if self.steps else float("nan")


# ----------------------------------------------------------------------------- evaluation
def predict(model: MLP, X) -> np.ndarray:
    """Class labels argmax_k z^[L]_k for each row of ``X`` (batched, nothing recorded on the tape)."""
    with no_grad():
        z = model.logits(X).data
    return z.argmax(axis=-1)


def accuracy(model: MLP, X, y) -> float:
    """The fraction of rows of ``X`` whose predicted class equals ``y``."""
    y = np.asarray(y)
    pred = predict(model, X)
    if y.shape != pred.shape:
        raise ValueError(f"y: expected {pred.shape[0]} labels (one per row of X), got shape {y.shape}")
    return float(np.mean(pred == y))


# ----------------------------------------------------------------------------- validation
def _check_int(value, name: str, low: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return int(value)


def _inputs(model: MLP, X, name: str = "X") -> np.ndarray:
    try:
        X = np.asarray(X.data if isinstance(X, Tensor) else X, dtype=model.dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected a numeric (n, {model.sizes[0]}) array, "
                        f"got {type(X).__name__} ({e})") from None
    if X.ndim != 2 or X.shape[1] != model.sizes[0] or X.shape[0] == 0:
        raise ValueError(f"{name}: expected shape (n, {model.sizes[0]}) with n >= 1, got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    if model.input_scale is not None:  # a loaded model scales raw inputs as MLP.logits does
        X = X * model.input_scale
    return np.ascontiguousarray(X)


def _targets(model: MLP, y, n: int, loss: str, name: str = "y"):
    """Integer labels (an int ndarray) or float targets (an (n, d_L) ndarray)."""
    d_out = model.sizes[-1]
    arr = np.asarray(y.data if isinstance(y, Tensor) else y)
    if arr.shape[:1] != (n,):
        raise ValueError(f"{name}: expected {n} targets (one per row of X), got shape {arr.shape}")
    if arr.dtype.kind == "b":  # True/False are not class labels (cross_entropy refuses them too)
        raise ValueError(f"{name}: expected integer class labels or float targets, got dtype bool")
    if arr.dtype.kind in "iu" and arr.ndim == 1 and loss == "cross_entropy":
        if arr.min() < 0 or arr.max() >= d_out:
            raise ValueError(f"{name}: class labels must lie in [0, {d_out}), got values from {arr.min()} to {arr.max()}")
        return arr.astype(np.int64)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numeric targets, got dtype {arr.dtype}")
    if arr.ndim == 1 and d_out == 1:
        arr = arr[:, None]
    if arr.shape != (n, d_out):
        raise ValueError(f"{name}: expected integer class labels of shape ({n},) or targets of shape ({n}, {d_out}), "
                         f"got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=model.dtype)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    return arr


def _order_fn(order, shuffle: bool, seed, n: int) -> Callable[[int], np.ndarray]:
    if order is not None:
        if not callable(order):
            raise TypeError(f"order: expected a callable epoch -> index array, got {type(order).__name__}")

        def checked(epoch: int) -> np.ndarray:
            idx = np.asarray(order(epoch))
            if idx.shape != (n,) or idx.dtype.kind not in "iu":
                raise ValueError(f"order: epoch {epoch + 1}: expected {n} integer indices, got shape {idx.shape} "
                                 f"dtype {idx.dtype}")
            return idx

        return checked
    if not shuffle:
        seq = np.arange(n)
        return lambda epoch: seq
    if isinstance(seed, np.random.Generator):
        rng = seed
    elif seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        rng = np.random.default_rng(seed)
    else:
        raise ValueError(f"seed: expected None, a non-negative int or a numpy.random.Generator, got {seed!r}")
    return lambda epoch: rng.permutation(n)


# ------------------------------------------------------------------------------ the loop
def _weights_finite(params) -> bool:
    return all(np.isfinite(p.data).all() for p in params)


def _optimizer_state(optimizer) -> dict:
    """A deep copy of everything an optimiser keeps besides its parameters (velocity, moments, t, lr)."""
    return {k: copy.deepcopy(v) for k, v in vars(optimizer).items() if k != "params"}


def run_epochs(epoch, *, epochs: int, order: Callable[[int], np.ndarray], history: History | None = None,
               evaluate: Callable[[], float] | None = None, eval_label: str = "val acc", progress: bool = False,
               desc: str = "training", on_divergence: str = "raise", hint: str = "",
               callback: Callable[[int, History], Any] | None = None) -> History:
    """Run ``epochs`` epochs of ``epoch`` and record them: the loop every trainer here shares.

    Parameters
    ----------
    epoch : object
        ``epoch.run(idx) -> (total, steps, bad)`` runs one epoch over the example indices ``idx``
        (timed): ``total`` is the sum over examples of the losses measured before each update,
        ``steps`` the updates applied, ``bad`` None or ``(s, value)`` when step ``s`` (0-based) gave
        a non-finite loss (the epoch stops there).  Optional: ``epoch.begin()`` before each epoch
        (not timed), ``epoch.weights_finite()`` after it, and ``epoch.recover(idx, steps) ->
        (kept, str)`` on divergence, which puts the weights back to their last finite values and
        says what it kept.  :class:`Steps` has them all.
    epochs : int
        The most epochs to run (``callback`` may stop earlier).
    order : callable
        ``order(e) -> idx`` for the 0-based epoch e: the examples in the order to visit.
    history : History, optional
        Appended to (a warm start); a fresh one by default.
    evaluate : callable, optional
        ``evaluate() -> accuracy`` after every epoch (not timed); recorded in ``val_accuracy``.
    eval_label : str
        How the progress line names that accuracy ("val acc", or "test acc" for a test set).
    progress, desc : bool, str
        A progress report per epoch on stderr (see :mod:`tinygrad_mlp.training.progress`).
    on_divergence : {"raise", "warn"}
    hint : str
        What the divergence message suggests trying.
    callback : callable, optional
        ``callback(epoch, history)`` after every epoch (1-based; not timed).  Returning True stops
        training after that epoch.
    """
    hist = history if history is not None else History()
    begin = getattr(epoch, "begin", None)
    finite = getattr(epoch, "weights_finite", None)
    recover = getattr(epoch, "recover", None)
    run = epoch.run
    bar = progress_bar(epochs, desc) if progress else None
    try:
        for e in range(epochs):
            idx = order(e)
            if begin is not None:
                begin()
            t0, c0 = time.perf_counter(), time.process_time()
            total, steps, bad = run(idx)
            hist.seconds += time.perf_counter() - t0
            hist.cpu_seconds += time.process_time() - c0
            hist.steps += steps
            if bad is None and (finite is None or finite()):
                hist.epochs += 1
                hist.loss.append(total / len(idx))
                if evaluate is not None:
                    hist.val_accuracy.append(evaluate())
                if bar is not None:
                    tail = f" {eval_label} {hist.val_accuracy[-1]:.4f}" if evaluate is not None else ""
                    bar.set_postfix_str(f"loss {hist.loss[-1]:.4f}{tail}", refresh=False)
                    bar.update(1)
                if callback is not None and callback(e + 1, hist) is True:
                    break
                continue
            # Divergence: a non-finite loss at step bad[0], or weights that overflowed under finite losses.
            n_steps = getattr(epoch, "steps_per_epoch", lambda n: n)(len(idx))
            if bad is not None:
                where = f"epoch {e + 1}, step {bad[0] + 1} of {n_steps}: the loss is {bad[1]}"
                step_no = bad[0] + 1
            else:
                where = f"epoch {e + 1}: the weights became non-finite while the loss stayed finite"
                step_no = n_steps
            kept_steps, kept = steps, "the weights stay as they are"
            if recover is not None:
                kept_steps, kept = recover(idx, steps)
            hist.steps += kept_steps - steps
            msg = f"training diverged at {where}; {kept}." + (f" {hint}" if hint else "")
            hist.diverged, hist.message = True, msg
            if on_divergence == "raise":
                raise DivergenceError(msg, e + 1, step_no)
            warnings.warn(msg, DivergenceWarning, stacklevel=3)
            break
    finally:
        if bar is not None:
            bar.close()
    return hist


class _Compiled:
    """A step replayed by :func:`tinygrad_mlp.compiler.compile`, falling back to eager if it cannot be captured.

    A capture is itself an eager step, whose effects stand even when it then fails: the weights and
    the optimiser state are kept before each new capture, to undo it before going on eagerly.
    """

    def __init__(self, fn, eager, params, optimizer, fused: bool, backend: str = "numpy") -> None:
        try:
            from ..compiler import CaptureError, compile as compile_step
        except ImportError as e:
            raise ImportError(f"compiled: needs tinygrad_mlp.compiler, which failed to import ({e})") from e
        self.error = CaptureError
        # the data was checked once, up front
        self.replay = compile_step(fn, check_finite=False, fused=fused, backend=backend)
        self.eager, self.params, self.optimizer = eager, params, optimizer
        self.shapes: set = set()
        self.call = self.replay

    def __call__(self, x, t):
        """The first call of each input shape captures; later ones replay (``self.call``, the fast path)."""
        key = (x.shape, t.shape)
        if key in self.shapes:
            return self.call(x, t)
        self.shapes.add(key)
        saved = [p.data.copy() for p in self.params]
        state = _optimizer_state(self.optimizer)
        try:
            return self.call(x, t)
        except self.error as e:
            warnings.warn(f"compiled: this step could not be captured, training continues eagerly ({e})",
                          RuntimeWarning, stacklevel=2)
            for p, s in zip(self.params, saved):
                p.data[...] = s
            vars(self.optimizer).update(state)
            self.call = self.eager
            return self.eager(x, t)


class Steps:
    """An MLP's training steps over one data set: what :func:`run_epochs` runs inside an epoch.

    Parameters
    ----------
    model : MLP
    optimizer : object with ``zero_grad()`` and ``step()``
    loss : callable
        ``loss(z, t) -> Tensor``: the batch loss L_B from the logits z^[L] (a Tensor) and the targets
        ``t`` (a row or rows of ``Y``, as stored).
    X : ndarray, shape (n, d₀)
        Checked inputs (finite, the model's dtype, C-contiguous).
    Y : ndarray
        Targets, one per row of X, as ``loss`` takes them.  A compiled step freezes Python ints, so
        give it float rows (one-hot for class labels).
    batch_size : int
        1: per-example steps on rows; more: on slices of the epoch's order (the last may be smaller).
    summed : bool
        True when L_B is a sum over the batch (recorded as it is), False for a mean (times |B|).
    compiled : None, "exact" or "fused"
        Replay each step through :func:`tinygrad_mlp.compiler.compile` (see :data:`COMPILED`).
    """

    def __init__(self, model: MLP, optimizer, loss: Callable, X: np.ndarray, Y, *, batch_size: int = 1,
                 summed: bool = False, compiled: str | None = None) -> None:
        if compiled not in COMPILED:
            raise ValueError(f"compiled: expected one of {COMPILED}, got {compiled!r}")
        self.model, self.optimizer, self.loss = model, optimizer, loss
        self.X, self.Y, self.batch_size, self.summed, self.compiled = X, Y, batch_size, summed, compiled
        self.params = model.parameters()
        forward, zero_grad, opt_step = model.forward_logits, optimizer.zero_grad, optimizer.step
        isfinite = math.isfinite

        def eager(x: Tensor, t):
            """One eager step; the update is applied only when L_B is finite."""
            zero_grad()
            l = loss(forward(x), t)
            v = l.data.item()
            if isfinite(v):
                l.backward()
                opt_step()
            return v

        self.eager = eager
        if compiled is None:
            self.step, self.wrap = eager, _new
        else:
            def full(x, t):
                # optimizer.step looked up at each call, not bound once: a capture must see the call
                optimizer.zero_grad()
                # asarray: during capture x is a probe array; a plain view of it keeps the probe out
                # of the arithmetic (only converting x itself to a Python value is refused)
                l = loss(model.forward_logits(_new(np.asarray(x))), t)
                l.backward()
                optimizer.step()
                return l

            self.step = _Compiled(full, lambda x, t: eager(_new(x), t), self.params, optimizer,
                                  fused=compiled == "fused", backend="native" if compiled == "native" else "numpy")
            self.wrap = None
        # Per-example steps spend microseconds each: rows are split (and wrapped for the tape) once.
        if batch_size == 1:
            self.rows = [_new(r) for r in X] if compiled is None else list(X)
            self.targets = Y.tolist() if (Y.ndim == 1 and Y.dtype.kind in "iu") else list(Y)
        self._start = None

    def steps_per_epoch(self, n: int) -> int:
        return -(-n // self.batch_size)

    def begin(self) -> None:
        """Keep the weights and optimiser state at the start of the epoch (for :meth:`recover`)."""
        self._start = ([p.data.copy() for p in self.params], _optimizer_state(self.optimizer))

    def weights_finite(self) -> bool:
        return _weights_finite(self.params)

    def run(self, idx: np.ndarray):
        """One epoch over ``idx``: ``(Σ losses, steps applied, None or (step, non-finite loss))``."""
        isfinite = math.isfinite
        total = 0.0
        if self.batch_size == 1 and self.compiled is None:
            # The eager step, inlined: per-example steps are the practical's, and a call costs here.
            rows, targets, loss = self.rows, self.targets, self.loss
            forward, zero_grad, opt_step = self.model.forward_logits, self.optimizer.zero_grad, self.optimizer.step
            for s, i in enumerate(idx.tolist()):
                zero_grad()
                l = loss(forward(rows[i]), targets[i])
                v = l.data.item()
                if not isfinite(v):  # checked before the backward: this update is never applied
                    return total, s, (s, v)
                total += v
                l.backward()
                opt_step()
            return total, len(idx), None
        if self.batch_size == 1:
            step, rows, targets = self.step, self.rows, self.targets
            start = 0
            if isinstance(step, _Compiled) and self.Y.ndim == 2 and len(idx):
                if not step.shapes:  # the first row captures, through the wrapper (which may fall back)
                    v = step(rows[idx[0]], targets[idx[0]])
                    if not isfinite(v):
                        return total, 0, (0, v)
                    total, start = v, 1
                epoch = getattr(step.call, "epoch", None)
                if epoch is not None:  # the native kernel: the rest of the epoch in one call
                    t = epoch(self.X, self.Y, idx[start:])
                    if isfinite(t):
                        return total + t, len(idx), None
                    # Diverged somewhere in this epoch: run it again step by step from its start, to stop
                    # at the step where it happened, as every other path does.
                    self._rewind()
                    total, start = 0.0, 0
            if isinstance(step, _Compiled) and step.shapes:
                # Every row has one shape, captured already: call the replay itself, no wrapper per step.
                step = step.call
            for s, i in enumerate(idx[start:].tolist(), start):
                v = step(rows[i], targets[i])
                if not isfinite(v):
                    return total, s, (s, v)
                total += v
            return total, len(idx), None
        step, wrap, X, Y, bs, summed = self.step, self.wrap, self.X, self.Y, self.batch_size, self.summed
        for s, start in enumerate(range(0, len(idx), bs)):
            chunk = idx[start:start + bs]
            x = X[chunk]
            v = step(wrap(x) if wrap is not None else x, Y[chunk])
            if not isfinite(v):
                return total, s, (s, v)
            total += v if summed else v * len(chunk)
        return total, self.steps_per_epoch(len(idx)), None

    def _rewind(self) -> None:
        """The weights and optimiser state back to the start of the epoch (kept by :meth:`begin`)."""
        weights, state = self._start
        for p, w in zip(self.params, weights):
            p.data[...] = w
        vars(self.optimizer).update(copy.deepcopy(state))

    def recover(self, idx: np.ndarray, steps: int) -> tuple[int, str]:
        """Put back the last finite weights after a divergence; return (steps kept, what was kept).

        An eager run whose weights are all finite is there already (the failing update was never
        applied).  Otherwise the epoch restarts from its first weights and optimiser state, and its
        first ``steps`` steps are replayed eagerly, each checked, up to the last one whose update
        left every weight finite.
        """
        self.optimizer.zero_grad()
        if self.compiled is None and self.weights_finite():
            return steps, "the weights stay at their last finite values (that step's update was not applied)"
        self._rewind()
        bs = self.batch_size
        kept = 0
        for s in range(steps):
            chunk = idx[s * bs:(s + 1) * bs]
            before = ([p.data.copy() for p in self.params], _optimizer_state(self.optimizer))
            v = self.eager(_new(self.X[chunk] if bs > 1 else self.X[chunk[0]]),
                           self.Y[chunk] if bs > 1 else self.targets[chunk[0]])
            if not math.isfinite(v) or not self.weights_finite():
                for p, w in zip(self.params, before[0]):
                    p.data[...] = w
                vars(self.optimizer).update(before[1])
                break
            kept += 1
        self.optimizer.zero_grad()
        if kept == 0:
            return 0, ("the weights stay at their last finite values, those at the start of this epoch "
                       "(its first update overflowed them)")
        return kept, (f"the weights stay at their last finite values, those after step {kept} of this epoch "
                      f"(the update of step {kept + 1} overflowed them)")


# ---------------------------------------------------------------------------------- train
def train(model: MLP, X, y, *, epochs: int, lr: float | None = None, optimizer=None, batch_size: int = 1,
          loss: str = "cross_entropy", reduction: str = "mean", shuffle: bool = True, seed=None,
          order: Callable[[int], Any] | None = None, X_val=None, y_val=None, on_divergence: str = "raise",
          progress: bool = False, desc: str = "tinygrad_mlp", val_label: str = "val acc",
          compiled: str | None = None, callback: Callable[[int, History], Any] | None = None) -> History:
    """Train ``model`` in place with (mini-batch) SGD and return its :class:`History`.

    Parameters
    ----------
    model : MLP
        Its weights are updated in place.
    X : array_like, shape (n, d₀)
        Inputs, one example per row.
    y : array_like
        Integer class labels, shape (n,), for ``loss="cross_entropy"``; or
        targets of shape (n, d_L) (one-hot, or real values for squared error).
    epochs : int
        Passes over the data (0 trains nothing).
    lr : float, optional
        η for a plain :class:`~tinygrad_mlp.nn.optim.SGD`; give either ``lr`` or ``optimizer``.
    optimizer : object with ``zero_grad()`` and ``step()``, optional
        Built over ``model.parameters()``; used instead of ``lr``.
    batch_size : int
        Examples per step; 1 is per-example SGD, the practical's.  The last
        batch of an epoch may be smaller.
    loss : {"cross_entropy", "squared_error"}
        Cross-entropy is taken on softmax(z^[L]) (the model's output must be
        softmax); squared error on h^[L].
    reduction : {"mean", "sum"}
        How a batch's per-example losses combine (see the module docstring).
    shuffle : bool
        Draw a new order each epoch; ``False`` visits the rows in order.
    seed : int, numpy.random.Generator or None
        Seeds the shuffles, so a run repeats exactly.
    order : callable, optional
        ``order(epoch) -> indices`` (epoch 0-based) overrides ``shuffle``/``seed``,
        e.g. to replay scikit-learn's shuffles.
    X_val, y_val : array_like, optional
        Integer-labelled data whose accuracy is recorded after every epoch.
    on_divergence : {"raise", "warn"}
        What a non-finite loss does (see the module docstring).
    progress : bool
        A progress report per epoch on stderr (a tqdm bar on a terminal, else one line per epoch).
    desc : str
        The progress report's label.
    val_label : str
        How the progress report names the accuracy on ``(X_val, y_val)`` ("test acc" for a test set).
    compiled : {None, "exact", "fused", "native"}
        Replay every step through :func:`tinygrad_mlp.compiler.compile`: "exact" gives weights
        bit-identical to eager training, "fused" equal to rounding, each with less overhead per step.
    callback : callable, optional
        ``callback(epoch, history)`` after every epoch (1-based epoch; not timed); returning True
        stops training.

    Returns
    -------
    History

    Raises
    ------
    DivergenceError
        When the loss is not finite and ``on_divergence="raise"`` (a ValueError).
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a tinygrad_mlp.nn.MLP, got {type(model).__name__}")
    epochs = _check_int(epochs, "epochs", 0)
    batch_size = _check_int(batch_size, "batch_size", 1)
    if loss not in F.LOSSES:
        raise ValueError(f"loss: expected one of {sorted(F.LOSSES)}, got {loss!r}")
    if loss == "cross_entropy" and model.output != "softmax":
        raise ValueError(f"loss: cross_entropy needs a softmax output, this model's output is {model.output!r}")
    if reduction not in F.REDUCTIONS:
        raise ValueError(f"reduction: expected one of {F.REDUCTIONS}, got {reduction!r}")
    if on_divergence not in ON_DIVERGENCE:
        raise ValueError(f"on_divergence: expected one of {ON_DIVERGENCE}, got {on_divergence!r}")
    if compiled not in COMPILED:
        raise ValueError(f"compiled: expected one of {COMPILED}, got {compiled!r}")
    if (lr is None) == (optimizer is None):
        raise ValueError("lr, optimizer: expected exactly one of them, got "
                         + ("neither" if lr is None else "both"))
    if optimizer is None:
        optimizer = SGD(model.parameters(), lr)
    elif not (callable(getattr(optimizer, "step", None)) and callable(getattr(optimizer, "zero_grad", None))):
        raise TypeError(f"optimizer: expected an object with step() and zero_grad(), got {type(optimizer).__name__}")
    X = _inputs(model, X)
    n = X.shape[0]
    y = _targets(model, y, n, loss)
    evaluate = None
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val, y_val: expected both or neither")
    if X_val is not None:
        Xv = _inputs(model, X_val, "X_val")
        yv = np.asarray(y_val)
        if yv.shape != (Xv.shape[0],) or yv.dtype.kind not in "iu":
            raise ValueError(f"y_val: expected {Xv.shape[0]} integer labels, got shape {yv.shape} dtype {yv.dtype}")
        if yv.min() < 0 or yv.max() >= model.sizes[-1]:  # a label no output can predict: accuracy would lie
            raise ValueError(f"y_val: class labels must lie in [0, {model.sizes[-1]}), got values from "
                             f"{yv.min()} to {yv.max()}")

        def evaluate():
            return accuracy(model, Xv, yv)
    next_order = _order_fn(order, shuffle, seed, n)

    if compiled is not None and y.dtype.kind == "i":  # a replay freezes Python ints: labels travel one-hot
        y = np.eye(model.sizes[-1], dtype=model.dtype)[y]
    if loss == "cross_entropy":
        def loss_of(z, t):
            return F.cross_entropy(z, t, reduction)
    else:
        g_out = F.OUTPUTS[model.output]

        def loss_of(z, t):
            return F.squared_error(g_out(z), t, reduction)
    steps = Steps(model, optimizer, loss_of, X, y, batch_size=batch_size, summed=reduction == "sum",
                  compiled=compiled)
    # A diverging run overflows on its way to a non-finite loss; the DivergenceError (or warning)
    # names the epoch and the step, so NumPy's overflow warnings on the way would only repeat it.
    with np.errstate(over="ignore", invalid="ignore"):
        return run_epochs(steps, epochs=epochs, order=next_order, evaluate=evaluate, eval_label=val_label,
                          progress=progress, desc=desc, on_divergence=on_divergence, callback=callback,
                          hint="Try a smaller learning rate (lr) or scaled inputs.")
