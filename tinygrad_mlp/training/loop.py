"""A shared SGD training loop: per-example or mini-batch, with learning curves and a divergence check.

One step on a batch B of examples (B = one example for per-example SGD)::

    forward   h^[0] = x,  z^[l] = W^[l] h^[l−1] + b^[l],  h^[l] = g(z^[l])
    loss      L_B = Σ_{i∈B} L(x_i, y_i)            (reduction="sum", the practical's batch loss)
              L_B = (1/|B|) Σ_{i∈B} L(x_i, y_i)    (reduction="mean", scikit-learn's)
    update    θ ← θ − η ∂L_B/∂θ                     (or whatever ``optimizer.step()`` does)

With one example per batch the two reductions are the same step.  An epoch
visits every example once, in an order drawn afresh each epoch (a seeded
``numpy.random.Generator``, or any order the caller supplies, e.g. the one
scikit-learn would draw: :func:`tinygrad_mlp.sklearn_compat.sklearn_epoch_order`).

The learning curve ``History.loss`` holds, per epoch, the mean per-example loss
of the steps taken during that epoch, each measured *before* its update; this
is what scikit-learn's ``loss_curve_`` records, so the two curves compare
directly.

Divergence: the loss of every step is checked before its gradient is applied.
A loss that is not finite stops training with :class:`DivergenceError` naming
the epoch and the step (``on_divergence="raise"``, the default), or with a
:class:`DivergenceWarning` (``on_divergence="warn"``).  Either way the update
of the offending step is never applied, so the weights stay at their last
finite values; should an earlier update have overflowed the weights while the
loss stayed finite, they are restored to their values at the start of the
epoch (the weights are also checked at the end of every epoch).

Public API
----------
:func:`train` (the loop), :class:`History` (what it returns),
:func:`predict` / :func:`accuracy` (argmax of z^[L], no tape),
:class:`DivergenceError`, :class:`DivergenceWarning`, :func:`progress_bar`.
"""
from __future__ import annotations

import math
import numbers
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..autograd import functional as F
from ..nn.layers import MLP
from ..nn.optim import SGD
from ..autograd.tensor import Tensor, _new, no_grad

__all__ = ["train", "History", "predict", "accuracy", "DivergenceError", "DivergenceWarning", "progress_bar",
           "ON_DIVERGENCE"]

ON_DIVERGENCE = ("raise", "warn")


class DivergenceError(FloatingPointError):
    """The training loss stopped being finite.  ``epoch`` and ``step`` are 1-based."""

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
        Epochs completed.
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


# ------------------------------------------------------------------------------- progress
class _LineProgress:
    """The fallback when tqdm is missing: one line per epoch on stderr."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.n = total, desc, 0

        self.postfix = ""

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self.postfix = s

    def update(self, n: int = 1) -> None:
        self.n += n
        print(f"{self.desc}: epoch {self.n}/{self.total} {self.postfix}", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, leave: bool = False):
    """A tqdm bar on stderr when tqdm is installed, otherwise a plain line per epoch.

    Either way the object has ``set_postfix_str(s, refresh=False)``, ``update(n)`` (which
    shows it) and ``close()``.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return _LineProgress(total, desc)
    return tqdm(total=total, desc=desc, leave=leave, file=sys.stderr, unit="epoch", dynamic_ncols=True)


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


