"""Worked solutions: one exercise step written out as the practical's solution sheet.

The sheet's sections, in its order:

1. the parameters W^[l], b^[l] (and the learning rate η, the examples x, y);
2. forward propagation, z^[l] = W^[l] h^[l−1] + b^[l] and h^[l] = g(z^[l]), with numbers;
3. the loss, its formula and its value;
4. the output-layer gradient δ^[L] = ∂L/∂z^[L] for the chosen loss and output,
   the backward recurrences and the hidden activation's derivative g';
5. backward, layer by layer from L down to 1:
   ∂L/∂W^[l] = ∂L/∂z^[l] h^[l−1]ᵀ,  ∂L/∂b^[l] = ∂L/∂z^[l],
   ∂L/∂h^[l−1] = W^[l]ᵀ ∂L/∂z^[l],  ∂L/∂z^[l−1] = ∂L/∂h^[l−1] ⊙ g'(z^[l−1]);
   for a batch, each example in turn and then the summed gradient;
6. the update W^[l] − η ∂L/∂W^[l] and b^[l] − η ∂L/∂b^[l] for every layer.

Every number comes from :func:`tinygrad_mlp.exercise.run_step` (checked there
against the hand-written backprop); nothing is recomputed here.  The document
is built once as a list of blocks (headings, prose, equations made of symbols
and matrices) and written out three ways: Markdown with ``$$ … $$`` math,
a LaTeX document (amsmath only) and plain text with aligned columns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
import numpy as np

__all__ = ["WorkedSolution", "worked_solution", "solution_for", "format_number", "FORMATS", "DEFAULT_DIGITS",
           "ZERO_BELOW"]

FORMATS = ("text", "markdown", "latex")
DEFAULT_DIGITS = 4
# |v| below this prints as 0: the sheet's exact zeros (e.g. Q2's hidden gradients,
# 0.1·Σ(p − y)) come out of floating point as ~1e-18, and a note says so.
ZERO_BELOW = 1e-12
TEXT_WIDTH = 100  # characters per text line before an equation wraps
TEX_WIDTH = 78  # rough budget, in digit widths, of one displayed line in the LaTeX document


# --------------------------------------------------------------------------- numbers
def format_number(v: float, digits: int = DEFAULT_DIGITS, zero_below: float = ZERO_BELOW) -> str:
    """``v`` to ``digits`` significant digits, trailing zeros dropped (0.3, 0.2913, -0.050812).

    Magnitudes outside [1e-4, 1e6) use an exponent (``1.234e-05``); ``|v| <
    zero_below`` prints as ``0``.
    """
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    if v == 0 or abs(v) < zero_below:
        return "0"
    if 1e-4 <= abs(v) < 1e6:
        s = np.format_float_positional(v, precision=digits, unique=False, fractional=False, trim="-")
        return "0" if s in ("-0", "0") else s
    mant, exp = np.format_float_scientific(v, precision=digits - 1, unique=False, trim="-").split("e")
    return f"{mant}e{int(exp):+03d}"


def _exact(v: float) -> str:
    """A given constant (η) in full: the shortest repr, no rounding."""
    s = repr(float(v))
    if "e" in s:
        mant, exp = s.split("e")
        return f"{mant}e{int(exp):+03d}"
    return s[:-2] if s.endswith(".0") else s


def _tex_number(s: str) -> str:
    if "e" in s:
        mant, exp = s.split("e")
        return f"{mant} \\times 10^{{{int(exp)}}}"
    return s


# --------------------------------------------------------------------------- the document model
@dataclass
class Sym:
    """A piece of notation, spelled for LaTeX and for text; ``op`` marks where a long line may wrap."""

    tex: str
    text: str
    op: bool = False


@dataclass
class Mat:
    """A matrix (vectors are columns), with an optional superscript such as ᵀ or ²."""

    a: np.ndarray
    sup_tex: str = ""
    sup_text: str = ""


@dataclass
class Num:
    """A scalar printed at the document's precision."""

    v: float
    exact: bool = False  # given data such as η: printed in full, not rounded


@dataclass
class Group:
    """Terms in brackets: (1 − h²) and the like."""

    terms: list


@dataclass
class Eq:
    """``lhs = steps[0] = steps[1] = …``, one step per aligned line."""

    lhs: list
    steps: list


@dataclass
class Heading:
    level: int
    tex: str
    text: str


