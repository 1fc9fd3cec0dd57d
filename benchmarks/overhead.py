"""The tape's overhead, side by side in one run.

1. One recorded op plus its backward on a tiny tensor (the fixed cost per op).
2. One forward + backward of a 64-50-10 tanh MLP with softmax cross-entropy on
   one example: through the tape (``MLP`` + ``functional.cross_entropy`` +
   ``backward``) versus the same step hand-written in NumPy, and their ratio.

Each time is the median over ``--repeats`` repeats of the mean over
``--number`` calls; tape and NumPy alternate within a repeat and the ratio
is the median of the per-repeat ratios.  The machine is printed too: timings on a shared machine
are noisy, so compare ratios from the same run, not absolute times across runs.

    python benchmarks/overhead.py [--repeats 7] [--number 2000]
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

from tinygrad_mlp import MLP, Tensor  # noqa: E402
from tinygrad_mlp import functional as F  # noqa: E402


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mean_time(fn, number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def bench_pair(fn_a, fn_b, number: int, repeats: int) -> tuple[float, float, float]:
    """Medians over repeats of the mean time per call of ``fn_a`` and ``fn_b``, and of their ratio.

    The two are timed alternately within each repeat, so load from other processes on a
    shared machine hits both alike and the per-repeat ratio is steadier than either time.
    """
    fn_a(), fn_b()  # warm up caches and lazy imports
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(_mean_time(fn_a, number))
        tb.append(_mean_time(fn_b, number))
    return statistics.median(ta), statistics.median(tb), statistics.median(a / b for a, b in zip(ta, tb))


def numpy_step(W1, b1, W2, b2, x, y):
    """The hand-written step: forward, cross-entropy, backprop (δ^[2] = p − y, δ^[1] = W^[2]ᵀδ^[2] ⊙ (1 − h²))."""
    h1 = np.tanh(W1 @ x + b1)
    z2 = W2 @ h1 + b2
    m = z2.max()
    e = np.exp(z2 - m)
    s = e.sum()
    loss = m + np.log(s) - z2[y]
    d2 = e / s
    d2[y] -= 1.0
    gW2 = np.outer(d2, h1)
    d1 = (W2.T @ d2) * (1.0 - h1 * h1)
    gW1 = np.outer(d1, x)
    return loss, (gW1, d1, gW2, d2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--number", type=int, default=2000)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    net = MLP([64, 50, 10], hidden="tanh", output="softmax", seed=0)
    params = net.parameters()
    x = rng.standard_normal(64)
    y = 3

    def tape_step():
        for p in params:
            p.grad = None
        loss = F.cross_entropy(net.logits(x), y)
        loss.backward()
        return loss

    W1, b1, W2, b2 = (p.data for p in params)

    def np_step():
        return numpy_step(W1, b1, W2, b2, x, y)

    # The two steps must agree before their speeds are compared.
    loss = tape_step()
    ref_loss, ref_grads = np_step()
    assert abs(loss.item() - ref_loss) < 1e-12, (loss.item(), ref_loss)
    for p, g in zip(params, ref_grads):
        np.testing.assert_allclose(p.grad, g, rtol=1e-10, atol=1e-13)

    a = Tensor(np.array([0.5, -0.25]), requires_grad=True)
    g = np.ones(2)

    def one_op():
        a.grad = None
        a.tanh().backward(g)

    def np_op():
        h = np.tanh(a.data)
        return g * (1.0 - h * h)

    t_op, t_np_op, r_op = bench_pair(one_op, np_op, args.number * 5, args.repeats)
    t_tape, t_np, r_mlp = bench_pair(tape_step, np_step, args.number, args.repeats)

    print(f"machine: nproc={os.cpu_count()}, cpu={cpu_model()}, python {platform.python_version()}, "
          f"numpy {np.__version__}")
    print(f"repeats={args.repeats}, medians of per-repeat means (ratio: median of per-repeat ratios); "
          f"number={args.number} calls per repeat (x5 for the one-op row)")
    print(f"{'':44s}{'tape':>10s}{'numpy':>10s}{'ratio':>8s}")
    print(f"{'one op (tanh on shape (2,)) + backward':44s}{t_op * 1e6:8.2f}µs{t_np_op * 1e6:8.2f}µs"
          f"{r_op:7.2f}x")
    print(f"{'64-50-10 tanh MLP, CE, 1 example: fwd+bwd':44s}{t_tape * 1e6:8.2f}µs{t_np * 1e6:8.2f}µs"
          f"{r_mlp:7.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
