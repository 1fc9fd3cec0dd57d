"""The worked solution as Markdown with ``$$ … $$`` display maths (``pmatrix``), for GitHub and Jupyter."""
from __future__ import annotations

from .latex import TexWriter
from .sheet import Heading, Para, zero_note

__all__ = ["markdown"]


def markdown(blocks, digits: int, zero_below: float) -> str:
    w = TexWriter(digits, zero_below)
    out = []
    for blk in blocks:
        if isinstance(blk, Heading):
            out.append("#" * blk.level + " " + blk.text)
        elif isinstance(blk, Para):
            out.append(w.para(blk))
        else:
            out.append("$$\n" + w.eq(blk) + "\n$$")
    if w.flushed:
        out.append("*" + zero_note(zero_below, tex=False) + "*")
    return "\n\n".join(out) + "\n"
