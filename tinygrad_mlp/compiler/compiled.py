"""Compile one training step: capture it once, replay it afterwards without the tape.

Per-example SGD (the practical's Question 3) spends its time on Python overhead per op, not on
arithmetic, and its graph is the same at every step.  :func:`compile` runs a step function once
eagerly while watching it (every primitive's forward, the backward, the optimiser step), and
turns what it saw into one straight-line Python function over preallocated buffers:

* forward: z^[l] = W^[l] h^[l−1] + b^[l] as ``matmul(W, h, out=z); add(z, b, out=z)`` (linear + bias
  in one buffer), h^[l] = g(z^[l]) in place, the loss through the same NumPy calls as the primitives;
* backward: the primitives' vjps with ``out=`` (δ^[L] = Σy·t/r − y, t = exp(z − m) and r = Σt kept from the forward, for softmax + cross-entropy
  in one buffer; ∂L/∂W^[l] = δ^[l] h^[l−1]ᵀ into a fixed rank-1 buffer), accumulated in the tape's order;
* update: the optimiser's own description of its update (:class:`~tinygrad_mlp.nn.optim.Update`: SGD,
  momentum, Nesterov, Adam), lowered to in-place NumPy calls; an optimiser that only overrides
  ``update()`` gets its ``.grad`` set and is called.  An MLP keeps all its parameters in one contiguous
  buffer, so the replay moves the gradient buffers into one matching flat G and updates the whole model
  with a few NumPy calls (elementwise: the same numbers as one update per parameter).

The pieces: :mod:`.capture` observes the step through its thread's tape, :mod:`.rules` holds each
primitive's replay rule (one table keyed by primitive class), :mod:`.codegen` turns the two into the
replay's source, and :mod:`.native` lowers the same capture and rules to a numba kernel.

Every replayed value goes through the same floating-point operations, in the same order, as the eager
tape's, so a replay is bit-identical to the eager step (the tests check it), and a replayed step creates
no Tensor and no tape record.  Two rewrites keep the bits: t / r + (−1)·y becomes t / r − y (IEEE
a + (−b) is a − b; done on the generated statements, which are kept as structure), and 1 − h² uses a
0-d array of the buffer's dtype for the 1.

``compile(fn, fused=True)`` trades bit-identity for speed where plain SGD (no momentum) updates a
per-example layer: W ← W − η δ hᵀ becomes one BLAS rank-1 call (``ger``, from scipy, which scikit-learn
brings), so δ hᵀ is never formed, and every other parameter one ``axpy``.  The weights then equal eager's
to rounding (about 1e-16 relative per step; tested to 1e-12), the same from run to run.

Traps (each one has a test)
---------------------------
* **Values computed outside Tensor ops are frozen at capture.**  A Python number passed as an argument
  is a guard (a new value re-captures, up to ``max_captures`` variants; a NumPy integer such as
  ``y[i]`` is not: it is an input, a 0-d array, like a row of an integer label vector), but NumPy work on the raw
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

import inspect
import numbers
from typing import Callable

import numpy as np

from ..autograd.tensor import Tensor
from .capture import CaptureError
from .codegen import MISS as _MISS, Program

__all__ = ["compile", "CompiledStep", "CaptureError"]

_Program = Program  # the name earlier code used


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
        args = _arrays(args)
        key = _key(args)
        prog = self.programs.get(key)
        if prog is not None and prog.valid():
            # The guards also want plain, C-contiguous arrays (a replay may read an input in place):
            # a strided view or an ndarray subclass of the same shape and dtype comes in as a copy.
            # (a 0-d one through asarray: ascontiguousarray would make it 1-d)
            out = prog.replay(*((np.ascontiguousarray(a) if a.ndim else np.asarray(a)) if isinstance(a, np.ndarray)
                                else a for a in args))
            if out is not _MISS:
                self._replay = prog.replay
                return out
        if self.captures >= self.max_captures:
            raise CaptureError(
                f"compiled step: {self.captures} captures already (max_captures={self.max_captures}); the "
                f"arguments keep changing shape, dtype or Python value ({key!r:.200}). Pass changing numbers "
                "as arrays, or run this step eagerly")
        self.captures += 1
        prog = Program(self.fn, args, {}, self.fused)
        self.programs[key] = prog
        self._replay = prog.replay
        out = prog.first_result
        return _first(out)

    @property
    def source(self) -> str:
        """The generated replay code of the most recent capture (for reading, not for running)."""
        return list(self.programs.values())[-1].source if self.programs else ""


def _arrays(args):
    """The call's arguments as the capture keys them.  A NumPy integer (``y[i]`` of a label vector) is data,
    a 0-d array read at every call; a Python number is a value the capture is guarded by."""
    return tuple(np.asarray(a) if isinstance(a, np.integer) or not isinstance(
        a, (np.ndarray, Tensor, bool, numbers.Number, str, type(None))) else a for a in args)


def _first(out):
    """The capture call's result, in the replay's form (scalar loss -> float)."""
    if isinstance(out, Tensor):
        return float(out.data) if out.data.ndim == 0 else out.data
    if isinstance(out, (tuple, list)):
        return tuple(_first(o) for o in out)
    return out


def compile(fn: Callable, max_captures: int = 8, check_finite: bool = True, fused: bool = False,
            backend: str = "numpy"):
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

    backend : {"numpy", "native"}
        "numpy" (default): the replay is generated NumPy code.  "native": the same capture, lowered to
        one numba kernel (:mod:`tinygrad_mlp.compiler.native`; needs ``pip install 'tinygrad_mlp[jit]'``),
        with ``step.epoch(X, Y, order)`` for a whole epoch in one call; weights equal eager's to
        rounding.  A step the kernel cannot express runs as the NumPy replay, with one warning.

    Returns
    -------
    CompiledStep (or NativeStep for backend="native")
        Call it like ``fn``.  A 0-d loss comes back as a Python float; other results are buffers the
        next call overwrites.  See the module docstring for the traps.
    """
    if backend not in ("numpy", "native"):
        raise ValueError(f"backend: expected 'numpy' or 'native', got {backend!r}")
    step = CompiledStep(fn, max_captures, check_finite, fused)
    if backend == "native":
        from .native import INSTALL, NativeStep, numba_available
        if not numba_available():
            raise ImportError(f"compile(backend='native') needs numba, which is not installed: {INSTALL}")
        return NativeStep(step)
    return step
