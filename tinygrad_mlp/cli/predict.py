"""``python -m tinygrad_mlp predict MODEL.npz IMAGES.npy [--json]``: classify images with a saved MLP.

The model is a file written by :func:`tinygrad_mlp.serialize.save`; the images
an ``.npy`` array of shape (n, d₀), (n, s, s) with s² = d₀, or one image (d₀,)
or (s, s) (for the digits, d₀ = 64 and s = 8).  If the model was saved with
``meta={"input_scale": c}``, the pixels are multiplied by c first, as in
training.  The predicted label of an image is argmaxₖ h^[L]ₖ, the index of the
largest output (for a single sigmoid output unit: 1[h^[L] > ½]).

Prints one label per line, or with ``--json`` one JSON object
``{"labels": [...], "outputs": [[...], ...]}``.  Exit status 0 on success,
2 on bad input (missing or damaged file, wrong feature count, NaN, object
arrays), with the reason on stderr.
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

__all__ = ["main", "predict", "read_images"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits; main() turns it into a return value
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m tinygrad_mlp predict",
                description="Classify digit images with a model saved by tinygrad_mlp.serialize.save "
                            "(e.g. by `python -m tinygrad_mlp digits --save MODEL.npz`).")
    p.add_argument("model", metavar="MODEL.npz", help="the saved model")
    p.add_argument("images", metavar="IMAGES.npy",
                   help="images as an .npy array: (n, 64), (n, 8, 8), or one image (64,) or (8, 8)")
    p.add_argument("--json", action="store_true", help="print one JSON object with labels and outputs")
    return p


def read_images(path: str, n_features: int) -> np.ndarray:
    """Load an ``.npy`` of images as a float64 (n, n_features) batch; ValueError on anything else."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
            if magic[:2] == b"PK":
                raise ValueError(f"IMAGES: {path!r} is an .npz archive, expected a single .npy array")
            if magic != b"\x93NUMPY":  # np.load would try to unpickle it, and blame pickle
                raise ValueError(f"IMAGES: {path!r} is not a readable .npy file (no .npy header)")
            fh.seek(0)
            arr = np.load(fh, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"IMAGES: no such file {path!r}") from None
    except IsADirectoryError:
        raise ValueError(f"IMAGES: {path!r} is a directory, expected an .npy file") from None
    except ValueError as e:
        if str(e).startswith("IMAGES: "):
            raise
        if "allow_pickle" in str(e):
            raise ValueError(f"IMAGES: {path!r} holds an object array, which needs pickle and is refused; "
                             "expected a numeric .npy array") from None
        raise ValueError(f"IMAGES: {path!r} is not a readable .npy file ({e})") from None
    except Exception as e:  # truncated header or data, OSError: all the same to the user
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


def predict(model: MLP, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, outputs): h^[L] for each row of X and its argmax (a threshold at ½ for one sigmoid unit)."""
    # Overflow on extreme pixels is caught by the caller's finiteness check, not warned about twice.
    with no_grad(), np.errstate(over="ignore", invalid="ignore"):
        out = model(np.asarray(X, dtype=model.dtype)).data
    if out.ndim == 1:
        out = out[None, :]
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
    except _UsageError as e:
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
        scale = meta.get("input_scale")
        if scale is not None:
            if isinstance(scale, str) or np.size(scale) != 1 or not np.isfinite(scale):
                raise ValueError(f"MODEL: meta 'input_scale' must be one finite number, got {scale!r}")
            X = X * float(scale)
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
    if args.json:
        print(json.dumps({"labels": labels.tolist(), "outputs": out.tolist()}))
    else:
        sys.stdout.write("".join(f"{int(k)}\n" for k in labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
