"""The native backend: the captured step as one numba kernel, with the loop over examples inside it.

``compile(step_fn, backend="native")`` captures the step exactly as the NumPy replay does
(:mod:`.capture`), through the same rules (:mod:`.rules`), into the same statements (:mod:`.codegen`):
each :class:`~.codegen.Op` there is a small instruction (``add``, ``mul``, ``tanh``, ``matmul``,
``add_reduce``, ``lse_flat``, ...) that the NumPy replay renders as one NumPy call and this module
renders as loops.  The optimiser's :class:`~tinygrad_mlp.nn.optim.Update` description is lowered by the
same :func:`~.codegen.lower_update`.  So there is one engine and two renderings of it, not a third.

Where each buffer lives and how a statement becomes loops: :mod:`.native_loops`.  This module assembles
the kernel (its two entry points, the optimiser's update per element) and runs it.

Entry points: ``step(x, y)`` per call, ``step.epoch(X, Y, order)`` for the loop over ``order`` inside
the kernel.  Sums may be reassociated (so that LLVM vectorises them; NumPy's pairwise sums and BLAS
round differently again) and tanh/exp are :mod:`.native_math`'s (within 3 ulp of NumPy's), so the
weights agree with eager training to rounding, not bit for bit.  The two entries run the same loops and
agree with each other bit for bit.

What makes it fast (Question 3, 64-50-10, one example a step; ``python benchmarks/scale.py``):

* the loop over the examples is inside the kernel: one call an epoch;
* tanh and exp vectorise (:mod:`.native_math`), where numba's own call the C library per element;
* ∂L/∂W^[l] = δ^[l] h^[l−1]ᵀ is never written in full and read back: the update forms each element
  where it uses it (:func:`.native_loops._deferrable`), and stores it for ``.grad`` only where
  someone can read it (every single call, the last example of an epoch: the ``keep`` argument);
* an element that a loop nest reads but does not index by its innermost variable is loaded once
  before that loop (:meth:`.native_loops.Renderer.nest`): every buffer lives in one arena, so LLVM
  could not otherwise prove the loop's stores leave it alone, and would not vectorise;
* Wᵀ δ sweeps the contiguous columns of W (an axpy per δ_k) rather than striding down them;
* the per-call entry is generated straight-line Python (:meth:`Kernel.caller`) and the input checks
  (shape, finite) run in the kernel.

Needs numba (``pip install 'tinygrad_mlp[jit]'``).  A step the kernel cannot express (a primitive
whose rule has no native form here, parameters that do not tile one buffer, an optimiser that only has
an ``update()`` method) falls back to the NumPy replay with one warning.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import operator
import os
import sys
import tempfile
import time
import warnings

import numpy as np

from ..autograd.tensor import Tensor
from .compiled import _arrays
from .codegen import MISS as _MISS, Block, Op, Raw, dry_scalars, one_per_line, runs_rule, tiled
from .native_loops import Memory, Renderer, Unsupported, _deferrable

__all__ = ["NativeStep", "Unsupported", "numba_available", "cache_dir"]

INSTALL = "pip install 'tinygrad_mlp[jit]'  (or: pip install numba)"

# numba's cache is keyed on the kernel's own file: name that file after native_math's source too, so that
# a change there never runs a stale kernel
with open(os.path.join(os.path.dirname(__file__), "native_math.py"), "rb") as _f:
    _MATH_HASH = hashlib.sha256(_f.read()).hexdigest()[:16]


def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def cache_dir() -> str:
    """Where generated kernels and numba's cache live: $TINYGRAD_MLP_CACHE, else ~/.cache/tinygrad_mlp/native,
    else a temporary directory (the first writable one)."""
    for d in (os.environ.get("TINYGRAD_MLP_CACHE"),
              os.path.join(os.path.expanduser("~"), ".cache", "tinygrad_mlp", "native"),
              os.path.join(tempfile.gettempdir(), "tinygrad_mlp_native")):
        if not d:
            continue
        try:
            os.makedirs(d, exist_ok=True)
            probe = os.path.join(d, f".w{os.getpid()}")
            with open(probe, "w"):
                pass
            os.remove(probe)
            return d
        except OSError:
            continue
    raise Unsupported("no writable directory for the kernel cache (set TINYGRAD_MLP_CACHE)")


class _Collect:
    """A builder stand-in for :func:`lower_update`: collects the Ops of an optimiser's update."""

    def __init__(self, g):
        self.g = g
        self.lines = []
        self.n = 0

    def op(self, fn, ins, out, **kw):
        self.lines.append(Op(fn, ins, out, kw.items()))

    def raw(self, text, native=None, kind=None):
        self.lines.append(Raw(text))

    def local(self, prefix):
        self.n += 1
        return f"{prefix}n{self.n}"

    def buf(self, shape, dtype, prefix="d"):
        return self.g.name(np.empty(shape, dtype), prefix)


