"""Save and load weights as NumPy ``.npz`` archives: no pickle, atomic writes, bit-exact round trips.

File layout (an ordinary ``.npz``: a zip of ``.npy`` members, each a plain numeric
or fixed-width string array, never an object array)::

    __format__   "tinygrad_mlp/mlp" or "tinygrad_mlp/state_dict"
    __version__  1
    # an MLP adds its architecture ...
    __sizes__    int64 [d₀, d₁, …, d_L]
    __hidden__   "tanh" | "sigmoid" | "relu" | "identity"
    __output__   "identity" | "softmax" | "sigmoid"
    __dtype__    "float64" | "float32"
    # ... and its parameters W^[l] (shape (d_l, d_{l−1})) and b^[l] (shape (d_l,)), l = 1..L
    W1, b1, …, WL, bL
    # optional metadata given to save(..., meta=...)
    __meta__.NAME

:func:`load` reads with ``allow_pickle=False``, so an archive holding an
object array is refused instead of executing whatever it unpickles.  An
``.npz`` written by plain ``np.savez`` (no ``__format__``) loads as a dict.

:func:`save` writes a temporary file in the target's directory, flushes and
fsyncs it, then ``os.replace``\\ s it over the target: a crash at any moment
leaves either the old complete file or the new complete file, never a torn one.
"""
from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..autograd import functional as F
from .layers import MLP
from ..autograd.tensor import Tensor

__all__ = ["save", "load", "load_with_meta", "ModelFileError", "ModelFileNotFoundError", "FORMAT_VERSION"]

FORMAT_VERSION = 1
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
def _check_path(path: Any) -> Path:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if str(path) == "":
        raise ValueError("path: expected a file name, got ''")
    return p


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


def _meta_arrays(meta: Any) -> dict[str, np.ndarray]:
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise TypeError(f"meta: expected a dict of str -> number, str or list of numbers, got {type(meta).__name__}")
    out = {}
    for k, v in meta.items():
        _check_key(k, "meta")
        if isinstance(v, str):
            out[_META + k] = np.array(v)
        else:
            out[_META + k] = _numeric(v, f"meta[{k!r}]")
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
        arrays = {"__format__": np.array(_MLP), "__version__": np.array(FORMAT_VERSION, dtype=np.int64),
                  "__sizes__": np.array(obj.sizes, dtype=np.int64), "__hidden__": np.array(obj.hidden),
                  "__output__": np.array(obj.output), "__dtype__": np.array(np.dtype(obj.dtype).name)}
        for k, v in obj.state_dict().items():
            if not np.isfinite(v).all():
                raise ValueError(f"model_or_state: parameter {k} holds NaN or infinity (did training diverge?)")
            arrays[k] = v
        return arrays
    if isinstance(obj, dict):
        arrays = {"__format__": np.array(_STATE), "__version__": np.array(FORMAT_VERSION, dtype=np.int64)}
        for k, v in obj.items():
            _check_key(k, "model_or_state")
            arrays[k] = _numeric(v, f"model_or_state[{k!r}]")
        return arrays
    raise TypeError(f"model_or_state: expected an MLP or a dict of arrays, got {type(obj).__name__}")


