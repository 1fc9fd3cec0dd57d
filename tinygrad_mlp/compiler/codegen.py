"""Code generation: a captured step (:mod:`.capture`) and the replay rules (:mod:`.rules`) become one
straight-line NumPy function over preallocated buffers.

* forward: each captured call goes through its primitive's rule (``RULES[prim].forward``);
* backward: the tape's walk, reproduced: each reached call's ``RULES[prim].vjp``, gradients
  accumulated in the tape's order;
* update: the optimiser's :class:`~tinygrad_mlp.nn.optim.Update` description, lowered to ``out=``
  calls over the model's flat parameter buffer (:func:`lower_update`); an optimiser that only has an
  ``update()`` method gets its ``.grad`` set and is called.

Statements are kept as :class:`Op` (a NumPy call with ``out=``) or :class:`Raw` (any other Python),
so the passes after generation (constant folding, the t / r − y fusion) read structure, not text.
"""
from __future__ import annotations

import ast
import builtins

import numpy as np

from ..autograd.tensor import Tensor
from .capture import CaptureError, capture
from .rules import FUNCS, RULES, Call

MISS = object()  # what a replay returns when a guard fails


# --------------------------------------------------------------------------- statements
class Op:
    """``fn(ins..., kw=..., out=out)``: one NumPy call into a buffer."""

    __slots__ = ("fn", "ins", "out", "kw")

    def __init__(self, fn, ins, out, kw=()):
        self.fn, self.ins, self.out, self.kw = fn, list(ins), out, tuple(kw)

    def operands(self):
        return [n for n in (*self.ins, *(v for _, v in self.kw)) if n.isidentifier()
                and n not in ("True", "False", "None")]

    def names(self):
        return self.operands() + [self.out]

    def __str__(self):
        kw = "".join(f", {k}={v}" for k, v in self.kw)
        return f"{self.fn}({', '.join(self.ins)}{kw}, out={self.out})"


class Raw:
    """Any other statement(s); the names it uses are read from its syntax tree."""

    __slots__ = ("text", "uses", "native", "kind")

    def __init__(self, text, native=None, kind=None):
        self.text = text
        self.uses = {n.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name)}
        self.native = native  # the same computation as an Op the native backend renders, if any
        self.kind = kind      # "epilogue": .grad bookkeeping and the return, which a kernel does apart

    def names(self):
        return self.uses

    def __str__(self):
        return self.text


class Head:
    """A branch's first line (``if c:``, ``elif c:``, ``else:``); its body is the :class:`Block` after it."""

    __slots__ = ("text", "uses")

    def __init__(self, text):
        self.text = text
        cond = text.split(" ", 1)[1][:-1] if " " in text else ""
        self.uses = {n.id for n in ast.walk(ast.parse(cond or "0", mode="eval")) if isinstance(n, ast.Name)}

    def names(self):
        return self.uses

    def __str__(self):
        return self.text


