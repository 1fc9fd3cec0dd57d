"""Capture one training step and replay it: forward, backward and optimiser update, without the tape.

Per-example SGD (the practical's Question 3) spends its time on Python overhead per op, not on
arithmetic, and its graph is the same at every step.  :func:`compile` runs a step function once
eagerly while watching it (every primitive's forward, the backward, the optimiser step), and
turns what it saw into one straight-line Python function over preallocated buffers:

* forward: z^[l] = W^[l] h^[l−1] + b^[l] as ``matmul(W, h, out=z); add(z, b, out=z)`` (linear + bias
  in one buffer), h^[l] = g(z^[l]) in place, the loss through the same NumPy calls as the primitives;
* backward: the primitives' vjps with ``out=`` (δ^[L] = Σy·t/r − y, t = exp(z − m) and r = Σt kept from the forward, for softmax + cross-entropy
  in one buffer; ∂L/∂W^[l] = δ^[l] h^[l−1]ᵀ into a fixed rank-1 buffer), accumulated in the tape's order;
* update: θ ← θ − η ∂L/∂θ in place (SGD, with or without momentum); other optimisers get their
  ``.grad`` set and their own ``step()`` called.  An MLP keeps all its parameters in one contiguous
  buffer, so the replay moves the gradient buffers into one matching flat G and updates the whole model
  with two NumPy calls (elementwise: the same numbers as one update per parameter).

Every replayed value goes through the same floating-point operations, in the same order, as the eager
tape's, so a replay is bit-identical to the eager step (the tests check it), and a replayed step creates
no Tensor and no tape record.  Two rewrites keep the bits: t / r + (−1)·y becomes t / r − y (IEEE
a + (−b) is a − b), and 1 − h² uses a 0-d array of the buffer's dtype for the 1.

``compile(fn, fused=True)`` trades bit-identity for speed where plain SGD (no momentum) updates a
per-example layer: W ← W − η δ hᵀ becomes one BLAS rank-1 call (``ger``, from scipy, which scikit-learn
brings), so δ hᵀ is never formed, and every other parameter one ``axpy``.  The weights then equal eager's
to rounding (about 1e-16 relative per step; tested to 1e-12), the same from run to run.

Traps (each one has a test)
---------------------------
* **Values computed outside Tensor ops are frozen at capture.**  A Python number passed as an argument
  is a guard (a new value re-captures, up to ``max_captures`` variants), but NumPy work on the raw
  input arrays inside ``fn`` is not seen: ``cross_entropy`` with float targets uses Σₖ yₖ of the capture
  call, which is exact for one-hot rows (Σ = 1 exactly) and off by the rounding of Σy for
  probability rows (cross_entropy accepts |Σy − 1| ≤ 1e-6).
* **Python code in fn runs once.**  Counters, prints, learning-rate schedules written inside ``fn``
  happen at capture only; so do argument checks (``cross_entropy`` refusing a target row that does not
  sum to 1 raises at capture, but a replay computes with such a row without a word).  The optimiser's
  attributes (``opt.lr``, ``opt.momentum``) are read at every replay: change the rate there, between calls.
* **Buffers are reused.**  A scalar loss comes back as a Python float, but a non-scalar result
  (e.g. the logits) and every ``p.grad`` are buffers that the next replay overwrites: copy them to keep them.
* **Data-dependent control flow is refused.**  ``bool``, ``float``, ``int``, ``.item()`` of a Tensor or of
  an input array inside ``fn`` raise :class:`CaptureError` during capture; so does a parameter update
  outside an optimiser, a returned Python number, or a Tensor that requires grad computed before ``fn``.
* **The capture call is an eager step.**  Its effects stand even when it then raises CaptureError.
* **fused=True leaves W.grad None** for every weight it updates with ``ger`` (the gradient δ hᵀ is
  never formed); biases keep theirs.  With momentum or Nesterov the replay takes the exact form,
  which forms every gradient.
* Inputs are copied into buffers owned by the step (so ``fn`` may keep views of them).  A call with
  another shape or dtype captures again; so does a parameter whose ``.data`` was replaced.  An input
  that ``fn`` copies (a float32 row into a float64 model) is refused at capture.

Where a kernel has no buffered form, the replay calls the primitive's own ``forward``/``vjp``
(allocating, same maths); a buffered kernel that would not reproduce the capture's value bit for
bit (checked at capture for logsumexp) is not used.  ``CompiledStep.source`` shows the generated code.
"""
from __future__ import annotations

import builtins
import inspect
import math
import re as _re
import numbers
from typing import Callable

import numpy as np

from ..autograd import primitives as P
from ..autograd import tensor as T
from ..nn.optim import SGD, Optimizer
from ..autograd.tensor import Tensor

__all__ = ["compile", "CompiledStep", "CaptureError"]


_MISS = object()  # what a replay returns when a guard fails


class CaptureError(RuntimeError):
    """The step function did something a replay could not repeat faithfully."""


class _Probe(np.ndarray):
    """An input array during capture: turning it into a Python value is data-dependent control flow."""

    def _refuse(self, *a, **k):
        raise CaptureError("compiled step: an input array was converted to a Python value during capture "
                           "(bool/float/int/item/tolist); the replay would freeze that value. Keep the "
                           "computation in Tensor ops, or run this step eagerly")

    __bool__ = __float__ = __int__ = __index__ = item = tolist = _refuse

    def __getitem__(self, index):
        # x[0] would be a NumPy scalar, free to enter an `if`: keep it a probe (0-d) instead
        r = super().__getitem__(index)
        return r if isinstance(r, np.ndarray) else np.asarray(r).view(_Probe)


