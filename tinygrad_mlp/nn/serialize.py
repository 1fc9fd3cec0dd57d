"""Save and load weights as NumPy ``.npz`` archives: no pickle, atomic writes, bit-exact round trips.

File layout (an ordinary ``.npz``: a zip of ``.npy`` members, each a plain numeric
or fixed-width string array, never an object array)::

    __format__       "tinygrad_mlp/mlp" or "tinygrad_mlp/state_dict"
    __version__      1, or 2 when the file holds __input_scale__ (older readers then refuse it
                     rather than drop the scaling)
    # an MLP adds its architecture ...
    __sizes__        int64 [d₀, d₁, …, d_L]
    __hidden__       "tanh" | "sigmoid" | "relu" | "identity"
    __output__       "identity" | "softmax" | "sigmoid"
    __dtype__        "float64" | "float32"
    __input_scale__  optional: the model's input_scale c, shape () or (d₀,) (h^[0] = c ⊙ x)
    # ... and its parameters W^[l] (shape (d_l, d_{l−1})) and b^[l] (shape (d_l,)), l = 1..L
    W1, b1, …, WL, bL
    # optional metadata given to save(..., meta=...)
    __meta__.NAME

Two ``meta`` names have a meaning, and are checked by :func:`save` and :func:`load`:

``input_scale``
    The older spelling of ``MLP(..., input_scale=c)`` (the ``digits`` command writes it): the
    loaded MLP multiplies its inputs by it, so it predicts from raw inputs as the saved one did
    from scaled ones.  A number or one per input feature.
``input_range``
    ``[lo, hi]``: the smallest and largest value of the training inputs, in the units the loaded
    model takes (raw, before ``input_scale``).  ``predict`` refuses inputs outside it.

:func:`load` reads with ``allow_pickle=False``, so an archive holding an
object array is refused instead of executing whatever it unpickles.  An
``.npz`` written by plain ``np.savez`` (no ``__format__``) loads as a dict.
It reads at most :data:`MAX_FILE_BYTES` (a device such as ``/dev/zero`` is
refused after its first bytes), and refuses an archive with two members of
one name (``W1.npy`` twice: which one wins would be an accident) or a
format version it does not know.

:func:`save` follows the one rule for output paths of :mod:`tinygrad_mlp.files`:
the folder must exist, a symbolic link is written through to its target (the
link stays), and the file is written to a temporary file beside the target,
fsynced, then moved over it with ``os.replace``: a crash at any moment leaves either
the old complete file or the new complete file, never a torn one.
"""
from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..autograd import functional as F
from ..autograd.tensor import Tensor
from ..files import atomic_write, check_output_path
from .layers import MLP, _input_scale

__all__ = ["save", "load", "load_with_meta", "ModelFileError", "ModelFileNotFoundError", "FORMAT_VERSION",
           "MAX_FILE_BYTES"]

FORMAT_VERSION = 2
MAX_FILE_BYTES = 2**31  # 2 GiB: 268 million float64 parameters, far past a CPU MLP
_MLP = "tinygrad_mlp/mlp"
_STATE = "tinygrad_mlp/state_dict"
_META = "__meta__."
_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


class ModelFileError(ValueError):
    """A weights file that cannot be read back: the message names the path and what is wrong."""


class ModelFileNotFoundError(ModelFileError, FileNotFoundError):
    """The weights file does not exist (both a :class:`ModelFileError` and a ``FileNotFoundError``)."""

    def __str__(self) -> str:  # OSError would print its args tuple
        return str(self.args[0]) if self.args else ""


# ----------------------------------------------------------------------------- save
def _check_path_type(path: Any) -> str:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    raw = os.fspath(path)
    return os.fsdecode(raw) if isinstance(raw, bytes) else raw


def _numeric(value: Any, where: str) -> np.ndarray:
    arr = value.data if isinstance(value, Tensor) else value
    try:
        arr = np.asarray(arr)
    except (TypeError, ValueError) as e:  # ragged lists
        raise TypeError(f"{where}: expected a numeric array, got {type(value).__name__} ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected a numeric array (bool, int or float), got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{where}: expected finite values, got NaN or infinity")
    return arr


