"""Functions on tensors: the layer map, activations, output nonlinearities and losses.

:func:`linear` applies the :class:`~tinygrad_mlp.autograd.primitives.Affine` primitive; the rest
are composites written from the primitives (nothing else here has a vjp of its own): activations
g(z) for h^[l] = g(z^[l]), the output nonlinearities, and the two losses of the practical.  Each
gradient comes from the primitives' vjps, so it is exact as long as theirs are.
"""
from __future__ import annotations

import numpy as np

from .primitives import Affine, CrossEntropy
from .tensor import Tensor, apply

__all__ = ["linear", "softmax", "log_softmax", "identity", "tanh", "sigmoid", "relu",
           "squared_error", "cross_entropy", "mse_loss", "ACTIVATIONS", "OUTPUTS", "LOSSES", "REDUCTIONS"]


def linear(h: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """z = W h + b for one example h, z = H Wᵀ + b for a batch H (rows): PyTorch's ``F.linear(input, weight, bias)``.

    W has shape (out, in), as the practical's W^[l].  One recorded op (see ``Affine``).
    """
    for name, t in (("h", h), ("W", W), ("b", b)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a Tensor, got {type(t).__name__}")
    if W.ndim != 2 or h.ndim not in (1, 2) or b.shape != (W.shape[0],) or h.shape[-1] != W.shape[1]:
        raise ValueError(f"linear: expected W (out, in), h (in,) or (n, in) and b (out,), got W {W.shape}, "
                         f"h {h.shape}, b {b.shape}")
    if not (h.dtype == W.dtype == b.dtype):
        raise TypeError(f"linear: expected h, W and b of one dtype, got {h.dtype}, {W.dtype}, {b.dtype}")
    return affine(W, h, b)


def affine(W: Tensor, h: Tensor, b: Tensor) -> Tensor:
    """:func:`linear` without its checks: for layers that checked their input once, at their boundary."""
    if h.requires_grad:
        return apply(Affine, (W, h, b), (W.data, h.data, b.data))
    return apply(Affine, (W, h, b), (W.data, h.data, b.data), (False,))  # x: no ∂L/∂x to compute


def identity(z: Tensor) -> Tensor:
    """g(z) = z,  g'(z) = 1."""
    return z


def _not_a_tensor(z, e: AttributeError) -> Exception:
    """The TypeError for an ndarray or list passed where a Tensor belongs (a Tensor's own error passes on)."""
    if isinstance(z, Tensor):
        return e
    return TypeError(f"z: expected a Tensor, got {type(z).__name__} (wrap data in Tensor(...))")


# The activations run once per layer per training step: the type is checked only when the call fails
# (a try costs nothing in Python 3.11 until something raises).
def tanh(z: Tensor) -> Tensor:
    """g(z) = tanh z,  g'(z) = 1 − tanh² z."""
    try:
        return z.tanh()
    except AttributeError as e:
        raise _not_a_tensor(z, e) from None


def sigmoid(z: Tensor) -> Tensor:
    """g(z) = σ(z),  g'(z) = σ(z)(1 − σ(z))."""
    try:
        return z.sigmoid()
    except AttributeError as e:
        raise _not_a_tensor(z, e) from None


def relu(z: Tensor) -> Tensor:
    """g(z) = max(z, 0),  g'(z) = 1[z > 0]."""
    try:
        return z.relu()
    except AttributeError as e:
        raise _not_a_tensor(z, e) from None


def log_softmax(z: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """log pᵢ = sᵢ − log Σⱼ exp sⱼ with s = z − max z  (stable; ``dim`` is PyTorch's name for ``axis``).

    The shift by the (constant) max costs one op and keeps the result exact where z − logsumexp z
    would not be: at z = (M, M) with M the largest float, logsumexp z rounds to M and z − M = 0,
    where the answer is −log 2.  The shift changes no gradient (log_softmax is shift-invariant).
    """
    if dim is not None:
        axis = dim
    try:
        m = z._shift(axis)
    except AttributeError as e:
        raise _not_a_tensor(z, e) from None
    s = z - m
    return s - s.logsumexp(axis=axis, keepdims=True)


def softmax(z: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """pᵢ = exp(zᵢ) / Σⱼ exp(zⱼ) = exp(log_softmax(z)ᵢ); ``dim`` is PyTorch's name for ``axis``."""
    return log_softmax(z, dim if dim is not None else axis).exp()


ACTIVATIONS = {"identity": identity, "tanh": tanh, "sigmoid": sigmoid, "relu": relu}
OUTPUTS = {"identity": identity, "softmax": softmax, "sigmoid": sigmoid}
REDUCTIONS = ("sum", "mean")


def _reduce(per_example: Tensor, reduction: str) -> Tensor:
    if reduction == "sum":
        return per_example.sum()
    if reduction == "mean":
        return per_example.mean()
    raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")


def squared_error(y_hat: Tensor, y, reduction: str = "sum") -> Tensor:
    """L = ½ Σᵢ (ŷᵢ − yᵢ)²  per example;  ∂L/∂ŷ = ŷ − y.

    ``y_hat`` is one example (a vector) or a batch (rows are examples).  With
    ``reduction="sum"`` the batch loss is the sum over examples, as in the
    practical, so the batch gradient is the sum of per-example gradients;
    ``"mean"`` divides by the number of examples.
    """
    if not isinstance(y_hat, Tensor):
        raise TypeError(f"y_hat: expected a Tensor (the network's output), got {type(y_hat).__name__}")
    if reduction not in REDUCTIONS:  # checked up front: a single example never reaches _reduce
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    y = _target_array(y, y_hat, "y")
    if y.shape != y_hat.shape:
        raise ValueError(f"y: expected shape {y_hat.shape} (the output's), got {y.shape}")
    d = y_hat - y
    per = (d * d).sum(axis=-1) * 0.5 if y_hat.ndim else d * d * 0.5
    return _reduce(per, reduction) if per.ndim else per


def cross_entropy(logits: Tensor, y, reduction: str = "sum") -> Tensor:
    """L = −Σₖ yₖ log pₖ with p = softmax(z) = logsumexp(z) − yᵀz for one-hot y.

    ``logits`` are z^[L] before the softmax (one example, or a batch in rows);
    ``y`` is one-hot (same shape; any probability vector is accepted, anything else —
    a negative entry, a row not summing to 1 — is a ValueError) or integer class labels
    (one per example).  ∂L/∂z = p − y.
    """
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits: expected a Tensor (z^[L]), got {type(logits).__name__}")
    if reduction not in REDUCTIONS:  # checked up front: a single example never reaches _reduce
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    if logits.ndim not in (1, 2):
        raise ValueError(f"logits: expected a vector or a (batch, classes) matrix, got shape {logits.shape}")
    n_classes = logits.shape[-1]
    if logits.ndim == 1 and isinstance(y, (int, np.integer)) and not isinstance(y, bool):  # one label: the hot path
        if not 0 <= y < n_classes:
            raise ValueError(f"y: class labels must lie in [0, {n_classes}), got {y}")
        return apply(CrossEntropy, (logits,), (logits.data,), (int(y),))
    y_arr = y.data if isinstance(y, Tensor) else np.asarray(y)
    if y_arr.dtype.kind in "iu" and y_arr.shape == logits.shape[:-1]:
        if y_arr.size and (y_arr.min() < 0 or y_arr.max() >= n_classes):
            raise ValueError(f"y: class labels must lie in [0, {n_classes}), got values from "
                             f"{y_arr.min()} to {y_arr.max()}")
        # the label array itself, not int(y): a compiled step reads it at every replay (an int taken
        # here would be frozen at the capture's value)
        per = apply(CrossEntropy, (logits,), (logits.data,), (y_arr,))
    else:
        lse = logits.logsumexp(axis=None if logits.ndim == 1 else -1)  # (a vector's only axis: no axis check)
        y_arr = _target_array(y, logits, "y")
        if y_arr.shape != logits.shape:
            raise ValueError(f"y: expected integer labels of shape {logits.shape[:-1]} or one-hot "
                             f"targets of shape {logits.shape}, got shape {y_arr.shape}")
        # Probability targets only: with a negative entry or a row not summing to 1 the loss is
        # no longer a cross-entropy (it can go to −∞), and its gradient is not p − y.
        row_sums = y_arr.sum(axis=-1)
        if y_arr.size and (y_arr.min() < 0 or np.abs(row_sums - 1.0).max() > 1e-6):
            raise ValueError("y: expected one-hot (or probability) targets, non-negative and summing to 1 "
                             "over the classes, or integer labels")
        # −Σ y log p = (Σ y) lse − yᵀz; Σ y = 1 for one-hot targets.
        if logits.ndim == 1:  # one example: yᵀz is one dot product, one record instead of two
            per = (lse if row_sums == 1 else lse * row_sums) - logits @ y_arr
        else:
            per = lse * row_sums - (logits * y_arr).sum(axis=-1)
    return _reduce(per, reduction) if per.ndim else per


LOSSES = {"squared_error": squared_error, "cross_entropy": cross_entropy}


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """PyTorch's ``F.mse_loss``: (1/N) Σ (inputᵢ − targetᵢ)² over every element (``"mean"``),
    the plain sum (``"sum"``) or the elementwise squares (``"none"``).

    Not the practical's squared error: that one is ½ Σ per example (:func:`squared_error`), so
    mse_loss(ŷ, y, "sum") = 2 · squared_error(ŷ, y).  ∂L/∂input = 2 (input − target) / N for "mean".
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"input: expected a Tensor, got {type(input).__name__}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction: expected one of ('mean', 'sum', 'none'), got {reduction!r}")
    if isinstance(target, Tensor):
        d = input - target
        tshape = target.shape
    else:
        t = _target_array(target, input, "target")
        tshape = t.shape
        d = input - t
    if tshape != input.shape:
        raise ValueError(f"target: expected shape {input.shape} (the input's), got {tshape}")
    sq = d * d
    if reduction == "none":
        return sq
    if input.size == 0:
        raise ValueError(f"input: expected a non-empty tensor, got shape {input.shape}")
    return sq.mean() if reduction == "mean" else sq.sum()


def _target_array(y, like: Tensor, name: str) -> np.ndarray:
    if isinstance(y, Tensor):
        arr = y.data
    else:
        try:
            arr = np.asarray(y, dtype=like.dtype)
        except (TypeError, ValueError) as e:  # strings, ragged lists
            raise TypeError(f"{name}: expected numeric targets, got {type(y).__name__} ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numeric targets, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite targets, got NaN or infinity")
    return arr
