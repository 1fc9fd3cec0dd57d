"""Draw initial weights and epoch shuffles exactly as scikit-learn's MLP does.

scikit-learn (``sklearn.neural_network.MLPClassifier``) uses one
``numpy.random.RandomState(random_state)`` for everything, in this order:

1. per layer, W then b, each ``uniform(−a, a)`` with a = sqrt(f / (fan_in + fan_out)),
   f = 2 for the logistic activation and 6 otherwise; W is drawn in its
   (fan_in, fan_out) layout, which is W^[l]ᵀ in ours;
2. every epoch: ``perm = arange(n); rng.shuffle(perm); idx = idx[perm]``.

With the same draws, per-example SGD here and there visits the same examples
with the same weights, so the two end with the same weights.
"""
from __future__ import annotations

import numpy as np

from ..nn.layers import MLP

__all__ = ["sklearn_init", "sklearn_epoch_order", "as_random_state"]


def as_random_state(seed) -> np.random.RandomState:
    """``None``, an int or a RandomState, as ``sklearn.utils.check_random_state`` takes them."""
    if isinstance(seed, np.random.RandomState):
        return seed
    if seed is None:
        return np.random.RandomState()
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.RandomState(int(seed))
    raise ValueError(f"random_state: expected None, an int or a numpy RandomState, got {seed!r}")


def sklearn_init(model: MLP, rng: np.random.RandomState) -> None:
    """Overwrite ``model``'s weights with scikit-learn's draws from ``rng`` (advancing it)."""
    factor = 2.0 if model.hidden == "sigmoid" else 6.0
    for layer in model.layers:
        fan_in, fan_out = layer.in_features, layer.out_features
        bound = np.sqrt(factor / (fan_in + fan_out))
        W = rng.uniform(-bound, bound, (fan_in, fan_out))
        b = rng.uniform(-bound, bound, fan_out)
        layer.W.data[...] = W.T
        layer.b.data[...] = b


def sklearn_epoch_order(idx: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """The next epoch's example order, as ``sklearn.utils.shuffle(idx, random_state=rng)`` gives it."""
    perm = np.arange(len(idx))
    rng.shuffle(perm)
    return idx[perm]
