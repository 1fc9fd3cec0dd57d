"""``python -m tinygrad_mlp COMMAND``: each command lives in its own module here."""
import argparse


class UsageError(Exception):
    """A bad command line: the command prints one ``error:`` line and exits 2."""


class Parser(argparse.ArgumentParser):
    """argparse, except that a bad argument raises :class:`UsageError` instead of printing the whole
    usage and exiting: each command's ``main`` turns it into one line on stderr and a return value."""

    def error(self, message):
        raise UsageError(message)