@dataclass
class Para:
    """Prose; each part is a plain string or a :class:`Sym` (inline maths)."""

    parts: list


def _v(x) -> np.ndarray:
    """A vector as a column, a matrix as is."""
    a = np.asarray(x, dtype=np.float64)
    return a.reshape(-1, 1) if a.ndim == 1 else a


# ---- notation, in the practical's symbols
def _lay(l) -> tuple[str, str]:
    return f"^{{[{l}]}}", f"^[{str(l).replace('-', '−')}]"


_SUP_DIGITS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _ex(j: int | None) -> tuple[str, str]:
    """The example superscript (j) of a batch: L^(j), x^(j)."""
    if j is None:
        return "", ""
    return f"^{{({j})}}", f"⁽{str(j).translate(_SUP_DIGITS)}⁾"


def W(l) -> Sym:
    t, x = _lay(l)
    return Sym(f"\\mathbf{{W}}{t}", f"W{x}")


def b(l) -> Sym:
    t, x = _lay(l)
    return Sym(f"\\boldsymbol{{b}}{t}", f"b{x}")


def z(l) -> Sym:
    t, x = _lay(l)
    return Sym(f"\\boldsymbol{{z}}{t}", f"z{x}")


def h(l, j=None) -> Sym:
    if l == 0:
        et, ex = _ex(j)
        return Sym(f"\\boldsymbol{{x}}{et}", f"x{ex}")
    t, x = _lay(l)
    return Sym(f"\\boldsymbol{{h}}{t}", f"h{x}")


def hT(l, j=None) -> Sym:
    s = h(l, j)
    if l == 0:
        return Sym(f"\\boldsymbol{{x}}^{{({j})\\top}}" if j else "\\boldsymbol{x}^{\\top}", s.text + "ᵀ")
    return Sym(f"\\boldsymbol{{h}}^{{[{l}]\\top}}", s.text + "ᵀ")


def dL(wrt: Sym, j=None) -> Sym:
    """∂L/∂(wrt); L^(j) for one example of a batch."""
    et, ex = _ex(j)
    return Sym(f"\\frac{{\\partial L{et}}}{{\\partial {wrt.tex}}}", f"∂L{ex}/∂{wrt.text}")


def op(tex: str, text: str) -> Sym:
    return Sym(tex, text, op=True)


PLUS, MINUS, HAD = op("+", "+"), op("-", "−"), op("\\odot", "⊙")
ETA = Sym("\\eta", "η")
YHAT = Sym("\\hat{\\boldsymbol{y}}", "ŷ")
P = Sym("\\boldsymbol{p}", "p")


def Y(j=None) -> Sym:
    et, ex = _ex(j)
    return Sym(f"\\boldsymbol{{y}}{et}", f"y{ex}")


def Lsym(j=None) -> Sym:
    et, ex = _ex(j)
    return Sym(f"L{et}", f"L{ex}")


def fn(tex: str, text: str) -> Sym:
    return Sym(tex, text)


def sq(a) -> Mat:
    return Mat(_v(a), "^{2}", "²")


def tr(a) -> Mat:
    return Mat(_v(a), "^{\\top}", "ᵀ")


G_NAMES = {"tanh": ("\\tanh", "tanh"), "sigmoid": ("\\sigma", "σ"), "relu": ("\\operatorname{relu}", "relu"),
           "identity": ("", ""), "softmax": ("\\operatorname{softmax}", "softmax")}


# --------------------------------------------------------------------------- building the sheet
def _output_sym(output: str) -> Sym:
    return P if output == "softmax" else YHAT


def _hidden_derivative_terms(hidden: str, hl, zl) -> list | None:
    """g'(z^[l]) written with run_step's numbers: 1 − h², h ⊙ (1 − h), 1[z > 0]."""
    if hidden == "tanh":
        return [Group([Sym("1", "1"), MINUS, sq(hl)])]
    if hidden == "sigmoid":
        return [Mat(_v(hl)), HAD, Group([Sym("1", "1"), MINUS, Mat(_v(hl))])]
    if hidden == "relu":
        return [Sym("\\mathbf{1}", "1"), Group([Mat(_v(zl)), Sym("> 0", "> 0")])]
    return None


