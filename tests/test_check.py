"""The answer checker: right numbers accepted, each recognised mistake named where it first shows,
its consequences carried forward, the sheet's own numbers marked, malformed files refused.

Independent paths: students' answers are built from the mistaken variants of the hand-written
backprop (:mod:`tinygrad_mlp.practical.mistakes`) written at 4 significant digits; where each
mistake first shows is worked out by hand from its formula (``FIRST`` below), not asked of the
grader; the sheet's numbers are typed in from the sheet and their verdict worked out by reading it.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinygrad_mlp.cli import check as cli_check
from tinygrad_mlp.practical import mistakes as M
from tinygrad_mlp.practical.check import CARRIED, RIGHT, WRONG, AnswersError, check_answers, loads_answers
from tinygrad_mlp.practical.exercise import builtin, parse_spec, run_step

BUILTINS = ("q1", "q1-batch", "q2", "q2-batch")


# ----------------------------------------------------------------------------- writing a student's answers
def sig(v: float, n: int) -> str:
    """v written with n significant digits (scientific notation keeps trailing zeros: 1.000e-01)."""
    return f"{float(v):.{n - 1}e}"


def dumps(o) -> str:
    """JSON with the leaves (already number strings) written as they are."""
    if isinstance(o, dict):
        return "{" + ", ".join(json.dumps(k) + ": " + dumps(v) for k, v in o.items()) + "}"
    if isinstance(o, (list, tuple)):
        return "[" + ", ".join(dumps(v) for v in o) + "]"
    return "null" if o is None else o


def nest(a, n):
    a = np.asarray(a, dtype=float)
    return sig(a, n) if a.ndim == 0 else [nest(e, n) for e in a]


def answers_text(values: dict, n: int = 4) -> str:
    """Every quantity of a step dict (exercise --json's keys), written with n significant digits."""
    out = {"examples": [{k: (nest(ex[k], n) if k in ("loss", "output") else [nest(v, n) for v in ex[k]])
                         for k in ("z", "h", "output", "loss", "dz", "dh", "grad_W", "grad_b")}
                        for ex in values["examples"]], "loss": nest(values["loss"], n)}
    for k in ("grad_W", "grad_b", "W", "b"):
        out[k] = [nest(v, n) for v in values[k]]
    return dumps(out)


def flat(values: dict) -> dict:
    """{answers-file key: array} of a step dict."""
    out = {}
    for e, ex in enumerate(values["examples"]):
        for k in ("z", "h", "dz", "dh", "grad_W", "grad_b"):
            out.update({f"examples[{e}].{k}[{l}]": np.asarray(v, float) for l, v in enumerate(ex[k])})
        out[f"examples[{e}].output"] = np.asarray(ex["output"], float)
        out[f"examples[{e}].loss"] = np.asarray(ex["loss"], float)
    out["loss"] = np.asarray(values["loss"], float)
    for k in ("grad_W", "grad_b", "W", "b"):
        out.update({f"{k}[{l}]": np.asarray(v, float) for l, v in enumerate(values[k])})
    return out


def differs(student: dict, truth: dict, n: int = 4):
    """Keys whose n-digit value is clearly off the truth (> 1.01 half-units), and those within 0.99 half-units."""
    clear, close = set(), set()
    for k, v in student.items():
        written = np.vectorize(lambda x: sig(x, n), otypes=[object])(v)
        half = np.vectorize(lambda t: 0.5 * 10.0 ** (int(t.split("e")[1]) - (n - 1)), otypes=[float])(written)
        gap = np.abs(np.vectorize(float, otypes=[float])(written) - truth[k]) - 1e-12 - 1e-9 * np.abs(truth[k])
        if np.any(gap > 1.01 * half):
            clear.add(k)
        elif np.all(gap <= 0.99 * half):
            close.add(k)
    return clear, close


# ----------------------------------------------------------------------------- correct answers
@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("digits", [3, 4, 6])
def test_correct_answers_accepted_in_full(name, digits):
    spec = builtin(name)
    report = check_answers(spec, loads_answers(answers_text(run_step(spec), digits)))
    assert report.ok and report.exit_code == 0
    L, n = len(spec.W), len(spec.X)
    # per example z, h, dz, dh, grad_W, grad_b per layer, output and loss; the step's loss, grad_W, grad_b, W, b
    assert len(report.verdicts) == (6 * L + 2) * n + 1 + 4 * L
    assert all(v.status == RIGHT and v.mistake is None for v in report.verdicts)


def test_precision_is_the_written_one():
    # W^[3] after the step: 0.1 − 0.1 · 0.163961 · 0.213204 = 0.0965043 (row 1).
    def verdict(text):
        rows = [[text, "0.0965", "0.0965"], ["0.1178"] * 3, ["0.0965"] * 3]
        return check_answers("q1", loads_answers(dumps({"W": [None, None, rows]})))["W[2]"]

    assert verdict("0.0965").status == RIGHT
    assert verdict("0.09650").status == RIGHT  # 5 decimals: [0.096495, 0.096505]
    assert verdict("0.096504").status == RIGHT
    assert verdict("9.65e-2").status == RIGHT  # an exponent shifts the decimals: 4 of them
    assert verdict("0.097").status == RIGHT  # 3 decimals: 0.0965043 rounds to 0.097
    for wrong in ("0.0966", "0.096500", "0.0964", "0.096"):
        v = verdict(wrong)
        assert v.status == WRONG, wrong
        assert "(1, 1)" in v.note  # the wrong entry is named, 1-based


def test_integers_are_exact_and_python_floats_keep_their_digits():
    # ∂L/∂W^[1] multiplies x = (1, 0, 1, 0): columns 2 and 4 are exactly 0, the others −0.0133158.
    exact = [[-0.01332, 0, -0.01332, 0]] * 4
    assert check_answers("q1", {"grad_W": [exact, None, None]}).ok
    assert check_answers("q1", {"grad_W": [[[-0.013, 0, -0.013, 0]] * 4, None, None]}).ok  # 3 decimals
    off = check_answers("q1", {"grad_W": [[[0, 0, 0, 0]] * 4, None, None]})  # "0" is not −0.0133
    assert off.verdicts[0].status == WRONG
    assert not check_answers("q1", {"W": [None, None, np.full((3, 3), 0.0966)]}).ok  # numpy arrays too


# ----------------------------------------------------------------------------- each mistake
# Where each mistake first shows, worked out from its formula.  Forward: z^[1] (no bias), h^[3]
# (the output activation), the example's loss (no ½).  Backward on Q1 from layer 3 down: δ^[3] is
# right for every hidden-derivative mistake (layer 3 has none), so they first show in δ^[2];
# ∂L/∂h^[2] = W^[3]ᵀ δ^[3] with an updated W^[3]; ∂L/∂W^[3] transposed (3 x 3, the first square
# gradient going down); ∂L/∂b^[3] ⊙ h^[3]; the batch's summed ∂L/∂W^[3]; the update of W^[1]
# first (updates run over l = 1..L) and b^[1] for the bias alone.
FIRST = {
    "no_bias_in_forward": "examples[0].z[0]", "hidden_activation_at_output": "examples[0].h[2]",
    "no_half_in_squared_error": "examples[0].loss",
    **{k: "examples[0].dz[2]" for k in ("softmax_y_minus_p", "softmax_p_one_minus_p", "softmax_diagonal_only")},
    **{k: "examples[0].dz[1]" for k in ("tanh_prime_squared", "tanh_prime_no_square", "g_prime_at_h",
                                        "g_prime_z_for_h", "g_prime_wrong_layer", "no_activation_derivative")},
    "updated_W_in_backprop": "examples[0].dh[1]", "grad_W_transposed": "examples[0].grad_W[2]",
    "grad_b_times_h": "examples[0].grad_b[2]",
    **{k: "grad_W[2]" for k in ("batch_averaged", "batch_last_only", "batch_first_only")},
    "update_sign_flipped": "W[0]", "update_without_learning_rate": "W[0]", "bias_not_updated": "b[0]",
}
# Question 2's hidden gradients are exactly 0 (δ^[3] = p − y sums to 0 and the rows of W^[3] are
# equal), so the hidden layers' updates do not move and the first update to show is layer 3's.
FIRST_Q2 = {"update_sign_flipped": "W[2]", "update_without_learning_rate": "W[2]", "bias_not_updated": "b[2]"}
# Mistakes that cannot show in an exercise: W^[3] (all 0.1) is symmetric, so W^[3] δ = W^[3]ᵀ δ;
# and in Question 2 every hidden gradient is 0 whatever g' the student uses.
HIDDEN_DERIVATIVE = ("tanh_prime_squared", "tanh_prime_no_square", "g_prime_at_h", "g_prime_z_for_h",
                     "g_prime_wrong_layer", "no_activation_derivative")
INVISIBLE = {("q1", "W_not_transposed"), ("q1-batch", "W_not_transposed"), ("q2", "W_not_transposed"),
             ("q2-batch", "W_not_transposed"), *((q, k) for q in ("q2", "q2-batch") for k in HIDDEN_DERIVATIVE)}
CASES = [(name, m.key) for name in BUILTINS for m in M.applicable(builtin(name))]


def test_every_listed_mistake_is_recognised_somewhere():
    keys = {m.key for m in M.MISTAKES}
    for issue_mistake in ("tanh_prime_squared", "tanh_prime_no_square", "sigmoid_prime_as_sigmoid",
                          "sigmoid_prime_squared", "W_not_transposed", "no_half_in_squared_error", "batch_averaged",
                          "batch_last_only", "update_sign_flipped", "updated_W_in_backprop", "g_prime_at_h",
                          "g_prime_wrong_layer", "bias_not_updated", "grad_b_times_h", "softmax_y_minus_p",
                          "softmax_p_one_minus_p", "grad_W_transposed"):
        assert issue_mistake in keys
    assert all(m.name and m.wrong and m.right for m in M.MISTAKES)
    assert set(FIRST) >= {k for _, k in CASES} - {"W_not_transposed"}  # invisible in every built-in


@pytest.mark.parametrize("name,key", CASES)
def test_a_mistake_is_named_where_it_first_shows(name, key):
    spec = builtin(name)
    mistake = M.BY_KEY[key]
    values = M.simulate(spec, [mistake])
    report = check_answers(spec, loads_answers(answers_text(values)))
    if (name, key) in INVISIBLE:
        assert report.ok, report.summary()  # the same numbers as the right step, to 4 digits
        return
    first = (FIRST_Q2 if name.startswith("q2") else {}).get(key, FIRST[key])
    fw = report.first_wrong
    assert fw is not None and fw.key == first, report.summary()
    assert fw.mistake is mistake and fw.equivalent == (), (fw.mistake, fw.equivalent)
    # Every later number the mistake changes is carried forward; none is a new error.
    clear, close = differs(flat(values), flat(run_step(spec)))
    assert first in clear
    for v in report.verdicts:
        if v is fw:
            continue
        assert v.status != WRONG, v.key
        if v.key in clear:
            assert v.status == CARRIED, v.key
        elif v.key in close:
            assert v.status == RIGHT, v.key
    assert any(v.status == CARRIED for v in report.verdicts) or first in ("b[0]", "b[2]")


# Mistakes no built-in exercise can show: Question 1 with sigmoid hidden units, with a sigmoid output
# layer, and with a W^[3] that is not symmetric.  Where they first show, from their formulas: a
# hidden σ' first enters δ^[2]; an output σ' enters δ^[3] = (ŷ − y) ⊙ σ'(z^[3]); W^[3] δ^[3] for
# W^[3]ᵀ δ^[3] is ∂L/∂h^[2].
W3 = [[0.1, 0.2, 0.3], [0.0, 0.1, -0.1], [0.2, 0.1, 0.1]]
VARIANTS = {
    "sigmoid hidden": (dict(hidden="sigmoid"), {"sigmoid_prime_as_sigmoid": "examples[0].dz[1]",
                                                "sigmoid_prime_squared": "examples[0].dz[1]"}),
    "sigmoid output": (dict(output="sigmoid"), {"sigmoid_prime_as_sigmoid": "examples[0].dz[2]",
                                                "sigmoid_prime_squared": "examples[0].dz[2]"}),
    "W3 not symmetric": (dict(weights=[[[0.1] * 4] * 4, [[0.1] * 4] * 3, W3]),
                         {"W_not_transposed": "examples[0].dh[1]"}),
}


@pytest.mark.parametrize("variant,key", [(v, k) for v, (_, ks) in VARIANTS.items() for k in ks])
def test_mistakes_the_builtins_cannot_show(variant, key):
    change, first = VARIANTS[variant]
    raw = dict(builtin("q1").source, **change)
    if "weights" in change:
        raw["biases"] = [[0.1] * 4, [0.1] * 3, [0.1] * 3]
    spec = parse_spec(raw)
    values = M.simulate(spec, [M.BY_KEY[key]])
    report = check_answers(spec, loads_answers(answers_text(values)))
    fw = report.first_wrong
    assert fw is not None and fw.key == first[key] and fw.mistake.key == key, report.summary()
    clear, _ = differs(flat(values), flat(run_step(spec)))
    assert all(v.status == CARRIED for v in report.verdicts if v.key in clear and v is not fw)
    assert all(v.status != WRONG for v in report.verdicts if v is not fw)


def test_the_report_shows_the_right_formula():
    spec = builtin("q1")
    report = check_answers(spec, loads_answers(answers_text(M.simulate(spec, [M.BY_KEY["tanh_prime_squared"]]))))
    text = str(report)
    assert "tanh' taken as tanh²" in text and "1 − (h^[l])²" in text
    assert "First wrong: δ^[2] = ∂L/∂z^[2]" in text
    html = report._repr_html_()
    assert html.count("<tr") == len(report.verdicts) + 1 and "<table>" in html and "tanh&#x27; taken as" in html
    d = json.loads(report.to_json())
    assert d["first_wrong"] == "examples[0].dz[1]" and d["mistakes"][0]["key"] == "tanh_prime_squared"
    assert d["counts"] == report.counts() and not d["ok"]


def test_error_carried_forward_from_a_slip_no_mistake_explains():
    # δ^[2] miscopied as −0.04580 (digits swapped): no recognised mistake gives it.  The student
    # then uses it correctly: ∂L/∂W^[2] = δ^[2] h^[1]ᵀ = −0.04580 · 0.2913 = −0.01334, and
    # ∂L/∂h^[1] = W^[2]ᵀ δ^[2] = 3 · 0.1 · (−0.04580) = −0.01374.  Both are credited.
    answers = {"examples": [{"dz": [None, [-0.04580] * 3, None],
                             "grad_W": [None, [[-0.01334] * 4] * 3, None],
                             "dh": [[-0.01374] * 4, None, None]}],
               "W": [None, [[0.1001] * 4] * 3, None]}  # 0.1 − 0.1 · (−0.01334) = 0.101334, not 0.1001
    report = check_answers("q1", answers)
    assert [(v.key, v.status) for v in report.verdicts] == [
        ("examples[0].dz[1]", WRONG), ("examples[0].grad_W[1]", CARRIED), ("examples[0].dh[0]", CARRIED),
        ("W[1]", WRONG)]
    assert report.verdicts[0].mistake is None and "not one of the recognised" in report.verdicts[0].note
    np.testing.assert_allclose(report.verdicts[1].yours, np.full((3, 4), -0.04580 * np.tanh(0.3)), rtol=1e-12)


def test_rounding_carried_from_the_students_own_numbers_is_accepted():
    # h^[1] = 0.29 is right to 2 decimals (tanh 0.3 = 0.2913); from it z^[2] = 4 · 0.1 · 0.29 + 0.1
    # = 0.216, while the exact z^[2] = 0.216525 rounds to 0.217.  A marker accepts 0.216.
    report = check_answers("q1", {"examples": [{"h": [[0.29] * 4, None, None], "z": [None, [0.216] * 3, None]}]})
    assert report.ok, report.summary()
    assert "rounded" in report["examples[0].z[1]"].note
    bad = check_answers("q1", {"examples": [{"h": [[0.29] * 4, None, None], "z": [None, [0.226] * 3, None]}]})
    assert bad["examples[0].z[1]"].status == WRONG


def test_mistakes_compose_and_a_second_mistake_is_named_too():
    spec = builtin("q1")
    both = [M.BY_KEY["tanh_prime_squared"], M.BY_KEY["update_sign_flipped"]]
    report = check_answers(spec, loads_answers(answers_text(M.simulate(spec, both))))
    named = [(v.key, v.mistake.key) for v in report.verdicts if v.mistake]
    assert named == [("examples[0].dz[1]", "tanh_prime_squared"), ("W[0]", "update_sign_flipped")]


def test_simulating_no_mistake_is_the_computed_step():
    for name in BUILTINS:
        spec = builtin(name)
        got, want = flat(M.simulate(spec)), flat(run_step(spec))
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-15, err_msg=k)


