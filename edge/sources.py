"""Where frames come from: video files, V4L2 cameras, the Pi camera, network streams.

Every source is an iterator of :class:`~movinet_edge.frames.Frame` (RGB uint8,
timestamp in seconds, index) and a context manager that releases the device.
Sources only deliver frames; which of them reach the model is the sampler's
decision, made from the timestamps.

Live sources (cameras, streams) read in a background thread that keeps only
the newest frame: when the consumer is slower than the camera, old frames are
dropped (and counted), never queued, so the delay between the scene and the
prediction cannot grow. Nothing here may hang: network reads have OpenCV
timeouts, and a watchdog turns "no frame for N seconds" into a reconnect
(streams) or a clear error (cameras).

Problems a user can fix become :class:`EdgeError` with one line saying what
to do; OpenCV's own console chatter can be silenced with
:func:`quiet_opencv_logs` so that line is all a user sees.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from .errors import EdgeError
from .frames import Frame

log = logging.getLogger(__name__)

PICAMERA_HINT = (
    "picamera2 is not installed; on Raspberry Pi OS: sudo apt install python3-picamera2 "
    "and create the venv with --system-site-packages"
)


def quiet_opencv_logs() -> None:
    """Silence OpenCV's and FFmpeg's console warnings (a CLI wants its own one-line errors).

    Respects a user's explicit ``OPENCV_LOG_LEVEL`` / ``OPENCV_FFMPEG_LOGLEVEL``.
    FFmpeg's level is read when OpenCV first opens a capture, so call this first.
    """
    if "OPENCV_FFMPEG_LOGLEVEL" not in os.environ:
        os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "-8"  # AV_LOG_QUIET
    if "OPENCV_LOG_LEVEL" not in os.environ:
        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        except AttributeError:  # an OpenCV build without the logging utils
            pass


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
    return cv2.VideoCapture(target, cv2.CAP_FFMPEG, [*params, cv2.CAP_PROP_N_THREADS, int(decode_threads)])


def _to_rgb(bgr: np.ndarray) -> np.ndarray:
    """A new RGB array: frames are handed out and may be kept by sinks."""
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class VideoFileSource(FrameSource):
    """Frames of a video file (any container and codec OpenCV's FFmpeg reads).

    Timestamps are the presentation times (``CAP_PROP_POS_MSEC``), falling
    back to ``index / fps`` where a container does not report them.

    ``realtime=True`` plays the file like a camera: frames are delivered when
    their timestamp is due on a monotonic clock, and frames whose time has
    passed while the consumer was busy are dropped, as a live source would.
    ``loop=True`` starts again at the end, with timestamps that keep
    increasing so the sampler and the model see one continuous stream.
    ``decode_threads``: FFmpeg's decoder threads (None: :func:`decode_threads_for`
    a 1-thread interpreter).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        realtime: bool = False,
        loop: bool = False,
        decode_threads: int | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.decode_threads = decode_threads if decode_threads is not None else decode_threads_for(None)
        self.realtime = realtime
        self.loop = loop
        self.live = False
        self.name = f"video {self.path}"
        if not self.path.exists():
            raise EdgeError(f"video {self.path} does not exist")
        if not self.path.is_file():
            raise EdgeError(f"video {self.path} is not a file")
        if self.path.stat().st_size == 0:
            raise EdgeError(f"video {self.path} has no frames (the file is empty)")
        if not os.access(self.path, os.R_OK):
            raise EdgeError(f"cannot read video {self.path}: permission denied")
        self._cap = self._open()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if 0.0 < fps < 1000.0 else None
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        #: Frame count from the container header: an estimate (None if unknown).
        self.frame_count: int | None = count if count > 0 else None
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._bgr: np.ndarray | None = None  # decode buffer, reused

    def _open(self) -> cv2.VideoCapture:
        cap = open_ffmpeg_capture(str(self.path), [], self.decode_threads)
        if not cap.isOpened():
            cap.release()
            raise EdgeError(f"cannot read video {self.path}: not a video OpenCV can decode, or an incomplete file")
        # Fail now, not in the middle of a pipeline, on a file with a header and nothing else.
        if not cap.grab():
            cap.release()
            raise EdgeError(f"video {self.path} has no frames")
        return cap

    def _release(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()

    def _retrieve(self) -> np.ndarray | None:
        """The last grabbed frame as a new RGB array, or None (counted) if it cannot be decoded."""
        ok, bgr = self._cap.retrieve(self._bgr)
        if not ok or bgr is None:
            self.stats.failed_reads += 1
            return None
        self._bgr = bgr
        return _to_rgb(bgr)

    def _frames(self) -> Iterator[Frame]:
        cap = self._cap
        grabbed = True  # _open grabbed the first frame
        index = 0
        offset = 0.0  # added to timestamps of later loop passes
        last_ts = -1.0
        interval = 1.0 / self.fps if self.fps else 1.0 / 30.0
        clock_start: float | None = None
        ts_start = 0.0
        while True:
            pass_index = 0
            pass_yielded = 0
            pass_first: float | None = None
            while grabbed:
                pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if pass_first is None:
                    pass_first = pos if pos >= 0 else 0.0
                ts_in_pass = pos - pass_first
                fallback = pass_index * interval
                if pos < 0 or (pass_index > 0 and offset + ts_in_pass <= last_ts):
                    ts_in_pass = fallback  # the container did not give a usable time
                ts = offset + ts_in_pass
                if self.realtime:
                    if clock_start is None:
                        clock_start, ts_start = time.monotonic(), ts
                    due = clock_start + (ts - ts_start)
                    now = time.monotonic()
                    if now < due:
                        if self._stopping.wait(due - now):
                            return
                    elif now - due > interval:
                        # Its time has passed while the consumer was busy: a camera
                        # would not have kept it either. Skip decoding it.
                        self.stats.dropped += 1
                        last_ts = ts
                        index += 1
                        pass_index += 1
                        grabbed = cap.grab()
                        continue
                if self.lazy_frames:
                    # Pixels are retrieved (converted from the codec's YUV) only if the
                    # consumer reads frame.image before asking for the next frame.
                    frame = Frame.lazy(self._retrieve, ts, index)
                    self.stats.frames += 1
                    pass_yielded += 1
                    yield frame
                    frame.expire()
                elif (image := self._retrieve()) is not None:
                    self.stats.frames += 1
                    pass_yielded += 1
                    yield Frame(image, ts, index)
                last_ts = ts
                index += 1
                pass_index += 1
                if self._stopping.is_set():
                    return
                grabbed = cap.grab()
            if pass_yielded == 0 and self.stats.dropped == 0:
                raise EdgeError(f"video {self.path} has no frames that could be decoded")
            if not self.loop or self._stopping.is_set():
                return
            # Next pass: reopen (seeking to 0 is not exact in every container) and
            # continue the clock one frame interval after the last frame.
            offset = last_ts + interval
            cap.release()
            cap = self._cap = self._open()
            grabbed = True


@dataclass
class ReconnectPolicy:
    """Exponential backoff for a stream that stopped: initial_delay, doubling up to max_delay.

    ``max_attempts`` consecutive failed attempts (None: try forever, what a
    service wants) end the stream with an EdgeError. A delivered frame resets
    the count.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    factor: float = 2.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (1-based)."""
        return min(self.max_delay, self.initial_delay * self.factor ** max(0, attempt - 1))


#: Called before each reconnect attempt with (attempt, delay_seconds, reason).
ReconnectCallback = Callable[[int, float, str], None]


class _Ended:
    """The reader stopped: the source ended or failed."""


_ENDED = _Ended()


class _LatestFrameReader:
    """Reads in a thread and keeps only the newest image: a slow consumer never sees old frames.

    ``read`` returns an image or None for a failed read. After
    ``max_failures`` failed reads in a row the reader ends (the stream closed,
    the camera was unplugged); a stuck ``read`` is the consumer's watchdog's
    business. The thread owns the device while it runs and calls ``release``
    when it exits: a device is never released under a read in progress, and
    the owner never has to wait for a read that is stuck in a network timeout.
    """

    def __init__(
        self,
        read: Callable[[], np.ndarray | None],
        release: Callable[[], None],
        stats: SourceStats,
        name: str,
        max_failures: int,
    ) -> None:
        self._read = read
        self._release = release
        self._stats = stats
        self._max_failures = max_failures
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, float, int] | None = None
        self._ended = False
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._count = 0
        self._thread = threading.Thread(target=self._run, name=f"movinet-edge reader ({name})", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                image = self._read()
                if image is None:
                    self._stats.failed_reads += 1
                    failures += 1
                    if failures >= self._max_failures:
                        break
                    self._stop.wait(0.01)
                    continue
                failures = 0
                ts = time.monotonic()
                with self._cond:
                    if self._latest is not None:
                        self._stats.dropped += 1
                    self._latest = (image, ts, self._count)
                    self._count += 1
                    self._cond.notify()
        except Exception as exc:  # surfaced to the consumer as the reason of the end
            self.error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()
            try:
                self._release()
            except Exception as exc:  # the device vanished: nothing left to free
                log.debug("release after reading: %s", exc)

    def get(self, timeout: float | None) -> tuple[np.ndarray, float, int] | _Ended | None:
        """The newest frame (image, monotonic time, sequence), _ENDED, or None after ``timeout`` s."""
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None or self._ended, timeout)
            if self._latest is not None:
                latest, self._latest = self._latest, None
                return latest
            return _ENDED if self._ended else None

    @property
    def count(self) -> int:
        return self._count

    def interrupt(self) -> None:
        """Ask the thread to stop and wake the consumer; returns at once (any thread)."""
        self._stop.set()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def stop(self, join_timeout: float) -> bool:
        """Stop the thread, waiting up to ``join_timeout`` s; False if a read is still stuck
        (the thread then releases the device itself when that read returns)."""
        self.interrupt()
        self._thread.join(join_timeout)
        return not self._thread.is_alive()


