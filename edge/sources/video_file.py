"""Video files (kind ``video``): any container and codec OpenCV's FFmpeg reads."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EdgeError
from ..options import option
from .base import FrameSource, decode_threads_for, open_ffmpeg_capture, to_rgb
from .registry import SourceContext, SourceKind, register, require_valid

if TYPE_CHECKING:
    import cv2
    import numpy as np

    from ..frames import Frame


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
        import cv2

        self.path = Path(path)
        self.decode_threads = decode_threads if decode_threads is not None else decode_threads_for(None)
        self.realtime = realtime
        self.loop = loop
        self.live = False
        self.name = f"video {self.path}"
        self._check_file(opening=False)
        self._cap = self._open()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if 0.0 < fps < 1000.0 else None
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        #: Frame count from the container header: an estimate (None if unknown).
        self.frame_count: int | None = count if count > 0 else None
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._bgr: np.ndarray | None = None  # decode buffer, reused

    def _check_file(self, opening: bool) -> None:
        """An EdgeError if the path is not a readable, non-empty file.

        ``opening``: the capture has just failed to open, so a missing file was
        there a moment ago (the first check passed, or an earlier loop pass
        played it): say it is gone rather than "does not exist".
        """
        if not self.path.exists():
            if opening:
                raise EdgeError(f"video {self.path} is gone: it was deleted or moved while in use")
            raise EdgeError(f"video {self.path} does not exist")
        if not self.path.is_file():
            raise EdgeError(f"video {self.path} is not a file")
        if self.path.stat().st_size == 0:
            raise EdgeError(f"video {self.path} has no frames (the file is empty)")
        if not os.access(self.path, os.R_OK):
            raise EdgeError(f"cannot read video {self.path}: permission denied")

    def _open(self) -> cv2.VideoCapture:
        cap = open_ffmpeg_capture(str(self.path), [], self.decode_threads)
        if not cap.isOpened():
            cap.release()
            self._check_file(opening=True)  # deleted, emptied or locked since: say that
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
        return to_rgb(bgr)

    def _frames(self) -> Iterator[Frame]:
        import cv2

        from ..frames import Frame

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
                # The previous frame's time plus one interval: OpenCV 4.6 reports 0 for a file's last
                # frames, and index * interval drifts where the nominal fps is not the real spacing.
                fallback = (last_ts - offset + interval) if pass_index > 0 else 0.0
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
class VideoOptions:
    """``video``: a video file, played as fast as the model takes it, or in real time."""

    path: Path = field(metadata=option("A video file (any container and codec FFmpeg reads).", flag="--video"))
    realtime: bool = field(
        default=False,
        metadata=option("Play the file at its own frame rate, dropping frames the model is too slow for."),
    )
    loop: bool = field(default=False, metadata=option("Start again at the end (timestamps keep increasing)."))


def open_video(options: VideoOptions, context: SourceContext) -> VideoFileSource:
    require_valid("video", options)
    return VideoFileSource(
        options.path, realtime=options.realtime, loop=options.loop, decode_threads=context.decode_threads
    )


KIND = register(
    SourceKind(
        key="video",
        options=VideoOptions,
        open=open_video,
        live=False,
        help="Classify a video file.",
    )
)
