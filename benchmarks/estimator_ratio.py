"""The scikit-learn estimator against the plain training loop, at batch_size=1, on Question 3.

Question 3 of the practical (``tinygrad_mlp/bench/digits.py``): digits split by
``train_test_split(test_size=0.2, random_state=42)``, a 64-50-10 tanh MLP, softmax
cross-entropy, per-example SGD.  Both sides start from scikit-learn's initial weights and visit
the examples in scikit-learn's order, so they compute the same steps:

* ``train``: ``tinygrad_mlp.training.train(model, X, y, epochs, lr, order=...)``;
* ``estimator``: ``MLPClassifier(hidden_layer_sizes=(50,), activation="tanh", solver="sgd",
  batch_size=1, momentum=0, alpha=0, ...).fit(X, y)``.

Each repeat times one whole call of each (alternating which goes first), wall clock, so the
estimator's own work (input checks, label binarising, bookkeeping per epoch) is counted; the
ratio is estimator / train per repeat, and the figure is the median over repeats.  It also
checks that both ended with the same weights.  BLAS is held to one thread (threadpoolctl when
installed), as the digits benchmark does.

    python benchmarks/estimator_ratio.py [--epochs 5] [--repeats 5] [--lr 0.1] [--scale]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from contextlib import nullcontext

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from tinygrad_mlp.bench.digits import load_data  # noqa: E402
from tinygrad_mlp.nn.layers import MLP  # noqa: E402
from tinygrad_mlp.training.estimators import MLPClassifier  # noqa: E402
from tinygrad_mlp.training.loop import train  # noqa: E402
from tinygrad_mlp.training.sklearn_compat import sklearn_epoch_order, sklearn_init  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overhead import cpu_model  # noqa: E402  (one machine description for every benchmark)


def run_train(X, y, epochs, lr, seed):
    rng = np.random.RandomState(seed)
    model = MLP([X.shape[1], 50, 10], hidden="tanh", output="softmax", weight_init="zeros")
    sklearn_init(model, rng)
    idx = [np.arange(len(X))]

    def order(epoch):
        idx[0] = sklearn_epoch_order(idx[0], rng)
        return idx[0]

    t0, c0 = time.perf_counter(), time.process_time()
    hist = train(model, X, y, epochs=epochs, lr=lr, order=order)
    return time.perf_counter() - t0, time.process_time() - c0, hist.steps, [l.W.data.T for l in model.layers]


def run_estimator(X, y, epochs, lr, seed, compiled=False):
    clf = MLPClassifier(hidden_layer_sizes=(50,), activation="tanh", solver="sgd", batch_size=1, learning_rate_init=lr,
                        momentum=0.0, alpha=0.0, max_iter=epochs, n_iter_no_change=epochs + 1, random_state=seed,
                        compiled=compiled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0, c0 = time.perf_counter(), time.process_time()
        clf.fit(X, y)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return seconds, cpu, clf.n_iter_ * len(X), clf.coefs_


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--scale", action="store_true", help="pixels / 16 (the raw 0..16 pixels by default)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(1)
    except ImportError:
        limit = nullcontext()
    data = load_data(a.scale)
    X, y = data.X_train, data.y_train
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"NumPy {np.__version__}; load average {os.getloadavg()[0]:.1f}")
    print(f"Question 3: {len(X)} examples x {a.epochs} epochs of per-example SGD (lr {a.lr}), "
          f"{a.repeats} repeats, whole calls timed")
    ratios, cpu_ratios, rows = [], [], []
    with limit:
        run_train(X, y, 1, a.lr, a.seed), run_estimator(X, y, 1, a.lr, a.seed)  # warm-up (imports, caches)
        for r in range(a.repeats):
            runs = {}
            for name in (("train", "estimator") if r % 2 == 0 else ("estimator", "train")):
                fn = run_train if name == "train" else run_estimator
                runs[name] = fn(X, y, a.epochs, a.lr, a.seed)
            (ts, tc, tn, tw), (es, ec, en, ew) = runs["train"], runs["estimator"]
            assert tn == en, (tn, en)
            diff = max(float(np.abs(u - v).max()) for u, v in zip(tw, ew))
            ratios.append(es / ts)
            cpu_ratios.append(ec / tc)
            rows.append((ts / tn * 1e6, es / en * 1e6, es / ts, ec / tc, diff))
    print(f"{'repeat':>6} {'train us/step':>14} {'estimator us/step':>18} {'wall ratio':>10} {'CPU ratio':>10} "
          f"{'max |dW|':>10}")
    for i, (t, e, r, c, d) in enumerate(rows):
        print(f"{i + 1:>6} {t:>14.1f} {e:>18.1f} {r:>10.3f} {c:>10.3f} {d:>10.1e}")
    print(f"median ratio estimator / train: wall {statistics.median(ratios):.3f}, CPU {statistics.median(cpu_ratios):.3f} "
          f"(target <= 1.1); load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