class Gen:
    """The replay function's namespace (buffers and constants by name) and its statements."""

    def __init__(self):
        self.ns = dict(FUNCS)
        self.own = []  # names bound as closure cells of the replay
        self.dynamic = set()  # names rebound at every replay (not a fixed buffer)
        self.alias = {}  # view name -> the name it views
        self.viewfn = {}  # view name -> how it was made from alias[name] (to remake it after a move)
        self.lines = []
        self.n = 0

    def name(self, value, prefix="c", dynamic=False):
        self.n += 1
        key = f"{prefix}{self.n}"
        self.ns[key] = value
        self.own.append(key)
        if dynamic:
            self.dynamic.add(key)
        return key

    def is_ones(self, nm):
        """True for the backward's seed ∂L/∂L = 1 (and views of it), which no kernel ever overwrites."""
        while nm in self.alias:
            nm = self.alias[nm]
        return nm.startswith("one") and bool(np.all(self.ns[nm] == 1))

    def root_buffer(self, nm):
        """The backward's own buffer that ``nm`` is (or views whole, same layout), else None."""
        arr = self.ns.get(nm)
        while nm in self.alias:
            if nm not in self.viewfn:
                return None
            nm = self.alias[nm]
        buf = self.ns.get(nm)
        if nm in self.dynamic or not isinstance(buf, np.ndarray) or not isinstance(arr, np.ndarray) \
                or not nm.startswith(("d", "u", "acc", "G")) or buf.base is not None \
                or arr.shape != buf.shape or arr.strides != buf.strides or not buf.flags.c_contiguous \
                or arr.__array_interface__["data"][0] != buf.__array_interface__["data"][0]:
            return None
        return nm

    def movable(self, root):
        """Every view of ``root`` can be remade (it was made by :meth:`Builder.view`)."""
        moved = {root}
        for k in self.own:
            if self.alias.get(k) in moved:
                if k not in self.viewfn:
                    return False
                moved.add(k)
        return True

    def relocate(self, root, new):
        """Put buffer ``root`` in the memory of ``new`` (same shape and dtype) and remake its views."""
        moved = {root}
        self.ns[root] = new
        for k in self.own:
            if self.alias.get(k) in moved:
                self.ns[k] = self.viewfn[k](self.ns[self.alias[k]])
                moved.add(k)

    def fixed_array(self, nm):
        return nm not in self.dynamic and isinstance(self.ns.get(nm), np.ndarray)

    def uses(self, nm):
        return [s for s in self.lines if nm in s.names()]

    def fold(self, varying):
        """Run once, now, every Op whose operands never change; drop it from the replay.

        ``varying`` are the names whose arrays change between replays (inputs, parameters and what is
        computed from them).  A folded statement runs the same NumPy call once, so values are unchanged.
        """
        const = {k for k in self.own if k not in varying and k not in self.dynamic
                 and (k.startswith(("c", "one")) or (k.startswith("w") and self.alias.get(k) is None))}
        kept = []
        for s in self.lines:
            if isinstance(s, Op) and s.fn in FUNCS and s.out not in varying:
                names = s.operands()
                if all(n in self.ns and self._const(n, const) for n in names):
                    exec(str(s), self.ns)
                    const.add(s.out)
                    continue
            kept.append(s)
        self.lines = kept
        self._fuse_negated_adds(const)

    def _fuse_negated_adds(self, const):
        """``mul(C, y, out=D)`` with C a constant −1, then ``add(A, D, out=E)``: ``sub(A, y, out=E)``.

        The softmax + cross-entropy gradient δ^[L] = t / r − y arrives as two vjps, t / r from
        logsumexp and (−1)·y from −yᵀz, added.  (−1)·y = −y and A + (−y) = A − y exactly in IEEE
        arithmetic, so the fused form has the same bits with one NumPy call fewer.
        """
        lines = self.lines
        for i, s in enumerate(lines):
            if not isinstance(s, Op) or s.fn != "mul" or len(s.ins) != 2 or s.kw \
                    or not self._const(s.ins[0], const):
                continue
            C, y = s.ins
            D = s.out
            c, d = self.ns.get(C), self.ns.get(D)
            if not isinstance(c, np.ndarray) or not isinstance(d, np.ndarray) or not np.all(c == -1) \
                    or c.dtype != d.dtype or y not in self.ns:
                continue
            uses = [j for j, other in enumerate(lines) if j != i and other is not None and D in other.names()]
            if len(uses) != 1:
                continue
            j = uses[0]
            n = lines[j]
            if not isinstance(n, Op) or n.fn != "add" or j < i or len(n.ins) != 2 or D not in n.ins \
                    or n.ins[0] == n.ins[1] or n.kw:
                continue
            A, E = n.ins[1 - n.ins.index(D)], n.out
            e, av = self.ns.get(E), self.ns.get(A)
            if not (isinstance(e, np.ndarray) and isinstance(av, np.ndarray)) or e.dtype != d.dtype \
                    or av.dtype != d.dtype or e.shape != d.shape or av.shape != d.shape or c.size > d.size:
                continue
            if any(lines[k] is not None and (lines[k].out == y if isinstance(lines[k], Op)
                                             else y in lines[k].names()) for k in range(i + 1, j)):
                continue  # y is written in between
            yv = self.ns[y]
            if not isinstance(yv, np.ndarray) or yv.dtype != d.dtype or yv.shape != d.shape:
                continue
            lines[j] = Op("sub", [A, y], E)
            lines[i] = None
        self.lines = [s for s in lines if s is not None]

    def _const(self, n, const):
        while n in self.alias:
            n = self.alias[n]
        return n in const


# --------------------------------------------------------------------------- helpers
def is_fresh(a) -> bool:
    return type(a) is np.ndarray and a.base is None and a.flags.writeable and a.flags.c_contiguous


def outbuf(out):
    """The capture's own output array when it can serve as the replay buffer, else a new 0-d one."""
    if is_fresh(out):
        return out
    if isinstance(out, np.generic):  # NumPy returns scalars from 0-d arithmetic; a 0-d buffer computes the same
        return np.empty((), out.dtype)
    return None


