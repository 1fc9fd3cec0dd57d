"""The second backward walk: for ``backward(create_graph=True)`` and :func:`autograd.grad`.

:func:`tinygrad_mlp.autograd.tape.run_backward` is the hot first-order walk and stays as it is.
This one walks the same tape, in the same newest-first order, with two differences:

* with ``create_graph`` the gradients are Tensors and each record's ``prim.vjp_t`` (its vjp in
  Tensor ops) is called instead of ``prim.vjp``: every op of the backward pass is then recorded
  on the tape, so the gradients it returns can be differentiated again (Hessians, gradient
  penalties, double-vjp forward mode);
* with ``targets`` the gradients reaching those tensors (leaves or not) are returned instead of
  accumulated into ``.grad`` (``torch.autograd.grad``'s contract).

Pending gradients live in a dict local to the walk, not in the tensors' ``_pg`` slots, so a
failed walk leaves nothing behind.  Ops the create_graph walk records are appended after the
root's entry; sweeping is held off until the walk ends, so the entries it reads never move.
"""
from __future__ import annotations

import numpy as np

from .tape import FREED, GraphFreedError, state, sweep

__all__ = ["walk"]


def walk(roots, seeds, *, create_graph: bool, retain_graph: bool, targets=None):
    """Backpropagate ``seeds`` (∂L/∂root for each root) through this thread's tape.

    ``seeds`` are ndarrays, or Tensors when ``create_graph``.  With ``targets`` (a list of
    Tensors) returns the gradient reaching each one (None where none does) and leaves every
    ``.grad`` alone; without, accumulates into ``.grad`` of leaves (and of non-leaves that
    ``retain_grad()``) as ``backward`` does, and returns None.
    """
    st = state()
    tape = st.tape
    want = None if targets is None else {id(t): k for k, t in enumerate(targets)}
    found = [None] * len(targets) if targets is not None else None

    def deliver(t, g):
        """A gradient for leaf ``t``: into the results or into t.grad."""
        if want is None:
            if t._grad is None:  # first-order vjps may hand one array to several leaves (a + b)
                t._grad = g if create_graph else g.copy()
            else:
                t._grad = t._grad + g
        else:
            k = want.get(id(t))
            if k is not None:
                found[k] = g if found[k] is None else found[k] + g

    pend = {}  # id(non-leaf) -> its summed incoming gradient so far
    ids = set()
    for r, g in zip(roots, seeds):
        if r._rec is FREED:
            raise GraphFreedError(
                "backward(): the graph behind this tensor was freed by an earlier backward; "
                "pass retain_graph=True to the first backward to go through it twice")
        if r._rec is None:
            deliver(r, g)
        else:
            pend[id(r)] = g if id(r) not in pend else pend[id(r)] + g
            ids.add(id(r))
    if not pend:
        return found
    start = len(tape) - 1
    while start >= 0 and (tape[start]() is None or id(tape[start]()) not in ids):
        start -= 1
    kept = []      # refs in the walked stretch that this graph did not reach
    consumed = []  # records reached: they keep their parents alive until the walk ends
    before, sweep_at = st.grad_enabled, st.sweep_at
    st.grad_enabled = before or create_graph  # create_graph records the backward pass, as asked
    # Ops recorded by the walk are appended after ``start``; no sweep may move the entries below it.
    st.sweep_at = float("inf")
    j = start
    try:
        while pend and j >= 0:
            ref = tape[j]
            j -= 1
            out = ref()
            if out is None:
                continue
            g = pend.pop(id(out), None)
            if g is None:
                kept.append(ref)
                continue
            rec = out._rec
            if want is not None:
                k = want.get(id(out))
                if k is not None:
                    found[k] = g
            elif out._retain:
                out._grad = (g if create_graph else g.copy()) if out._grad is None else out._grad + g
            grads = rec.prim.vjp_t(g, out, rec) if create_graph else rec.prim.vjp(g, rec.ctx)
            for p, gp in zip(rec.parents, grads):
                if p is None or gp is None or not p.requires_grad:
                    continue
                if p._rec is None:
                    deliver(p, gp)
                elif p._rec is FREED:
                    raise GraphFreedError(
                        "backward(): part of this graph was freed by an earlier backward; "
                        "pass retain_graph=True to the first backward to go through it twice")
                else:
                    prev = pend.get(id(p))
                    pend[id(p)] = gp if prev is None else prev + gp
            if retain_graph:
                kept.append(ref)
            else:
                consumed.append(rec)
                out._rec = FREED
    finally:
        st.grad_enabled = before
        st.sweep_at = sweep_at
    if pend:
        raise GraphFreedError(
            "backward(): part of this graph is not on this thread's tape (freed by an earlier backward, "
            "or recorded in another thread)")
    if not retain_graph:
        kept.reverse()
        tape[j + 1:start + 1] = kept
    if len(tape) > st.sweep_at:
        sweep(st)
    if found is not None and not create_graph:
        # first-order vjps may hand back views of one another (add, sum): the caller gets its own arrays
        found = [None if g is None else np.array(g) for g in found]
    return found
