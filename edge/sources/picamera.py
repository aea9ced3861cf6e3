"""The Raspberry Pi camera through picamera2 (libcamera); opened by the ``camera`` kind for "picam"."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import EdgeError
from .base import FrameSource
from .reader import LatestFrameReader

if TYPE_CHECKING:
    import numpy as np

    from ..frames import Frame

PICAMERA_HINT = (
    "picamera2 is not installed; on Raspberry Pi OS: sudo apt install python3-picamera2 "
    "and create the venv with --system-site-packages"
)

log = logging.getLogger("movinet_edge.sources")


class PiCameraSource(FrameSource):
    """The Raspberry Pi camera through picamera2 (libcamera).

    picamera2 is not on PyPI in a usable form: it comes from Raspberry Pi OS
    (python3-picamera2), hence the hint when it is missing. ``width`` x
    ``height`` is the main stream's size, ``fps`` the FrameRate control (None:
    libcamera's default).
    """

    live = True

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float | None = 30.0,
        stall_timeout: float = 5.0,
        camera_id: str | None = None,
    ) -> None:
        super().__init__()
        self.name = "Pi camera"
        self.camera_id = camera_id
        self.stall_timeout = stall_timeout
        self.fps = fps
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError:
            raise EdgeError(PICAMERA_HINT) from None
        self._cam: Any = None
        try:
            self._cam = Picamera2()
            controls = {"FrameRate": float(fps)} if fps else {}
            # libcamera's "BGR888" is R, G, B in memory order: numpy RGB, no conversion.
            config = self._cam.create_video_configuration(
                main={"size": (int(width), int(height)), "format": "BGR888"}, controls=controls
            )
            self._cam.configure(config)
            self._cam.start()
        except Exception as exc:
            if self._cam is not None:
                self._cam.close()
            raise EdgeError(
                f"the Pi camera did not start ({exc}); check the ribbon cable and `rpicam-hello --list-cameras`"
            ) from None
        self._reader: LatestFrameReader | None = None

    def _read(self) -> np.ndarray | None:
        image = self._cam.capture_array("main")
        return image if image is not None and image.size else None

    def _close_camera(self) -> None:
        self._cam.stop()
        self._cam.close()

    def _frames(self) -> Iterator[Frame]:
        import numpy as np

        from ..frames import Frame

        self._reader = LatestFrameReader(self._read, self._close_camera, self.stats, self.label, max_failures=50)
        while not self._stopping.is_set():
            got = self._reader.get(self.stall_timeout)
            if isinstance(got, tuple):
                image, ts, seq = got
                self.stats.frames += 1
                yield Frame(np.ascontiguousarray(image[:, :, :3]), ts, seq)
                continue
            if self._stopping.is_set():
                return
            if got is None:
                raise EdgeError(f"the Pi camera delivered no frame for {self.stall_timeout:g} s")
            reason = f": {self._reader.error}" if self._reader.error else ""
            raise EdgeError(f"the Pi camera stopped delivering frames{reason}")

    def _wake(self) -> None:
        reader = self._reader
        if reader is not None:
            reader.interrupt()

    def _release(self) -> None:
        if self._reader is not None:
            self._reader.stop(join_timeout=1.0)
            return
        try:
            self._close_camera()
        except Exception as exc:  # already closed or the device vanished: nothing left to free
            log.debug("Pi camera close: %s", exc)
