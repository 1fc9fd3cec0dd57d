"""The native kernel's loops: where each buffer of the replay lives, and each statement as loops over it.

:class:`Memory` places every array of a captured program: the inputs in the caller's arrays, the parameters
in the model's flat buffer, everything else (gradients, activations, constants) in one flat arena per
dtype; an array is then (space, offset, shape, strides), all known at capture, so a transpose or a
broadcast is only index arithmetic.  :class:`Renderer` turns each :class:`~.codegen.Op` (``add``, ``tanh``,
``matmul``, ``add_reduce``, ``lse_flat``, ...) into numba-ready loops over those spaces; :func:`_deferrable`
finds the gradients ∂L/∂W^[l] = δ^[l] h^[l−1]ᵀ that the update can form itself.  :mod:`.native` assembles
the kernel from them.
"""
from __future__ import annotations

import ast
import re

import numpy as np


class Unsupported(Exception):
    """This captured step has no native form (the message says what); the NumPy replay runs it."""


# --------------------------------------------------------------------------- memory
class Memory:
    """Where each array of the replay lives for the kernel: (space, offset, shape, strides in elements)."""

    def __init__(self, ns, inputs, params_flat, dtype):
        self.ns = ns
        self.dtype = np.dtype(dtype)
        self.spaces = {}  # space name -> (owner array, start address)
        self.args = []    # kernel argument names, in order
        self.arena_parts = {}  # dtype str -> list of owners placed in that arena
        self.owner_pos = {}    # id(owner) -> (space, element offset)
        for k, buf in enumerate(inputs):
            self._space(f"X{k}", buf)
        self._space("F", params_flat)

    def _space(self, name, arr):
        self.spaces[name] = arr
        self.owner_pos[id(_owner(arr))] = (name, (_addr(arr) - _addr(_owner(arr))) // arr.itemsize)
        self.args.append(name)

    def loc(self, nm):
        arr = self.ns.get(nm)
        if not isinstance(arr, np.ndarray):
            raise Unsupported(f"{nm} is not a fixed buffer")
        return self.locate(arr)

    def locate(self, arr):
        own = _owner(arr)
        for name, sp in self.spaces.items():
            if name.startswith(("X", "F")) and np.shares_memory(arr, sp):
                base = _addr(sp)
                return name, (_addr(arr) - base) // arr.itemsize, arr.shape, tuple(s // arr.itemsize for s in arr.strides)
        if arr.dtype.kind not in "fb":
            raise Unsupported(f"an array of dtype {arr.dtype}")
        key = arr.dtype.str
        parts = self.arena_parts.setdefault(key, [])
        if id(own) not in self.owner_pos:
            if not own.flags.c_contiguous:
                raise Unsupported("a buffer that is not contiguous")
            start = sum(o.size for o in parts)
            parts.append(own)
            self.owner_pos[id(own)] = (f"A_{arr.dtype.name}", start)
        space, start = self.owner_pos[id(own)]
        off = start + (_addr(arr) - _addr(own)) // arr.itemsize
        return space, off, arr.shape, tuple(s // arr.itemsize for s in arr.strides)

    def arenas(self):
        out = {}
        for key, parts in self.arena_parts.items():
            dt = np.dtype(key)
            a = np.empty(max(sum(o.size for o in parts), 1), dt)
            pos = 0
            for o in parts:
                a[pos:pos + o.size] = o.reshape(-1)
                pos += o.size
            out[f"A_{dt.name}"] = a
        return out

    def view(self, arenas, arr):
        """The arena's view standing for ``arr`` (a gradient the user reads as ``p.grad``)."""
        space, off, shape, strides = self.locate(arr)
        base = arenas[space] if space.startswith("A_") else self.spaces[space]
        it = base.itemsize
        return np.lib.stride_tricks.as_strided(base[off:], shape, tuple(s * it for s in strides))


def _clash(a, b):
    """Two locations in one space that overlap but are not the same elements in the same order."""
    return a != b and _overlap(a, b)


def _span(l):
    """The lowest and highest element a location (space, offset, shape, strides) reaches."""
    lo = hi = l[1]
    for n, st in zip(l[2], l[3]):
        if n > 1:
            (lo, hi) = (lo + (n - 1) * st, hi) if st < 0 else (lo, hi + (n - 1) * st)
    return lo, hi


def _overlap(a, b):
    """Two locations that may share an element (their spans meet in one space)."""
    if a[0] != b[0]:
        return False
    (a0, a1), (b0, b1) = _span(a), _span(b)
    return not (a1 < b0 or b1 < a0)


_KNOWN = {"add_reduce", "matmul"}  # besides the elementwise ones: read ins, write out


def _effects(mem, op):
    """(locations read, locations written) of ``op``; for a kind this module does not know, every array it
    names is both (nothing is moved across it)."""
    arrays = [mem.loc(n) for n in (op.ins + [v for _, v in op.kw]) if n.isidentifier()
              and isinstance(mem.ns.get(n), np.ndarray)]
    out = mem.loc(op.out)
    if op.fn in _BIN or op.fn in _UN or op.fn in _KNOWN:
        return arrays, [out]
    if op.fn in ("lse_flat", "lse_axis"):
        kw = dict(op.kw)
        return arrays, [out] + [mem.loc(kw[k]) for k in ("t", "r") if isinstance(mem.ns.get(kw[k]), np.ndarray)]
    return arrays + [out], arrays + [out]


def _deferrable(mem, ops, before, items, update_writes):
    """The gradients the update can compute itself: {gradient name: the elementwise op that is its only
    writer}.  Such a gradient (∂L/∂W = δ hᵀ) is then formed element by element inside the update's loop
    and stored only when asked (``keep``), instead of being written in full and read back.  Safe when
    nothing else reads the buffer, the op does not read it (no accumulation), and nothing after the op
    (another op, an earlier parameter's update) writes what the op reads."""
    effects = [_effects(mem, op) for op in ops]
    out = {}
    for _, p, gname in items:
        G = mem.loc(gname)
        writers = [k for k, (_, w) in enumerate(effects) if any(_overlap(G, x) for x in w)]
        if len(writers) != 1:
            continue
        k = writers[0]
        d = ops[k]
        if (d.fn not in _BIN and d.fn not in _UN) or d.kw or mem.loc(d.out) != G or G[2] != p.data.shape:
            continue
        reads = effects[k][0]
        if any(_overlap(G, x) for j, (rd, _) in enumerate(effects) for x in rd):
            continue
        if k >= before:  # computed after the update
            continue
        later = [w for _, ws in effects[k + 1:before] for w in ws] + update_writes
        if any(_overlap(x, w) for x in reads for w in later):
            continue
        out[gname] = d
    return out


def _owner(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _addr(a):
    return a.__array_interface__["data"][0]


# --------------------------------------------------------------------------- rendering
BLAS_AT = 20_000  # multiply-adds from which a product goes to BLAS (np.dot) rather than loops

_BIN = {"add": "+", "sub": "-", "mul": "*", "div": "/", "gt": ">", "ge": ">="}
# tanh and exp: native_math's, which vectorise (np.tanh on a scalar is one C-library call per element)
_UN = {"neg": "-({})", "tanh": "tanh_({})", "exp": "exp_({})", "log": "np.log({})",
       "sqrt": "np.sqrt({})", "copy": "{}", "abs": "np.abs({})",
       "sign": "np.sign({})",
       # np.maximum(z, 0): z above 0, NaN kept, else +0.0 (Python's max would keep a −0.0)
       "relu": "({0} if ({0} > 0) or ({0} != {0}) else 0.0)"}


class Renderer:
    """Ops to numba loops over the flat spaces."""

    def __init__(self, mem, scalar_cast):
        self.mem = mem
        self.lines = []
        self.depth = 1
        self.n = 0
        self.scalar_cast = scalar_cast  # scalar name -> expression as the array dtype sees it
        self.group = []  # elementwise ops waiting to share one loop nest

    def emit(self, line):
        self.flush()
        self._emit(line)

    def _emit(self, line):
        self.lines.append("    " * self.depth + line)

    def var(self, p="i"):
        self.n += 1
        return f"{p}{self.n}"

    def operand(self, nm):
        """(loc or None, scalar expression or None)."""
        if not nm.isidentifier() or nm in ("True", "False"):
            return None, nm
        v = self.mem.ns.get(nm)
        if isinstance(v, np.ndarray):
            return self.mem.loc(nm), None
        if v is None:  # a local of the kernel (a scalar of the update, r = Σ t)
            return None, self.scalar_cast(nm)
        if isinstance(v, (int, float, np.generic)):
            return None, repr(float(v)) if not isinstance(v, (bool, np.bool_)) else repr(bool(v))
        raise Unsupported(f"operand {nm} of type {type(v).__name__}")

    @staticmethod
    def index(loc, idx, oshape):
        """Element of ``loc`` at loop indices ``idx`` over ``oshape`` (NumPy broadcasting)."""
        space, off, shape, strides = loc
        lead = len(oshape) - len(shape)
        terms = [str(off)] if off else []
        for d, (n, s) in enumerate(zip(shape, strides)):
            if n == 1 or s == 0:
                continue
            i = idx[d + lead]
            terms.append(f"{i}" if s == 1 else f"{i} * {s}")
        return f"{space}[{' + '.join(terms) or '0'}]"

    def loop(self, shape):
        idx = []
        for n in shape:
            v = self.var()
            self._emit(f"for {v} in range({n}):")
            self.depth += 1
            idx.append(v)
        return idx

    def close(self, idx):
        self.depth -= len(idx)

    def elementwise(self, op):
        """Join ``op`` to the loop nest being built (consecutive elementwise ops of one shape run in one
        loop, each element read where it was written), or start a new one."""
        out = self.mem.loc(op.out)
        reads = [self.mem.loc(n) for n in op.ins if n.isidentifier() and isinstance(self.mem.ns.get(n), np.ndarray)]
        g = self.group
        if g and (g[0][1][2] != out[2] or any(_clash(w, r) for _, w, _ in g for r in reads)
                  or any(_clash(out, r) for _, _, rs in g for r in rs)
                  or any(_clash(out, w) for _, w, _ in g)):
            self.flush()
        self.group.append((op, out, reads))

    def flush(self):
        g, self.group = self.group, []
        if not g:
            return
        shape = g[0][1][2]
        self.nest(shape, lambda idx, hoist: [f"{self.index(out, idx, shape)} = {self.expr(op, idx, shape, hoist)}"
                                             for op, out, _ in g])

    def nest(self, shape, body):
        """Loops over ``shape`` around ``body(idx, hoist)``'s lines.  ``hoist(e)`` moves an element read that
        does not depend on the innermost index (δ_i in δ_i h_j) out of the inner loop, into a local: all
        buffers share one arena, so LLVM cannot prove that the loop's stores leave it unchanged, and
        would reload it at every element instead of vectorising."""
        if not shape or shape[-1] <= 1:  # (with one element per row every index is "invariant")
            idx = self.loop(shape)
            for line in body(idx, None):
                self._emit(line)
            self.close(idx)
            return
        outer = self.loop(shape[:-1])
        v = self.var()
        pre, found = [], {}
        word = re.compile(rf"\b{v}\b")

        def hoist(e):
            if word.search(e):
                return e
            if e not in found:
                found[e] = self.var("h")
                pre.append(f"{found[e]} = {e}")
            return found[e]
        lines = body(outer + [v], hoist)
        for line in pre:
            self._emit(line)
        self._emit(f"for {v} in range({shape[-1]}):")
        self.depth += 1
        for line in lines:
            self._emit(line)
        self.depth -= 1
        self.close(outer)

    def expr(self, op, idx, shape, hoist=None):
        """The elementwise ``op``'s value at loop indices ``idx`` over ``shape``; ``hoist``: see :meth:`nest`
        (only for reads that nothing in the loop writes)."""
        vals = []
        for nm in op.ins:
            loc, sc = self.operand(nm)
            e = sc if loc is None else self.index(loc, idx, shape)
            vals.append(hoist(e) if hoist is not None and loc is not None else e)
        if op.fn in _BIN:
            return f"({vals[0]} {_BIN[op.fn]} {vals[1]})"
        return _UN[op.fn].format(vals[0])

    def render(self, op):
        if op.fn in _BIN or op.fn in _UN:
            if op.kw:
                raise Unsupported(f"{op.fn} with {dict(op.kw)}")
            return self.elementwise(op)
        fn = getattr(self, "r_" + op.fn, None)
        if fn is None:
            raise Unsupported(f"no native form for {op.fn}")
        self.flush()
        fn(op)

    def _kw(self, op, key, default=None):
        for k, v in op.kw:
            if k == key:
                if v.isidentifier() and v not in ("True", "False", "None"):
                    return self.mem.ns[v]
                return ast.literal_eval(v)
        return default

    def r_add_reduce(self, op):
        x = self.mem.loc(op.ins[0])
        o = self.mem.loc(op.out)
        axis, keep = self._kw(op, "axis"), self._kw(op, "keepdims", False)
        nd = len(x[2])
        axes = tuple(range(nd)) if axis is None else tuple(a % nd for a in (axis if isinstance(axis, tuple) else (axis,)))
        oi = self.loop(o[2])
        self.emit(f"{self.index(o, oi, o[2])} = 0.0")
        self.close(oi)
        idx = self.loop(x[2])
        kept = [i for d, i in enumerate(idx) if d not in axes] if not keep else \
            [("0" if d in axes else i) for d, i in enumerate(idx)]
        self.emit(f"{self.index(o, kept, o[2])} += {self.index(x, idx, x[2])}")
        self.close(idx)

    @staticmethod
    def as_array(loc):
        """A numba expression for the (C- or F-contiguous) array at ``loc``, or None."""
        space, off, shape, strides = loc
        size = int(np.prod(shape))
        c = tuple(int(np.prod(shape[d + 1:])) for d in range(len(shape)))
        f = tuple(int(np.prod(shape[:d])) for d in range(len(shape)))
        flat = f"{space}[{off}:{off + size}]"
        if all(st == cs for n, st, cs in zip(shape, strides, c) if n > 1):
            return f"{flat}.reshape({tuple(shape)!r})"
        if len(shape) == 2 and all(st == fs for n, st, fs in zip(shape, strides, f) if n > 1):
            return f"{flat}.reshape({tuple(shape[::-1])!r}).T"
        return None

    def r_matmul(self, op):
        A, B = (self.mem.loc(n) for n in op.ins)
        O = self.mem.loc(op.out)
        sa, sb = A[2], B[2]
        acc = self.var("s")
        if len(sa) == 2 and len(sb) in (1, 2) and sa[0] * sa[1] * (sb[1] if len(sb) == 2 else 1) >= BLAS_AT:
            a, b_, o = self.as_array(A), self.as_array(B), self.as_array(O)
            if a and b_ and o and not o.endswith(".T") and all(s > 0 for s in sa + sb):
                self.emit(f"np.dot({a}, {b_}, {o})")  # BLAS: a large product, in its own memory order
                return
        if len(sa) == 2 and len(sb) == 1 and A[3][0] == 1 and A[3][1] != 1 and sa[1] > 1 \
                and not _overlap(O, B):
            # A is a transpose (Wᵀ δ): sweep its contiguous columns, O += A[:, k] b_k, so the inner loop
            # vectorises with no reassociation (each O[i] still sums over k in order)
            i = self.loop((sa[0],))
            self.emit(f"{self.index(O, i, O[2])} = 0.0")
            self.close(i)
            k = self.loop((sa[1],))
            bk = self.var("b")
            self.emit(f"{bk} = {self.index(B, k, sb)}")
            i = self.loop((sa[0],))
            self.emit(f"{self.index(O, i, O[2])} += {self.index(A, i + k, sa)} * {bk}")
            self.close(i)
            self.close(k)
        elif len(sa) == 2 and len(sb) == 1:
            i = self.loop((sa[0],))
            self.emit(f"{acc} = 0.0")
            k = self.loop((sa[1],))
            self.emit(f"{acc} += {self.index(A, i + k, sa)} * {self.index(B, k, sb)}")
            self.close(k)
            self.emit(f"{self.index(O, i, O[2])} = {acc}")
            self.close(i)
        elif len(sa) == 2 and len(sb) == 2:
            i = self.loop((sa[0], sb[1]))
            self.emit(f"{acc} = 0.0")
            k = self.loop((sa[1],))
            self.emit(f"{acc} += {self.index(A, [i[0], k[0]], sa)} * {self.index(B, [k[0], i[1]], sb)}")
            self.close(k)
            self.emit(f"{self.index(O, i, O[2])} = {acc}")
            self.close(i)
        elif len(sa) == 1 and len(sb) == 1:
            self.emit(f"{acc} = 0.0")
            k = self.loop(sa)
            self.emit(f"{acc} += {self.index(A, k, sa)} * {self.index(B, k, sb)}")
            self.close(k)
            self.emit(f"{self.index(O, [], ())} = {acc}")
        else:
            raise Unsupported(f"matmul of shapes {sa} and {sb}")

    def r_lse_flat(self, op):
        """log Σ exp z over all of z, as LogSumExp.forward: m = max z (0 if not finite), t = exp(z − m),
        r = Σ t (a kernel local the backward's t / r reads), s = m + log r."""
        z, s, t = self.mem.loc(op.ins[0]), self.mem.loc(op.out), self.mem.loc(dict(op.kw)["t"])
        r = dict(op.kw)["r"]
        m = self.var("m")
        shape = z[2]
        self.emit(f"{m} = -np.inf")
        idx = self.loop(shape)
        self.emit(f"if {self.index(z, idx, shape)} > {m} or np.isnan({self.index(z, idx, shape)}): "
                  f"{m} = {self.index(z, idx, shape)}")
        self.close(idx)
        self.emit(f"if not np.isfinite({m}): {m} = 0.0")
        self.emit(f"{r} = 0.0")
        idx = self.loop(shape)
        self.emit(f"{self.index(t, idx, shape)} = exp_({self.index(z, idx, shape)} - {m})")
        self.emit(f"{r} += {self.index(t, idx, shape)}")
        self.close(idx)
        self.emit(f"{self.index(s, [], ())} = {m} + np.log({r})")

    def r_lse_axis(self, op):
        z, s, t, r = (self.mem.loc(op.ins[0]), self.mem.loc(op.out), self.mem.loc(dict(op.kw)["t"]),
                      self.mem.loc(dict(op.kw)["r"]))
        axis = self._kw(op, "axis")
        shape = z[2]
        if len(shape) != 2 or axis not in (-1, 1, (1,), (-1,)):
            raise Unsupported(f"logsumexp along axis {axis} of shape {shape}")
        m, acc = self.var("m"), self.var("r")
        (i,) = self.loop((shape[0],))
        self.emit(f"{m} = -np.inf")
        (j,) = self.loop((shape[1],))
        zij = self.index(z, [i, j], shape)
        self.emit(f"if {zij} > {m} or np.isnan({zij}): {m} = {zij}")
        self.close([j])
        self.emit(f"if not np.isfinite({m}): {m} = 0.0")
        self.emit(f"{acc} = 0.0")
        (j,) = self.loop((shape[1],))
        tij = self.index(t, [i, j], shape)
        self.emit(f"{tij} = exp_({self.index(z, [i, j], shape)} - {m})")
        self.emit(f"{acc} += {tij}")
        self.close([j])
        self.emit(f"{self.index(r, [i, '0'], r[2])} = {acc}")
        self.emit(f"{self.index(s, [i, '0'], s[2])} = np.log({acc}) + {m}")
        self.close([i])

    # ---- integer class labels (CrossEntropy), read from the input array at every call
    def _label(self, y, idx, k):
        """A local holding label ``y`` at ``idx``, checked against [0, k) before anything indexes with it:
        an out-of-range label raises ValueError (as eager's cross_entropy does), never reads out of bounds.
        The check runs in the forward, before the step writes any parameter, gradient or optimiser state."""
        v = self.var("y")
        self.emit(f"{v} = np.int64({self.index(y, idx, y[2])})")  # any integer dtype; a huge uint wraps < 0
        self.emit(f"if {v} < 0 or {v} >= {k}: raise ValueError('y: class labels must lie in [0, {k}), got', {v})")
        return v

    def r_label_sub(self, op):
        """out = s − z[y] for one example (z a vector, y a 0-d label), or out_i = s_i − z[i, y_i] per row."""
        s, z, y = (self.mem.loc(n) for n in op.ins)
        o = self.mem.loc(op.out)
        shape, k = z[2], z[2][-1]
        if len(shape) == 1 and y[2] == ():
            v = self._label(y, [], k)
            self.emit(f"{self.index(o, [], ())} = {self.index(s, [], ())} - {self.index(z, [v], shape)}")
        elif len(shape) == 2 and y[2] == shape[:1]:
            i = self.loop(shape[:1])
            v = self._label(y, i, k)
            self.emit(f"{self.index(o, i, o[2])} = {self.index(s, i, s[2])} - {self.index(z, i + [v], shape)}")
            self.close(i)
        else:
            raise Unsupported(f"integer labels of shape {y[2]} for logits of shape {shape}")

    def r_label_sub_at(self, op):
        """n[y] −= g (one example) or n[i, y_i] −= g_i (each row): the − e_y of ∂L/∂z = g ⊙ (p − e_y).
        The forward of the same call has read and checked these labels."""
        n, g, y = op.ins
        nl, yl = self.mem.loc(n), self.mem.loc(y)
        gl, gs = self.operand(g)
        shape = nl[2]
        i = [] if len(shape) == 1 else self.loop(shape[:1])
        v = self.var("y")
        self.emit(f"{v} = np.int64({self.index(yl, i, yl[2])})")
        gv = gs if gl is None else self.index(gl, i, gl[2])
        self.emit(f"{self.index(nl, i + [v], shape)} -= {gv}")
        self.close(i)
