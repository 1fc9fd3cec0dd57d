"""How the cost of one SGD step grows with the work: eager tape, compiled replay, hand-written NumPy, PyTorch.

    python benchmarks/scale.py                 # the table (about 1-2 minutes)
    python benchmarks/scale.py --plot docs/scale.png
    python benchmarks/scale.py --quick         # a smoke run (seconds)

Every system trains the same network, 64 inputs → width (tanh) → 10 classes (softmax cross-entropy,
summed over the batch), with plain SGD, on random data, float64.  "numpy" is the practical's equations
written straight in NumPy (z = W h + b, δ^[L] = p − y, ∂L/∂W = δ hᵀ, W ← W − η ∂L/∂W), new arrays every
step: the reference the issue's targets are relative to.  BLAS and PyTorch run one thread each by
default (``--threads``).  Times are medians over repeats of the seconds per step, the systems
interleaved within each repeat; the machine is shared, so read ratios, not absolute times.

"compiled" is ``compile(step)``, whose weights are bit-identical to eager's; "fused" is
``compile(step, fused=True)``, whose plain-SGD update of a per-example layer is one BLAS rank-1 call
(weights equal to eager's up to rounding).

The Q3 block is the practical's Question 3 shape: per-example SGD, 64-50-10, lr 0.001, over a few
epochs of digits-sized data (1,437 rows), compiled and eager against the hand-written loop.

Large steps are sensitive to the C library's allocator: NumPy and the eager tape allocate fresh
temporaries each step (about 20 MB at batch 256, width 1024), which glibc hands back to the kernel
and then page-faults in again, while a replay allocates nothing.  The "faults" columns (minor page
faults per step, from getrusage) show when that happens; it varies from run to run.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# Measure this checkout's code, whatever copy of the package is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinygrad_mlp import MLP, functional as F
from tinygrad_mlp.compiler.compiled import compile as compile_step
from tinygrad_mlp.nn.optim import SGD

N_IN, N_OUT, LR = 64, 10, 0.001
THREADS = [1]


def _data(n, batch, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, N_IN))
    Y = np.eye(N_OUT)[rng.integers(0, N_OUT, n)]
    if batch == 1:
        return list(X), list(Y)
    k = n // batch
    return [X[i * batch:(i + 1) * batch] for i in range(k)], [Y[i * batch:(i + 1) * batch] for i in range(k)]


def _init(width, seed=0):
    m = MLP([N_IN, width, N_OUT], output="softmax", seed=seed)
    return {k: v.copy() for k, v in m.state_dict().items()}


# --------------------------------------------------------------------------- the systems
def make_numpy(width, batch):
    """The practical's equations, one new array per operation (the reference)."""
    w = _init(width)
    W1, b1, W2, b2 = w["W1"], w["b1"], w["W2"], w["b2"]

    if batch == 1:
        def step(x, y):
            nonlocal W1, b1, W2, b2
            z1 = W1 @ x + b1
            h1 = np.tanh(z1)
            z2 = W2 @ h1 + b2
            e = np.exp(z2 - z2.max())
            p = e / e.sum()
            d2 = p - y
            d1 = (W2.T @ d2) * (1.0 - h1 * h1)
            W2 -= LR * np.outer(d2, h1)
            b2 -= LR * d2
            W1 -= LR * np.outer(d1, x)
            b1 -= LR * d1
    else:
        def step(X, Y):
            nonlocal W1, b1, W2, b2
            H1 = np.tanh(X @ W1.T + b1)
            Z2 = H1 @ W2.T + b2
            E = np.exp(Z2 - Z2.max(axis=1, keepdims=True))
            D2 = E / E.sum(axis=1, keepdims=True) - Y
            D1 = (D2 @ W2) * (1.0 - H1 * H1)
            W2 -= LR * (D2.T @ H1)
            b2 -= LR * D2.sum(axis=0)
            W1 -= LR * (D1.T @ X)
            b1 -= LR * D1.sum(axis=0)
    return step