# ----------------------------------------------------------------------------- the sheet's own numbers
# Typed in from the sheet at the precision printed.  Where the sheet prints a wrong shape (b^[3]
# with four entries, h^[1] of a five-vector, three-entry ∂L/∂h^[1] and δ^[1] in ∂L/∂W^[1]), the value
# shown is keyed into the shape the maths has, as a marker reads it.
def _q(s, n):
    return [s] * n


SHEET_Q1 = {"examples": [{
    "z": [_q("0.3", 4), _q("0.2165", 3), _q("0.16396", 3)],
    "h": [_q("0.2913", 4), _q("0.2132", 3), _q("0.16396", 3)],
    "loss": "0.376",
    "dh": [_q("-0.01455", 4), _q("-0.050812", 3), ["0.16396", "-0.83604", "0.16396"]],
    "dz": [_q("-0.01332", 4), _q("-0.04850", 3), ["0.16396", "-0.83604", "0.16396"]],
    "grad_W": [[["-0.01332", "0", "-0.01332", "0"]] * 4, [_q("-0.01413", 4)] * 3,
               [_q("0.03496", 3), _q("-0.17825", 3), _q("0.03496", 3)]],
    "grad_b": [_q("-0.01332", 4), _q("-0.04850", 3), ["0.16396", "-0.83604", "0.16396"]]}],
    "W": [[["0.101332", "0.1", "0.101332", "0.1"]] * 4, [_q("0.101413", 4)] * 3,
          [_q("0.0965", 3), _q("0.1178", 3), _q("0.0965", 3)]],
    "b": [_q("0.101332", 4), _q("0.10485", 3), ["0.0836", "0.1836", "0.0836"]]}

