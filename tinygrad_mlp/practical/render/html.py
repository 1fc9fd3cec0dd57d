"""The worked solution as one self-contained interactive page.

One HTML file that opens from disk with no network: no CDN, no fonts, no external script.
The maths is MathML (browsers render it natively); the network is an inline SVG, units as
circles, weights as lines, biases as small squares.  A reader can

* step through the sheet (buttons, ← → keys): the diagram highlights what each line computes;
* click, hover or focus any weight, bias or unit for its chain-rule numbers and its update;
* for a batch, switch between the examples and then the sum (the step itself).

Every number is a string formatted here, in Python, from the
:class:`~tinygrad_mlp.practical.result.StepResult` at the sheet's precision, and each one carries
``data-q``: its path in ``exercise --json`` (``examples.0.dz.1.2``), so a test can check every
number on the page against the JSON.  The script only shows and hides what is already there.
"""
from __future__ import annotations

import html as _html
import json
import re

import numpy as np

from .latex import TALL
from .sheet import Eq, Group, Heading, Mat, Num, Para, Sym, _exact, format_number, zero_note

__all__ = ["page", "tex_to_mathml"]


# --------------------------------------------------------------------------- TeX (the sheet's subset) → MathML
_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|\d+(?:\.\d+)?|[A-Za-z]|\s+|.", re.S)
_IDENT = {"eta": "η", "sigma": "σ", "partial": "∂", "top": "⊤"}
_OPS = {"odot": "⊙", "oslash": "⊘", "cdot": "·", "times": "×", "to": "→", "sum": "∑"}
_FUNCS = {"tanh", "log", "exp", "max", "sigma"}


class _TeX:
    """A recursive-descent reader of the TeX the sheet writes; anything else is an error, not a guess."""

    def __init__(self, tex: str):
        self.toks = [t for t in _TOKEN.findall(tex) if not t.isspace()]
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def group(self) -> str:
        if self.peek() != "{":
            return self.atom()
        self.take()
        out = self.seq("}")
        self.take()
        return f"<mrow>{out}</mrow>"

    def raw_group(self) -> str:
        self.take()  # {
        depth, out = 1, []
        while True:
            t = self.take()
            depth += (t == "{") - (t == "}")
            if depth == 0:
                return "".join(out)
            out.append(t)

    def seq(self, stop=None) -> str:
        out = []
        while self.peek() is not None and self.peek() != stop:
            out.append(self.scripted())
        return "".join(out)

    def scripted(self) -> str:
        base = self.atom()
        sub = sup = None
        while self.peek() in ("^", "_", "'"):
            t = self.take()
            if t == "'":
                base = f"<msup>{base}<mo>′</mo></msup>"
            elif t == "^":
                sup = self.group()
            else:
                sub = self.group()
        if sub and sup:
            return f"<msubsup>{base}{sub}{sup}</msubsup>"
        if sup:
            return f"<msup>{base}{sup}</msup>"
        if sub:
            return f"<msub>{base}{sub}</msub>"
        return base

    def atom(self) -> str:
        t = self.take()
        if t is None:
            raise ValueError("unexpected end of TeX")
        if t == "{":
            self.i -= 1
            return self.group()
        if t.startswith("\\"):
            return self.command(t[1:])
        if t[0].isdigit():
            return f'<mn class="c">{t}</mn>'
        if t.isalpha():
            return f"<mi>{t}</mi>"
        if t == "-":
            return "<mo>−</mo>"
        if t in "()[]":  # fences hug what they enclose, as in TeX (L⁽¹⁾, not L⁽ 1 ⁾)
            return f'<mo lspace="0" rspace="0">{t}</mo>'
        return f"<mo>{_html.escape(t)}</mo>"

    @staticmethod
    def fence(d: str, stretchy: bool) -> str:
        if d == ".":
            return ""
        return f'<mo stretchy="{str(stretchy).lower()}" lspace="0" rspace="0">{_html.escape(d)}</mo>'

    def command(self, name: str) -> str:
        if name in ("mathbf", "boldsymbol"):
            inner = self.raw_group()
            # MathML Core renders mathvariant="normal" only: bold is CSS (.bf), upright is "normal"
            upright = ' mathvariant="normal"' if name == "mathbf" and not inner.isdigit() else ""
            if inner.isdigit():
                return f'<mn class="c bf">{_html.escape(inner)}</mn>'
            return f'<mi class="bf"{upright}>{_html.escape(inner)}</mi>'
        if name == "hat":
            return f'<mover accent="true">{self.group()}<mo>^</mo></mover>'
        if name in ("frac", "tfrac"):
            num, den = self.group(), self.group()
            frac = f"<mfrac>{num}{den}</mfrac>"
            return frac if name == "frac" else f'<mstyle displaystyle="false">{frac}</mstyle>'
        if name == "operatorname":
            return f"<mi>{_html.escape(self.raw_group())}</mi>"
        if name == "left":  # \left( … \right) is one atom, so a superscript after it covers the whole group
            open_ = self.fence(self.take(), True)
            inner = self.seq("\\right")
            self.take()
            return f"<mrow>{open_}{inner}{self.fence(self.take(), True)}</mrow>"
        if name in ("right", "bigl", "bigr"):
            d = self.take()
            if d == ".":
                return ""
            stretch = "true" if name in ("left", "right") else "false"
            return f'<mo stretchy="{stretch}" lspace="0" rspace="0">{_html.escape(d)}</mo>'
        if name == "sigma":
            return "<mi>σ</mi>"
        if name in _FUNCS:
            return f"<mi>{name}</mi>"
        if name in _IDENT:
            return f"<mi>{_IDENT[name]}</mi>"
        if name in _OPS:
            big = ' largeop="true"' if name == "sum" else ""
            return f"<mo{big}>{_OPS[name]}</mo>"
        if name in ("quad", ","):
            return '<mspace width="0.5em"></mspace>'
        raise ValueError(f"tex: no MathML for \\{name}")


