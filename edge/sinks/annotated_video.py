"""An annotated video: every frame with the latest top-k drawn on it, written atomically.

``[output] save`` (``--save FILE.mp4``). The path is checked when the sink is
made (before the model loads, where the entry point makes it early), and the
video goes to a hidden temporary file beside it that :meth:`close` renames
into place, so the path holds either the complete video or what it held
before; :meth:`abort` (a failed run) removes the temporary file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EdgeError
from ..files import AtomicFile, check_writable
from ..options import option
from ..results import BaseSink
from .overlay import Overlay
from .registry import SinkContext, SinkKind, register

if TYPE_CHECKING:
    import numpy as np

    from ..frames import Frame
    from ..results import Prediction


@dataclass
class VideoOptions:
    """Where the annotated video goes (none: no video)."""

    save: Path | None = field(default=None, metadata=option("Write the annotated video here (.mp4)."))


class AnnotatedVideoSink(BaseSink):
    """Writes every frame with the latest top-k drawn on it (MPEG-4 Part 2, ``mp4v``).

    ``fps`` is the playback rate written into the file (the source's rate).
    OpenCV is imported where frames are written (see :mod:`.overlay`).
    """

    every_frame = True

    def __init__(self, path: str | os.PathLike[str], fps: float, top_k: int = 3, fourcc: str = "mp4v") -> None:
        self.path = check_writable(path)
        if not self.path.suffix:
            # OpenCV picks the container from the name: without a suffix it has none to pick.
            raise EdgeError(f"cannot write {self.path}: give the video a name ending in .mp4")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.fourcc = fourcc
        self._overlay = Overlay(top_k)
        self._writer: Any = None  # cv2.VideoWriter once the first frame gives the size
        self._file: AtomicFile | None = None
        self._size: tuple[int, int] | None = None  # (width, height)
        self._bgr: np.ndarray | None = None
        self.frames_written = 0

    def _open(self, width: int, height: int) -> None:
        import cv2

        try:
            file = AtomicFile(self.path)
        except OSError as exc:
            raise EdgeError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        assert file.path is not None
        writer = cv2.VideoWriter(str(file.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (width, height))
        if not writer.isOpened():
            writer.release()
            file.discard()
            raise EdgeError(
                f"cannot write {self.path}: OpenCV has no {self.fourcc} encoder for {self.path.suffix} "
                "files; use a .mp4 name"
            )
        self._file = file
        self._writer = writer
        self._size = (width, height)

    def on_frame(self, frame: Frame) -> None:
        import cv2

        image = frame.image
        h, w = image.shape[:2]
        if self._writer is None:
            self._open(w, h)
        assert self._writer is not None and self._size is not None
        if (w, h) != self._size:  # a stream that came back at another resolution
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR, dst=self._bgr)
        self._overlay.draw(self._bgr)
        self._writer.write(self._bgr)
        self.frames_written += 1

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        self._overlay.update(prediction)

    def close(self) -> None:
        """Finish the file and move it into place (with the mode a plain open() would give)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.release()
        file, self._file = self._file, None
        if file is not None:
            file.commit()

    def abort(self) -> None:
        """Drop the partial file: the run failed."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()
        file, self._file = self._file, None
        if file is not None:
            file.discard()


def open_video(options: VideoOptions, context: SinkContext) -> AnnotatedVideoSink:
    assert options.save is not None
    return AnnotatedVideoSink(options.save, fps=context.source_fps or 30.0, top_k=min(context.top_k, 3))


KIND = register(
    SinkKind(
        key="video",
        section="output",
        options=VideoOptions,
        open=open_video,
        enabled=lambda o: o.save is not None,
        help="An annotated video file.",
    )
)
