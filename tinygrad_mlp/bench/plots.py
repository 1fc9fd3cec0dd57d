"""Pictures for the digits benchmark (matplotlib is an optional extra: ``pip install 'tinygrad_mlp[plots]'``).

Every function writes one PNG and returns its path.  matplotlib is imported
only when a picture is drawn, with the non-interactive Agg backend, so the
rest of the library never needs it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..files import atomic_write

__all__ = ["require_matplotlib", "digit_gallery", "learning_curves", "confusion", "systems_chart"]


def require_matplotlib():
    """``matplotlib.pyplot`` on the Agg backend, or an ImportError that says how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots: matplotlib is not installed; pip install 'tinygrad_mlp[plots]' "
                          "(or pip install matplotlib)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    """The PNG goes through a temporary file and a rename (files.atomic_write): never a torn picture."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def digit_gallery(images: np.ndarray, labels: Sequence[int], predictions: Sequence[int] | None,
                  path: str | os.PathLike, columns: int = 8) -> Path:
    """A grid of 8×8 digit images titled with their labels (and predictions: red when wrong)."""
    plt = require_matplotlib()
    n = len(images)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.45 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(images[k], cmap="gray_r", interpolation="nearest", vmin=0, vmax=16)
        if predictions is None:
            ax.set_title(f"{labels[k]}", fontsize=10)
        else:
            wrong = predictions[k] != labels[k]
            ax.set_title(f"label {labels[k]} / pred {predictions[k]}", fontsize=7,
                         color="crimson" if wrong else "black")
    title = "Test digits (8×8, pixel values 0..16)"
    if predictions is not None:
        title += ": true label / tinygrad_mlp prediction"
        if any(p != t for p, t in zip(predictions, labels)):
            title += " (red: misclassified)"
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def learning_curves(curves: dict, path: str | os.PathLike, note: str = "") -> Path:
    """Training loss per epoch (left, log scale) and test accuracy per epoch (right).

    ``curves`` maps a system's label to ``(loss_per_epoch, test_accuracy_per_epoch)``;
    either list may be empty (scikit-learn records no test accuracy per epoch).
    ``note`` goes under the plots.
    """
    from matplotlib.ticker import MaxNLocator

    plt = require_matplotlib()
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1))]
    for k, (label, (loss, acc)) in enumerate(curves.items()):
        ls = styles[k % len(styles)]
        if len(loss):
            ax_l.plot(np.arange(1, len(loss) + 1), loss, linestyle=ls, label=label, linewidth=1.6)
        if len(acc):
            ax_a.plot(np.arange(1, len(acc) + 1), acc, linestyle=ls, label=label, linewidth=1.6)
    ax_l.set(xlabel="epoch", ylabel="mean training cross-entropy over the epoch", yscale="log",
             title="Training loss")
    ax_a.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy after each epoch")
    for ax in (ax_l, ax_a):
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=7)
    if note:
        fig.text(0.5, -0.02, note, ha="center", va="top", fontsize=8, wrap=True)
    return _save(fig, path)


def confusion(C: np.ndarray, path: str | os.PathLike, title: str = "confusion matrix") -> Path:
    """C[i, j] = examples of true class i predicted as j, drawn with the counts written in."""
    plt = require_matplotlib()
    C = np.asarray(C)
    fig, ax = plt.subplots(figsize=(5.6, 5))
    im = ax.imshow(C, cmap="Blues")
    k = C.shape[0]
    for i in range(k):
        for j in range(k):
            if C[i, j]:
                ax.text(j, i, str(C[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if C[i, j] > C.max() / 2 else "black")
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted class", ylabel="true class", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def systems_chart(rows: Sequence[tuple], path: str | os.PathLike, title: str = "") -> Path:
    """Bars per system: train/test accuracy (left) and fit seconds (right, log scale).

    ``rows`` are ``(label, train_accuracy, test_accuracy, seconds)``.
    """
    plt = require_matplotlib()
    labels = [r[0] for r in rows]
    y = np.arange(len(rows))
    fig, (ax_a, ax_t) = plt.subplots(1, 2, figsize=(13, 0.55 * len(rows) + 1.6), sharey=True)
    ax_a.barh(y - 0.2, [r[1] for r in rows], height=0.4, label="train", color="#9ecae1")
    ax_a.barh(y + 0.2, [r[2] for r in rows], height=0.4, label="test", color="#3182bd")
    for yi, r in zip(y, rows):
        ax_a.text(r[2] + 0.002, yi + 0.2, f"{r[2]:.3f}", va="center", fontsize=7)
    lo = min(min(r[1], r[2]) for r in rows)
    ax_a.set(xlim=(max(0.0, lo - 0.05), 1.02), xlabel="accuracy", title="Accuracy")
    ax_a.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    secs = [r[3] for r in rows]
    ax_t.barh(y, secs, color="#fd8d3c")
    for yi, s in zip(y, secs):
        ax_t.text(s * 1.05, yi, f"{s:.2f} s ({s / secs[0]:.2f}× the first row)", va="center", fontsize=7)
    ax_t.set(xscale="log", xlabel="fit seconds (log scale)", title="Time")
    ax_t.set_xlim(min(secs) / 2, max(secs) * 12)
    ax_a.set_yticks(y, labels, fontsize=8)
    ax_a.invert_yaxis()
    for ax in (ax_a, ax_t):
        ax.grid(True, axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
