"""Export to safetensors (PyTorch's layout) and ONNX: checked by the other side's own readers.

The independent paths: the ``safetensors`` package reads our files, ``torch.nn.Sequential`` with
``load_state_dict(strict=True)`` runs them, ``onnx.checker`` accepts the graph and onnxruntime runs
it.  Each skips cleanly when its package is missing.  The end-to-end tests use a real
``python -m tinygrad_mlp digits --save`` run, shortened to 2 epochs (a full 100-epoch run takes
minutes; what is checked, that predictions survive the export on all 1,797 digits, does not depend
on how long the model trained).
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_mlp import MLP, load
from tinygrad_mlp.nn.export import export_onnx, load_safetensors, read_safetensors, save_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "tinygrad_mlp", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A model trained by the digits command itself (2 epochs, --scale), and the digits."""
    from sklearn.datasets import load_digits
    d = tmp_path_factory.mktemp("digits")
    path = d / "digits.npz"
    r = _run("digits", "--epochs", "2", "--only", "tinygrad_mlp", "--scale", "--quiet", "--save", str(path))
    assert r.returncode == 0, r.stderr
    X, y = load_digits(return_X_y=True)
    return path, X.astype(np.float64), y


def _torch_sequential(model, torch):
    acts = {"tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU, "identity": torch.nn.Identity}
    mods = []
    for l, (i, o) in enumerate(zip(model.sizes[:-1], model.sizes[1:])):
        mods.append(torch.nn.Linear(i, o))
        if l < model.n_layers - 1:
            mods.append(acts[model.hidden]())
    return torch.nn.Sequential(*mods).double()


@pytest.mark.parametrize("hidden", ["tanh", "relu", "sigmoid", "identity"])
def test_safetensors_round_trip_is_bit_exact(tmp_path, hidden):
    m = MLP([5, 4, 3, 2], hidden=hidden, output="softmax", seed=3)
    save_safetensors(m, tmp_path / "m.safetensors")
    m2 = load_safetensors(tmp_path / "m.safetensors")
    assert (m2.sizes, m2.hidden, m2.output, m2.dtype) == (m.sizes, m.hidden, m.output, m.dtype)
    for a, b in zip(m.parameters(), m2.parameters()):
        assert a.data.tobytes() == b.data.tobytes()


def test_safetensors_layout_by_hand(tmp_path):
    """The format, read here without our reader: length, JSON header, raw little-endian bytes."""
    m = MLP([3, 2, 2], seed=0, dtype=np.float32)
    save_safetensors(m, tmp_path / "m.safetensors", input_scale=0.5)
    raw = (tmp_path / "m.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert (8 + n) % 8 == 0
    assert set(header) == {"__metadata__", "0.weight", "0.bias", "2.weight", "2.bias"}
    assert header["0.weight"]["shape"] == [2, 3] and header["0.weight"]["dtype"] == "F32"
    lo, hi = header["2.weight"]["data_offsets"]
    w2 = np.frombuffer(raw[8 + n + lo:8 + n + hi], dtype="<f4").reshape(2, 2)
    np.testing.assert_array_equal(w2, m.layers[1].W.data)
    assert float(header["__metadata__"]["input_scale"]) == 0.5
    assert b"pickle" not in raw and not raw.startswith(b"PK")


def test_safetensors_package_reads_our_file(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open
    m = MLP([4, 3, 2], hidden="relu", seed=1)
    save_safetensors(m, tmp_path / "m.safetensors")
    d = st.load_file(str(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(d["0.weight"], m.layers[0].W.data)
    np.testing.assert_array_equal(d["2.bias"], m.layers[1].b.data)
    with safe_open(str(tmp_path / "m.safetensors"), "np") as f:
        assert f.metadata()["hidden"] == "relu"
    # and the other way: a file the package wrote loads into our MLP
    st.save_file({k: np.ascontiguousarray(v) for k, v in d.items()}, str(tmp_path / "theirs.safetensors"))
    m2 = load_safetensors(tmp_path / "theirs.safetensors", hidden="relu", output="identity")
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(m2(x).data, m(x).data)


def test_torch_loads_our_file_strict_and_agrees(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file  # noqa: F401  (the package's own reader)
    m = MLP([6, 5, 4, 3], hidden="tanh", output="softmax", seed=2)
    save_safetensors(m, tmp_path / "m.safetensors")
    seq = _torch_sequential(m, torch)
    seq.load_state_dict(load_file(str(tmp_path / "m.safetensors")), strict=True)
    x = np.random.default_rng(1).standard_normal((7, 6))
    with torch.no_grad():
        np.testing.assert_allclose(seq(torch.from_numpy(x)).numpy(), m.logits(x).data, rtol=1e-12, atol=1e-13)
    # reverse: a state dict PyTorch saved gives our MLP
    from safetensors.torch import save_file
    save_file(seq.state_dict(), str(tmp_path / "torch.safetensors"))
    ours = load_safetensors(tmp_path / "torch.safetensors", hidden="tanh", output="softmax")
    np.testing.assert_array_equal(ours.logits(x).data, m.logits(x).data)


@pytest.mark.parametrize("bad, pattern", [
    (b"", "too short"),
    (struct.pack("<Q", 10**9) + b"{}", "header length"),
    (struct.pack("<Q", 2) + b"{]", "damaged safetensors header"),
    (struct.pack("<Q", 4) + b"[1,2", "damaged safetensors header"),
])
def test_damaged_safetensors_files_are_refused_naming_path(tmp_path, bad, pattern):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(bad)
    with pytest.raises(ValueError, match=f"^path: .*{pattern}"):
        load_safetensors(p)


def test_safetensors_with_wrong_offsets_or_keys_is_refused(tmp_path):
    m = MLP([3, 2], seed=0)
    save_safetensors(m, tmp_path / "m.safetensors")
    raw = bytearray((tmp_path / "m.safetensors").read_bytes())
    (tmp_path / "short.safetensors").write_bytes(bytes(raw[:-8]))
    with pytest.raises(ValueError, match="^path: .*data_offsets"):
        read_safetensors(tmp_path / "short.safetensors")
    st = pytest.importorskip("safetensors.numpy")
    st.save_file({"0.weight": np.zeros((2, 3)), "1.bias": np.zeros(2)}, str(tmp_path / "keys.safetensors"))
    with pytest.raises(ValueError, match="^path: .*expected the keys"):
        load_safetensors(tmp_path / "keys.safetensors", hidden="tanh", output="identity")
    with pytest.raises(ValueError, match="^hidden: "):
        st.save_file({"0.weight": np.zeros((2, 3)), "0.bias": np.zeros(2)}, str(tmp_path / "nometa.safetensors"))
        load_safetensors(tmp_path / "nometa.safetensors")


def test_output_paths_are_checked(tmp_path):
    m = MLP([3, 2], seed=0)
    with pytest.raises(ValueError, match="^path: the folder"):
        save_safetensors(m, tmp_path / "missing" / "m.safetensors")
    with pytest.raises(TypeError, match="^model: "):
        save_safetensors({"W1": np.zeros((2, 3))}, tmp_path / "m.safetensors")


def test_onnx_graph_passes_the_checker_and_onnxruntime_agrees(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    for hidden, output in [("tanh", "softmax"), ("relu", "identity"), ("sigmoid", "sigmoid"), ("identity", "softmax")]:
        m = MLP([5, 4, 3], hidden=hidden, output=output, seed=4)
        path = tmp_path / f"{hidden}.onnx"
        export_onnx(m, path)
        onnx.checker.check_model(onnx.load(str(path)))
        ops = [n.op_type for n in onnx.load(str(path)).graph.node]
        assert ops.count("Gemm") == 2
        x = np.random.default_rng(5).standard_normal((6, 5))
        outs = ort.InferenceSession(str(path)).run(None, {"x": x})
        np.testing.assert_allclose(outs[0], m.logits(x).data, rtol=1e-12, atol=1e-14)
        if output != "identity":
            np.testing.assert_allclose(outs[1], m(x).data, rtol=1e-12, atol=1e-14)


def test_digits_model_exported_to_safetensors_predicts_the_same_in_torch(digits_model, tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors import safe_open
    from safetensors.torch import load_file
    path, X, y = digits_model
    out = tmp_path / "digits.safetensors"
    r = _run("export", str(path), str(out))
    assert r.returncode == 0, r.stderr
    ours = load(path)
    with safe_open(str(out), "np") as f:
        scale = float(f.metadata()["input_scale"])
    assert scale == 1 / 16
    seq = _torch_sequential(ours, torch)
    seq.load_state_dict(load_file(str(out)), strict=True)
    with torch.no_grad():
        theirs = seq(torch.from_numpy(X * scale)).numpy()
    assert ours.input_scale == scale  # the loaded model scales raw pixels itself, as the saved one did
    mine = ours.logits(X).data
    assert len(X) == 1797
    np.testing.assert_array_equal(theirs.argmax(1), mine.argmax(1))
    np.testing.assert_allclose(theirs, mine, rtol=1e-10, atol=1e-12)


def test_digits_model_exported_to_onnx_predicts_the_same_in_onnxruntime(digits_model, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path, X, y = digits_model
    out = tmp_path / "digits.onnx"
    r = _run("export", str(path), str(out))
    assert r.returncode == 0, r.stderr
    onnx.checker.check_model(onnx.load(str(out)))
    ours = load(path)
    logits, probs = ort.InferenceSession(str(out)).run(None, {"x": X})  # raw pixels: the graph scales them
    mine = ours.logits(X).data  # the loaded model scales raw pixels itself
    rel = np.abs(logits - mine) / np.maximum(np.abs(mine), 1e-300)
    assert rel.max() <= 1e-6, rel.max()
    np.testing.assert_array_equal(logits.argmax(1), mine.argmax(1))
    np.testing.assert_array_equal(probs.argmax(1), mine.argmax(1))


def test_export_command_errors(tmp_path, digits_model):
    path = digits_model[0]
    r = _run("export", str(path), str(tmp_path / "m.txt"))
    assert r.returncode == 2 and r.stderr.startswith("error: OUT: expected a name ending in")
    r = _run("export", str(tmp_path / "nope.npz"), str(tmp_path / "m.onnx"))
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "nope.npz" in r.stderr
    r = _run("export", str(path), str(tmp_path / "no" / "m.onnx"))
    assert r.returncode == 2 and r.stderr.startswith("error: OUT: the folder")
    assert not (tmp_path / "no").exists()