def tex_to_mathml(tex: str) -> str:
    """The sheet's TeX as MathML Core markup (no ``<math>`` wrapper); ValueError on anything else."""
    return _TeX(tex).seq()


# --------------------------------------------------------------------------- numbers with their JSON paths
class _Numbers:
    """Formats numbers at the page's precision; knows each result array's path in ``--json``."""

    def __init__(self, r, digits: int, zero_below: float):
        self.digits, self.zero_below = digits, zero_below
        self.flushed = False
        self.paths: dict[int, str] = {}
        L = r.n_layers
        for l in range(L):
            for arr, p in ((r.W0[l], "initial.W"), (r.b0[l], "initial.b"), (r.grad_W[l], "grad_W"),
                           (r.grad_b[l], "grad_b"), (r.W[l], "W"), (r.b[l], "b")):
                self.paths.setdefault(id(arr), f"{p}.{l}")
        for j, e in enumerate(r.examples):
            self.paths.setdefault(id(e.x), f"examples.{j}.x")
            self.paths.setdefault(id(e.y), f"examples.{j}.y")
            self.paths.setdefault(id(e.output), f"examples.{j}.output")
            for key in ("z", "h", "dz", "dh", "grad_W", "grad_b"):
                for l, arr in enumerate(getattr(e, key)):
                    self.paths.setdefault(id(arr), f"examples.{j}.{key}.{l}")

    def path_of(self, a: np.ndarray) -> str:
        for cand in (a, a.base):
            if cand is not None and id(cand) in self.paths:
                return self.paths[id(cand)]
        return ""

    def text(self, v: float) -> str:
        s = format_number(v, self.digits, self.zero_below)
        if s == "0" and v != 0:
            self.flushed = True
        return s

    def mn(self, v: float, q: str) -> str:
        attr = f' data-q="{q}"' if q else ""
        return f"<mn{attr}>{self.text(v)}</mn>"

    def span(self, v: float, q: str) -> str:
        return f'<span class="n" data-q="{q}">{self.text(v)}</span>'