# --------------------------------------------------------------------------- capture
class _Trace:
    """Watches one call of the step function through its thread's tape (``tape.state().capture``).

    Nothing is patched: the engine calls these methods in the capturing thread only, so other
    threads, and this thread once the capture ends, run exactly as before.
    """

    def __init__(self):
        self.calls = []      # (prim, inputs, args, out, ctx) per applied op
        self.ops = []        # (call index, parents, out Tensor, recorded?)
        self.backward_at = None  # (root Tensor, leaf grad states)
        self.steps = []      # (optimizer, [(param, grad array)])
        self.after_backward_grads = {}  # id -> .grad right after the backward
        self.zeroed = set()  # ids of tensors whose .grad was set to None inside fn
        self.params = {}     # id -> leaf Tensor requiring grad
        self.before = {}     # id -> copy of its data when first seen

    # the observer protocol of tinygrad_mlp.autograd.tape
    def op(self, prim, parents, arrays, args, out, ctx, t):
        self.calls.append((prim, arrays, args, out, ctx))
        for p in parents:
            if p is not None and p.requires_grad and p._rec is None and id(p) not in self.params:
                self.params[id(p)] = p
                self.before[id(p)] = p.data.copy()
        self.ops.append((len(self.calls) - 1, parents, t, t.requires_grad))

    def backward(self, root, grad, retain_graph, create_graph=False):
        if create_graph:
            raise CaptureError("compiled step: second-order gradients (backward(create_graph=True), "
                               "autograd.grad and the transforms built on it) cannot be compiled; "
                               "run this step eagerly")
        if self.backward_at is not None:
            raise CaptureError("compiled step: backward() was called twice in one step")
        if grad is not None or retain_graph:
            raise CaptureError("compiled step: backward() takes no grad= or retain_graph= in a compiled step")
        states = {pid: (p.grad is None and pid in self.zeroed) for pid, p in self.params.items()}
        self.backward_at = (root, states)

    def after_backward(self, root):
        self.after_backward_grads = {pid: p.grad for pid, p in self.params.items()}

    def grad_cleared(self, t):
        self.zeroed.add(id(t))

    def optimizer_step(self, opt):
        self.steps.append((opt, [(p, p.grad) for p in opt.params]))

    def conversion(self, t, what):
        raise CaptureError(f"compiled step: a Tensor was converted to a Python value ({what}) during capture; "
                           "the replay would freeze it. Return the Tensor instead (a scalar loss comes back "
                           "from the replay as a float)")


# --------------------------------------------------------------------------- program
def lse_flat_code(z: str, t: str, s: str, m: str, r: str, ndim: int, size: int) -> str:
    """Replay code for log Σ exp z over all of z, as LogSumExp.forward computes it (the same max, sum
    and log, specialised to the captured shape): the value goes into ``s`` (shape (1,)·ndim),
    t = exp(z − m) into ``t``, and r = Σ t into the local ``r`` for the backward's softmax t / r.
    Inline, not a function: a call costs as much as the arithmetic on ten logits."""
    mx = f"{z}[{z}.argmax()]" if ndim == 1 else f"max_reduce({z}, None)"  # primitives.flat_max
    sm = f"sum({t}.tolist())" if ndim == 1 and size <= P.FLAT_SUM_MAX else f"add_reduce({t}, None)"  # flat_sum
    put = f"{s}[0]" if ndim == 1 else f"{s}.flat[0]"
    return (f"{m} = {mx}\nif not isfinite_({m}): {m} = 0.0\n"  # an all −inf input: (−inf) − (−inf) = nan
            f"sub({z}, {m}, out={t}); exp({t}, out={t})\n{r} = {sm}\n"
            f"{put} = {m} + (log_({r}) if {r} > 0 else np.log({r}))")


def lse_axis(z, axis, t, s, rb):
    """log Σ exp z along ``axis`` into ``s`` (keepdims shape), as LogSumExp.forward computes it;
    t = exp(z − m) and r = Σ t stay in ``t`` and ``rb``."""
    m = z.max(axis=axis, keepdims=True)
    if not np.isfinite(m).all():
        m = np.where(np.isfinite(m), m, 0.0)
    np.subtract(z, m, out=t)
    np.exp(t, out=t)
    np.add.reduce(t, axis=axis, keepdims=True, out=rb)
    np.log(rb, out=s)
    s += m


_FUNCS = {"lse_axis": lse_axis, "isfinite_": math.isfinite, "log_": math.log, "np": np, "math": math, "matmul": np.matmul,
          "add": np.add, "sub": np.subtract,
          "mul": np.multiply, "div": np.divide, "neg": np.negative, "tanh": np.tanh, "exp": np.exp,
          "log": np.log, "gt": np.greater, "copyto": np.copyto, "add_reduce": np.add.reduce,
          "max_reduce": np.maximum.reduce, "isfinite": np.isfinite}


