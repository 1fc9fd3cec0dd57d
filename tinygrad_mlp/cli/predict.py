"""``python -m tinygrad_mlp predict MODEL.npz IMAGES.npy [--json] [--allow-out-of-range]``: apply a saved MLP.

The model is a file written by :func:`tinygrad_mlp.nn.serialize.save`; the images
an ``.npy`` array of shape (n, d₀), (n, s, s) with s² = d₀, or one image (d₀,)
or (s, s) (for the digits, d₀ = 64 and s = 8).  The loaded model applies its own
``input_scale`` (e.g. pixels × 1/16, as in training), so the images are given raw.

A classifier (softmax or sigmoid output) prints one label per line: argmaxₖ h^[L]ₖ,
the index of the largest output (for a single sigmoid unit: 1[h^[L] > ½]).  A
regression model (identity output) has no labels: it prints its outputs h^[L],
one line per image.  ``--json`` prints one JSON object ``{"labels": [...],
"outputs": [[...], ...]}`` (no ``"labels"`` for a regression model).

What is refused (exit status 2, one ``error:`` line on stderr, nothing on stdout):
a missing, damaged or oversized file (more than :data:`MAX_IMAGES_BYTES` of
images; see :func:`~tinygrad_mlp.nn.serialize.load` for the model file), a state
dict instead of a model, a wrong feature count, NaN or infinity, object arrays,
and inputs outside the training range when the file records one
(``meta={"input_range": [lo, hi]}``): e.g. pixels 0..255 for a model trained on
0..16.  ``--allow-out-of-range`` predicts anyway, with a warning.  Images whose
values span less than a quarter of that range (pixels 0..1 for a 0..16 model)
are predicted, with a ``warning:`` line naming them.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Sequence

import numpy as np

from ..nn.layers import MLP
from ..nn.serialize import ModelFileError, load_with_meta
from ..autograd.tensor import no_grad
from . import Parser, UsageError

__all__ = ["main", "predict", "read_images", "check_range", "MAX_IMAGES_BYTES"]

MAX_IMAGES_BYTES = 2**31  # 2 GiB of pixels, 4 million 8 × 8 float64 images: predict reads no more


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tinygrad_mlp predict",
                description="Classify digit images (or apply any MLP) with a model saved by "
                            "tinygrad_mlp.nn.serialize.save (e.g. by `python -m tinygrad_mlp digits --save MODEL.npz`).")
    p.add_argument("model", metavar="MODEL.npz", help="the saved model")
    p.add_argument("images", metavar="IMAGES.npy",
                   help="images as an .npy array: (n, 64), (n, 8, 8), or one image (64,) or (8, 8)")
    p.add_argument("--json", action="store_true", help="print one JSON object with labels and outputs")
    p.add_argument("--allow-out-of-range", action="store_true",
                   help="predict even when inputs fall outside the training range recorded in the model "
                        "(a warning instead of an error)")
    return p


def _read_npy(fh, path: str) -> np.ndarray:
    """The array of an open ``.npy`` stream, reading no more than its header declares (and the limit)."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    except Exception as e:  # a truncated or damaged header, an unknown version
        raise ValueError(f"IMAGES: {path!r} is not a readable .npy file ({e})") from None
    if dtype.hasobject:
        raise ValueError(f"IMAGES: {path!r} holds an object array, which needs pickle and is refused; "
                         "expected a numeric .npy array")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_IMAGES_BYTES:
        raise ValueError(f"IMAGES: {path!r} declares {nbytes} bytes of data (shape {shape}), more than the "
                         f"{MAX_IMAGES_BYTES}-byte limit (tinygrad_mlp.cli.predict.MAX_IMAGES_BYTES)")
    data = fh.read(nbytes)
    if len(data) < nbytes:
        raise ValueError(f"IMAGES: {path!r} is not a readable .npy file (truncated: {len(data)} of "
                         f"{nbytes} data bytes)")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def read_images(path: str, n_features: int) -> np.ndarray:
    """Load an ``.npy`` of images as a float64 (n, n_features) batch; ValueError on anything else.

    Reads at most the header and the data it declares, so a device or an endless stream is
    refused after its first bytes.
    """
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
            if magic[:2] == b"PK":
                raise ValueError(f"IMAGES: {path!r} is an .npz archive, expected a single .npy array")
            if magic != b"\x93NUMPY":  # np.load would try to unpickle it, and blame pickle
                raise ValueError(f"IMAGES: {path!r} is not a readable .npy file (no .npy header)")
            fh = _Prefixed(magic, fh)
            arr = _read_npy(fh, path)
    except FileNotFoundError:
        raise ValueError(f"IMAGES: no such file {path!r}") from None
    except IsADirectoryError:
        raise ValueError(f"IMAGES: {path!r} is a directory, expected an .npy file") from None
    except ValueError:
        raise
    except Exception as e:  # OSError, MemoryError: all the same to the user
        raise ValueError(f"IMAGES: {path!r} is not a readable .npy file ({type(e).__name__}: {e})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"IMAGES: expected numeric pixels, got dtype {arr.dtype}")
    side = math.isqrt(n_features)
    square = side * side == n_features
    shape = arr.shape
    if arr.ndim == 1 and shape[0] == n_features:
        X = arr.reshape(1, n_features)
    elif arr.ndim == 2 and square and shape == (side, side) and side != n_features:
        X = arr.reshape(1, n_features)
    elif arr.ndim == 2 and shape[1] == n_features:
        X = arr
    elif arr.ndim == 3 and square and shape[1:] == (side, side):
        X = arr.reshape(shape[0], n_features)
    else:
        forms = f"(n, {n_features}), ({n_features},)"
        if square:
            forms += f", (n, {side}, {side}) or ({side}, {side})"
        raise ValueError(f"IMAGES: the model takes {n_features} features per image, as {forms}; "
                         f"got an array of shape {shape}")
    if X.shape[0] == 0:
        raise ValueError(f"IMAGES: expected at least one image, got shape {shape}")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueError("IMAGES: expected finite pixel values, got NaN or infinity")
    return X


class _Prefixed:
    """A read-only stream that first gives back bytes already read: no seek, so pipes work too."""

    def __init__(self, head: bytes, fh) -> None:
        self.head, self.fh = head, fh

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.fh.read(n)
        if n is None or n < 0:
            out, self.head = self.head + self.fh.read(), b""
            return out
        out, self.head = self.head[:n], self.head[n:]
        return out + (self.fh.read(n - len(out)) if len(out) < n else b"")


def _span(lo: float, hi: float) -> str:
    return f"{lo:g} to {hi:g}"


def check_range(X: np.ndarray, input_range, allow: bool = False) -> list[str]:
    """Compare raw inputs with the training range ``[lo, hi]``; return warnings, raise ValueError to refuse.

    Values outside [lo, hi] are refused (a model trained on pixels 0..16 says nothing about 255),
    unless ``allow``.  Rows inside it whose values span less than a quarter of it (pixels 0..1)
    are predicted, with a warning: they look scaled differently, but a faint image is possible.
    """
    lo, hi = (float(v) for v in input_range)
    warnings = []
    x_lo, x_hi = float(X.min()), float(X.max())
    if x_lo < lo or x_hi > hi:
        rows = np.flatnonzero(((X < lo) | (X > hi)).any(axis=1))
        msg = (f"IMAGES: values from {_span(x_lo, x_hi)} fall outside the range the model was trained on, "
               f"{_span(lo, hi)} (MODEL's meta 'input_range'), in {len(rows)} of {len(X)} images "
               f"(first: image {rows[0]}); scale them as the training data were")
        if not allow:
            raise ValueError(msg + ", or pass --allow-out-of-range to predict anyway")
        warnings.append(msg + "; predicting anyway (--allow-out-of-range)")
    if hi > lo:
        narrow = np.flatnonzero(X.max(axis=1) - X.min(axis=1) < (hi - lo) / 4)
        if narrow.size:
            shown = ", ".join(str(i) for i in narrow[:5]) + (", ..." if narrow.size > 5 else "")
            warnings.append(f"IMAGES: {narrow.size} of {len(X)} images (image {shown}) span less than a quarter of "
                            f"the training range {_span(lo, hi)}; were they scaled differently (e.g. 0..1)?")
    return warnings


def is_classifier(model: MLP) -> bool:
    """Softmax and sigmoid outputs are class scores; an identity output is a regression's value."""
    return model.output != "identity"


def predict(model: MLP, X: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """(labels, outputs): h^[L] for each row of X and its argmax (a threshold at ½ for one sigmoid unit).

    ``labels`` is None for a regression model (identity output): its outputs are values, not scores.
    """
    # Overflow on extreme pixels is caught by the caller's finiteness check, not warned about twice.
    with no_grad(), np.errstate(over="ignore", invalid="ignore"):
        out = model(np.asarray(X, dtype=model.dtype)).data
    if out.ndim == 1:
        out = out[None, :]
    if not is_classifier(model):
        return None, out
    if out.shape[-1] == 1:
        labels = (out[:, 0] > 0.5).astype(np.int64)
    else:
        labels = out.argmax(axis=-1)
    return labels, out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0, or 2 on bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"{parser.format_usage().rstrip()}\nerror: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    try:
        model, meta = load_with_meta(args.model)
        if not isinstance(model, MLP):
            raise ValueError(f"MODEL: {args.model!r} holds a dict of arrays (a state dict), expected a saved MLP; "
                             "save the model itself with save(model, path)")
        X = read_images(args.images, model.sizes[0])
        warnings = []
        if "input_range" in meta:  # load checked that it is [lo, hi]
            warnings = check_range(X, meta["input_range"], args.allow_out_of_range)
        labels, out = predict(model, X)
    except ModelFileError as e:
        msg = str(e)
        print(f"error: MODEL: {msg[len('path: '):] if msg.startswith('path: ') else msg}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not np.isfinite(out).all():  # a finite model on finite input cannot give NaN, but never print one
        print("error: the model produced NaN or infinity for these images", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.json:
        result = {"labels": labels.tolist()} if labels is not None else {}
        result["outputs"] = out.tolist()
        print(json.dumps(result))
    elif labels is not None:
        sys.stdout.write("".join(f"{int(k)}\n" for k in labels))
    else:
        sys.stdout.write("".join(" ".join(repr(float(v)) for v in row) + "\n" for row in out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