# --------------------------------------------------------------------------- the sheet as MathML
class _MathWriter:
    def __init__(self, nums: _Numbers):
        self.nums = nums

    def mat(self, m: Mat) -> str:
        q = self.nums.path_of(m.a)
        src = m.a.base if (m.a.base is not None and q and id(m.a.base) in self.nums.paths) else m.a
        a = m.a
        sup = m.sup_text
        vector = src.ndim == 1

        def path(r, c):
            if not q:
                return ""
            return f"{q}.{r}" if vector else f"{q}.{r}.{c}"

        cells = [[(a[r, c], path(r, c)) for c in range(a.shape[1])] for r in range(a.shape[0])]
        if a.shape[0] > TALL:  # a long column reads better as a row, as in the LaTeX
            cells = [list(col) for col in zip(*cells)]
            sup = "" if sup == "ᵀ" else "ᵀ" + sup
        rows = "".join("<mtr>" + "".join(f"<mtd>{self.nums.mn(v, p)}</mtd>" for v, p in row) + "</mtr>"
                       for row in cells)
        body = f'<mrow><mo stretchy="true">(</mo><mtable>{rows}</mtable><mo stretchy="true">)</mo></mrow>'
        if sup:
            sup_m = "<mo>⊤</mo>" if sup == "ᵀ" else ("<mn class=\"c\">2</mn>" if sup == "²" else
                                                     "<mrow><mo>⊤</mo><mn class=\"c\">2</mn></mrow>")
            body = f"<msup>{body}{sup_m}</msup>"
        return body

    def term(self, t) -> str:
        if isinstance(t, Sym):
            return tex_to_mathml(t.tex)
        if isinstance(t, Mat):
            return self.mat(t)
        if isinstance(t, Num):
            if t.exact:
                return f'<mn data-q="{t.q}">{_exact(t.v)}</mn>' if t.q else f'<mn class="c">{_exact(t.v)}</mn>'
            return self.nums.mn(t.v, t.q)
        if isinstance(t, Group):
            inner = "".join(self.term(u) for u in t.terms)
            return f'<mrow><mo stretchy="true">[</mo>{inner}<mo stretchy="true">]</mo></mrow>'
        raise TypeError(type(t))

    def eq(self, e: Eq) -> str:
        lhs = "".join(self.term(t) for t in e.lhs)
        rows = []
        for i, step in enumerate(e.steps):
            rhs = "".join(self.term(t) for t in step)
            # table cells are set in text style; the sheet's fractions are display-sized, as in the LaTeX
            rows.append(f"<mtr><mtd class=\"l\"><mstyle displaystyle=\"true\">{lhs if i == 0 else ''}</mstyle></mtd>"
                        f"<mtd><mo>=</mo></mtd><mtd class=\"r\"><mstyle displaystyle=\"true\">{rhs}</mstyle></mtd></mtr>")
        return f'<math display="block"><mtable class="chain">{"".join(rows)}</mtable></math>'

    def para(self, p: Para) -> str:
        return "".join(f"<math>{tex_to_mathml(x.tex)}</math>" if isinstance(x, Sym) else _html.escape(x)
                       for x in p.parts)


# --------------------------------------------------------------------------- what a line computes
_SUP = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")


def _targets(e: Eq, L: int) -> str:
    """Diagram ids a line is about: ``U2`` the units of layer 2, ``E2`` the weights into it, ``B2`` its biases."""
    lhs = "".join(t.text for t in e.lhs if isinstance(t, Sym))
    wrt = lhs.split("∂")[-1]
    m = re.search(r"([Wbzh])\^\[(\d+)\]", wrt)
    if m:
        kind, l = m.group(1), int(m.group(2))
        return {"W": f"E{l}", "b": f"B{l}", "z": f"U{l}", "h": f"U{l}"}[kind]
    if wrt.startswith("x"):
        return "U0"
    if wrt.startswith(("ŷ", "p", "y", "L")):
        return f"U{L}"
    return ""


# --------------------------------------------------------------------------- the diagram
def _diagram(r) -> tuple[str, dict]:
    sizes = r.layers
    L = len(sizes) - 1
    tallest = max(sizes)
    gap = max(14.0, min(46.0, 420.0 / tallest))
    rad = max(4.0, min(14.0, gap * 0.32))
    col = 150.0
    width = col * L + 110
    height = gap * tallest + 60
    pos = {}
    for l, n in enumerate(sizes):
        x = 55 + col * l
        top = (height - gap * (n - 1)) / 2
        for i in range(n):
            pos[(l, i)] = (x, top + gap * i)
    parts = [f'<svg id="net" viewBox="0 0 {width:.0f} {height:.0f}" role="group" '
             f'aria-label="The network: {", ".join(map(str, sizes))} units; weights as lines, biases as squares">']
    labels = {}
    for l in range(1, L + 1):
        for i in range(sizes[l]):
            for j in range(sizes[l - 1]):
                (x1, y1), (x2, y2) = pos[(l - 1, j)], pos[(l, i)]
                eid = f"w-{l}-{i}-{j}"
                lab = f"weight W^[{l}] row {i + 1} column {j + 1}"
                labels[eid] = lab
                parts.append(f'<g class="w E{l}" id="{eid}" tabindex="0" role="button" aria-label="{lab}">'
                             f'<line class="hit" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>'
                             f'<line class="vis" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/></g>')
    for l, n in enumerate(sizes):
        name = "x" if l == 0 else ("output" if l == L else f"h^[{l}]")
        for i in range(n):
            x, y = pos[(l, i)]
            uid = f"u-{l}-{i}"
            lab = f"unit {i + 1} of layer {l} ({name})"
            labels[uid] = lab
            parts.append(f'<circle class="u U{l}" id="{uid}" cx="{x:.1f}" cy="{y:.1f}" r="{rad:.1f}" tabindex="0" '
                         f'role="button" aria-label="{lab}"/>')
            if l >= 1:
                s = max(5.0, rad * 0.8)
                bid = f"b-{l}-{i}"
                lab = f"bias b^[{l}] entry {i + 1}"
                labels[bid] = lab
                parts.append(f'<rect class="bias B{l}" id="{bid}" x="{x + rad + 2:.1f}" y="{y - rad - s + 2:.1f}" '
                             f'width="{s:.1f}" height="{s:.1f}" tabindex="0" role="button" aria-label="{lab}"/>')
        x = pos[(l, 0)][0]
        cap = "x" if l == 0 else ("ŷ" if r.output != "softmax" else "p") if l == L else f"h[{l}]"
        parts.append(f'<text x="{x:.1f}" y="{height - 12:.0f}" text-anchor="middle">{_html.escape(cap)}</text>')
    parts.append("</svg>")
    return "".join(parts), labels