def _hidden_derivative_symbolic(hidden: str, l) -> list:
    lt, lx = _lay(l)
    return {
        "tanh": [Group([Sym("1", "1"), MINUS, Sym(f"\\left(\\boldsymbol{{h}}{lt}\\right)^{{2}}", f"(h{lx})²")])],
        "sigmoid": [h(l), HAD, Group([Sym("1", "1"), MINUS, h(l)])],
        "relu": [Sym(f"\\mathbf{{1}}\\left[\\boldsymbol{{z}}{lt} > 0\\right]", f"1[z{lx} > 0]")],
        "identity": [Sym("\\mathbf{1}", "1")],
    }[hidden]


DERIVATIVE_TEXT = {
    "tanh": (["The hidden layers use ", Sym("g = \\tanh", "g = tanh"), ", whose derivative is ",
              Sym("\\tanh'(z) = 1 - \\tanh^2(z)", "tanh'(z) = 1 − tanh²(z)"), ", so ",
              Sym("g'(\\boldsymbol{z}^{[l]}) = 1 - (\\boldsymbol{h}^{[l]})^2", "g'(z^[l]) = 1 − (h^[l])²"), "."]),
    "sigmoid": (["The hidden layers use the logistic sigmoid ", Sym("g = \\sigma", "g = σ"),
                 ", whose derivative is ",
                 Sym("\\sigma'(z) = \\sigma(z)\\,(1 - \\sigma(z))", "σ'(z) = σ(z)(1 − σ(z))"),
                 ", so ", Sym("g'(\\boldsymbol{z}^{[l]}) = \\boldsymbol{h}^{[l]} \\odot (1 - \\boldsymbol{h}^{[l]})",
                              "g'(z^[l]) = h^[l] ⊙ (1 − h^[l])"), "."]),
    "relu": (["The hidden layers use ", Sym("g(z) = \\max(z, 0)", "g(z) = max(z, 0)"), ", whose derivative is ",
              Sym("\\operatorname{relu}'(z) = \\mathbf{1}[z > 0]", "relu'(z) = 1[z > 0]"),
              " (1 where z > 0, else 0; taken as 0 at z = 0)."]),
    "identity": (["The hidden layers are linear, ", Sym("g(z) = z", "g(z) = z"), ", so ",
                  Sym("g'(z) = 1", "g'(z) = 1"), "."]),
}


