"""Every file a command or ``save`` writes: one rule for output paths, one atomic write.

The rule, the same for every flag of every command (``-o``, ``--json``, ``--plots``, ``--save``, ...)
and for :func:`tinygrad_mlp.save`'s ``path``:

* the path names a file: not an existing folder, not a name ending in a path separator, no NUL byte;
* its folder must already exist and be writable (nothing creates folders behind the user's back);
* a symbolic link is written *through*: the file it points to is replaced, the link stays, as
  editors do;
* an existing device or pipe (``/dev/null``, ``/dev/stdout``, a FIFO) is written to directly: it
  cannot be replaced by a rename, and replacing it would destroy the device node;
* ``check_output_path`` says all this up front, before any long work starts, so a typo costs
  nothing; :func:`atomic_write` writes to a temporary file beside the target, fsyncs it, then
  ``os.replace``\\ s it over the target, so a crash or a full disk leaves the old file whole or the
  new one whole, never a torn one, and a failed write leaves no temporary file behind.

A folder output (``--plots DIR``) follows the same rule with ``kind="folder"``: the folder itself may
be created, but only inside an existing, writable parent.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Callable, IO

__all__ = ["OutputPathError", "OutputWriteError", "check_output_path", "atomic_write", "atomic_write_text",
           "atomic_write_bytes"]


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the flag or argument."""


class OutputWriteError(OSError):
    """Writing an output failed (a full disk, a vanished folder); the message names the flag and the file.

    ``errno`` and ``filename`` are those of the failure.  The old file, if any, is left as it was.
    """

    def __str__(self) -> str:  # OSError would print "[Errno n] None: ..." once errno is set
        return str(self.args[0]) if self.args else ""


def _existing_kind(p: Path) -> str | None:
    """What ``p`` is after following links: "file", "folder", "other" (device, pipe, socket) or None."""
    try:
        mode = os.stat(p).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_ISREG(mode) else "other"


def check_output_path(path: str | os.PathLike, name: str = "path", kind: str = "file") -> Path:
    """Check that ``path`` can be written as a ``kind`` ("file" or "folder"), before any work; return it.

    ``name`` is what the user typed for it (``"--json"``, ``"path"``) and starts every message.
    For a file, a symbolic link is followed, so the check (and the returned path) is about the file
    that will be replaced.
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
        what = _existing_kind(p)
        if raw.endswith((os.sep, "/")):
            raise OutputPathError(f"{name}: expected a file name, got {raw!r}, which ends in a path separator "
                                  f"(a folder)")
        if what == "folder":
            if p.is_symlink():
                raise OutputPathError(f"{name}: {raw!r} is a link to the folder "
                                      f"{os.path.realpath(p)!r}, expected a file")
            raise OutputPathError(f"{name}: expected a file name, got the folder {raw!r}")
        if what == "other":  # /dev/null, /dev/stdout, a FIFO: written in place, never renamed over
            if not os.access(p, os.W_OK):
                raise OutputPathError(f"{name}: {raw!r} is not writable")
            return p
        if p.is_symlink():
            p = Path(os.path.realpath(p))
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
    parent_kind = _existing_kind(parent)
    if parent_kind is None:
        # A file further up ("file.txt/sub/x") is named as such, not as a missing folder.
        for up in parent.parents:
            if _existing_kind(up) not in (None, "folder"):
                raise OutputPathError(f"{name}: {str(up)!r} is a file, not a folder")
        raise OutputPathError(f"{name}: the folder {str(parent)!r} does not exist (create it first)")
    if parent_kind != "folder":
        raise OutputPathError(f"{name}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{name}: the folder {str(parent)!r} is not writable")
    return p


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None], name: str = "path") -> Path:
    """Write a file through ``write(fh)`` into a temporary file, fsync it, then replace ``path`` with it.

    A symbolic link at ``path`` is written through (its target is replaced); a device or pipe is
    written directly.  An existing file keeps its permissions.  On any failure the temporary file
    is removed and the old file is untouched; an ``OSError`` comes back as :class:`OutputWriteError`
    naming ``name`` and the file.  Returns the file written (the link's target for a link).
    """
    p = check_output_path(path, name)
    if _existing_kind(p) == "other":
        try:
            with open(p, "wb") as fh:
                write(fh)
        except OSError as e:
            raise _write_error(e, name, p, atomic=False) from e
        return p
    directory = p.parent
    try:
        # The temp file must live in the target's folder: os.replace is atomic only within one file system.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as e:
        raise _write_error(e, name, p) from e
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _default_mode(p))
        os.replace(tmp, p)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and not isinstance(e, OutputWriteError):
            raise _write_error(e, name, p) from e
        raise
    _fsync_dir(directory)
    return p


def _write_error(e: OSError, name: str, p: Path, atomic: bool = True) -> OutputWriteError:
    kept = "; the old file there, if any, is unchanged" if atomic else ""
    err = OutputWriteError(f"{name}: cannot write {str(p)!r} ({e.strerror or e}){kept}")
    err.errno, err.strerror, err.filename = e.errno, e.strerror, str(p)
    return err


def atomic_write_bytes(path: str | os.PathLike, data: bytes, name: str = "path") -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda fh: fh.write(data), name)


def atomic_write_text(path: str | os.PathLike, text: str, name: str = "path", encoding: str = "utf-8") -> Path:
    """:func:`atomic_write` of ``text`` encoded (UTF-8 by default)."""
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
