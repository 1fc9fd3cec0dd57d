"""Weight initialisers: each returns ``f(shape, rng) -> ndarray``.

The random ones draw from a ``numpy.random.Generator`` passed in by the
network, so a seed repeats a run exactly.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["constant", "zeros", "glorot_uniform", "xavier_uniform", "as_initializer"]


def constant(value: float):
    """Every entry equals ``value`` (the practical sets all weights and biases to 0.1)."""
    if not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"value: expected a finite number, got {value!r}")

    def init(shape, rng=None, dtype=np.float64):
        return np.full(shape, value, dtype=dtype)

    init.__name__ = f"constant({value})"
    return init


def zeros():
    """All zeros."""
    return constant(0.0)


def glorot_uniform(gain: float = 1.0):
    """U(−a, a) with a = gain · sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010).

    For a weight W^[l] of shape (out, in), fan_in = in and fan_out = out; for
    a bias (a vector) both are its length.
    """

    def init(shape, rng, dtype=np.float64):
        fan_out, fan_in = (shape[0], shape[1]) if len(shape) == 2 else (shape[0], shape[0])
        a = gain * np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-a, a, size=shape).astype(dtype, copy=False)

    init.__name__ = "glorot_uniform"
    return init


xavier_uniform = glorot_uniform  # the same initialiser under its other common name

_NAMED = {"glorot_uniform": glorot_uniform, "xavier_uniform": glorot_uniform, "zeros": zeros}


def as_initializer(spec, name: str):
    """Accept an initialiser, a number (constant) or a name."""
    if callable(spec):
        return spec
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        return constant(float(spec))
    if isinstance(spec, str) and spec in _NAMED:
        return _NAMED[spec]()
    raise ValueError(f"{name}: expected a number, a callable or one of {sorted(_NAMED)}, got {spec!r}")