class _Gen:
    """Builds the replay function's source: one line per kernel, buffers as keyword defaults."""

    def __init__(self):
        self.ns = dict(_FUNCS)
        self.own = []  # names bound as keyword defaults (locals in the replay)
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

    def buf(self, like, prefix="b"):
        a = np.asarray(like)
        return self.name(np.empty(a.shape, a.dtype), prefix)

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
        """Every view of ``root`` can be remade (it was made by :meth:`_Builder.view`)."""
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

    def emit(self, line):
        # One statement per entry, so that constant folding can drop the ones that never change.
        parts = [line] if "\n" in line else line.split("; ")
        self.lines.extend(parts)

    def fold(self, varying):
        """Run once, now, every ``f(..., out=o)`` whose operands never change; drop it from the replay.

        ``varying`` are the names whose arrays change between replays (inputs, parameters and what is
        computed from them).  A folded statement runs the same NumPy call once, so values are unchanged.
        """
        const = {k for k in self.own if k not in varying and k not in self.dynamic
                 and (k.startswith(("c", "one")) or (k.startswith("w") and self.alias.get(k) is None))}
        written = set()
        for ln in self.lines:
            m = _STMT.match(ln)
            if m:
                written.add(m.group(3))
        kept = []
        for ln in self.lines:
            m = _STMT.match(ln)
            if m:
                ids = [n for n in _NAME.findall(m.group(2)) if n not in _KEYWORDS]
                names = [n for n in ids if n not in _FUNCS]
                if all(n in self.ns for n in ids) and all(self._const(n, const) for n in names) \
                        and m.group(3) not in varying:
                    exec(ln, self.ns)
                    const.add(m.group(3))
                    continue
            kept.append(ln)
        self.lines = kept
        self._fuse_negated_adds(const)

    def _fuse_negated_adds(self, const):
        """``mul(C, y, out=D)`` with C a constant −1, then ``add(A, D, out=E)``: ``sub(A, y, out=E)``.

        The softmax + cross-entropy gradient δ^[L] = t / r − y arrives as two vjps, t / r from
        logsumexp and (−1)·y from −yᵀz, added.  (−1)·y = −y and A + (−y) = A − y exactly in IEEE
        arithmetic, so the fused form has the same bits with one NumPy call fewer.
        """
        lines = self.lines
        for i, ln in enumerate(lines):
            m = _STMT.match(ln)
            if not m or m.group(1) != "mul":
                continue
            ops = [x.strip() for x in m.group(2).split(",")]
            D = m.group(3)
            if len(ops) != 2 or not self._const(ops[0], const) or ops[1] not in self.ns and not ops[1].startswith("a"):
                continue
            C, y = ops
            c, d = self.ns.get(C), self.ns.get(D)
            if not isinstance(c, np.ndarray) or not isinstance(d, np.ndarray) or not np.all(c == -1) \
                    or c.dtype != d.dtype:
                continue
            uses = [j for j, other in enumerate(lines) if j != i and _re.search(rf"\b{D}\b", other)]
            if len(uses) != 1:
                continue
            j = uses[0]
            n = _STMT.match(lines[j])
            if not n or n.group(1) != "add" or j < i:
                continue
            a_ops = [x.strip() for x in n.group(2).split(",")]
            if len(a_ops) != 2 or D not in a_ops or a_ops[0] == a_ops[1]:
                continue
            A, E = a_ops[1 - a_ops.index(D)], n.group(3)
            e, av = self.ns.get(E), self.ns.get(A)
            if not (isinstance(e, np.ndarray) and isinstance(av, np.ndarray)) or e.dtype != d.dtype \
                    or av.dtype != d.dtype or e.shape != d.shape or av.shape != d.shape or c.size > d.size \
                    or any(_re.search(rf"out={y}\b", lines[k]) for k in range(i + 1, j)):
                continue
            if y in self.ns and (self.ns[y].dtype != d.dtype or self.ns[y].shape != d.shape):
                continue
            lines[j] = f"sub({A}, {y}, out={E})"
            lines[i] = None
        self.lines = [ln for ln in lines if ln is not None]

    def _const(self, n, const):
        while n in self.alias:
            n = self.alias[n]
        return n in const


_STMT = __import__("re").compile(r"^(\w+)\((.*), out=(\w+)\)$")
_KEYWORDS = {"axis", "keepdims", "True", "False", "None"}
_NAME = __import__("re").compile(r"\b[A-Za-z_]\w*\b")


def _rename(line: str, old: str, new: str) -> str:
    return _re.sub(rf"\b{old}\b", new, line)


def _is_fresh(a) -> bool:
    return type(a) is np.ndarray and a.base is None and a.flags.writeable and a.flags.c_contiguous


def _outbuf(out):
    """The capture's own output array when it can serve as the replay buffer, else a new 0-d one."""
    if _is_fresh(out):
        return out
    if isinstance(out, np.generic):  # NumPy returns scalars from 0-d arithmetic; a 0-d buffer computes the same
        return np.empty((), out.dtype)
    return None


def _is_one(c, dtype) -> bool:
    """c is exactly 1 and multiplying by it keeps ``dtype`` (so x · c = x, bit for bit)."""
    if type(c) in (int, float):
        return c == 1
    return isinstance(c, (np.generic, np.ndarray)) and np.size(c) == 1 and np.ndim(c) == 0 \
        and np.asarray(c).dtype == dtype and c == 1


def _unit_operand(ins, out):
    """For a product with one operand exactly 1: the index of the other operand (x · 1 = x), else None."""
    for i in (0, 1):
        other = ins[1 - i]
        if isinstance(other, (np.ndarray, np.generic)) and np.shape(other) == np.shape(out) \
                and _is_one(ins[i], np.asarray(out).dtype) and np.asarray(other).dtype == np.asarray(out).dtype:
            return 1 - i
    return None


_ELEMENTWISE = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "neg": "neg", "tanh": "tanh",
                "exp": "exp", "log": "log", "matmul": "matmul"}


