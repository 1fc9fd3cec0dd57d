"""Capture: run a step function once, eagerly, while observing its thread's tape.

The engine tells the thread's observer (``tape.state().capture``) about every applied op, the
backward, a ``.grad`` cleared, an optimiser's step and a conversion to a Python value (see
:mod:`tinygrad_mlp.autograd.tape`).  :class:`Trace` is that observer: it only writes down what it is
told.  Nothing is patched, so other threads, and this thread once the capture ends, run as before.
"""
from __future__ import annotations

import numpy as np

from ..autograd import tensor as T
from ..autograd.tape import state
from ..autograd.tensor import Tensor

__all__ = ["CaptureError", "Trace", "capture"]


class CaptureError(RuntimeError):
    """The step function did something a replay could not repeat faithfully."""


class Probe(np.ndarray):
    """An input array during capture: turning it into a Python value is data-dependent control flow."""

    def _refuse(self, *a, **k):
        raise CaptureError("compiled step: an input array was converted to a Python value during capture "
                           "(bool/float/int/item/tolist); the replay would freeze that value. Keep the "
                           "computation in Tensor ops, or run this step eagerly")

    __bool__ = __float__ = __int__ = __index__ = item = tolist = _refuse

    def __getitem__(self, index):
        # x[0] would be a NumPy scalar, free to enter an `if`: keep it a probe (0-d) instead
        r = super().__getitem__(index)
        return r if isinstance(r, np.ndarray) else np.asarray(r).view(Probe)


class Trace:
    """What one call of the step function did, as its thread's tape reported it."""

    def __init__(self):
        self.calls = []      # (prim, inputs, args, out, ctx) per applied op
        self.ops = []        # (call index, parents, out Tensor, recorded?)
        self.backward_at = None  # (root Tensor, {id(param): its .grad was cleared before the backward})
        self.steps = []      # (optimizer, [(param, its .grad when step() began)])
        self.after_backward_grads = {}  # id(param) -> .grad right after the backward
        self.final_leafgrad = {}        # id(param) -> .grad when fn returned
        self.zeroed = set()  # ids of tensors whose .grad was set to None inside fn
        self.params = {}     # id -> leaf Tensor requiring grad
        self.before = {}     # id -> copy of its data when first seen

    # ---- the observer protocol of tinygrad_mlp.autograd.tape
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


def capture(fn, args, kwargs):
    """Run ``fn(*args)`` once under a :class:`Trace`.

    Array inputs are copied into buffers the step owns (the replay writes the next inputs there).
    Returns (trace, input buffers, their probes, fn's result).
    """
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
            pr = buf.view(Probe)
            inputs.append(buf)
            probes.append(pr)
            call_args.append(pr)
        else:
            call_args.append(a)
    tr = Trace()
    st = state()
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
