"""Saving and loading (tinygrad_mlp.nn.serialize) and the ``predict`` command.

Expected values come from independent paths: the saved bytes are compared
with the original arrays bit for bit, predictions with the hand-written
forward pass of :mod:`tinygrad_mlp.practical.reference`, damaged files are built here
with :mod:`zipfile` and ``np.savez``.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_mlp import MLP, reference
from tinygrad_mlp.cli.predict import main as predict_main
from tinygrad_mlp.cli.predict import read_images
from tinygrad_mlp.files import OutputPathError
from tinygrad_mlp.nn.serialize import ModelFileError, ModelFileNotFoundError, load, load_with_meta, save

REPO = Path(__file__).resolve().parents[1]
DTYPES = (np.float64, np.float32)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def params_equal(m1: MLP, m2: MLP) -> bool:
    s1, s2 = m1.state_dict(), m2.state_dict()
    return s1.keys() == s2.keys() and all(same_bits(s1[k], s2[k]) for k in s1)


def rewrite(src: Path, dst: Path, drop=(), replace=None) -> None:
    """Copy an .npz member by member, dropping or replacing some (as np.save would write them)."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            key = info.filename[:-4]
            if key in drop:
                continue
            if key in replace:
                buf = io.BytesIO()
                np.save(buf, replace[key], allow_pickle=True)
                zout.writestr(info.filename, buf.getvalue())
            else:
                zout.writestr(info, zin.read(info.filename))
        for key, arr in replace.items():
            if key + ".npy" not in zin.namelist():
                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=True)
                zout.writestr(key + ".npy", buf.getvalue())


mlps = st.builds(
    lambda sizes, hidden, output, dtype, seed: MLP(sizes, hidden=hidden, output=output, seed=seed, dtype=dtype),
    st.lists(st.integers(1, 7), min_size=2, max_size=5),
    st.sampled_from(["tanh", "sigmoid", "relu", "identity"]),
    st.sampled_from(["identity", "softmax", "sigmoid"]),
    st.sampled_from(DTYPES),
    st.integers(0, 2**32 - 1),
)


# ----------------------------------------------------------------------- round trips
@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(mlps)
def test_mlp_round_trip_is_bit_exact(model):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.npz"
        save(model, path)
        back = load(path)
    assert isinstance(back, MLP)
    assert (back.sizes, back.hidden, back.output, back.dtype) == (model.sizes, model.hidden, model.output, model.dtype)
    assert params_equal(model, back)
    x = np.random.default_rng(0).standard_normal((3, model.sizes[0])).astype(model.dtype)
    assert same_bits(model(x).data, back(x).data)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loaded_mlp_matches_the_hand_written_forward(tmp_path, dtype):
    model = MLP([5, 4, 3], hidden="tanh", output="softmax", seed=3, dtype=dtype)
    save(model, tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    x = np.linspace(-1, 1, 5)
    W = [model.layers[l].W.data.astype(np.float64) for l in range(2)]
    b = [model.layers[l].b.data.astype(np.float64) for l in range(2)]
    _, hs = reference.forward(W, b, x, "tanh", "softmax")
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(back(x.astype(dtype)).data, hs[-1], rtol=tol, atol=tol)


state_dicts = st.dictionaries(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=12)
    .filter(lambda k: not k.startswith("__")),
    hnp.arrays(st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
               elements={"allow_nan": False, "allow_infinity": False}),
    max_size=5,
)


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(state_dicts)
def test_state_dict_round_trip_is_bit_exact(state):
    with tempfile.TemporaryDirectory() as d:
        save(state, Path(d) / "s.npz")
        back = load(Path(d) / "s.npz")
    assert isinstance(back, dict) and back.keys() == state.keys()
    for k in state:
        assert same_bits(back[k], state[k]), k


def test_state_dict_of_an_mlp_loads_back_as_a_dict_and_into_a_model(tmp_path):
    model = MLP([3, 4, 2], seed=1)
    save(model.state_dict(), tmp_path / "s.npz")
    back = load(tmp_path / "s.npz")
    assert isinstance(back, dict)
    other = MLP([3, 4, 2], seed=2)
    other.load_state_dict(back)
    assert params_equal(model, other)


def test_plain_np_savez_archive_loads_as_a_dict(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.arange(4), w=np.eye(2))
    back = load(tmp_path / "plain.npz")
    assert same_bits(back["a"], np.arange(4)) and same_bits(back["w"], np.eye(2))


def test_meta_round_trips(tmp_path):
    save(MLP([2, 2]), tmp_path / "m.npz", meta={"input_scale": 1 / 16, "note": "digits", "classes": np.arange(3)})
    _, meta = load_with_meta(tmp_path / "m.npz")
    assert meta["input_scale"] == 1 / 16 and meta["note"] == "digits" and same_bits(meta["classes"], np.arange(3))