def _build(r: dict) -> list:
    """The sheet as blocks, from run_step's result ``r``."""
    L = len(r["W"])
    hidden, output, loss = r["hidden"], r["output"], r["loss_name"]
    batch = len(r["examples"]) > 1
    eta = r["learning_rate"]
    W0, b0 = r["initial"]["W"], r["initial"]["b"]
    out = _output_sym(output)
    blocks: list = []
    title = r.get("title") or f"Exercise {r.get('name', '')}".strip()
    blocks.append(Heading(1, _tex_escape(title), title))
    g_name = {"tanh": "tanh", "sigmoid": "sigmoid", "relu": "ReLU", "identity": "linear"}[hidden]
    o_name = {"identity": "linear", "softmax": "softmax", "sigmoid": "sigmoid"}[output]
    l_name = {"squared_error": "squared error", "cross_entropy": "cross-entropy"}[loss]
    kind = (f"one gradient-descent step on the summed loss of {len(r['examples'])} examples" if batch
            else "one stochastic gradient descent step on one example")
    blocks.append(Para([f"A network with layer sizes {', '.join(str(n) for n in r['layers'])}, {g_name} hidden "
                        f"units, a {o_name} output layer and the {l_name} loss; {kind}, learning rate ",
                        Sym(f"\\eta = {_tex_number(_exact(eta))}", f"η = {_exact(eta)}"),
                        ". Notation: ", Sym("\\boldsymbol{z}^{[l]} = \\mathbf{W}^{[l]} \\boldsymbol{h}^{[l-1]} + "
                                            "\\boldsymbol{b}^{[l]}", "z^[l] = W^[l] h^[l−1] + b^[l]"), ", ",
                        Sym("\\boldsymbol{h}^{[l]} = g(\\boldsymbol{z}^{[l]})", "h^[l] = g(z^[l])"), ", ",
                        Sym("\\boldsymbol{h}^{[0]} = \\boldsymbol{x}", "h^[0] = x"), "."]))

    # 1. parameters
    blocks.append(Heading(2, "1. The parameters", "1. The parameters"))
    for l in range(1, L + 1):
        blocks.append(Eq([W(l)], [[Mat(_v(W0[l - 1]))]]))
        blocks.append(Eq([b(l)], [[Mat(_v(b0[l - 1]))]]))
    for j, e in enumerate(r["examples"], 1):
        jj = j if batch else None
        blocks.append(Eq([h(0, jj)], [[Mat(_v(e["x"]))]]))
        blocks.append(Eq([Y(jj)], [[Mat(_v(e["y"]))]]))

    # 2. forward
    blocks.append(Heading(2, "2. Forward propagation", "2. Forward propagation"))
    gt, gx = G_NAMES[hidden]
    ot, ox = G_NAMES[output]
    for j, e in enumerate(r["examples"], 1):
        jj = j if batch else None
        if batch:
            blocks.append(Heading(3, f"Example {j}", f"Example {j}"))
        for l in range(1, L + 1):
            prev = e["x"] if l == 1 else e["h"][l - 2]
            blocks.append(Eq([z(l)], [[W(l), h(l - 1, jj), PLUS, b(l)],
                                      [Mat(_v(W0[l - 1])), Mat(_v(prev)), PLUS, Mat(_v(b0[l - 1]))],
                                      [Mat(_v(e["z"][l - 1]))]]))
            zl, hl = e["z"][l - 1], e["h"][l - 1]
            if l < L:
                if hidden == "identity":
                    blocks.append(Eq([h(l)], [[z(l)], [Mat(_v(hl))]]))
                else:
                    blocks.append(Eq([h(l)], [[Sym(f"{gt}({z(l).tex})", f"{gx}({z(l).text})")],
                                              [fn(gt, gx), Mat(_v(zl))], [Mat(_v(hl))]]))
            elif output == "identity":
                blocks.append(Eq([out], [[h(L)], [z(L)], [Mat(_v(hl))]]))
            else:
                blocks.append(Eq([out], [[h(L)], [Sym(f"{ot}({z(L).tex})", f"{ox}({z(L).text})")],
                                         [fn(ot, ox), Mat(_v(zl))], [Mat(_v(hl))]]))

    # 3. loss
    blocks.append(Heading(2, "3. The loss", "3. The loss"))
    for j, e in enumerate(r["examples"], 1):
        jj = j if batch else None
        et, ex = _ex(jj)
        if loss == "squared_error":
            f = Sym(f"\\tfrac{{1}}{{2}} \\sum_{{i}} (\\hat{{y}}{et}_i - y{et}_i)^2", f"½ Σᵢ (ŷᵢ{ex} − yᵢ{ex})²")
        else:
            f = Sym(f"-\\sum_{{k}} y{et}_k \\log p{et}_k", f"−Σₖ yₖ{ex} log pₖ{ex}")
        blocks.append(Eq([Lsym(jj)], [[f], [Num(e["loss"])]]))
    if batch:
        n = len(r["examples"])
        blocks.append(Para(["The batch loss is the sum over the examples (so its gradient is the sum of theirs):"]))
        sum_syms, sum_nums = [], []
        for j in range(1, n + 1):
            if j > 1:
                sum_syms.append(PLUS)
                sum_nums.append(PLUS)
            sum_syms.append(Lsym(j))
            sum_nums.append(Num(r["examples"][j - 1]["loss"]))
        blocks.append(Eq([Lsym()], [sum_syms, sum_nums, [Num(r["loss"])]]))

    # 4. output-layer gradient and the recurrences
    blocks.append(Heading(2, "4. The output-layer gradient", "4. The output-layer gradient"))
    if output == "softmax":
        blocks.append(Para(["For a softmax output with the cross-entropy loss, ",
                            Sym("L = -\\boldsymbol{y}^{\\top}\\boldsymbol{z}^{[L]} + \\log \\sum_j \\exp z^{[L]}_j",
                                "L = −yᵀz^[L] + log Σⱼ exp zⱼ^[L]"), " (y one-hot), so:"]))
        blocks.append(Eq([dL(P)], [[Sym("-\\boldsymbol{y} \\oslash \\boldsymbol{p}", "−y ⊘ p")]]))
        blocks.append(Eq([dL(z("L"))], [[P, MINUS, Y()]]))
    elif output == "sigmoid":
        blocks.append(Para(["For a sigmoid output with the squared error, ",
                            Sym("\\sigma'(z) = \\sigma(z)(1 - \\sigma(z))", "σ'(z) = σ(z)(1 − σ(z))"), ", so:"]))
        blocks.append(Eq([dL(YHAT)], [[YHAT, MINUS, Y()]]))
        blocks.append(Eq([dL(z("L"))], [[dL(YHAT), HAD, YHAT, HAD, Group([Sym("1", "1"), MINUS, YHAT])]]))
    else:
        blocks.append(Para(["For a linear output with the squared error, ",
                            Sym("\\hat{\\boldsymbol{y}} = \\boldsymbol{z}^{[L]}", "ŷ = z^[L]"), ", so:"]))
        blocks.append(Eq([dL(z("L"))], [[dL(YHAT)], [YHAT, MINUS, Y()]]))
    blocks.append(Para(["Then, from layer L down to layer 1:"]))
    blocks.append(Eq([dL(W("l"))], [[dL(z("l")), hT("l-1")]]))
    blocks.append(Eq([dL(b("l"))], [[dL(z("l"))]]))
    if L > 1:
        blocks.append(Eq([dL(h("l-1"))], [[Sym("\\mathbf{W}^{[l]\\top}", "W^[l]ᵀ"), dL(z("l"))]]))
        blocks.append(Eq([dL(z("l-1"))], [[dL(h("l-1")), HAD, Sym("g'(\\boldsymbol{z}^{[l-1]})", "g'(z^[l−1])")]]))
        blocks.append(Para(DERIVATIVE_TEXT[hidden]))

    # 5. backward
    blocks.append(Heading(2, "5. Backward propagation", "5. Backward propagation"))
    for j, e in enumerate(r["examples"], 1):
        jj = j if batch else None
        if batch:
            blocks.append(Heading(3, f"Example {j}", f"Example {j}"))
        yv, outv, dzL, dhL = e["y"], e["output"], e["dz"][L - 1], e["dh"][L - 1]
        if output == "softmax":
            blocks.append(Eq([dL(P, jj)], [[Sym("-\\boldsymbol{y} \\oslash \\boldsymbol{p}", "−y ⊘ p")],
                                            [Mat(_v(dhL))]]))
            blocks.append(Eq([dL(z(L), jj)], [[P, MINUS, Y(jj)], [Mat(_v(outv)), MINUS, Mat(_v(yv))],
                                               [Mat(_v(dzL))]]))
        elif output == "sigmoid":
            blocks.append(Eq([dL(YHAT, jj)], [[YHAT, MINUS, Y(jj)], [Mat(_v(outv)), MINUS, Mat(_v(yv))],
                                               [Mat(_v(dhL))]]))
            blocks.append(Eq([dL(z(L), jj)], [[dL(YHAT, jj), HAD, YHAT, HAD, Group([Sym("1", "1"), MINUS, YHAT])],
                                               [Mat(_v(dhL)), HAD, Mat(_v(outv)), HAD,
                                                Group([Sym("1", "1"), MINUS, Mat(_v(outv))])],
                                               [Mat(_v(dzL))]]))
        else:
            blocks.append(Eq([dL(z(L), jj)], [[dL(YHAT, jj)], [YHAT, MINUS, Y(jj)],
                                               [Mat(_v(outv)), MINUS, Mat(_v(yv))], [Mat(_v(dzL))]]))
        for l in range(L, 0, -1):
            prev = e["x"] if l == 1 else e["h"][l - 2]
            dz = e["dz"][l - 1]
            blocks.append(Eq([dL(W(l), jj)], [[dL(z(l), jj), hT(l - 1, jj)], [Mat(_v(dz)), tr(prev)],
                                               [Mat(_v(e["grad_W"][l - 1]))]]))
            blocks.append(Eq([dL(b(l), jj)], [[dL(z(l), jj)], [Mat(_v(e["grad_b"][l - 1]))]]))
            if l > 1:
                dh = e["dh"][l - 2]
                blocks.append(Eq([dL(h(l - 1), jj)], [[Sym(f"\\mathbf{{W}}^{{[{l}]\\top}}", f"W^[{l}]ᵀ"),
                                                       dL(z(l), jj)],
                                                      [tr(W0[l - 1]), Mat(_v(dz))], [Mat(_v(dh))]]))
                gterms = _hidden_derivative_terms(hidden, e["h"][l - 2], e["z"][l - 2])
                sym = [dL(h(l - 1), jj), HAD, *_hidden_derivative_symbolic(hidden, l - 1)]
                if gterms is None:  # identity: g' = 1
                    steps = [[dL(h(l - 1), jj)], [Mat(_v(e["dz"][l - 2]))]]
                else:
                    steps = [sym, [Mat(_v(dh)), HAD, *gterms], [Mat(_v(e["dz"][l - 2]))]]
                blocks.append(Eq([dL(z(l - 1), jj)], steps))
    if batch:
        blocks.append(Heading(3, "The summed gradient", "The summed gradient"))
        n = len(r["examples"])
        for l in range(1, L + 1):
            for key, sym in (("grad_W", W(l)), ("grad_b", b(l))):
                syms, mats = [], []
                for j in range(1, n + 1):
                    if j > 1:
                        syms.append(PLUS)
                        mats.append(PLUS)
                    syms.append(dL(sym, j))
                    mats.append(Mat(_v(r["examples"][j - 1][key][l - 1])))
                blocks.append(Eq([dL(sym)], [syms, mats, [Mat(_v(r[key][l - 1]))]]))

    # 6. updates
    blocks.append(Heading(2, "6. The update", "6. The update"))
    blocks.append(Para(["Every parameter takes one step against its gradient, with ",
                        Sym(f"\\eta = {_tex_number(_exact(eta))}", f"η = {_exact(eta)}"),
                        ", starting with the first layer:"]))
    for l in range(1, L + 1):
        for sym, key, init in ((W(l), "W", W0), (b(l), "b", b0)):
            gkey = "grad_" + key
            blocks.append(Eq([sym, MINUS, ETA, dL(sym)],
                             [[Mat(_v(init[l - 1])), MINUS, Num(eta, True), Mat(_v(r[gkey][l - 1]))],
                              [Mat(_v(r[key][l - 1]))]]))
    return blocks


