"""The one rule for output paths and the atomic write (tinygrad_mlp.files), tested directly.

Every expectation is the file system's own word: what ``os.stat``, ``os.readlink`` and
``Path.read_bytes`` say after the call, not the module's return values.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tinygrad_mlp.files import (OutputPathError, OutputWriteError, atomic_write, atomic_write_bytes,
                                atomic_write_text, check_output_path)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def never_replace_a_device(monkeypatch):
    """Some tests write to /dev/full and /dev/null. Should the code under test ever try to rename a
    temp file over a device node (which, as root, destroys the device for the whole machine), stop
    it before the harm is done: the test then fails instead."""
    real_replace = os.replace

    def guarded(src, dst, *a, **k):
        if os.path.realpath(dst).startswith("/dev/"):
            raise AssertionError(f"atomic_write tried to replace the device node {dst}")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", guarded)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------- the rule, checked up front
def test_a_new_file_in_an_existing_folder_is_fine(tmp_path):
    assert check_output_path(tmp_path / "out.json", "--json") == tmp_path / "out.json"
    assert names(tmp_path) == []  # checking writes nothing


def test_a_missing_folder_is_refused_not_created(tmp_path):
    with pytest.raises(OutputPathError, match=r"^--json: the folder .*nope/deeper' does not exist \(create it first\)"):
        check_output_path(tmp_path / "nope" / "deeper" / "out.json", "--json")
    with pytest.raises(OutputPathError, match=r"^--plots: the folder .*nope' does not exist"):
        check_output_path(tmp_path / "nope" / "pics", "--plots", kind="folder")
    assert names(tmp_path) == []


def test_a_trailing_slash_names_a_folder_and_is_refused_for_a_file(tmp_path):
    with pytest.raises(OutputPathError, match=r"^--json: expected a file name, got .*somedir/', which ends in a path"):
        check_output_path(str(tmp_path / "somedir") + "/", "--json")
    with pytest.raises(OutputPathError, match=r"^-o: expected a file name, got the folder"):
        check_output_path(tmp_path, "-o")
    assert names(tmp_path) == []


def test_a_file_where_a_folder_is_needed_is_named(tmp_path):
    (tmp_path / "f.txt").write_text("keep")
    with pytest.raises(OutputPathError, match=r"^--json: .*f\.txt' is a file, not a folder"):
        check_output_path(tmp_path / "f.txt" / "out.json", "--json")
    with pytest.raises(OutputPathError, match=r"^--json: .*f\.txt' is a file, not a folder"):
        check_output_path(tmp_path / "f.txt" / "sub" / "out.json", "--json")
    with pytest.raises(OutputPathError, match=r"^--plots: expected a folder, got the existing file .*f\.txt'"):
        check_output_path(tmp_path / "f.txt", "--plots", kind="folder")
    with pytest.raises(OutputPathError, match=r"^--plots: .*f\.txt' is a file, not a folder"):
        check_output_path(tmp_path / "f.txt" / "pics", "--plots", kind="folder")
    assert (tmp_path / "f.txt").read_text() == "keep"


@pytest.mark.parametrize("bad", ["", "a\0b.json"])
def test_empty_and_nul_paths_are_named(bad):
    with pytest.raises(OutputPathError, match=r"^--json: expected a file path"):
        check_output_path(bad, "--json")


def test_a_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("this user (root?) can write a read-only folder, so it is not refused")
        with pytest.raises(OutputPathError, match=r"^-o: the folder .*ro' is not writable"):
            check_output_path(ro / "x.md", "-o")
        with pytest.raises(OutputPathError, match=r"^-o: the folder .*ro' is not writable"):
            atomic_write_text(ro / "x.md", "text", "-o")
        with pytest.raises(OutputPathError, match=r"^--plots: the folder .*ro' is not writable"):
            check_output_path(ro, "--plots", kind="folder")
        assert names(ro) == []
    finally:
        ro.chmod(0o755)


def test_kind_must_be_file_or_folder(tmp_path):
    with pytest.raises(ValueError, match="kind: expected 'file' or 'folder', got 'dir'"):
        check_output_path(tmp_path / "x", kind="dir")


# ----------------------------------------------------------------------- the atomic write
def test_atomic_write_replaces_the_old_file_and_keeps_its_mode(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(path, "new ü")
    assert path.read_bytes() == "new ü".encode() and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert names(tmp_path) == ["out.txt"]


def test_a_new_file_gets_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "new.bin", b"\x00\x01")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o640


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")

    def half(fh):
        fh.write(b"{\"half\": ")
        raise RuntimeError("stopped mid-write")

    with pytest.raises(RuntimeError, match="stopped mid-write"):
        atomic_write(path, half, "--json")
    assert path.read_text() == "old" and names(tmp_path) == ["out.json"]


_FULL_DISK = r"""
import resource, signal, sys
from tinygrad_mlp.files import OutputWriteError, atomic_write_bytes
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    atomic_write_bytes(sys.argv[1], b"x" * 100_000, "--json")
except OutputWriteError as e:
    print(e)
    sys.exit(3)
