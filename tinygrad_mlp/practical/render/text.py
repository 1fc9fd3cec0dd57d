"""The worked solution as plain text: matrices drawn with aligned columns and ⎛⎜⎝ brackets.

A long step breaks before a + − ⊙ and continues under itself; a single matrix wider than the
line continues its columns on the next lines, the break marked ``⋯`` at the end of one piece and
the start of the next.
"""
from __future__ import annotations

import textwrap

from .sheet import TEXT_WIDTH, Eq, Group, Heading, Mat, Num, Para, Sym, _exact, format_number, zero_note

__all__ = ["text"]

class _Box:
    """Lines of equal width with a baseline row: matrices are centred on it."""

    def __init__(self, lines: list[str], base: int = 0):
        wd = max((len(s) for s in lines), default=0)
        self.lines = [s.ljust(wd) for s in lines]
        self.base = base

    @property
    def width(self) -> int:
        return len(self.lines[0]) if self.lines else 0


def _hcat(boxes: list[_Box], sep: str = " ") -> _Box:
    above = max(bx.base for bx in boxes)
    below = max(len(bx.lines) - bx.base - 1 for bx in boxes)
    rows = [[] for _ in range(above + below + 1)]
    for bx in boxes:
        top = above - bx.base
        for i in range(len(rows)):
            k = i - top
            rows[i].append(bx.lines[k] if 0 <= k < len(bx.lines) else " " * bx.width)
    return _Box([sep.join(r).rstrip() for r in rows], above)


def _brackets(n: int, kind: str) -> tuple[list[str], list[str]]:
    if kind == "paren":
        if n == 1:
            return ["("], [")"]
        return ["⎛"] + ["⎜"] * (n - 2) + ["⎝"], ["⎞"] + ["⎟"] * (n - 2) + ["⎠"]
    if n == 1:
        return ["["], ["]"]
    return ["⎡"] + ["⎢"] * (n - 2) + ["⎣"], ["⎤"] + ["⎥"] * (n - 2) + ["⎦"]


class _TextWriter:
    def __init__(self, digits: int, zero_below: float):
        self.digits, self.zero_below = digits, zero_below
        self.flushed = False

    def num(self, v: float) -> str:
        s = format_number(v, self.digits, self.zero_below)
        if s == "0" and v != 0:
            self.flushed = True
        return s

    def mat(self, m: Mat) -> _Box:
        cells = [[self.num(v) for v in row] for row in m.a]
        cols = []
        for c in range(m.a.shape[1]):
            # align on the decimal point: integer parts right, fractions left
            parts = [cells[r][c].partition(".") for r in range(m.a.shape[0])]
            wi = max(len(p[0]) for p in parts)
            wf = max(len(p[2]) + 1 if p[1] else 0 for p in parts)
            cols.append([(p[0].rjust(wi) + (("." + p[2]) if p[1] else "")).ljust(wi + wf) for p in parts])
        n = m.a.shape[0]
        left, right = _brackets(n, "paren")
        lines = [left[r] + " " + "  ".join(cols[c][r] for c in range(len(cols))) + " " + right[r] for r in range(n)]
        if m.sup_text:
            lines[0] += m.sup_text
        return _Box(lines, (n - 1) // 2)

    def _chunks(self, m: Mat, room: int) -> list[Mat]:
        """``m``'s columns in consecutive slices, each drawn no wider than ``room``; the superscript on the last."""
        # a column as drawn (decimal points aligned), less its brackets, plus the two-space gap
        widths = [self.mat(Mat(m.a[:, c:c + 1])).width - 2 for c in range(m.a.shape[1])]
        out, lo, w = [], 0, 4
        for c, cw in enumerate(widths):
            if c > lo and w + cw > room:
                out.append(Mat(m.a[:, lo:c]))
                lo, w = c, 4
            w += cw
        out.append(Mat(m.a[:, lo:], m.sup_tex, m.sup_text))
        return out

    def term(self, t) -> _Box:
        if isinstance(t, Sym):
            return _Box([t.text])
        if isinstance(t, Num):
            return _Box([_exact(t.v) if t.exact else self.num(t.v)])
        if isinstance(t, Mat):
            return self.mat(t)
        if isinstance(t, Group):
            inner = _hcat([self.term(u) for u in t.terms])
            left, right = _brackets(len(inner.lines), "square")
            return _Box([left[i] + s + right[i] for i, s in enumerate(inner.lines)], inner.base)
        raise TypeError(type(t))

    def eq(self, e: Eq) -> str:
        lhs = _hcat([self.term(t) for t in e.lhs])
        indent = " " * lhs.width
        bands = []
        for i, step in enumerate(e.steps):
            boxes = [self.term(t) for t in step]
            # break a long step before a + − ⊙, continuing under it
            pieces, cur, w = [], [], 0
            room = TEXT_WIDTH - lhs.width - 3
            for t, bx in zip(step, boxes):
                if isinstance(t, Mat) and bx.width > room and t.a.shape[1] > 1:
                    chunks = self._chunks(t, room - 4)  # room for ⋯ on both sides
                    for k, m in enumerate(chunks):
                        cb = _hcat(([_Box(["⋯"])] if k else []) + [self.mat(m)]
                                   + ([_Box(["⋯"])] if k < len(chunks) - 1 else []))
                        if cur and (k or w + cb.width > room):
                            pieces.append(cur)
                            cur, w = [], 0
                        cur.append(cb)
                        w += cb.width + 1
                    continue
                if cur and isinstance(t, Sym) and t.op and w + bx.width > room:
                    pieces.append(cur)
                    cur, w = [], 0
                cur.append(bx)
                w += bx.width + 1
            pieces.append(cur)
            for k, piece in enumerate(pieces):
                head = (lhs if (i == 0 and k == 0) else _Box([indent]))
                mark = "=" if k == 0 else " "
                bands.append(_hcat([head, _Box([mark]), _hcat(piece)]))
        return "\n".join(s.rstrip() for bx in bands for s in bx.lines)

    def para(self, p: Para) -> str:
        return "".join(x.text if isinstance(x, Sym) else x for x in p.parts)


def text(blocks, digits: int, zero_below: float) -> str:
    w = _TextWriter(digits, zero_below)
    out = []
    for blk in blocks:
        if isinstance(blk, Heading):
            rule = {1: "=", 2: "-", 3: "."}[blk.level]
            out.append(blk.text + "\n" + rule * len(blk.text))
        elif isinstance(blk, Para):
            out.append(_wrap(w.para(blk), TEXT_WIDTH))
        else:
            out.append(w.eq(blk))
    if w.flushed:
        out.append(zero_note(zero_below, tex=False))
    return "\n\n".join(out) + "\n"


def _wrap(s: str, width: int) -> str:
    return textwrap.fill(s, width)
