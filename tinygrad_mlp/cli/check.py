"""``python -m tinygrad_mlp check q1|q1-batch|q2|q2-batch|SPEC.json ANSWERS.json [--json]``: grade a student's numbers.

Prints one line per quantity given (right, WRONG with the mistake that explains it, or carried
forward) and a summary; ``--json`` prints the same report as JSON.  Exit code 0 when every number
is right, 1 when something is wrong, 2 for a malformed spec or answers file (one ``error:`` line on
stderr naming the key, nothing on stdout).  The rules are :mod:`tinygrad_mlp.practical.check`'s.
"""
from __future__ import annotations

import argparse
import sys

from ..practical.check import AnswersError, check_answers
from ..practical.exercise import BUILTINS, ExerciseMismatchError, SpecError
from .exercise import _spec, _write
from . import Parser, UsageError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tinygrad_mlp check",
                description="Check a student's answers to an exercise: each number right or wrong at the precision "
                            "it was written to, the mistake behind the first wrong one, and the numbers carried "
                            "forward from it.")
    p.add_argument("exercise", help=f"a built-in ({', '.join(BUILTINS)}) or a SPEC.json path")
    p.add_argument("answers", help="a JSON file with any of the quantities `exercise --json` writes, same keys")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 all right, 1 something wrong, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        report = check_answers(_spec(args.exercise), args.answers)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except (UsageError, SpecError, AnswersError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ExerciseMismatchError as e:
        print(f"error: autograd and the hand-written backprop disagree: {e}", file=sys.stderr)
        return 1
    _write(sys.stdout, report.to_json() + "\n" if args.json else str(report))
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
