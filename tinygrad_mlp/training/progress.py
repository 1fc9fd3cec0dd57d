"""Progress of a training run, one report per epoch, on stderr.

On a terminal: a tqdm bar when tqdm is installed (it redraws one line with ``\\r``).  Anywhere else
(a log file, a pipe, CI), or without tqdm: one plain line per epoch, so a redirected log holds
readable lines and no carriage returns.
"""
from __future__ import annotations

import sys

__all__ = ["progress_bar", "LineProgress"]


class LineProgress:
    """One line per epoch: ``desc: epoch n/total loss … test acc …``."""

    def __init__(self, total: int, desc: str, file=None) -> None:
        self.total, self.desc, self.n = total, desc, 0
        self.postfix = ""
        self.file = file

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self.postfix = s

    def update(self, n: int = 1) -> None:
        self.n += n
        tail = f" {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: epoch {self.n}/{self.total}{tail}", file=self.file or sys.stderr, flush=True)

    def close(self) -> None:
        pass


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(total: int, desc: str, leave: bool = False):
    """A tqdm bar when stderr is a terminal and tqdm is installed, otherwise a :class:`LineProgress`.

    Either way the object has ``set_postfix_str(s, refresh=False)``, ``update(n)`` (which shows
    it) and ``close()``.
    """
    stream = sys.stderr
    if not _is_terminal(stream):
        return LineProgress(total, desc)
    try:
        from tqdm import tqdm
    except ImportError:
        return LineProgress(total, desc)
    return tqdm(total=total, desc=desc, leave=leave, file=stream, unit="epoch", dynamic_ncols=True)