# --------------------------------------------------------------------------- chain-rule notes
def _v(name: str, l=None, idx: str = "", j=None) -> str:
    """A symbol in HTML: name^[l]_idx, with ⁽ʲ⁾ for example j of a batch."""
    sup = f"<sup>[{l}]</sup>" if l is not None else ""
    ex = f"<sup>({j})</sup>" if j is not None else ""
    sub = f"<sub>{idx}</sub>" if idx else ""
    return f"<var>{name}</var>{ex}{sup}{sub}"


def _notes(r, nums: _Numbers) -> dict:
    """For each view (example index as a string, or "sum") and each diagram id: its numbers as HTML."""
    L, eta = r.n_layers, r.learning_rate
    batch = r.is_batch
    n_ex = len(r.examples)
    views = [str(j) for j in range(n_ex)] + (["sum"] if batch else [])
    g_name = {"tanh": "tanh", "sigmoid": "σ", "relu": "relu", "identity": "identity"}[r.hidden]
    out = {v: {} for v in views}
    eta_s = f'<span class="n" data-q="learning_rate">{_exact(eta)}</span>'

    def dL(sym: str, j) -> str:
        return f"∂<var>L</var>{f'<sup>({j + 1})</sup>' if j is not None and batch else ''}/∂{sym}"

    for l in range(1, L + 1):
        for i in range(r.layers[l]):
            for jj in range(r.layers[l - 1]):
                ij = f"{i + 1}{jj + 1}" if max(r.layers) < 10 else f"{i + 1},{jj + 1}"
                w = _v("W", l, ij)
                w0 = nums.span(r.W0[l - 1][i, jj], f"initial.W.{l - 1}.{i}.{jj}")
                g = nums.span(r.grad_W[l - 1][i, jj], f"grad_W.{l - 1}.{i}.{jj}")
                w1 = nums.span(r.W[l - 1][i, jj], f"W.{l - 1}.{i}.{jj}")
                hname = "x" if l == 1 else "h"
                hl = None if l == 1 else l - 1
                lines = []
                for j, e in enumerate(r.examples):
                    d = nums.span(e.dz[l - 1][i], f"examples.{j}.dz.{l - 1}.{i}")
                    hv = nums.span(e.h_prev(l)[jj], f"examples.{j}.{'x' if l == 1 else 'h'}"
                                   + ("" if l == 1 else f".{l - 2}") + f".{jj}")
                    gj = nums.span(e.grad_W[l - 1][i, jj], f"examples.{j}.grad_W.{l - 1}.{i}.{jj}")
                    jx = j + 1 if batch else None
                    lines.append(f"<p>{dL(w, j)} = {_v('δ', l, str(i + 1), jx)} · "
                                 f"{_v(hname, hl, str(jj + 1), jx)} = {d} × {hv} = {gj}</p>")
                upd = f"<p class=\"upd\">update: {w} ← {w0} − {eta_s} × {g} = {w1}</p>"
                total = ""
                if batch:
                    terms = " + ".join(nums.span(e.grad_W[l - 1][i, jj], f"examples.{j}.grad_W.{l - 1}.{i}.{jj}")
                                       for j, e in enumerate(r.examples))
                    total = f"<p>∂<var>L</var>/∂{w} = Σ<sub>j</sub> ∂<var>L</var><sup>(j)</sup>/∂{w} = {terms} = {g}</p>"
                head = f"<h3>Weight {w}: from {_v(hname, hl, str(jj + 1))} to {_v('z', l, str(i + 1))}</h3>"
                for j in range(n_ex):
                    out[str(j)][f"w-{l}-{i}-{jj}"] = head + lines[j] + (
                        "<p class=\"note\">The update uses the sum over the examples: choose “Sum”.</p>"
                        if batch else upd)
                if batch:
                    out["sum"][f"w-{l}-{i}-{jj}"] = head + "".join(lines) + total + upd
            # the bias
            b = _v("b", l, str(i + 1))
            b0 = nums.span(r.b0[l - 1][i], f"initial.b.{l - 1}.{i}")
            gb = nums.span(r.grad_b[l - 1][i], f"grad_b.{l - 1}.{i}")
            b1 = nums.span(r.b[l - 1][i], f"b.{l - 1}.{i}")
            blines = []
            for j, e in enumerate(r.examples):
                jx = j + 1 if batch else None
                blines.append(f"<p>{dL(b, j)} = {_v('δ', l, str(i + 1), jx)} = "
                              f"{nums.span(e.grad_b[l - 1][i], f'examples.{j}.grad_b.{l - 1}.{i}')}</p>")
            bupd = f"<p class=\"upd\">update: {b} ← {b0} − {eta_s} × {gb} = {b1}</p>"
            bhead = f"<h3>Bias {b}</h3>"
            for j in range(n_ex):
                out[str(j)][f"b-{l}-{i}"] = bhead + blines[j] + (
                    "<p class=\"note\">The update uses the sum over the examples: choose “Sum”.</p>" if batch else bupd)
            if batch:
                terms = " + ".join(nums.span(e.grad_b[l - 1][i], f"examples.{j}.grad_b.{l - 1}.{i}")
                                   for j, e in enumerate(r.examples))
                out["sum"][f"b-{l}-{i}"] = (bhead + "".join(blines)
                                            + f"<p>∂<var>L</var>/∂{b} = {terms} = {gb}</p>" + bupd)
    # units
    for j, e in enumerate(r.examples):
        jx = j + 1 if batch else None
        for l in range(0, L + 1):
            for i in range(r.layers[l]):
                uid = f"u-{l}-{i}"
                if l == 0:
                    html = (f"<h3>Input {_v('x', None, str(i + 1), jx)}</h3><p>{_v('x', None, str(i + 1), jx)} = "
                            f"{nums.span(e.x[i], f'examples.{j}.x.{i}')}</p>")
                else:
                    zi = nums.span(e.z[l - 1][i], f"examples.{j}.z.{l - 1}.{i}")
                    hi = nums.span(e.h[l - 1][i], f"examples.{j}.h.{l - 1}.{i}")
                    di = nums.span(e.dz[l - 1][i], f"examples.{j}.dz.{l - 1}.{i}")
                    dhi = nums.span(e.dh[l - 1][i], f"examples.{j}.dh.{l - 1}.{i}")
                    prev = "x" if l == 1 else f"h<sup>[{l - 1}]</sup>"
                    act = g_name if l < L else {"identity": "identity", "softmax": "softmax",
                                                "sigmoid": "σ"}[r.output]
                    hq = f"examples.{j}.h.{l - 1}.{i}"
                    zs, hs = _v("z", l, str(i + 1)), _v("h", l, str(i + 1))
                    html = (f"<h3>Unit {i + 1} of layer {l}</h3>"
                            f"<p>{zs} = Σ<sub>k</sub> {_v('W', l, f'{i + 1}k')} {prev}<sub>k</sub>"
                            f" + {_v('b', l, str(i + 1))} = {zi}</p>"
                            f"<p>{hs} = {act}({zs}) = {hi}</p>")
                    # the chain rule into this unit, with the numbers of the line that computes it
                    if l < L:
                        html += (f"<p>{dL(hs, j)} = Σ<sub>k</sub> {_v('W', l + 1, f'k{i + 1}')} "
                                 f"{_v('δ', l + 1, 'k', jx)} = {dhi}</p>")
                        h2 = nums.span(e.h[l - 1][i], hq)
                        gp = {"tanh": f"(1 − {h2}²)", "sigmoid": f"{h2} (1 − {h2})",
                              "relu": f"1[{nums.span(e.z[l - 1][i], f'examples.{j}.z.{l - 1}.{i}')} &gt; 0]",
                              "identity": "1"}[r.hidden]
                        html += (f"<p>{_v('δ', l, str(i + 1), jx)} = {dL(hs, j)} · g′({zs}) = {dhi} · {gp}"
                                 f" = {di}</p>")
                    else:
                        yi = nums.span(e.y[i], f"examples.{j}.y.{i}")
                        out_i = nums.span(e.output[i], f"examples.{j}.output.{i}")
                        if r.output == "sigmoid":
                            rule = f"{dL(hs, j)} · {hs}(1 − {hs}) = {dhi} · {out_i} (1 − {out_i})"
                        else:
                            rule = f"{hs} − {_v('y', None, str(i + 1), jx)} = {out_i} − {yi}"
                        html += (f"<p>target {_v('y', None, str(i + 1), jx)} = {yi}; "
                                 f"{dL(hs, j)} = {dhi}</p>"
                                 f"<p>{_v('δ', l, str(i + 1), jx)} = {dL(zs, j)} = {rule} = {di}</p>")
                out[str(j)][uid] = html
                if batch:  # the sum view shows the unit in every example
                    out["sum"][uid] = out["sum"].get(uid, "") + html.replace("<h3>", f"<h3>Example {j + 1}: ", 1)
    return out


