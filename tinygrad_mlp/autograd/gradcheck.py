"""Check the tape's gradients against finite differences.

Tolerance policy.  Central differences in float64 with step ε have truncation
error O(ε² f''') and rounding error O(u/ε) with u = 2⁻⁵² ≈ 2.2e-16, so at
ε = 1e-6 both are about 1e-10 relative: ``rtol=1e-5, atol=1e-8`` leaves five
orders of margin.  The finite differences are always taken in float64 (on a
float64 copy of each input); a float32 function is compared with the float32
policy of :func:`tolerances`, since its own rounding (≈ 6e-8) dominates.

Second order (:func:`gradgradcheck`) differentiates the first-order gradient G numerically with
the five-point stencil (−G(x+2h) + 8G(x+h) − 8G(x−h) + G(x−2h)) / 12h: truncation O(h⁴ G⁽⁵⁾)
and rounding O(u |G| / h), both ≈ 1e-12 relative at h = 1e-3, so the same policy applies
with the same margin.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .tensor import Tensor

__all__ = ["gradcheck", "gradgradcheck", "directional_check", "GradcheckError", "tolerances"]


class GradcheckError(AssertionError):
    """The tape's gradient disagrees with finite differences."""


def tolerances(dtype) -> dict:
    """(rtol, atol) for comparing a tape gradient computed in ``dtype`` with float64 differences."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return {"rtol": 2e-3, "atol": 2e-4}
    return {"rtol": 1e-5, "atol": 1e-8}


def _check_eps(eps) -> None:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) \
            or not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps: expected a positive finite step, got {eps!r}")


def _prepare(inputs):
    tensors = []
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            x = Tensor(x, requires_grad=True)
        if x.dtype.kind != "f":
            raise TypeError(f"inputs[{i}]: expected a float tensor, got dtype {x.dtype}")
        tensors.append(x)
    return tensors


def _probe(f, tensors) -> Tensor:
    """f at the inputs, checked to be a float Tensor: its shape and dtype set the upstream gradient's."""
    if not callable(f):
        raise TypeError(f"f: expected a callable returning a Tensor, got {type(f).__name__}")
    out = f(*[Tensor(t.data) for t in tensors])
    if not isinstance(out, Tensor):
        raise TypeError(f"f: expected f to return a Tensor, got {type(out).__name__}")
    if out.dtype.kind != "f":
        raise TypeError(f"f: expected f to return a float Tensor, got dtype {out.dtype}")
    return out


def _tape_grads(f, tensors, upstream):
    leaves = [Tensor(t.data.copy(), requires_grad=True) for t in tensors]
    out = f(*leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"f: expected f to return a Tensor, got {type(out).__name__}")
    if upstream is None:
        upstream = np.ones_like(out.data)
    out.backward(upstream)
    return [np.zeros_like(l.data) if l.grad is None else l.grad for l in leaves], out.data, upstream


def _scalar(f, arrays, upstream):
    """⟨u, f(x)⟩ in float64: the scalar whose gradient the tape computed."""
    out = f(*[Tensor(a) for a in arrays])
    return float(np.sum(np.asarray(out.data, dtype=np.float64) * upstream))


def gradcheck(f: Callable[..., Tensor], *inputs, eps: float = 1e-6, rtol: float | None = None,
              atol: float | None = None, upstream=None, seed: int = 0) -> bool:
    """Compare the tape's gradient of ⟨u, f(inputs)⟩ with central differences, entry by entry.

    ``u`` is a random upstream gradient (drawn from ``seed``) unless given, so
    a vjp that is only right for u = 1 still fails.  On a mismatch raises
    :class:`GradcheckError` naming the input, the index, both values and the error.
    """
    _check_eps(eps)
    tensors = _prepare(inputs)
    tol = tolerances(tensors[0].dtype if tensors else np.float64)
    rtol = tol["rtol"] if rtol is None else rtol
    atol = tol["atol"] if atol is None else atol
    if upstream is None:
        probe = _probe(f, tensors)
        upstream = np.random.default_rng(seed).standard_normal(probe.shape).astype(probe.dtype)
    grads, _, upstream = _tape_grads(f, tensors, upstream)
    u64 = np.asarray(upstream, dtype=np.float64)
    base = [t.data.astype(np.float64) for t in tensors]
    for i, t in enumerate(tensors):
        for idx in np.ndindex(t.shape):
            plus = [a.copy() for a in base]
            minus = [a.copy() for a in base]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            fp = _scalar(f, plus, u64)
            fm = _scalar(f, minus, u64)
            numeric = (fp - fm) / (2 * eps)
            analytic = float(grads[i][idx])
            err = abs(analytic - numeric)
            if not err <= atol + rtol * abs(numeric):
                raise GradcheckError(
                    f"gradcheck: input {i}, index {idx}: tape gradient {analytic!r} vs finite difference "
                    f"{numeric!r} (abs error {err:.3g} > atol {atol:g} + rtol {rtol:g} * |fd|)")
    return True


