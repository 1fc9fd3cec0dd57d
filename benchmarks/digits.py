"""The practical's Question 3 benchmark: ``python benchmarks/digits.py --help``.

A thin wrapper: everything lives in :mod:`tinygrad_mlp.bench.digits`, which
``python -m tinygrad_mlp digits`` runs as well.
"""
import sys
from pathlib import Path

# Run this checkout's code, whatever copy of the package is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinygrad_mlp.bench.digits import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