def _tex_escape(s: str) -> str:
    rep = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_",
           "{": "\\{", "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}",
           "→": "$\\to$", "−": "-", "–": "--", "—": "---"}
    return "".join(rep.get(c, c if ord(c) < 128 else "?") for c in s)


# --------------------------------------------------------------------------- LaTeX / Markdown
class _TexWriter:
    def __init__(self, digits: int, zero_below: float):
        self.digits, self.zero_below = digits, zero_below
        self.flushed = False  # whether some nonzero value printed as 0

    def num(self, v: float) -> str:
        s = format_number(v, self.digits, self.zero_below)
        if s == "0" and v != 0:
            self.flushed = True
        return _tex_number(s)

    def mat(self, m: Mat) -> str:
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
            cols = [max(len(format_number(v, self.digits, self.zero_below)) for v in col) for col in t.a.T]
            return sum(cols) + 2 * len(cols) + 2
        if isinstance(t, Num):
            return len(format_number(t.v, self.digits, self.zero_below))
        if isinstance(t, Group):
            return sum(self.width(u) + 1 for u in t.terms) + 2
        return 1

    def lines(self, terms: list, budget: int) -> list[str]:
        """Split a step at its + − ⊙ so each piece fits ``budget`` (a single matrix may still overflow)."""
        pieces, cur, w = [], [], 0
        for t in terms:
            tw = self.width(t) + 1
            if isinstance(t, Mat) and tw > budget and t.a.shape[1] > 1:
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
                w = 0
                continue
            if cur and isinstance(t, Sym) and t.op and w + tw > budget:
                pieces.append(cur)
                cur, w = [], 0
            cur.append(t)
            w += tw
        pieces.append(cur)
        return [" ".join(self.term(t) for t in p) for p in pieces]

    def _rows(self, a: np.ndarray) -> str:
        return " \\\\ ".join(" & ".join(self.num(v) for v in row) for row in a)

    def _column_chunks(self, m: Mat, first: int, rest: int) -> list[tuple[int, int]]:
        widths = [max(len(format_number(v, self.digits, self.zero_below)) for v in col) + 2 for col in m.a.T]
        chunks, lo, w, room = [], 0, 0, max(first, 12)
        for c, cw in enumerate(widths):
            if c > lo and w + cw > room:
                chunks.append((lo, c))
                lo, w, room = c, 0, rest
            w += cw
        chunks.append((lo, len(widths)))
        return chunks

    def eq(self, e: Eq) -> str:
        """An aligned chain: lhs &= step \\\\ &= step …"""
        lhs = " ".join(self.term(t) for t in e.lhs)
        budget = max(30, TEX_WIDTH - sum(self.width(t) for t in e.lhs))
        out = []
        for i, step in enumerate(e.steps):
            parts = self.lines(step, budget)
            out.append(("" if i else lhs + " ") + "&= " + parts[0])
            out.extend("&\\quad " + p for p in parts[1:])
        return "\\begin{aligned}\n" + " \\\\\n".join(out) + "\n\\end{aligned}"

    def para(self, p: Para, dollar: str = "$") -> str:
        return "".join(f"{dollar}{x.tex}{dollar}" if isinstance(x, Sym) else x for x in p.parts)