class _Builder:
    """Translate a :class:`_Trace` into replay source, mirroring the eager forward and backward exactly."""

    def __init__(self, tr: _Trace, inputs: list, probes: list, fused: bool = False):
        self.tr, self.g = tr, _Gen()
        self.var = {}  # id(array) -> code name
        self.keep = []  # strong references so ids stay unique
        self.input_names = []
        self.inputs = list(inputs)
        self.ctxvars = {}
        self.lse_parts = {}  # logsumexp call -> names of its t = exp(z − m) and r = Σ t buffers
        self.leafgrad = {}
        self.fused = fused
        self.rank1 = {}  # ∂L/∂W buffer of a per-example layer -> (δ, h, the line forming δ hᵀ)
        self.fused_grads = {}  # id(param) -> its grad buffer, which a fused SGD step never fills
        for buf, probe in zip(inputs, probes):
            nm = self.g.name(buf, "x")
            self.input_names.append(nm)
            self.bind(buf, nm)
            if probe is not None:
                self.bind(probe, nm)

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

    # ------------------------------------------------------------------ forward
    def forward(self):
        g, emit = self.g, self.g.emit
        for k, (prim, ins, args, out, ctx) in enumerate(self.tr.calls):
            a = [self.ref(x) for x in ins]
            name = prim.name
            o = None
            ob = _outbuf(out)
            one = _unit_operand(ins, out) if name == "mul" else None
            if one is not None:  # x · 1 = x exactly (Σy of a one-hot row): no kernel, the same buffer
                o = a[one]
            elif name in _ELEMENTWISE and ob is not None:
                o = g.name(ob, "v")
                emit(f"{_ELEMENTWISE[name]}({', '.join(a)}, out={o})")
            elif name == "affine" and ob is not None and ins[1].ndim in (1, 2):
                o = g.name(ob, "v")  # z = W h + b (or H Wᵀ + b) in one buffer, as Affine.forward computes it
                if ins[1].ndim == 1:
                    emit(f"matmul({a[0]}, {a[1]}, out={o}); add({o}, {a[2]}, out={o})")
                else:
                    emit(f"matmul({a[1]}, {self.view(np.transpose, a[0])}, out={o}); add({o}, {a[2]}, out={o})")
            elif name == "sigmoid" and ob is not None:
                o = g.name(ob, "v")
                emit(f"mul(0.5, {a[0]}, out={o}); tanh({o}, out={o}); add(1.0, {o}, out={o}); mul(0.5, {o}, out={o})")
            elif name == "relu" and ob is not None and _is_fresh(ctx):
                o = g.name(ob, "v")
                mask = g.name(ctx, "m")
                emit(f"gt({a[0]}, 0, out={mask}); mul({a[0]}, {mask}, out={o})")
                self.ctxvars[k] = mask
            elif name == "logsumexp" and self._lse_ok(ins[0], args, out, ctx):
                axis, keep = args
                lse = ctx[1]
                sb, t = np.empty(lse.shape, lse.dtype), np.empty(ins[0].shape, ins[0].dtype)
                s, tn, rn = g.name(sb, "s"), g.name(t, "t"), g.name(np.empty(lse.shape, lse.dtype), "r")
                o = s if keep else g.name(sb.reshape(np.shape(out)), "v")  # a view of the lse buffer
                if o != s:
                    g.alias[o] = s
                if axis is None or ins[0].ndim == 1:  # r = Σ t comes back as a scalar, a local of the replay
                    g.n += 1
                    rn = f"_r{g.n}"
                    emit(lse_flat_code(a[0], tn, s, f"_m{g.n}", rn, ins[0].ndim, ins[0].size))
                else:
                    emit(f"lse_axis({a[0]}, {g.name(axis)}, {tn}, {s}, {rn})")
                self.ctxvars[k] = s
                self.lse_parts[k] = (tn, rn)
            elif name == "cross_entropy" and ins[0].ndim == 1 and ob is not None \
                    and self._lse_ok(ins[0], (None, False), ctx[0][1].reshape(()), ctx[0]):
                # L = logsumexp(z) − z_y for one example, as CrossEntropy.forward computes it
                lse = ctx[0][1]
                s, tn = g.name(np.empty(lse.shape, lse.dtype), "s"), g.name(np.empty(ins[0].shape, ins[0].dtype), "t")
                g.n += 1
                rn = f"_r{g.n}"
                emit(lse_flat_code(a[0], tn, s, f"_m{g.n}", rn, 1, ins[0].size))
                o = g.name(ob, "v")
                s0 = g.name(g.ns[s].reshape(()), "v")
                g.alias[s0] = s
                emit(f"sub({s0}, {a[0]}[{args[0]!r}], out={o})")
                self.ctxvars[k] = s
                self.lse_parts[k] = (tn, rn)
            elif name in ("sum", "mean") and ob is not None:
                axis, keep = args
                o = g.name(ob, "v")
                emit(f"add_reduce({a[0]}, axis={g.name(axis)}, keepdims={keep!r}, out={o})")
                if name == "mean":
                    emit(f"div({o}, {ctx[3]}, out={o})")
            elif name in ("reshape", "transpose", "getitem") and isinstance(out, np.ndarray) \
                    and g.fixed_array(a[0]) and np.shares_memory(out, ins[0]) \
                    and (name != "getitem" or P._is_basic(args[0])):
                o = g.name(out, "v")  # a view of a buffer that never moves: nothing to do at replay
                g.alias[o] = a[0]
            if o is None:  # generic: the primitive itself (allocates, same maths)
                o = g.name(None, "v", dynamic=True)
                c = g.name(None, "ctx", dynamic=True)
                arglist = ", ".join(a + [g.name(x) for x in args])
                emit(f"{o}, {c} = {g.name(prim)}.forward({arglist})")
                self.ctxvars[k] = c
            self.bind(out, o)

    @staticmethod
    def _lse_ok(z, args, out, ctx) -> bool:
        """Use the buffered logsumexp kernel only if it reproduces this capture's value bit for bit."""
        if not isinstance(z, np.ndarray) or z.dtype not in (np.float64, np.float32) or len(args) != 2:
            return False
        axis, keep = args
        lse = ctx[1] if isinstance(ctx, tuple) and len(ctx) == 5 else None
        if not isinstance(lse, np.ndarray) or np.shape(out) != (lse.shape if keep else np.shape(out)):
            return False
        s, t, r = np.empty(lse.shape, lse.dtype), np.empty(z.shape, z.dtype), np.empty(lse.shape, lse.dtype)
        if axis is None or z.ndim == 1:
            ns = dict(_FUNCS, z=z, t=t, s=s)
            exec(lse_flat_code("z", "t", "s", "m", "r", z.ndim, z.size), ns)
            r = ns["r"]
        else:
            lse_axis(z, axis, t, s, r)
        return (np.array_equal(s, lse, equal_nan=True) and np.array_equal(t, ctx[3], equal_nan=True)
                and np.array_equal(r, np.broadcast_to(ctx[4], np.shape(r)), equal_nan=True)
                and s.reshape(np.shape(out)).shape == np.shape(out))

    # ------------------------------------------------------------------ backward
    def backward(self):
        tr, g, emit = self.tr, self.g, self.g.emit
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
            gs = self.vjp(ci, prim, ins, args, out, ctx, gv, need)
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
                        acc = g.buf(p.data, "acc")
                        emit(f"add({prev}, {gp}, out={acc})")
                        pending[id(p)] = acc
        if pending:
            raise CaptureError("compiled step: backward did not reach every pending gradient")

    def leaf(self, p, gp, assign):
        g, emit = self.g, self.g.emit
        cur = self.leafgrad.get(id(p))
        if cur is not None:  # a second contribution: eager makes p.grad + gp, a new array
            nm = g.buf(p.data, "G")
            emit(f"add({cur}, {gp}, out={nm})")
        elif assign and g.fixed_array(gp) and g.ns[gp].flags.writeable:
            nm = gp  # eager keeps the vjp's array itself as .grad
        else:
            nm = g.buf(p.data, "G")
            if assign:
                emit(f"copyto({nm}, {gp})")
            else:  # not zeroed inside fn: eager adds to whatever .grad holds when the step runs
                emit(f"_g = {self.param_name(p)}.grad\nif _g is None: copyto({nm}, {gp})\n"
                     f"else: add(_g, {gp}, out={nm})")
        self.leafgrad[id(p)] = nm

    def param_name(self, p):
        key = ("param", id(p))
        nm = self.var.get(key)
        if nm is None:
            nm = self.g.name(p, "P")
            self.var[key] = nm
        return nm

    def view(self, expr_fn, src):
        """A view of ``src`` (reshape, transpose, broadcast): made once if src is a fixed buffer."""
        g = self.g
        if g.fixed_array(src):
            nm = g.name(expr_fn(g.ns[src]), "w")
            g.alias[nm] = src
            g.viewfn[nm] = expr_fn
            return nm
        nm = g.name(None, "w", dynamic=True)
        g.emit(f"{nm} = {g.name(expr_fn)}({src})")
        return nm

    def vjp(self, ci, prim, ins, args, out, ctx, gv, need):
        """Emit the vjp of one call; return one code name per input (None where not needed)."""
        g, emit = self.g, self.g.emit
        name = prim.name
        a = [self.ref(x) for x in ins]
        shapes = [np.shape(x) for x in ins]
        oshape = tuple(np.shape(out))
        odt = np.asarray(out).dtype

        def unb(src, shape):  # primitives.unbroadcast, with out= buffers
            shape = tuple(shape)
            if shape == oshape:
                return src
            lead = len(oshape) - len(shape)
            cur, cshape = src, oshape
            if lead > 0:
                cshape = oshape[lead:]
                nm = g.name(np.empty(cshape, odt), "u")
                emit(f"add_reduce({cur}, axis={tuple(range(lead))!r}, out={nm})")
                cur = nm
            st = tuple(i for i, s in enumerate(shape) if s == 1 and cshape[i] != 1)
            if st:
                nm = g.name(np.empty(shape, odt), "u")
                emit(f"add_reduce({cur}, axis={st!r}, keepdims=True, out={nm})")
                cur = nm
            return cur

        def newbuf(shape=oshape, dt=odt):
            return g.name(np.empty(shape, dt), "d")

        res = [None] * len(ins)
        h = self.var.get(id(out))
        if name == "add":
            res = [unb(gv, shapes[i]) if need[i] else None for i in range(2)]
        elif name == "sub":
            if need[0]:
                res[0] = unb(gv, shapes[0])
            if need[1]:
                n = newbuf()
                emit(f"neg({gv}, out={n})")
                res[1] = unb(n, shapes[1])
        elif name == "mul":
            for i in range(2):
                if need[i]:
                    if _is_one(ins[1 - i], odt):
                        res[i] = unb(gv, shapes[i])  # g · 1 = g exactly
                        continue
                    n = newbuf()
                    emit(f"mul({gv}, {a[1 - i]}, out={n})")
                    res[i] = unb(n, shapes[i])
        elif name == "div":
            n = newbuf()
            emit(f"div({gv}, {a[1]}, out={n})")
            if need[0]:
                res[0] = unb(n, shapes[0])
            if need[1]:
                t = newbuf()
                emit(f"neg({n}, out={t}); mul({t}, {h}, out={t})")
                res[1] = unb(t, shapes[1])
        elif name == "neg":
            n = newbuf()
            emit(f"neg({gv}, out={n})")
            res[0] = n
        elif name == "tanh":
            n, t = newbuf(), newbuf()
            one = g.name(np.array(1.0, odt))  # a 0-d array of the buffer's dtype: the same 1 − h², faster than a float
            emit(f"mul({h}, {h}, out={t}); sub({one}, {t}, out={t}); mul({gv}, {t}, out={n})")
            res[0] = n
        elif name == "sigmoid":
            n, t = newbuf(), newbuf()
            emit(f"sub({g.name(np.array(1.0, odt))}, {h}, out={t}); mul({h}, {t}, out={t}); mul({gv}, {t}, out={n})")
            res[0] = n
        elif name == "exp":
            n = newbuf()
            emit(f"mul({gv}, {h}, out={n})")
            res[0] = n
        elif name == "log":
            n = newbuf()
            emit(f"div({gv}, {a[0]}, out={n})")
            res[0] = n
        elif name == "relu" and ci in self.ctxvars and self.ctxvars[ci].startswith("m"):
            n = newbuf()
            emit(f"mul({gv}, {self.ctxvars[ci]}, out={n})")
            res[0] = n
        elif name == "matmul" and np.ndim(ins[0]) == 2 and np.ndim(ins[1]) in (1, 2):
            A, B = ins
            dt = np.result_type(A, B)
            if B.ndim == 1:  # W h: ∂L/∂W = δ hᵀ into a fixed rank-1 buffer, ∂L/∂h = Wᵀ δ a gemv
                if need[0]:
                    res[0] = newbuf(A.shape, dt)
                    col = self.view(lambda x: x[:, None], gv)
                    emit(f"mul({col}, {a[1]}, out={res[0]})")
                    self.rank1[res[0]] = (gv, a[1], f"mul({col}, {a[1]}, out={res[0]})")
                if need[1]:
                    res[1] = newbuf(B.shape, dt)
                    emit(f"matmul({self.view(np.transpose, a[0])}, {gv}, out={res[1]})")
            else:  # as MatMul.vjp: a transposed (F-ordered) operand gets its gradient as (·)ᵀ of a C buffer
                T = np.transpose

                def product(operand, operands):  # operands() -> the two factors, of the transpose if F-ordered
                    f = P._f_order(operand)
                    o = newbuf(operand.shape[::-1] if f else operand.shape, dt)
                    left, right = operands(f)
                    emit(f"matmul({left}, {right}, out={o})")
                    return self.view(T, o) if f else o
                if need[0]:  # ∂L/∂A = g Bᵀ, or (B gᵀ)ᵀ
                    res[0] = product(A, lambda f: (a[1], self.view(T, gv)) if f else (gv, self.view(T, a[1])))
                if need[1]:  # ∂L/∂B = Aᵀ g, or (gᵀ A)ᵀ
                    res[1] = product(B, lambda f: (self.view(T, gv), a[0]) if f else (self.view(T, a[0]), gv))
        elif name == "affine" and np.ndim(ins[1]) in (1, 2):  # Affine.vjp: δ hᵀ (or Δᵀ H), Wᵀ δ (or Δ W), δ
            W, H = ins[0], ins[1]
            dt = np.result_type(W, H)
            if H.ndim == 1:
                if need[0]:  # ∂L/∂W = δ hᵀ into a fixed rank-1 buffer
                    res[0] = newbuf(W.shape, dt)
                    col = self.view(lambda x: x[:, None], gv)
                    line = f"mul({col}, {a[1]}, out={res[0]})"
                    emit(line)
                    self.rank1[res[0]] = (gv, a[1], line)
                if need[1]:
                    res[1] = newbuf(H.shape, dt)
                    emit(f"matmul({self.view(np.transpose, a[0])}, {gv}, out={res[1]})")
                if need[2]:
                    res[2] = gv
            else:
                if need[0]:
                    res[0] = newbuf(W.shape, dt)
                    emit(f"matmul({self.view(np.transpose, gv)}, {a[1]}, out={res[0]})")
                if need[1]:
                    res[1] = newbuf(H.shape, dt)
                    emit(f"matmul({gv}, {a[0]}, out={res[1]})")
                if need[2]:
                    res[2] = newbuf(np.shape(ins[2]), odt)
                    emit(f"add_reduce({gv}, axis=0, out={res[2]})")
        elif name == "matmul" and np.ndim(ins[0]) == 1 and np.ndim(ins[1]) == 1:  # yᵀz: g·y and g·z
            for i in range(2):
                if need[i]:
                    res[i] = newbuf(np.shape(ins[i]), np.result_type(*ins))
                    emit(f"mul({gv}, {a[1 - i]}, out={res[i]})")
        elif name == "logsumexp" and ci in self.ctxvars and self.ctxvars[ci].startswith("s"):
            lse = self.ctxvars[ci]
            axis, keep = args
            n = newbuf(np.shape(ins[0]), odt)
            gg = gv if keep else self.view(lambda x, _s=g.ns[lse].shape: x.reshape(_s), gv)
            # the softmax + cross-entropy gradient: g · t / r, from the forward's buffers as the primitive does
            tn, rn = self.lse_parts[ci]
            emit(f"div({tn}, {rn}, out={n})")
            if not g.is_ones(gv):  # 1 · e = e exactly: a loss that is the graph's root skips the product
                emit(f"mul({gg}, {n}, out={n})")
            res[0] = n
        elif name == "cross_entropy" and ci in self.ctxvars and self.ctxvars[ci].startswith("s"):
            # CrossEntropy.vjp: g ⊙ t / r from the forward's buffers, then − g at the label
            n = newbuf(np.shape(ins[0]), odt)
            tn, rn = self.lse_parts[ci]
            emit(f"div({tn}, {rn}, out={n})")
            if not g.is_ones(gv):
                emit(f"mul({gv}, {n}, out={n})")
            emit(f"{n}[{args[0]!r}] -= {gv}")
            res[0] = n
        elif name in ("sum", "mean"):
            shape, axis, keep = ctx[:3]
            src = gv
            if name == "mean":
                src = newbuf()
                emit(f"div({gv}, {ctx[3]}, out={src})")
            if not keep and axis is not None:
                src = self.view(lambda x, _a=axis: np.expand_dims(x, _a), src)
            res[0] = self.view(lambda x, _s=shape: np.broadcast_to(x, _s), src)
        elif name == "reshape":
            res[0] = self.view(lambda x, _s=ctx: x.reshape(_s), gv)
        elif name == "transpose":
            res[0] = self.view((lambda x: np.transpose(x)) if ctx is None
                               else (lambda x, _p=tuple(np.argsort(ctx)): np.transpose(x, _p)), gv)
        elif name == "getitem":
            shape, dtype, index = ctx
            n, ix = newbuf(shape, dtype), g.name(index)
            if P._is_basic(index):
                emit(f"{n}.fill(0); {n}[{ix}] = {gv}")
            else:
                emit(f"{n}.fill(0); np.add.at({n}, {ix}, {gv})")
            res[0] = n
        else:  # generic: the primitive's own vjp on this replay's ctx
            c = self.ctxvars.get(ci)
            if c is None or not c.startswith("ctx"):
                raise CaptureError(f"compiled step: no replay rule for the vjp of {name!r} here")
            res = [g.name(None, "d", dynamic=True) for _ in ins]
            emit(f"{', '.join(res)}, = {g.name(prim)}.vjp({gv}, {c})")
        return res

    # ------------------------------------------------------------------ optimiser
    def optimiser(self):
        g, emit = self.g, self.g.emit
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
            if type(opt) is SGD:  # θ ← θ − η g in place; momentum v ← μ v + g as SGD.step does
                # lr, momentum (and Nesterov, which takes SGD's own step) are read at every replay
                lines = []
                for i, p, gname in items:
                    pd, tmp = self.ref(p.data), g.buf(p.data, "T")
                    lines.append(f"_g = {gname}\nif mu:\n    _v = vel[{i}]\n"
                                 f"    if _v is None: _v = vel[{i}] = _g.copy()\n"
                                 f"    else: mul(_v, mu, out=_v); add(_v, _g, out=_v)\n    _g = _v\n"
                                 f"mul(_g, lr, out={tmp}); sub({pd}, {tmp}, out={pd})")
                per_param = "\n".join(lines)
                flat = self.flat_sgd(items) if len(items) == len(pg) else None
                if flat is not None:
                    per_param = flat.replace("PER_PARAM", per_param.replace("\n", "\n    "))
                body = f"lr, mu, vel = {on}.lr, {on}.momentum, {on}.velocity\n{per_param}".replace("\n", "\n    ")
                code = (f"if getattr({on}, 'nesterov', False):\n    " + generic.replace("\n", "\n    ")
                        + "\nelse:\n    " + body)
                fused = self.fused_sgd(items) if self.fused and len(self.tr.steps) == 1 else None
                if fused is not None:  # plain SGD takes the BLAS form; momentum needs every gradient formed
                    outers, update = fused
                    code = (f"_fused = not {on}.momentum and not getattr({on}, 'nesterov', False)\n"
                            f"if _fused:\n    lr = {on}.lr\n    " + update.replace("\n", "\n    ")
                            + "\nelse:\n    " + "\n".join(outers + [code]).replace("\n", "\n    "))
                emit(code)
            else:  # any other optimiser: hand it the grads and let it step itself
                emit(generic)

    def fused_sgd(self, items):
        """Plain SGD with BLAS (``compile(fused=True)``): the per-example layer's rank-1 update
        W ← W − η δ hᵀ is one ``ger`` call on W in place (δ hᵀ is never formed, so W.grad is None
        after such a replay), every other parameter θ ← θ − η g one ``axpy``.  ger and axpy round
        differently from the tape's (η · g, then θ − ·), so the weights agree with eager to about
        1e-16 relative per step, not bit for bit.  Returns (the lines forming δ hᵀ, now needed only
        when the step is not fused; the update code), or None where the parameters do not allow it.
        """
        try:
            from scipy.linalg.blas import get_blas_funcs
        except ImportError:  # scipy comes with scikit-learn; without it the exact form serves
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
                    and [ln for ln in g.lines if _re.search(rf"\b{gname}\b", ln)] == [r[2]] \
                    and _blas_in_place(ger, d):
                gv, h, line = r
                code.append(f"{g.name(ger, 'blas')}(-lr, {h}, {gv}, a={g.name(d.T, 'WT')}, overwrite_a=1)")
                outers.append(line)
                fused[id(p)] = gname
            else:
                gr = g.ns.get(gname)
                if not g.fixed_array(gname) or gr.shape != d.shape or gr.dtype != d.dtype \
                        or not gr.flags.c_contiguous or not _blas_in_place(axpy, d):
                    return None
                code.append(f"{g.name(axpy, 'blas')}({g.name(gr.reshape(-1), 'GF')}, "
                            f"{g.name(d.reshape(-1), 'F')}, a=-lr)")
        if not fused:
            return None
        for line in outers:
            g.lines.remove(line)
        self.fused_grads.update(fused)
        return outers, "\n".join(code)

    def flat_sgd(self, items):
        """The SGD update of parameters that tile one contiguous buffer (an MLP's), as whole-buffer ops.

        Each gradient buffer moves into the matching slice of one flat gradient G, so that
        θ ← θ − η G (and v ← μ v + G) is two (four) NumPy calls for the whole model instead of two
        (four) per parameter: elementwise, so every entry is computed exactly as the per-parameter
        update computes it.  Returns the code (with PER_PARAM where the per-parameter update goes, for
        a velocity the replay did not set up), or None when the parameters or gradients do not allow it.
        """
        g = self.g
        flat = _tiled([p.data for _, p, _ in items])
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
        Gn, Pn, Tn = g.name(G, "G"), g.name(flat, "F"), g.buf(flat, "T")
        V = np.zeros_like(flat)
        Vn, starts = g.name(V, "V"), np.cumsum([0] + [p.data.size for _, p, _ in items])
        vviews = [g.name(V[a:b].reshape(p.data.shape), "V") for (_, p, _), a, b in zip(items, starts, starts[1:])]
        ours = " and ".join(f"vel[{i}] is {v}" for (i, _, _), v in zip(items, vviews))
        fresh = " and ".join(f"vel[{i}] is None" for i, _, _ in items)
        setv = "; ".join(f"vel[{i}] = {v}" for (i, _, _), v in zip(items, vviews))
        # η and μ as 0-d arrays of the parameters' dtype: the value SGD.step's float rounds to in the
        # product, and a cheaper operand for NumPy than a Python float
        L, M = g.name(np.zeros((), flat.dtype), "L"), g.name(np.zeros((), flat.dtype), "L")
        update = f"{L}[()] = lr; mul({Gn}, {L}, out={Tn}); sub({Pn}, {Tn}, out={Pn})"
        vupdate = f"{L}[()] = lr; mul({Vn}, {L}, out={Tn}); sub({Pn}, {Tn}, out={Pn})"
        return (f"if not mu:\n    {update}\n"
                f"elif {ours}:\n    {M}[()] = mu; mul({Vn}, {M}, out={Vn}); add({Vn}, {Gn}, out={Vn}); {vupdate}\n"
                f"elif {fresh}:\n    copyto({Vn}, {Gn}); {setv}; {vupdate}\n"
                f"else:\n    PER_PARAM")


