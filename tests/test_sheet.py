"""Questions 1.1 and 2.1 of the practical: every number the sheet prints, at its printed precision.

The expected values are typed in from the sheet (/work/shared/seeds/000_7676cd75a8d362bd.txt), not
computed by the code under test.  A printed number with d decimals is met when the computed value
lies within half a unit of its last digit: |got − printed| ≤ ½·10⁻ᵈ.

The sheet has typos; where it and the maths disagree the test follows the maths:

- Q1 prints b^[3] with four entries (in its listing of the parameters and again inside z^[3]);
  layer 3 has three units, so b^[3] has three.
- Q1 prints h^[1] = tanh of a five-entry vector, W^[2]ᵀ with five columns in two rows, and
  ∂L/∂h^[1], δ^[1] (inside ∂L/∂W^[1]) with three entries; layer 1 has four units, so all are
  four-vectors with the value shown.
- Q1's ∂L/∂b^[1] is garbled (a run of three-vectors, some with the sign flipped, one reading
  0.0132); ∂L/∂b^[1] = δ^[1] = −0.01332 in each of four entries, which is what its update of b^[1]
  (0.101332) uses.
- Q1 derives tanh'(x) and ends at tanh(x)², but then computes with 1 − h², which is right
  (the derivation drops the −tanh² term it had one line before); the numbers below follow 1 − h².
- Q2 prints b^[2] with four entries, b^[3] as a 3 × 3 matrix and p = softmax of a four-vector;
  they are three-vectors.
- Q2 prints p = 0.3333 and δ^[3] = 0.3333 / −0.6667: the logits are equal, so p = 1/3 exactly.
- Q2 says the hidden parameters do not change.  That is exact, not a rounding: δ^[3] = p − y
  sums to 1/3 + 1/3 + 1/3 − 1 = 0, every row of W^[3] is the same, so ∂L/∂h^[2] = W^[3]ᵀ δ^[3]
  = 0.1 · Σₖ δₖ^[3] = 0, and every hidden gradient below it is 0.  Float64 leaves a rounding
  residue of about 1e-17 (1/3 is not a binary fraction); the test bounds it by 1e-15.
"""
from __future__ import annotations

import numpy as np
import pytest

from tinygrad_mlp import functional as F
from tinygrad_mlp.practical.exercise import builtin, run_step
from tinygrad_mlp.nn import MLP
from tinygrad_mlp.nn.optim import SGD

X = [1.0, 0.0, 1.0, 0.0]
Y = [0.0, 1.0, 0.0]


def assert_printed(got, printed, what: str) -> None:
    """Each entry of ``got`` rounds to the sheet's ``printed`` string (a number, or nested lists of them)."""
    want = np.array(printed, dtype=object)
    got = np.asarray(got, dtype=np.float64)
    want_f = np.vectorize(float, otypes=[float])(want)
    assert got.shape == want_f.shape, f"{what}: shape {got.shape}, the sheet has {want_f.shape}"
    decimals = np.vectorize(lambda s: len(s.split(".")[1]) if "." in s else 0, otypes=[int])(want)
    tol = 0.5 * 10.0 ** (-decimals.astype(float)) * (1 + 1e-9)
    bad = np.abs(got - want_f) > tol
    assert not bad.any(), f"{what}: computed {got.tolist()} does not round to the sheet's {want.tolist()}"


def col(s: str, n: int) -> list[str]:
    return [s] * n


def rows(*r: str, n: int) -> list[list[str]]:
    return [[v] * n for v in r]