def _max_cols(blocks) -> int:
    n = 10
    for blk in blocks:
        if isinstance(blk, Eq):
            stack = [t for s in [blk.lhs, *blk.steps] for t in s]
            while stack:
                t = stack.pop()
                if isinstance(t, Mat):
                    n = max(n, t.a.shape[1])
                elif isinstance(t, Group):
                    stack.extend(t.terms)
    return n


def _latex(blocks, digits, zero_below, fragment: bool) -> str:
    w = _TexWriter(digits, zero_below)
    body = []
    for blk in blocks:
        if isinstance(blk, Heading):
            cmd = {1: "section*", 2: "subsection*", 3: "subsubsection*"}[blk.level]
            body.append(f"\\{cmd}{{{blk.tex}}}")
        elif isinstance(blk, Para):
            body.append(_tex_escape_para(w.para(blk)))
        else:
            body.append("\\begin{equation*}\n" + w.eq(blk) + "\n\\end{equation*}")
    if w.flushed:
        body.append(_zero_note(zero_below, tex=True))
    text = "\n\n".join(body) + "\n"
    if fragment:
        return text
    return ("\\documentclass[10pt]{article}\n\\usepackage{amsmath}\n"
            "% a wide text block: the matrices need the room\n"
            "\\setlength{\\textwidth}{17.5cm}\\setlength{\\oddsidemargin}{-0.7cm}\n"
            "\\setlength{\\textheight}{24.5cm}\\setlength{\\topmargin}{-1.8cm}\n"
            f"\\setcounter{{MaxMatrixCols}}{{{_max_cols(blocks)}}}\n"
            "\\allowdisplaybreaks\n\\setlength{\\parindent}{0pt}\\setlength{\\parskip}{4pt}\n"
            "\\begin{document}\n\\small\n" + text + "\\end{document}\n")


