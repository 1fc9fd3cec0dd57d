"""Shared hypothesis strategies for the test suite.

Import from here rather than redefining: ``from strategies import shapes, arrays_in, ...``
(pytest puts ``tests/`` on ``sys.path``; ``from tests.strategies import ...`` works from the repo root too).

Everything draws float64 unless a ``dtype`` is given, keeps arrays small (finite
differences cost two evaluations per entry), and keeps values inside an op's
smooth domain so central differences are accurate (see :mod:`tinygrad_mlp.autograd.gradcheck`).
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "shapes", "nonempty_shapes", "broadcastable_pairs", "arrays_in", "floats_in", "arrays_of_shape",
    "matmul_shapes", "mlp_architectures", "activations", "small_batches", "DOMAINS",
]

# Open intervals (lo, hi) where each op is smooth and well-conditioned for central differences:
# log and pow need z > 0 away from 0; relu's kink at 0 is avoided by `away_from` in arrays_in;
# exp stays small so f''' does not swamp the 1e-5 relative policy.
DOMAINS = {
    "default": (-2.0, 2.0),
    "positive": (0.5, 3.0),
    "exp": (-3.0, 3.0),
    "logit": (-20.0, 20.0),
}


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes from 0-d to ``max_dims``-d (default 3-d), each side in [min_side, max_side]."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def nonempty_shapes(min_dims: int = 0, max_dims: int = 3, max_side: int = 4) -> st.SearchStrategy:
    """Shapes with every side ≥ 1 (reductions such as mean and logsumexp need an entry)."""
    return shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


def broadcastable_pairs(min_dims: int = 0, max_dims: int = 3, max_side: int = 4) -> st.SearchStrategy:
    """Pairs (shape_a, shape_b) that broadcast together under NumPy's rules, sizes-1 and missing axes included."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side
    ).map(lambda s: tuple(s.input_shapes))


def floats_in(lo: float, hi: float, away_from: float | None = None, gap: float = 0.1) -> st.SearchStrategy:
    """Finite floats in [lo, hi]; with ``away_from``, none within ``gap`` of that point (kinks, poles)."""
    s = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    if away_from is not None:
        s = s.filter(lambda v: abs(v - away_from) >= gap)
    return s


def arrays_of_shape(shape, lo: float = -2.0, hi: float = 2.0, dtype=np.float64,
                    away_from: float | None = None, gap: float = 0.1) -> st.SearchStrategy:
    """Arrays of a fixed ``shape`` with entries in [lo, hi] (optionally kept ``gap`` away from a point).

    The away-from condition is met by construction rather than by filtering, so nothing is rejected.
    """
    if away_from is None:
        elems = st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    else:
        # Draw u in [0, 1) and place it in [lo, hi] minus (away_from ± gap): no rejection needed.
        left = max(0.0, min(away_from - gap, hi) - lo)
        right = max(0.0, hi - max(away_from + gap, lo))
        total = left + right
        if total <= 0:
            raise ValueError(f"away_from: no room in [{lo}, {hi}] outside {away_from} ± {gap}")

        def place(u, lo=lo, left=left, total=total, start_right=max(away_from + gap, lo)):
            x = u * total
            return lo + x if x < left else start_right + (x - left)

        elems = st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False, exclude_max=True).map(place)
    return hnp.arrays(np.float64, shape, elements=elems).map(lambda a: a.astype(dtype))


def arrays_in(domain="default", shape_strategy=None, dtype=np.float64, away_from=None, gap=0.1) -> st.SearchStrategy:
    """Arrays of a drawn shape (0-d to 3-d by default) with entries in ``domain``.

    ``domain`` is a key of :data:`DOMAINS` or a ``(lo, hi)`` pair.
    """
    lo, hi = DOMAINS[domain] if isinstance(domain, str) else domain
    shape_strategy = shapes() if shape_strategy is None else shape_strategy
    return shape_strategy.flatmap(lambda s: arrays_of_shape(s, lo, hi, dtype, away_from, gap))


@st.composite
def matmul_shapes(draw, max_side: int = 4, stacks: bool = False):
    """Shape pairs valid for ``@``: vector·vector, matrix·vector, vector·matrix, matrix·matrix
    (and, with ``stacks``, 3-d stacks with broadcast batch axes)."""
    n, k, m = (draw(st.integers(1, max_side)) for _ in range(3))
    kinds = ["vv", "mv", "vm", "mm"] + (["sm", "ms", "ss"] if stacks else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "vv":
        return (k,), (k,)
    if kind == "mv":
        return (n, k), (k,)
    if kind == "vm":
        return (k,), (k, m)
    if kind == "mm":
        return (n, k), (k, m)
    bsz = draw(st.integers(1, 3))
    if kind == "sm":
        return (bsz, n, k), (k, m)
    if kind == "ms":
        return (n, k), (bsz, k, m)
    return (bsz, n, k), (draw(st.sampled_from([1, bsz])), k, m)


activations = st.sampled_from(["tanh", "sigmoid", "relu", "identity"])
"""Hidden-layer activations the MLP accepts."""


@st.composite
def mlp_architectures(draw, max_layers: int = 3, max_width: int = 5, output=("identity", "softmax", "sigmoid")):
    """Small MLP configurations: a dict ``{"sizes": [d0, ..., dL], "hidden": g, "output": g_L}``.

    Widths start at 1 for regression outputs and 2 for softmax (a 1-class softmax is constant).
    """
    n_layers = draw(st.integers(1, max_layers))
    out_act = draw(st.sampled_from(list(output)))
    sizes = [draw(st.integers(1, max_width)) for _ in range(n_layers)]
    sizes.append(draw(st.integers(2 if out_act == "softmax" else 1, max_width)))
    return {"sizes": sizes, "hidden": draw(activations), "output": out_act}


def small_batches(n_features: int, max_rows: int = 4, lo: float = -2.0, hi: float = 2.0) -> st.SearchStrategy:
    """A batch X of shape (n, n_features), one example per row, entries in [lo, hi]."""
    return st.integers(1, max_rows).flatmap(lambda n: arrays_of_shape((n, n_features), lo, hi))