def directional_check(f: Callable[..., Tensor], *inputs, eps: float = 1e-6, rtol: float | None = None,
                      atol: float | None = None, n_directions: int = 3, seed: int = 0) -> bool:
    """Random-direction check that scales to large inputs: ⟨v, ∇⟨u, f⟩⟩ vs (F(x + εv) − F(x − εv)) / 2ε.

    Costs two evaluations of f per direction instead of two per entry.
    """
    _check_eps(eps)
    tensors = _prepare(inputs)
    tol = tolerances(tensors[0].dtype if tensors else np.float64)
    rtol = tol["rtol"] if rtol is None else rtol
    atol = tol["atol"] if atol is None else atol
    rng = np.random.default_rng(seed)
    probe = _probe(f, tensors)
    upstream = rng.standard_normal(probe.shape).astype(probe.dtype)
    grads, _, _ = _tape_grads(f, tensors, upstream)
    u64 = np.asarray(upstream, dtype=np.float64)
    base = [t.data.astype(np.float64) for t in tensors]
    for d in range(n_directions):
        vs = [rng.standard_normal(a.shape) for a in base]
        analytic = float(sum(np.sum(v * g) for v, g in zip(vs, grads)))
        fp = _scalar(f, [a + eps * v for a, v in zip(base, vs)], u64)
        fm = _scalar(f, [a - eps * v for a, v in zip(base, vs)], u64)
        numeric = (fp - fm) / (2 * eps)
        err = abs(analytic - numeric)
        if not err <= atol + rtol * abs(numeric):
            raise GradcheckError(
                f"directional_check: direction {d}: tape {analytic!r} vs finite difference {numeric!r} "
                f"(abs error {err:.3g} > atol {atol:g} + rtol {rtol:g} * |fd|)")
    return True


def _stencil(fn, base, ws, h):
    """(−F(x+2hw) + 8F(x+hw) − 8F(x−hw) + F(x−2hw)) / 12h for each of fn's array outputs: d/dt F(x + t w)."""
    def at(t):
        return fn([a + t * w for a, w in zip(base, ws)])
    p2, p1, m1, m2 = at(2 * h), at(h), at(-h), at(-2 * h)
    return [(-a + 8 * b - 8 * c + d) / (12 * h) for a, b, c, d in zip(p2, p1, m1, m2)]


def gradgradcheck(f: Callable[..., Tensor], *inputs, eps: float = 1e-3, rtol: float | None = None,
                  atol: float | None = None, n_directions: int = 2, upstream=None, seed: int = 0) -> bool:
    """Second derivatives of the tape against finite differences of its gradient, in random directions.

    With a random upstream u and G(x, u) = ∇ₓ⟨u, f(x)⟩ = Jᵀu recorded by ``create_graph``, for each
    random direction w (one array per input) the tape's

    * ∇ₓ⟨w, G⟩ = ∇²⟨u, f⟩ w (a Hessian-vector product: the second vjp in x) is compared, entry by
      entry, with the central difference of the first-order gradient G along w, and
    * ∇ᵤ⟨w, G⟩ = J w (the second vjp in the upstream: what forward mode uses) with the
      central difference of f along w.

    The differences are taken in float64 on the plain first-order backward (NumPy vjps, not the
    ``vjp_t`` under test), with step ``eps`` in the five-point stencil; the tolerances follow
    :func:`tolerances` of the inputs' dtype.  Raises :class:`GradcheckError` naming the direction,
    the input, the index and both values.
    """
    from .transforms import grad as _grad

    _check_eps(eps)
    if isinstance(n_directions, bool) or not isinstance(n_directions, (int, np.integer)) or n_directions < 1:
        raise ValueError(f"n_directions: expected a positive int, got {n_directions!r}")
    tensors = _prepare(inputs)
    tol = tolerances(tensors[0].dtype if tensors else np.float64)
    rtol = tol["rtol"] if rtol is None else rtol
    atol = tol["atol"] if atol is None else atol
    rng = np.random.default_rng(seed)
    probe = _probe(f, tensors)
    if upstream is None:
        upstream = rng.standard_normal(probe.shape)
    u = np.array(upstream, dtype=probe.dtype)
    if u.shape != probe.shape:
        raise ValueError(f"upstream: expected shape {probe.shape} (f's output), got {u.shape}")
    u64 = u.astype(np.float64)
    base = [t.data.astype(np.float64) for t in tensors]

    def first_order(arrays):
        return _tape_grads(f, [Tensor(a) for a in arrays], u64)[0]

    def forward(arrays):
        return [np.asarray(f(*[Tensor(a) for a in arrays]).data, dtype=np.float64)]

    leaves = [Tensor(t.data.copy(), requires_grad=True) for t in tensors]
    U = Tensor(u.copy(), requires_grad=True)
    out = f(*leaves)
    if not out.requires_grad:
        raise GradcheckError("gradgradcheck: f's output does not depend on the inputs")
    G = _grad(out, leaves, grad_outputs=U, create_graph=True, materialize_grads=True)
    for d in range(n_directions):
        ws = [rng.standard_normal(a.shape) for a in base]
        S = None
        for g, w in zip(G, ws):
            term = (g * w.astype(g.dtype)).sum()
            S = term if S is None else S + term
        if S.requires_grad:
            second = [x.data for x in _grad(S, leaves + [U], retain_graph=True, materialize_grads=True)]
        else:
            second = [np.zeros(t.shape) for t in leaves] + [np.zeros(u.shape)]
        expected = _stencil(first_order, base, ws, eps) + _stencil(forward, base, ws, eps)
        names = [f"input {i} (Hessian-vector product)" for i in range(len(base))] + ["upstream (J w)"]
        for name, got, want in zip(names, second, expected):
            got = np.asarray(got, dtype=np.float64)
            err = np.abs(got - want)
            bad = ~(err <= atol + rtol * np.abs(want))
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise GradcheckError(
                    f"gradgradcheck: direction {d}, {name}, index {idx}: tape {got[idx]!r} vs finite "
                    f"difference {want[idx]!r} (abs error {err[idx]:.3g} > atol {atol:g} + rtol {rtol:g} * |fd|)")
    return True
