"""Every Tensor op against PyTorch, through one helper (tinygrad's test_ops style).

:func:`helper_test_op` draws the inputs, runs the op on our Tensor and on ``torch.Tensor`` (float64,
CPU), feeds both the same random upstream gradient, and compares the forward values and the
gradients of every input.  The whole module skips when torch is not installed; CI installs it.
Behaviour that needs no torch (comparisons, conversions, dtypes) is pinned in test_tape.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from tinygrad_mlp import Tensor
from tinygrad_mlp import functional as F

torch = pytest.importorskip("torch")


def helper_test_op(shapes, torch_fn, our_fn=None, low=-2.0, high=2.0, dtype=np.float64, grad=True,
                   rtol=1e-10, atol=1e-12, seed=0, arrays=None):
    """Run ``torch_fn`` on torch tensors and ``our_fn`` (default: the same function) on Tensors.

    Compares forward values, then the gradients of ⟨u, out⟩ for a random u, input by input.
    """
    our_fn = our_fn or torch_fn
    rng = np.random.default_rng(seed)
    if arrays is None:
        arrays = [rng.uniform(low, high, size=s).astype(dtype) for s in shapes]
    tt = [torch.tensor(a, requires_grad=grad) for a in arrays]
    ours = [Tensor(a.copy(), requires_grad=grad) for a in arrays]
    t_out = torch_fn(*tt)
    o_out = our_fn(*ours)
    assert tuple(o_out.shape) == tuple(t_out.shape), f"shape {o_out.shape} vs torch {tuple(t_out.shape)}"
    assert o_out.dtype == np.dtype(str(t_out.dtype).replace("torch.", "")), (o_out.dtype, t_out.dtype)
    np.testing.assert_allclose(o_out.data, t_out.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
    if not grad:
        return
    u = rng.standard_normal(tuple(t_out.shape)).astype(dtype)
    t_out.backward(torch.tensor(u))
    o_out.backward(u)
    for k, (t, o) in enumerate(zip(tt, ours)):
        tg = np.zeros(t.shape, dtype) if t.grad is None else t.grad.numpy()
        og = np.zeros(o.shape, dtype) if o.grad is None else o.grad
        np.testing.assert_allclose(og, tg, rtol=rtol, atol=atol, err_msg=f"gradient of input {k}")


S = (3, 4)
OPS = {
    "add": ([S, (4,)], lambda a, b: a + b, None),
    "sub": ([S, S], lambda a, b: a - b, None),
    "mul": ([S, (3, 1)], lambda a, b: a * b, None),
    "div": ([S, S], lambda a, b: a / (b.abs() + 0.5), None),
    "neg": ([S], lambda a: -a, None),
    "pow_scalar": ([S], lambda a: a.abs() ** 2.5, None),
    "pow_tensor": ([S, S], lambda a, b: (a.abs() + 0.1) ** b, None),
    "rpow": ([S], lambda a: 2 ** a, None),
    "matmul": ([(3, 4), (4, 2)], lambda a, b: a @ b, None),
    "matmul_method": ([(2, 3, 4), (4,)], lambda a, b: a.matmul(b), None),
    "tanh": ([S], lambda a: a.tanh(), None),
    "sigmoid": ([S], lambda a: a.sigmoid(), None),
    "relu": ([S], lambda a: a.relu(), None),
    "exp": ([S], lambda a: a.exp(), None),
    "log": ([S], lambda a: (a.abs() + 0.1).log(), None),
    "abs": ([S], lambda a: a.abs(), None),
    "sqrt": ([S], lambda a: (a.abs() + 0.1).sqrt(), None),
    "clamp": ([S], lambda a: a.clamp(-0.5, 0.7), None),
    "clamp_min": ([S], lambda a: a.clamp(min=0.1), None),
    "max_all": ([S], lambda a: a.max(), None),
    "max_dim": ([S], lambda a: a.max(dim=1).values, None),
    "max_dim_keepdim": ([S], lambda a: a.max(0, keepdim=True).values, None),
    "min_dim": ([S], lambda a: a.min(dim=-1).values, None),
    "min_all": ([S], lambda a: a.min(), None),
    "sum": ([S], lambda a: a.sum(), None),
    "sum_dim": ([S], lambda a: a.sum(dim=1, keepdim=True), None),
    "sum_dims": ([(2, 3, 4)], lambda a: a.sum(dim=(0, 2)), None),
    "mean_dim": ([S], lambda a: a.mean(dim=0), None),
    "logsumexp": ([S], lambda a: a.logsumexp(dim=1), None),
    "softmax": ([S], lambda a: a.softmax(dim=1), None),
    "softmax_dim0": ([S], lambda a: a.softmax(0), None),
    "log_softmax": ([S], lambda a: a.log_softmax(dim=-1), None),
    "F_softmax": ([S], lambda a: torch.nn.functional.softmax(a, dim=1), lambda a: F.softmax(a, dim=1)),
    "transpose": ([S], lambda a: a.transpose(0, 1), None),
    "transpose_3d": ([(2, 3, 4)], lambda a: a.transpose(1, 2), None),
    "T": ([S], lambda a: a.T, None),
    "permute": ([(2, 3, 4)], lambda a: a.permute(2, 0, 1), None),
    "unsqueeze": ([S], lambda a: a.unsqueeze(1), None),
    "unsqueeze_neg": ([S], lambda a: a.unsqueeze(-1), None),
    "squeeze": ([(3, 1, 4, 1)], lambda a: a.squeeze(), None),
    "squeeze_dim": ([(3, 1, 4)], lambda a: a.squeeze(1), None),
    "squeeze_dim_not_1": ([(3, 1, 4)], lambda a: a.squeeze(0), None),
    "flatten": ([(2, 3, 4)], lambda a: a.flatten(), None),
    "flatten_1": ([(2, 3, 4)], lambda a: a.flatten(1), None),
    "view": ([(2, 3, 4)], lambda a: a.view(6, 4), None),
    "view_neg": ([(2, 3, 4)], lambda a: a.view(-1), None),
    "reshape": ([(2, 3, 4)], lambda a: a.reshape(4, -1), None),
    "clone": ([S], lambda a: a.clone() * 2, None),
    "getitem": ([(4, 5)], lambda a: a[1:3, ::2], None),
    "getitem_int": ([(4, 5)], lambda a: a[-1], None),
    "mse_loss": ([S, S], lambda a, b: torch.nn.functional.mse_loss(a, b),
                 lambda a, b: F.mse_loss(a, b)),
    "mse_loss_sum": ([S, S], lambda a, b: torch.nn.functional.mse_loss(a, b, reduction="sum"),
                     lambda a, b: F.mse_loss(a, b, reduction="sum")),
    "mse_loss_none": ([S, S], lambda a, b: torch.nn.functional.mse_loss(a, b, reduction="none"),
                      lambda a, b: F.mse_loss(a, b, reduction="none")),
}


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_op_matches_torch(name, dtype):
    shapes, torch_fn, our_fn = OPS[name]
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-6)
    helper_test_op(shapes, torch_fn, our_fn, dtype=dtype, **tol)


@pytest.mark.parametrize("fn", [
    lambda a: a.sum(0), lambda a: a.sum(-1), lambda a: a.sum(dim=0, keepdim=True), lambda a: a.mean(0),
    lambda a: a.logsumexp(dim=-1), lambda a: a.softmax(dim=0), lambda a: a.log_softmax(dim=-1),
    lambda a: a.max(), lambda a: a.unsqueeze(0), lambda a: a.flatten(), lambda a: a.squeeze(0),
    lambda a: a.transpose(0, -1)], ids=lambda f: "")
def test_zero_d_tensors_reduce_as_in_torch(fn):
    helper_test_op([()], fn)


def test_max_and_min_with_dim_return_torchs_values_and_indices():
    a = np.array([[1.0, 3.0, 3.0], [2.0, -1.0, 0.5]])
    for what in ("max", "min"):
        for dim in (0, 1, -1):
            for keep in (False, True):
                v, i = getattr(Tensor(a), what)(dim, keep)
                tv, ti = getattr(torch.tensor(a), what)(dim, keep)
                np.testing.assert_array_equal(v.data, tv.numpy())
                np.testing.assert_array_equal(i.data, ti.numpy())
                assert i.dtype == np.int64


def test_max_gradient_with_ties_follows_torch():
    a = np.array([[2.0, 2.0, 1.0], [0.0, 5.0, 5.0]])
    for fn in (lambda t: t.max(), lambda t: t.max(dim=1)[0], lambda t: t.min(dim=0)[0], lambda t: t.min()):
        helper_test_op(None, fn, arrays=[a])


def test_comparisons_match_torch():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 3, (3, 4)).astype(float), rng.integers(0, 3, (4,)).astype(float)
    for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
        for other in (Tensor(b), 1.0, b):
            mine = getattr(Tensor(a, requires_grad=True), op)(other)
            theirs = getattr(torch.tensor(a), op)(torch.tensor(other.data if isinstance(other, Tensor) else other))
            assert mine.dtype == np.bool_ and not mine.requires_grad
            np.testing.assert_array_equal(mine.data, theirs.numpy())


def test_scalar_promotion_follows_torch():
    x32 = np.ones(3, np.float32)
    for scalar in (2.0, np.float64(2.0), 2, np.int64(2)):
        mine = Tensor(x32) * scalar
        theirs = torch.tensor(x32) * (scalar.item() if isinstance(scalar, np.generic) else scalar)
        assert mine.dtype == np.float32 and theirs.dtype == torch.float32
    # two tensors of different float dtypes promote, in both libraries
    assert (Tensor(x32) + Tensor(np.ones(3))).dtype == np.float64
    assert (torch.tensor(x32) + torch.ones(3, dtype=torch.float64)).dtype == torch.float64


def test_pow_edges_follow_torch():
    # x ** 0 has gradient 0 everywhere, 0 included; 0 ** y with y > 0 has ∂/∂y = 0 (PyTorch's mask)
    helper_test_op(None, lambda a: a ** 0, arrays=[np.array([0.0, 2.0, -1.5])])
    helper_test_op(None, lambda a, b: a ** b, arrays=[np.array([0.0, 2.0, 0.0]), np.array([2.0, 0.5, 0.0])])


def test_clamp_gradient_at_the_bounds_follows_torch():
    helper_test_op(None, lambda a: a.clamp(-1.0, 1.0), arrays=[np.array([-1.0, 1.0, 0.0, 2.0, -3.0])])


def test_abs_and_relu_at_zero_follow_torch():
    helper_test_op(None, lambda a: a.abs(), arrays=[np.array([0.0, -0.0, 1.0, -2.0])])
    helper_test_op(None, lambda a: a.relu(), arrays=[np.array([0.0, -0.0, 1.0, -2.0])])


def test_indexing_follows_numpy_where_torch_differs():
    """Documented in the README: an int and an index array separated by a slice.

    NumPy counts the int as an advanced index, so the two broadcast to the front; PyTorch applies the
    int first (basic) and keeps the array's dim in place.  Our indexing is NumPy's.
    """
    x = np.arange(2 * 3 * 12 * 5 * 4, dtype=np.float64).reshape(2, 3, 12, 5, 4)
    idx = np.array([0, 2, 4])
    ours = Tensor(x)[1, :, 3:11:2, idx, 0:2]
    theirs = torch.tensor(x)[1, :, 3:11:2, torch.tensor(idx), 0:2]
    assert ours.shape == x[1, :, 3:11:2, idx, 0:2].shape == (3, 3, 4, 2)
    assert tuple(theirs.shape) == (3, 4, 3, 2)
    # where both agree: basic indexing, and a single index array
    np.testing.assert_array_equal(Tensor(x)[1, :, 3:11:2][:, :, idx].data,
                                  torch.tensor(x)[1, :, 3:11:2][:, :, torch.tensor(idx)].numpy())


def test_list_of_ints_is_float64_here_int64_in_torch():
    """A deliberate difference (README): the practical writes float vectors as [1, 0, 0]."""
    assert Tensor([0, 1]).dtype == np.float64 and torch.tensor([0, 1]).dtype == torch.int64
    assert Tensor([0, 1], dtype="int64").dtype == np.int64
    x = Tensor(np.arange(5.0))
    np.testing.assert_array_equal(x[Tensor([0, 3], dtype="int64")].data, [0.0, 3.0])
    with pytest.raises(IndexError, match="^index: a float array or tensor cannot index"):
        x[Tensor([0, 1])]


def test_named_parameters_match_state_dict_as_in_torch():
    from tinygrad_mlp import MLP, Linear
    m = MLP([3, 4, 2], seed=0)
    names = [n for n, _ in m.named_parameters()]
    assert names == list(m.state_dict())  # torch: named_parameters() keys == state_dict() keys
    assert all(a is b for (_, a), b in zip(m.named_parameters(), m.parameters()))
    seq = torch.nn.Sequential(torch.nn.Linear(3, 4))
    assert [n for n, _ in seq.named_parameters()] == list(seq.state_dict())
    assert [n for n, _ in Linear(3, 2).named_parameters()] == ["W", "b"]
