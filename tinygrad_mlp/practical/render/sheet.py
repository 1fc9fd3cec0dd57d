"""The worked solution as a document: the sheet's sections as blocks of notation and numbers.

The sheet's sections, in its order:

1. the parameters W^[l], b^[l] (a constant matrix in one line, c · 1), the learning rate η, the examples x, y;
2. forward propagation, z^[l] = W^[l] h^[l−1] + b^[l] and h^[l] = g(z^[l]), with numbers;
3. the loss, its formula and its value;
4. the output-layer gradient δ^[L] = ∂L/∂z^[L] for the chosen loss and output,
   the backward recurrences and the hidden activation's derivative g';
5. backward, layer by layer from L down to 1:
   ∂L/∂W^[l] = ∂L/∂z^[l] h^[l−1]ᵀ,  ∂L/∂b^[l] = ∂L/∂z^[l],
   ∂L/∂h^[l−1] = W^[l]ᵀ ∂L/∂z^[l],  ∂L/∂z^[l−1] = ∂L/∂h^[l−1] ⊙ g'(z^[l−1]);
   for a batch, each example in turn and then the summed gradient;
6. the update W^[l] − η ∂L/∂W^[l] and b^[l] − η ∂L/∂b^[l] for every layer.

Every number comes from a :class:`~tinygrad_mlp.practical.result.StepResult` (checked
by the exercise runner against the hand-written backprop); nothing is recomputed
here.  The blocks (headings, prose, equations made of symbols and matrices) are
written out by :mod:`.text`, :mod:`.markdown`, :mod:`.latex` and :mod:`.html`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FORMATS = ("text", "markdown", "latex", "html")
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
    # trim="-" leaves the point of a mantissa whose digits were all trimmed (-5.0 -> "-5."): drop it
    return f"{mant.rstrip('.')}e{int(exp):+03d}"


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
    q: str = ""  # where it sits in the result's JSON ("loss", "examples.0.loss"), for the page's links


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


_SUB_DIGITS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def ones(shape: tuple) -> Sym:
    """The all-ones matrix 1_{out×in} (or vector 1_{out})."""
    if len(shape) == 1 or shape[1] == 1:
        n = str(shape[0])
        return Sym(f"\\mathbf{{1}}_{{{n}}}", "1" + n.translate(_SUB_DIGITS))
    o, i = (str(d) for d in shape)
    return Sym(f"\\mathbf{{1}}_{{{o} \\times {i}}}", f"1{o.translate(_SUB_DIGITS)}ₓ{i.translate(_SUB_DIGITS)}")


def _parameter(a, q: str) -> list:
    """A parameter as given: a constant matrix in one line, c · 1_{out×in}; otherwise its entries."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.size > 1 and np.all(arr == arr.flat[0]):
        return [Num(float(arr.flat[0]), q=q + ".0" * arr.ndim), Sym("\\cdot", "·"), ones(arr.shape)]
    return [Mat(_v(a))]


def zero_note(zero_below: float, tex: bool) -> str:
    """The note under a sheet where some nonzero value printed as 0."""
    e = int(round(math.log10(zero_below)))
    if tex:
        return (f"\\emph{{Entries printed as 0 include values below $10^{{{e}}}$ in magnitude: floating-point "
                "round-off of an exact 0.}")
    return (f"Entries printed as 0 include values below 10^{e} in magnitude: floating-point round-off of "
            "an exact 0.")