def _blas_in_place(fn, like) -> bool:
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


def _tiled(arrays):
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


def _capture(fn, args, kwargs):
    inputs, probes, call_args = [], [], []
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            if a.requires_grad:
                raise TypeError(f"args[{i}]: expected input data, got a Tensor that requires grad "
                                "(parameters must be reached through fn's closure)")
            buf = np.array(a.data, copy=True, order="C")
            inputs.append(buf)
            probes.append(None)
            call_args.append(T._new(buf))
        elif isinstance(a, np.ndarray):
            buf = np.array(a, copy=True, order="C")
            pr = buf.view(_Probe)
            inputs.append(buf)
            probes.append(pr)
            call_args.append(pr)
        else:
            call_args.append(a)
    tr = _Trace()
    st = T.state()
    if st.capture is not None:
        raise CaptureError("compiled step: a step function was called while another is being captured "
                           "in this thread (a compiled step inside a compiled step)")
    st.capture = tr
    try:
        out = fn(*call_args, **kwargs)
        tr.final_leafgrad = {pid: p.grad for pid, p in tr.params.items()}
    finally:
        st.capture = None
    stepped = {id(p) for opt, pg in tr.steps for p, _ in pg}
    for pid, p in tr.params.items():
        if pid not in stepped and not np.array_equal(tr.before[pid], p.data):
            raise CaptureError("compiled step: a parameter changed outside an optimiser's step(); "
                               "that update cannot be replayed")
    return tr, inputs, probes, out


