"""The tape: what one op leaves behind, the engine's per-thread state, and the backward walk.

Each op applied to a tensor that requires grad (:func:`tinygrad_mlp.autograd.tensor.apply`) gives
its output tensor a :class:`Record` — the primitive, the parent tensors, what the vjp needs, the
static arguments — and appends a weak reference to that output to the thread's tape.  Appending in
execution order is already a topological order of the graph, so :func:`run_backward` walks the tape
from the root's entry backwards until no gradient is pending, calls each reached record's vjp once,
and accumulates ∂L/∂x into ``x.grad``: no graph search, any depth.

Who owns what
-------------
* A tensor owns its record (``t._rec``); the record owns its parents and saved arrays.  The tape
  only holds the outputs *weakly*.  So a graph nobody can reach any more dies at once, arrays and
  all, as soon as its last tensor is dropped; the tape keeps a dead weak reference, swept off later.
* After a backward (without ``retain_graph``) each reached output's record is replaced by
  :data:`FREED`, which releases its saved arrays, and its entry leaves the tape.
* Every piece of engine state — the tape, grad mode, a capture in progress — lives in an
  :class:`EngineState` of the *current thread*, as PyTorch's grad mode is thread-local: two
  threads training two models never see each other's records, and a ``no_grad()`` in one thread
  changes nothing in another.

Observers
---------
A capture (``tinygrad_mlp.compiler``) watches its own thread by setting ``state().capture`` to an
object with these methods; nothing is patched, and other threads run untouched:

* ``op(prim, parents, arrays, args, out, ctx, tensor)`` after every applied op, recorded or not;
* ``backward(root, grad, retain_graph)`` before a backward walk, ``after_backward(root)`` after it;
  ``backward(root, grad, retain_graph, create_graph=True)`` before a second-order walk
  (``backward(create_graph=True)`` or ``autograd.grad``), which a capture refuses;
* ``grad_cleared(tensor)`` when ``tensor.grad = None`` (``zero_grad``);
* ``optimizer_step(optimizer)`` when an optimiser's ``step()`` starts;
* ``conversion(tensor, what)`` when a tensor is turned into a Python value (``item``, ``float``,
  ``bool``, ...): a capture raises there, since a replay would freeze the value.
"""
from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Record", "EngineState", "state", "FREED", "GraphFreedError", "run_backward", "sweep", "tape_size"]


class GraphFreedError(RuntimeError):
    """A backward pass needed records that an earlier backward already freed."""


class Record(NamedTuple):
    """What one recorded op leaves on its output tensor, for the backward walk and for capture."""

    prim: Any      #: the primitive class (its ``vjp`` maps ∂L/∂out to ∂L/∂inputs)
    parents: tuple  #: the input tensors, in order; None for a constant operand
    ctx: Any       #: what ``prim.vjp`` needs, saved by ``prim.forward``
    args: tuple    #: the static arguments (axis, exponent, index) the forward was called with


# Records are built on the per-op path: tuple.__new__ skips NamedTuple's Python-level constructor.
new_record = tuple.__new__

FREED = Record(None, (), None, ())  # a tensor whose record a backward has consumed
SWEEP_MIN = 10_000  # tape length at which dead entries are first swept off


class EngineState:
    """One thread's engine state."""

    __slots__ = ("tape", "grad_enabled", "capture", "sweep_at")

    def __init__(self) -> None:
        self.tape: list = []       # weak references to recorded outputs, oldest first
        self.grad_enabled = True   # False inside no_grad()
        self.capture = None        # the observer of this thread's ops, or None
        self.sweep_at = SWEEP_MIN


class _Local(threading.local):
    def __init__(self) -> None:  # runs once in each thread that touches it
        self.state = EngineState()


_local = _Local()


def state() -> EngineState:
    """The current thread's engine state."""
    return _local.state


def tape_size() -> int:
    """How many entries the current thread's tape holds (tests count them to prove they are freed)."""
    return len(_local.state.tape)


def sweep(st: EngineState | None = None) -> None:
    """Drop the tape's entries whose output died (their records and arrays are already gone)."""
    st = st or _local.state
    st.tape[:] = [r for r in st.tape if r() is not None]
    st.sweep_at = max(SWEEP_MIN, 2 * len(st.tape))


def run_backward(root, g: np.ndarray, retain_graph: bool) -> None:
    """Accumulate ∂root/∂x · g into every leaf x that requires grad, walking this thread's tape."""
    tape = _local.state.tape
    i = len(tape) - 1
    while i >= 0 and tape[i]() is not root:  # entries newer than the root belong to other graphs
        i -= 1
    if i < 0:
        raise GraphFreedError("backward(): this tensor's record is not on this thread's tape (it was "
                              "freed, or recorded in another thread: run backward where the graph was built)")
    # A non-leaf's incoming gradient waits in its _pg slot until its own entry is reached;
    # ``pending`` counts those slots, so the walk stops as soon as nothing older can be reached.
    root._pg = g
    pending = 1
    kept = []  # entries in the walked stretch that this graph did not reach
    done = []  # consumed records: they keep their parents, still waiting for gradients, alive to the end
    j = i
    try:
        while pending and j >= 0:
            ref = tape[j]
            j -= 1
            out = ref()
            if out is None:
                continue
            g = out._pg
            if g is None:
                kept.append(ref)
                continue
            out._pg = None
            pending -= 1
            rec = out._rec
            if out._retain:  # a copy of its own: g itself may flow on to a leaf below
                out._grad = g.copy() if out._grad is None else out._grad + g
            g_free = True  # nobody holds g now; a vjp that passes it through (add, sub) gives it away once
            for p, gp in zip(rec.parents, rec.prim.vjp(g, rec.ctx)):
                if p is None or not p.requires_grad:
                    continue
                if gp is g:
                    if g_free:
                        g_free = False
                    else:  # a + a, or W x + b with both parents reached: each its own memory
                        gp = g.copy()
                if p._rec is None:  # a leaf keeps its gradient
                    if p._grad is None:
                        # sum's vjp hands back a read-only broadcast view; .grad must be writable.
                        p._grad = gp if gp.flags.writeable else gp.copy()
                    else:
                        p._grad = p._grad + gp
                else:
                    prev = p._pg
                    if prev is None:
                        p._pg = gp
                        pending += 1
                    else:
                        p._pg = prev + gp
            if retain_graph:
                kept.append(ref)
            else:
                out._rec = FREED  # the record's parents and saved arrays go when ``done`` does
                done.append(rec)
    except BaseException:
        _clear_pending(tape, j + 1, i)
        raise
    if pending:
        # Only a tensor whose record an earlier backward freed can be left waiting.
        _clear_pending(tape, 0, len(tape) - 1)
        raise GraphFreedError(
            "backward(): part of this graph was freed by an earlier backward; "
            "pass retain_graph=True to the first backward to go through it twice")
    if not retain_graph:
        kept.reverse()
        tape[j + 1:i + 1] = kept


def _clear_pending(tape: list, lo: int, hi: int) -> None:
    """After a failed walk, drop the gradients left waiting on the outputs lo..hi and their parents."""
    for ref in tape[max(lo, 0):hi + 1]:
        out = ref()
        if out is None:
            continue
        out._pg = None
        for p in out._rec.parents:
            if p is not None:
                p._pg = None
