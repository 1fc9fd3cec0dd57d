"""``python -m tinygrad_mlp COMMAND ...``: each command lives in its own module."""
from __future__ import annotations

import sys

COMMANDS = {
    "exercise": ("tinygrad_mlp.cli.exercise", "one SGD / batch step of the practical, every number shown"),
    "digits": ("tinygrad_mlp.bench.digits", "Question 3: digits, side by side with scikit-learn"),
    "predict": ("tinygrad_mlp.cli.predict", "classify digit images with a saved model"),
    "check": ("tinygrad_mlp.cli.check", "grade a student's answers: the first wrong number and its mistake"),
    "export": ("tinygrad_mlp.cli.export", "a saved model to safetensors (PyTorch) or ONNX"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
        msg = "usage: python -m tinygrad_mlp COMMAND [ARGS]\n\ncommands:\n" + "\n".join(lines)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: command: expected one of {sorted(COMMANDS)}, got {argv[0]!r}\n\n{msg}", file=sys.stderr)
            return 2
        print(msg)
        return 0 if argv else 2
    import importlib

    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