class _Program:
    """One captured variant: the generated replay function and the guards it needs."""

    def __init__(self, fn, args, kwargs, fused=False):
        tr, inputs, probes, out = _capture(fn, args, kwargs)
        self.first_result = out
        b = _Builder(tr, inputs, probes, fused)
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
                    g.emit(f"{b.param_name(p)}.grad = None")
            elif pid in b.fused_grads and fin is tr.after_backward_grads.get(pid):
                g.emit(f"{b.param_name(p)}.grad = None if _fused else {b.leafgrad[pid]}")
            elif pid in b.leafgrad and fin is tr.after_backward_grads.get(pid):
                g.emit(f"{b.param_name(p)}.grad = {b.leafgrad[pid]}")
            else:
                raise CaptureError("compiled step: a .grad was changed after the backward in a way the replay "
                                   "cannot repeat")
        g.emit(f"return {self._result(b, out)}")
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
                    for nm in same:
                        g.lines = [_rename(ln, nm, an) for ln in g.lines]
                else:
                    head.append(f"    copyto({b.input_names[k]}, {an}.data)" if isinstance(a, Tensor)
                                else f"    copyto({b.input_names[k]}, {an})")
                k += 1
            else:
                guards.append(f"{an}.__class__ is not {g.name(type(a), 'K')} or {an} != {g.name(a, 'V')}")
        for p in self.params:
            guards.append(f"{b.param_name(p)}.data is not {g.name(p.data, 'Q')}")
        miss = g.name(_MISS, "MISS")
        guard = "    if " + " or ".join(guards) + f": return {miss}\n" if guards else ""
        params = ", ".join(params)
        head = guard + "".join(ln + "\n" for ln in head)
        body = "\n".join("    " + ln.replace("\n", "\n    ") for ln in g.lines)
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