SHEET_Q2 = {"examples": [{
    "z": [_q("0.3", 4), _q("0.2165", 3), _q("0.16396", 3)],
    "h": [_q("0.2913", 4), _q("0.2132", 3), _q("0.3333", 3)],
    "loss": "1.0986",
    "dz": [None, None, ["0.3333", "-0.6667", "0.3333"]],
    "grad_W": [None, None, [_q("0.07107", 3), _q("-0.14214", 3), _q("0.07107", 3)]],
    "grad_b": [_q("0", 4), None, ["0.3333", "-0.6667", "0.3333"]]}],
    # "So far, no parameters changed": W^[1], W^[2], b^[2] stay 0.1, and b^[1] is printed as 0.1.
    "W": [[_q("0.1", 4)] * 4, [_q("0.1", 4)] * 3, [_q("0.09289", 3), _q("0.11421", 3), _q("0.09289", 3)]],
    "b": [_q("0.1", 4), _q("0.1", 3), ["0.0667", "0.1667", "0.0667"]]}


def test_sheet_question_1_1_is_all_right():
    # Worked by hand: tanh 0.3 = 0.291313; z^[2] = 0.4 · 0.291313 + 0.1 = 0.216525; h^[2] = 0.213204;
    # ŷ = 0.3 · 0.213204 + 0.1 = 0.163961; L = ½(2 · 0.163961² + 0.836039²) = 0.376364;
    # ∂L/∂W^[3] = 0.163961 · 0.213204 = 0.034957 and −0.836039 · 0.213204 = −0.178247;
    # ∂L/∂h^[2] = 0.1 · (0.163961 · 2 − 0.836039) = −0.0508117; δ^[2] = −0.0508117 · (1 − 0.213204²)
    # = −0.048502; ∂L/∂W^[2] = −0.048502 · 0.291313 = −0.014129; ∂L/∂h^[1] = 0.3 · (−0.048502) =
    # −0.0145506; δ^[1] = −0.0145506 · (1 − 0.291313²) = −0.0133158; the updates 0.1013316,
    # 0.1014129, 0.1048502, 0.0965043 / 0.1178247, 0.0836039 / 0.1836039.  Every printed number is
    # these rounded at its printed decimals, so a careful marker gives full marks.  (The sheet's
    # derivation of tanh' ends at tanh², but its numbers use 1 − h²: no number is wrong.)
    report = check_answers("q1", loads_answers(dumps(SHEET_Q1)))
    assert report.ok, report.summary()
    assert len(report.verdicts) == 25