def _opt_slots(code):
    """The optimiser attributes a scalars block reads and writes (``opt.lr``, ``opt.t += 1``)."""
    reads, writes = [], []
    for node in ast.walk(ast.parse(one_per_line(code))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "opt":
            if node.attr not in reads:
                reads.append(node.attr)
            if isinstance(node.ctx, ast.Store) and node.attr not in writes:
                writes.append(node.attr)
    return reads, writes


def _scalars_native(code, slots):
    class T(ast.NodeTransformer):
        def visit_Attribute(self, node):
            self.generic_visit(node)
            if isinstance(node.value, ast.Name) and node.value.id == "opt":
                return ast.copy_location(ast.Subscript(ast.Name("S", ast.Load()),
                                                       ast.Constant(slots.index(node.attr)), node.ctx), node)
            return node
    return [ast.unparse(T().visit(st)) for st in ast.parse(one_per_line(code)).body]


# --------------------------------------------------------------------------- the kernel
class Kernel:
    """One captured program and one update description, as a compiled numba kernel."""

    def __init__(self, prog, rule, check_finite=True):
        self._caller = None
        b = prog.builder
        g = b.g
        blocks = [s for s in g.lines if isinstance(s, Block) and s.update is not None]
        if len(blocks) != 1 or len(b.tr.steps) != 1:
            raise Unsupported("a step with exactly one optimiser step")
        opt, items, flat = blocks[0].update
        F = tiled([p.data for _, p, _ in items]) if len(items) == len(opt.params) else None
        if F is None:
            raise Unsupported("parameters that do not tile one flat buffer (an MLP's do)")
        self.opt, self.rule, self.items = opt, rule, items
        dtype = F.dtype
        mem = Memory(g.ns, prog.inputs, F, dtype)
        self.mem = mem
        # ---- the update, lowered from its description into Ops over F, G and the state buffers
        reads, writes = _opt_slots(rule.scalars)
        self.slots = reads + (["_first"] if rule.init else [])
        self.reads = [(k, a) for k, a in enumerate(self.slots) if a != "_first"]
        self.writes = [(self.slots.index(a), a, type(getattr(opt, a))) for a in writes]
        samples = dict(dry_scalars(opt, rule))
        one = np.ones(1, dtype)
        samples.update(p=one, g=one)
        self.state = []
        arrays = {}
        for attr, short in rule.state:
            arrays[short] = g.name(np.zeros_like(F), "V")
            samples[short] = one
            self.state.append((attr, arrays[short]))
        weak = {k for k, v in samples.items() if type(v) is float}

        def cast(nm):  # NumPy treats a Python float as the array's dtype (NEP 50); numba would not
            return f"np.{dtype.name}({nm})" if dtype != np.float64 and nm in weak else nm
        r = Renderer(mem, cast)
        ops, before = [], 0
        for st in g.lines:
            if isinstance(st, Op) or (isinstance(st, Raw) and st.native is not None):
                ops.append(st if isinstance(st, Op) else st.native)
            elif isinstance(st, Block) and st.update is not None:
                before = len(ops)
            elif not (isinstance(st, Raw) and st.kind == "epilogue"):
                raise Unsupported(f"the statement {str(st)[:60]!r} has no native form")
        locs = []
        for (_, p, gname), a, e in zip(items, *_starts(items)):
            lp = {"p": mem.locate(p.data), "g": mem.loc(gname)}
            lp.update((short, mem.locate(g.ns[nm][a:e].reshape(p.data.shape)))
                      for (attr, short), (_, nm) in zip(rule.state, self.state))
            locs.append(lp)
        update_writes = [l[k] for l in locs for k in l if k != "g"]
        deferred = _deferrable(mem, ops, before, items, update_writes)
        skip = {id(d) for d in deferred.values()}
        self.deferred = sorted(deferred)

        def loop(codes, keep):
            """The description's statements, element by element: one loop nest per parameter; a deferred
            gradient is formed here, in a local, and stored for ``.grad`` only if ``keep``."""
            for (_, p, gname), lp in zip(items, locs):
                r.flush()
                shape, d = p.data.shape, deferred.get(gname)

                def body(idx, hoist, lp=lp, shape=shape, d=d):
                    elem = {nm: r.index(l, idx, shape) for nm, l in lp.items()}
                    lines = []
                    if d is not None:  # its reads are never written in this loop (_deferrable)
                        g = r.var("g")
                        lines.append(f"{g} = {r.expr(d, idx, shape, hoist)}")
                        if keep:
                            lines.append(f"{elem['g']} = {g}")
                        elem["g"] = g
                    for code in codes:
                        lines += _per_element(code, elem.get, cast)
                    return lines
                r.nest(shape, body)
            r.flush()

        def update(keep):
            if rule.init:
                first = f"S[{self.slots.index('_first')}]"
                r.emit(f"if {first} != 0.0:")
                r.depth += 1
                r.emit(f"{first} = 0.0")
                loop((rule.init, rule.apply), keep)
                r.depth -= 1
                r.emit("else:")
                r.depth += 1
                loop((rule.advance, rule.apply), keep)
                r.depth -= 1
            else:
                loop((rule.advance, rule.apply), keep)

        for k in range(len(ops) + 1):
            if k == before:
                for line in _scalars_native(rule.scalars, self.slots):
                    r.emit(line)
                if deferred:
                    # two copies of the update: with the stores for .grad (a single call, the last step of
                    # an epoch) and without (every other step of an epoch, where nothing reads them)
                    for cond, keep in (("if keep:", True), ("else:", False)):
                        r.emit(cond)
                        r.depth += 1
                        update(keep)
                        r.depth -= 1
                else:
                    update(True)
            if k < len(ops) and id(ops[k]) not in skip:
                r.render(ops[k])
        r.flush()
        out = prog.first_result
        if isinstance(out, Tensor) and out.data.ndim == 0 and id(out.data) in b.var:
            r.emit(f"return {r.index(mem.loc(b.var[id(out.data)]), [], ())}")
            self.returns = "loss"
        elif out is None:
            r.emit("return 0.0")
            self.returns = None
        else:
            raise Unsupported("a step that returns something other than a scalar loss or None")
        self.arenas = mem.arenas()
        self.arena_names = sorted(self.arenas)
        self.S = np.zeros(len(self.slots) + 1)  # the optimiser's scalars, then the status (see _guards)
        self.status = len(self.slots)
        # the .grad of each parameter: the arena's gradient buffer (fixed)
        self.grads = [(p, mem.view(self.arenas, g.ns[gname])) for _, p, gname in items]
        self.state_views = [(attr, [mem.view(self.arenas, g.ns[nm][a:a_].reshape(p.data.shape))
                                    for (_, p, _), a, a_ in zip(items, *_starts(items))]) for attr, nm in self.state]
        self.params_flat = F
        ins, rest = mem.args[:len(prog.inputs)], mem.args[len(prog.inputs):] + self.arena_names + ["S"]
        # a 0-d input (a class label) comes as a 1-element slice of its vector: XS[i] would be a scalar
        xs = [f"XS{k}[i]" if prog.inputs[k].ndim else f"XS{k}[i:i + 1]" for k in range(len(ins))]
        src = ("import numpy as np\nfrom numba import njit\n\n"
               f"from tinygrad_mlp.compiler.native_math import exp as exp_, tanh as tanh_  # {_MATH_HASH}\n\n"
               "# sums may be reassociated (vectorised); no a·b + c is fused, so that the update of a single call and of\n# an epoch (two copies of one loop) round alike; NaN and inf keep their meaning\n"
               "FAST = {'reassoc'}\n\n\n"
               "# keep: store the gradients the update forms itself (the last step of an epoch, every single call)\n"
               f"@njit(cache=True, nogil=True, error_model=\"numpy\", fastmath=FAST)\n"
               f"def body({', '.join(ins + ['keep'] + rest)}):\n"
               + _guards(prog.inputs, ins, self.status, check_finite) + "\n".join(r.lines) + "\n\n\n"
               f"@njit(cache=True, nogil=True, error_model=\"numpy\", fastmath=FAST)\n"
               f"def epoch({', '.join([f'XS{k}' for k in range(len(ins))] + ['order'] + rest)}):\n"
               "    total = 0.0\n    last = order.shape[0] - 1\n    for n in range(order.shape[0]):\n"
               f"        i = order[n]\n        total += body({', '.join(xs + ['n == last'] + rest)})\n"
               "    return total\n")
        self.source = src
        t0 = time.perf_counter()
        self.module = _load(src)
        self.body, self.epoch_fn = self.module.body, self.module.epoch
        self.warm(prog)
        self.compile_seconds = time.perf_counter() - t0
        # numba's own count: both entry points loaded from its disk cache, or compiled now
        self.from_cache = all(sum(f.stats.cache_hits.values()) for f in (self.body, self.epoch_fn))

    @staticmethod
    def _ops(r, ops):
        for s in ops:
            if isinstance(s, Op):
                r.render(s)
        r.flush()

    def warm(self, prog):
        """Compile (or load from the disk cache) both entry points with the argument types they will get,
        on copies, so that nothing is updated."""
        xs = [np.zeros_like(x) for x in prog.inputs]
        ar = [self.arenas[k].copy() for k in self.arena_names]
        self.body(*xs, True, self.params_flat.copy(), *ar, self.S.copy())
        self.epoch_fn(*[x[None] for x in xs], np.zeros(0, np.int64), self.params_flat.copy(), *ar, self.S.copy())
        # from now on an argument of another type is a TypeError (the caller's slow path), never a new
        # compilation in the middle of training
        self.body.disable_compile()
        self.epoch_fn.disable_compile()

    def tail(self):
        return (self.params_flat, *[self.arenas[n] for n in self.arena_names], self.S)

    def caller(self, prog, miss, slow, error):
        """The per-call entry as generated straight-line Python: the guards (the optimiser's rule, each
        parameter's ``.data``), the optimiser's scalars in, the kernel, then ``.grad`` and the optimiser's
        state out.  Whatever it cannot run (a guard fails, another number of arguments, a type the kernel
        has no signature for, an input the kernel refused) goes to ``slow(*args)`` before anything changed;
        a ValueError the kernel raised (a label out of range) becomes ``error(e)``.  Under 1 µs of Python
        around the kernel, where a loop over lists took 3."""
        if self._caller is not None:
            return self._caller
        opt = self.opt
        env = {"opt": opt, "rule": self.rule, "body": self.body, "S": self.S, "MISS": miss, "sync_in": self.sync_in,
               "sync_out": self.sync_out, "np": np, "slow": slow, "error": error}
        names = [f"X{k}" for k in range(len(prog.inputs))]
        tail = []
        for k, a in enumerate(self.tail()):
            env[f"t{k}"] = a
            tail.append(f"t{k}")
        if getattr(type(opt).update_rule, "_reads_rule_of", False):
            rule_now = f"({type(opt).RULE_OF})"
        else:
            rule_now = "opt.update_rule()"
        # X=MISS and *more: any other number of arguments reaches slow(), which says what the step expects
        # (a missing one is MISS, which numba's dispatcher refuses with a TypeError)
        args = ", ".join(names + ["*more"])
        guards = ["more", f"{rule_now} is not rule"]
        guards += [f"p{j}.data is not d{j}" for j in range(len(prog.params))]
        for j, (p, d) in enumerate(zip(prog.params, prog.param_data)):
            env[f"p{j}"], env[f"d{j}"] = p, d
        lines = [f"def call({', '.join([n + '=MISS' for n in names] + ['*more'])}):",
                 f"    if {' or '.join(guards)}:",
                 f"        return slow({args})"]
        stateful = bool(self.state_views or self.writes)
        if stateful:
            lines.append("    sync_in()")
        else:
            lines += [f"    S[{k}] = opt.{attr}" for k, attr in self.reads]
        lines += ["    try:",
                  f"        loss = body({', '.join(names + ['True'] + tail)})",
                  "    except TypeError:  # numba's dispatcher: no signature for these types; nothing ran",
                  f"        return slow({args})",
                  "    except ValueError as e:  # raised by the kernel before it wrote anything",
                  "        raise error(e) from None",
                  f"    if loss != loss and S[{self.status}] != 0.0:",
                  f"        S[{self.status}] = 0.0",
                  f"        return slow({args})"]
        if stateful:
            lines.append("    sync_out()")
        else:
            for j, (p, gv) in enumerate(self.grads):
                env[f"q{j}"], env[f"g{j}"] = p, gv
                lines += [f"    if q{j}._grad is not g{j}:", f"        q{j}.grad = g{j}"]
        lines.append("    return loss" if self.returns else "    return None")
        self.caller_source = "\n".join(lines) + "\n"
        exec(compile(self.caller_source, "<native step>", "exec"), env)
        self._caller = env["call"]
        return self._caller

    # ---- state shared with the optimiser object
    def sync_in(self):
        """Read the optimiser's scalars and adopt its state (or notice a reset)."""
        opt, S = self.opt, self.S
        for k, attr in self.reads:
            S[k] = getattr(opt, attr)
        for attr, views in self.state_views:
            cur = getattr(opt, attr)
            if all(c is v for c, v in zip(cur, views)):
                continue
            if self.rule.init and all(c is None for c in cur):
                S[self.slots.index("_first")] = 1.0
                continue
            for (j, p, _), v in zip(self.items, views):
                v[...] = cur[j] if cur[j] is not None else 0.0
                cur[j] = v

    def sync_out(self):
        opt, S = self.opt, self.S
        for k, attr, kind in self.writes:
            setattr(opt, attr, kind(S[k]))
        for attr, views in self.state_views:
            cur = getattr(opt, attr)
            for (j, _, _), v in zip(self.items, views):
                if cur[j] is not v:
                    cur[j] = v
        for p, gv in self.grads:
            if p._grad is not gv:
                p.grad = gv


def _guards(inputs, names, status, check_finite):
    """The kernel's first lines: an input of another shape (or, with check_finite, one holding NaN or
    ±inf) sets S[status] and returns NaN before anything is written; the caller then takes the slow path,
    which recaptures or raises as the NumPy replay does.  Checked here, in a few vectorised
    instructions, rather than by attribute reads in Python on every call."""
    lines = []
    for x, buf in zip(names, inputs):
        dims = " or ".join(f"{x}.shape[{d}] != {n}" for d, n in enumerate(buf.shape))
        if dims:
            lines += [f"    if {dims}:", f"        S[{status}] = 1.0", "        return np.nan"]
    lines += [f"    {x} = {x}.reshape({x}.size)" for x, buf in zip(names, inputs) if buf.ndim != 1]  # indexed flat
    for x, buf in zip(names, inputs):
        if check_finite and buf.dtype.kind == "f":
            # x · 0 is 0 for a finite x and NaN for NaN or ±inf; the sum keeps a NaN
            lines += ["    c = 0.0", f"    for j in range({buf.size}):", f"        c += {x}[j] * 0.0",
                      "    if c != 0.0:", f"        S[{status}] = 2.0", "        return np.nan"]
    return "".join(l + "\n" for l in lines)


def _per_element(code, elem, cast):
    """Statements of an :class:`~tinygrad_mlp.nn.optim.Update` for one element: each array name becomes
    ``elem(name)`` (that element), ``a.copy()`` the element itself, a Python-float scalar its cast."""
    class T(ast.NodeTransformer):
        def visit_Call(self, node):
            self.generic_visit(node)
            if isinstance(node.func, ast.Attribute) and node.func.attr == "copy" and not node.args:
                return node.func.value
            return node

        def visit_Name(self, node):
            e = elem(node.id)
            if e is not None:
                return ast.copy_location(ast.parse(e, mode="eval").body, node)
            c = cast(node.id)
            if c != node.id and isinstance(node.ctx, ast.Load):
                return ast.copy_location(ast.parse(c, mode="eval").body, node)
            return node
    out = []
    for st in ast.parse(one_per_line(code)).body:
        st = T().visit(st)
        if isinstance(st, ast.AugAssign) and isinstance(st.target, ast.Subscript):
            st.target.ctx = ast.Store()
        elif isinstance(st, ast.Assign):
            for t in st.targets:
                t.ctx = ast.Store()
        out.append(ast.unparse(st))
    return out


def _starts(items):
    st = np.cumsum([0] + [p.data.size for _, p, _ in items])
    return st[:-1], st[1:]


def _load(src):
    d = cache_dir()
    key = hashlib.sha256(src.encode()).hexdigest()[:24]
    path = os.path.join(d, f"k_{key}.py")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(src)
        os.replace(tmp, path)
    name = f"tinygrad_mlp_native_k_{key}"
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return mod


# --------------------------------------------------------------------------- the step
def _kernel_error(e):
    """A kernel's ValueError in one line: numba raises it with its parts as separate arguments (a message
    built with str() inside the kernel made its first compilation 1.3 s slower)."""
    return ValueError(" ".join(str(a) for a in e.args)) if len(e.args) > 1 else e


def _numba_error():
    from numba.core.errors import NumbaError  # imported when needed: numba is optional
    return NumbaError


class NativeStep:
    """``compile(fn, backend="native")``: a CompiledStep whose replay is a numba kernel.

    The first call captures (an eager step, as always); the kernel is then built (or loaded from the
    disk cache): ``compile_seconds`` says how long that took, apart from training, and ``from_cache``
    whether numba found it on disk (a kernel already built in this process costs nothing).  Later calls run
    the kernel; ``epoch(X, Y, order)`` runs one kernel call for all the examples in ``order``.
    """

    def __init__(self, compiled):
        self.compiled = compiled  # the CompiledStep holding the capture (and the NumPy replay)
        self.kernels = {}
        self.prog = None
        self.fallback_reason = None
        self.compile_seconds = 0.0
        self.from_cache = None  # the last kernel built: loaded from numba's disk cache (True) or compiled
        self._back = self._slow  # one bound method, so that _refused can tell it by identity
        self._entry = self._back

    def _kernel(self):
        prog = self.prog
        rule = prog.builder.tr.steps[0][0].update_rule() if prog.builder.tr.steps else None
        k = self.kernels.get(rule)
        if k is None and self.fallback_reason is None:
            try:
                if rule is None or not runs_rule(prog.builder.tr.steps[0][0]):
                    raise Unsupported("an optimiser without an update description (it overrides update())")
                t0 = time.perf_counter()
                k = self.kernels[rule] = Kernel(prog, rule, self.compiled.check_finite)
                self.compile_seconds += time.perf_counter() - t0
                self.from_cache = k.from_cache
            except (Unsupported, _numba_error()) as e:  # numba refusing the generated source: a bug, not a crash
                self.fallback_reason = str(e) if isinstance(e, Unsupported) else \
                    f"numba could not compile the kernel: {type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"
                warnings.warn(f"compile(backend='native'): this step cannot be lowered to a native kernel "
                              f"({self.fallback_reason}); it runs as the NumPy replay instead", RuntimeWarning,
                              stacklevel=3)
        return k

    # step(x, y) reads self._entry in C (attrgetter) and calls it: no Python frame stands between the
    # user's call and the generated caller (0.13 µs a step less than a Python __call__, measured).
    # _entry is the slow path until a kernel's caller is ready, and again whenever that caller hands a
    # call back.
    __call__ = property(operator.attrgetter("_entry"))

    def _slow(self, *args):
        return self._call(tuple(a for a in args if a is not _MISS))

    def _call(self, args):
        c = self.compiled
        self._entry = self._back  # until a kernel's caller runs this call (see _refused)
        args = _arrays(args)  # a NumPy integer label is an input (see compiled.py)
        if self.prog is None:
            out = c(*args)  # the capture: an eager step
            self.prog = list(c.programs.values())[-1]
            self._kernel()
            return out
        k = self._kernel() if self.fallback_reason is None else None
        if k is None or len(args) != len(self.prog.inputs) or not self.prog.valid():
            return c(*args)
        for a, buf in zip(args, self.prog.inputs):
            if type(a) is not np.ndarray or a.shape != buf.shape or a.dtype != buf.dtype or not a.flags.c_contiguous:
                return c(*args)  # a Tensor, a view, another shape: the compiled step sorts it out
        call = k.caller(self.prog, _MISS, self._refused, _kernel_error)
        out = call(*args)
        if out is _MISS:  # NaN or ±inf among the inputs: the NumPy replay's check names the argument
            return c(*args)
        self._entry = call
        return out

    def _refused(self, *args):
        """The caller's way back.  From the user's call (the caller is the entry): take the slow path.  From
        _call's own try of the caller (the slow path is the entry): say so, and _call runs the replay."""
        if self._entry is self._back:
            return _MISS
        return self._slow(*args)

    def epoch(self, X, Y, order):
        """One call of the kernel for the steps ``fn(X[i], Y[i])``, i in ``order``; returns Σ loss."""
        order = np.ascontiguousarray(order, dtype=np.int64)
        X, Y = np.ascontiguousarray(X), np.ascontiguousarray(Y)
        if order.ndim != 1 or (order.size and (order.min() < 0 or order.max() >= len(X))):
            raise ValueError(f"order: expected a 1-d array of indices into X (0..{len(X) - 1})")
        if len(X) != len(Y):
            raise ValueError(f"X, Y: expected the same number of rows, got {len(X)} and {len(Y)}")
        total, start = 0.0, 0
        if self.prog is None:  # the first example captures
            # [i, ...]: a row of a label vector stays a (0-d) array, an input, not a Python value
            total += float(self(X[order[0], ...], Y[order[0], ...]) or 0.0)
            start = 1
        k = self._kernel() if self.fallback_reason is None else None
        c = self.compiled
        if k is None or not self.prog.valid() or len(self.prog.inputs) != 2 \
                or X.shape[1:] != self.prog.inputs[0].shape or Y.shape[1:] != self.prog.inputs[1].shape \
                or X.dtype != self.prog.inputs[0].dtype or Y.dtype != self.prog.inputs[1].dtype:
            for i in order[start:].tolist():
                total += float(c(X[i, ...], Y[i, ...]) or 0.0)
            return total
        if c.check_finite:
            c._check_finite([X, Y])
        k.sync_in()
        try:  # an out-of-range label raises inside the kernel: the steps before it stand, as in an eager loop
            total += k.epoch_fn(X, Y, order[start:], *k.tail())
        except ValueError as e:
            raise _kernel_error(e) from None
        finally:
            k.sync_out()
        return total

    @property
    def source(self):
        k = next(iter(self.kernels.values()), None)
        return k.source if k is not None else self.compiled.source