def _key(args):
    key = []
    for a in args:
        if isinstance(a, Tensor):
            key.append(("T", a.data.shape, a.data.dtype.str))
        elif isinstance(a, np.ndarray):
            key.append(("A", a.shape, a.dtype.str))
        elif isinstance(a, (bool, numbers.Number, str, type(None))):
            key.append(("S", type(a), a))
        else:
            raise TypeError(f"args: expected arrays, Tensors or Python scalars, got {type(a).__name__}")
    return tuple(key)


class CompiledStep:
    """A step function captured on its first call and replayed afterwards; see :func:`compile`."""

    def __init__(self, fn: Callable, max_captures: int = 8, check_finite: bool = True,
                 fused: bool = False) -> None:
        if not callable(fn):
            raise TypeError(f"fn: expected a callable step function, got {type(fn).__name__}")
        if not isinstance(max_captures, int) or max_captures < 1:
            raise ValueError(f"max_captures: expected a positive int, got {max_captures!r}")
        if not isinstance(check_finite, bool):
            raise TypeError(f"check_finite: expected a bool, got {check_finite!r}")
        if not isinstance(fused, bool):
            raise TypeError(f"fused: expected a bool, got {fused!r}")
        self.fn, self.max_captures, self.check_finite, self.fused = fn, max_captures, check_finite, fused
        try:
            self._arg_names = [n for n, prm in inspect.signature(fn).parameters.items()
                               if prm.kind in (prm.POSITIONAL_ONLY, prm.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            self._arg_names = []
        self.programs: dict = {}
        self.captures = 0
        self._replay = None  # the latest program's replay: tried first, its guards decide

    def _check_finite(self, args) -> None:
        """The eager model checks its input at its boundary, but a replay never reaches that check."""
        for i, a in enumerate(args):
            arr = a.data if isinstance(a, Tensor) else a
            if isinstance(arr, np.ndarray) and arr.dtype.kind in "fc" and not np.isfinite(arr).all():
                name = self._arg_names[i] if i < len(self._arg_names) else f"args[{i}]"
                raise ValueError(f"{name}: expected finite values, got NaN or infinity")

    def __call__(self, *args):
        if self.check_finite:
            self._check_finite(args)
        r = self._replay
        if r is not None:
            try:
                out = r(*args)
            except TypeError:  # another number of arguments
                out = _MISS
            if out is not _MISS:
                return out
        return self._slow(args)

    def _slow(self, args):
        args = tuple(a if isinstance(a, (np.ndarray, Tensor, bool, numbers.Number, str, type(None)))
                     else np.asarray(a) for a in args)
        key = _key(args)
        prog = self.programs.get(key)
        if prog is not None and prog.valid():
            # The guards also want plain, C-contiguous arrays (a replay may read an input in place):
            # a strided view or an ndarray subclass of the same shape and dtype comes in as a copy.
            out = prog.replay(*(np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a for a in args))
            if out is not _MISS:
                self._replay = prog.replay
                return out
        if self.captures >= self.max_captures:
            raise CaptureError(
                f"compiled step: {self.captures} captures already (max_captures={self.max_captures}); the "
                f"arguments keep changing shape, dtype or Python value ({key!r:.200}). Pass changing numbers "
                "as arrays, or run this step eagerly")
        self.captures += 1
        prog = _Program(self.fn, args, {}, self.fused)
        self.programs[key] = prog
        self._replay = prog.replay
        out = prog.first_result
        return _first(out)

    @property
    def source(self) -> str:
        """The generated replay code of the most recent capture (for reading, not for running)."""
        return list(self.programs.values())[-1].source if self.programs else ""


def _first(out):
    """The capture call's result, in the replay's form (scalar loss -> float)."""
    if isinstance(out, Tensor):
        return float(out.data) if out.data.ndim == 0 else out.data
    if isinstance(out, (tuple, list)):
        return tuple(_first(o) for o in out)
    return out


def compile(fn: Callable, max_captures: int = 8, check_finite: bool = True, fused: bool = False) -> CompiledStep:
    """Capture ``fn`` on its first call (forward, backward, optimiser step) and replay it afterwards.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs)`` runs one training step on Tensors reached through its closure (a model and
        an optimiser) and returns the loss Tensor (or None, or a tuple of Tensors).  Arrays and
        Tensors among the inputs become replay inputs; Python numbers are guarded by value.
    max_captures : int
        How many variants (shapes, dtypes, Python values) may be captured before giving up.
    check_finite : bool
        Refuse NaN or infinite array arguments with a ValueError naming the argument (about 1 µs
        per argument and call).  A training loop that checked its data once passes False.
    fused : bool
        False (default): the replay runs the tape's own floating-point operations, so its weights
        are bit-identical to eager training's.  True: plain SGD (no momentum) updates a per-example
        layer's W ← W − η δ hᵀ with one BLAS rank-1 call (``ger``) and every other parameter with
        ``axpy``; δ hᵀ is never formed, so such a W has ``.grad`` None after a replay.  The weights
        then match eager's to rounding (≈1e-16 relative per step; still the same from run to run).

    Returns
    -------
    CompiledStep
        Call it like ``fn``.  A 0-d loss comes back as a Python float; other results are buffers the
        next call overwrites.  See the module docstring for the traps.
    """
    return CompiledStep(fn, max_captures, check_finite, fused)