def _tiny_step(width):
    model = MLP([N_IN, width, N_OUT], output="softmax", seed=0)
    opt = SGD(model.parameters(), LR)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model.logits(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def make_eager(width, batch):
    return _tiny_step(width)


def make_compiled(width, batch):
    return compile_step(_tiny_step(width), check_finite=False)


def make_fused(width, batch):
    return compile_step(_tiny_step(width), check_finite=False, fused=True)


def make_native(width, batch):
    """``compile(step, backend="native")``: the captured step as a numba kernel, called per step."""
    return compile_step(_tiny_step(width), check_finite=False, backend="native")


def _have_numba():
    try:
        import numba  # noqa: F401
        return True
    except ImportError:
        return False


def make_torch(width, batch):
    import torch

    # As many threads as BLAS gets (one by default): on this shared 2-core machine PyTorch's own
    # pool spun against the other processes and a batch-16 step took milliseconds.
    torch.set_num_threads(max(1, THREADS[0]))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(N_IN, width), torch.nn.Tanh(), torch.nn.Linear(width, N_OUT)).double()
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return loss

    def convert(xs, ys):
        return [torch.from_numpy(x) for x in xs], [torch.from_numpy(y) for y in ys]
    step.convert = convert
    return step


SYSTEMS = {"numpy": make_numpy, "eager": make_eager, "compiled": make_compiled, "fused": make_fused,
           "torch": make_torch, "native": make_native}


