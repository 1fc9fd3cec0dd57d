"""``--graph``: the step's tape as Graphviz DOT.

The expected structure is the practical's network itself: per layer a matmul
of W^[l] with h^[l−1], an add of b^[l], then g; the loss at the end.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tinygrad_mlp.practical.exercise import builtin
from tinygrad_mlp.cli.exercise import main
from tinygrad_mlp.practical.graph import step_records, tape_dot
from tinygrad_mlp.autograd.tensor import tape_size


def parse_dot(text):
    labels = dict(re.findall(r'^\s+(\w+) \[.*?label="([^"]*)"', text, flags=re.M))
    edges = re.findall(r"^\s+(\w+) -> (\w+);", text, flags=re.M)
    return labels, edges


def by_name(labels, prefix):
    return [n for n, lab in labels.items() if lab.split("\\n")[0] == prefix]


@pytest.mark.parametrize("name", ["q1", "q2", "q1-batch", "q2-batch"])
def test_dot_has_the_networks_ops_and_leaves(name):
    before = tape_size()
    text = tape_dot(builtin(name))
    assert tape_size() == before  # read before backward, then freed
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    labels, edges = parse_dot(text)
    for leaf in ("W^[1]", "W^[2]", "W^[3]", "b^[1]", "b^[2]", "b^[3]"):
        assert len(by_name(labels, leaf)) == 1, leaf
    x = "X" if "batch" in name else "x"
    assert len(by_name(labels, x)) == 1
    # one z^[l] = W^[l] h^[l−1] + b^[l] per layer; for one example's cross-entropy (q2) yᵀz^[L] is a matmul
    assert len(by_name(labels, "affine")) == 3
    assert len(by_name(labels, "matmul")) == (1 if name == "q2" else 0)
    assert len(by_name(labels, "tanh")) == 2  # hidden layers only
    # W^[1] feeds the affine map that x feeds
    (w1,), (xn,) = by_name(labels, "W^[1]"), by_name(labels, x)
    succ = {}
    for a, b in edges:
        succ.setdefault(a, set()).add(b)
    w1_next = succ[w1] | {c for t in succ[w1] if labels[t].startswith("transpose") for c in succ.get(t, ())}
    assert succ[xn] & w1_next
    # shapes: z^[1] of one example is a 4-vector, of the batch 2×4
    first_mm = next(iter(succ[xn]))
    assert labels[first_mm].split("\\n")[1] == ("2×4" if "batch" in name else "4")
    # exactly one node is the loss, a scalar, and nothing leaves it
    (loss,) = [n for n, lab in labels.items() if "loss L" in lab]
    assert "scalar" in labels[loss] and loss not in succ
    # every op is reached from a leaf and every edge joins known nodes
    assert all(a in labels and b in labels for a, b in edges)


def test_records_are_the_tape_in_execution_order():
    records, names, loss = step_records(builtin("q1"))
    ops = [rec.prim.name for out, rec in records]
    assert ops[:2] == ["affine", "tanh"]
    assert ops.count("affine") == 3
    assert records[-1][0] is loss
    loss.backward()


def test_cli_writes_dot_and_svg(capsys, tmp_path):
    target = tmp_path / "tape.dot"
    code = main(["q2", "--graph", str(target), "-o", str(tmp_path / "q2.txt")])
    out, err = capsys.readouterr()
    assert code == 0 and out == ""
    assert target.read_text().startswith("digraph")
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("graphviz dot not installed")
    svg = tmp_path / "tape.svg"
    assert svg.exists() and "<svg" in svg.read_text()
    assert f"wrote {svg}" in err
    done = subprocess.run([dot, "-Tplain", str(target)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "logsumexp" in done.stdout


def test_without_graphviz_the_note_says_how_to_get_an_svg(capsys, tmp_path, monkeypatch):
    from tinygrad_mlp.practical import graph

    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    target = tmp_path / "tape.dot"
    code = main(["q1", "--graph", str(target), "-o", str(tmp_path / "q1.txt")])
    out, err = capsys.readouterr()
    assert code == 0 and out == ""
    assert target.read_text().startswith("digraph")
    assert f"wrote {target}" in err
    assert "SVG" in err and "`dot`" in err and "apt-get install graphviz" in err
    assert not (tmp_path / "tape.svg").exists()
