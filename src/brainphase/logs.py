"""Progress bars that read well in a log file.

On a terminal a tqdm bar redraws itself in place with carriage returns. Written to a log file
(every workflow rule sends stderr to ``results/logs/...``) those redraws pile up on one line: a
1024-step training log was one line of 2,000 updates. :func:`log_friendly_stderr`, called by
the ``brainphase`` program before any step runs, does nothing on a terminal; otherwise it

- makes tqdm redraw at most every :data:`LOG_INTERVAL_S` seconds (environment variable
  ``TQDM_MININTERVAL``, read when tqdm is imported; an explicit value set by the user wins), and
- replaces ``sys.stderr`` by a :class:`LineProgressStream`: each redraw becomes its own line,
  and the blank redraws that erase a finished bar are dropped.
"""

from __future__ import annotations

import io
import os
import re
import sys

#: seconds between two progress lines in a log file
LOG_INTERVAL_S = 10
#: terminal control sequences (nested bars move the cursor up with ESC [ A)
_ANSI_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class LineProgressStream(io.TextIOBase):
    """A text stream that writes carriage-return redraws as separate lines.

    Text is passed on line by line: a carriage return ends a line like a newline does, and a
    line holding only whitespace (a bar being erased) is dropped, and so are terminal control
    sequences (the cursor moves of nested bars). The unfinished last line is
    kept until it is ended (or :meth:`close`).

    Parameters
    ----------
    stream : text stream
        Where the lines go (e.g. the original ``sys.stderr``).
    """

    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        lines = _ANSI_CONTROL.sub("", self._pending + text).replace("\r", "\n").split("\n")
        self._pending = lines.pop()
        for line in lines:
            if line.strip():
                self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        if getattr(self.stream, "closed", False):
            return
        if self._pending.strip():
            self.stream.write(self._pending + "\n")
        self._pending = ""
        self.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return False


def log_friendly_stderr() -> bool:
    """Make progress bars log-friendly when stderr is not a terminal (see the module docstring).

    Returns
    -------
    bool
        True when ``sys.stderr`` was replaced.
    """
    import atexit

    if sys.stderr is None or sys.stderr.isatty() or isinstance(sys.stderr, LineProgressStream):
        return False
    os.environ.setdefault("TQDM_MININTERVAL", str(LOG_INTERVAL_S))
    sys.stderr = LineProgressStream(sys.stderr)
    atexit.register(sys.stderr.close)
    return True