def test_sheet_question_1_1_garbled_bias_gradient():
    # The sheet's ∂L/∂b^[1] line ends in vectors with a flipped sign and a dropped digit; read as
    # the four entries 0.0132, −0.01332, −0.01332, −0.01332 it is wrong in its first entry (no
    # recognised mistake: a slip), and the update b^[1] = 0.101332 printed next, made with the
    # right gradient, is still right.
    answers = {"examples": [{"grad_b": [["0.0132", "-0.01332", "-0.01332", "-0.01332"], None, None]}],
               "b": [_q("0.101332", 4), None, None]}
    report = check_answers("q1", loads_answers(dumps(answers)))
    assert [(v.key, v.status) for v in report.verdicts] == [("examples[0].grad_b[0]", WRONG), ("b[0]", RIGHT)]
    assert report.verdicts[0].mistake is None and "(1)" in report.verdicts[0].note
    assert report.exit_code == 1


def test_sheet_question_2_1_is_all_right():
    # Worked by hand: equal logits, so p = 1/3 (0.3333) and L = log 3 = 1.098612 (1.0986);
    # δ^[3] = p − y = (1/3, −2/3, 1/3); ∂L/∂W^[3] = (1/3) · 0.213204 = 0.071068 (0.07107) and
    # −0.142136 (−0.14214); every hidden gradient is exactly 0 (δ^[3] sums to 0 against equal rows
    # of W^[3]), so ∂L/∂b^[1] = 0 is exact and W^[1], b^[1], W^[2], b^[2] stay 0.1; W^[3] =
    # 0.1 − 0.0071068 = 0.0928932 (0.09289) and 0.1142136 (0.11421); b^[3] = 1/15 = 0.066667
    # (0.0667) and 1/6 = 0.166667 (0.1667).  Full marks.
    report = check_answers("q2", loads_answers(dumps(SHEET_Q2)))
    assert report.ok, report.summary()