def _tex_escape_para(s: str) -> str:
    # prose parts are ASCII apart from a few symbols; maths parts are already TeX
    return s.replace("→", "$\\to$").replace("−", "-")


def _zero_note(zero_below: float, tex: bool) -> str:
    e = int(round(math.log10(zero_below)))
    if tex:
        return (f"\\emph{{Entries printed as 0 include values below $10^{{{e}}}$ in magnitude: floating-point "
                "round-off of an exact 0.}")
    return (f"Entries printed as 0 include values below 10^{e} in magnitude: floating-point round-off of "
            "an exact 0.")


def _markdown(blocks, digits, zero_below) -> str:
    w = _TexWriter(digits, zero_below)
    out = []
    for blk in blocks:
        if isinstance(blk, Heading):
            out.append("#" * blk.level + " " + blk.text)
        elif isinstance(blk, Para):
            out.append(w.para(blk))
        else:
            out.append("$$\n" + w.eq(blk) + "\n$$")
    if w.flushed:
        out.append("*" + _zero_note(zero_below, tex=False).replace("10^", "10^") + "*")
    return "\n\n".join(out) + "\n"


# --------------------------------------------------------------------------- text
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
            for t, bx in zip(step, boxes):
                if cur and isinstance(t, Sym) and t.op and lhs.width + 3 + w + bx.width > TEXT_WIDTH:
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


def _text(blocks, digits, zero_below) -> str:
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
        out.append(_zero_note(zero_below, tex=False))
    return "\n\n".join(out) + "\n"


def _wrap(s: str, width: int) -> str:
    import textwrap

    return textwrap.fill(s, width)


