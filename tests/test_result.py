"""The typed step result (issue 12) and the exercise JSON's round trip (issue 20).

Expected values come from the hand-written backprop (``practical.reference``) and from the
old JSON contract (the keys ``practical/check.py`` and users read), not from the code under test.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

from tinygrad_mlp import MLP, reference, worked_solution
from tinygrad_mlp.cli.exercise import main
from tinygrad_mlp.practical.exercise import builtin, parse_spec, run_step
from tinygrad_mlp.practical.render import WorkedSolution
from tinygrad_mlp.practical.result import ExampleStep, StepResult

from test_exercise import random_specs

ROOT = Path(__file__).resolve().parents[1]
RENDER = ROOT / "tinygrad_mlp" / "practical" / "render"
BUILTIN_NAMES = ["q1", "q1-batch", "q2", "q2-batch"]
# The --json contract as it stood before the typed result (check.py reads these).
OLD_KEYS = {"name", "title", "layers", "hidden", "output", "loss_name", "learning_rate", "initial", "loss",
            "examples", "grad_W", "grad_b", "W", "b"}
EXAMPLE_KEYS = {"x", "y", "z", "h", "output", "loss", "dz", "dh", "grad_W", "grad_b"}


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_renderers_import_neither_the_runner_nor_the_network():
    files = sorted(RENDER.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "sheet.py", "text.py", "markdown.py", "latex.py", "html.py"}
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                names = [a.name for a in node.names]
                assert not any(part in ("exercise", "nn", "autograd", "reference", "training")
                               for part in mod.replace(".", " ").split()), (f.name, mod)
                assert not ({"exercise", "nn", "reference"} & set(names)), (f.name, names)
            elif isinstance(node, ast.Import):
                assert not any("tinygrad_mlp" in a.name for a in node.names), (f.name, ast.dump(node))


def test_run_step_returns_typed_arrays_that_match_the_hand_written_step():
    spec = builtin("q1-batch")
    r = run_step(spec)
    assert isinstance(r, StepResult) and all(isinstance(e, ExampleStep) for e in r.examples)
    hand = reference.batch_backward(spec.W, spec.b, spec.X, spec.Y, spec.hidden, spec.output, spec.loss)
    assert r.spec is spec and r.n_layers == 3 and r.is_batch
    for l in range(3):
        assert isinstance(r.grad_W[l], np.ndarray) and r.grad_W[l].shape == spec.W[l].shape
        np.testing.assert_allclose(r.grad_W[l], hand["dW"][l], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(r.grad_b[l], hand["db"][l], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(r.W[l], spec.W[l] - 0.1 * hand["dW"][l], rtol=1e-12, atol=1e-15)
    for e, he in zip(r.examples, hand["examples"]):
        for l in range(3):
            np.testing.assert_allclose(e.dz[l], he["delta"][l], rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(e.z[l], he["z"][l], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(e.output, he["h"][-1], rtol=1e-12)
        assert e.h_prev(1) is e.x
    assert r.loss == pytest.approx(hand["loss"], rel=1e-12)


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_json_keeps_the_old_keys_and_meanings(capsys, name):
    code, out, err = cli(capsys, name, "--json")
    assert code == 0 and err == ""
    j = json.loads(out)
    assert OLD_KEYS <= set(j) and all(EXAMPLE_KEYS <= set(e) for e in j["examples"])
    assert isinstance(j["loss"], float) and isinstance(j["loss_name"], str)
    spec = builtin(name)
    assert j["initial"]["W"] == [w.tolist() for w in spec.W] == j["weights"]
    assert j["initial"]["b"] == [c.tolist() for c in spec.b] == j["biases"]


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_json_round_trips_as_a_spec(capsys, tmp_path, name):
    code, out, _ = cli(capsys, name, "--json")
    path = tmp_path / "SPEC.json"
    path.write_text(out, encoding="utf-8")
    code, again, err = cli(capsys, path, "--json")
    assert code == 0 and err == ""
    assert again == out  # the same step, name and title included
    # and the text sheet too
    assert cli(capsys, path)[1] == cli(capsys, name)[1]


@settings(max_examples=8, deadline=None)
@given(random_specs())
def test_random_json_round_trips_as_a_spec(raw):
    first = run_step(parse_spec(raw)).to_json()
    again = run_step(parse_spec(json.loads(json.dumps(first)))).to_json()
    assert again == first


def test_a_result_document_with_a_foreign_field_is_refused():
    j = run_step(builtin("q1")).to_json()
    with pytest.raises(ValueError, match="^colour: unknown field"):
        parse_spec(dict(j, colour="red"))
    j["examples"][0]["extra"] = 1
    with pytest.raises(ValueError, match=r"^examples\[0\]\.extra: unknown field"):
        parse_spec(j)


def test_worked_solution_takes_one_example_as_a_vector():
    model = MLP([4, 4, 3, 3], hidden="tanh", output="identity", seed=1)
    one = worked_solution(model, [1, 0, 1, 0], [0, 1, 0])
    rows = worked_solution(model, [[1, 0, 1, 0]], [[0, 1, 0]])
    assert one.text() == rows.text()
    assert not one.result.is_batch
    # the same loss model.loss gives for the 1-D example
    assert one.result.loss == pytest.approx(float(model.loss([1, 0, 1, 0], [0, 1, 0], "squared_error",
                                                             reduction="sum").data), rel=1e-12)
    # integer labels are still labels when there is one per example
    clf = MLP([2, 3], output="softmax", seed=0)
    a = worked_solution(clf, [[1.0, 2.0], [0.0, 1.0]], [2, 0], loss="cross_entropy").result
    np.testing.assert_array_equal(np.stack([e.y for e in a.examples]), [[0, 0, 1], [1, 0, 0]])


def test_worked_solution_object_takes_only_a_step_result():
    with pytest.raises(TypeError, match="result"):
        WorkedSolution(run_step(builtin("q1")).to_json())