# ----------------------------------------------------------------------------- the command
def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tinygrad_mlp", "check", *args], capture_output=True, text=True,
                          cwd=cwd)


def test_cli_exit_codes_and_json(tmp_path):
    spec = builtin("q1-batch")
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(answers_text(run_step(spec), 4))
    bad.write_text(answers_text(M.simulate(spec, [M.BY_KEY["batch_averaged"]]), 4))
    r = run_cli("q1-batch", str(good))
    assert r.returncode == 0 and "0 wrong" in r.stdout and r.stderr == ""
    r = run_cli("q1-batch", str(bad))
    assert r.returncode == 1 and "averaged instead of summed" in r.stdout
    r = run_cli("q1-batch", str(bad), "--json")
    assert r.returncode == 1
    d = json.loads(r.stdout)
    assert d["first_wrong"] == "grad_W[2]" and d["mistakes"][0]["key"] == "batch_averaged"
    assert {q["status"] for q in d["quantities"]} == {RIGHT, WRONG, CARRIED}
    # The whole output of `exercise --json` is a valid (and right) answers file.
    full = tmp_path / "full.json"
    full.write_text(subprocess.run([sys.executable, "-m", "tinygrad_mlp", "exercise", "q2", "--json"],
                                   capture_output=True, text=True, check=True).stdout)
    assert run_cli("q2", str(full)).returncode == 0