def _input_range(value: Any) -> tuple[float, float]:
    """meta['input_range'] as (lo, hi); ValueError saying what is wrong."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.shape != (2,):
        raise ValueError(f"expected [lo, hi], two numbers, got dtype {arr.dtype} shape {arr.shape}")
    lo, hi = float(arr[0]), float(arr[1])
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"expected finite lo <= hi, got [{lo!r}, {hi!r}]")
    return lo, hi


def _meta_arrays(meta: Any, obj: Any) -> dict[str, np.ndarray]:
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise TypeError(f"meta: expected a dict of str -> number, str or list of numbers, got {type(meta).__name__}")
    out = {}
    for k, v in meta.items():
        _check_key(k, "meta")
        if isinstance(v, str):
            if k in ("input_scale", "input_range"):
                raise TypeError(f"meta[{k!r}]: expected numbers, got the str {v!r}")
            out[_META + k] = np.array(v)
        else:
            out[_META + k] = _numeric(v, f"meta[{k!r}]")
    if "input_range" in meta:
        try:
            _input_range(out[_META + "input_range"])
        except ValueError as e:
            raise ValueError(f"meta['input_range']: {e}") from None
    if "input_scale" in meta and isinstance(obj, MLP):
        c = _input_scale(out[_META + "input_scale"], obj.sizes[0], obj.dtype)  # names input_scale if wrong
        if obj.input_scale is not None and not np.array_equal(obj.input_scale, c):
            raise ValueError(f"meta['input_scale']: the model already has input_scale {obj.input_scale.tolist()}, "
                             f"and the meta gives {c.tolist()}; give it once (MLP(..., input_scale=...))")
    return out


def _check_key(key: Any, where: str) -> None:
    if not isinstance(key, str):
        raise TypeError(f"{where}: expected str keys, got {type(key).__name__} {key!r}")
    if not key or key.startswith("__") or "\0" in key:
        raise ValueError(f"{where}: expected a non-empty key that does not start with '__' "
                         f"(reserved for the header) and has no NUL, got {key!r}")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: expected a key encodable as UTF-8, got {key!r}") from None


def _arrays_of(obj: Any) -> dict[str, np.ndarray]:
    if isinstance(obj, MLP):
        scaled = obj.input_scale is not None
        arrays = {"__format__": np.array(_MLP), "__version__": np.array(2 if scaled else 1, dtype=np.int64),
                  "__sizes__": np.array(obj.sizes, dtype=np.int64), "__hidden__": np.array(obj.hidden),
                  "__output__": np.array(obj.output), "__dtype__": np.array(np.dtype(obj.dtype).name)}
        if scaled:
            arrays["__input_scale__"] = np.asarray(obj.input_scale)
        for k, v in obj.state_dict().items():
            if not np.isfinite(v).all():
                raise ValueError(f"model_or_state: parameter {k} holds NaN or infinity (did training diverge?)")
            arrays[k] = v
        return arrays
    if isinstance(obj, dict):
        arrays = {"__format__": np.array(_STATE), "__version__": np.array(1, dtype=np.int64)}
        for k, v in obj.items():
            _check_key(k, "model_or_state")
            arrays[k] = _numeric(v, f"model_or_state[{k!r}]")
        return arrays
    raise TypeError(f"model_or_state: expected an MLP or a dict of arrays, got {type(obj).__name__}")


def _write_npz(fh, arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def save(model_or_state: MLP | dict, path: str | os.PathLike, *, meta: dict | None = None) -> Path:
    """Write an :class:`~tinygrad_mlp.nn.MLP` (architecture and W^[l], b^[l]) or a dict of arrays to ``path``.

    Parameters
    ----------
    model_or_state : MLP or dict of str -> array_like
        An MLP is stored with its sizes, activations, dtype and ``input_scale`` so :func:`load`
        rebuilds it; a dict (e.g. ``model.state_dict()``) loads back as a dict.
        Arrays keep their dtype, so a round trip is bit-exact.
    path : str or os.PathLike
        The file to write, used as given (no ``.npz`` suffix is added).  Its folder must
        exist.  An existing file is replaced atomically; a symbolic link is written through
        (its target is replaced, the link stays).
    meta : dict, optional
        Extra values (str, numbers, numeric arrays) stored beside the weights.  Two names
        are checked because they mean something: ``input_range`` ``[lo, hi]``, the range of
        the training inputs, which ``predict`` enforces, and ``input_scale``, the older
        spelling of ``MLP(..., input_scale=...)``.

    Returns
    -------
    pathlib.Path
        The path written (as given: the link, for a link).

    Raises
    ------
    TypeError
        ``model_or_state`` is neither an MLP nor a dict, a value is not numeric, a key is not a str.
    ValueError
        A value holds NaN or infinity, a key is empty or starts with ``__``, ``meta['input_range']``
        is not ``[lo, hi]``, ``meta['input_scale']`` has the wrong shape or contradicts the model's.
    tinygrad_mlp.files.OutputPathError
        A ``ValueError`` naming ``path``: its folder is missing or not writable, it names a
        folder, or a file stands where a folder is needed.  Checked before anything is written.
    tinygrad_mlp.files.OutputWriteError
        An ``OSError`` naming ``path``: the write failed (a full disk); the old file is unchanged.
    """
    raw = _check_path_type(path)
    check_output_path(raw, "path")
    arrays = _arrays_of(model_or_state)
    arrays.update(_meta_arrays(meta, model_or_state))
    atomic_write(raw, lambda fh: _write_npz(fh, arrays), "path")
    return Path(raw)


# ----------------------------------------------------------------------------- load
def _read_archive(p: Path) -> dict[str, np.ndarray]:
    where = repr(str(p))
    limit = MAX_FILE_BYTES
    try:
        with open(p, "rb") as fh:
            size = os.fstat(fh.fileno())
            if stat.S_ISREG(size.st_mode) and size.st_size > limit:
                raise ModelFileError(f"path: {where} is {size.st_size} bytes, more than the {limit}-byte limit "
                                     f"(tinygrad_mlp.nn.serialize.MAX_FILE_BYTES)")
            head = fh.read(4)
            if not head.startswith(b"PK"):  # decided from 4 bytes: /dev/zero is not read on and on
                what = ("a .npy array" if head.startswith(b"\x93NUM") else
                        "an empty file" if not head else "not a zip archive")
                raise ModelFileError(f"path: {where} is not an .npz archive ({what})")
            raw = head + fh.read(limit + 1 - len(head))
    except FileNotFoundError:
        raise ModelFileNotFoundError(f"path: no such file {where}") from None
    except OSError as e:
        raise ModelFileError(f"path: cannot read {where} ({e.strerror or e})") from None
    if len(raw) > limit:
        raise ModelFileError(f"path: {where} goes on past the {limit}-byte limit "
                             f"(tinygrad_mlp.nn.serialize.MAX_FILE_BYTES); reading stopped there")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = zf.infolist()
    except Exception as e:
        raise ModelFileError(f"path: {where} is not a readable .npz archive ({type(e).__name__}: {e})") from None
    seen: dict[str, str] = {}
    for info in members:
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if key in seen:
            raise ModelFileError(f"path: {where} holds two members for the entry {key!r} ({seen[key]!r} and "
                                 f"{info.filename!r}); expected one, so that no copy silently wins")
        seen[key] = info.filename
    if sum(info.file_size for info in members) > limit:
        raise ModelFileError(f"path: {where} unpacks to more than the {limit}-byte limit "
                             f"(tinygrad_mlp.nn.serialize.MAX_FILE_BYTES)")
    try:
        # Every failure of a damaged archive (bad zip, bad CRC, bad .npy header) is reported as one error.
        npz = np.load(io.BytesIO(raw), allow_pickle=False)
        names = list(npz.files)
    except Exception as e:
        raise ModelFileError(f"path: {where} is not a readable .npz archive ({type(e).__name__}: {e})") from None
    out = {}
    for name in names:
        try:
            arr = npz[name]
        except ValueError as e:
            if "allow_pickle" in str(e) or "Object arrays" in str(e):
                raise ModelFileError(f"path: {where} entry {name!r} is an object array, which needs pickle "
                                     f"and is refused (allow_pickle=False)") from None
            raise ModelFileError(f"path: {where} entry {name!r} cannot be read ({e})") from None
        except Exception as e:
            raise ModelFileError(f"path: {where} entry {name!r} cannot be read ({type(e).__name__}: {e})") from None
        out[name] = arr
    return out


def _header_str(arrays: dict, key: str, where: str) -> str:
    if key not in arrays:
        raise ModelFileError(f"path: {where} has no {key!r} entry (not written by tinygrad_mlp.save?)")
    v = arrays[key]
    if v.dtype.kind != "U" or v.shape != ():
        raise ModelFileError(f"path: {where} entry {key!r}: expected a string, got dtype {v.dtype} shape {v.shape}")
    return str(v.item())


def _check_value(arr: np.ndarray, name: str, where: str) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise ModelFileError(f"path: {where} entry {name!r}: expected a numeric array, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ModelFileError(f"path: {where} entry {name!r} holds NaN or infinity")
    return arr


def _scale_from(arrays: dict, meta: dict, d0: int, dtype: np.dtype, where: str) -> np.ndarray | None:
    """The loaded model's input_scale: the header's, or the older meta spelling's; both must agree."""
    found = []
    for entry, value in (("__input_scale__", arrays.get("__input_scale__")),
                         (_META + "input_scale", meta.get("input_scale"))):
        if value is None:
            continue
        if isinstance(value, str) or value.dtype.kind not in "iuf":
            raise ModelFileError(f"path: {where} entry {entry!r}: expected numbers, got {value!r}")
        try:
            found.append((entry, _input_scale(value, d0, dtype)))
        except ValueError as e:
            raise ModelFileError(f"path: {where} entry {entry!r}: {str(e).split(': ', 1)[1]}") from None
    if len(found) == 2 and not np.array_equal(found[0][1], found[1][1]):
        raise ModelFileError(f"path: {where} has two different input scales: '__input_scale__' "
                             f"{found[0][1].tolist()} and '__meta__.input_scale' {found[1][1].tolist()}")
    return found[0][1] if found else None


