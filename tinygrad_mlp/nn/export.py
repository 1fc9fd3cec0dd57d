"""Moving a trained :class:`~tinygrad_mlp.nn.MLP` to PyTorch (safetensors) and to ONNX runtimes.

Both formats use PyTorch's layout for ``torch.nn.Sequential(Linear, g, Linear, g, …, Linear)``:
layer l's W^[l] (shape (out, in), as here and in ``torch.nn.Linear``) is ``"{2(l−1)}.weight"`` and
b^[l] is ``"{2(l−1)}.bias"``: ``0.weight, 0.bias, 2.weight, 2.bias, …``, the activations sitting
at the odd indices without parameters.  So ``sequential.load_state_dict(tensors, strict=True)``
takes the file as it is.

safetensors is written and read here directly, not through the ``safetensors`` package: the
format is an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape
and byte range, then the raw little-endian bytes.  That is twenty lines, needs no dependency, and
never unpickles anything; the tests check the files against the ``safetensors`` package when it
is installed (the ``[export]`` extra).  The header's ``__metadata__`` keeps what a state dict has
no place for (sizes, activations, the input scaling), so :func:`load_safetensors` rebuilds our MLP.

ONNX needs the ``onnx`` package (``pip install tinygrad_mlp[onnx]``): the graph is
``x → [Mul by input_scale] → Gemm(W^[1], b^[1], transB=1) → g → … → Gemm(W^[L], b^[L]) = logits
→ [Softmax | Sigmoid] = probabilities``, in the model's own dtype.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write, atomic_write_bytes, check_output_path
from .layers import MLP

__all__ = ["save_safetensors", "load_safetensors", "export_onnx", "torch_state_keys"]

_ST_DTYPES = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32"}
_ST_NUMPY = {v: k for k, v in _ST_DTYPES.items()}
_FORMAT = "tinygrad_mlp.MLP"
_HEADER_MAX = 100 * 1024 * 1024  # the safetensors package's own bound on the header


def torch_state_keys(n_layers: int) -> list[tuple[str, str]]:
    """The PyTorch Sequential keys of layer l's weight and bias: [("0.weight", "0.bias"), ("2.weight", …), …]."""
    return [(f"{2 * l}.weight", f"{2 * l}.bias") for l in range(n_layers)]


def _check_model(model: Any) -> MLP:
    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a tinygrad_mlp MLP, got {type(model).__name__}")
    return model


