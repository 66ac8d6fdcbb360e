"""The command line's argument types and actions: a bad value is argparse's one-line error naming the option."""
from __future__ import annotations

import argparse
import sys


class Renamed(argparse.Action):
    """An option under its former name: still works, and says once what it is called now."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"note: {option_string} is now --{self.dest}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def positive(kind):
    """An argument type: a number of `kind` (int or float) above 0."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            what = "number" if kind is float else "whole number"
            raise argparse.ArgumentTypeError(f"expected a {what}, got {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v
    return parse


def vocab_size(text: str) -> int:
    """An argument type: a vocabulary size (an integer, 2 or more)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2, got {v}")
    return v
