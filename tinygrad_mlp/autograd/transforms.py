"""Functional transforms: gradients as values, Hessians, Hessian-vector products, forward mode.

``grad`` is ``torch.autograd.grad``: the gradients of some outputs with respect to some inputs,
returned rather than accumulated into ``.grad``; with ``create_graph=True`` they are Tensors on
the tape and can be differentiated again.  The others take a function ``f`` of one Tensor
``w`` and return NumPy arrays; their names, arguments and results are those of
``torch.autograd.functional`` (``hessian``, ``hvp``, ``jvp``, ``jacobian``) and of JAX
(``value_and_grad``):

* ``hessian(f, w)``: ∂²f/∂w², shape ``w.shape + w.shape``, one Hessian-vector product per entry;
* ``hvp(f, w, v)``: ``(f(w), H v)`` from two backward passes, the Hessian never formed;
* ``jvp(f, w, v)``: ``(f(w), J v)``, forward mode by the *double-vjp trick*: with a dummy
  upstream u, g(u) = Jᵀu is linear in u, so J v = ∂⟨g(u), v⟩/∂u.  Chosen over dual numbers
  because it needs no third rule per primitive: every primitive's ``vjp_t`` (its vjp in
  Tensor ops, which second order needs anyway) serves both, so a new primitive gets forward
  mode with no extra line.  The price is about one extra backward pass over a plain jvp;
* ``jacobian(f, w)``: ∂f/∂w, shape ``f(w).shape + w.shape``, one first-order vjp per output;
* ``value_and_grad(f, argnums=0)(*args)``: ``(f(*args), ∂f/∂args[argnums])``.

Nothing here is on the first-order hot path; all of it walks the tape through
:func:`tinygrad_mlp.autograd.higher.walk`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .higher import walk
from .tape import state
from .tensor import Tensor, _new

__all__ = ["grad", "hessian", "hvp", "jvp", "jacobian", "value_and_grad"]


def _tensors(x, name: str) -> list:
    items = list(x) if isinstance(x, (list, tuple)) else [x]
    if not items:
        raise ValueError(f"{name}: expected a Tensor or a non-empty sequence of Tensors, got an empty sequence")
    for k, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}[{k}]: expected a Tensor, got {type(t).__name__}")
        if not t.requires_grad:
            raise ValueError(f"{name}[{k}]: this Tensor does not require grad (nothing to differentiate "
                             f"{'through' if name == 'outputs' else 'with respect to'})")
    return items


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False, materialize_grads: bool = False) -> tuple:
    """Σᵢ ∂⟨grad_outputsᵢ, outputsᵢ⟩/∂inputs, one Tensor per input, as ``torch.autograd.grad``.

    Parameters
    ----------
    outputs : Tensor or sequence of Tensors
        What is differentiated; each must require grad.
    inputs : Tensor or sequence of Tensors
        With respect to what (leaves or intermediate results); each must require grad.
    grad_outputs : None, Tensor/array or a sequence of them
        The upstream gradient ∂L/∂output per output; may be omitted for scalar outputs (ones).
        Under ``create_graph`` a Tensor that requires grad is differentiated through too.
    retain_graph : bool, default ``create_graph``
        Keep the records for another backward pass through them.
    create_graph : bool
        Record the backward pass, so the returned gradients can be differentiated again.
    allow_unused : bool
        Return None for an input the outputs do not depend on, instead of raising.
    materialize_grads : bool
        Return zeros instead of None there (implies ``allow_unused``).

    Returns
    -------
    tuple of Tensors (or None), one per input.  ``.grad`` of every tensor is left as it was.
    """
    outs = _tensors(outputs, "outputs")
    ins = _tensors(inputs, "inputs")
    if grad_outputs is None:
        gos = [None] * len(outs)
    elif isinstance(grad_outputs, (list, tuple)) and not isinstance(outputs, Tensor):
        gos = list(grad_outputs)
        if len(gos) != len(outs):
            raise ValueError(f"grad_outputs: expected {len(outs)} (one per output), got {len(gos)}")
    else:
        gos = [grad_outputs]
        if len(outs) != 1:
            raise ValueError(f"grad_outputs: expected a sequence of {len(outs)} (one per output), got one")
    seeds = []
    for k, (o, go) in enumerate(zip(outs, gos)):
        if go is None:
            if o.size != 1:
                raise ValueError(f"grad_outputs[{k}]: may be omitted only for a scalar output, but output {k} "
                                 f"has shape {o.shape}")
            go = np.ones(o.shape, o.dtype)
        if isinstance(go, Tensor):
            if go.shape != o.shape:
                raise ValueError(f"grad_outputs[{k}]: expected shape {o.shape}, got {go.shape}")
            seeds.append(go if create_graph else go.data)
            continue
        try:
            arr = np.array(go, dtype=o.dtype)
        except (TypeError, ValueError) as e:
            raise TypeError(f"grad_outputs[{k}]: expected a Tensor or numeric array, got {type(go).__name__} "
                            f"({e})") from None
        if arr.shape != o.shape:
            raise ValueError(f"grad_outputs[{k}]: expected shape {o.shape}, got {arr.shape}")
        seeds.append(_new(arr) if create_graph else arr)
    cap = state().capture
    if cap is not None:  # the observer refuses: a replay runs one first-order backward into .grad
        cap.backward(outs[0], grad_outputs, retain_graph, create_graph=True)
    retain = create_graph if retain_graph is None else bool(retain_graph)
    found = walk(outs, seeds, create_graph=create_graph, retain_graph=retain, targets=ins)
    result = []
    for k, (t, g) in enumerate(zip(ins, found)):
        if g is None:
            if materialize_grads:
                g = np.zeros(t.shape, t.dtype)
            elif not allow_unused:
                raise ValueError(f"inputs[{k}]: the outputs do not depend on this input; pass "
                                 f"allow_unused=True to get None for it (or materialize_grads=True for zeros)")
            else:
                result.append(None)
                continue
        result.append(g if isinstance(g, Tensor) else _new(g))
    return tuple(result)


# ------------------------------------------------------------------ functions of one Tensor
def _leaf(w, name: str = "w") -> Tensor:
    """A fresh float leaf holding a copy of w's values (w itself is never touched)."""
    data = w.data if isinstance(w, Tensor) else w
    try:
        arr = np.array(data)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected a Tensor or numeric array, got {type(w).__name__} ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numeric data, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return Tensor(arr, requires_grad=True)


