"""Numbered progress lines on stderr: what an export or a fine-tune is doing, and since when.

A long command that prints nothing for seconds looks hung; every stage says
what starts, with the time since the command began, so a slow step (loading
TensorFlow, a download, the int8 plan's candidates) shows where it is.
"""

from __future__ import annotations

import sys
import time


class Stages:
    """``[  12.3s] text`` lines on stderr; nothing when disabled (``--quiet``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        if self.enabled:
            print(f"[{time.monotonic() - self.started:6.1f}s] {text}", file=sys.stderr, flush=True)
