"""Every file a command or ``save`` writes: one rule for output paths, one atomic write.

The rule, the same for every flag of every command (``-o``, ``--json``, ``--plots``, ``--save``, ...):

* the path names a file: not an existing directory, not a name ending in a path separator;
* its folder must already exist and be writable (nothing creates folders behind the user's back);
* a symbolic link is written *through*: the file it points to is replaced, the link stays, as
  editors do;
* ``check_output_path`` says all this up front, before any long work starts, so a typo costs
  nothing; :func:`atomic_write` writes to a temporary file beside the target, fsyncs it, then
  ``os.replace``\\ s it over the target, so a crash or a full disk leaves the old file whole or the
  new one whole, never a torn one.

A folder output (``--plots DIR``) follows the same rule with ``kind="folder"``: the folder itself may
be created, but only inside an existing, writable parent.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, IO

__all__ = ["OutputPathError", "check_output_path", "atomic_write", "atomic_write_text", "atomic_write_bytes"]


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the flag or argument."""


def check_output_path(path: str | os.PathLike, name: str = "path", kind: str = "file") -> Path:
    """Check that ``path`` can be written as a ``kind`` ("file" or "folder"), before any work; return it.

    ``name`` is what the user typed for it (``"--json"``, ``"path"``) and starts every message.
    For a file, a symbolic link is followed, so the check is about the file that will be replaced.
    """
    raw = os.fspath(path)
    if isinstance(raw, bytes):
        raw = os.fsdecode(raw)
    if not isinstance(raw, str) or not raw:
        raise OutputPathError(f"{name}: expected a file path, got {path!r}")
    if "\0" in raw:
        raise OutputPathError(f"{name}: expected a file path, got one containing a NUL byte: {raw!r}")
    p = Path(raw)
    if kind == "file":
        if raw.endswith((os.sep, "/")) or p.is_dir():
            raise OutputPathError(f"{name}: expected a file name, got the folder {raw!r}")
        if p.is_symlink():
            p = Path(os.path.realpath(p))
            if p.is_dir():
                raise OutputPathError(f"{name}: {raw!r} is a link to the folder {str(p)!r}, expected a file")
    elif kind == "folder":
        if p.exists() and not p.is_dir():
            raise OutputPathError(f"{name}: expected a folder, got the existing file {raw!r}")
        if p.is_dir():
            if not os.access(p, os.W_OK | os.X_OK):
                raise OutputPathError(f"{name}: the folder {raw!r} is not writable")
            return p
    else:
        raise ValueError(f"kind: expected 'file' or 'folder', got {kind!r}")
    parent = p.parent
    if not parent.exists():
        raise OutputPathError(f"{name}: the folder {str(parent)!r} does not exist (create it first)")
    if not parent.is_dir():
        raise OutputPathError(f"{name}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{name}: the folder {str(parent)!r} is not writable")
    return p


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None], name: str = "path") -> Path:
    """Write a file through ``write(fh)`` into a temporary file, fsync it, then replace ``path`` with it.

    A symbolic link at ``path`` is written through (its target is replaced). An existing file keeps
    its permissions. On any failure the temporary file is removed and the old file is untouched.
    """
    p = check_output_path(path, name)
    directory = p.parent
    # The temp file must live in the target's folder: os.replace is atomic only within one file system.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
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


def atomic_write_bytes(path: str | os.PathLike, data: bytes, name: str = "path") -> Path:
    return atomic_write(path, lambda fh: fh.write(data), name)


def atomic_write_text(path: str | os.PathLike, text: str, name: str = "path", encoding: str = "utf-8") -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode(encoding)), name)


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
