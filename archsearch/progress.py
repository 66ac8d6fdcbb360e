"""A small progress line: redrawn in place on a terminal, printed every few seconds otherwise (logs, CI)."""
from __future__ import annotations

import os
import sys
import time


def whole_line(stream, text: str) -> None:
    """One write of the text and its newline: workers share the coordinator's pipes, and print()'s two writes (text,
    then end) let another worker's line land between them."""
    stream.write(text + "\n")
    stream.flush()


def fmt_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    def __init__(self, total: int, label: str = "", stream=None, enabled: bool = True, every: float = 10.0):
        self.total, self.label, self.enabled, self.every = total, label, enabled, every
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        rank = os.environ.get("ARCHSEARCH_WORKER")
        if rank:  # workers share the coordinator's terminal: whole lines, each saying whose it is
            self.tty, self.label = False, f"[worker {rank}] {label}"
        self.start = time.perf_counter()
        self.last = 0.0

    def update(self, done: int, text: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not (force or self.tty or now - self.last >= self.every):
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / done * (self.total - done) if done else 0.0
        pct = 100.0 * done / max(self.total, 1)
        line = f"{self.label} {done}/{self.total} ({pct:3.0f}%) {text} [{fmt_duration(elapsed)}<{fmt_duration(eta)}]"
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
        else:
            whole_line(self.stream, line)

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