def _call(f: Callable, x: Tensor, scalar: bool) -> Tensor:
    if not callable(f):
        raise TypeError(f"f: expected a callable taking a Tensor and returning a Tensor, got {type(f).__name__}")
    y = f(x)
    if not isinstance(y, Tensor):
        raise TypeError(f"f: expected f to return a Tensor, got {type(y).__name__}")
    if y.dtype.kind != "f":
        raise TypeError(f"f: expected f to return a float Tensor, got dtype {y.dtype}")
    if scalar and y.size != 1:
        raise ValueError(f"f: expected a scalar output (one element), got shape {y.shape}")
    return y


def _vector(v, like: Tensor, name: str = "v") -> np.ndarray:
    data = v.data if isinstance(v, Tensor) else v
    try:
        arr = np.array(data, dtype=like.dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected a Tensor or numeric array, got {type(v).__name__} ({e})") from None
    if arr.shape != like.shape:
        raise ValueError(f"{name}: expected shape {like.shape} (w's), got {arr.shape}")
    return arr


def _first_grad(y: Tensor, x: Tensor, create_graph: bool, seed=None):
    """∂⟨seed, y⟩/∂x, or None when y does not depend on x."""
    if not y.requires_grad:
        return None
    (g,) = grad(y, x, grad_outputs=seed, create_graph=create_graph, allow_unused=True)
    return g


def _zeros(shape, dtype) -> np.ndarray:
    return np.zeros(shape, dtype)


def value_and_grad(f: Callable[..., Tensor], argnums: int | Sequence[int] = 0) -> Callable:
    """A function returning ``(f(*args), ∂f/∂args[argnums])`` for a scalar f, as JAX's.

    The value is f's output array; the gradient an array shaped like that argument, or a tuple
    of them when ``argnums`` is a tuple.  The arguments are copied into fresh leaves.
    """
    if not callable(f):
        raise TypeError(f"f: expected a callable, got {type(f).__name__}")
    many = isinstance(argnums, (tuple, list))
    nums = tuple(argnums) if many else (argnums,)
    for n in nums:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"argnums: expected an int or a tuple of ints, got {argnums!r}")

    def vg(*args):
        for n in nums:
            if not -len(args) <= n < len(args):
                raise ValueError(f"argnums: {n} is out of range for {len(args)} positional arguments")
        args = list(args)
        leaves = []
        for n in nums:
            args[n] = _leaf(args[n], f"args[{n}]")
            leaves.append(args[n])
        y = f(*args)
        if not isinstance(y, Tensor) or y.size != 1:
            raise ValueError(f"f: expected a scalar Tensor, got "
                             f"{type(y).__name__ if not isinstance(y, Tensor) else 'shape ' + str(y.shape)}")
        if y.requires_grad:
            gs = grad(y, leaves, materialize_grads=True)
            gs = tuple(g.data for g in gs)
        else:
            gs = tuple(_zeros(t.shape, t.dtype) for t in leaves)
        return y.data, (gs if many else gs[0])

    return vg


