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
