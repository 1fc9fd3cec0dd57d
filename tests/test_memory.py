"""Determinism and memory: the same seed gives the same bits, and training does not leak.

The tape's records are freed by each backward, so a training loop holds a
constant number of them (counted with :func:`tinygrad_mlp.tape_size`) and a
constant amount of memory (measured with :mod:`tracemalloc` between step 200
and step 1000).  Graphs dropped without a backward are swept off the tape
once it passes 10,000 records, so evaluation without ``no_grad`` is bounded too.
"""
from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import tinygrad_mlp.autograd.tape as tape_mod
from tinygrad_mlp import MLP, Tensor, no_grad, tape_size
from tinygrad_mlp import functional as F
from tinygrad_mlp.nn.optim import SGD


def _data(seed=0, n=16, d=8, k=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


def _train(seed, dtype, steps=60, momentum=0.9, batch=4):
    X, y = _data()
    model = MLP([8, 16, 4], hidden="tanh", output="softmax", seed=seed, dtype=dtype)
    opt = SGD(model.parameters(), lr=0.05, momentum=momentum)
    order = np.random.default_rng(seed).permutation(len(X))
    for step in range(steps):
        idx = order[(step * batch) % len(X):][:batch]
        opt.zero_grad()
        model.loss(X[idx].astype(dtype), y[idx]).backward()
        opt.step()
    return model


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_seed_gives_bit_identical_weights_after_training(dtype):
    a, b = _train(7, dtype), _train(7, dtype)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(sa[k].tobytes() == sb[k].tobytes() and sa[k].dtype == np.dtype(dtype) for k in sa)
    # ... and the seed matters: another seed gives other weights (so the equality above is not vacuous).
    sc = _train(8, dtype).state_dict()
    assert any(sa[k].tobytes() != sc[k].tobytes() for k in sa)
    # Training moved the weights away from their initial values.
    s0 = MLP([8, 16, 4], hidden="tanh", output="softmax", seed=7, dtype=dtype).state_dict()
    assert all(not np.array_equal(sa[k], s0[k]) for k in sa)


def test_same_seed_gives_the_same_initial_weights_with_a_generator_or_an_int():
    a = MLP([5, 3, 2], seed=123).state_dict()
    b = MLP([5, 3, 2], seed=np.random.default_rng(123)).state_dict()
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)


def test_training_loop_frees_its_records_and_does_not_grow_memory():
    X, y = _data(1, n=32)
    model = MLP([8, 16, 4], hidden="tanh", output="softmax", seed=0)
    opt = SGD(model.parameters(), lr=0.01, momentum=0.5)
    gc.collect()
    base = tape_size()

    def step(i):
        idx = slice((i * 8) % 32, (i * 8) % 32 + 8)
        opt.zero_grad()
        loss = model.loss(X[idx], y[idx])
        during = tape_size() - base
        loss.backward()
        opt.step()
        return during

    assert step(0) >= 4  # the forward really records (affine, tanh, affine, the loss, ...)
    assert tape_size() == base  # ... and the backward frees every one of them
    tracemalloc.start()
    try:
        for i in range(1, 1000):
            recorded = step(i)
            assert tape_size() == base, f"step {i}: {tape_size() - base} records left on the tape"
            if i == 200:
                gc.collect()
                at_200 = tracemalloc.get_traced_memory()[0]
        gc.collect()
        at_1000 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert recorded >= 4
    # 800 more steps of a leak of even one small record (> 100 bytes) per step would be > 80 kB.
    assert at_1000 - at_200 < 32_000, f"memory grew by {at_1000 - at_200} bytes between steps 200 and 1000"


def test_evaluation_without_no_grad_keeps_the_tape_bounded():
    model = MLP([8, 16, 4], hidden="tanh", output="softmax", seed=0)
    X, _ = _data(2, n=4)
    gc.collect()
    base = tape_size()
    per_pass = None
    peak = 0
    for i in range(2500):  # ≈ 6 records a pass: 15,000 records in all, past the 10,000 sweep threshold
        before = tape_size()
        model(X)  # the result is dropped: no backward will ever consume these records
        if per_pass is None:
            per_pass = tape_size() - before
        peak = max(peak, tape_size() - base)
    assert per_pass >= 5
    assert 2500 * per_pass > 10_000 + 1000  # the loop really went past the sweep threshold
    assert peak <= 10_001 + per_pass, f"tape reached {peak} records"
    assert tape_size() - base < 10_001
    # A sweep now leaves nothing of the dropped graphs.
    tape_mod.sweep()
    assert tape_size() <= base


def test_no_grad_records_nothing_and_backward_of_retained_graphs_is_freed():
    model = MLP([8, 16, 4], hidden="relu", output="softmax", seed=0)
    X, y = _data(3, n=4)
    base = tape_size()
    with no_grad():
        for _ in range(100):
            model(X)
    assert tape_size() == base
    loss = model.loss(X, y)
    loss.backward(retain_graph=True)
    kept = tape_size() - base
    assert kept >= 4  # affine, tanh, affine, the loss, ...
    loss.backward()  # the second backward frees what the first retained
    assert tape_size() == base
    del loss


def test_a_loss_dropped_without_backward_is_swept_with_its_whole_graph():
    base = tape_size()
    w = Tensor(np.ones(3), requires_grad=True)
    loss = F.squared_error(w * 2.0, np.zeros(3))
    assert tape_size() > base
    del loss
    gc.collect()
    tape_mod.sweep()
    assert tape_size() <= base


def test_a_dropped_graph_frees_its_arrays_at_once():
    # Outside no_grad an evaluation records its graph; dropping the result must free every array of it
    # (before, the records kept them until the tape passed 10,000 entries: 986 MB for one such call).
    model = MLP([64, 400, 10], hidden="tanh", output="softmax", seed=0)
    X = np.random.default_rng(0).uniform(0, 1, (2000, 64))
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(4):
            out = model(X)
            held = tracemalloc.get_traced_memory()[0] - base
            assert held > 5e6  # the graph really held its batch-sized arrays (400 × 2000 × 8 B = 6.4 MB each)
            del out
            gc.collect()
            assert tracemalloc.get_traced_memory()[0] - base < 2e6
    finally:
        tracemalloc.stop()


def test_a_dropped_deep_chain_is_freed_without_recursion_trouble():
    a = Tensor(np.ones(3), requires_grad=True)
    t = a
    for _ in range(50_000):
        t = t * 1.0
    before = tape_size()
    del t
    gc.collect()
    tape_mod.sweep()
    assert tape_size() < before - 49_000
