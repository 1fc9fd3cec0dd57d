"""Engine state is per thread: the tape, grad mode and a capture in progress.

Each test runs the same work once in threads at the same time and once alone, one after the
other; the expected numbers are the solo runs' (the same code with no other thread about), so a
record, a grad-mode switch or a capture leaking from one thread into another shows as a difference.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from tinygrad_mlp import MLP, SGD, Tensor, is_grad_enabled, no_grad
from tinygrad_mlp import functional as F


def _train(seed: int, steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    model = MLP([6, 5, 3], hidden="tanh", output="softmax", seed=seed)
    opt = SGD(model.parameters(), lr=0.05)
    X = rng.uniform(-1, 1, (steps, 6))
    y = rng.integers(0, 3, steps)
    for x, label in zip(X, y):
        opt.zero_grad()
        loss = F.cross_entropy(model.logits(x), int(label))
        loss.backward()
        opt.step()
    return [p.data.copy() for p in model.parameters()]


def _run_in_threads(targets):
    results, errors = {}, []

    def run(key, fn):
        try:
            results[key] = fn()
        except BaseException as e:  # noqa: BLE001 - reported below, with the thread's key
            errors.append((key, e))

    threads = [threading.Thread(target=run, args=(k, fn)) for k, fn in targets.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def test_two_threads_training_give_the_weights_of_two_solo_runs():
    steps = 2000
    solo = {s: _train(s, steps) for s in (1, 2)}
    for _ in range(2):
        both = _run_in_threads({s: (lambda s=s: _train(s, steps)) for s in (1, 2)})
        for s in (1, 2):
            for a, b in zip(both[s], solo[s]):
                np.testing.assert_array_equal(a, b)


def test_no_grad_in_one_thread_never_changes_what_another_records():
    steps = 1500
    expected = _train(7, steps)
    stop = threading.Event()

    def flicker():  # enters and leaves no_grad as fast as it can while the other thread trains
        n = 0
        while not stop.is_set():
            with no_grad():
                assert not is_grad_enabled()
                (Tensor(np.ones(3), requires_grad=True) * 2.0).sum()
            n += 1
        return n

    def train():
        try:
            return _train(7, steps)
        finally:
            stop.set()

    out = _run_in_threads({"train": train, "flicker": flicker})
    assert out["flicker"] > 0
    for a, b in zip(out["train"], expected):
        np.testing.assert_array_equal(a, b)


def test_no_grad_is_restored_per_thread():
    barrier = threading.Barrier(2)

    def inside():
        with no_grad():
            barrier.wait()  # both threads are inside their no_grad at once
            barrier.wait()
        return is_grad_enabled()

    out = _run_in_threads({0: inside, 1: inside})
    assert out == {0: True, 1: True}
    assert is_grad_enabled()


def test_a_thread_starts_with_grad_enabled_and_its_own_empty_tape():
    from tinygrad_mlp import tape_size

    with no_grad():
        a = Tensor(np.ones(2), requires_grad=True)
        b = a * 2.0  # kept alive: it must not show on the other thread's tape either

        def other():
            x = Tensor(np.ones(2), requires_grad=True)
            y = (x * 3.0).sum()
            return is_grad_enabled(), tape_size(), y.requires_grad

        out = _run_in_threads({0: other})[0]
    assert out == (True, 2, True)
    assert not b.requires_grad


def test_backward_in_another_thread_is_refused_clearly():
    from tinygrad_mlp import GraphFreedError

    a = Tensor(np.ones(2), requires_grad=True)
    loss = (a * a).sum()

    def other():
        with pytest.raises(GraphFreedError, match="another thread"):
            loss.backward()
        return True

    assert _run_in_threads({0: other})[0]
    loss.backward()  # where the graph was built, it works
    np.testing.assert_array_equal(a.grad, [2.0, 2.0])


def test_grid_search_with_threads_scores_as_without():
    pytest.importorskip("sklearn")
    from joblib import parallel_backend
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV

    from tinygrad_mlp import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    grid = {"hidden_layer_sizes": [(8,), (16,)], "learning_rate_init": [0.01, 0.1]}

    def search(n_jobs):
        gs = GridSearchCV(MLPClassifier(max_iter=15, random_state=0, solver="sgd"), grid, cv=2,
                          n_jobs=n_jobs, error_score="raise")
        with parallel_backend("threading"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter=15 is expected
                gs.fit(X, y)
        return gs

    one, two = search(1), search(2)
    np.testing.assert_array_equal(one.cv_results_["mean_test_score"], two.cv_results_["mean_test_score"])
    assert one.best_params_ == two.best_params_
