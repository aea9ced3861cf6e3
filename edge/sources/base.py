"""What every source is: an iterator of frames that owns a device, and the OpenCV plumbing they share.

Every source is an iterator of :class:`~movinet_edge.frames.Frame` (RGB uint8,
timestamp in seconds, index) and a context manager that releases the device.
Sources only deliver frames; which of them reach the model is the sampler's
decision, made from the timestamps.

Nothing here imports OpenCV or numpy when the module loads: listing the source
kinds (``--help``, reading a config file) imports every kind's module, and
those two cost a quarter of a second here, more on a Pi. The functions that
need OpenCV import it when called.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import cv2
    import numpy as np

    from ..frames import Frame


def quiet_opencv_logs() -> None:
    """Silence OpenCV's and FFmpeg's console warnings (a CLI wants its own one-line errors).

    Respects a user's explicit ``OPENCV_LOG_LEVEL`` / ``OPENCV_FFMPEG_LOGLEVEL``.
    FFmpeg's level is read when OpenCV first opens a capture, so call this first.
    """
    import cv2

    if "OPENCV_FFMPEG_LOGLEVEL" not in os.environ:
        os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "-8"  # AV_LOG_QUIET
    if "OPENCV_LOG_LEVEL" not in os.environ:
        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        except AttributeError:  # an OpenCV build without the logging utils
            pass


def decode_threads_for(interpreter_threads: int | None) -> int:
    """FFmpeg decoder threads that leave the interpreter its cores.

    FFmpeg starts a decoder thread per core by default. On a small board
    those threads compete with the interpreter's for the same cores: on a
    2-core x86, a 1-thread A0 float32 pipeline over a 30 fps clip took 70%
    longer than its bare steps with FFmpeg's default, 3-23% with one decoder
    thread. So the decoder gets the cores the interpreter does not use, and
    at least one (``None``, the runtime's default, counts as one thread).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - (interpreter_threads or 1))


def open_ffmpeg_capture(target: str, params: list[int], decode_threads: int) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` on the FFmpeg backend with ``decode_threads`` decoder threads (OpenCV >= 4.7)."""
    import cv2

    # CAP_PROP_N_THREADS came with OpenCV 4.7; Debian Bookworm's python3-opencv (32-bit Pi OS) is 4.6,
    # where FFmpeg keeps its own thread count.
    threads = getattr(cv2, "CAP_PROP_N_THREADS", None)
    extra = [threads, int(decode_threads)] if threads is not None else []
    return cv2.VideoCapture(target, cv2.CAP_FFMPEG, [*params, *extra])


def to_rgb(bgr: np.ndarray) -> np.ndarray:
    """A new RGB array from OpenCV's BGR (or gray, or BGRA): frames are handed out and may be kept by sinks."""
    import cv2

    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass
class SourceStats:
    """Counters for metrics and the end-of-run summary.

    ``dropped``: frames read but never delivered because a newer one arrived
    first (live) or their time had passed (a file played in real time).
    ``failed_reads``: reads that returned no image. ``reconnects``: reconnect
    attempts of a stream.
    """

    frames: int = 0
    dropped: int = 0
    failed_reads: int = 0
    reconnects: int = 0


class FrameSource(ABC):
    """An iterator of frames that owns a device and releases it on close.

    :meth:`close` belongs to the thread that iterates (use ``with``).
    :meth:`stop` may be called from any thread (a signal handler, a service's
    shutdown): it wakes a consumer waiting for a frame and ends the iteration.
    """

    #: A short human description ("video clip.mp4", "camera 0", "stream rtsp://cam/...").
    name: str = "source"
    #: The camera id the assembly layer gave (many cameras): it prefixes log lines and thread names.
    camera_id: str | None = None
    #: True for cameras and streams: frames happen in real time and can be missed.
    live: bool = False
    #: Nominal frame rate if the source knows it.
    fps: float | None = None
    #: Consumers that read ``frame.image`` (if at all) before taking the next frame
    #: set this: a source that can (a video file) then decodes pixels only for the
    #: frames that are read (see :meth:`Frame.lazy`). Off by default, so that
    #: ``list(source)`` keeps working.
    lazy_frames: bool = False

    def __init__(self) -> None:
        self.stats = SourceStats()
        self._gen: Iterator[Frame] | None = None
        self._stopping = threading.Event()
        self._released = False

    @property
    def label(self) -> str:
        """The name with the camera id in front, for log lines ("front-door: stream rtsp://cam/")."""
        return f"{self.camera_id}: {self.name}" if self.camera_id else self.name

    @abstractmethod
    def _frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends; raise EdgeError on a failure."""

    def _wake(self) -> None:  # noqa: B027 - optional hook
        """Wake a consumer blocked waiting for a frame (called by stop, any thread)."""

    def _release(self) -> None:  # noqa: B027 - optional hook
        """Free the device (called once by close)."""

    def __iter__(self) -> FrameSource:
        return self

    def __next__(self) -> Frame:
        if self._stopping.is_set():
            raise StopIteration
        if self._gen is None:
            self._gen = self._frames()
        return next(self._gen)

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """End the iteration soon; thread-safe. The device stays open until close()."""
        self._stopping.set()
        self._wake()

    def close(self) -> None:
        """Stop and release the device. Safe to call twice."""
        self.stop()
        if self._released:
            return
        self._released = True
        gen, self._gen = self._gen, None
        if gen is not None:
            gen.close()
        self._release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
