"""Adam and SGD (with Nesterov momentum) against the published update equations and scikit-learn's optimisers."""
import math

import numpy as np
import pytest
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

from tinygrad_mlp.nn.optim import SGD, Adam
from tinygrad_mlp.autograd.tensor import Tensor


def _adam_by_hand(theta, grads, lr, b1, b2, eps):
    """Kingma & Ba's Adam for one scalar, with scikit-learn's folded step size, written out in floats."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        theta = theta - lr_t * m / (math.sqrt(v) + eps)
        out.append(theta)
    return out


def test_adam_first_step_moves_by_about_lr_whatever_the_gradient_scale():
    # t = 1: m = (1−β₁)g, v = (1−β₂)g², η₁ = η sqrt(1−β₂)/(1−β₁),
    # so the step is η g/(|g| + ε/sqrt(1−β₂)) ≈ η sign(g) whatever |g|.
    p = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = Adam([p], lr=0.1)
    p.grad = np.array([0.5, -1e3, 1e-3])
    opt.step()
    eps_eff = 1e-8 / math.sqrt(1 - 0.999)
    expected = [1.0 - 0.1 * 0.5 / (0.5 + eps_eff), -2.0 + 0.1 * 1e3 / (1e3 + eps_eff),
                3.0 - 0.1 * 1e-3 / (1e-3 + eps_eff)]
    np.testing.assert_allclose(p.data, expected, rtol=1e-14)
    assert abs(p.data[0] - 0.9) < 1e-6


@pytest.mark.parametrize("lr,b1,b2,eps", [(0.001, 0.9, 0.999, 1e-8), (0.05, 0.5, 0.9, 1e-3), (1.0, 0.0, 0.0, 1e-8)])
def test_adam_three_steps_match_the_equations_by_hand(lr, b1, b2, eps):
    grads = [[0.3, -1.2], [-0.7, 0.4], [0.1, 2.5]]
    p = Tensor([0.25, -0.5], requires_grad=True)
    opt = Adam([p], lr=lr, betas=(b1, b2), eps=eps)
    got = []
    for g in grads:
        p.grad = np.array(g)
        opt.step()
        got.append(p.data.copy())
    for k, theta0 in enumerate([0.25, -0.5]):
        expected = _adam_by_hand(theta0, [g[k] for g in grads], lr, b1, b2, eps)
        np.testing.assert_allclose([step[k] for step in got], expected, rtol=1e-13, atol=1e-15)
    assert opt.t == 3


def test_adam_is_bit_identical_to_scikit_learns_adam_optimizer():
    rng = np.random.default_rng(3)
    shapes = [(4, 3), (3,)]
    ours = [Tensor(rng.normal(size=s), requires_grad=True) for s in shapes]
    theirs = [p.data.copy() for p in ours]
    opt = Adam(ours, lr=0.01)
    ref = AdamOptimizer(theirs, learning_rate_init=0.01)
    for _ in range(5):
        grads = [rng.normal(size=s) for s in shapes]
        for p, g in zip(ours, grads):
            p.grad = g.copy()
        opt.step()
        ref.update_params(theirs, grads)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.data, q)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_scikit_learns_sgd_optimizer(nesterov):
    rng = np.random.default_rng(4)
    ours = [Tensor(rng.normal(size=(3, 2)), requires_grad=True)]
    theirs = [ours[0].data.copy()]
    opt = SGD(ours, lr=0.05, momentum=0.9, nesterov=nesterov)
    ref = SGDOptimizer(theirs, learning_rate_init=0.05, momentum=0.9, nesterov=nesterov)
    for _ in range(4):
        g = rng.normal(size=(3, 2))
        ours[0].grad = g.copy()
        opt.step()
        ref.update_params(theirs, [g])
    np.testing.assert_allclose(ours[0].data, theirs[0], rtol=1e-13, atol=1e-15)


def test_sgd_nesterov_two_steps_by_hand():
    # v₁ = g₁, θ₁ = θ₀ − η(μ v₁ + g₁);  v₂ = μ v₁ + g₂, θ₂ = θ₁ − η(μ v₂ + g₂)
    p = Tensor([1.0], requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.5, nesterov=True)
    p.grad = np.array([2.0])
    opt.step()
    assert p.data[0] == pytest.approx(1.0 - 0.1 * (0.5 * 2.0 + 2.0))
    p.grad = np.array([-1.0])
    opt.step()
    assert p.data[0] == pytest.approx(0.7 - 0.1 * (0.5 * (0.5 * 2.0 - 1.0) - 1.0))


def test_adam_leaves_a_parameter_without_gradient_alone():
    a = Tensor([1.0], requires_grad=True)
    b = Tensor([2.0], requires_grad=True)
    opt = Adam([a, b], lr=0.1)
    a.grad = np.array([1.0])
    opt.step()
    assert b.data[0] == 2.0 and a.data[0] < 1.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=0.0), r"^lr: expected a positive finite number"),
    (dict(lr=0.1, betas=(1.0, 0.9)), r"^betas\[0\]: expected a number in \[0, 1\)"),
    (dict(lr=0.1, betas=(0.9, -0.1)), r"^betas\[1\]: expected a number in \[0, 1\)"),
    (dict(lr=0.1, betas=0.9), r"^betas: expected a pair"),
    (dict(lr=0.1, eps=0.0), r"^eps: expected a positive finite number"),
])
def test_adam_rejects_bad_hyper_parameters_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adam([Tensor([1.0], requires_grad=True)], **kwargs)


def test_sgd_rejects_a_non_bool_nesterov():
    with pytest.raises(TypeError, match=r"^nesterov: expected a bool"):
        SGD([Tensor([1.0], requires_grad=True)], lr=0.1, nesterov="yes")
