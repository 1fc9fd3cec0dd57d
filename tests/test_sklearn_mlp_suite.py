"""scikit-learn's own MLP test module, run against these estimators with only the import changed.

The module ships with the installed scikit-learn (``sklearn/neural_network/tests/test_mlp.py``).  It is
copied at test time into a temporary folder, its one import line
``from sklearn.neural_network import MLPClassifier, MLPRegressor`` is pointed at
``tinygrad_mlp.training.estimators``, and pytest runs it in a subprocess.  No copy of it lives in
this repository.  The only tests left out are those that call scikit-learn's private internals,
each listed below with its reason.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn")

# test name -> why it cannot run against another implementation
DESELECTED = {
}

_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
_OURS = "from tinygrad_mlp.training.estimators import MLPClassifier, MLPRegressor"


def _module_source() -> str:
    path = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
    if not path.exists():
        pytest.skip(f"this scikit-learn ({sklearn.__version__}) ships without {path}")
    return path.read_text()


def test_scikit_learns_mlp_test_module_passes_against_ours(tmp_path):
    src = _module_source()
    assert src.count(_IMPORT) == 1, "scikit-learn's import line changed: update _IMPORT"
    (tmp_path / "test_mlp_ours.py").write_text(src.replace(_IMPORT, _OURS))
    # scikit-learn's conftest supplies its global_random_seed fixture; the copy gets the same fixture.
    (tmp_path / "conftest.py").write_text(
        "from sklearn.conftest import global_random_seed  # noqa: F401\n")
    deselect = []
    for name in DESELECTED:
        deselect += ["--deselect", f"test_mlp_ours.py::{name}"]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf",
                           "--rootdir", str(tmp_path), "test_mlp_ours.py", *deselect],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = out.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert "failed" not in summary and "error" not in summary, summary
    assert passed >= 60, summary  # the module's tests as of scikit-learn 1.9.1, less the deselected ones