def build(r) -> list:
    """The sheet as blocks, from a :class:`~tinygrad_mlp.practical.result.StepResult` ``r``."""
    L = r.n_layers
    hidden, output, loss = r.hidden, r.output, r.loss_name
    batch = r.is_batch
    eta = r.learning_rate
    W0, b0 = r.W0, r.b0
    out = _output_sym(output)
    blocks: list = []
    title = r.title or f"Exercise {r.name or ''}".strip()
    blocks.append(Heading(1, tex_escape(title), title))
    g_name = {"tanh": "tanh", "sigmoid": "sigmoid", "relu": "ReLU", "identity": "linear"}[hidden]
    o_name = {"identity": "linear", "softmax": "softmax", "sigmoid": "sigmoid"}[output]
    l_name = {"squared_error": "squared error", "cross_entropy": "cross-entropy"}[loss]
    kind = (f"one gradient-descent step on the summed loss of {len(r.examples)} examples" if batch
            else "one stochastic gradient descent step on one example")
    blocks.append(Para([f"A network with layer sizes {', '.join(str(n) for n in r.layers)}, {g_name} hidden "
                        f"units, a {o_name} output layer and the {l_name} loss; {kind}, learning rate ",
                        Sym(f"\\eta = {_tex_number(_exact(eta))}", f"η = {_exact(eta)}"),
                        ". Notation: ", Sym("\\boldsymbol{z}^{[l]} = \\mathbf{W}^{[l]} \\boldsymbol{h}^{[l-1]} + "
                                            "\\boldsymbol{b}^{[l]}", "z^[l] = W^[l] h^[l−1] + b^[l]"), ", ",
                        Sym("\\boldsymbol{h}^{[l]} = g(\\boldsymbol{z}^{[l]})", "h^[l] = g(z^[l])"), ", ",
                        Sym("\\boldsymbol{h}^{[0]} = \\boldsymbol{x}", "h^[0] = x"), "."]))

    # 1. parameters
    blocks.append(Heading(2, "1. The parameters", "1. The parameters"))
    for l in range(1, L + 1):
        blocks.append(Eq([W(l)], [_parameter(W0[l - 1], f"initial.W.{l - 1}")]))
        blocks.append(Eq([b(l)], [_parameter(b0[l - 1], f"initial.b.{l - 1}")]))
    for j, e in enumerate(r.examples, 1):
        jj = j if batch else None
        blocks.append(Eq([h(0, jj)], [[Mat(_v(e.x))]]))
        blocks.append(Eq([Y(jj)], [[Mat(_v(e.y))]]))

    # 2. forward
    blocks.append(Heading(2, "2. Forward propagation", "2. Forward propagation"))
    gt, gx = G_NAMES[hidden]
    ot, ox = G_NAMES[output]
    for j, e in enumerate(r.examples, 1):
        jj = j if batch else None
        if batch:
            blocks.append(Heading(3, f"Example {j}", f"Example {j}"))
        for l in range(1, L + 1):
            prev = e.x if l == 1 else e.h[l - 2]
            blocks.append(Eq([z(l)], [[W(l), h(l - 1, jj), PLUS, b(l)],
                                      [Mat(_v(W0[l - 1])), Mat(_v(prev)), PLUS, Mat(_v(b0[l - 1]))],
                                      [Mat(_v(e.z[l - 1]))]]))
            zl, hl = e.z[l - 1], e.h[l - 1]
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
    for j, e in enumerate(r.examples, 1):
        jj = j if batch else None
        et, ex = _ex(jj)
        if loss == "squared_error":
            f = Sym(f"\\tfrac{{1}}{{2}} \\sum_{{i}} (\\hat{{y}}{et}_i - y{et}_i)^2", f"½ Σᵢ (ŷᵢ{ex} − yᵢ{ex})²")
        else:
            f = Sym(f"-\\sum_{{k}} y{et}_k \\log p{et}_k", f"−Σₖ yₖ{ex} log pₖ{ex}")
        blocks.append(Eq([Lsym(jj)], [[f], [Num(e.loss, q=f"examples.{j - 1}.loss")]]))
    if batch:
        n = len(r.examples)
        blocks.append(Para(["The batch loss is the sum over the examples (so its gradient is the sum of theirs):"]))
        sum_syms, sum_nums = [], []
        for j in range(1, n + 1):
            if j > 1:
                sum_syms.append(PLUS)
                sum_nums.append(PLUS)
            sum_syms.append(Lsym(j))
            sum_nums.append(Num(r.examples[j - 1].loss, q=f"examples.{j - 1}.loss"))
        blocks.append(Eq([Lsym()], [sum_syms, sum_nums, [Num(r.loss, q="loss")]]))

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
    for j, e in enumerate(r.examples, 1):
        jj = j if batch else None
        if batch:
            blocks.append(Heading(3, f"Example {j}", f"Example {j}"))
        yv, outv, dzL, dhL = e.y, e.output, e.dz[L - 1], e.dh[L - 1]
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
            prev = e.x if l == 1 else e.h[l - 2]
            dz = e.dz[l - 1]
            blocks.append(Eq([dL(W(l), jj)], [[dL(z(l), jj), hT(l - 1, jj)], [Mat(_v(dz)), tr(prev)],
                                               [Mat(_v(e.grad_W[l - 1]))]]))
            blocks.append(Eq([dL(b(l), jj)], [[dL(z(l), jj)], [Mat(_v(e.grad_b[l - 1]))]]))
            if l > 1:
                dh = e.dh[l - 2]
                blocks.append(Eq([dL(h(l - 1), jj)], [[Sym(f"\\mathbf{{W}}^{{[{l}]\\top}}", f"W^[{l}]ᵀ"),
                                                       dL(z(l), jj)],
                                                      [tr(W0[l - 1]), Mat(_v(dz))], [Mat(_v(dh))]]))
                gterms = _hidden_derivative_terms(hidden, e.h[l - 2], e.z[l - 2])
                sym = [dL(h(l - 1), jj), HAD, *_hidden_derivative_symbolic(hidden, l - 1)]
                if gterms is None:  # identity: g' = 1
                    steps = [[dL(h(l - 1), jj)], [Mat(_v(e.dz[l - 2]))]]
                else:
                    steps = [sym, [Mat(_v(dh)), HAD, *gterms], [Mat(_v(e.dz[l - 2]))]]
                blocks.append(Eq([dL(z(l - 1), jj)], steps))
    if batch:
        blocks.append(Heading(3, "The summed gradient", "The summed gradient"))
        n = len(r.examples)
        for l in range(1, L + 1):
            for key, sym in (("grad_W", W(l)), ("grad_b", b(l))):
                syms, mats = [], []
                for j in range(1, n + 1):
                    if j > 1:
                        syms.append(PLUS)
                        mats.append(PLUS)
                    syms.append(dL(sym, j))
                    mats.append(Mat(_v(getattr(r.examples[j - 1], key)[l - 1])))
                blocks.append(Eq([dL(sym)], [syms, mats, [Mat(_v(getattr(r, key)[l - 1]))]]))

    # 6. updates
    blocks.append(Heading(2, "6. The update", "6. The update"))
    blocks.append(Para(["Every parameter takes one step against its gradient, with ",
                        Sym(f"\\eta = {_tex_number(_exact(eta))}", f"η = {_exact(eta)}"),
                        ", starting with the first layer:"]))
    for l in range(1, L + 1):
        for sym, key, init in ((W(l), "W", W0), (b(l), "b", b0)):
            gkey = "grad_" + key
            blocks.append(Eq([sym, MINUS, ETA, dL(sym)],
                             [[Mat(_v(init[l - 1])), MINUS, Num(eta, True, q="learning_rate"), Mat(_v(getattr(r, gkey)[l - 1]))],
                              [Mat(_v(getattr(r, key)[l - 1]))]]))
    return blocks


def tex_escape(s: str) -> str:
    rep = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_",
           "{": "\\{", "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}",
           "→": "$\\to$", "−": "-", "–": "--", "—": "---"}
    return "".join(rep.get(c, c if ord(c) < 128 else "?") for c in s)