# --------------------------------------------------------------------------- the page
_CSS = """
:root{--ink:#1d2433;--muted:#5b6475;--hl:#d9480f;--hlbg:#fff4e6;--edge:#9aa3b5;--unit:#eef2ff;--line:#3b5bdb}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:#fff}
header{padding:14px 22px 6px;border-bottom:1px solid #e3e6ee}
header h1{font-size:1.3rem;margin:0 0 4px}
header p{margin:4px 0;color:var(--muted);max-width:70em}
#controls{display:flex;flex-wrap:wrap;gap:8px;align-items:center;padding:8px 22px;border-bottom:1px solid #e3e6ee;
 position:sticky;top:0;background:#fff;z-index:2}
button{font:inherit;padding:4px 12px;border:1px solid #b8c0d0;border-radius:6px;background:#f8f9fc;cursor:pointer}
button:focus-visible,[tabindex]:focus-visible{outline:3px solid #4263eb;outline-offset:2px}
button[aria-pressed=true]{background:#364fc7;color:#fff;border-color:#364fc7}
#where{color:var(--muted);margin-left:6px}
main{display:grid;grid-template-columns:minmax(300px,38%) 1fr;gap:0}
#side{position:sticky;top:52px;align-self:start;padding:12px 16px;border-right:1px solid #e3e6ee;max-height:calc(100vh - 52px);overflow:auto}
#net{width:100%;height:auto;max-height:56vh;display:block}
#net line.vis{stroke:var(--edge);stroke-width:1.2}
#net line.hit{stroke:transparent;stroke-width:9}
#net g.w{cursor:pointer}
#net [tabindex]:focus{outline:none}
#net circle.u:focus,#net rect.bias:focus{stroke:#364fc7;stroke-width:3.5}
.bf{font-weight:bold}
#net g.w:hover line.vis,#net g.w:focus line.vis{stroke:#364fc7;stroke-width:3}
#net g.w.hl line.vis{stroke:var(--hl);stroke-width:2.2}
#net g.w.sel line.vis{stroke:#364fc7;stroke-width:3.5}
#net circle.u{fill:var(--unit);stroke:var(--line);stroke-width:1.5;cursor:pointer}
#net circle.u.hl{fill:#ffd8a8;stroke:var(--hl);stroke-width:2.5}
#net circle.u.sel,#net rect.bias.sel{stroke:#364fc7;stroke-width:3.5}
#net rect.bias{fill:#f1f3f5;stroke:#868e96;cursor:pointer}
#net rect.bias.hl{fill:#ffd8a8;stroke:var(--hl)}
#net text{font-size:13px;fill:var(--muted)}
#info{margin-top:8px;padding:8px 10px;border:1px solid #dbe4ff;border-radius:8px;background:#f8f9ff;min-height:5em}
#info h3{font-size:1rem;margin:0 0 4px}
#info p{margin:3px 0}
#info .upd{font-weight:600}
#info .note{color:var(--muted);font-size:.9em}
.n{font-variant-numeric:tabular-nums}
#sheet{padding:6px 22px 40px;min-width:0}
#sheet h2{font-size:1.15rem;margin:22px 0 6px;border-bottom:1px solid #eef0f5}
#sheet h3{font-size:1rem;margin:14px 0 4px;color:var(--muted)}
.step{padding:4px 8px;margin:2px 0;border-left:4px solid transparent;border-radius:4px;overflow-x:auto}
.step.current{border-left-color:var(--hl);background:var(--hlbg)}
.step[hidden],.ex[hidden]{display:none}
math[display=block]{margin:4px 0}
mtable.chain mtd.l{text-align:right}
mtable.chain mtd.r{text-align:left}
mtable.chain mtd{padding:3px 2px}
mtable:not(.chain) mtd{padding:1px 5px}
p.prose{margin:6px 0;max-width:60em}
.keys{color:var(--muted);font-size:.85em}
@media (max-width:800px){main{grid-template-columns:1fr}#side{position:static;max-height:none;border-right:0}}
@media print{#controls,.keys,#info{display:none}main{display:block}#side{position:static;max-height:none;border:0}
 #net{max-height:9cm}.step[hidden],.ex[hidden]{display:block!important}.step.current{background:none}
 .step{break-inside:avoid}}
"""

