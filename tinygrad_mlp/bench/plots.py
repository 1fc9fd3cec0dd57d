"""Pictures for the digits benchmark (matplotlib is an optional extra: ``pip install 'tinygrad_mlp[plots]'``).

Every ``*_figure`` function draws one matplotlib Figure (so a test can read its axes back) and
:func:`save_png` writes it, atomically.  matplotlib is imported only when a picture is drawn,
with the non-interactive Agg backend, so the rest of the library never needs it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..files import atomic_write

__all__ = ["require_matplotlib", "save_png", "gallery_figure", "learning_curves_figure", "confusion_figure",
           "systems_figure"]


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


def save_png(fig, path) -> Path:
    """Write ``fig`` as a PNG through a temporary file and a rename (files.atomic_write): never a torn picture."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def gallery_figure(sections: Sequence[tuple], columns: int = 8):
    """Rows of 8×8 digit images, in titled sections.

    ``sections`` are ``(title, images, labels, predictions)``; ``predictions`` may be None.  Each
    image is titled "label / pred" (red when they differ); each section has its own title, so a row
    picked for its mistakes says so.
    """
    plt = require_matplotlib()
    heights = [-(-len(sec[1]) // columns) for sec in sections]
    fig = plt.figure(figsize=(1.2 * columns, 1.45 * sum(heights) + 0.45 * len(sections)))
    subfigs = fig.subfigures(len(sections), 1, height_ratios=[h + 0.4 for h in heights], squeeze=False)[:, 0]
    for sub, (title, images, labels, predictions), rows in zip(subfigs, sections, heights):
        axes = sub.subplots(rows, columns, squeeze=False)
        for k, ax in enumerate(axes.flat):
            ax.axis("off")
            if k >= len(images):
                continue
            ax.imshow(images[k], cmap="gray_r", interpolation="nearest", vmin=0, vmax=16)
            if predictions is None:
                ax.set_title(f"{labels[k]}", fontsize=10)
            else:
                wrong = predictions[k] != labels[k]
                ax.set_title(f"label {labels[k]} / pred {predictions[k]}", fontsize=7,
                             color="crimson" if wrong else "black")
        sub.suptitle(title, fontsize=9.5)
    return fig


# One marker per system, placed at different epochs (markevery offsets), so that curves lying on
# top of each other still show every system's markers.
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
_STYLES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1)), "-"]


def learning_curves_figure(curves: dict, epochs: int, note: str = ""):
    """Training loss per epoch (left, log scale) and test accuracy per epoch (right), epochs 1..``epochs``.

    ``curves`` maps a system's label to ``(loss_per_epoch, test_accuracy_per_epoch)``; either list
    may be empty (scikit-learn records no test accuracy per epoch).  A system that ran longer (its
    own stopping rule) is cut at ``epochs`` and its legend entry says so.  ``note`` is written
    under the panels, inside the picture (which curves coincide, and why).
    """
    from matplotlib.ticker import MaxNLocator

    plt = require_matplotlib()
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(12.5, 6.5))
    n = max(len(curves), 1)
    every = max(epochs // 8, 1)
    for k, (label, (loss, acc)) in enumerate(curves.items()):
        style = dict(linestyle=_STYLES[k % len(_STYLES)], marker=_MARKERS[k % len(_MARKERS)], markersize=5,
                     markevery=(k * every // n, every), linewidth=1.4, markerfacecolor="none")
        ran = max(len(loss), len(acc))
        shown = f"{label} ({ran} epochs, first {epochs} shown)" if ran > epochs else label
        if len(loss):
            ax_l.plot(np.arange(1, min(len(loss), epochs) + 1), loss[:epochs], label=shown, **style)
        if len(acc):
            ax_a.plot(np.arange(1, min(len(acc), epochs) + 1), acc[:epochs], label=shown, **style)
    ax_l.set(xlabel="epoch", ylabel="mean training cross-entropy over the epoch", yscale="log",
             title="Training loss", xlim=(0, epochs + 1))
    ax_a.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy after each epoch", xlim=(0, epochs + 1))
    for ax in (ax_l, ax_a):
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # One legend for both panels, under them (a system has the same style left and right), then the
    # note: both inside the picture, neither over a curve.
    handles = {}
    for ax in (ax_l, ax_a):
        for line in ax.lines:
            handles.setdefault(line.get_label(), line)
    rows = -(-len(handles) // 2) + (note.count("\n") + 1 if note else 0)
    fig.tight_layout(rect=(0, 0.035 * rows + 0.03, 1, 1))
    top = ax_l.get_position().y0 - 0.09  # under the x-axis label
    if handles:
        legend = fig.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, top),
                            ncol=2, fontsize=8, frameon=False)
        fig.canvas.draw()
        top = fig.transFigure.inverted().transform(legend.get_window_extent())[0, 1] - 0.01
    if note:
        fig.text(0.5, top, note, ha="center", va="top", fontsize=8.5,
                 bbox=dict(boxstyle="round", facecolor="lightyellow", alpha=0.9))
    return fig


def confusion_figure(C: np.ndarray, title: str = "confusion matrix"):
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
    return fig


def systems_figure(rows: Sequence[tuple], title: str = ""):
    """Bars per system: train and test accuracy (left, axis from 0) and fit seconds (right, log scale).

    ``rows`` are ``(label, train_accuracy, test_accuracy, seconds)``.  Every bar carries its value:
    systems that differ by a fraction of a point read as the numbers they are, not as bar lengths.
    """
    plt = require_matplotlib()
    labels = [r[0] for r in rows]
    y = np.arange(len(rows))
    fig, (ax_a, ax_t) = plt.subplots(1, 2, figsize=(13, 0.55 * len(rows) + 1.8), sharey=True)
    for offset, col, name, color in ((-0.2, 1, "train", "#9ecae1"), (0.2, 2, "test", "#3182bd")):
        ax_a.barh(y + offset, [r[col] for r in rows], height=0.4, label=name, color=color)
        for yi, r in zip(y, rows):
            ax_a.text(r[col] + 0.01, yi + offset, f"{name} {r[col]:.3f}", va="center", fontsize=7)
    ax_a.set(xlim=(0.0, 1.25), xlabel="accuracy (axis from 0)", title="Accuracy")
    ax_a.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax_a.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    secs = [r[3] for r in rows]
    ax_t.barh(y, secs, color="#fd8d3c")
    for yi, sec in zip(y, secs):
        ax_t.text(sec * 1.05, yi, f"{sec:.2f} s ({sec / secs[0]:.2f}× the first row)", va="center", fontsize=7)
    ax_t.set(xscale="log", xlabel="fit seconds (log scale)", title="Time")
    ax_t.set_xlim(min(secs) / 2, max(secs) * 12)
    ax_a.set_yticks(y, labels, fontsize=8)
    ax_a.invert_yaxis()
    for ax in (ax_a, ax_t):
        ax.grid(True, axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
