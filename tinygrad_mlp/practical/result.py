"""The typed result of one exercise step: what the runner computed and checked, what every view shows.

:func:`tinygrad_mlp.practical.exercise.run_step` returns a :class:`StepResult`;
the worked-solution renderers (text, Markdown, LaTeX, the interactive page)
read only this object, never the spec parser or the network.  Per-layer
tuples run over layers 1..L (index 0 is layer 1), in the practical's
notation: ``W[l]`` has shape (out, in), ``z^[l] = W^[l] h^[l−1] + b^[l]``,
``h^[l] = g(z^[l])``, ``dz = δ^[l] = ∂L/∂z^[l]``, ``dh = ∂L/∂h^[l]``.

:meth:`StepResult.to_json` is what ``exercise --json`` prints: the spec's own
fields (``layers``, ``hidden``, ``output``, ``weights``, ``biases``,
``learning_rate``, ``examples`` with ``x``, ``y``), so the output can be fed
back as a ``SPEC.json``, plus every computed quantity.  One key differs in
meaning from a spec: ``loss`` is the step's total loss (a number) and
``loss_name`` the loss function; :func:`~tinygrad_mlp.practical.exercise.parse_spec`
reads such a document by ``loss_name``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the result only carries the spec; it never parses one
    from .exercise import Spec

__all__ = ["ExampleStep", "StepResult"]

Layers = tuple  # tuple[np.ndarray, ...], one entry per layer 1..L


def _list(a) -> Any:
    return np.asarray(a).tolist()


def _lists(arrays) -> list:
    return [np.asarray(a).tolist() for a in arrays]


@dataclass(frozen=True)
class ExampleStep:
    """One example's forward and backward pass (no update: that belongs to the step).

    Attributes
    ----------
    x, y : ndarray
        The input h^[0] and the target.
    z, h : tuple of ndarray
        z^[l] and h^[l] for l = 1..L; ``h[-1]`` is the output (ŷ or p).
    output : ndarray
        ``h[-1]``.
    loss : float
        This example's loss L^(j).
    dz : tuple of ndarray
        δ^[l] = ∂L/∂z^[l].
    dh : tuple of ndarray
        ∂L/∂h^[l] (for softmax + cross-entropy the last one is −y ⊘ p, the hand-written value).
    grad_W, grad_b : tuple of ndarray
        ∂L^(j)/∂W^[l] = δ^[l] h^[l−1]ᵀ and ∂L^(j)/∂b^[l] = δ^[l].
    """

    x: np.ndarray
    y: np.ndarray
    z: Layers
    h: Layers
    output: np.ndarray
    loss: float
    dz: Layers
    dh: Layers
    grad_W: Layers
    grad_b: Layers

    def h_prev(self, l: int) -> np.ndarray:
        """h^[l−1] for layer ``l`` in 1..L (x for l = 1)."""
        return self.x if l == 1 else self.h[l - 2]

    def to_json(self) -> dict:
        return {"x": _list(self.x), "y": _list(self.y), "z": _lists(self.z), "h": _lists(self.h),
                "output": _list(self.output), "loss": float(self.loss), "dz": _lists(self.dz),
                "dh": _lists(self.dh), "grad_W": _lists(self.grad_W), "grad_b": _lists(self.grad_b)}


@dataclass(frozen=True)
class StepResult:
    """One SGD (one example) or batch gradient-descent (several) step, checked, with every intermediate.

    Attributes
    ----------
    spec : Spec
        The exercise it was computed from (architecture, W, b before the step, η, examples).
    examples : tuple of ExampleStep
    loss : float
        The total loss Σ_j L^(j).
    grad_W, grad_b : tuple of ndarray
        The summed gradient ∂L/∂W^[l], ∂L/∂b^[l].
    W, b : tuple of ndarray
        The parameters after the update W^[l] − η ∂L/∂W^[l].
    """

    spec: "Spec"
    examples: tuple
    loss: float
    grad_W: Layers
    grad_b: Layers
    W: Layers
    b: Layers

    # ---- the spec's fields, read through (the views need nothing else)
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def layers(self) -> list[int]:
        return list(self.spec.layers)

    @property
    def hidden(self) -> str:
        return self.spec.hidden

    @property
    def output(self) -> str:
        return self.spec.output

    @property
    def loss_name(self) -> str:
        return self.spec.loss

    @property
    def learning_rate(self) -> float:
        return self.spec.learning_rate

    @property
    def W0(self) -> Layers:
        """W^[l] before the step."""
        return tuple(self.spec.W)

    @property
    def b0(self) -> Layers:
        """b^[l] before the step."""
        return tuple(self.spec.b)

    @property
    def n_layers(self) -> int:
        return len(self.W)

    @property
    def is_batch(self) -> bool:
        return len(self.examples) > 1

    def to_json(self) -> dict:
        """The ``exercise --json`` document: a superset of the spec (it can be read back as one).

        Keys: the spec's ``layers``, ``hidden``, ``output``, ``weights``, ``biases`` (before the
        step), ``learning_rate``, ``examples`` (``x``, ``y`` and the computed ``z``, ``h``,
        ``output``, ``loss``, ``dz``, ``dh``, ``grad_W``, ``grad_b``); then ``name``, ``title``,
        ``loss_name``, ``initial`` (``W``, ``b`` before the step, as ``weights``/``biases``),
        ``loss`` (the total), ``grad_W``, ``grad_b`` and ``W``, ``b`` after the update.
        """
        W0, b0 = _lists(self.W0), _lists(self.b0)
        return {
            "name": self.name, "title": self.title,
            "layers": self.layers, "hidden": self.hidden, "output": self.output, "loss_name": self.loss_name,
            "learning_rate": self.learning_rate,
            "weights": W0, "biases": b0,
            "initial": {"W": W0, "b": b0},
            "loss": float(self.loss), "examples": [e.to_json() for e in self.examples],
            "grad_W": _lists(self.grad_W), "grad_b": _lists(self.grad_b),
            "W": _lists(self.W), "b": _lists(self.b),
        }

    def __getitem__(self, key: str):
        # The --json view by key, for callers written against the dict this used to be
        # (``run_step(spec)["loss"]``); new code reads the attributes.
        return self.to_json()[key]