def tiled(arrays):
    """The 1-D view whose consecutive slices are ``arrays`` (C-contiguous, same dtype, in this order,
    with nothing between them), or None."""
    first = arrays[0]
    base = first
    while isinstance(base.base, np.ndarray):
        base = base.base
    if not base.flags.c_contiguous or any(not a.flags.c_contiguous or a.dtype != first.dtype for a in arrays):
        return None
    addr = base.__array_interface__["data"][0]
    start = first.__array_interface__["data"][0]
    if (start - addr) % first.itemsize:
        return None
    pos = start
    for a in arrays:
        if a.__array_interface__["data"][0] != pos:
            return None
        pos += a.nbytes
    flat = base.reshape(-1).view(first.dtype)[(start - addr) // first.itemsize:(pos - addr) // first.itemsize] \
        if base.dtype == first.dtype else None
    if flat is None or not all(np.shares_memory(a, flat) for a in arrays) or flat.nbytes != pos - start:
        return None
    return flat


def blas_in_place(fn, like) -> bool:
    """The scipy BLAS wrapper ``fn`` (ger or axpy) updates an array like ``like`` in place."""
    a = np.zeros(like.shape[::-1] if like.ndim == 2 else like.size, like.dtype, order="F")
    try:
        if like.ndim == 2:
            out = fn(1.0, np.ones(a.shape[0], like.dtype), np.ones(a.shape[1], like.dtype), a=a, overwrite_a=1)
        else:
            out = fn(np.ones(a.size, like.dtype), a, a=1.0)
    except Exception:  # an unexpected wrapper signature: use the exact form
        return False
    return out is a or (isinstance(out, np.ndarray) and np.shares_memory(out, a) and bool(np.all(a == 1)))


# --------------------------------------------------------------------------- optimiser updates
_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div"}


def runs_rule(opt) -> bool:
    """The optimiser's update is its description (not an overridden ``update()``), chosen by ``RULE_OF``.

    Duck-typed: the compiler sits below ``nn`` and does not import the optimisers."""
    return getattr(type(opt).update, "_runs_rule", False) and bool(getattr(type(opt), "RULES", ())) \
        and getattr(type(opt).update_rule, "_reads_rule_of", False)  # so RULE_OF may be inlined


def dry_scalars(opt, rule):
    """The per-step scalars of ``rule``, computed on a copy of the optimiser's attributes (their types
    decide the dtype of each intermediate, as in the eager update)."""
    import types
    ns = {"np": np, "opt": types.SimpleNamespace(**vars(opt))}
    exec(one_per_line(rule.scalars), ns)
    return {k: v for k, v in ns.items() if k not in ("np", "opt", "__builtins__")}


def one_per_line(code: str) -> str:
    return "\n".join(s.strip() for part in code.split("\n") for s in part.split(";") if s.strip())


def statements(code: str):
    return ast.parse(one_per_line(code)).body


def lower_update(b, code, arrays, scalars, samples, shape, scalar_operand):
    """Lower update statements (a :class:`~tinygrad_mlp.nn.optim.Update` field) to ``out=`` calls.

    ``arrays`` maps the description's array names (p, g, state) to buffer names, ``scalars`` its scalar
    names to replay locals; ``samples`` holds a sample value of each (dtype and Python type as at run
    time), so that every intermediate gets the dtype NumPy gives it in the eager update.
    """
    def expr(node, out=None):
        """(operand code, sample value) for an expression node."""
        if isinstance(node, ast.Name):
            if node.id in arrays:
                return arrays[node.id], samples[node.id]
            return scalar_operand(node.id), samples[node.id]
        if isinstance(node, ast.Constant):
            return repr(node.value), node.value
        involved = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & set(arrays)
        if not involved:  # scalar arithmetic, in Python once per step, as the eager update does it
            nm = b.local("_s")
            text = ast.unparse(node)
            b.raw(f"{nm} = {text}")
            val = eval(text, {"np": np}, dict(samples))
            samples[nm] = val
            return scalar_operand(nm), val
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            (l, ls), (r, rs) = expr(node.left), expr(node.right)
            fn = _BINOPS[type(node.op)]
            val = FUNCS[fn](ls, rs)
            ins = [l, r]
        elif isinstance(node, ast.Call) and ast.unparse(node.func) == "np.sqrt" and len(node.args) == 1:
            a, s = expr(node.args[0])
            fn, val, ins = "sqrt", np.sqrt(s), [a]
        else:
            raise CaptureError(f"compiled step: cannot lower {ast.unparse(node)!r} of an optimiser's update")
        o = out or b.buf(shape, np.asarray(val).dtype, "T")
        b.op(fn, ins, o)
        return o, val

    for st in statements(code):
        if isinstance(st, ast.AugAssign) and isinstance(st.target, ast.Name) and st.target.id in arrays \
                and type(st.op) in _BINOPS:
            tgt = arrays[st.target.id]
            v, s = expr(st.value)
            b.op(_BINOPS[type(st.op)], [tgt, v], tgt)
        elif isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name) \
                and st.targets[0].id in arrays:
            tgt = arrays[st.targets[0].id]
            v = st.value
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) and v.func.attr == "copy" \
                    and isinstance(v.func.value, ast.Name) and v.func.value.id in arrays and not v.args:
                b.op("copy", [arrays[v.func.value.id]], tgt)
            else:
                expr(v, out=tgt)
        else:
            raise CaptureError(f"compiled step: cannot lower {ast.unparse(st)!r} of an optimiser's update")


def renamed(code: str, names: dict) -> str:
    """``code`` with its names replaced through ``names`` (on the syntax tree)."""
    class Rename(ast.NodeTransformer):
        def visit_Name(self, node):
            return ast.copy_location(ast.Name(names.get(node.id, node.id), node.ctx), node)
    return "\n".join(ast.unparse(Rename().visit(st)) for st in statements(code))


