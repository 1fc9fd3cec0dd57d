"""Worked solutions: one exercise step written out as the practical's solution sheet.

:class:`WorkedSolution` takes a :class:`~tinygrad_mlp.practical.result.StepResult` (what
:func:`~tinygrad_mlp.practical.exercise.run_step` returns, already checked against the
hand-written backprop) and writes it out; the renderers read nothing else, and none of them
imports the exercise runner or the network.

- :mod:`.sheet`: the sheet's sections as blocks of notation and numbers, and number formatting;
- :mod:`.text`: plain text with aligned columns;
- :mod:`.markdown`: Markdown with ``$$ … $$`` maths;
- :mod:`.latex`: a pdflatex document (amsmath only), or its body (``fragment``);
- :mod:`.html`: one self-contained interactive page (MathML, an SVG of the network, no network access).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..result import StepResult
from .latex import TexWriter, latex
from .markdown import markdown
from .sheet import DEFAULT_DIGITS, FORMATS, ZERO_BELOW, Eq, Heading, build, format_number
from .text import text

__all__ = ["WorkedSolution", "format_number", "FORMATS", "DEFAULT_DIGITS", "ZERO_BELOW"]


@dataclass
class WorkedSolution:
    """One exercise step as a solution sheet: text, Markdown, LaTeX or an interactive HTML page.

    Parameters
    ----------
    result : StepResult
        What :func:`tinygrad_mlp.practical.exercise.run_step` returned (already checked
        against the hand-written backprop).
    digits : int
        Significant digits of every printed number (default 4).
    zero_below : float
        Magnitudes below this print as 0 (floating-point round-off of exact zeros).
    """

    result: StepResult
    digits: int = DEFAULT_DIGITS
    zero_below: float = ZERO_BELOW
    _blocks: list = field(default=None, repr=False)

    def __post_init__(self):
        _check_digits(self.digits)
        if not isinstance(self.result, StepResult):
            raise TypeError(f"result: expected the StepResult run_step returns, got {type(self.result).__name__}")
        self._blocks = build(self.result)

    def markdown(self) -> str:
        """Markdown with ``$$ … $$`` display maths (``pmatrix``), for GitHub and Jupyter."""
        return markdown(self._blocks, self.digits, self.zero_below)

    def latex(self, fragment: bool = False) -> str:
        """A complete pdflatex document using amsmath only; ``fragment=True`` gives just the body,
        sized for a plain ``article``."""
        return latex(self._blocks, self.digits, self.zero_below, fragment)

    def text(self) -> str:
        """Plain text, matrices drawn with aligned columns."""
        return text(self._blocks, self.digits, self.zero_below)

    def html(self) -> str:
        """One self-contained interactive page: MathML, an SVG of the network, no network access."""
        from .html import page

        return page(self.result, self._blocks, self.digits, self.zero_below)

    def embed(self, height: int = 640):
        """The interactive page for a notebook cell: an object whose ``_repr_html_`` is an isolated iframe."""
        from .html import Embedded

        return Embedded(self.html(), height)

    def render(self, fmt: str = "text", fragment: bool = False) -> str:
        """``fmt`` is one of ``text``, ``markdown``, ``latex``, ``html``."""
        if fmt == "text":
            return self.text()
        if fmt == "markdown":
            return self.markdown()
        if fmt == "latex":
            return self.latex(fragment)
        if fmt == "html":
            return self.html()
        raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_latex_(self) -> str:
        # Notebook front ends hand this to MathJax: display maths only, no document preamble.
        w = TexWriter(self.digits, self.zero_below)
        parts = []
        for blk in self._blocks:
            if isinstance(blk, Heading):
                parts.append(f"$$\\textbf{{{blk.tex}}}$$")
            elif isinstance(blk, Eq):
                parts.append("$$" + w.eq(blk) + "$$")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.text()


def _check_digits(digits) -> None:
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or not 1 <= digits <= 17:
        raise ValueError(f"digits: expected an int from 1 to 17, got {digits!r}")