# --------------------------------------------------------------------------- public API
@dataclass
class WorkedSolution:
    """One exercise step as a solution sheet, renderable as Markdown, LaTeX or text.

    Parameters
    ----------
    result : dict
        What :func:`tinygrad_mlp.exercise.run_step` returned (already checked
        against the hand-written backprop).
    digits : int
        Significant digits of every printed number (default 4).
    zero_below : float
        Magnitudes below this print as 0 (floating-point round-off of exact zeros).
    """

    result: dict
    digits: int = DEFAULT_DIGITS
    zero_below: float = ZERO_BELOW
    _blocks: list = field(default=None, repr=False)

    def __post_init__(self):
        _check_digits(self.digits)
        if not isinstance(self.result, dict) or "examples" not in self.result:
            raise TypeError(f"result: expected the dict run_step returns, got {type(self.result).__name__}")
        self._blocks = _build(self.result)

    def markdown(self) -> str:
        """Markdown with ``$$ … $$`` display maths (``pmatrix``), for GitHub and Jupyter."""
        return _markdown(self._blocks, self.digits, self.zero_below)

    def latex(self, fragment: bool = False) -> str:
        """A complete pdflatex document using amsmath only; ``fragment=True`` gives just the body."""
        return _latex(self._blocks, self.digits, self.zero_below, fragment)

    def text(self) -> str:
        """Plain text, matrices drawn with aligned columns."""
        return _text(self._blocks, self.digits, self.zero_below)

    def render(self, fmt: str = "text", fragment: bool = False) -> str:
        """``fmt`` is one of ``text``, ``markdown``, ``latex``."""
        if fmt == "text":
            return self.text()
        if fmt == "markdown":
            return self.markdown()
        if fmt == "latex":
            return self.latex(fragment)
        raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_latex_(self) -> str:
        # Notebook front ends hand this to MathJax: display maths only, no document preamble.
        w = _TexWriter(self.digits, self.zero_below)
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


def worked_solution(model, X, Y, loss: str = "squared_error", learning_rate: float = 0.1,
                    digits: int = DEFAULT_DIGITS, title: str = "") -> WorkedSolution:
    """The worked solution of one step of ``model`` on inputs ``X`` and targets ``Y``.

    One example (``X`` a vector, or one row) gives an SGD step; several rows give
    one gradient-descent step on the summed loss.  The model is left unchanged:
    its parameters are copied into a spec (via ``state_dict``), validated by
    :func:`~tinygrad_mlp.exercise.parse_spec` and run by
    :func:`~tinygrad_mlp.exercise.run_step`.

    Parameters
    ----------
    model : MLP
    X : array_like, shape (d₀,) or (n, d₀)
    Y : array_like, shape (d_L,) or (n, d_L); integer class labels (n,) are one-hot encoded
    loss : {"squared_error", "cross_entropy"}
    learning_rate : float
        η.
    digits : int
        Significant digits printed.

    Returns
    -------
    WorkedSolution
    """
    from .exercise import parse_spec, run_step
    from ..nn.layers import MLP

    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a tinygrad_mlp.nn.MLP, got {type(model).__name__}")
    Xa = np.asarray(X, dtype=np.float64)
    if Xa.ndim == 1:
        Xa = Xa[None, :]
    Ya = np.asarray(Y)
    if Ya.dtype.kind in "iu" and Ya.ndim <= 1 and model.sizes[-1] > 1:
        labels = Ya.reshape(-1)
        if labels.size and (labels.min() < 0 or labels.max() >= model.sizes[-1]):
            raise ValueError(f"Y: class labels must lie in [0, {model.sizes[-1]}), got {labels.tolist()}")
        Ya = np.eye(model.sizes[-1])[labels]
    Ya = np.asarray(Ya, dtype=np.float64)
    if Ya.ndim == 1:
        Ya = Ya[None, :]
    if Xa.ndim != 2 or Ya.ndim != 2 or len(Xa) != len(Ya):
        raise ValueError(f"X, Y: expected the same number of examples (rows), got shapes {np.shape(X)} and "
                         f"{np.shape(Y)}")
    sd = model.state_dict()
    L = model.n_layers
    raw = {"layers": list(model.sizes), "hidden": model.hidden, "output": model.output, "loss": loss,
           "weights": [sd[f"W{l}"].tolist() for l in range(1, L + 1)],
           "biases": [sd[f"b{l}"].tolist() for l in range(1, L + 1)],
           "learning_rate": learning_rate,
           "examples": [{"x": x.tolist(), "y": y.tolist()} for x, y in zip(Xa, Ya)]}
    spec = parse_spec(raw)
    spec.name, spec.title = "model", title or "Worked solution: one training step"
    return WorkedSolution(run_step(spec), digits)


def solution_for(spec, digits: int = DEFAULT_DIGITS) -> WorkedSolution:
    """The worked solution of an :class:`~tinygrad_mlp.exercise.Spec` (runs :func:`run_step`)."""
    from .exercise import run_step

    return WorkedSolution(run_step(spec), digits)