def via_mlp(output: str) -> dict:
    """The step through the public API: MLP, trace, a loss from functional, backward, SGD."""
    model = MLP([4, 4, 3, 3], hidden="tanh", output=output, weight_init=0.1, bias_init=0.1)
    zs, hs = model.trace(X)
    loss = F.cross_entropy(zs[-1], Y) if output == "softmax" else F.squared_error(hs[-1], Y)
    loss.backward()
    params = model.parameters()
    out = {"z": [z.data.copy() for z in zs], "h": [h.data.copy() for h in hs], "loss": float(loss.data),
           "dz": [z.grad for z in zs], "dh": [h.grad for h in hs],
           "grad_W": [p.grad.copy() for p in params[0::2]], "grad_b": [p.grad.copy() for p in params[1::2]]}
    SGD(params, lr=0.1).step()
    out["W"] = [layer.W.data for layer in model.layers]
    out["b"] = [layer.b.data for layer in model.layers]
    return out


def via_run_step(name: str) -> dict:
    r = run_step(builtin(name))
    ex = r["examples"][0]
    return {"z": ex["z"], "h": ex["h"], "loss": ex["loss"], "dz": ex["dz"], "dh": ex["dh"],
            "grad_W": r["grad_W"], "grad_b": r["grad_b"], "W": r["W"], "b": r["b"], "total": r["loss"]}


@pytest.fixture(scope="module", params=["mlp", "run_step"])
def q1(request):
    return via_mlp("identity") if request.param == "mlp" else via_run_step("q1")


@pytest.fixture(scope="module", params=["mlp", "run_step"])
def q2(request):
    return via_mlp("softmax") if request.param == "mlp" else via_run_step("q2")


# ----------------------------------------------------------------------------- Question 1.1
def test_q1_forward(q1):
    assert_printed(q1["z"][0], col("0.3", 4), "z^[1]")
    assert_printed(q1["h"][0], col("0.2913", 4), "h^[1]")
    assert_printed(q1["z"][1], col("0.2165", 3), "z^[2]")
    assert_printed(q1["h"][1], col("0.2132", 3), "h^[2]")
    assert_printed(q1["z"][2], col("0.16396", 3), "ŷ = z^[3]")
    assert_printed(q1["h"][2], col("0.16396", 3), "ŷ = h^[3] (identity output)")
    assert_printed(q1["loss"], "0.376", "L")


def test_q1_output_layer_gradients(q1):
    assert_printed(q1["dz"][2], ["0.16396", "-0.83604", "0.16396"], "∂L/∂z^[3]")
    assert_printed(q1["dh"][2], ["0.16396", "-0.83604", "0.16396"], "∂L/∂ŷ (identity: = ∂L/∂z^[3])")
    assert_printed(q1["grad_W"][2], rows("0.03496", "-0.17825", "0.03496", n=3), "∂L/∂W^[3]")
    assert_printed(q1["grad_b"][2], ["0.16396", "-0.83604", "0.16396"], "∂L/∂b^[3]")


def test_q1_hidden_gradients(q1):
    assert_printed(q1["dh"][1], col("-0.050812", 3), "∂L/∂h^[2]")
    assert_printed(q1["dz"][1], col("-0.04850", 3), "∂L/∂z^[2]")
    assert_printed(q1["grad_W"][1], rows("-0.01413", "-0.01413", "-0.01413", n=4), "∂L/∂W^[2]")
    assert_printed(q1["grad_b"][1], col("-0.04850", 3), "∂L/∂b^[2]")
    assert_printed(q1["dh"][0], col("-0.01455", 4), "∂L/∂h^[1] (sheet: three entries)")
    assert_printed(q1["dz"][0], col("-0.01332", 4), "∂L/∂z^[1]")
    assert_printed(q1["grad_W"][0], [["-0.01332", "0", "-0.01332", "0"]] * 4, "∂L/∂W^[1]")
    assert_printed(q1["grad_b"][0], col("-0.01332", 4), "∂L/∂b^[1] (garbled on the sheet)")
    # The entries multiplying x₂ = x₄ = 0 are exactly zero, not just to four decimals.
    assert np.all(np.asarray(q1["grad_W"][0])[:, [1, 3]] == 0.0)


