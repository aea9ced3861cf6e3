"""Keep the native libraries' chatter off the terminal while ``movinet-export`` runs.

TensorFlow's converter, absl and LiteRT write from C++ straight to file
descriptor 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says: "W0000 ... Ignored
output_format.", "fully_quantize: 0, inference_type: 6, ...", "INFO: Created
TensorFlow Lite XNNPACK delegate for CPU.". They land between our progress
lines and after ``--quiet``, and say nothing a user can act on. So while a
command runs, descriptor 2 goes to /dev/null and Python's ``sys.stderr`` (our
progress, warnings and the one ``error:`` line) writes to a copy of the real
one. ``MOVINET_EXPORT_NATIVE_LOGS=1`` keeps everything, for debugging a
conversion (a crash inside native code then keeps its message too).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator

KEEP_ENV = "MOVINET_EXPORT_NATIVE_LOGS"


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send descriptor 2 to /dev/null for the block; ``sys.stderr`` keeps writing to the terminal."""
    if os.environ.get(KEEP_ENV):
        yield
        return
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
        with warnings.catch_warnings():
            # The converter's calibration uses tf.lite.Interpreter, which warns that it is
            # deprecated; we never run models with it (the edge runtime is LiteRT's).
            warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated", category=UserWarning)
            yield
    finally:
        python_stderr.flush()
        sys.stderr = original
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        python_stderr.close()
