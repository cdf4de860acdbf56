"""A dependency-free progress bar for long work (Lloyd iterations, the Ks of an elbow curve).

It draws on a terminal only: written to a file or a pipe (logs, tests), it stays silent, so
progress never mixes with the output a script parses.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``[#####.....] 5/10 label`` redrawn in place on ``stream`` while work goes on.

    Parameters
    ----------
    total : int
        Steps expected (the bar may stop early: ``close`` finishes the line).
    label : str
        Shown after the counter.
    stream : text stream, default sys.stderr
    enabled : bool, default True
        False, or a stream that is not a terminal, makes every call a no-op.
    """

    width = 30

    def __init__(
        self, total: int, label: str = "", *, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.total = max(1, int(total))
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled and _is_terminal(self.stream)
        self.done = 0
        self._drawn_at = 0.0

    def update(self, done: int | None = None, label: str | None = None) -> None:
        """Advance to ``done`` steps (one more step when None), optionally with a new label."""
        self.done = self.done + 1 if done is None else int(done)
        if label is not None:
            self.label = label
        now = time.monotonic()
        if self.enabled and (now - self._drawn_at > 0.1 or self.done >= self.total):
            self._drawn_at = now
            self._draw()

    def close(self) -> None:
        """End the bar's line (the next output starts on a fresh line)."""
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False

    def _draw(self) -> None:
        filled = min(self.width, self.width * self.done // self.total)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} {self.label}\x1b[K")
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or file-like objects without isatty
        return False
