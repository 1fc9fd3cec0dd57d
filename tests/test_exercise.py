"""The exercise core: spec validation, the built-in questions, and run_step checked against the hand-written backprop."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_mlp import reference
from tinygrad_mlp.practical import exercise
from tinygrad_mlp.practical.exercise import (BUILTINS, REQUIRED, ExerciseMismatchError, SpecError, builtin, load_spec,
                                   parse_spec, run_step)

Q1 = {"layers": [4, 4, 3, 3], "hidden": "tanh", "output": "identity", "loss": "squared_error",
      "weights": 0.1, "biases": 0.1, "learning_rate": 0.1, "examples": [{"x": [1, 0, 1, 0], "y": [0, 1, 0]}]}
SMALL = {"layers": [2, 3, 2], "hidden": "sigmoid", "output": "softmax", "loss": "cross_entropy",
         "weights": [[[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]], [[0.7, -0.8, 0.9], [-1.0, 1.1, 0.2]]],
         "biases": [[0.01, -0.02, 0.03], [0.5, -0.5]], "learning_rate": 0.5,
         "examples": [{"x": [1.0, -2.0], "y": [0, 1]}, {"x": [0.5, 0.25], "y": [1, 0]}, {"x": [3, 1], "y": [0, 1]}]}


def with_(base, path, value):
    """A deep copy of ``base`` with the entry at ``path`` (keys/indices) set, or deleted if value is ...."""
    spec = copy.deepcopy(base)
    node = spec
    for k in path[:-1]:
        node = node[k]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return spec


# ----------------------------------------------------------------------------- validation
MALFORMED = {
    # wrong matrix shape
    "W rows": (with_(SMALL, ["weights", 0], [[0.1, -0.2], [0.3, 0.4]]), r"^weights\[0\] \(W\^\[1\]\): expected a 3 x 2"),
    "W row length": (with_(SMALL, ["weights", 1, 1], [1.0, 2.0]), r"^weights\[1\] \(W\^\[2\]\)\[1\]: expected 3 numbers"),
    "W transposed": (with_(SMALL, ["weights", 0], [[0.1, 0.3, -0.5], [-0.2, 0.4, 0.6]]), r"^weights\[0\] \(W\^\[1\]\)"),
    "W layer count": (with_(SMALL, ["weights"], SMALL["weights"][:1]), r"^weights: expected one number for all"),
    "b length": (with_(SMALL, ["biases", 1], [0.5]), r"^biases\[1\] \(b\^\[2\]\): expected 2 numbers, got 1"),
    # unknown activation / loss
    "hidden": (with_(Q1, ["hidden"], "softplus"), r"^hidden: expected one of .*'softplus'"),
    "output": (with_(Q1, ["output"], "tanh"), r"^output: expected one of .*'tanh'"),
    "hidden type": (with_(Q1, ["hidden"], ["tanh"]), r"^hidden: expected one of"),
    "loss": (with_(Q1, ["loss"], "hinge"), r"^loss: expected one of .*'hinge'"),
    "loss pair": (with_(Q1, ["loss"], "cross_entropy"), r"^loss: 'cross_entropy' does not go with output 'identity'"),
    # y / x of the wrong length
    "y length": (with_(Q1, ["examples", 0, "y"], [0, 1]), r"^examples\[0\]\.y: expected 3 numbers, got 2"),
    "x length": (with_(Q1, ["examples", 0, "x"], [1, 0, 1]), r"^examples\[0\]\.x: expected 4 numbers, got 3"),
    "y second example": (with_(SMALL, ["examples", 2, "y"], [0, 1, 0]), r"^examples\[2\]\.y: expected 2 numbers"),
    "y not one-hot": (with_(SMALL, ["examples", 1, "y"], [0.5, 0.7]), r"^examples\[1\]\.y: cross-entropy needs"),
    # NaN and infinity anywhere
    "NaN weights": (with_(Q1, ["weights"], float("nan")), r"^weights: expected a finite number"),
    "NaN matrix entry": (with_(SMALL, ["weights", 0, 2, 1], float("nan")), r"^weights\[0\] \(W\^\[1\]\)\[2\]\[1\]: expected a finite"),
    "inf bias": (with_(SMALL, ["biases", 0, 0], float("inf")), r"^biases\[0\] \(b\^\[1\]\)\[0\]: expected a finite"),
    "NaN x": (with_(Q1, ["examples", 0, "x", 2], float("nan")), r"^examples\[0\]\.x\[2\]: expected a finite"),
    "NaN y": (with_(Q1, ["examples", 0, "y", 0], float("nan")), r"^examples\[0\]\.y\[0\]: expected a finite"),
    "NaN learning rate": (with_(Q1, ["learning_rate"], float("nan")), r"^learning_rate: expected a finite"),
    # other values
    "string entry": (with_(Q1, ["examples", 0, "x", 1], "0"), r"^examples\[0\]\.x\[1\]: expected a number, got '0'"),
    "bool weight": (with_(Q1, ["weights"], True), r"^weights: expected one number"),
    "learning rate sign": (with_(Q1, ["learning_rate"], -0.1), r"^learning_rate: expected a positive"),
    "layers": (with_(Q1, ["layers"], [4]), r"^layers: expected a list of at least two positive ints"),
    "layers zero": (with_(Q1, ["layers"], [4, 0, 3]), r"^layers: "),
    "no examples": (with_(Q1, ["examples"], []), r"^examples: expected a non-empty list"),
    "example keys": (with_(Q1, ["examples", 0], {"x": [1, 0, 1, 0]}), r"^examples\[0\]: expected an object with exactly"),
    "unknown field": (with_(Q1, ["momentum"], 0.9), r"^momentum: unknown field"),
    **{f"missing {k}": (with_(Q1, [k], ...), rf"^{k}: missing field") for k in REQUIRED},
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_spec_names_the_field(name):
    raw, match = MALFORMED[name]
    with pytest.raises(SpecError, match=match):
        parse_spec(raw)


def test_spec_error_is_a_value_error_and_non_dicts_are_rejected():
    assert issubclass(SpecError, ValueError)
    with pytest.raises(SpecError, match="^spec: expected a JSON object, got list"):
        parse_spec([Q1])


def test_the_valid_bases_parse():
    s = parse_spec(SMALL)
    assert [w.shape for w in s.W] == [(3, 2), (2, 3)] and [c.shape for c in s.b] == [(3,), (2,)]
    np.testing.assert_array_equal(s.W[1], np.array(SMALL["weights"][1]))  # rows are out, columns in
    assert s.is_batch and not parse_spec(Q1).is_batch
    assert parse_spec(s.to_dict()).to_dict() == s.to_dict()


def test_load_spec(tmp_path):
    p = tmp_path / "small.json"
    p.write_text(json.dumps(SMALL))
    s = load_spec(p)
    assert s.name == "small" and s.layers == [2, 3, 2]
    bad = tmp_path / "nan.json"
    bad.write_text(json.dumps(Q1).replace('"learning_rate": 0.1', '"learning_rate": NaN'))
    with pytest.raises(SpecError, match="^spec: NaN is not allowed"):
        load_spec(bad)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SpecError, match="is not valid JSON"):
        load_spec(tmp_path / "broken.json")
    with pytest.raises(SpecError, match="^spec: cannot read"):
        load_spec(tmp_path / "missing.json")
    (tmp_path / "latin1.json").write_bytes(b'{"x": "\xe9"}')
    with pytest.raises(SpecError, match="^spec: .* is not UTF-8"):
        load_spec(tmp_path / "latin1.json")


def test_builtins():
    assert sorted(BUILTINS) == ["q1", "q1-batch", "q2", "q2-batch"]
    q2b = builtin("q2-batch")
    assert (q2b.output, q2b.loss, len(q2b.X)) == ("softmax", "cross_entropy", 2)
    np.testing.assert_array_equal(q2b.X[1], [0, 0, 10, 0])
    np.testing.assert_array_equal(q2b.Y[1], [0, 0, 1])
    with pytest.raises(SpecError, match="^exercise: expected one of"):
        builtin("q3")


# ----------------------------------------------------------------------------- run_step
KEYS = {"name", "title", "layers", "hidden", "output", "loss_name", "learning_rate", "initial", "loss", "examples",
        "grad_W", "grad_b", "W", "b"}
EXAMPLE_KEYS = {"x", "y", "z", "h", "output", "loss", "dz", "dh", "grad_W", "grad_b"}


def test_run_step_keys_are_stable_and_json_ready():
    r = run_step(builtin("q1-batch")).to_json()
    assert KEYS <= set(r)
    assert all(EXAMPLE_KEYS <= set(e) for e in r["examples"])
    assert json.loads(json.dumps(r)) == r  # plain lists and floats only


@pytest.mark.parametrize("raw", [SMALL, with_(SMALL, ["examples"], SMALL["examples"][:1]),
                                 with_(with_(SMALL, ["output"], "sigmoid"), ["loss"], "squared_error"),
                                 with_(with_(with_(SMALL, ["output"], "identity"), ["loss"], "squared_error"),
                                       ["hidden"], "relu")])
def test_run_step_equals_the_hand_written_step(raw):
    spec = parse_spec(raw)
    r = run_step(spec)
    hand = reference.batch_backward(spec.W, spec.b, spec.X, spec.Y, spec.hidden, spec.output, spec.loss)
    W_new, b_new = reference.sgd_update(spec.W, spec.b, hand["dW"], hand["db"], spec.learning_rate)
    np.testing.assert_allclose(r["loss"], hand["loss"], rtol=1e-12)
    for l in range(2):
        np.testing.assert_allclose(r["grad_W"][l], hand["dW"][l], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(r["grad_b"][l], hand["db"][l], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(r["W"][l], W_new[l], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(r["b"][l], b_new[l], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(r["initial"]["W"][l], spec.W[l])
    for rec, ex in zip(r["examples"], hand["examples"]):
        for key, hkey in (("z", "z"), ("h", "h"), ("dz", "delta"), ("dh", "dh"), ("grad_W", "dW")):
            for l in range(2):
                np.testing.assert_allclose(rec[key][l], ex[hkey][l], rtol=1e-10, atol=1e-14, err_msg=key)
    # One example: an SGD step on it; several: the summed gradient of all of them.
    assert len(r["examples"]) == len(spec.X)
    np.testing.assert_allclose(r["grad_W"][0], sum(np.asarray(e["grad_W"][0]) for e in r["examples"]), rtol=1e-12)


def test_run_step_does_not_touch_the_spec():
    spec = builtin("q1")
    before = [w.copy() for w in spec.W]
    run_step(spec)
    for w, w0 in zip(spec.W, before):
        np.testing.assert_array_equal(w, w0)


def test_a_disagreement_with_the_hand_written_backprop_is_an_error(monkeypatch):
    real = reference.backward

    def off_by_a_little(*args, **kwargs):
        r = real(*args, **kwargs)
        r["dW"][1] = r["dW"][1] * (1 + 1e-6)
        return r

    monkeypatch.setattr(exercise.reference, "backward", off_by_a_little)
    with pytest.raises(ExerciseMismatchError, match=r"grad_W\[1\]: autograd gives"):
        run_step(builtin("q1"))


@pytest.mark.parametrize("key, l, delta", [("dh", 1, 1e-6), ("dW", 0, 1e-7), ("delta", 2, 1e-9)])
def test_mismatch_is_caught_where_the_true_value_is_zero(monkeypatch, key, l, delta):
    # Question 2's hidden gradients are 0; the tolerance (relative to the magnitudes summed, ~0.1)
    # must still see a small absolute error there.
    real = reference.backward

    def shifted(*args, **kwargs):
        r = real(*args, **kwargs)
        r[key][l] = r[key][l] + delta
        return r

    monkeypatch.setattr(exercise.reference, "backward", shifted)
    with pytest.raises(ExerciseMismatchError):
        run_step(builtin("q2"))


@st.composite
def random_specs(draw):
    """Valid specs of every kind, with weights from 1e-2 to 1e4 (large logits stress the softmax)."""
    sizes = draw(st.lists(st.integers(1, 5), min_size=2, max_size=4))
    output, loss = draw(st.sampled_from(sorted(reference.OUTPUT_LOSS_PAIRS)))
    hidden = draw(st.sampled_from(sorted(reference.ACTIVATIONS)))
    scale = 10.0 ** draw(st.integers(-2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    L = len(sizes) - 1
    W = [(rng.standard_normal((o, i)) * scale).tolist() for i, o in zip(sizes[:-1], sizes[1:])]
    b = [(rng.standard_normal(o) * scale).tolist() for o in sizes[1:]]
    n = draw(st.integers(1, 3))
    ex = []
    for _ in range(n):
        y = np.eye(sizes[-1])[rng.integers(sizes[-1])] if loss == "cross_entropy" else rng.uniform(0, 1, sizes[-1])
        ex.append({"x": rng.standard_normal(sizes[0]).tolist(), "y": y.tolist()})
    assert len(W) == L
    return {"layers": sizes, "hidden": hidden, "output": output, "loss": loss, "weights": W, "biases": b,
            "learning_rate": 0.1, "examples": ex}


@settings(max_examples=30, deadline=None)
@given(random_specs())
def test_valid_specs_of_any_scale_pass_the_check(raw):
    # A valid spec never raises ExerciseMismatchError: the two backprops agree within rounding.
    spec = parse_spec(raw)
    r = run_step(spec)
    hand = reference.batch_backward(spec.W, spec.b, spec.X, spec.Y, spec.hidden, spec.output, spec.loss)
    for l in range(len(spec.W)):
        scale = np.max(np.abs(hand["dW"][l])) + 1.0
        np.testing.assert_allclose(r["grad_W"][l], hand["dW"][l], rtol=1e-6, atol=1e-6 * scale)