def test_cli_with_a_spec_file(tmp_path):
    spec_path = tmp_path / "relu.json"
    raw = dict(builtin("q1").source, hidden="relu")
    spec_path.write_text(json.dumps(raw))
    answers = tmp_path / "a.json"
    answers.write_text(answers_text(M.simulate(parse_spec(raw), [M.BY_KEY["no_activation_derivative"]])))
    r = run_cli(str(spec_path), str(answers))
    # relu' is 1 where z > 0, and every z is positive here: leaving g' out changes nothing.
    assert r.returncode == 0, r.stdout


MALFORMED = [
    ('{"grad_w": []}', "grad_w"),
    ('{"examples": [{"delta": []}]}', "examples[0].delta"),
    ('{"examples": [{}, {}]}', "examples"),
    ('{"examples": {"z": []}}', "examples"),
    ('{"examples": [[1]]}', "examples[0]"),
    ('{"W": [null, null]}', "W"),
    ('{"W": {"4": []}}', "W"),
    ('{"W": [null, null, [[0.1, 0.1], [0.1, 0.1], [0.1, 0.1]]]}', "W[2][0]"),
    ('{"W": [null, null, [[0.1, 0.1, 0.1]]]}', "W[2]"),
    ('{"b": [null, [0.1, 0.1, 0.1, 0.1], null]}', "b[1]"),
    ('{"b": [null, null, ["0.1", 0.1, 0.1]]}', "b[2][0]"),
    ('{"b": [null, null, [true, 0.1, 0.1]]}', "b[2][0]"),
    ('{"b": [null, null, [NaN, 0.1, 0.1]]}', "b[2][0]"),
    ('{"b": [null, null, [{}, 0.1, 0.1]]}', "b[2][0]"),
    ('{"loss": [0.376]}', "loss"),
    ('{"examples": [{"loss": "0.376"}]}', "examples[0].loss"),
    ('{"examples": [{"output": 0.1}]}', "examples[0].output"),
    ('{"loss": 0.3, "loss": 0.4}', "loss"),
    ('[0.1]', "answers"),
    ('{"W": [', "answers"),
    ('{}', "answers"),
    ('{"name": "q1"}', "answers"),
]


