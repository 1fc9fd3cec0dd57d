"""The worked solution as a LaTeX document (amsmath only), and the TeX maths Markdown shares.

Page geometry decides three rules, so that nothing runs off a page:

* a long line breaks before a + − ⊙ and continues on the next aligned line;
* a matrix wider than the line continues its columns on the next lines, bracketed
  ``\\left( … \\right.`` / ``\\left. … \\right)`` so each line stands alone, at most
  :data:`MAX_COLS` columns a line (amsmath's default limit, so a fragment compiles in any document);
* a matrix taller than :data:`TALL` rows is written as its transpose (``(…)ᵀ``), so a 50-unit
  column vector is a row that wraps instead of a column taller than the page.
"""
from __future__ import annotations

import numpy as np

from .sheet import (TEX_WIDTH, Eq, Group, Heading, Mat, Num, Para, Sym, _exact, _tex_number, format_number,
                    zero_note)

__all__ = ["TexWriter", "latex", "MAX_COLS", "TALL", "FRAGMENT_WIDTH"]

MAX_COLS = 10  # amsmath's MaxMatrixCols default
TALL = 12  # rows; a taller matrix is shown transposed
# A fragment goes into someone else's document: the default article's 345 pt line at 10 pt,
# against the full document's 17.5 cm at \small, about 0.62 of the width in digit widths.
FRAGMENT_WIDTH = 48


def upright(m: Mat) -> Mat:
    """A matrix as written on the page: taller than TALL rows it is shown transposed (ᵀ)."""
    if m.a.shape[0] <= TALL:
        return m
    if m.sup_tex == "^{\\top}":  # (vᵀ)ᵀ is v's row as it stands
        return Mat(m.a.T)
    return Mat(m.a.T, "^{\\top}" + ("{}" + m.sup_tex if m.sup_tex else ""), "ᵀ" + m.sup_text)