def test_file_holds_only_plain_arrays_and_the_architecture(tmp_path):
    save(MLP([4, 3, 2], hidden="relu", output="softmax", dtype=np.float32), tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    assert all(a.dtype != object for a in arrays.values())
    assert arrays["__sizes__"].tolist() == [4, 3, 2]
    assert (str(arrays["__hidden__"]), str(arrays["__output__"]), str(arrays["__dtype__"])) == ("relu", "softmax",
                                                                                             "float32")
    assert arrays["W1"].shape == (3, 4) and arrays["b2"].shape == (2,)


def test_save_writes_the_path_as_given_and_replaces_an_old_file(tmp_path):
    path = tmp_path / "model"  # no .npz suffix is added
    old, new = MLP([2, 3], seed=1), MLP([2, 3], seed=2)
    save(old, path)
    save(new, str(path))
    assert params_equal(load(path), new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp file left behind


# ----------------------------------------------------------------------- bad files
def test_object_arrays_are_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    payload = np.array([_Boom(str(marker))], dtype=object)
    np.savez(tmp_path / "evil.npz", W1=payload)
    with pytest.raises(ModelFileError, match=r"evil\.npz.*'W1'.*object array"):
        load(tmp_path / "evil.npz")
    assert not marker.exists()


class _Boom:
    """Unpickling this creates a file: proof that a load unpickled it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_pickle_file_is_refused(tmp_path):
    (tmp_path / "p.npz").write_bytes(pickle.dumps({"W1": [1.0]}))
    with pytest.raises(ModelFileError, match=r"p\.npz.*not an \.npz"):
        load(tmp_path / "p.npz")


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.npz"
    save(MLP([4, 3, 2], hidden="tanh", output="softmax", seed=0), path)
    return path


@pytest.mark.parametrize("drop, pattern", [
    (("W2",), r"missing \['W2'\]"),
    (("b1",), r"missing \['b1'\]"),
    (("__sizes__",), "__sizes__"),
    (("__hidden__",), "__hidden__"),
    (("__dtype__",), "__dtype__"),
    (("__version__",), "__version__"),
])
def test_missing_entries_are_named(saved, tmp_path, drop, pattern):
    bad = tmp_path / "bad.npz"
    rewrite(saved, bad, drop=drop)
    with pytest.raises(ModelFileError, match=r"bad\.npz.*" + pattern):
        load(bad)


@pytest.mark.parametrize("replace, pattern", [
    ({"W1": np.zeros((4, 3))}, r"'W1': expected shape \(3, 4\).*got \(4, 3\)"),
    ({"b2": np.zeros(3)}, r"'b2': expected shape \(2,\)"),
    ({"W1": np.zeros((3, 4), np.float32)}, r"'W1': expected dtype float64"),
    ({"W2": np.full((2, 3), np.nan)}, r"'W2' holds NaN"),
    ({"W2": np.array([["a"] * 3] * 2)}, r"'W2': expected a numeric array"),
    ({"W3": np.zeros((2, 2))}, r"unexpected \['W3'\]"),
    ({"__sizes__": np.array([4, 0, 2])}, "__sizes__"),
    ({"__sizes__": np.array([4.0, 3.0, 2.0])}, "__sizes__"),
    ({"__hidden__": np.array("swish")}, r"'__hidden__': expected one of"),
    ({"__output__": np.array("softplus")}, r"'__output__': expected one of"),
    ({"__dtype__": np.array("float16")}, r"'__dtype__'"),
    ({"__format__": np.array("keras")}, r"'__format__'"),
    ({"__version__": np.array(99)}, "version 99"),
    ({"__hidden__": np.array([1, 2])}, r"'__hidden__': expected a string"),
])
def test_wrong_entries_are_named(saved, tmp_path, replace, pattern):
    bad = tmp_path / "bad.npz"
    rewrite(saved, bad, replace=replace)
    with pytest.raises(ModelFileError, match=r"bad\.npz.*" + pattern):
        load(bad)


def test_missing_file_is_both_file_not_found_and_value_error(tmp_path):
    with pytest.raises(ModelFileNotFoundError, match=r"no such file.*nope\.npz") as e:
        load(tmp_path / "nope.npz")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("content, pattern", [
    (b"", "empty file"),
    (b"hello, world", "not a zip"),
    (b"PK\x03\x04" + b"\0" * 40, "not a readable"),
])
def test_garbage_files_are_refused(tmp_path, content, pattern):
    (tmp_path / "g.npz").write_bytes(content)
    with pytest.raises(ModelFileError, match=r"g\.npz.*" + pattern):
        load(tmp_path / "g.npz")


def test_npy_file_and_directory_are_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match=r"a\.npy.*\.npy array"):
        load(tmp_path / "a.npy")
    with pytest.raises(ModelFileError, match="cannot read"):
        load(tmp_path)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_bytes_give_a_clear_error_or_the_same_model(data):
    model = MLP([3, 4, 2], seed=5)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.npz"
        save(model, path)
        raw = bytearray(path.read_bytes())
        how = data.draw(st.sampled_from(["truncate", "flip", "random"]))
        if how == "truncate":
            raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
        elif how == "flip":
            for _ in range(data.draw(st.integers(1, 4))):
                i = data.draw(st.integers(0, len(raw) - 1))
                raw[i] ^= data.draw(st.integers(1, 255))
        else:
            raw = bytearray(data.draw(st.binary(max_size=600)))
        path.write_bytes(bytes(raw))
        try:
            back = load(path)
        except ModelFileError as e:
            assert "m.npz" in str(e)
        else:  # a flip in a field nobody checks (a timestamp, header padding) may leave the model intact
            assert isinstance(back, MLP) and params_equal(back, model)


# ----------------------------------------------------------------------- bad arguments to save
@pytest.mark.parametrize("obj, exc, pattern", [
    ([np.zeros(2)], TypeError, "model_or_state: expected an MLP or a dict"),
    (None, TypeError, "model_or_state"),
    ({"w": np.array([1, None], dtype=object)}, TypeError, r"model_or_state\['w'\].*numeric"),
    ({"w": "text"}, TypeError, r"model_or_state\['w'\]"),
    ({"w": np.array([1.0, np.nan])}, ValueError, r"model_or_state\['w'\].*finite"),
    ({"w": [[1.0], [1.0, 2.0]]}, TypeError, r"model_or_state\['w'\]"),
    ({"__sizes__": np.zeros(2)}, ValueError, "reserved"),
    ({"": np.zeros(2)}, ValueError, "non-empty key"),
    ({1: np.zeros(2)}, TypeError, "str keys"),
])
def test_save_rejects_bad_objects(tmp_path, obj, exc, pattern):
    with pytest.raises(exc, match=pattern):
        save(obj, tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_bad_paths_and_meta(tmp_path):
    with pytest.raises(TypeError, match="path: expected a str or os.PathLike, got int"):
        save({}, 3)
    with pytest.raises(ValueError, match="path: expected a file name, got the folder"):
        save({}, tmp_path)
    with pytest.raises(TypeError, match="meta: expected a dict"):
        save({}, tmp_path / "x.npz", meta=[1])
    with pytest.raises(OutputPathError, match=r"path: the folder .*no/dir' does not exist"):
        save({}, tmp_path / "no" / "dir" / "x.npz")
    with pytest.raises(TypeError, match="path"):
        load(None)


def test_a_diverged_model_is_not_saved_and_the_old_file_survives(tmp_path):
    path = tmp_path / "m.npz"
    good = MLP([2, 3], seed=1)
    save(good, path)
    bad = MLP([2, 3], seed=2)
    bad.layers[0].W.data[0, 0] = np.nan
    with pytest.raises(ValueError, match="W1 holds NaN"):
        save(bad, path)
    assert params_equal(load(path), good)


def test_a_failure_mid_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = MLP([3, 5, 2], seed=1)
    save(old, path)
    calls = []
    real = np.lib.format.write_array

    def dying(fp, array, *a, **k):
        calls.append(1)
        if len(calls) == 8:  # after several members are already written
            raise OSError("disk full")
        return real(fp, array, *a, **k)

    monkeypatch.setattr(np.lib.format, "write_array", dying)
    with pytest.raises(OSError, match="disk full"):
        save(MLP([3, 5, 2], seed=2), path)
    assert params_equal(load(path), old)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


_WRITER = r"""
import sys, time
import numpy as np
from tinygrad_mlp import MLP
from tinygrad_mlp.nn.serialize import save
path, mode = sys.argv[1], sys.argv[2]
models = [MLP([400, 600, 10], seed=s) for s in (1, 2)]
save(models[0], path)
if mode == "stall":  # the next save stops after writing some members: the parent kills it there
    real, calls = np.lib.format.write_array, []
    def stalling(fp, array, *a, **k):
        calls.append(1)
        if len(calls) == 8:
            print("mid-write", flush=True)
            time.sleep(60)
        return real(fp, array, *a, **k)
    np.lib.format.write_array = stalling
print("ready", flush=True)
i = 1
while True:
    save(models[i % 2], path)
    i += 1
"""


def _kill_writer(path: Path, mode: str, delay: float) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), mode], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        if mode == "stall":
            assert proc.stdout.readline().strip() == b"mid-write"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "m.npz"
    _kill_writer(path, "stall", 0.0)
    assert params_equal(load(path), MLP([400, 600, 10], seed=1))
    # The killed save's temp file is left behind (nobody can remove it), next to an intact target.
    leftovers = [p.name for p in tmp_path.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].startswith(".m.npz.") and leftovers[0].endswith(".tmp")


def test_sigkill_at_random_moments_leaves_a_complete_old_or_new_file(tmp_path):
    path = tmp_path / "m.npz"
    candidates = [MLP([400, 600, 10], seed=s) for s in (1, 2)]
    for delay in np.random.default_rng(0).uniform(0.02, 0.3, size=3):
        _kill_writer(path, "loop", float(delay))
        back = load(path)
        assert any(params_equal(back, c) for c in candidates)
        for p in tmp_path.iterdir():
            if p != path:
                assert p.name.startswith(".m.npz.") and p.name.endswith(".tmp")
                p.unlink()


# ----------------------------------------------------------------------- predict
@pytest.fixture
def digits_model(tmp_path):
    model = MLP([64, 12, 10], hidden="relu", output="softmax", seed=7)
    path = tmp_path / "model.npz"
    save(model, path, meta={"input_scale": 1 / 16})
    images = np.random.default_rng(1).integers(0, 17, size=(6, 8, 8)).astype(np.float64)
    W = [l.W.data for l in model.layers]
    b = [l.b.data for l in model.layers]
    probs = np.stack([reference.forward(W, b, im.reshape(64) / 16, "relu", "softmax")[1][-1] for im in images])
    return path, images, probs


@pytest.mark.parametrize("form", ["n,64", "n,8,8", "64", "8,8", "int"])
def test_predict_prints_the_reference_labels(digits_model, tmp_path, capsys, form):
    path, images, probs = digits_model
    arr = {"n,64": images.reshape(6, 64), "n,8,8": images, "64": images[0].reshape(64), "8,8": images[0],
           "int": images.astype(np.uint8)}[form]
    np.save(tmp_path / "x.npy", arr)
    assert predict_main([str(path), str(tmp_path / "x.npy")]) == 0
    want = probs.argmax(axis=1) if form in ("n,64", "n,8,8", "int") else probs[:1].argmax(axis=1)
    assert capsys.readouterr().out == "".join(f"{k}\n" for k in want)


def test_predict_json(digits_model, tmp_path, capsys):
    path, images, probs = digits_model
    np.save(tmp_path / "x.npy", images)
    assert predict_main([str(path), str(tmp_path / "x.npy"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["labels"] == probs.argmax(axis=1).tolist()
    np.testing.assert_allclose(got["outputs"], probs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("images, pattern", [
    (np.zeros((3, 63)), r"64 features.*got an array of shape \(3, 63\)"),
    (np.zeros((2, 7, 7)), r"shape \(2, 7, 7\)"),
    (np.zeros((0, 64)), "at least one image"),
    (np.full((2, 64), np.nan), "finite"),
    (np.full((2, 64), -np.inf), "finite"),
    (np.array(["a"] * 64), "numeric"),
    (np.array([None] * 64, dtype=object), "object array"),
])
def test_predict_rejects_bad_images_with_exit_2(digits_model, tmp_path, capsys, images, pattern):
    path, _, _ = digits_model
    np.save(tmp_path / "x.npy", images, allow_pickle=True)
    assert predict_main([str(path), str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr()
    assert err.out == ""
    assert "error: IMAGES" in err.err and re.search(pattern, err.err), err.err


def test_predict_rejects_bad_files_with_exit_2(digits_model, tmp_path, capsys):
    path, images, _ = digits_model
    np.save(tmp_path / "x.npy", images)
    save({"W1": np.zeros(2)}, tmp_path / "state.npz")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    cases = [
        ([str(tmp_path / "none.npz"), str(tmp_path / "x.npy")], "MODEL: no such file"),
        ([str(path), str(tmp_path / "none.npy")], "IMAGES: no such file"),
        ([str(tmp_path / "state.npz"), str(tmp_path / "x.npy")], "state dict"),
        ([str(tmp_path / "x.npy"), str(tmp_path / "x.npy")], "MODEL: .*not an .npz"),
        ([str(path), str(path)], "IMAGES: .*npz archive"),
        ([str(path), str(tmp_path / "junk.npy")], "IMAGES: .*not a readable .npy"),
        ([str(path), str(tmp_path)], "IMAGES: .*directory"),
        ([str(path)], "required"),
        ([str(path), str(tmp_path / "x.npy"), "--bogus"], "unrecognized"),
    ]
    for argv, pattern in cases:
        assert predict_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert re.search(pattern, err), (argv, err)


def test_predict_subcommand_through_python_m(digits_model, tmp_path):
    path, images, probs = digits_model
    np.save(tmp_path / "x.npy", images)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ok = subprocess.run([sys.executable, "-m", "tinygrad_mlp", "predict", str(path), str(tmp_path / "x.npy")],
                        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == [str(k) for k in probs.argmax(axis=1)]
    bad = subprocess.run([sys.executable, "-m", "tinygrad_mlp", "predict", str(path), str(tmp_path / "no.npy")],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(hnp.arrays(st.sampled_from([np.float64, np.float32, np.int16, np.uint8, np.bool_]),
                  hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9)))
def test_read_images_fuzz(arr):
    with tempfile.TemporaryDirectory() as d:
        np.save(Path(d) / "x.npy", arr)
        try:
            X = read_images(str(Path(d) / "x.npy"), 64)
        except ValueError as e:
            assert str(e).startswith("IMAGES: ")
            return
    assert arr.size % 64 == 0 and arr.size > 0 and X.shape == (arr.size // 64, 64)
    assert arr.shape in ((64,), (8, 8)) or arr.shape[1:] in ((64,), (8, 8))
    assert np.isfinite(X).all() and np.array_equal(X, arr.reshape(-1, 64).astype(np.float64))


# ----------------------------------------------------------------------- the input scaling travels with the model
def raw_images(n=6, seed=1):
    return np.random.default_rng(seed).integers(0, 17, size=(n, 64)).astype(np.float64)


def reference_outputs(model: MLP, X: np.ndarray, scale) -> np.ndarray:
    """The hand-written forward of the practical's reference on each row times ``scale``."""
    W = [l.W.data.astype(np.float64) for l in model.layers]
    b = [l.b.data.astype(np.float64) for l in model.layers]
    return np.stack([reference.forward(W, b, x * scale, model.hidden, model.output)[1][-1] for x in X])


def test_a_model_saved_with_meta_input_scale_loads_predicting_from_raw_inputs(tmp_path):
    # What `digits --scale --save` writes: a model trained on pixels / 16, meta {"input_scale": 1/16}.
    model = MLP([64, 12, 10], hidden="tanh", output="softmax", seed=3)
    save(model, tmp_path / "m.npz", meta={"input_scale": 1 / 16})
    back = load(tmp_path / "m.npz")
    X = raw_images()
    assert same_bits(back(X).data, model(X / 16).data)  # x · 1/16 == x / 16 exactly: a power of two
    np.testing.assert_allclose(back(X).data, reference_outputs(model, X, 1 / 16), rtol=1e-12, atol=1e-15)
    assert back.input_scale == 1 / 16


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_feature", [False, True])
def test_mlp_input_scale_round_trips_bit_exactly(tmp_path, dtype, per_feature):
    scale = np.linspace(0.01, 2.0, 64) if per_feature else 0.3
    model = MLP([64, 7, 3], hidden="relu", output="softmax", seed=4, dtype=dtype, input_scale=scale)
    save(model, tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    assert same_bits(back.input_scale, model.input_scale) and params_equal(back, model)
    X = raw_images().astype(dtype)
    assert same_bits(back(X).data, model(X).data)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(back(X).data, reference_outputs(model, X, model.input_scale.astype(np.float64)),
                               rtol=tol, atol=tol)
    with np.load(tmp_path / "m.npz") as f:  # older readers must refuse it rather than drop the scaling
        assert int(f["__version__"]) == 2


def test_a_model_without_input_scale_stays_format_version_1(tmp_path):
    save(MLP([3, 2]), tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        assert int(f["__version__"]) == 1 and "__input_scale__" not in f.files
    assert load(tmp_path / "m.npz").input_scale is None


def test_input_scale_enters_the_loss_and_its_gradient(tmp_path):
    """loss(x) of a scaled model is the unscaled model's loss at c ⊙ x, and so are its gradients."""
    c = np.linspace(0.5, 1.5, 4)
    scaled = MLP([4, 3, 2], hidden="tanh", output="softmax", seed=9, input_scale=c)
    plain = MLP([4, 3, 2], hidden="tanh", output="softmax", seed=9)
    x, y = np.array([[1.0, -2.0, 0.5, 3.0]]), np.array([1])
    scaled.loss(x, y).backward()
    plain.loss(x * c, y).backward()
    for p, q in zip(scaled.parameters(), plain.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("scale, exc, pattern", [
    (np.ones(3), ValueError, r"input_scale: expected a number or one per input feature, shape \(4,\)"),
    (np.ones((2, 4)), ValueError, "input_scale.*shape"),
    (np.nan, ValueError, "input_scale: expected finite"),
    ("x", TypeError, "input_scale"),
])
def test_mlp_rejects_a_bad_input_scale(scale, exc, pattern):
    with pytest.raises(exc, match=pattern):
        MLP([4, 2], input_scale=scale)


def test_a_2d_meta_input_scale_is_one_per_feature_and_predicts(tmp_path, capsys):
    model = MLP([64, 12, 10], hidden="relu", output="softmax", seed=7)
    scale = np.full((1, 64), 1 / 16)
    scale[0, :8] = 1 / 8
    save(model, tmp_path / "m.npz", meta={"input_scale": scale})
    X = raw_images()
    np.save(tmp_path / "x.npy", X)
    assert predict_main([str(tmp_path / "m.npz"), str(tmp_path / "x.npy")]) == 0
    want = reference_outputs(model, X, scale[0]).argmax(axis=1)
    assert capsys.readouterr().out == "".join(f"{k}\n" for k in want)


def test_save_and_load_refuse_a_bad_or_contradicting_input_scale(saved, tmp_path):
    with pytest.raises(ValueError, match=r"input_scale: expected a number or one per input feature, shape \(4,\)"):
        save(MLP([4, 2]), tmp_path / "x.npz", meta={"input_scale": np.ones(3)})
    with pytest.raises(ValueError, match=r"meta\['input_scale'\]: the model already has input_scale"):
        save(MLP([4, 2], input_scale=2.0), tmp_path / "x.npz", meta={"input_scale": 3.0})
    save(MLP([4, 2], input_scale=2.0), tmp_path / "same.npz", meta={"input_scale": 2.0})  # the same twice: fine
    assert load(tmp_path / "same.npz").input_scale == 2.0
    assert not (tmp_path / "x.npz").exists()
    bad = tmp_path / "bad.npz"
    for replace, pattern in [({"__meta__.input_scale": np.ones(3)}, r"'__meta__.input_scale'.*shape \(4,\)"),
                             ({"__meta__.input_scale": np.array("1/16")}, r"'__meta__.input_scale'.*numbers"),
                             ({"__input_scale__": np.array(np.inf)}, "'__input_scale__'.*finite"),
                             ({"__input_scale__": np.array(2.0), "__meta__.input_scale": np.array(3.0)},
                              "two different input scales")]:
        rewrite(saved, bad, replace=replace)
        with pytest.raises(ModelFileError, match=r"bad\.npz.*" + pattern):
            load(bad)


# ----------------------------------------------------------------------- predict checks what it is given
@pytest.fixture
def ranged_model(tmp_path):
    """A digits-like model trained (as far as the file says) on pixels 0..16, scaled by 1/16."""
    model = MLP([64, 12, 10], hidden="tanh", output="softmax", seed=5)
    path = tmp_path / "ranged.npz"
    save(model, path, meta={"input_scale": 1 / 16, "input_range": [0, 16]})
    return path, model


@pytest.mark.parametrize("factor", [255 / 16, -1.0])
def test_predict_refuses_images_outside_the_training_range(ranged_model, tmp_path, capsys, factor):
    path, _ = ranged_model
    X = raw_images() * factor  # 0..255, or negated
    np.save(tmp_path / "x.npy", X)
    assert predict_main([str(path), str(tmp_path / "x.npy")]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert re.search(r"error: IMAGES: values from .* fall outside the range the model was trained on, 0 to 16 "
                     r"\(MODEL's meta 'input_range'\).*--allow-out-of-range", out.err), out.err


def test_predict_allow_out_of_range_predicts_with_a_warning(ranged_model, tmp_path, capsys):
    path, model = ranged_model
    X = raw_images() * (255 / 16)
    np.save(tmp_path / "x.npy", X)
    assert predict_main([str(path), str(tmp_path / "x.npy"), "--allow-out-of-range"]) == 0
    out = capsys.readouterr()
    assert out.out == "".join(f"{k}\n" for k in reference_outputs(model, X, 1 / 16).argmax(axis=1))
    assert "warning: IMAGES: values from 0 to 255 fall outside" in out.err


def test_predict_warns_about_images_scaled_0_to_1(ranged_model, tmp_path, capsys):
    path, model = ranged_model
    X = raw_images() / 16  # 0..1: inside 0..16, but a different scaling
    np.save(tmp_path / "x.npy", X)
    assert predict_main([str(path), str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr()
    assert out.out == "".join(f"{k}\n" for k in reference_outputs(model, X, 1 / 16).argmax(axis=1))
    assert re.search(r"warning: IMAGES: 6 of 6 images .*span less than a quarter of the training range 0 to 16",
                     out.err), out.err


def test_predict_in_range_images_give_no_warning(ranged_model, tmp_path, capsys):
    path, _ = ranged_model
    X = raw_images()
    X[:, 0] = 16  # every image uses the full range, as load_digits' do (each image's max is 14..16)
    np.save(tmp_path / "x.npy", X)
    assert predict_main([str(path), str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value, pattern", [([16, 0], "lo <= hi"), ([0, 1, 2], r"shape \(3,\)"),
                                            ("0..16", "str"), ([0, np.inf], "finite")])
def test_save_refuses_a_bad_input_range(tmp_path, value, pattern):
    with pytest.raises((TypeError, ValueError), match=r"meta\['input_range'\].*" + pattern):
        save(MLP([4, 2]), tmp_path / "m.npz", meta={"input_range": value})
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_a_bad_input_range(saved, tmp_path):
    rewrite(saved, tmp_path / "bad.npz", replace={"__meta__.input_range": np.array([3.0, 1.0])})
    with pytest.raises(ModelFileError, match=r"bad\.npz.*'__meta__.input_range'.*lo <= hi"):
        load(tmp_path / "bad.npz")


def test_predict_prints_a_regression_models_values_not_labels(tmp_path, capsys):
    model = MLP([4, 3, 2], hidden="tanh", output="identity", seed=2)
    save(model, tmp_path / "reg.npz")
    X = np.random.default_rng(3).standard_normal((5, 4))
    np.save(tmp_path / "x.npy", X)
    assert predict_main([str(tmp_path / "reg.npz"), str(tmp_path / "x.npy")]) == 0
    lines = capsys.readouterr().out.splitlines()
    got = np.array([[float(v) for v in line.split()] for line in lines])
    np.testing.assert_allclose(got, reference_outputs(model, X, 1.0), rtol=1e-12, atol=1e-15)
    assert predict_main([str(tmp_path / "reg.npz"), str(tmp_path / "x.npy"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert "labels" not in got
    np.testing.assert_allclose(got["outputs"], reference_outputs(model, X, 1.0), rtol=1e-12, atol=1e-15)


def _run_predict(args, timeout=60):
    """The command in a child limited to 3 GiB of address space, so an unbounded read fails fast."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "tinygrad_mlp", "predict", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, preexec_fn=limit)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_predict_dev_zero_is_refused_after_its_first_bytes(digits_model, tmp_path):
    path, images, _ = digits_model
    np.save(tmp_path / "x.npy", images)
    for args, pattern in [(["/dev/zero", str(tmp_path / "x.npy")], r"error: MODEL: '/dev/zero' is not an \.npz"),
                          ([str(path), "/dev/zero"], r"error: IMAGES: '/dev/zero' is not a readable \.npy")]:
        r = _run_predict(args)
        assert r.returncode == 2 and re.search(pattern, r.stderr) and "Traceback" not in r.stderr, r.stderr


def _fifo_feeding(path: Path, head: bytes, chunk: bytes = b""):
    """A FIFO whose writer sends ``head``, then ``chunk`` until the reader goes away (an endless stream)."""
    import threading

    os.mkfifo(path)

    def feed():
        try:
            with open(path, "wb", buffering=0) as fh:
                fh.write(head)
                while chunk:
                    fh.write(chunk)
        except OSError:  # BrokenPipeError once the reader has closed its end
            pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return t


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_load_stops_reading_an_endless_stream_at_the_limit(tmp_path, monkeypatch):
    from tinygrad_mlp.nn import serialize
    monkeypatch.setattr(serialize, "MAX_FILE_BYTES", 2**20)
    t = _fifo_feeding(tmp_path / "m.npz", b"PK\x03\x04", b"\0" * 65536)
    with pytest.raises(ModelFileError, match=r"m\.npz' goes on past the 1048576-byte limit"):
        load(tmp_path / "m.npz")
    t.join(10)
    assert not t.is_alive()


def test_load_refuses_a_file_over_the_limit_before_reading_it(saved, monkeypatch):
    from tinygrad_mlp.nn import serialize
    monkeypatch.setattr(serialize, "MAX_FILE_BYTES", saved.stat().st_size - 1)
    with pytest.raises(ModelFileError, match=rf"m\.npz' is {saved.stat().st_size} bytes, more than the"):
        load(saved)


def test_load_refuses_an_archive_that_unpacks_past_the_limit(tmp_path, monkeypatch):
    from tinygrad_mlp.nn import serialize
    np.savez_compressed(tmp_path / "bomb.npz", W1=np.zeros(2**18))  # 2 MiB of zeros in a few KiB
    assert (tmp_path / "bomb.npz").stat().st_size < 2**16
    monkeypatch.setattr(serialize, "MAX_FILE_BYTES", 2**20)
    with pytest.raises(ModelFileError, match=r"bomb\.npz' unpacks to more than the 1048576-byte limit"):
        load(tmp_path / "bomb.npz")


def test_predict_bounds_what_the_images_header_declares(digits_model, tmp_path, capsys):
    path, _, _ = digits_model
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 64)})
    (tmp_path / "huge.npy").write_bytes(header.getvalue() + b"\0" * 512)  # the header includes the magic
    assert predict_main([str(path), str(tmp_path / "huge.npy")]) == 2
    assert re.search(r"error: IMAGES: .*huge\.npy' declares 512000000000000 bytes .*more than the \d+-byte limit",
                     capsys.readouterr().err)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_predict_reads_images_from_a_pipe(digits_model, tmp_path, capsys):
    path, images, probs = digits_model
    buf = io.BytesIO()
    np.save(buf, images)
    t = _fifo_feeding(tmp_path / "x.npy", buf.getvalue())
    assert predict_main([str(path), str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().out == "".join(f"{k}\n" for k in probs.argmax(axis=1))
    t.join(10)


# ----------------------------------------------------------------------- save and load edges
def test_save_writes_through_a_symlink_and_keeps_the_link(tmp_path):
    target, link = tmp_path / "real.npz", tmp_path / "link.npz"
    save(MLP([2, 3], seed=1), target)
    link.symlink_to("real.npz")
    new = MLP([2, 3], seed=2)
    assert save(new, link) == link
    assert link.is_symlink() and os.readlink(link) == "real.npz"
    assert params_equal(load(target), new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "real.npz"]  # no temp file left


def test_save_through_a_dangling_symlink_creates_its_target(tmp_path):
    (tmp_path / "models").mkdir()
    link = tmp_path / "latest.npz"
    link.symlink_to(tmp_path / "models" / "m1.npz")
    save(MLP([2, 3], seed=1), link)
    assert link.is_symlink() and params_equal(load(tmp_path / "models" / "m1.npz"), MLP([2, 3], seed=1))


def _zip_with(path: Path, members: list[tuple[str, np.ndarray]]) -> None:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name we write on purpose
        with zipfile.ZipFile(path, "w") as zf:
            for name, arr in members:
                buf = io.BytesIO()
                np.save(buf, arr)
                zf.writestr(name, buf.getvalue())


@pytest.mark.parametrize("second", ["W1.npy", "W1"])
def test_load_refuses_two_members_of_one_name(saved, tmp_path, second):
    with zipfile.ZipFile(saved) as zf:
        members = [(n, np.load(io.BytesIO(zf.read(n)))) for n in zf.namelist()]
    _zip_with(tmp_path / "dup.npz", members + [(second, np.ones((3, 4)))])
    with pytest.raises(ModelFileError, match=r"dup\.npz' holds two members for the entry 'W1' \('W1.npy' and "):
        load(tmp_path / "dup.npz")


@pytest.mark.parametrize("version", [-1, 0, 3])
def test_load_refuses_an_unknown_format_version(saved, tmp_path, version):
    rewrite(saved, tmp_path / "bad.npz", replace={"__version__": np.array(version)})
    with pytest.raises(ModelFileError, match=rf"bad\.npz' has format version {version}; this tinygrad_mlp reads "
                                             r"versions 1 to 2"):
        load(tmp_path / "bad.npz")


def test_a_nul_byte_in_the_path_is_named(tmp_path):
    with pytest.raises(ModelFileError, match=r"^path: expected a file name .*no NUL byte.*'a\\x00b\.npz'"):
        load("a\0b.npz")
    with pytest.raises(ValueError, match=r"^path: .*NUL byte"):
        save(MLP([2, 2]), str(tmp_path / "a\0b.npz"))
    assert list(tmp_path.iterdir()) == []


def test_save_follows_the_one_rule_for_output_paths(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    cases = [(tmp_path / "missing" / "m.npz", r"^path: the folder .*missing' does not exist \(create it first\)"),
             (tmp_path / "file.txt" / "m.npz", r"^path: .*file\.txt' is a file, not a folder"),
             (str(tmp_path / "sub") + "/", r"^path: expected a file name, got .*sub/', which ends in a path separator")]
    for path, pattern in cases:
        with pytest.raises(OutputPathError, match=pattern):
            save(MLP([2, 2]), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