_JS = """
(function(){
const notes=JSON.parse(document.getElementById('notes').textContent);
const views=Object.keys(notes);
let view=views[views.length-1];
let cur=-1, pinned=null;
const info=document.getElementById('info');
const where=document.getElementById('where');
function visible(){return Array.from(document.querySelectorAll('#sheet .step')).filter(s=>!s.closest('[hidden]')&&!s.hidden);}
function clearHl(){document.querySelectorAll('#net .hl').forEach(e=>e.classList.remove('hl'));}
function go(i){
  const steps=visible(); if(!steps.length)return;
  i=Math.max(0,Math.min(steps.length-1,i));
  steps.forEach(s=>{s.classList.remove('current');s.removeAttribute('aria-current');});
  const s=steps[i]; cur=i; s.classList.add('current'); s.setAttribute('aria-current','step');
  clearHl();
  (s.dataset.hl||'').split(' ').filter(Boolean).forEach(c=>document.querySelectorAll('#net .'+c).forEach(e=>e.classList.add('hl')));
  where.textContent='line '+(i+1)+' of '+steps.length;
  s.scrollIntoView({block:'nearest'});
}
function show(id){
  const n=notes[view][id]; if(!n)return;
  info.innerHTML=n;
  document.querySelectorAll('#net .sel').forEach(e=>e.classList.remove('sel'));
  const el=document.getElementById(id); if(el)el.classList.add('sel');
}
function setView(v){
  view=v;
  document.querySelectorAll('#views button').forEach(b=>b.setAttribute('aria-pressed',String(b.dataset.view===v)));
  document.querySelectorAll('#sheet [data-ex]').forEach(e=>{e.hidden=!(v==='sum'||e.dataset.ex===v)});
  cur=-1; go(0); if(pinned)show(pinned);
}
document.getElementById('next').addEventListener('click',()=>go(cur+1));
document.getElementById('prev').addEventListener('click',()=>go(cur-1));
document.querySelectorAll('#views button').forEach(b=>b.addEventListener('click',()=>setView(b.dataset.view)));
document.querySelectorAll('#net [tabindex]').forEach(el=>{
  el.addEventListener('mouseenter',()=>show(el.id));
  el.addEventListener('mouseleave',()=>{if(pinned&&pinned!==el.id)show(pinned);});
  el.addEventListener('focus',()=>show(el.id));
  el.addEventListener('click',()=>{pinned=el.id;show(el.id);});
  el.addEventListener('keydown',ev=>{if(ev.key==='Enter'||ev.key===' '){ev.preventDefault();pinned=el.id;show(el.id);}});
});
document.addEventListener('keydown',ev=>{
  if(ev.altKey||ev.ctrlKey||ev.metaKey)return;
  if(ev.key==='ArrowRight'||ev.key==='ArrowDown'||ev.key==='j'){ev.preventDefault();go(cur+1);}
  else if(ev.key==='ArrowLeft'||ev.key==='ArrowUp'||ev.key==='k'){ev.preventDefault();go(cur-1);}
  else if(ev.key==='Home'){ev.preventDefault();go(0);}
  else if(ev.key==='End'){ev.preventDefault();go(visible().length-1);}
});
document.querySelectorAll('#sheet .step').forEach(s=>s.addEventListener('click',()=>{const i=visible().indexOf(s);if(i>=0)go(i);}));
setView(view);
})();
"""