# --------------------------------------------------------------------------- the builder
class Builder:
    """Translate a :class:`~.capture.Trace` into replay source through :data:`~.rules.RULES`."""

    def __init__(self, tr, inputs: list, probes: list, fused: bool = False):
        self.tr, self.g = tr, Gen()
        self.var = {}  # id(array) -> code name
        self.keep = []  # strong references so ids stay unique
        self.input_names = []
        self.inputs = list(inputs)
        self.ctxvars = {}
        self.lse_parts = {}  # logsumexp call -> names of its t = exp(z − m) and r = Σ t buffers
        self.leafgrad = {}
        self.fused = fused
        self.rank1 = {}  # ∂L/∂W buffer of a per-example layer -> (δ, h, the Op forming δ hᵀ)
        self.fused_grads = {}  # id(param) -> its grad buffer, which a fused SGD step never fills
        for buf, probe in zip(inputs, probes):
            nm = self.g.name(buf, "x")
            self.input_names.append(nm)
            self.bind(buf, nm)
            if probe is not None:
                self.bind(probe, nm)

    # ---- what rules call
    def op(self, fn, ins, out, **kw):
        s = Op(fn, ins, out, kw.items())
        self.g.lines.append(s)
        return s

    @staticmethod
    def make_op(fn, ins, out, **kw):
        """An Op not (yet) emitted: a Raw statement's meaning for the native backend."""
        return Op(fn, ins, out, kw.items())

    def head(self, text):
        s = Head(text)
        self.g.lines.append(s)
        return s

    def raw(self, text, native=None, kind=None):
        s = Raw(text, native, kind)
        self.g.lines.append(s)
        return s

    def name(self, value, prefix="c"):
        return self.g.name(value, prefix)

    def const(self, value):
        return self.g.name(value)

    def dynamic(self, prefix):
        return self.g.name(None, prefix, dynamic=True)

    def local(self, prefix):
        self.g.n += 1
        return f"{prefix}{self.g.n}"

    def buf(self, shape, dtype, prefix="d"):
        return self.g.name(np.empty(shape, dtype), prefix)

    def outbuf(self, out, prefix="v"):
        ob = outbuf(out)
        return None if ob is None else self.g.name(ob, prefix)

    def fresh(self, a):
        return is_fresh(a)

    def alias_view(self, arr, src):
        nm = self.g.name(arr, "v")
        self.g.alias[nm] = src
        return nm

    def value(self, nm):
        return self.g.ns[nm]

    def name_of(self, arr):
        return self.var.get(id(arr))

    def is_ones(self, nm):
        return self.g.is_ones(nm)

    def fixed_array(self, nm):
        return self.g.fixed_array(nm)

    def view(self, expr_fn, src):
        """A view of ``src`` (reshape, transpose, broadcast): made once if src is a fixed buffer."""
        g = self.g
        if g.fixed_array(src):
            nm = g.name(expr_fn(g.ns[src]), "w")
            g.alias[nm] = src
            g.viewfn[nm] = expr_fn
            return nm
        nm = g.name(None, "w", dynamic=True)
        self.raw(f"{nm} = {g.name(expr_fn)}({src})")
        return nm

    def unb(self, src, shape, oshape, odt):
        """primitives.unbroadcast, with out= buffers."""
        shape = tuple(shape)
        if shape == oshape:
            return src
        lead = len(oshape) - len(shape)
        cur, cshape = src, oshape
        if lead > 0:
            cshape = oshape[lead:]
            nm = self.buf(cshape, odt, "u")
            self.op("add_reduce", [cur], nm, axis=repr(tuple(range(lead))))
            cur = nm
        st = tuple(i for i, s in enumerate(shape) if s == 1 and cshape[i] != 1)
        if st:
            nm = self.buf(shape, odt, "u")
            self.op("add_reduce", [cur], nm, axis=repr(st), keepdims="True")
            cur = nm
        return cur

    def bind(self, arr, nm):
        self.var[id(arr)] = nm
        self.keep.append(arr)

    def ref(self, a):
        """Code for an operand: a traced value, or a constant captured by reference (frozen)."""
        if type(a) in (int, float, bool):
            return repr(a)
        nm = self.var.get(id(a))
        if nm is None:
            self._check_not_a_copy(a)
            nm = self.g.name(a)
            self.bind(a, nm)
        return nm

    def _check_not_a_copy(self, a):
        """A constant equal to an input but not sharing its memory is a copy the replay would freeze."""
        if not isinstance(a, np.ndarray):
            return
        for i, buf in enumerate(self.inputs):
            if a.shape == buf.shape and not np.shares_memory(a, buf) and np.array_equal(a, buf):
                raise CaptureError(
                    f"compiled step: input {i} reached the Tensor ops as a copy (dtype {a.dtype}, the input "
                    f"came as {buf.dtype}); a replay would keep the capture's values. Pass arrays of the "
                    "dtype fn computes in, so that fn can use them without copying")

    @staticmethod
    def rule(prim):
        r = RULES.get(prim)
        if r is None:
            raise CaptureError(f"compiled step: the primitive {prim.__name__} has no replay rule "
                               "(add one to tinygrad_mlp/compiler/rules.py)")
        return r

    # ---- forward
    def forward(self):
        for k, (prim, ins, args, out, ctx) in enumerate(self.tr.calls):
            c = Call(k, prim, ins, args, out, ctx, [self.ref(x) for x in ins])
            o = self.rule(prim).forward(self, c)
            if o is None:  # no buffered form for this call: the primitive itself (allocates, same maths)
                from .rules import generic_forward
                o = generic_forward(self, c)
            self.bind(out, o)

    # ---- backward
    def backward(self):
        tr, g = self.tr, self.g
        root, states = tr.backward_at
        recs = [(ci, parents, t) for ci, parents, t, rec in tr.ops if rec]
        idx = {id(t): i for i, (_, _, t) in enumerate(recs)}
        if id(root) not in idx:
            raise CaptureError("compiled step: backward() was called on a Tensor not computed inside the step")
        pending = {id(root): g.name(np.ones_like(root.data), "one")}
        for i in range(idx[id(root)], -1, -1):
            ci, parents, t = recs[i]
            gv = pending.pop(id(t), None)
            if gv is None:
                continue
            if t._retain:
                raise CaptureError("compiled step: retain_grad() is not supported in a compiled step")
            prim, ins, args, out, ctx = tr.calls[ci]
            need = [p is not None and p.requires_grad for p in parents]
            c = Call(ci, prim, ins, args, out, ctx, [self.ref(x) for x in ins])
            gs = self.rule(prim).vjp(self, c, gv, need)
            for p, gp, nd in zip(parents, gs, need):
                if not nd:
                    continue
                if p._rec is None:
                    self.leaf(p, gp, states.get(id(p), False))
                elif id(p) not in idx:
                    raise CaptureError("compiled step: the graph reaches a Tensor computed before the step "
                                       "(outside fn); compute it inside fn or detach it")
                else:
                    prev = pending.get(id(p))
                    if prev is None:
                        pending[id(p)] = gp
                    else:  # eager: prev + gp, a new array
                        acc = self.buf(p.data.shape, p.data.dtype, "acc")
                        self.op("add", [prev, gp], acc)
                        pending[id(p)] = acc
        if pending:
            raise CaptureError("compiled step: backward did not reach every pending gradient")

    def leaf(self, p, gp, assign):
        g = self.g
        cur = self.leafgrad.get(id(p))
        if cur is not None:  # a second contribution: eager makes p.grad + gp, a new array
            nm = self.buf(p.data.shape, p.data.dtype, "G")
            self.op("add", [cur, gp], nm)
        elif assign and g.fixed_array(gp) and g.ns[gp].flags.writeable:
            nm = gp  # eager keeps the vjp's array itself as .grad
        else:
            nm = self.buf(p.data.shape, p.data.dtype, "G")
            if assign:
                self.raw(f"copyto({nm}, {gp})", native=Op("copy", [gp], nm))
            else:  # not zeroed inside fn: eager adds to whatever .grad holds when the step runs
                self.raw(f"_g = {self.param_name(p)}.grad\nif _g is None: copyto({nm}, {gp})\n"
                         f"else: add(_g, {gp}, out={nm})")
        self.leafgrad[id(p)] = nm

    def param_name(self, p):
        key = ("param", id(p))
        nm = self.var.get(key)
        if nm is None:
            nm = self.g.name(p, "P")
            self.var[key] = nm
        return nm

    # ---- optimiser
    def optimiser(self):
        g = self.g
        for opt, pg in self.tr.steps:
            on = g.name(opt, "opt")
            items = []
            for i, (p, grad) in enumerate(pg):
                if grad is None:
                    continue
                gname = self.leafgrad.get(id(p))
                if gname is None or grad is not self.tr.after_backward_grads.get(id(p)):
                    raise CaptureError("compiled step: an optimiser stepped on a .grad that the step's "
                                       "backward did not produce")
                items.append((i, p, gname))
            generic = "".join(f"{self.param_name(p)}.grad = {gname}\n" for i, p, gname in items) + \
                f"type({on}).step({on})"
            if not runs_rule(opt):  # an optimiser with its own update(): hand it the grads, let it step
                self.raw(generic)
                continue
            flat = self.flatten(opt, items) if len(items) == len(pg) else None
            fused = self.fused_sgd(items) if self.fused and len(self.tr.steps) == 1 else None
            start = len(g.lines)
            self.raw(f"opt = {on}\n_u = {type(opt).RULE_OF}")  # update_rule(), inlined
            for n, rule in enumerate(type(opt).RULES):
                self.head(f"{'if' if n == 0 else 'elif'} _u is {g.name(rule, 'R')}:")
                body_start = len(g.lines)
                if fused is not None and fused[0] is rule:
                    self.raw("_fused = True")
                    for s in fused[2]:
                        g.lines.append(s)
                else:
                    if fused is not None:
                        self.raw("_fused = False")
                        g.lines.extend(fused[1])  # the outer products δ hᵀ a fused step never forms
                    self.variant(opt, rule, items, flat)
                self.indent(body_start)
            self.head("else:")
            body_start = len(g.lines)
            if fused is not None:
                self.raw("_fused = False")
                g.lines.extend(fused[1])
            self.raw(generic)
            self.indent(body_start)
            # Keep the whole dispatch as one block: constant folding must not lift a branch's Op out
            block = g.lines[start:]
            g.lines[start:] = [Block(block, update=(opt, items, flat))]

    def indent(self, start):
        """Mark the statements from ``start`` as the body of the branch above them."""
        body = self.g.lines[start:]
        self.g.lines[start:] = [Block(body, depth=1)]

    def flatten(self, opt, items):
        """Move the gradients into one flat G matching the parameters' flat buffer (an MLP's), so that
        the update is a few NumPy calls for the whole model: elementwise, so every entry is computed
        exactly as the per-parameter update computes it.  Returns (flat params, G name, F name) or None."""
        g = self.g
        flat = tiled([p.data for _, p, _ in items])
        if flat is None:
            return None
        roots = []
        for _, p, gname in items:
            root = g.root_buffer(gname)
            if root is None or root in roots or g.ns[root].shape != p.data.shape \
                    or g.ns[root].dtype != p.data.dtype or not g.movable(root):
                return None
            roots.append(root)
        G = np.empty(flat.shape, flat.dtype)
        start = 0
        for (_, p, _), root in zip(items, roots):
            g.relocate(root, G[start:start + p.data.size].reshape(p.data.shape))
            start += p.data.size
        return flat, g.name(G, "G"), g.name(flat, "F")

    def variant(self, opt, rule, items, flat):
        """The replay of one :class:`Update` description: flat over the whole model when its state is
        the replay's own flat buffer (or fresh), else per parameter as the eager update runs it."""
        g = self.g
        self.raw(one_per_line(rule.scalars))
        per_param = []
        for i, p, gname in items:
            # locals, so that p -= … updates the array in place rather than rebinding a closure name
            names = {"p": "_p", "g": "_g"}
            lines = [f"_p = {self.ref(p.data)}; _g = {gname}"]
            for attr, short in rule.state:
                names[short] = f"_{short}"
                lines.append(f"_{short} = opt.{attr}[{i}]")
            if rule.init:
                first = rule.state[0][1]
                store = "\n".join(f"    opt.{attr}[{i}] = _{short}" for attr, short in rule.state)
                init = renamed(rule.init, names).replace("\n", "\n    ")
                adv = renamed(rule.advance, names).replace("\n", "\n    ") if rule.advance else "pass"
                lines.append(f"if _{first} is None:\n    {init}\n{store}\nelse:\n    {adv}")
            elif rule.advance:
                lines.append(renamed(rule.advance, names))
            lines.append(renamed(rule.apply, names))
            per_param.append("\n".join(lines))
        per_param = "\n".join(per_param)
        if flat is None:
            self.raw(per_param)
            return
        F, Gn, Fn = flat
        samples = dict(dry_scalars(opt, rule))
        one = np.ones(1, F.dtype)
        samples.update(p=one, g=one)
        arrays = {"p": Fn, "g": Gn}
        views = {}
        starts = np.cumsum([0] + [p.data.size for _, p, _ in items])
        for attr, short in rule.state:
            S = np.zeros_like(F)
            arrays[short] = g.name(S, "V")
            samples[short] = one
            views[attr] = [g.name(S[a:b].reshape(p.data.shape), "V")
                           for (_, p, _), a, b in zip(items, starts, starts[1:])]
            cur = getattr(opt, attr)
            # the optimiser's state so far moves into the flat buffer (the same values; eager's update
            # keeps working on the views)
            if all(isinstance(cur[i], np.ndarray) and cur[i].shape == p.data.shape and cur[i].dtype == F.dtype
                   for i, p, _ in items):
                for (i, p, _), v in zip(items, views[attr]):
                    g.ns[v][...] = cur[i]
                    cur[i] = g.ns[v]
        def lower(*codes):
            zero_d = {}  # per branch: each branch sets the 0-d scalars it uses

            def scalar_operand(nm):
                # float64: a 0-d array holding the scalar is the same operand (every float rounds to
                # itself) and a cheaper one for NumPy than a Python float
                if F.dtype != np.float64:
                    return nm
                if nm not in zero_d:
                    zero_d[nm] = g.name(np.zeros((), F.dtype), "L")
                    self.raw(f"{zero_d[nm]}[()] = {nm}")
                return zero_d[nm]
            for code in codes:
                lower_update(self, code, arrays, {}, samples, F.shape, scalar_operand)

        if not rule.state:
            lower(rule.apply)
            return
        ours = " and ".join(f"opt.{attr}[{i}] is {v}" for attr in views for (i, _, _), v in zip(items, views[attr]))
        self.head(f"if {ours}:")
        s0 = len(g.lines)
        lower(rule.advance, rule.apply)
        self.indent(s0)
        if rule.init:
            fresh = " and ".join(f"opt.{attr}[{i}] is None" for attr, _ in rule.state for i, _, _ in items)
            self.head(f"elif {fresh}:")
            s0 = len(g.lines)
            lower(rule.init)
            self.raw("\n".join(f"opt.{attr}[{i}] = {v}" for attr in views for (i, _, _), v in zip(items, views[attr])))
            lower(rule.apply)
            self.indent(s0)
        self.head("else:")
        s0 = len(g.lines)
        self.raw(per_param)
        self.indent(s0)

    def fused_sgd(self, items):
        """Plain SGD with BLAS (``compile(fused=True)``): the per-example layer's rank-1 update
        W ← W − η δ hᵀ is one ``ger`` call on W in place (δ hᵀ is never formed, so W.grad is None
        after such a replay), every other parameter θ ← θ − η g one ``axpy``.  ger and axpy round
        differently from the tape's (η · g, then θ − ·), so the weights agree with eager to about
        1e-16 relative per step, not bit for bit.  Applies to the optimiser's description whose whole
        update is ``p -= lr * g``.  Returns (that description, the Ops forming δ hᵀ, needed only when
        the step is not fused; the update statements), or None where the parameters do not allow it.
        """
        try:
            from scipy.linalg.blas import get_blas_funcs
        except ImportError:  # scipy comes with scikit-learn; without it the exact form serves
            return None
        opt = self.tr.steps[0][0]
        plain = [r for r in type(opt).RULES if not r.state and not r.advance
                 and ast.dump(statements(r.apply)[0]) == ast.dump(statements("p -= lr * g")[0])]
        if not plain:
            return None
        g = self.g
        outers, code, fused = [], [], {}
        for i, p, gname in items:
            d = p.data
            if d.dtype not in (np.float64, np.float32) or not d.flags.c_contiguous or not d.flags.writeable:
                return None
            ger, axpy = get_blas_funcs(("ger", "axpy"), (d,))
            r = self.rank1.get(gname)
            if r is not None and d.ndim == 2 and g.fixed_array(r[0]) and (g.fixed_array(r[1]) or r[1] in
                                                                           self.input_names) \
                    and g.uses(gname) == [r[2]] and blas_in_place(ger, d):
                gv, h, line = r
                code.append(f"{g.name(ger, 'blas')}(-lr, {h}, {gv}, a={g.name(d.T, 'WT')}, overwrite_a=1)")
                outers.append(line)
                fused[id(p)] = gname
            else:
                gr = g.ns.get(gname)
                if not g.fixed_array(gname) or gr.shape != d.shape or gr.dtype != d.dtype \
                        or not gr.flags.c_contiguous or not blas_in_place(axpy, d):
                    return None
                code.append(f"{g.name(axpy, 'blas')}({g.name(gr.reshape(-1), 'GF')}, "
                            f"{g.name(d.reshape(-1), 'F')}, a=-lr)")
        if not fused:
            return None
        for line in outers:
            g.lines.remove(line)
        self.fused_grads.update(fused)
        return plain[0], outers, [Raw(one_per_line(plain[0].scalars)), Raw("\n".join(code))]


