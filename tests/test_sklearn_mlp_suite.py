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

# test name -> why it cannot run against another implementation.  Empty: every test of scikit-learn 1.9.1's
# module runs.  Four of them read private names, which these estimators provide under scikit-learn's names:
# test_gradient calls _loss_grad_lbfgs (here: the tape's gradient of the flat θ, checked against central
# differences), test_learning_rate_warmstart and test_adaptive_learning_rate read _optimizer.learning_rate,
# test_n_iter_no_change(_inf) read _no_improvement_count.  test_preserve_feature_names skips without pandas.
DESELECTED: dict = {}

_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
_OURS = "from tinygrad_mlp.training.estimators import MLPClassifier, MLPRegressor"


_CONFTEST = """\
try:
    from sklearn.conftest import pytest_generate_tests  # noqa: F401
except Exception:  # a scikit-learn without it: its default seed
    def pytest_generate_tests(metafunc):
        if "global_random_seed" in metafunc.fixturenames:
            metafunc.parametrize("global_random_seed", [42])
"""


def _module_source() -> str:
    path = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
    if not path.exists():
        pytest.skip(f"this scikit-learn ({sklearn.__version__}) ships without {path}")
    return path.read_text()


def test_scikit_learns_mlp_test_module_passes_against_ours(tmp_path):
    src = _module_source()
    assert src.count(_IMPORT) == 1, "scikit-learn's import line changed: update _IMPORT"
    (tmp_path / "test_mlp_ours.py").write_text(src.replace(_IMPORT, _OURS))
    # scikit-learn's conftest parametrizes its global_random_seed fixture (42 by default); the copy gets the same.
    (tmp_path / "conftest.py").write_text(_CONFTEST)
    deselect = []
    for name in DESELECTED:
        deselect += ["--deselect", f"test_mlp_ours.py::{name}"]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    # One BLAS thread: on a busy 2-core machine OpenBLAS's threaded X Wᵀ (a transposed operand) spins for
    # milliseconds per call, which made this module take 70 s instead of 30 s.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf",
                           "--rootdir", str(tmp_path), "test_mlp_ours.py", *deselect],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = out.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert "failed" not in summary and "error" not in summary, summary
    # scikit-learn 1.9.1's module: 59 tests, 2 of them skipped without pandas; a newer one may have more
    assert passed >= 57 - len(DESELECTED), summary
