"""Autograd = hand-written backprop = finite differences (Questions 1.2 and 2.2, then random networks).

Three independent paths to the same gradient: the tape (``MLP`` + ``backward``), the practical's
recursion written out in NumPy (:mod:`tinygrad_mlp.practical.reference`), and central differences
(:func:`tinygrad_mlp.autograd.gradcheck.gradcheck`).  The first two do the same arithmetic in a different
order, so they agree to 1e-10 relative; finite differences agree to their own truncation error.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_mlp import reference
from tinygrad_mlp.practical.exercise import builtin, run_step
from tinygrad_mlp.autograd.gradcheck import gradcheck
from tinygrad_mlp.nn import MLP
from tinygrad_mlp.nn.optim import SGD
from tinygrad_mlp.autograd.tensor import Tensor

HAND_RTOL = 1e-10
PAIRS = sorted(reference.OUTPUT_LOSS_PAIRS)  # (output, loss)
X2 = np.array([[1.0, 0, 1, 0], [0, 0, 10, 0]])
Y2 = np.array([[0.0, 1, 0], [0, 0, 1]])


def assert_hand(got, want, what=""):
    """Autograd vs hand-written: 1e-10 relative to the array's scale (entries near 0 need the scale)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=HAND_RTOL, atol=HAND_RTOL * scale * 1e-3, err_msg=what)


def model_with(W, b, hidden, output):
    model = MLP([W[0].shape[1]] + [w.shape[0] for w in W], hidden=hidden, output=output,
                weight_init="zeros", bias_init="zeros")
    model.load_state_dict({**{f"W{l + 1}": w for l, w in enumerate(W)}, **{f"b{l + 1}": c for l, c in enumerate(b)}})
    return model


def loss_of_params(model, X, Y, loss):
    """f(W^[1], b^[1], …) → the summed batch loss, for gradcheck (which passes its own leaf tensors)."""
    def f(*params):
        for l, layer in enumerate(model.layers):
            layer.W, layer.b = params[2 * l], params[2 * l + 1]
        return model.loss(X, Y, loss, reduction="sum")
    return f


def autograd_grads(model, X, Y, loss):
    model.zero_grad()
    total = model.loss(X, Y, loss, reduction="sum")
    total.backward()
    return float(total.data), [p.grad.copy() for p in model.parameters()]


def q_weights():
    return [np.full((4, 4), 0.1), np.full((3, 4), 0.1), np.full((3, 3), 0.1)], [np.full(4, 0.1), np.full(3, 0.1),
                                                                              np.full(3, 0.1)]


# ------------------------------------------------------------------- Questions 1.2 and 2.2
@pytest.mark.parametrize("output, loss", [("identity", "squared_error"), ("softmax", "cross_entropy")])
def test_question_batch_three_ways(output, loss):
    W, b = q_weights()
    model = model_with(W, b, "tanh", output)
    total, grads = autograd_grads(model, X2, Y2, loss)
    hand = reference.batch_backward(W, b, X2, Y2, "tanh", output, loss)
    assert_hand(total, hand["loss"], "loss")
    for l in range(3):
        assert_hand(grads[2 * l], hand["dW"][l], f"dW{l + 1}")
        assert_hand(grads[2 * l + 1], hand["db"][l], f"db{l + 1}")
    # Finite differences on the same summed loss (a fresh model: gradcheck swaps in its own leaves).
    fresh = model_with(W, b, "tanh", output)
    assert gradcheck(loss_of_params(fresh, X2, Y2, loss), *[a for pair in zip(W, b) for a in pair],
                     upstream=np.array(1.0))