def save(model_or_state: MLP | dict, path: str | os.PathLike, *, meta: dict | None = None) -> Path:
    """Write an :class:`~tinygrad_mlp.nn.MLP` (architecture and W^[l], b^[l]) or a dict of arrays to ``path``.

    Parameters
    ----------
    model_or_state : MLP or dict of str -> array_like
        An MLP is stored with its sizes, activations and dtype so :func:`load`
        rebuilds it; a dict (e.g. ``model.state_dict()``) loads back as a dict.
        Arrays keep their dtype, so a round trip is bit-exact.
    path : str or os.PathLike
        The file to write, used as given (no ``.npz`` suffix is added).  Its
        directory must exist.  An existing file is replaced atomically.
    meta : dict, optional
        Extra values (str, numbers, numeric arrays) stored beside the weights,
        e.g. ``{"input_scale": 1 / 16}`` for the ``predict`` command.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        ``model_or_state`` is neither an MLP nor a dict, a value is not numeric, a key is not a str.
    ValueError
        A value holds NaN or infinity, a key is empty or starts with ``__``, or ``path`` is a directory.
    OSError
        The directory is missing or not writable (the target is left untouched).
    """
    p = _check_path(path)
    arrays = _arrays_of(model_or_state)
    arrays.update(_meta_arrays(meta))
    if p.is_dir():
        raise ValueError(f"path: expected a file name, got the directory {str(p)!r}")
    directory = p.parent
    # The temp file must live in the target's directory: os.replace is atomic only within one file system.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for key, arr in arrays.items():
                    with zf.open(key + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, arr, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _default_mode(p))
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)
    return p


def _default_mode(p: Path) -> int:
    """Keep an existing file's permissions; a new file gets 0o666 minus the umask, as open() would give."""
    try:
        return p.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0o022)
        os.umask(mask)
        return 0o666 & ~mask


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; some platforms and file systems cannot open a directory."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ----------------------------------------------------------------------------- load
def _read_archive(p: Path) -> dict[str, np.ndarray]:
    where = repr(str(p))
    try:
        with open(p, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ModelFileNotFoundError(f"path: no such file {where}") from None
    except OSError as e:
        raise ModelFileError(f"path: cannot read {where} ({e.strerror or e})") from None
    if not raw.startswith(b"PK"):
        what = "a .npy array" if raw.startswith(b"\x93NUMPY") else ("an empty file" if not raw else "not a zip archive")
        raise ModelFileError(f"path: {where} is not an .npz archive ({what})")
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


def _build_mlp(arrays: dict, where: str) -> MLP:
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
    model = MLP(sizes, hidden=hidden, output=output, weight_init="zeros", bias_init="zeros", dtype=dtype)
    for l, layer in enumerate(model.layers, 1):
        layer.W.data[...] = params[f"W{l}"]
        layer.b.data[...] = params[f"b{l}"]
    return model


def load_with_meta(path: str | os.PathLike) -> tuple[MLP | dict, dict]:
    """Like :func:`load`, and also return the ``meta`` dict given to :func:`save` (str or ndarray values)."""
    p = _check_path(path)
    where = repr(str(p))
    arrays = _read_archive(p)
    meta = {k[len(_META):]: (str(v.item()) if v.dtype.kind == "U" else v)
            for k, v in arrays.items() if k.startswith(_META)}
    arrays = {k: v for k, v in arrays.items() if not k.startswith(_META)}
    if "__format__" not in arrays:  # a plain np.savez archive of arrays
        return {k: _check_value(v, k, where) for k, v in arrays.items()}, meta
    fmt = _header_str(arrays, "__format__", where)
    version = arrays.get("__version__")
    if version is None or version.dtype.kind not in "iu" or version.shape != ():
        raise ModelFileError(f"path: {where} has no integer '__version__' entry")
    if int(version) > FORMAT_VERSION:
        raise ModelFileError(f"path: {where} has format version {int(version)}; this tinygrad_mlp reads "
                             f"up to {FORMAT_VERSION}")
    if fmt == _MLP:
        return _build_mlp(arrays, where), meta
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
        An MLP with the saved architecture and bit-identical parameters, or
        the saved dict (a plain ``np.savez`` archive also loads as a dict).

    Raises
    ------
    ModelFileNotFoundError
        No file at ``path`` (also a ``FileNotFoundError`` and a ``ValueError``).
    ModelFileError
        A ``ValueError`` naming the path and the problem: not an ``.npz``,
        damaged bytes, an object array (refused: loading uses ``allow_pickle=False``),
        missing entries, shapes or dtypes that do not match the architecture, NaN.
    TypeError
        ``path`` is not a str or path.
    """
    return load_with_meta(path)[0]