def _build_mlp(arrays: dict, meta: dict, where: str) -> MLP:
    sizes = arrays.get("__sizes__")
    if sizes is None:
        raise ModelFileError(f"path: {where} has no '__sizes__' entry (the MLP's layer sizes)")
    if sizes.dtype.kind not in "iu" or sizes.ndim != 1 or sizes.size < 2 or (sizes < 1).any():
        raise ModelFileError(f"path: {where} entry '__sizes__': expected at least two positive ints, "
                             f"got {sizes.tolist()!r} (dtype {sizes.dtype})")
    hidden = _header_str(arrays, "__hidden__", where)
    output = _header_str(arrays, "__output__", where)
    dtype_name = _header_str(arrays, "__dtype__", where)
    if hidden not in F.ACTIVATIONS:
        raise ModelFileError(f"path: {where} entry '__hidden__': expected one of {sorted(F.ACTIVATIONS)}, "
                             f"got {hidden!r}")
    if output not in F.OUTPUTS:
        raise ModelFileError(f"path: {where} entry '__output__': expected one of {sorted(F.OUTPUTS)}, got {output!r}")
    if dtype_name not in ("float64", "float32"):
        raise ModelFileError(f"path: {where} entry '__dtype__': expected 'float64' or 'float32', got {dtype_name!r}")
    dtype = np.dtype(dtype_name)
    sizes = [int(s) for s in sizes]
    L = len(sizes) - 1
    expected = {}
    for l in range(1, L + 1):
        expected[f"W{l}"] = (sizes[l], sizes[l - 1])
        expected[f"b{l}"] = (sizes[l],)
    params = {k: v for k, v in arrays.items() if not k.startswith("__")}
    missing = [k for k in expected if k not in params]
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise ModelFileError(f"path: {where} does not match its architecture {sizes}: "
                             f"missing {missing}, unexpected {extra}")
    for k, shape in expected.items():
        arr = _check_value(params[k], k, where)
        if arr.shape != shape:
            raise ModelFileError(f"path: {where} entry {k!r}: expected shape {shape} for sizes {sizes}, "
                                 f"got {arr.shape}")
        if arr.dtype != dtype:
            raise ModelFileError(f"path: {where} entry {k!r}: expected dtype {dtype} (the model's), got {arr.dtype}")
    scale = _scale_from(arrays, meta, sizes[0], dtype, where)
    model = MLP(sizes, hidden=hidden, output=output, weight_init="zeros", bias_init="zeros", dtype=dtype,
                input_scale=scale)
    for l, layer in enumerate(model.layers, 1):
        layer.W.data[...] = params[f"W{l}"]
        layer.b.data[...] = params[f"b{l}"]
    return model


