"""Keep the converter's chatter off the terminal while ``movinet-export`` runs.

TensorFlow's converter, absl and LiteRT write from C++ straight to file
descriptor 2 (see :mod:`movinet_edge.native_logs`, which the device side uses
around model loading); during an export that lands between our progress lines
and after ``--quiet``, and says nothing a user can act on. The converter's
calibration also warns that ``tf.lite.Interpreter`` is deprecated, which we
never run models with. ``MOVINET_EXPORT_NATIVE_LOGS=1`` keeps everything, for
debugging a conversion (a crash inside native code then keeps its message too).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

from movinet_edge.native_logs import native_stderr_silenced

KEEP_ENV = "MOVINET_EXPORT_NATIVE_LOGS"


@contextlib.contextmanager
def converter_logs_silenced() -> Iterator[None]:
    """Native log lines to /dev/null and the deprecation warning ignored, unless $MOVINET_EXPORT_NATIVE_LOGS."""
    if os.environ.get(KEEP_ENV):
        yield
        return
    with native_stderr_silenced(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated", category=UserWarning)
        yield
