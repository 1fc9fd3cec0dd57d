"""``python -m tinygrad_mlp exercise q1|q1-batch|q2|q2-batch|SPEC.json``: one step, every number shown.

The step is computed by :func:`tinygrad_mlp.exercise.run_step`, which checks
autograd against the hand-written backprop first; a disagreement is an error
(exit 1), never a result.  Everything is computed and rendered to a string
before anything is printed, so a bad spec (exit 2, one ``error: ...`` line on
stderr naming the field) prints nothing on stdout.

Output: the worked solution as text (default), ``--format markdown|latex|html``
(html: one self-contained interactive page), or ``--json`` (the spec's own fields,
so it can be read back as a SPEC.json, then ``loss``, ``examples`` with per-example
``z``, ``h``, ``output``, ``loss``, ``dz``, ``dh``, … and ``grad_W``, ``grad_b``,
``W``, ``b`` after the update; per-layer lists run over layers 1..L).

Output paths (``-o``, ``--graph``) follow :mod:`tinygrad_mlp.files`: checked before
the step is computed, written atomically.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..files import OutputPathError, atomic_write_text, check_output_path
from ..practical.exercise import BUILTINS, ExerciseMismatchError, SpecError, builtin, load_spec, parse_spec, run_step
from ..practical.render import DEFAULT_DIGITS, FORMATS, WorkedSolution
from . import Parser, UsageError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tinygrad_mlp exercise",
                description="One SGD / batch gradient-descent step of the practical, every number shown, "
                            "checked against the hand-written backprop.")
    p.add_argument("exercise", help=f"a built-in ({', '.join(BUILTINS)}) or a SPEC.json path")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print every quantity as JSON")
    out.add_argument("--format", choices=FORMATS, default=None,
                     help="worked solution as text (default), markdown, latex or html (one interactive page)")
    p.add_argument("--digits", type=int, default=DEFAULT_DIGITS,
                   help=f"significant digits printed (default {DEFAULT_DIGITS})")
    p.add_argument("--fragment", action="store_true", help="LaTeX: only the body, no preamble")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--graph", metavar="FILE.dot",
                   help="also write the step's tape as Graphviz DOT (and an SVG next to it if `dot` is installed)")
    return p


def _spec(name: str):
    if name in BUILTINS:
        return builtin(name)
    if name.endswith(".json") or Path(name).exists() or "/" in name or "\\" in name:
        return _load(name)
    raise SpecError(f"exercise: expected one of {list(BUILTINS)} or a SPEC.json path, got {name!r}")


def _load(path: str):
    """load_spec, except that NaN/Infinity are read as numbers so that parse_spec names their field."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"), parse_constant=float)
    except (OSError, ValueError, RecursionError):
        return load_spec(p)  # its message for an unreadable file, bad JSON or too deep a nesting
    spec = parse_spec(raw)
    if spec.name == "spec":  # an exercise --json document keeps its own name
        spec.name = p.stem
    return spec


def _run(argv: list[str]) -> tuple[str, list[str]]:
    """Everything that can fail, done before printing: returns (stdout text, notes for stderr)."""
    args = build_parser().parse_args(argv)
    if not 1 <= args.digits <= 17:
        raise UsageError(f"--digits: expected an int from 1 to 17, got {args.digits}")
    if args.fragment and (args.format or "text") != "latex":
        raise UsageError("--fragment: only applies with --format latex")
    # Every output path is checked before the step is computed: a typo costs nothing.
    if args.output:
        check_output_path(args.output, "--output")
    if args.graph:
        check_output_path(args.graph, "--graph")
    spec = _spec(args.exercise)
    result = run_step(spec)
    if args.json:
        text = json.dumps(result.to_json(), indent=2) + "\n"
    else:
        text = WorkedSolution(result, args.digits).render(args.format or "text", fragment=args.fragment)
    notes = []
    if args.graph:
        from ..practical.graph import write_graph

        notes.extend(write_graph(spec, args.graph))
    if args.output:
        try:
            atomic_write_text(args.output, text, "--output")
        except OSError as e:
            raise SpecError(f"--output: cannot write {args.output!r} ({e.strerror or e})") from None
        notes.append(f"wrote {args.output}")
        text = ""
    return text, notes


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 autograd/backprop mismatch, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        text, notes = _run(argv)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except (UsageError, SpecError, OutputPathError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ExerciseMismatchError as e:
        print(f"error: autograd and the hand-written backprop disagree: {e}", file=sys.stderr)
        return 1
    if text:
        _write(sys.stdout, text)
    for n in notes:
        print(n, file=sys.stderr)
    return 0


def _write(stream, text: str) -> None:
    # The sheet uses ∂, ⊙, η, ᵀ: fall back to UTF-8 bytes where the console codec cannot take them.
    try:
        stream.write(text)
    except UnicodeEncodeError:
        stream.flush()
        stream.buffer.write(text.encode("utf-8"))
    stream.flush()


if __name__ == "__main__":
    sys.exit(main())