class Block:
    """Statements kept together (an optimiser's dispatch), indented ``depth`` levels when rendered."""

    __slots__ = ("body", "depth", "update")

    def __init__(self, body, depth=0, update=None):
        self.body, self.depth, self.update = body, depth, update  # update: (optimiser, items, flat)

    def names(self):
        out = set()
        for s in self.body:
            out |= set(s.names())
        return out

    def __str__(self):
        pad = "    " * self.depth
        return "\n".join(pad + ln for s in self.body for ln in str(s).split("\n"))


# --------------------------------------------------------------------------- one program
class Program:
    """One captured variant: the generated replay function and the guards it needs."""

    def __init__(self, fn, args, kwargs, fused=False):
        tr, inputs, probes, out = capture(fn, args, kwargs)
        self.trace, self.inputs = tr, inputs
        self.first_result = out
        b = Builder(tr, inputs, probes, fused)
        b.forward()
        if tr.backward_at is not None:
            b.backward()
        elif tr.steps:
            raise CaptureError("compiled step: an optimiser stepped without a backward in the step")
        b.optimiser()
        g = b.g
        # .grad as eager leaves it when fn returns: None where fn zeroed it after the step, else the buffer
        for pid, p in tr.params.items():
            fin = tr.final_leafgrad.get(pid)
            if fin is None:
                if pid in b.leafgrad or pid in tr.zeroed:
                    b.raw(f"{b.param_name(p)}.grad = None", kind="epilogue")
            elif pid in b.fused_grads and fin is tr.after_backward_grads.get(pid):
                b.raw(f"{b.param_name(p)}.grad = None if _fused else {b.leafgrad[pid]}", kind="epilogue")
            elif pid in b.leafgrad and fin is tr.after_backward_grads.get(pid):
                b.raw(f"{b.param_name(p)}.grad = {b.leafgrad[pid]}", kind="epilogue")
            else:
                raise CaptureError("compiled step: a .grad was changed after the backward in a way the replay "
                                   "cannot repeat")
        b.raw(f"return {self._result(b, out)}", kind="epilogue")
        self.builder = b
        self.params = list(tr.params.values())
        self.param_data = [p.data for p in self.params]
        moving = list(inputs) + self.param_data
        varying = {k for k in g.own if isinstance(g.ns[k], np.ndarray)
                   and any(np.shares_memory(g.ns[k], m) for m in moving)}
        g.fold(varying)
        # Guards, inlined so a replay pays for no Python call: same types, shapes, dtypes, Python values,
        # and parameters still holding the arrays captured.
        guards, params, head, k = [], [], [], 0
        for i, a in enumerate(args):
            an = f"a{i}"
            params.append(an)
            if isinstance(a, (np.ndarray, Tensor)):
                arr = a.data if isinstance(a, Tensor) else a
                guards.append(f"{an}.__class__ is not {g.name(type(a), 'K')} or {an}.shape != {arr.shape!r} "
                              f"or {an}.dtype != {g.name(arr.dtype, 'D')}")
                same = None if isinstance(a, Tensor) else self._plain_uses(g, inputs[k])
                if same is not None:
                    # fn used the input only as itself: the replay reads the caller's (C-contiguous) array
                    # in place of the buffer, and saves the copy
                    guards[-1] += f" or not {an}.flags.c_contiguous"
                    used = set().union(*(set(st.names()) for st in g.lines)) if g.lines else set()
                    head.extend(f"    {nm} = {an}" for nm in same if nm in used)
                else:
                    head.append(f"    copyto({b.input_names[k]}, {an}.data)" if isinstance(a, Tensor)
                                else f"    copyto({b.input_names[k]}, {an})")
                k += 1
            else:
                guards.append(f"{an}.__class__ is not {g.name(type(a), 'K')} or {an} != {g.name(a, 'V')}")
        for p in self.params:
            guards.append(f"{b.param_name(p)}.data is not {g.name(p.data, 'Q')}")
        miss = g.name(MISS, "MISS")
        guard = "    if " + " or ".join(guards) + f": return {miss}\n" if guards else ""
        params = ", ".join(params)
        head = guard + "".join(ln + "\n" for ln in head)
        body = "\n".join("    " + ln for s in g.lines for ln in str(s).split("\n"))
        self.source = f"def replay({params}):\n{head}{body}\n"
        # The buffers reach the replay as closure cells: keyword defaults would be filled in one by one
        # at every call (about 0.6 µs for a small MLP's 70 names).
        factory = f"def _make_replay({', '.join(g.own)}):\n" + "".join(
            "    " + ln + "\n" for ln in self.source.splitlines()) + "    return replay\n"
        exec(builtins.compile(factory, "<compiled step>", "exec"), g.ns)
        self.replay = g.ns["_make_replay"](**{k: g.ns[k] for k in g.own})
        self._keep = b.keep

    @staticmethod
    def _plain_uses(g, buf):
        """Names of every array in the replay that views ``buf`` whole (same memory, shape, strides), or
        None when some name views it otherwise (a row, a transpose): then the buffer must be filled."""
        ptr = buf.__array_interface__["data"][0]
        names = []
        for k in g.own:
            v = g.ns[k]
            if isinstance(v, np.ndarray) and np.shares_memory(v, buf):
                if v.shape != buf.shape or v.strides != buf.strides or v.dtype != buf.dtype \
                        or v.__array_interface__["data"][0] != ptr:
                    return None
                names.append(k)
        return names

    def _result(self, b, out):
        if out is None:
            return "None"
        if isinstance(out, Tensor):
            nm = b.var.get(id(out.data))
            if nm is None:
                raise CaptureError("compiled step: fn returned a Tensor the step did not compute")
            return f"float({nm})" if np.ndim(out.data) == 0 else nm
        if isinstance(out, (tuple, list)):
            parts = [self._result(b, o) for o in out]
            return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        raise CaptureError(f"compiled step: fn must return None, a Tensor or a tuple of Tensors, got "
                           f"{type(out).__name__} (a Python number would be frozen at its capture value)")

    def valid(self) -> bool:
        for p, d in zip(self.params, self.param_data):
            if p.data is not d:
                return False
        return True
