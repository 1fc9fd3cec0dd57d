"""gradcheck and directional_check: they pass on right gradients and name the culprit on wrong ones."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from strategies import arrays_in, mlp_architectures, small_batches
from tinygrad_mlp import MLP, GradcheckError, Tensor, directional_check, gradcheck
from tinygrad_mlp import functional as F
from tinygrad_mlp.autograd.gradcheck import tolerances
from tinygrad_mlp.autograd.tensor import apply


class _WrongTanh:
    """tanh with the sheet's slip: ∂tanh/∂z written as tanh² instead of 1 − tanh²."""

    name, nin = "wrong_tanh", 1

    @staticmethod
    def forward(z):
        h = np.tanh(z)
        return h, h

    @staticmethod
    def vjp(g, h):
        return (g * h * h,)


def wrong_tanh(t: Tensor) -> Tensor:
    return apply(_WrongTanh, (t,), (t.data,))


def test_gradcheck_passes_on_correct_functions():
    rng = np.random.default_rng(0)
    W, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    assert gradcheck(lambda W, x: (W @ x).tanh(), W, x)
    assert gradcheck(lambda z: F.log_softmax(z), rng.standard_normal((2, 5)))
    assert gradcheck(lambda a, b: (a / b).sum(), rng.standard_normal(3), rng.uniform(1, 2, 3))


def test_gradcheck_names_input_index_and_both_values():
    W = np.array([[0.3, -0.2], [0.1, 0.4]])
    x = np.array([0.5, -1.0])
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda W, x: wrong_tanh(W @ x), W, x)
    msg = str(info.value)
    assert "input 0" in msg and "index (0, 0)" in msg
    assert "tape gradient" in msg and "finite difference" in msg and "abs error" in msg


def test_gradcheck_uses_a_random_upstream():
    # A vjp that returns the ones-upstream answer whatever g is: right only for u = 1.
    class OnesOnly:
        name, nin = "ones_only", 1

        @staticmethod
        def forward(z):
            return 2.0 * z, None

        @staticmethod
        def vjp(g, ctx):
            return (np.full(g.shape, 2.0),)

    def f(z):
        return apply(OnesOnly, (z,), (z.data,))

    assert gradcheck(f, np.array([1.0, 2.0]), upstream=np.ones(2))
    with pytest.raises(GradcheckError):
        gradcheck(f, np.array([1.0, 2.0]))


def test_directional_check_catches_the_same_bug_on_a_large_input():
    rng = np.random.default_rng(1)
    W, X = rng.standard_normal((50, 200)) * 0.1, rng.standard_normal((200, 30))
    assert directional_check(lambda W, X: (W @ X).tanh(), W, X)
    with pytest.raises(GradcheckError, match="direction 0"):
        directional_check(lambda W, X: wrong_tanh(W @ X), W, X)


@settings(max_examples=15)
@given(arch=mlp_architectures(output=("identity",)), data=small_batches(3))
def test_mlp_loss_gradients_pass_both_checks(arch, data):
    """A small MLP's squared error, every W^[l] and b^[l] an input of the check."""
    sizes = [3] + arch["sizes"][1:]
    act = "tanh" if arch["hidden"] in ("relu", "identity") else arch["hidden"]  # smooth: FD needs no kinks
    params = [p.data.copy() for p in MLP(sizes, hidden=act, seed=0).parameters()]
    y = np.random.default_rng(0).standard_normal((data.shape[0], sizes[-1]))

    def f(*ps):
        h = Tensor(data)
        for l in range(len(sizes) - 1):
            z = h @ ps[2 * l].T + ps[2 * l + 1]  # z^[l] = h^[l-1] W^[l]ᵀ + b^[l], one example per row
            h = z if l == len(sizes) - 2 else getattr(z, act)()
        return ((h - y) * (h - y)).sum()

    assert gradcheck(f, *params)
    assert directional_check(f, *params)


def test_float32_uses_the_float32_policy():
    assert tolerances(np.float32)["rtol"] > tolerances(np.float64)["rtol"]
    assert tolerances(np.float64) == {"rtol": 1e-5, "atol": 1e-8}
    x = Tensor(np.linspace(-1, 1, 5, dtype=np.float32), requires_grad=True)
    assert gradcheck(lambda t: t.tanh() * t, x)


def test_bad_inputs():
    with pytest.raises(TypeError, match=r"inputs\[0\].*float"):
        gradcheck(lambda t: t, Tensor(np.arange(3)))
    with pytest.raises(TypeError, match="f: expected f to return a Tensor"):
        gradcheck(lambda t: 1.0, np.ones(2), upstream=np.ones(()))


@settings(max_examples=20)
@given(a=arrays_in("default"))
def test_gradcheck_agrees_with_the_closed_form(a):
    # d/dz Σ u·sigmoid(z) = u σ(1−σ): gradcheck must accept the tape and its error message must not fire.
    assert gradcheck(lambda t: t.sigmoid(), a)
