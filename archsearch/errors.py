"""User-facing errors: one line, `FILE:LINE: path.to.key: what is wrong (did you mean ...?)`."""
from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """Where a value came from: file, 1-based line, and the dotted key path inside the document."""

    file: str = "<spec>"
    line: int = 0
    path: str = ""

    def child(self, key: str | int, line: int | None = None) -> "Loc":
        seg = f"[{key}]" if isinstance(key, int) else (f".{key}" if self.path else str(key))
        return Loc(self.file, self.line if line is None else line, self.path + seg)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}" if self.path else where


class SpecError(Exception):
    """Bad user input. The CLI prints str(err) alone and exits with status 2."""

    def __init__(self, loc: Loc, message: str, hint: str | None = None):
        self.loc, self.message, self.hint = loc, message, hint
        text = f"{loc}: {message}"
        if hint:
            text += f" ({hint})"
        super().__init__(_one_line(text))


def _one_line(text: str) -> str:
    """Escape newlines and other control characters, which a key or value in hostile input can carry."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def did_you_mean(word: str, choices) -> str | None:
    """A '(did you mean ...?)' hint for the closest known name, or None."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def unknown(loc: Loc, what: str, word: str, choices) -> SpecError:
    """The standard error for an unknown name, with a hint or the list of valid names."""
    choices = sorted(str(c) for c in choices)
    hint = did_you_mean(word, choices)
    if hint is None and len(choices) <= 12:
        hint = "expected one of: " + ", ".join(choices)
    return SpecError(loc, f"unknown {what} '{word}'", hint)