def _scale(input_scale, model: MLP) -> float:
    """The one input factor to record: the argument, else the model's own ``input_scale``, else 1."""
    if input_scale is None:
        input_scale = 1.0 if model.input_scale is None else model.input_scale
    try:
        c = float(np.asarray(input_scale, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise ValueError(f"input_scale: expected one finite positive number, got {input_scale!r}") from None
    if not np.isfinite(c) or c <= 0:
        raise ValueError(f"input_scale: expected one finite positive number, got {input_scale!r}")
    return c


def save_safetensors(model: MLP, path: str | os.PathLike, input_scale: float | None = None) -> Path:
    """Write ``model``'s parameters as a safetensors file in PyTorch's Sequential layout.

    Parameters
    ----------
    model : MLP
    path : str or os.PathLike
        The file to write (its folder must exist); replaced atomically.
    input_scale : float, optional
        The factor the inputs were multiplied by in training (``digits --scale``: 1/16), kept in the
        header's metadata; a PyTorch user multiplies the inputs by it before the Sequential.
        Defaults to the model's own ``input_scale`` (a loaded ``digits --save`` model has one), else 1.

    Returns
    -------
    pathlib.Path
    """
    model = _check_model(model)
    scale = _scale(input_scale, model)
    p = check_output_path(path, "path")
    header: dict[str, Any] = {"__metadata__": {
        "format": _FORMAT, "sizes": json.dumps(model.sizes), "hidden": model.hidden, "output": model.output,
        "input_scale": repr(scale), "layout": "torch.nn.Sequential(Linear, g, ..., Linear)"}}
    blobs, offset = [], 0
    for layer, (wk, bk) in zip(model.layers, torch_state_keys(model.n_layers)):
        for key, t in ((wk, layer.W), (bk, layer.b)):
            arr = np.ascontiguousarray(t.data, dtype=t.data.dtype.newbyteorder("<"))
            raw = arr.tobytes()
            header[key] = {"dtype": _ST_DTYPES[arr.dtype], "shape": list(arr.shape),
                           "data_offsets": [offset, offset + len(raw)]}
            blobs.append(raw)
            offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the safetensors package writes it

    def write(fh):
        fh.write(struct.pack("<Q", len(text)))
        fh.write(text)
        for raw in blobs:
            fh.write(raw)

    return atomic_write(p, write, "path")


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor of a safetensors file (F32/F64 only) and its ``__metadata__``; ValueError naming ``path``."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {type(path).__name__}")
    p = Path(path)
    where = repr(str(p))
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError(f"path: {where} is too short to be a safetensors file")
            (n,) = struct.unpack("<Q", head)
            if n > min(_HEADER_MAX, size - 8):
                raise ValueError(f"path: {where} is not a safetensors file (header length {n} "
                                 f"beyond the file's {size} bytes)")
            header_bytes = fh.read(n)
            data = fh.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"path: no file {where}") from None
    except (IsADirectoryError, PermissionError) as e:
        raise ValueError(f"path: cannot read {where} ({e.strerror})") from None
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"path: {where} has a damaged safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"path: {where} has a damaged safetensors header (not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError(f"path: {where} has a damaged __metadata__ (expected strings)")
    tensors, end = {}, 0
    for key, info in sorted(header.items(), key=lambda kv: kv[1].get("data_offsets", [0])[0]
                            if isinstance(kv[1], dict) else 0):
        if not isinstance(info, dict) or info.get("dtype") not in _ST_NUMPY:
            raise ValueError(f"path: {where} tensor {key!r}: expected dtype F32 or F64, got "
                             f"{info.get('dtype') if isinstance(info, dict) else info!r}")
        shape, off = info.get("shape"), info.get("data_offsets")
        if (not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape)
                or not isinstance(off, list) or len(off) != 2 or not all(isinstance(o, int) for o in off)):
            raise ValueError(f"path: {where} tensor {key!r} has a damaged shape or data_offsets")
        dt = _ST_NUMPY[info["dtype"]]
        lo, hi = off
        if lo != end or hi - lo != int(np.prod(shape, dtype=np.int64)) * dt.itemsize or hi > len(data):
            raise ValueError(f"path: {where} tensor {key!r}: data_offsets {off} do not match its shape "
                             f"{shape} and the file")
        tensors[key] = np.frombuffer(data[lo:hi], dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
        end = hi
    if end != len(data):
        raise ValueError(f"path: {where} has {len(data) - end} bytes after its last tensor")
    return tensors, meta


def load_safetensors(path: str | os.PathLike, hidden: str | None = None, output: str | None = None) -> MLP:
    """Our MLP from a safetensors file in PyTorch's Sequential layout (``0.weight``, ``0.bias``, ``2.weight``, …).

    The sizes come from the weights' shapes.  ``hidden`` and ``output`` (the activations, which a
    state dict does not record) come from the file's metadata when :func:`save_safetensors` wrote
    it; for a file saved by PyTorch pass them.  An input scaling recorded in the metadata becomes the
    model's ``input_scale``, so the loaded model takes raw inputs as the saved one did.
    """
    tensors, meta = read_safetensors(path)
    where = repr(str(path))
    hidden = hidden if hidden is not None else meta.get("hidden")
    output = output if output is not None else meta.get("output")
    if hidden is None or output is None:
        raise ValueError(f"hidden: {where} does not record its activations (not written by save_safetensors); "
                         f"pass hidden= and output=")
    n = len(tensors) // 2
    keys = torch_state_keys(n)
    expected = {k for pair in keys for k in pair}
    if len(tensors) % 2 or set(tensors) != expected:
        raise ValueError(f"path: {where}: expected the keys of a Sequential of Linear layers "
                         f"{sorted(expected)}, got {sorted(tensors)}")
    sizes = [tensors["0.weight"].shape[1] if tensors["0.weight"].ndim == 2 else -1]
    for wk, bk in keys:
        w, b = tensors[wk], tensors[bk]
        if w.ndim != 2 or w.shape[1] != sizes[-1] or b.shape != (w.shape[0],):
            raise ValueError(f"path: {where}: {wk} of shape {w.shape} and {bk} of shape {b.shape} "
                             f"do not follow a layer of {sizes[-1]} inputs")
        sizes.append(w.shape[0])
    dtypes = {t.dtype for t in tensors.values()}
    if len(dtypes) != 1:
        raise ValueError(f"path: {where}: expected one dtype for every tensor, got {sorted(map(str, dtypes))}")
    scale = float(meta.get("input_scale", 1.0))
    model = MLP(sizes, hidden=hidden, output=output, dtype=dtypes.pop(), seed=0,
                input_scale=None if scale == 1.0 else scale)
    model.load_state_dict({f"{k}{l}": tensors[key] for l, (wk, bk) in enumerate(keys, 1)
                           for k, key in (("W", wk), ("b", bk))})
    return model


def export_onnx(model: MLP, path: str | os.PathLike, input_scale: float | None = None, opset: int = 17) -> Path:
    """Write ``model`` as an ONNX graph of Gemm and activation nodes (needs the ``onnx`` package).

    Inputs ``x`` of shape (n, d₀) in the model's dtype; outputs ``logits`` (z^[L]) and, for a
    softmax or sigmoid output layer, ``probabilities`` (h^[L]).  ``input_scale`` ≠ 1 adds a Mul
    node first, so raw inputs go in as they did into ``predict``.
    """
    model = _check_model(model)
    scale = _scale(input_scale, model)
    p = check_output_path(path, "path")
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("export_onnx needs the onnx package: pip install 'tinygrad_mlp[onnx]'") from None
    elem = TensorProto.DOUBLE if model.dtype == np.float64 else TensorProto.FLOAT
    act = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "identity": None}
    nodes, inits = [], []
    h = "x"
    if scale != 1.0:
        inits.append(numpy_helper.from_array(np.array(scale, dtype=model.dtype), "input_scale"))
        nodes.append(helper.make_node("Mul", ["x", "input_scale"], ["x_scaled"]))
        h = "x_scaled"
    last = model.n_layers - 1
    for l, layer in enumerate(model.layers):
        w, b = f"W{l + 1}", f"b{l + 1}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(layer.W.data), w))
        inits.append(numpy_helper.from_array(np.ascontiguousarray(layer.b.data), b))
        z = "logits" if l == last else f"z{l + 1}"
        nodes.append(helper.make_node("Gemm", [h, w, b], [z], transB=1))  # z = h Wᵀ + b, a batch in rows
        h = z
        if l < last and act[model.hidden] is not None:
            h = f"h{l + 1}"
            nodes.append(helper.make_node(act[model.hidden], [z], [h]))
    outputs = [helper.make_tensor_value_info("logits", elem, ["n", model.sizes[-1]])]
    if model.output == "softmax":
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
    elif model.output == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["logits"], ["probabilities"]))
    if model.output != "identity":
        outputs.append(helper.make_tensor_value_info("probabilities", elem, ["n", model.sizes[-1]]))
    graph = helper.make_graph(nodes, "tinygrad_mlp_MLP",
                              [helper.make_tensor_value_info("x", elem, ["n", model.sizes[0]])], outputs, inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                   producer_name="tinygrad_mlp")
    onnx_model.ir_version = 8  # readable by onnxruntime releases from 1.14 on
    onnx.checker.check_model(onnx_model)
    return atomic_write_bytes(p, onnx_model.SerializeToString(), "path")