"""


def test_a_write_that_fails_for_lack_of_space_leaves_the_old_file_and_no_temp(tmp_path):
    """A real failing write(2): the file-size limit stops it as a full disk would."""
    path = tmp_path / "out.json"
    path.write_text("old, complete")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", _FULL_DISK, str(path)], capture_output=True, text=True, env=env)
    assert r.returncode == 3, r.stderr
    assert r.stdout.startswith(f"--json: cannot write {str(path)!r} (File too large); the old file")
    assert path.read_text() == "old, complete" and names(tmp_path) == ["out.json"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_dev_full_is_written_in_place_fails_clearly_and_survives():
    """A device cannot be replaced by a rename: it is written directly, and never replaced."""
    before = set(os.listdir("/dev"))
    with pytest.raises(OutputWriteError, match=r"^--json: cannot write '/dev/full' \(No space left on device\)$") as e:
        atomic_write_text("/dev/full", "x" * 10_000, "--json")
    assert e.value.errno is not None and e.value.filename == "/dev/full"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert set(os.listdir("/dev")) == before  # no temp file left beside it


def test_a_link_to_dev_full_fails_and_keeps_the_link(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    link = tmp_path / "out.json"
    link.symlink_to("/dev/full")
    with pytest.raises(OutputWriteError, match="No space left on device"):
        atomic_write_text(link, "x" * 10_000, "--json")
    assert link.is_symlink() and names(tmp_path) == ["out.json"]


def test_dev_null_takes_the_write(tmp_path):
    if not os.path.exists("/dev/null"):
        pytest.skip("needs /dev/null")
    assert atomic_write_text("/dev/null", "discarded") == Path("/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic_write_bytes(fifo, b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and names(tmp_path) == ["pipe"]


# ----------------------------------------------------------------------- symbolic links are written through
def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "report.json"
    target.write_text("old")
    target.chmod(0o600)
    link = tmp_path / "report.json"
    link.symlink_to(os.path.join("data", "report.json"))
    assert check_output_path(link, "--json") == target.resolve()
    assert atomic_write_text(link, "new", "--json") == target.resolve()
    assert link.is_symlink() and os.readlink(link) == os.path.join("data", "report.json")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert names(tmp_path) == ["data", "report.json"] and names(tmp_path / "data") == ["report.json"]


def test_a_chain_of_links_and_a_dangling_link_are_written_through(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("c.txt")  # c.txt does not exist yet
    atomic_write_text(tmp_path / "a", "made")
    assert (tmp_path / "c.txt").read_text() == "made"
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()


def test_a_link_to_a_folder_or_into_a_missing_folder_is_refused(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "to_dir").symlink_to("dir")
    with pytest.raises(OutputPathError, match=r"^-o: .*to_dir' is a link to the folder .*dir', expected a file"):
        check_output_path(tmp_path / "to_dir", "-o")
    (tmp_path / "to_nowhere").symlink_to(tmp_path / "gone" / "x.md")
    with pytest.raises(OutputPathError, match=r"^-o: the folder .*gone' does not exist"):
        atomic_write_text(tmp_path / "to_nowhere", "text", "-o")
    assert names(tmp_path) == ["dir", "to_dir", "to_nowhere"]
