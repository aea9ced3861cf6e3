"""Keep what native libraries print on file descriptor 2 off the terminal.

The TFLite runtime writes "INFO: Created TensorFlow Lite XNNPACK delegate for
CPU." from C++ when a model loads, and TensorFlow's converter and absl write
their own lines ("W0000 ... Ignored output_format.", "fully_quantize: 0, ...")
whatever ``TF_CPP_MIN_LOG_LEVEL`` says: noise for a user, lines between our
progress lines, and it would break the rule that a failing command says one
line. While the block runs, descriptor 2 goes to /dev/null; Python's
``sys.stderr`` (progress made inside the block, warnings) writes to a copy of
the real one. Python exceptions are not affected (reported after the block).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send descriptor 2 to /dev/null for the block; ``sys.stderr`` keeps writing to the terminal."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real descriptor (embedded, captured): leave it
        yield
        return
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    python_stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=encoding, errors="backslashreplace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    original = sys.stderr
    os.dup2(devnull, 2)
    sys.stderr = python_stderr
    try:
        yield
    finally:
        python_stderr.flush()
        sys.stderr = original
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        python_stderr.close()
