"""A window showing the annotated frames (``--display``); ``q`` or Esc ends the run.

Live command only: a service has no desktop. OpenCV is imported where it is
used (see :mod:`.overlay`).
"""

from __future__ import annotations

import os
import re
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import EdgeError
from ..options import option
from ..results import BaseSink
from .overlay import Overlay
from .registry import SinkContext, SinkKind, register

if TYPE_CHECKING:
    import numpy as np

    from ..frames import Frame
    from ..results import Prediction

DISPLAY_NEEDS_GUI = (
    "--display needs an OpenCV build with a GUI (pip install opencv-python instead of opencv-python-headless)"
)


@dataclass
class DisplayOptions:
    """Whether to show the frames in a window."""

    display: bool = field(default=False, metadata=option("Show the annotated video in a window."))


def opencv_has_gui() -> bool:
    """Whether this OpenCV build can open windows (opencv-python-headless cannot)."""
    import cv2

    info = cv2.getBuildInformation()
    match = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    if match:
        return match.group(1).upper() != "NONE"
    return bool(re.search(r"^\s*(GTK\+?[0-9.]*|QT|Win32 UI|Cocoa|Wayland)\b[^:\n]*:\s*YES", info, re.MULTILINE))


class DisplaySink(BaseSink):
    """Shows the annotated frames in a window; ``q`` or Esc sets ``stop``."""

    every_frame = True

    def __init__(self, window: str = "movinet-edge", top_k: int = 3, stop: threading.Event | None = None) -> None:
        if not opencv_has_gui():
            raise EdgeError(DISPLAY_NEEDS_GUI)
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise EdgeError("--display needs a desktop session (DISPLAY is not set); use --save FILE.mp4 instead")
        self.window = window
        self.stop = stop
        self._overlay = Overlay(top_k)
        self._bgr: np.ndarray | None = None
        self._open = False

    def on_frame(self, frame: Frame) -> None:
        import cv2

        self._bgr = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR, dst=self._bgr)
        self._overlay.draw(self._bgr)
        if not self._open:
            cv2.namedWindow(self.window, cv2.WINDOW_NORMAL)
            self._open = True
        cv2.imshow(self.window, self._bgr)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) and self.stop is not None:
            self.stop.set()

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        self._overlay.update(prediction)

    def close(self) -> None:
        if self._open:
            import cv2

            cv2.destroyWindow(self.window)
            cv2.waitKey(1)
            self._open = False


def open_display(options: DisplayOptions, context: SinkContext) -> DisplaySink:
    return DisplaySink(top_k=min(context.top_k, 3), stop=context.stop)


KIND = register(
    SinkKind(
        key="display",
        section="output",
        options=DisplayOptions,
        open=open_display,
        enabled=lambda o: o.display,
        service=False,  # a service has no desktop
        help="A window with the annotated frames (q or Esc ends the run).",
    )
)