@pytest.mark.parametrize("text,key", MALFORMED)
def test_malformed_answers_exit_2_naming_the_key(tmp_path, capsys, text, key):
    p = tmp_path / "answers.json"
    p.write_text(text)
    assert cli_check.main(["q1", str(p)]) == 2  # in-process: the same main as `python -m tinygrad_mlp check`
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}"), err
    with pytest.raises(AnswersError, match="^" + re.escape(key)):
        check_answers("q1", p)


def test_missing_file_and_bad_spec_exit_2(tmp_path):
    r = run_cli("q1", str(tmp_path / "nope.json"))
    assert r.returncode == 2 and r.stderr.startswith("error: answers: cannot read")
    r = run_cli("q9", str(tmp_path / "nope.json"))
    assert r.returncode == 2 and r.stderr.startswith("error: exercise:")
    r = run_cli("q1")
    assert r.returncode == 2 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1


def test_top_level_import_is_lazy():
    code = ("import sys, tinygrad_mlp; assert 'tinygrad_mlp.practical.check' not in sys.modules; "
            "from tinygrad_mlp import check_answers; assert check_answers.__module__ == 'tinygrad_mlp.practical.check'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- random specs, random mistakes
@st.composite
def specs(draw):
    layers = draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
    hidden = draw(st.sampled_from(["identity", "tanh", "sigmoid", "relu"]))
    output, loss = draw(st.sampled_from([("identity", "squared_error"), ("sigmoid", "squared_error"),
                                         ("softmax", "cross_entropy")]))
    tenth = st.integers(-10, 10).map(lambda i: i / 10)
    W = [[[draw(tenth) for _ in range(layers[l])] for _ in range(layers[l + 1])] for l in range(len(layers) - 1)]
    b = [[draw(tenth) for _ in range(layers[l + 1])] for l in range(len(layers) - 1)]
    examples = []
    for _ in range(draw(st.integers(1, 3))):
        x = [draw(st.integers(-20, 20)) / 10 for _ in range(layers[0])]
        if loss == "cross_entropy":
            y = [0.0] * layers[-1]
            y[draw(st.integers(0, layers[-1] - 1))] = 1.0
        else:
            y = [draw(st.integers(0, 10)) / 10 for _ in range(layers[-1])]
        examples.append({"x": x, "y": y})
    return parse_spec({"layers": layers, "hidden": hidden, "output": output, "loss": loss, "weights": W, "biases": b,
                       "learning_rate": draw(st.sampled_from([0.05, 0.1, 0.5])), "examples": examples})


@given(data=st.data())
def test_random_spec_random_mistake_is_named(data):
    spec = data.draw(specs())
    options = M.applicable(spec)
    assume(options)
    mistake = data.draw(st.sampled_from(options))
    values = M.simulate(spec, [mistake])
    truth = flat(run_step(spec))
    student = flat(values)
    assume(all(np.all(np.isfinite(v)) for v in student.values()))
    clear, close = differs(student, truth)
    report = check_answers(spec, loads_answers(answers_text(values)))
    if not clear:  # the mistake changes nothing at 4 digits here (an equivalence with the right step)
        assume(len(close) == len(student))
        assert report.ok, report.summary()
        return
    order = [v.key for v in report.verdicts]
    first = next(k for k in order if k not in close)
    assume(first in clear)  # not a number sitting on a rounding boundary
    fw = report.first_wrong
    assert fw is not None and fw.key == first, (mistake.key, report.summary())
    assert mistake is fw.mistake or mistake in fw.equivalent, (mistake.key, fw.mistake, fw.equivalent)
    assert all(v.status != WRONG for v in report.verdicts if v is not fw), report.summary()
    assert all(v.status == CARRIED for v in report.verdicts if v.key in clear and v is not fw)


def test_non_utf8_answers_exit_2(tmp_path):
    p = tmp_path / "answers.json"
    p.write_bytes(b'{"loss": 0.376\xff}')
    r = run_cli("q1", str(p))
    assert r.returncode == 2 and r.stderr.startswith("error: answers:") and r.stdout == ""


def test_the_readme_example_is_what_the_command_prints(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Checking a student's answers", 1)[1].split("\n## ", 1)[0]
    answers = section.split("```json\n", 1)[1].split("```", 1)[0]
    printed = section.split("prints (exit 1):\n\n```\n", 1)[1].split("```", 1)[0]
    p = tmp_path / "answers.json"
    p.write_text(answers, encoding="utf-8")
    r = run_cli("q1", str(p))
    assert r.returncode == 1 and r.stdout == printed