def _have_torch():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def time_per_step(systems, width, batch, steps, repeats):
    """Median seconds per step of each system: ``repeats`` rounds, each timing every system in turn.

    Interleaving the systems inside each round spreads the shared machine's load changes over all
    of them, so their ratios stay meaningful even when the absolute times wander.
    """
    runs = {}
    for name in systems:
        step = SYSTEMS[name](width, batch)
        xs, ys = _data(steps * batch, batch)
        if hasattr(step, "convert"):
            xs, ys = step.convert(xs, ys)
        pairs = list(zip(xs, ys))
        for x, y in pairs[: max(2, len(pairs) // 10)]:
            step(x, y)  # warm-up (and the compiled step's capture)
        runs[name] = (step, pairs)
    times = {name: [] for name in systems}
    faults = {name: 0 for name in systems}
    for _ in range(repeats):
        for name, (step, pairs) in runs.items():
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            for x, y in pairs:
                step(x, y)
            times[name].append((time.perf_counter() - t0) / len(pairs))
            faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    out = {name: statistics.median(t) for name, t in times.items()}
    out["faults"] = {name: faults[name] / (repeats * len(runs[name][1])) for name in systems}
    return out


def q3(epochs, repeats, n=1437):
    """Per-example SGD on a digits-sized set: seconds per step of numpy, eager and compiled (interleaved)."""
    xs, ys = _data(n, 1, seed=1)
    names = ("numpy", "eager", "compiled", "fused") + (("native",) if _have_numba() else ())
    steps = {name: SYSTEMS[name](50, 1) for name in names}
    for step in steps.values():
        step(xs[0], ys[0])
    X, Y = np.array(xs), np.array(ys)
    order = np.arange(n)
    if "native" in steps:  # the same kernel, the loop over the examples inside it
        steps["native_epoch"] = SYSTEMS["native"](50, 1)
        steps["native_epoch"](xs[0], ys[0])
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(epochs):
                if name == "native_epoch":
                    step.epoch(X, Y, order)
                    continue
                for x, y in zip(xs, ys):
                    step(x, y)
            times[name].append((time.perf_counter() - t0) / (epochs * n))
    return {name: statistics.median(t) for name, t in times.items()}


def machine():
    import numpy
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, NumPy {numpy.__version__}")


def plot(results, systems, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    batches = sorted({b for b, _ in results})
    fig, axes = plt.subplots(1, len(batches), figsize=(4.2 * len(batches), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    styles = {"numpy": ("k", "o", "hand-written NumPy"), "eager": ("C0", "s", "tinygrad_mlp eager"),
              "compiled": ("C2", "^", "tinygrad_mlp compiled"),
              "fused": ("C1", "v", "tinygrad_mlp compiled, fused"), "torch": ("C3", "D", "PyTorch eager"),
              "native": ("C4", "P", "tinygrad_mlp native (numba)")}
    for ax, b in zip(axes, batches):
        widths = sorted(w for bb, w in results if bb == b)
        for s in systems:
            col, mk, label = styles[s]
            ax.loglog(widths, [results[(b, w)][s] * 1e6 for w in widths], color=col, marker=mk, label=label)
        ax.set_title(f"batch {b}")
        ax.set_xlabel("hidden width")
        ax.set_xticks(widths)
        ax.set_xticklabels([str(w) for w in widths])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("µs per SGD step (median)")
    axes[0].legend(fontsize=8)
    fig.suptitle("64 → width (tanh) → 10, softmax cross-entropy, SGD, float64", fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: small sizes, one repeat")
    ap.add_argument("--plot", metavar="PATH", help="draw the log-log plot to PATH (needs matplotlib)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
    ap.add_argument("--sizes", metavar="B:W[,B:W]", help="only these (batch, width) points, e.g. 256:1024")
    ap.add_argument("--no-q3", action="store_true", help="skip the Q3-like block")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS (and PyTorch) threads; 1 by default, as the machine is shared (0: leave as is)")
    args = ap.parse_args(argv)
    limiter = None
    if args.threads:
        try:
            if _have_numba():  # numba's np.dot calls scipy's BLAS: load it now, so that the limit covers it
                import scipy.linalg.cython_blas  # noqa: F401
            from threadpoolctl import threadpool_limits
            limiter = threadpool_limits(args.threads)
        except ImportError:
            print("threadpoolctl is not installed: BLAS threads left as they are")
    if args.repeats < 1:
        ap.error(f"--repeats: expected a positive int, got {args.repeats}")
    THREADS[0] = args.threads or (os.cpu_count() or 1)
    batches, widths = ((1, 16), (50, 256)) if args.quick else ((1, 16, 256), (50, 256, 1024))
    repeats = 1 if args.quick else args.repeats
    systems = ["numpy", "eager", "compiled", "fused"] + (["torch"] if _have_torch() and not args.no_torch else []) \
        + (["native"] if _have_numba() else [])
    points = [(b, w) for b in batches for w in widths]
    if args.sizes:
        try:
            points = [tuple(int(v) for v in p.split(":")) for p in args.sizes.split(",")]
        except ValueError:
            ap.error(f"--sizes: expected B:W[,B:W], got {args.sizes!r}")
    print(f"machine: {machine()}; BLAS threads: {args.threads or 'default'}")
    print(f"median seconds per step over {repeats} repeats; ratios are to hand-written NumPy\n")
    head = f"{'batch':>5} {'width':>5} " + " ".join(f"{s + ' µs':>12}" for s in systems) + \
        "  " + " ".join(f"{s + '/np':>12}" for s in systems if s != "numpy") + "  faults/step: np, eager, compiled"
    print(head)
    results = {}
    for b, w in points:
        # enough steps for ~0.05 s of hand-written NumPy per repeat, at least 20
        work = b * w
        steps = 20 if args.quick else int(min(2000, max(20, 2000 * 50 / max(work, 50))))
        r = time_per_step(systems, w, b, steps, repeats)
        results[(b, w)] = r
        print(f"{b:>5} {w:>5} " + " ".join(f"{r[s] * 1e6:>12.1f}" for s in systems) + "  " +
              " ".join(f"{r[s] / r['numpy']:>12.2f}" for s in systems if s != "numpy") + "  " +
              ", ".join(f"{r['faults'][s]:.0f}" for s in ("numpy", "eager", "compiled")), flush=True)
    epochs = 1 if args.quick else 3
    if not args.no_q3:
        q = q3(epochs, repeats)
        print(f"\nQ3-like: per-example SGD, 64-50-10, {epochs} epoch(s) of 1,437 rows, median of {repeats}")
        for s in q:
            print(f"  {s:>12}: {q[s] * 1e6:7.1f} µs/step  ({q[s] / q['numpy']:.2f}x hand-written NumPy)")
    if args.plot:
        plot(results, systems, args.plot)
    if limiter is not None:
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