def load_with_meta(path: str | os.PathLike) -> tuple[MLP | dict, dict]:
    """Like :func:`load`, and also return the ``meta`` dict given to :func:`save` (str or ndarray values)."""
    raw = _check_path_type(path)
    if raw == "" or "\0" in raw:
        raise ModelFileError(f"path: expected a file name (non-empty, no NUL byte), got {raw!r}")
    p = Path(raw)
    where = repr(raw)
    arrays = _read_archive(p)
    meta = {k[len(_META):]: (str(v.item()) if v.dtype.kind == "U" and v.shape == () else v)
            for k, v in arrays.items() if k.startswith(_META)}
    arrays = {k: v for k, v in arrays.items() if not k.startswith(_META)}
    if "input_range" in meta:
        try:
            if isinstance(meta["input_range"], str):
                raise ValueError(f"expected [lo, hi], two numbers, got the str {meta['input_range']!r}")
            _input_range(meta["input_range"])
        except ValueError as e:
            raise ModelFileError(f"path: {where} entry '__meta__.input_range': {e}") from None
    if "__format__" not in arrays:  # a plain np.savez archive of arrays
        return {k: _check_value(v, k, where) for k, v in arrays.items()}, meta
    fmt = _header_str(arrays, "__format__", where)
    version = arrays.get("__version__")
    if version is None or version.dtype.kind not in "iu" or version.shape != ():
        raise ModelFileError(f"path: {where} has no integer '__version__' entry")
    if not 1 <= int(version) <= FORMAT_VERSION:
        raise ModelFileError(f"path: {where} has format version {int(version)}; this tinygrad_mlp reads "
                             f"versions 1 to {FORMAT_VERSION}")
    if fmt == _MLP:
        return _build_mlp(arrays, meta, where), meta
    if fmt == _STATE:
        return {k: _check_value(v, k, where) for k, v in arrays.items() if not k.startswith("__")}, meta
    raise ModelFileError(f"path: {where} entry '__format__': expected {_MLP!r} or {_STATE!r}, got {fmt!r}")


def load(path: str | os.PathLike) -> MLP | dict:
    """Read a file written by :func:`save`: an :class:`~tinygrad_mlp.nn.MLP` or a dict of arrays.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MLP or dict of str -> ndarray
        An MLP with the saved architecture, ``input_scale`` and bit-identical parameters, so it
        predicts what the saved one predicted, or the saved dict (a plain ``np.savez`` archive
        also loads as a dict).  A file written with ``meta={"input_scale": c}`` gives an MLP with
        ``input_scale=c``.

    Raises
    ------
    ModelFileNotFoundError
        No file at ``path`` (also a ``FileNotFoundError`` and a ``ValueError``).
    ModelFileError
        A ``ValueError`` naming the path and the problem: not an ``.npz``, damaged bytes,
        more than :data:`MAX_FILE_BYTES`, two members of one name, an unknown format version,
        an object array (refused: loading uses ``allow_pickle=False``), missing entries,
        shapes or dtypes that do not match the architecture, NaN, a malformed ``input_scale``
        or ``input_range``, a path with a NUL byte.
    TypeError
        ``path`` is not a str or path.
    """
    return load_with_meta(path)[0]