def hessian(f: Callable[[Tensor], Tensor], w) -> np.ndarray:
    """The Hessian ∂²f/∂w∂w of a scalar f, an array of shape ``w.shape + w.shape``.

    One backward with ``create_graph`` gives ∇f as a Tensor; then row i is the gradient of
    ⟨∇f, eᵢ⟩, one first-order walk of that recorded graph per entry of w.
    """
    x = _leaf(w)
    y = _call(f, x, scalar=True)
    n = x.size
    H = _zeros((n, n), x.dtype)
    g = _first_grad(y, x, create_graph=True)
    if g is not None and g.requires_grad:
        e = np.zeros(x.shape, x.dtype)
        flat = e.reshape(-1)
        for i in range(n):
            flat[i] = 1
            (row,) = grad(g, x, grad_outputs=e, retain_graph=True, materialize_grads=True)
            H[i] = row.data.reshape(-1)
            flat[i] = 0
    return H.reshape(x.shape + x.shape)


def hvp(f: Callable[[Tensor], Tensor], w, v) -> tuple:
    """``(f(w), H v)``: the Hessian of a scalar f times v, from two backward passes (H never formed).

    H v = ∂⟨∇f, v⟩/∂w: the first backward records ∇f (``create_graph``), the second
    differentiates its inner product with v.
    """
    x = _leaf(w)
    vv = _vector(v, x)
    y = _call(f, x, scalar=True)
    g = _first_grad(y, x, create_graph=True)
    if g is None or not g.requires_grad:
        return y.data, _zeros(x.shape, x.dtype)
    (hv,) = grad(g, x, grad_outputs=vv, materialize_grads=True)
    return y.data, hv.data


def jvp(f: Callable[[Tensor], Tensor], w, v) -> tuple:
    """``(f(w), J v)``: the directional derivative of f at w along v (forward mode).

    The double-vjp trick: g(u) = Jᵀu is recorded for a dummy upstream u (a zero Tensor that
    requires grad), and J v = ∂⟨g(u), v⟩/∂u, one more backward (see the module note for why).
    """
    x = _leaf(w)
    vv = _vector(v, x)
    y = _call(f, x, scalar=False)
    if not y.requires_grad:
        return y.data, _zeros(y.shape, y.dtype)
    u = Tensor(np.zeros(y.shape, y.dtype), requires_grad=True)
    g = _first_grad(y, x, create_graph=True, seed=u)
    if g is None or not g.requires_grad:
        return y.data, _zeros(y.shape, y.dtype)
    (jv,) = grad(g, u, grad_outputs=vv, materialize_grads=True)
    return y.data, jv.data


def jacobian(f: Callable[[Tensor], Tensor], w) -> np.ndarray:
    """The Jacobian ∂f/∂w, an array of shape ``f(w).shape + w.shape``: one first-order vjp per output entry."""
    x = _leaf(w)
    y = _call(f, x, scalar=False)
    m = y.size
    J = _zeros((m, x.size), np.result_type(x.dtype, y.dtype))
    if y.requires_grad:
        e = np.zeros(y.shape, y.dtype)
        flat = e.reshape(-1)
        for i in range(m):
            flat[i] = 1
            (row,) = grad(y, x, grad_outputs=e, retain_graph=True, materialize_grads=True)
            J[i] = row.data.reshape(-1)
            flat[i] = 0
    return J.reshape(y.shape + x.shape)