# ---------------------------------------------------------------------------------- train
def train(model: MLP, X, y, *, epochs: int, lr: float | None = None, optimizer=None, batch_size: int = 1,
          loss: str = "cross_entropy", reduction: str = "mean", shuffle: bool = True, seed=None,
          order: Callable[[int], Any] | None = None, X_val=None, y_val=None, on_divergence: str = "raise",
          progress: bool = False, desc: str = "tinygrad_mlp",
          callback: Callable[[int, History], Any] | None = None) -> History:
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
        η for a plain :class:`~tinygrad_mlp.optim.SGD`; give either ``lr`` or ``optimizer``.
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
        A progress bar per run (tqdm when installed, else one line per epoch on stderr).
    desc : str
        The progress bar's label.
    callback : callable, optional
        ``callback(epoch, history)`` after every epoch (1-based epoch; not timed).

    Returns
    -------
    History

    Raises
    ------
    DivergenceError
        When the loss is not finite and ``on_divergence="raise"``.
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
    val = None
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
        val = (Xv, yv)
    next_order = _order_fn(order, shuffle, seed, n)

    params = model.parameters()
    hidden = [(layer.W, layer.b) for layer in model.layers[:-1]]
    W_L, b_L = model.layers[-1].W, model.layers[-1].b
    g = model._g
    g_out = model._g_out
    zero_grad, step = optimizer.zero_grad, optimizer.step
    labels = y.dtype.kind == "i"
    if loss == "cross_entropy":
        def loss_of(z, t):
            return F.cross_entropy(z, t, reduction)
    else:
        def loss_of(z, t):
            return F.squared_error(g_out(z), t, reduction)
    # Per-example SGD spends microseconds per step, so its inputs are checked
    # once above and wrapped once here, not on every step.
    if batch_size == 1:
        rows = [_new(r) for r in X]
        targets = y.tolist() if labels else list(y)
    summed = reduction == "sum"  # the curve wants Σ of per-example losses either way

    hist = History()
    bar = progress_bar(epochs, desc) if progress else None
    isfinite = math.isfinite
    # A diverging run overflows on its way to a non-finite loss; the DivergenceError (or warning) below
    # names the epoch and the step, so NumPy's overflow warnings on the way would only repeat it.
    numpy_err = np.seterr(over="ignore", invalid="ignore")
    try:
        for epoch in range(epochs):
            idx = next_order(epoch)
            snapshot = [p.data.copy() for p in params]
            total = 0.0
            bad = None
            t0, c0 = time.perf_counter(), time.process_time()
            if batch_size == 1:
                for s, i in enumerate(idx.tolist()):
                    zero_grad()
                    h = rows[i]
                    for W, b in hidden:
                        h = g(W @ h + b)
                    l = loss_of(W_L @ h + b_L, targets[i])
                    v = l.data.item()
                    if not isfinite(v):
                        bad = (s, v)
                        break
                    total += v
                    l.backward()
                    step()
                steps_done = len(idx) if bad is None else bad[0]
            else:
                starts = range(0, n, batch_size)
                for s, start in enumerate(starts):
                    chunk = idx[start:start + batch_size]
                    zero_grad()
                    h = _new(X[chunk])
                    for W, b in hidden:
                        h = g(h @ W.T + b)
                    l = loss_of(h @ W_L.T + b_L, y[chunk])
                    v = l.data.item()
                    if not isfinite(v):
                        bad = (s, v)
                        break
                    total += v if summed else v * len(chunk)
                    l.backward()
                    step()
                steps_done = len(starts) if bad is None else bad[0]
            hist.seconds += time.perf_counter() - t0
            hist.cpu_seconds += time.process_time() - c0
            hist.steps += steps_done
            weights_ok = all(np.isfinite(p.data).all() for p in params)
            if bad is None and weights_ok:
                hist.epochs += 1
                hist.loss.append(total / n)
                if val is not None:
                    hist.val_accuracy.append(accuracy(model, *val))
                if bar is not None:
                    tail = f" val acc {hist.val_accuracy[-1]:.4f}" if val is not None else ""
                    bar.set_postfix_str(f"loss {hist.loss[-1]:.4f}{tail}", refresh=False)
                    bar.update(1)
                if callback is not None:
                    callback(epoch + 1, hist)
                continue
            # Divergence: the offending step's update was never applied.
            steps_per_epoch = -(-n // batch_size)
            if bad is not None:
                where = f"epoch {epoch + 1}, step {bad[0] + 1} of {steps_per_epoch}: the loss is {bad[1]}"
                step_no = bad[0] + 1
            else:
                where = f"epoch {epoch + 1}: the weights became non-finite while the loss stayed finite"
                step_no = steps_per_epoch
            if weights_ok:
                kept = "the weights stay at their last finite values (that step's update was not applied)"
            else:
                for p, saved in zip(params, snapshot):
                    p.data[...] = saved
                kept = f"the weights had already overflowed and were restored to their values at the start of epoch {epoch + 1}"
            msg = (f"training diverged at {where}; {kept}. Try a smaller learning rate "
                   f"(lr) or scaled inputs.")
            zero_grad()
            hist.diverged, hist.message = True, msg
            if on_divergence == "raise":
                raise DivergenceError(msg, epoch + 1, step_no)
            warnings.warn(msg, DivergenceWarning, stacklevel=2)
            break
    finally:
        np.seterr(**numpy_err)
        if bar is not None:
            bar.close()
    return hist
