"""Newton's method with second derivatives from the tape: softmax regression on the iris data.

    python examples/newton.py

The loss is the mean cross-entropy of a softmax regression z = W x + b (3 classes, 4 features,
15 parameters in one flat vector w) plus a ridge term λ/2 ‖w‖², so it is strictly convex with
one minimiser.  Two Newton variants, each printing ‖∇L(w_k)‖ per iteration:

* ``hessian``: the full 15 × 15 Hessian from ``autograd.hessian``, then a linear solve;
* ``hvp``: Newton-CG: conjugate gradients on H p = −∇L using only ``autograd.hvp``
  (the Hessian is never formed), with the forcing term η_k = min(½, ‖∇L‖) that keeps the
  convergence quadratic.

Near the minimiser the error squares at each step (e_{k+1} ≈ C e_k², e_k = ‖∇L(w_k)‖): the
printed ratio e_{k+1} / e_k² stays near a constant (≈ 10 here) while the number of correct digits
doubles, until float64 rounding (≈ 1e-16) stops it.
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tinygrad_mlp import Tensor  # noqa: E402
from tinygrad_mlp import autograd as ag  # noqa: E402
from tinygrad_mlp import functional as F  # noqa: E402

LAMBDA = 1e-2
N_CLASSES, N_FEATURES = 3, 4


def data():
    """Iris, standardised (bundled with scikit-learn: nothing is downloaded)."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    return X, y


def make_loss(X, y, lam=LAMBDA):
    """L(w) = (1/n) Σᵢ CE(softmax(W xᵢ + b), yᵢ) + λ/2 ‖w‖², with w = [W (row-major), b]."""
    n = len(y)

    def loss(w: Tensor) -> Tensor:
        W = w[:N_CLASSES * N_FEATURES].reshape(N_CLASSES, N_FEATURES)
        b = w[N_CLASSES * N_FEATURES:]
        Z = Tensor(X) @ W.T + b  # (n, classes): one example per row
        return F.cross_entropy(Z, y, reduction="sum") * (1.0 / n) + (w * w).sum() * (lam / 2)

    return loss


def conjugate_gradients(matvec, b, tol, max_iter):
    """Solve A x = b for symmetric positive definite A, given only x ↦ A x."""
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = r @ r
    for _ in range(max_iter):
        if np.sqrt(rr) <= tol:
            break
        Ap = matvec(p)
        alpha = rr / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        rr, rr_old = r @ r, rr
        p = r + (rr / rr_old) * p
    return x


def newton(f, w0, method="hessian", max_iter=20, tol=1e-14, verbose=True):
    """Minimise f from w0 by Newton steps; returns (w, [‖∇f(w_k)‖ for k = 0, 1, ...])."""
    if method not in ("hessian", "hvp"):
        raise ValueError(f"method: expected 'hessian' or 'hvp', got {method!r}")
    w = np.array(w0, dtype=np.float64)
    vg = ag.value_and_grad(f)
    history = []
    for k in range(max_iter + 1):
        value, g = vg(w)
        gnorm = float(np.linalg.norm(g))
        history.append(gnorm)
        if verbose:
            ratio = f"{gnorm / history[-2] ** 2:10.3g}" if k else " " * 10
            print(f"  {method:7s} iter {k:2d}   L = {float(value):.15f}   e_k = ||grad L|| = {gnorm:.3e}"
                  f"   e_k / e_(k-1)^2 = {ratio}")
        if gnorm <= tol or k == max_iter:
            break
        if method == "hessian":
            step = np.linalg.solve(ag.hessian(f, w), -g)
        else:
            eta = min(0.5, gnorm)
            step = conjugate_gradients(lambda v: ag.hvp(f, w, v)[1], -g, tol=eta * gnorm, max_iter=10 * w.size)
        # Backtracking keeps the far-away steps safe; near the minimiser the full step is always taken.
        t = 1.0
        while float(f(Tensor(w + t * step)).data) > float(value) and t > 1e-8:
            t *= 0.5
        w = w + t * step
    return w, history


def main(argv=None) -> int:
    X, y = data()
    f = make_loss(X, y)
    w0 = np.zeros(N_CLASSES * N_FEATURES + N_CLASSES)
    print(f"softmax regression on iris: {len(y)} examples, {w0.size} parameters, lambda = {LAMBDA}")
    results = {}
    for method in ("hessian", "hvp"):
        w, hist = newton(f, w0, method)
        results[method] = (w, hist)
        print(f"  {method}: {len(hist) - 1} Newton steps; quadratic while e_(k+1) / e_k^2 stays bounded "
              f"above the rounding floor (a linear rate would make it grow like 1 / e_k)")
    diff = np.abs(results["hessian"][0] - results["hvp"][0]).max()
    print(f"  the two minimisers agree to {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
