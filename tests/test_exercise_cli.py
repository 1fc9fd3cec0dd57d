"""The exercise runner (issue 3): ``python -m tinygrad_mlp exercise ...``.

Expected numbers come from the practical's sheet and from the hand-written
backprop (:mod:`tinygrad_mlp.practical.reference`), not from the code under test.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_mlp import reference
from tinygrad_mlp.cli.exercise import main

ROOT = Path(__file__).resolve().parents[1]
Q1 = {"layers": [4, 4, 3, 3], "hidden": "tanh", "output": "identity", "loss": "squared_error",
      "weights": 0.1, "biases": 0.1, "learning_rate": 0.1, "examples": [{"x": [1, 0, 1, 0], "y": [0, 1, 0]}]}


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def full(c):
    return [np.full((4, 4), c), np.full((3, 4), c), np.full((3, 3), c)], [np.full(4, c), np.full(3, c),
                                                                          np.full(3, c)]


@pytest.mark.parametrize("name, output, loss, X, Y", [
    ("q1", "identity", "squared_error", [[1, 0, 1, 0]], [[0, 1, 0]]),
    ("q1-batch", "identity", "squared_error", [[1, 0, 1, 0], [0, 0, 10, 0]], [[0, 1, 0], [0, 0, 1]]),
    ("q2", "softmax", "cross_entropy", [[1, 0, 1, 0]], [[0, 1, 0]]),
    ("q2-batch", "softmax", "cross_entropy", [[1, 0, 1, 0], [0, 0, 10, 0]], [[0, 1, 0], [0, 0, 1]]),
])
def test_json_fields_match_the_hand_written_backprop(capsys, name, output, loss, X, Y):
    code, out, err = cli(capsys, name, "--json")
    assert code == 0 and err == ""
    r = json.loads(out)
    for key in ("loss", "examples", "grad_W", "grad_b", "W", "b"):
        assert key in r
    W, b = full(0.1)
    X, Y = np.array(X, float), np.array(Y, float)
    ref = reference.batch_backward(W, b, X, Y, "tanh", output, loss)
    assert len(r["examples"]) == len(X)
    assert r["loss"] == pytest.approx(ref["loss"], rel=1e-12)
    for e, pe in zip(r["examples"], ref["examples"]):
        for key in ("z", "h", "output", "loss"):
            assert key in e
        assert len(e["z"]) == len(e["h"]) == 3  # layers 1..L, h includes the output's activation
        for l in range(3):
            np.testing.assert_allclose(e["z"][l], pe["z"][l], rtol=1e-12)
            np.testing.assert_allclose(e["h"][l], pe["h"][l], rtol=1e-12)
        np.testing.assert_allclose(e["output"], pe["h"][-1], rtol=1e-12)
        assert e["loss"] == pytest.approx(pe["loss"], rel=1e-12)
    new_W, new_b = reference.sgd_update(W, b, ref["dW"], ref["db"], 0.1)
    for l in range(3):
        np.testing.assert_allclose(r["grad_W"][l], ref["dW"][l], rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(r["grad_b"][l], ref["db"][l], rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(r["W"][l], new_W[l], rtol=1e-12)
        np.testing.assert_allclose(r["b"][l], new_b[l], rtol=1e-12)


def test_json_q1_has_the_sheets_numbers(capsys):
    r = json.loads(cli(capsys, "q1", "--json")[1])
    assert round(r["examples"][0]["h"][0][0], 4) == 0.2913
    assert round(r["examples"][0]["output"][0], 5) == 0.16396
    assert round(r["loss"], 3) == 0.376
    assert round(r["W"][2][1][0], 4) == 0.1178
    assert round(r["b"][2][0], 4) == 0.0836


def test_default_output_is_the_text_sheet(capsys):
    code, out, err = cli(capsys, "q1")
    assert code == 0 and err == ""
    for needle in ("1. The parameters", "2. Forward propagation", "3. The loss", "4. The output-layer gradient",
                   "5. Backward propagation", "6. The update", "z^[1] = W^[1] x + b^[1]", "∂L/∂W^[3]",
                   "∂L/∂h^[2]", "∂L/∂z^[1]"):
        assert needle in out, needle
    assert out.index("1. The parameters") < out.index("2. Forward") < out.index("3. The loss") \
        < out.index("4. The output") < out.index("5. Backward") < out.index("6. The update")


def test_spec_file_runs(capsys, tmp_path):
    p = tmp_path / "mine.json"
    p.write_text(json.dumps(dict(Q1, hidden="relu", weights=0.2)))
    code, out, err = cli(capsys, p, "--json")
    assert code == 0, err
    W, b = [np.full((4, 4), 0.2), np.full((3, 4), 0.2), np.full((3, 3), 0.2)], full(0.1)[1]
    ref = reference.backward(W, b, np.array([1., 0, 1, 0]), np.array([0., 1, 0]), "relu", "identity",
                             "squared_error")
    assert json.loads(out)["loss"] == pytest.approx(ref["loss"], rel=1e-12)


def test_output_file_is_written_and_stdout_stays_empty(capsys, tmp_path):
    target = tmp_path / "sol.md"
    code, out, err = cli(capsys, "q2", "--format", "markdown", "-o", target)
    assert code == 0 and out == ""
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# Question 2.1") and "\\begin{pmatrix}" in text
    code, out, _ = cli(capsys, "q2", "--json", "-o", tmp_path / "q2.json")
    assert code == 0 and out == ""
    assert "grad_W" in json.loads((tmp_path / "q2.json").read_text())


def _bad(tmp_path, name, content):
    p = tmp_path / name
    p.write_text(content if isinstance(content, str) else json.dumps(content))
    return p


@pytest.mark.parametrize("case, content, field", [
    ("wrong matrix shape", dict(Q1, weights=[[[0.1] * 4] * 4, [[0.1] * 3] * 3, [[0.1] * 3] * 3]), "weights[1]"),
    ("unknown activation", dict(Q1, hidden="swish"), "hidden"),
    ("y of the wrong length", dict(Q1, examples=[{"x": [1, 0, 1, 0], "y": [0, 1]}]), "examples[0].y"),
    ("NaN", '{"layers": [4, 4, 3, 3], "hidden": "tanh", "output": "identity", "loss": "squared_error", '
            '"weights": NaN, "biases": 0.1, "learning_rate": 0.1, "examples": []}', "weights"),
    ("NaN in a list", '{"layers": [2, 1], "hidden": "tanh", "output": "identity", "loss": "squared_error", '
                      '"weights": [[[NaN, 1]]], "biases": 0.1, "learning_rate": 0.1, '
                      '"examples": [{"x": [1, 2], "y": [1]}]}', "weights[0] (W^[1])[0][0]"),
    ("missing field", {k: v for k, v in Q1.items() if k != "learning_rate"}, "learning_rate"),
    ("bad JSON", '{"layers": [4, 4, 3, 3], ', "not valid JSON"),
    ("loss/output mismatch", dict(Q1, loss="cross_entropy"), "loss"),
])
def test_malformed_spec_exits_2_naming_the_field(capsys, tmp_path, case, content, field):
    p = _bad(tmp_path, "bad.json", content)
    code, out, err = cli(capsys, p)
    assert code == 2, case
    assert out == "", case
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert field in err, (case, err)
    assert "Traceback" not in err


def test_missing_file_and_unknown_name(capsys, tmp_path):
    code, out, err = cli(capsys, tmp_path / "nope.json")
    assert code == 2 and out == "" and "nope.json" in err and err.startswith("error: spec")
    code, out, err = cli(capsys, "q9")
    assert code == 2 and out == "" and "exercise" in err and "q9" in err


@pytest.mark.parametrize("argv, field", [
    (["q1", "--digits", "0"], "--digits"),
    (["q1", "--format", "pdf"], "--format"),
    (["q1", "--json", "--format", "text"], "--json"),
    (["q1", "--fragment"], "--fragment"),
])
def test_bad_options_exit_2(capsys, argv, field):
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == "" and err.startswith("error: ") and field in err, err


def test_mismatch_is_an_error_not_a_result(capsys, monkeypatch):
    from tinygrad_mlp.practical import exercise

    real = exercise.reference.backward

    def wrong(*a, **k):
        r = real(*a, **k)
        r["dW"][0] = r["dW"][0] + 1e-3
        return r

    monkeypatch.setattr(exercise.reference, "backward", wrong)
    code, out, err = cli(capsys, "q1")
    assert code == 1
    assert out == ""
    assert err.startswith("error: ") and "disagree" in err and "grad_W[0]" in err


def test_module_entry_point_end_to_end(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tinygrad_mlp", "exercise", "q1", "--digits", "5"], cwd=ROOT,
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "0.16396" in done.stdout and "-0.050812" in done.stdout
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    done = subprocess.run([sys.executable, "-m", "tinygrad_mlp", "exercise", str(bad)], cwd=ROOT,
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.startswith("error: spec")


def test_help_exits_0(capsys):
    code, out, _ = cli(capsys, "--help")
    assert code == 0 and "--format" in out and "--graph" in out


# ------------------------------------------------------------------ specs at the edges (issue 13)
def _q1_text(**over):
    raw = dict(Q1, **over)
    return json.dumps(raw)


HUGE_INT = "1" + "0" * 400


@pytest.mark.parametrize("case, content, field", [
    ("nested 100,000 deep", _q1_text(weights=0.1).replace('"weights": 0.1', '"weights": ' + "[" * 100_000
                                                                          + "]" * 100_000), "spec"),
    ("nested 500 deep", _q1_text(weights=0.1).replace('"weights": 0.1', '"weights": ' + "[" * 500 + "]" * 500),
     "weights"),
    ("400-digit learning_rate", _q1_text().replace('"learning_rate": 0.1', '"learning_rate": ' + HUGE_INT),
     "learning_rate"),
    ("400-digit weights", _q1_text().replace('"weights": 0.1', '"weights": ' + HUGE_INT), "weights"),
    ("400-digit x entry", _q1_text().replace('"x": [1, 0, 1, 0]', '"x": [' + HUGE_INT + ', 0, 1, 0]'),
     "examples[0].x[0]"),
    ("weights 1e308", _q1_text(weights=1e308), "weights"),
    ("weights 1e200", _q1_text(weights=1e200), "weights"),
    ("y 1e308", _q1_text(examples=[{"x": [1, 0, 1, 0], "y": [0, 1e308, 0]}]), "examples[0].y"),
])
def test_specs_at_the_edges_exit_2_naming_the_field(capsys, tmp_path, case, content, field):
    p = _bad(tmp_path, "edge.json", content)
    code, out, err = cli(capsys, p)
    assert code == 2, (case, err)
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1, (case, err)
    assert err[len("error: "):].startswith(field), (case, err)
    assert "Traceback" not in err and "disagree" not in err


def test_huge_but_harmless_x_gives_the_right_step(capsys, tmp_path):
    # x = 1e308 saturates tanh (h^[1] = 1 exactly): the true ∂L/∂W^[1] = δ^[1] xᵀ with
    # δ^[1] = ∂L/∂h^[1] ⊙ (1 − tanh²(2e307)) = 0, and the rest is an ordinary step on h^[1] = 1.
    p = _bad(tmp_path, "x.json", dict(Q1, examples=[{"x": [1e308, 0, 1, 0], "y": [0, 1, 0]}]))
    code, out, err = cli(capsys, p, "--json")
    assert code == 0 and err == "", err
    r = json.loads(out)
    assert np.all(np.asarray(r["grad_W"][0]) == 0)
    W, b = full(0.1)
    ref = reference.backward(W, b, np.array([1e308, 0, 1, 0]), np.array([0., 1, 0]), "tanh", "identity",
                             "squared_error")
    np.testing.assert_allclose(r["grad_W"][2], ref["dW"][2], rtol=1e-12)
    np.testing.assert_allclose(r["examples"][0]["h"][0], [1, 1, 1, 1])


def test_output_path_is_checked_before_the_step(capsys, tmp_path, monkeypatch):
    from tinygrad_mlp.cli import exercise as cli_mod

    def never(*a, **k):
        raise AssertionError("the step ran before the output path was checked")

    monkeypatch.setattr(cli_mod, "run_step", never)
    for argv, field in [(["q1", "-o", tmp_path / "missing" / "q1.txt"], "--output"),
                        (["q1", "-o", tmp_path], "--output"),
                        (["q1", "-o", str(tmp_path) + "/"], "--output"),
                        (["q1", "--graph", tmp_path / "nope" / "t.dot"], "--graph")]:
        code, out, err = cli(capsys, *argv)
        assert code == 2 and out == "" and err.startswith(f"error: {field}: ") and err.count("\n") == 1, err


def test_output_is_written_atomically(capsys, tmp_path, monkeypatch):
    target = tmp_path / "q1.txt"
    target.write_text("the previous solution\n")
    import os

    real = os.fsync

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    code, out, err = cli(capsys, "q1", "-o", target)
    assert code == 2 and "--output" in err and "No space left" in err
    assert target.read_text() == "the previous solution\n"  # whole, not torn
    monkeypatch.setattr(os, "fsync", real)
    assert [p.name for p in tmp_path.iterdir()] == ["q1.txt"]  # no temporary left behind
    code, out, err = cli(capsys, "q1", "-o", target)
    assert code == 0 and target.read_text().startswith("Question 1.1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q1.txt"]
