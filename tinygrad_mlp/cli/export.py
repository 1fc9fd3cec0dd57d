"""``python -m tinygrad_mlp export MODEL.npz OUT.safetensors|OUT.onnx``: a saved MLP for PyTorch or ONNX.

The output's suffix picks the format (:mod:`tinygrad_mlp.nn.export`): ``.safetensors`` in
PyTorch's ``Sequential`` layout (``0.weight``, ``0.bias``, ``2.weight``, …), loadable with
``load_state_dict(..., strict=True)``; ``.onnx`` a Gemm + activation graph (needs ``onnx``).
A model saved with ``meta={"input_scale": c}`` (``digits --scale``) keeps it: in the safetensors
metadata, and as a first Mul node in the ONNX graph.  Exit status 0, or 2 with one ``error:`` line.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np

from ..files import OutputPathError, check_output_path
from ..nn.export import export_onnx, save_safetensors
from ..nn.layers import MLP
from ..nn.serialize import ModelFileError, load_with_meta
from . import Parser, UsageError

__all__ = ["main"]

FORMATS = (".safetensors", ".onnx")


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tinygrad_mlp export",
                description="Export a model saved by tinygrad_mlp (e.g. `digits --save MODEL.npz`) to "
                            "safetensors (PyTorch's Sequential layout) or ONNX, chosen by OUT's suffix.")
    p.add_argument("model", metavar="MODEL.npz", help="the saved model")
    p.add_argument("out", metavar="OUT.safetensors|OUT.onnx", help="the file to write")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as e:
        print(f"error: {e}\n\n{_parser().format_usage()}", file=sys.stderr, end="")
        return 2
    suffix = next((s for s in FORMATS if args.out.lower().endswith(s)), None)
    if suffix is None:
        print(f"error: OUT: expected a name ending in {' or '.join(FORMATS)}, got {args.out!r}", file=sys.stderr)
        return 2
    try:
        check_output_path(args.out, "OUT")  # before reading anything
        model, meta = load_with_meta(args.model)
        if not isinstance(model, MLP):
            raise ValueError(f"MODEL: {args.model!r} holds a dict of arrays, not an MLP saved with save(model, ...)")
        scale = meta.get("input_scale", 1.0)
        if np.size(scale) != 1:
            raise ValueError(f"MODEL: {args.model!r} has an input_scale of shape {np.shape(scale)}; "
                             f"only one number can be exported")
        scale = float(np.asarray(scale, dtype=np.float64).reshape(()))
        if suffix == ".onnx":
            written = export_onnx(model, args.out, input_scale=scale)
        else:
            written = save_safetensors(model, args.out, input_scale=scale)
    except (ModelFileError, OutputPathError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"error: MODEL: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: OUT: cannot write {args.out!r} ({e.strerror or e})", file=sys.stderr)
        return 2
    note = f" (inputs are multiplied by {scale:g} first)" if scale != 1.0 and suffix == ".onnx" else (
        f" (multiply inputs by input_scale = {scale:g} from the metadata)" if scale != 1.0 else "")
    print(f"wrote {written}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