def page(r, blocks, digits: int, zero_below: float) -> str:
    """The page for step result ``r`` whose sheet is ``blocks`` (see :func:`.sheet.build`)."""
    nums = _Numbers(r, digits, zero_below)
    w = _MathWriter(nums)
    L = r.n_layers
    batch = r.is_batch
    svg, _ = _diagram(r)
    notes = _notes(r, nums)
    # Sections: example j's forward and backward, the sum (batch loss, summed gradient) or shared.
    body, ex, section, title = [], None, 0, ""
    open_ex = None
    for blk in blocks:
        if isinstance(blk, Heading):
            if blk.level == 1:
                title = blk.text
                continue
            m = re.match(r"Example (\d+)", blk.text)
            if open_ex is not None and (blk.level <= 2 or m or blk.text.startswith("The summed")):
                body.append("</div>")
                open_ex = None
            if blk.level == 2:
                section = int(blk.text[0]) if blk.text[0].isdigit() else section
                body.append(f"<h2>{_html.escape(blk.text)}</h2>")
            elif m and batch:
                open_ex = str(int(m.group(1)) - 1)
                body.append(f'<div class="ex" data-ex="{open_ex}"><h3>{_html.escape(blk.text)}</h3>')
            elif blk.text.startswith("The summed") and batch:
                open_ex = "sum"
                body.append(f'<div class="ex" data-ex="sum"><h3>{_html.escape(blk.text)}</h3>')
            else:
                body.append(f"<h3>{_html.escape(blk.text)}</h3>")
        elif isinstance(blk, Para):
            body.append(f'<p class="prose">{w.para(blk)}</p>')
        else:
            hl = _targets(blk, L)
            tag = ""
            if batch and open_ex is None:
                # a line outside an example's section: the batch loss is the sum's; the rest is shared
                lhs = "".join(t.text for t in blk.lhs if isinstance(t, Sym))
                m = re.search(r"⁽([⁰¹²³⁴⁵⁶⁷⁸⁹]+)⁾", lhs)
                if section == 3 and m:
                    tag = f' data-ex="{int(m.group(1).translate(_SUP)) - 1}"'
                elif section == 3 and lhs == "L":
                    tag = ' data-ex="sum"'
                elif section == 6:
                    tag = ' data-ex="sum"'
                elif section == 1 and m:
                    tag = f' data-ex="{int(m.group(1).translate(_SUP)) - 1}"'
            body.append(f'<div class="step" data-hl="{hl}"{tag} tabindex="-1">{w.eq(blk)}</div>')
    if open_ex is not None:
        body.append("</div>")
    if nums.flushed:
        body.append(f'<p class="prose"><em>{_html.escape(zero_note(zero_below, tex=False))}</em></p>')
    views = ""
    if batch:
        views = ('<span id="views" role="group" aria-label="Which example">' + "".join(
            f'<button type="button" data-view="{j}">Example {j + 1}</button>' for j in range(len(r.examples)))
            + '<button type="button" data-view="sum">All, then the sum</button></span>')
    kind = (f"one gradient-descent step on the summed loss of {len(r.examples)} examples" if batch
            else "one SGD step on one example")
    notes_json = json.dumps(notes, ensure_ascii=False).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>{_html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{_html.escape(title)}</h1>
<p>Layers {", ".join(map(str, r.layers))}; {kind}. Every number below was computed with the autograd MLP and
checked against a hand-written backprop; printed to {digits} significant digits.</p>
<p class="keys">Step with ← → (or the buttons); click, hover or Tab to any weight, bias or unit for its numbers.</p>
</header>
<nav id="controls" aria-label="Step through the solution">
<button type="button" id="prev" aria-label="Previous line">← Previous</button>
<button type="button" id="next" aria-label="Next line">Next →</button>
<span id="where" aria-live="polite"></span>
{views}
</nav>
<main>
<aside id="side" aria-label="The network">
{svg}
<div id="info" aria-live="polite"><p>Choose a weight, bias or unit in the diagram.</p></div>
</aside>
<section id="sheet">
{"".join(body)}
</section>
</main>
<script type="application/json" id="notes">{notes_json}</script>
<script>{_JS}</script>
</body>
</html>
"""


class Embedded:
    """The page inside an ``<iframe srcdoc>``: a notebook shows it, scripts and all, isolated from the notebook."""

    def __init__(self, page_html: str, height: int = 640):
        self.page, self.height = page_html, int(height)

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{_html.escape(self.page, quote=True)}" style="width:100%;height:{self.height}px;'
                'border:1px solid #ddd;border-radius:6px" sandbox="allow-scripts" '
                'title="worked solution, interactive"></iframe>')