@pytest.mark.parametrize("output, loss", [("identity", "squared_error"), ("softmax", "cross_entropy")])
def test_batch_gradient_is_the_sum_of_the_example_gradients(output, loss):
    W, b = q_weights()
    model = model_with(W, b, "tanh", output)
    _, batch = autograd_grads(model, X2, Y2, loss)
    _, g1 = autograd_grads(model, X2[0], Y2[0], loss)
    _, g2 = autograd_grads(model, X2[1], Y2[1], loss)
    for gb, a, c in zip(batch, g1, g2):
        np.testing.assert_allclose(gb, a + c, rtol=1e-12, atol=1e-15)
    # The second example alone moves the parameters: x₃ = 10 makes its W^[1] column 3 gradient
    # ten times its δ^[1], and the other columns (x = 0 there) exactly zero.
    hand2 = reference.backward(W, b, X2[1], Y2[1], "tanh", output, loss)
    np.testing.assert_allclose(g2[0][:, 2], 10 * hand2["delta"][0], rtol=1e-12, atol=1e-18)
    assert np.all(g2[0][:, [0, 1, 3]] == 0.0)


@pytest.mark.parametrize("name, output, loss", [("q1-batch", "identity", "squared_error"),
                                                ("q2-batch", "softmax", "cross_entropy")])
def test_batch_step_is_one_sgd_step_on_the_summed_loss(name, output, loss):
    W, b = q_weights()
    hand = reference.batch_backward(W, b, X2, Y2, "tanh", output, loss)
    W_new, b_new = reference.sgd_update(W, b, hand["dW"], hand["db"], 0.1)
    model = model_with(W, b, "tanh", output)
    model.loss(X2, Y2, loss, reduction="sum").backward()
    SGD(model.parameters(), lr=0.1).step()
    r = run_step(builtin(name))
    for l in range(3):
        assert_hand(model.layers[l].W.data, W_new[l])
        assert_hand(model.layers[l].b.data, b_new[l])
        assert_hand(r["W"][l], W_new[l])
        assert_hand(r["b"][l], b_new[l])
    assert_hand(r["loss"], hand["loss"])
    assert len(r["examples"]) == 2


def test_q2_batch_hidden_parameters_still_do_not_move():
    # Both examples meet equal logits (every hidden unit of a layer is the same), so each δ^[3]
    # sums to 0 and the hidden gradients vanish for the batch too (exactly, up to ~1e-17 rounding).
    r = run_step(builtin("q2-batch"))
    for l in range(2):
        assert np.max(np.abs(np.asarray(r["grad_W"][l]))) < 1e-15
        assert np.max(np.abs(np.asarray(r["grad_b"][l]))) < 1e-15


