"""Cameras (kind ``camera``): V4L2 devices here, the Pi camera through :mod:`.picamera`.

One kind for both, because to a user both are "the camera": ``0`` or
``/dev/video2`` is a V4L2 device (a USB webcam, or the Pi camera through the
V4L2 compatibility layer), ``picam`` is libcamera through picamera2. The
capture size and rate are requests: V4L2 picks the nearest mode it has, so
a camera that gives something else says so in the log.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import EdgeError
from ..options import option, positive
from .base import FrameSource, to_rgb
from .picamera import PiCameraSource
from .reader import LatestFrameReader
from .registry import SourceContext, SourceKind, register, require_valid

if TYPE_CHECKING:
    import numpy as np

    from ..frames import Frame

log = logging.getLogger("movinet_edge.sources")


class CameraSource(FrameSource):
    """A V4L2 camera (USB webcam, or the Pi camera through the V4L2 compatibility layer).

    Timestamps are ``time.monotonic()`` when the frame was read. A camera that
    delivers nothing for ``stall_timeout`` seconds, or keeps failing reads, is
    an EdgeError: unlike a network stream there is nothing to reconnect to.
    """

    live = True

    def __init__(
        self,
        device: int | str = 0,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        stall_timeout: float = 5.0,
        backend: int | None = None,
        camera_id: str | None = None,
    ) -> None:
        """``backend``: an OpenCV capture API (``cv2.CAP_*``); default V4L2 on Linux, else any."""
        super().__init__()
        import cv2

        self.device = device
        self.name = f"camera {device}"
        self.camera_id = camera_id
        self.stall_timeout = stall_timeout
        dev_path = f"/dev/video{device}" if isinstance(device, int) else str(device)
        if backend is None:
            backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        self._cap = cv2.VideoCapture(device, backend)
        if not self._cap.isOpened():
            self._cap.release()
            raise EdgeError(f"camera {device} did not open: check {dev_path} and that the user is in the 'video' group")
        if width:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            self._cap.set(cv2.CAP_PROP_FPS, fps)
        reported = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(reported) if 0.0 < reported < 1000.0 else None
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width and height and (self.width, self.height) != (width, height):
            log.warning(
                "%s: asked for %dx%d, the camera gives %dx%d", self.label, width, height, self.width, self.height
            )
        if fps and self.fps is not None and abs(self.fps - fps) > 0.5:
            log.warning("%s: asked for %g fps, the camera gives %g fps", self.label, fps, self.fps)
        self._reader: LatestFrameReader | None = None

    def _read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        return image if ok else None

    def _frames(self) -> Iterator[Frame]:
        from ..frames import Frame

        self._reader = LatestFrameReader(self._read, self._cap.release, self.stats, self.label, max_failures=50)
        while not self._stopping.is_set():
            got = self._reader.get(self.stall_timeout)
            if isinstance(got, tuple):
                image, ts, seq = got
                self.stats.frames += 1
                yield Frame(to_rgb(image), ts, seq)
                continue
            if self._stopping.is_set():
                return
            if got is None:
                raise EdgeError(
                    f"{self.name} delivered no frame for {self.stall_timeout:g} s; check the camera and its cable"
                )
            raise EdgeError(f"{self.name} stopped delivering frames (unplugged?); check the camera and restart")

    def _wake(self) -> None:
        reader = self._reader
        if reader is not None:
            reader.interrupt()

    def _release(self) -> None:
        if self._reader is None:
            self._cap.release()
        elif not self._reader.stop(join_timeout=1.0):
            log.warning("%s: a read is still in progress; the device is released when it returns", self.label)


PICAM_NAMES = ("picam", "picamera", "picamera2", "pi")
_SIZE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def device_problem(device: str) -> str | None:
    """The check of a camera device: a V4L2 index, a /dev path, or one of the Pi camera's names."""
    value = device.strip()
    if value.isdigit() or value.startswith("/dev/") or value.lower() in PICAM_NAMES:
        return None
    return "give a V4L2 index (0), a device (/dev/video0) or 'picam'"


def parse_size(size: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480); ValueError with what is wrong otherwise."""
    match = _SIZE.fullmatch(size)
    if match is None:
        raise ValueError(f"must be WIDTHxHEIGHT in pixels, e.g. 640x480; got {size!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if not (0 < width <= 16384 and 0 < height <= 16384):
        raise ValueError(f"must be WIDTHxHEIGHT with both from 1 to 16384, e.g. 640x480; got {size!r}")
    return width, height


def size_problem(size: str | None) -> str | None:
    if size is None:
        return None
    try:
        parse_size(size)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass
class CameraOptions:
    """``camera``: a V4L2 camera (0, /dev/video2) or the Pi camera (picam)."""

    device: str = field(
        metadata=option("A V4L2 camera index or device (0, /dev/video2), or 'picam' for the Pi camera.",
                        check=device_problem, flag="--camera")
    )  # fmt: skip
    capture_size: str | None = field(
        default=None,
        metadata=option("Ask the camera for this frame size, WIDTHxHEIGHT (e.g. 640x480).", check=size_problem),
    )
    capture_fps: float | None = field(
        default=None, metadata=option("Ask the camera for this frame rate.", check=positive)
    )


def open_camera(options: CameraOptions, context: SourceContext) -> FrameSource:
    require_valid("camera", options)
    device = options.device.strip()
    size = parse_size(options.capture_size) if options.capture_size is not None else None
    if device.lower() in PICAM_NAMES:
        width, height = size or (640, 480)
        fps = options.capture_fps if options.capture_fps is not None else 30.0
        return PiCameraSource(width, height, fps, camera_id=context.name)
    width, height = size or (None, None)
    return CameraSource(
        int(device) if device.isdigit() else device,
        width=width,
        height=height,
        fps=options.capture_fps,
        camera_id=context.name,
    )


KIND = register(
    SourceKind(
        key="camera",
        options=CameraOptions,
        open=open_camera,
        live=True,
        help="Read a camera: a V4L2 index or device (0, /dev/video2) or the Pi camera (picam).",
    )
)
