"""What second derivatives cost, as ratios to one gradient, side by side in one run.

For a scalar loss f(w) of one flat parameter vector w (a tanh MLP with squared error, the
parameters sliced out of w), times per call of:

* ``grad``: ``autograd.value_and_grad(f)(w)``: forward + first-order backward (NumPy vjps);
* ``hvp``: ``autograd.hvp(f, w, v)``: forward, a backward with ``create_graph`` (the vjps in
  Tensor ops, recorded), and a backward through that;
* ``jvp``: ``autograd.jvp(f, w, v)``: the double-vjp trick (same shape of work as hvp);
* ``hessian``: ``autograd.hessian(f, w)`` (one backward per parameter; smaller network only).

Theory says an hvp costs a small constant times a gradient (Pearlmutter); the ratio below is
that constant for this engine.  Each time is the median over ``--repeats`` of the mean over
``--number`` calls, the calls alternating within a repeat; each ratio is the median of the
per-repeat ratios.  Compare ratios from one run, not absolute times across runs.

    python benchmarks/higher_order.py [--repeats 7] [--number 50]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tinygrad_mlp import Tensor  # noqa: E402
from tinygrad_mlp import autograd as ag  # noqa: E402
from tinygrad_mlp import functional as F  # noqa: E402

from overhead import cpu_model  # noqa: E402


def mlp_loss(sizes, X, Y):
    """f(w) = ½ Σ ‖ŷ − y‖² over the batch X (rows), for a tanh MLP whose parameters are the flat w."""
    def f(w):
        at = 0
        h = Tensor(X)
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            W = w[at:at + n_out * n_in].reshape(n_out, n_in)
            at += n_out * n_in
            b = w[at:at + n_out]
            at += n_out
            z = h @ W.T + b
            h = z.tanh() if l < len(sizes) - 2 else z
        return F.squared_error(h, Y)
    return f


def timed(fns: dict, number: int, repeats: int) -> dict:
    for fn in fns.values():
        fn()  # warm up
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            times[k].append((time.perf_counter() - t0) / number)
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--number", type=int, default=50)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"machine: nproc={os.cpu_count()}, cpu={cpu_model()}, python {platform.python_version()}, "
          f"numpy {np.__version__}")
    print(f"repeats={args.repeats}, number={args.number}; times are medians of per-repeat means, "
          f"ratios medians of per-repeat ratios to grad")
    print(f"{'network (batch)':28s}{'params':>8s}{'grad':>10s}{'hvp':>10s}{'jvp':>10s}{'hessian':>11s}"
          f"{'hvp/grad':>10s}{'jvp/grad':>10s}{'hess/grad':>10s}")
    for sizes, batch, with_hessian in (([4, 4, 3, 3], 2, True), ([64, 50, 10], 1, False),
                                        ([64, 50, 10], 32, False)):
        n = sum(o * i + o for i, o in zip(sizes[:-1], sizes[1:]))
        X = rng.standard_normal((batch, sizes[0]))
        Y = rng.standard_normal((batch, sizes[-1]))
        f = mlp_loss(sizes, X, Y)
        w = rng.standard_normal(n) * 0.3
        v = rng.standard_normal(n)
        vg = ag.value_and_grad(f)
        # the results agree before their speeds are compared
        _, g = vg(w)
        _, hv = ag.hvp(f, w, v)
        _, jv = ag.jvp(f, w, v)
        assert abs(jv - g @ v) <= 1e-10 * (1 + abs(g @ v))
        eps = 1e-6
        fd = (vg(w + eps * v)[1] - vg(w - eps * v)[1]) / (2 * eps)
        assert np.abs(hv - fd).max() <= 1e-5 * (1 + np.abs(fd).max())
        fns = {"grad": lambda: vg(w), "hvp": lambda: ag.hvp(f, w, v), "jvp": lambda: ag.jvp(f, w, v)}
        if with_hessian:
            fns["hessian"] = lambda: ag.hessian(f, w)
        number = args.number if with_hessian or batch > 1 else args.number * 2
        t = timed(fns, number, args.repeats)
        med = {k: statistics.median(v) for k, v in t.items()}
        ratio = {k: statistics.median(a / b for a, b in zip(t[k], t["grad"])) for k in t}
        name = "-".join(map(str, sizes)) + f" ({batch})"
        hess = f"{med['hessian'] * 1e3:9.2f}ms" if with_hessian else f"{'-':>11s}"
        hr = f"{ratio['hessian']:9.1f}x" if with_hessian else f"{'-':>10s}"
        print(f"{name:28s}{n:8d}{med['grad'] * 1e6:8.0f}µs{med['hvp'] * 1e6:8.0f}µs{med['jvp'] * 1e6:8.0f}µs"
              f"{hess}{ratio['hvp']:9.2f}x{ratio['jvp']:9.2f}x{hr}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