# ------------------------------------------------------------------- the hand-written formulas
def test_hand_written_deltas_follow_the_sheet_formulas():
    rng = np.random.default_rng(5)
    W = [rng.standard_normal((3, 2)), rng.standard_normal((2, 3))]
    b = [rng.standard_normal(3), rng.standard_normal(2)]
    x, y = rng.standard_normal(2), np.array([0.3, 0.7])
    for hidden, gp in (("tanh", lambda z: 1 - np.tanh(z) ** 2), ("sigmoid", lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
                       ("relu", lambda z: (z > 0) * 1.0), ("identity", lambda z: np.ones_like(z))):
        r = reference.backward(W, b, x, y, hidden, "sigmoid", "squared_error")
        z1 = W[0] @ x + b[0]
        s = 1 / (1 + np.exp(-r["z"][1]))
        np.testing.assert_allclose(r["delta"][1], (s - y) * s * (1 - s), rtol=1e-13)  # (ŷ − y) ⊙ σ'(z^[L])
        np.testing.assert_allclose(r["delta"][0], (W[1].T @ r["delta"][1]) * gp(z1), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(r["dW"][0], np.outer(r["delta"][0], x), rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(r["dx"], W[0].T @ r["delta"][0], rtol=1e-13, atol=1e-16)


def test_hand_written_rejects_an_unmatched_output_and_loss():
    W, b = q_weights()
    with pytest.raises(ValueError, match=r"\(output, loss\)"):
        reference.backward(W, b, X2[0], Y2[0], "tanh", "softmax", "squared_error")


# ------------------------------------------------------------------- random networks (hypothesis)
@st.composite
def networks(draw):
    """Random architecture (1–4 weight layers, widths 1–8), activation, output/loss pair, batch 1–5.

    The values come from a NumPy generator seeded by hypothesis: shrinking then varies the
    structure, and the weights stay generic (a relu unit sitting exactly on its kink at z = 0
    would make finite differences meaningless).
    """
    n_layers = draw(st.integers(1, 4))
    sizes = draw(st.lists(st.integers(1, 8), min_size=n_layers + 1, max_size=n_layers + 1))
    hidden = draw(st.sampled_from(sorted(reference.ACTIVATIONS)))
    output, loss = draw(st.sampled_from(PAIRS))
    n = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([0.3, 1.0, 2.0]))
    rng = np.random.default_rng(seed)
    W = [rng.standard_normal((o, i)) * scale / np.sqrt(i) for i, o in zip(sizes[:-1], sizes[1:])]
    b = [rng.standard_normal(o) * 0.5 for o in sizes[1:]]
    X = rng.standard_normal((n, sizes[0]))
    if loss == "cross_entropy":
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]
    else:
        Y = rng.uniform(0, 1, (n, sizes[-1])) if output == "sigmoid" else rng.standard_normal((n, sizes[-1]))
    return sizes, hidden, output, loss, W, b, X, Y


@settings(max_examples=60, deadline=None)
@given(networks())
def test_random_networks_autograd_equals_hand_written_equals_finite_differences(net):
    sizes, hidden, output, loss, W, b, X, Y = net
    hand = reference.batch_backward(W, b, X, Y, hidden, output, loss)
    model = model_with(W, b, hidden, output)
    Xt = Tensor(X, requires_grad=True)
    model.zero_grad()
    total = model.loss(Xt, Y, loss, reduction="sum")
    total.backward()
    assert_hand(total.data, hand["loss"], "loss")
    for l in range(len(W)):
        assert_hand(model.layers[l].W.grad, hand["dW"][l], f"dW{l + 1}")
        assert_hand(model.layers[l].b.grad, hand["db"][l], f"db{l + 1}")
    # ∂L/∂x: the hand-written ∂L/∂h^[0] = W^[1]ᵀ δ^[1], example by example.
    assert_hand(Xt.grad, np.stack([e["dx"] for e in hand["examples"]]), "dx")
    # Every per-example intermediate too: z, h, δ (one example through the trace).
    zs, hs = model.trace(X[0])
    one = hand["examples"][0]
    for l in range(len(W)):
        assert_hand(zs[l].data, one["z"][l], f"z{l + 1}")
        assert_hand(hs[l].data, one["h"][l], f"h{l + 1}")
    if hidden == "relu":  # finite differences need every unit off the kink by more than the step
        kink = min(np.min(np.abs(z)) for e in hand["examples"] for z in e["z"][:-1]) if len(W) > 1 else 1.0
        if kink < 1e-4:
            return
    fresh = model_with(W, b, hidden, output)
    assert gradcheck(loss_of_params(fresh, X, Y, loss), *[a for pair in zip(W, b) for a in pair],
                     upstream=np.array(1.0))


@settings(max_examples=15, deadline=None)
@given(networks())
def test_mean_reduction_is_the_sum_over_n(net):
    sizes, hidden, output, loss, W, b, X, Y = net
    hand = reference.batch_backward(W, b, X, Y, hidden, output, loss)
    model = model_with(W, b, hidden, output)
    mean = model.loss(X, Y, loss, reduction="mean")
    mean.backward()
    n = len(X)
    assert_hand(mean.data, hand["loss"] / n)
    for l in range(len(W)):
        assert_hand(model.layers[l].W.grad, hand["dW"][l] / n)
        assert_hand(model.layers[l].b.grad, hand["db"][l] / n)