class TexWriter:
    """Equations in TeX; ``width`` is the budget of one displayed line in digit widths."""

    def __init__(self, digits: int, zero_below: float, width: int = TEX_WIDTH):
        self.digits, self.zero_below, self.width_budget = digits, zero_below, width
        self.flushed = False  # whether some nonzero value printed as 0

    def num(self, v: float) -> str:
        s = format_number(v, self.digits, self.zero_below)
        if s == "0" and v != 0:
            self.flushed = True
        return _tex_number(s)

    def mat(self, m: Mat) -> str:
        m = upright(m)
        if m.a.shape[1] > MAX_COLS:
            return " ".join(self.lines([m], 10 ** 9))
        return "\\begin{pmatrix} " + self._rows(m.a) + " \\end{pmatrix}" + m.sup_tex

    def term(self, t) -> str:
        if isinstance(t, Sym):
            return t.tex
        if isinstance(t, Mat):
            return self.mat(t)
        if isinstance(t, Num):
            return _tex_number(_exact(t.v)) if t.exact else self.num(t.v)
        if isinstance(t, Group):
            return "\\left(" + " ".join(self.term(u) for u in t.terms) + "\\right)"
        raise TypeError(type(t))

    def width(self, t) -> int:
        """Rough width in digit widths, to decide where a long line breaks."""
        if isinstance(t, Sym):
            return max(1, len(t.text))
        if isinstance(t, Mat):
            t = upright(t)
            cols = [max(len(format_number(v, self.digits, self.zero_below)) for v in col) for col in t.a.T]
            return sum(cols) + 2 * len(cols) + 2 + (2 if t.sup_text else 0)
        if isinstance(t, Num):
            return len(format_number(t.v, self.digits, self.zero_below))
        if isinstance(t, Group):
            return sum(self.width(u) + 1 for u in t.terms) + 2
        return 1

    def _flat(self, terms: list, budget: int) -> list:
        """Open a bracketed group too wide for a line into fixed-size brackets that may span lines."""
        out = []
        for t in terms:
            if isinstance(t, Group) and self.width(t) > budget:
                out += [Sym("\\bigl(", "("), *self._flat(t.terms, budget), Sym("\\bigr)", ")", op=False)]
            else:
                out.append(t)
        return out

    def lines(self, terms: list, budget: int) -> list[str]:
        """Split a step at its + − ⊙ so each piece fits ``budget``; a wide matrix continues its columns."""
        pieces, cur, w = [], [], 0
        for t in self._flat(terms, budget):
            if isinstance(t, Mat):
                t = upright(t)
            tw = self.width(t) + 1
            if isinstance(t, Mat) and (tw > budget or t.a.shape[1] > MAX_COLS) and t.a.shape[1] > 1:
                # too wide for the page: its columns continue on the next lines, bracketed
                # \left( … \right. / \left. … \right) so each line stands alone
                chunks = self._column_chunks(t, budget - (w if cur else 0) - 4, budget - 4)
                for k, (lo, hi) in enumerate(chunks):
                    body = self._rows(t.a[:, lo:hi])
                    left = "\\left(" if k == 0 else "\\left."
                    right = "\\right)" + t.sup_tex if k == len(chunks) - 1 else "\\right."
                    cur.append(Sym(f"{left}\\begin{{matrix}} {body} \\end{{matrix}}{right}", ""))
                    if k < len(chunks) - 1:
                        pieces.append(cur)
                        cur = []
                last = chunks[-1]
                w = self.width(Mat(t.a[:, last[0]:last[1]]))
                continue
            if cur and w + tw > budget:  # before an operator where the step has one there, else anywhere
                pieces.append(cur)
                cur, w = [], 0
            cur.append(t)
            w += tw
        pieces.append(cur)
        return [" ".join(self.term(t) for t in p) for p in pieces if p]

    def _rows(self, a: np.ndarray) -> str:
        return " \\\\ ".join(" & ".join(self.num(v) for v in row) for row in a)

    def _column_chunks(self, m: Mat, first: int, rest: int) -> list[tuple[int, int]]:
        widths = [max(len(format_number(v, self.digits, self.zero_below)) for v in col) + 2 for col in m.a.T]
        chunks, lo, w, room = [], 0, 0, max(first, 12)
        for c, cw in enumerate(widths):
            if c > lo and (w + cw > room or c - lo >= MAX_COLS):
                chunks.append((lo, c))
                lo, w, room = c, 0, rest
            w += cw
        chunks.append((lo, len(widths)))
        return chunks

    def eq_lines(self, e: Eq) -> list[str]:
        """An aligned chain's lines: lhs &= step, &= step, …, with &\\quad continuations."""
        lhs = " ".join(self.term(t) for t in e.lhs)
        budget = max(30, self.width_budget - sum(self.width(t) for t in e.lhs))
        out = []
        for i, step in enumerate(e.steps):
            parts = self.lines(step, budget)
            out.append(("" if i else lhs + " ") + "&= " + parts[0])
            out.extend("&\\quad " + p for p in parts[1:])
        return out

    def eq(self, e: Eq) -> str:
        """An aligned chain for display maths ($$ … $$): lhs &= step \\\\ &= step …"""
        return "\\begin{aligned}\n" + " \\\\\n".join(self.eq_lines(e)) + "\n\\end{aligned}"

    def align(self, e: Eq) -> str:
        """The chain as ``align*`` for a document: a page may break between any two of its lines
        (``\\displaybreak[0]``, which needs no ``\\allowdisplaybreaks``, so a fragment breaks too)."""
        return "\\begin{align*}\n" + " \\displaybreak[0]\\\\\n".join(self.eq_lines(e)) + "\n\\end{align*}"

    def para(self, p: Para, dollar: str = "$") -> str:
        return "".join(f"{dollar}{x.tex}{dollar}" if isinstance(x, Sym) else x for x in p.parts)


def latex(blocks, digits: int, zero_below: float, fragment: bool) -> str:
    """A complete pdflatex document (amsmath only), or with ``fragment`` its body sized for a plain article."""
    w = TexWriter(digits, zero_below, FRAGMENT_WIDTH if fragment else TEX_WIDTH)
    body = []
    for blk in blocks:
        if isinstance(blk, Heading):
            cmd = {1: "section*", 2: "subsection*", 3: "subsubsection*"}[blk.level]
            body.append(f"\\{cmd}{{{blk.tex}}}")
        elif isinstance(blk, Para):
            body.append(_tex_escape_para(w.para(blk)))
        else:
            body.append(w.align(blk))
    if w.flushed:
        body.append(zero_note(zero_below, tex=True))
    text = "\n\n".join(body) + "\n"
    if fragment:
        return text
    return ("\\documentclass[10pt]{article}\n\\usepackage{amsmath}\n"
            "% a wide text block: the matrices need the room\n"
            "\\setlength{\\textwidth}{17.5cm}\\setlength{\\oddsidemargin}{-0.7cm}\n"
            "\\setlength{\\textheight}{24.5cm}\\setlength{\\topmargin}{-1.8cm}\n"
            "\\allowdisplaybreaks\n\\setlength{\\parindent}{0pt}\\setlength{\\parskip}{4pt}\n"
            "\\begin{document}\n\\small\n" + text + "\\end{document}\n")


def _tex_escape_para(s: str) -> str:
    # prose parts are ASCII apart from a few symbols; maths parts are already TeX
    return s.replace("→", "$\\to$").replace("−", "-")