def _redact(url: str) -> str:
    """A URL fit for logs: no password (rtsp://user:secret@cam/ -> rtsp://user:***@cam/)."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*):[^@/]*@", r"\1:***@", url)


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
    ) -> None:
        """``backend``: an OpenCV capture API (``cv2.CAP_*``); default V4L2 on Linux, else any."""
        super().__init__()
        self.device = device
        self.name = f"camera {device}"
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
        self._reader: _LatestFrameReader | None = None

    def _read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        return image if ok else None

    def _frames(self) -> Iterator[Frame]:
        self._reader = _LatestFrameReader(self._read, self._cap.release, self.stats, self.name, max_failures=50)
        while not self._stopping.is_set():
            got = self._reader.get(self.stall_timeout)
            if isinstance(got, tuple):
                image, ts, seq = got
                self.stats.frames += 1
                yield Frame(_to_rgb(image), ts, seq)
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
            log.warning("%s: a read is still in progress; the device is released when it returns", self.name)


class PiCameraSource(FrameSource):
    """The Raspberry Pi camera through picamera2 (libcamera).

    picamera2 is not on PyPI in a usable form: it comes from Raspberry Pi OS
    (python3-picamera2), hence the hint when it is missing.
    """

    live = True

    def __init__(
        self, width: int = 640, height: int = 480, fps: float | None = 30.0, stall_timeout: float = 5.0
    ) -> None:
        super().__init__()
        self.name = "Pi camera"
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
        self._reader: _LatestFrameReader | None = None

    def _read(self) -> np.ndarray | None:
        image = self._cam.capture_array("main")
        return image if image is not None and image.size else None

    def _close_camera(self) -> None:
        self._cam.stop()
        self._cam.close()

    def _frames(self) -> Iterator[Frame]:
        self._reader = _LatestFrameReader(self._read, self._close_camera, self.stats, self.name, max_failures=50)
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


class StreamSource(FrameSource):
    """An RTSP / HTTP (MJPEG, HLS, files over HTTP) stream read through OpenCV's FFmpeg backend.

    Network cameras drop out: when the stream ends or delivers nothing for
    ``stall_timeout`` seconds, the source reconnects with exponential backoff
    (:class:`ReconnectPolicy`), reporting each attempt to ``on_reconnect`` (or,
    without one, as a logging warning), and counting it in ``stats.reconnects``. Timestamps are
    ``time.monotonic()`` at arrival, so they keep increasing across reconnects.
    """

    live = True

    def __init__(
        self,
        url: str,
        reconnect: ReconnectPolicy | None = None,
        on_reconnect: ReconnectCallback | None = None,
        open_timeout: float = 10.0,
        read_timeout: float = 10.0,
        stall_timeout: float | None = None,
        decode_threads: int | None = None,
    ) -> None:
        super().__init__()
        self.url = url
        self.decode_threads = decode_threads if decode_threads is not None else decode_threads_for(None)
        self.name = f"stream {_redact(url)}"
        self.policy = reconnect or ReconnectPolicy()
        self.on_reconnect = on_reconnect
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        # A little over the read timeout: FFmpeg normally gives up first and the
        # reader ends cleanly; the watchdog catches a read that ignored it.
        self.stall_timeout = stall_timeout if stall_timeout is not None else read_timeout + 2.0
        self._cap: cv2.VideoCapture | None = self._open()
        if self._cap is None:
            raise EdgeError(f"cannot open {self.name}: check the URL, the network, and that the camera is streaming")
        reported = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(reported) if 0.0 < reported < 1000.0 else None
        self._reader: _LatestFrameReader | None = None
        self._attempt = 0
        self._index_base = 0  # frame indices keep counting across connections

    def _open(self) -> cv2.VideoCapture | None:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout * 1000),
        ]  # fmt: skip
        cap = open_ffmpeg_capture(self.url, params, self.decode_threads)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _start_reader(self, cap: cv2.VideoCapture) -> _LatestFrameReader:
        def read() -> np.ndarray | None:
            ok, image = cap.read()
            return image if ok else None

        # A failed read on a network stream means it ended (FFmpeg already waited
        # read_timeout): reconnect at once instead of retrying a dead connection.
        # Each connection's reader reads and releases its own capture.
        return _LatestFrameReader(read, cap.release, self.stats, self.name, max_failures=1)

    def _drop_connection(self) -> None:
        reader, self._reader = self._reader, None
        cap, self._cap = self._cap, None
        if reader is not None:
            self._index_base += reader.count
            if not reader.stop(join_timeout=1.0):
                log.debug("%s: a read is still in progress; that connection closes when it returns", self.name)
        elif cap is not None:
            cap.release()

    def _reconnect(self, reason: str) -> bool:
        """Back off and reopen until it works; False if the source was closed meanwhile."""
        while not self._stopping.is_set():
            self._attempt += 1
            limit = self.policy.max_attempts
            if limit is not None and self._attempt > limit:
                raise EdgeError(f"{self.name} lost ({reason}); gave up after {limit} reconnect attempts")
            delay = self.policy.delay(self._attempt)
            self.stats.reconnects += 1
            if self.on_reconnect is not None:
                self.on_reconnect(self._attempt, delay, reason)
            else:
                log.warning("%s: %s; reconnecting in %.1f s (attempt %d)", self.name, reason, delay, self._attempt)
            if self._stopping.wait(delay):
                return False
            self._cap = self._open()
            if self._cap is not None:
                return True
            reason = "could not reconnect"
        return False

    def _frames(self) -> Iterator[Frame]:
        while not self._stopping.is_set():
            if self._reader is None:
                assert self._cap is not None
                self._reader = self._start_reader(self._cap)
            got = self._reader.get(self.stall_timeout)
            if isinstance(got, tuple):
                image, ts, seq = got
                self._attempt = 0
                self.stats.frames += 1
                yield Frame(_to_rgb(image), ts, self._index_base + seq)
                continue
            if self._stopping.is_set():
                return
            if got is None:
                reason = f"no frame for {self.stall_timeout:g} s"
            elif self._reader.error is not None:
                reason = f"read failed: {self._reader.error}"
            else:
                reason = "the stream ended"
            self._drop_connection()
            if not self._reconnect(reason):
                return

    def _wake(self) -> None:
        reader = self._reader
        if reader is not None:
            reader.interrupt()

    def _release(self) -> None:
        self._drop_connection()


@dataclass
class SourceSpec:
    """The source as the CLI describes it: exactly one of camera, url, video."""

    camera: str | None = None  # "0", "/dev/video2" or "picam"
    url: str | None = None
    video: Path | None = None
    realtime: bool = False
    loop: bool = False
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    on_reconnect: ReconnectCallback | None = None
    decode_threads: int | None = None  # FFmpeg's, for --video and --url (None: decode_threads_for(None))

    def check(self) -> None:
        given = [
            flag
            for flag, value in (("--camera", self.camera), ("--url", self.url), ("--video", self.video))
            if value is not None
        ]
        if len(given) != 1:
            got = f" (got {' and '.join(given)})" if given else ""
            raise EdgeError(f"give exactly one source: --camera 0|picam, --url URL or --video FILE{got}")
        if (self.realtime or self.loop) and self.video is None:
            raise EdgeError("--realtime and --loop apply to --video only")

    @property
    def live(self) -> bool:
        return self.video is None


_PICAM_NAMES = {"picam", "picamera", "picamera2", "pi"}


def open_source(spec: SourceSpec) -> FrameSource:
    """Open the one source a :class:`SourceSpec` names (raises EdgeError on anything wrong)."""
    spec.check()
    if spec.video is not None:
        return VideoFileSource(spec.video, realtime=spec.realtime, loop=spec.loop, decode_threads=spec.decode_threads)
    if spec.url is not None:
        if "://" not in spec.url:
            raise EdgeError(
                f"--url {spec.url!r} is not a URL; use e.g. rtsp://host:554/stream or http://host/video.mjpg"
            )
        return StreamSource(
            spec.url, reconnect=spec.reconnect, on_reconnect=spec.on_reconnect, decode_threads=spec.decode_threads
        )
    camera = (spec.camera or "").strip()
    if camera.lower() in _PICAM_NAMES:
        return PiCameraSource()
    if camera.isdigit():
        return CameraSource(int(camera))
    if camera.startswith("/dev/"):
        return CameraSource(camera)
    raise EdgeError(f"--camera {camera!r}: give a V4L2 index (0), a device (/dev/video0) or 'picam'")