def test_q1_updated_parameters(q1):
    assert_printed(q1["W"][0], [["0.101332", "0.1", "0.101332", "0.1"]] * 4, "W^[1] after")
    assert_printed(q1["b"][0], col("0.101332", 4), "b^[1] after")
    assert_printed(q1["W"][1], rows("0.101413", "0.101413", "0.101413", n=4), "W^[2] after")
    assert_printed(q1["b"][1], col("0.10485", 3), "b^[2] after")
    assert_printed(q1["W"][2], rows("0.0965", "0.1178", "0.0965", n=3), "W^[3] after")
    assert_printed(q1["b"][2], ["0.0836", "0.1836", "0.0836"], "b^[3] after")


# ----------------------------------------------------------------------------- Question 2.1
def test_q2_forward(q2):
    assert_printed(q2["z"][0], col("0.3", 4), "z^[1]")
    assert_printed(q2["h"][0], col("0.2913", 4), "h^[1]")
    assert_printed(q2["z"][1], col("0.2165", 3), "z^[2]")
    assert_printed(q2["h"][1], col("0.2132", 3), "h^[2]")
    assert_printed(q2["z"][2], col("0.16396", 3), "z^[3]")
    assert_printed(q2["h"][2], col("0.3333", 3), "p")
    np.testing.assert_allclose(q2["h"][2], 1 / 3, rtol=1e-15)  # equal logits: p = 1/3 exactly
    assert_printed(q2["loss"], "1.0986", "L")
    np.testing.assert_allclose(q2["loss"], np.log(3.0), rtol=1e-15)  # −log(1/3)


def test_q2_output_layer_gradients(q2):
    assert_printed(q2["dz"][2], ["0.3333", "-0.6667", "0.3333"], "∂L/∂z^[3] = p − y")
    assert_printed(q2["grad_W"][2], rows("0.07107", "-0.14214", "0.07107", n=3), "∂L/∂W^[3]")
    assert_printed(q2["grad_b"][2], ["0.3333", "-0.6667", "0.3333"], "∂L/∂b^[3]")


def test_q2_hidden_gradients_vanish(q2):
    # Exactly zero in exact arithmetic (see the module docstring); float64 leaves ~1e-17.
    assert abs(float(np.sum(q2["dz"][2]))) < 1e-15
    for l in range(2):
        for key in ("dh", "dz", "grad_W", "grad_b"):
            assert np.max(np.abs(q2[key][l])) < 1e-15, (key, l)


def test_q2_updated_parameters(q2):
    for l, n_in in ((0, 4), (1, 4)):  # "So far, no parameters changed."
        assert_printed(q2["W"][l], rows(*["0.1"] * (4 if l == 0 else 3), n=n_in), f"W^[{l + 1}] after")
        np.testing.assert_allclose(q2["W"][l], 0.1, rtol=0, atol=1e-16)
        np.testing.assert_allclose(q2["b"][l], 0.1, rtol=0, atol=1e-16)
    assert_printed(q2["W"][2], rows("0.09289", "0.11421", "0.09289", n=3), "W^[3] after")
    assert_printed(q2["b"][2], ["0.0667", "0.1667", "0.0667"], "b^[3] after")
    # b^[3] − 0.1 (p − y) in exact arithmetic: 0.1 − 1/30 = 1/15 and 0.1 + 2/30 = 1/6.
    np.testing.assert_allclose(q2["b"][2], [1 / 15, 1 / 6, 1 / 15], rtol=1e-14)


def test_single_step_loss_is_the_example_loss():
    # One example: run_step's total loss is that example's loss (a sum over one term).
    for name, want in (("q1", "0.376"), ("q2", "1.0986")):
        r = via_run_step(name)
        assert r["total"] == r["loss"]
        assert_printed(r["total"], want, f"{name} L")


def test_assert_printed_rejects_a_wrong_digit():
    # The helper itself must be able to fail: 0.2914 is not 0.2913 to four decimals.
    with pytest.raises(AssertionError):
        assert_printed([0.29136], ["0.2913"], "probe")
    assert_printed([0.29134], ["0.2913"], "probe")
