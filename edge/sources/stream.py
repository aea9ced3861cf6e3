"""Network streams (kind ``url``): RTSP, HTTP MJPEG, HLS, read through OpenCV's FFmpeg backend.

Network cameras drop out. When the stream ends or delivers nothing for
``stall_timeout`` seconds, the source reconnects with exponential backoff
(:class:`ReconnectPolicy`) until frames come back. An operator must see that
happen: the source always logs the outage itself (see :mod:`.outage`: the
first failure, then at a bounded rate, then how long it lasted), and the
assembly layer's callbacks are told in addition, never instead.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import EdgeError
from ..options import at_least, option, positive
from .base import FrameSource, decode_threads_for, open_ffmpeg_capture, to_rgb
from .outage import OutageLog
from .reader import LatestFrameReader, ReconnectPolicy
from .registry import ReconnectCallback, RecoveredCallback, SourceContext, SourceKind, register, require_valid

if TYPE_CHECKING:
    import cv2
    import numpy as np

    from ..frames import Frame

log = logging.getLogger("movinet_edge.sources")


def redact(url: str) -> str:
    """A URL fit for logs: no password (rtsp://user:secret@cam/ -> rtsp://user:***@cam/)."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*):[^@/]*@", r"\1:***@", url)


class StreamSource(FrameSource):
    """An RTSP / HTTP (MJPEG, HLS, files over HTTP) stream read through OpenCV's FFmpeg backend.

    Reconnects are counted in ``stats.reconnects``, logged (rate-limited) and
    reported to ``on_reconnect`` before each attempt; ``on_recovered`` hears
    the length of each outage when frames return. Timestamps are
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
        on_recovered: RecoveredCallback | None = None,
        camera_id: str | None = None,
    ) -> None:
        super().__init__()
        import cv2

        self.url = url
        self.camera_id = camera_id
        self.decode_threads = decode_threads if decode_threads is not None else decode_threads_for(None)
        self.name = f"stream {redact(url)}"
        self.policy = reconnect or ReconnectPolicy()
        self.on_reconnect = on_reconnect
        self.on_recovered = on_recovered
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
        self._reader: LatestFrameReader | None = None
        self._attempt = 0
        self._index_base = 0  # frame indices keep counting across connections
        self._outage = OutageLog(self.label)
        self._last_frame_at: float | None = None

    def _open(self) -> cv2.VideoCapture | None:
        import cv2

        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout * 1000),
        ]  # fmt: skip
        cap = open_ffmpeg_capture(self.url, params, self.decode_threads)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _start_reader(self, cap: cv2.VideoCapture) -> LatestFrameReader:
        def read() -> np.ndarray | None:
            ok, image = cap.read()
            return image if ok else None

        # A failed read on a network stream means it ended (FFmpeg already waited
        # read_timeout): reconnect at once instead of retrying a dead connection.
        # Each connection's reader reads and releases its own capture.
        return LatestFrameReader(read, cap.release, self.stats, self.label, max_failures=1)

    def _drop_connection(self) -> None:
        reader, self._reader = self._reader, None
        cap, self._cap = self._cap, None
        if reader is not None:
            self._index_base += reader.count
            if not reader.stop(join_timeout=1.0):
                log.debug("%s: a read is still in progress; that connection closes when it returns", self.label)
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
            self._outage.attempt(self._attempt, delay, reason, time.monotonic(), self._last_frame_at)
            if self.on_reconnect is not None:
                self.on_reconnect(self._attempt, delay, reason)
            if self._stopping.wait(delay):
                return False
            self._cap = self._open()
            if self._cap is not None:
                return True
            reason = "could not reconnect"
        return False

    def _frames(self) -> Iterator[Frame]:
        from ..frames import Frame

        while not self._stopping.is_set():
            if self._reader is None:
                assert self._cap is not None
                self._reader = self._start_reader(self._cap)
            got = self._reader.get(self.stall_timeout)
            if isinstance(got, tuple):
                image, ts, seq = got
                self._attempt = 0
                self._last_frame_at = ts
                back = self._outage.recovered(ts)
                if back is not None and self.on_recovered is not None:
                    self.on_recovered(back[0])
                self.stats.frames += 1
                yield Frame(to_rgb(image), ts, self._index_base + seq)
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


def url_problem(url: str) -> str | None:
    """The check of a stream URL: a scheme is what tells a URL from a typo'd path."""
    if "://" in url:
        return None
    return "not a URL; use e.g. rtsp://host:554/stream or http://host/video.mjpg"


@dataclass
class StreamOptions:
    """``url``: a network camera or stream, reconnecting with backoff when it drops out."""

    url: str = field(metadata=option("An RTSP or HTTP stream URL (rtsp://..., http://...).", check=url_problem))
    reconnect_initial_delay: float = field(
        default=0.5, metadata=option("Seconds before the first reconnect attempt; doubles each attempt.",
                                     check=positive, cli=False)
    )  # fmt: skip
    reconnect_max_delay: float = field(
        default=10.0, metadata=option("The longest wait between reconnect attempts, in seconds.",
                                      check=positive, cli=False)
    )  # fmt: skip
    reconnect_max_attempts: int | None = field(
        default=None, metadata=option("Give up after this many failed attempts in a row (none: never).",
                                      check=at_least(0), cli=False)
    )  # fmt: skip
    open_timeout: float = field(
        default=10.0, metadata=option("Seconds to wait for the stream to open.", check=positive, cli=False)
    )
    read_timeout: float = field(
        default=10.0, metadata=option("Seconds without data before a connection counts as lost.",
                                      check=positive, cli=False)
    )  # fmt: skip


def open_stream(options: StreamOptions, context: SourceContext) -> StreamSource:
    require_valid("url", options)
    if options.reconnect_max_delay < options.reconnect_initial_delay:
        raise EdgeError("url reconnect max delay must not be below the reconnect initial delay")
    policy = ReconnectPolicy(
        initial_delay=options.reconnect_initial_delay,
        max_delay=options.reconnect_max_delay,
        max_attempts=options.reconnect_max_attempts,
    )
    return StreamSource(
        options.url,
        reconnect=policy,
        on_reconnect=context.on_reconnect,
        on_recovered=context.on_recovered,
        open_timeout=options.open_timeout,
        read_timeout=options.read_timeout,
        decode_threads=context.decode_threads,
        camera_id=context.name,
    )


KIND = register(
    SourceKind(
        key="url",
        options=StreamOptions,
        open=open_stream,
        live=True,
        help="Read a network stream (RTSP, HTTP MJPEG); reconnects when it drops out.",
    )
)
