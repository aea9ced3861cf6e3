"""Where predictions and events go: the console, JSON lines, an annotated video, a window.

Each sink implements the :class:`~movinet_edge.results.Sink` protocol
(through :class:`~movinet_edge.results.BaseSink`). Sinks that write files
also have ``abort()``: the pipeline calls it instead of ``close()`` when the
run failed, so a failed run leaves no half-written output behind.

Per-frame work (annotating and writing every frame) reuses buffers and
precomputed text; per-step work (one line per prediction) is cheap anyway.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from .errors import EdgeError
from .frames import Frame
from .results import BaseSink, Event, Prediction

DISPLAY_NEEDS_GUI = (
    "--display needs an OpenCV build with a GUI (pip install opencv-python instead of opencv-python-headless)"
)


class ConsoleSink(BaseSink):
    """One human-readable line per prediction, and one per event.

    ``  12.40s  step   62  carving ice 0.873 | ice skating 0.051 | ...  (14.2 ms)``

    Times are seconds since the first frame: a file's own times, and for a
    live source (whose timestamps are a monotonic clock) time since start.
    """

    def __init__(self, stream: TextIO | None = None, events: bool = True) -> None:
        self.stream = stream
        self.events = events
        self.origin: float | None = None

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def on_frame(self, frame: Frame) -> None:
        if self.origin is None:
            self.origin = frame.timestamp

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        if self.origin is None:
            self.origin = prediction.timestamp
        labels = " | ".join(f"{label} {score:.3f}" for label, score in prediction.top_k)
        t = prediction.timestamp - self.origin
        print(
            f"{t:8.2f}s  step {prediction.step:5d}  {labels}  ({prediction.latency_ms:.1f} ms)",
            file=self._out(),
            flush=True,
        )

    def on_event(self, event: Event) -> None:
        if not self.events:
            return
        print(format_event(event, self.origin or 0.0), file=self._out(), flush=True)


def format_event(event: Event, origin: float = 0.0) -> str:
    """An event as one line for people; times relative to ``origin``."""
    if event.kind == "new":
        return f"* {event.label} started at {event.start - origin:.2f}s (score {event.score:.3f})"
    if event.kind == "update":
        return f"* {event.label} continues at {event.timestamp - origin:.2f}s (score {event.score:.3f})"
    if event.kind == "end":
        end = event.end if event.end is not None else event.timestamp
        return (
            f"* {event.label} ended at {end - origin:.2f}s after {end - event.start:.2f}s "
            f"(peak score {event.score:.3f})"
        )
    return f"* {event.kind} {event.label} at {event.timestamp - origin:.2f}s (score {event.score:.3f})"


def prediction_record(prediction: Prediction) -> dict[str, Any]:
    """The JSON form of a prediction (also what other sinks such as MQTT can publish)."""
    return {
        "type": "prediction",
        "timestamp": round(prediction.timestamp, 6),
        "frame_index": prediction.frame_index,
        "step": prediction.step,
        "top_k": [{"label": label, "score": round(score, 6)} for label, score in prediction.top_k],
        "latency_ms": round(prediction.latency_ms, 3),
    }


def event_record(event: Event) -> dict[str, Any]:
    """The JSON form of an event; ``extra`` keys are merged in (never over the fixed ones)."""
    record: dict[str, Any] = {
        "type": "event",
        "kind": event.kind,
        "label": event.label,
        "score": round(event.score, 6),
        "start": round(event.start, 6),
        "end": None if event.end is None else round(event.end, 6),
        "timestamp": round(event.timestamp, 6),
    }
    for key, value in event.extra.items():
        record.setdefault(key, value)
    return record


class JsonLinesSink(BaseSink):
    """One JSON object a line: ``{"type": "prediction", ...}`` and ``{"type": "event", ...}``.

    Lines are flushed as they are written, so a reader at the other end of a
    pipe sees each step when it happens.
    """

    def __init__(self, stream: TextIO | None = None, close_stream: bool = False) -> None:
        self.stream = stream
        self.close_stream = close_stream

    def _write(self, record: dict[str, Any]) -> None:
        out = self.stream if self.stream is not None else sys.stdout
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        out.flush()

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        self._write(prediction_record(prediction))

    def on_event(self, event: Event) -> None:
        self._write(event_record(event))

    def close(self) -> None:
        if self.stream is not None:
            if self.close_stream:
                self.stream.close()
            else:
                self.stream.flush()


class _Overlay:
    """Draws the latest top-k on frames. Text is rebuilt per prediction, not per frame."""

    def __init__(self, top_k: int) -> None:
        self.top_k = top_k
        self.lines: list[str] = []

    def update(self, prediction: Prediction) -> None:
        self.lines = [f"{label}  {score:.2f}" for label, score in prediction.top_k[: self.top_k]]

    def draw(self, bgr: np.ndarray) -> None:
        h = bgr.shape[0]
        scale = max(0.35, h / 720.0)
        thickness = max(1, round(scale * 1.5))
        step = int(26 * scale) + 4
        y = step
        for line in self.lines:
            # A dark outline under light text stays readable on any background.
            cv2.putText(bgr, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.putText(bgr, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
            y += step


class AnnotatedVideoSink(BaseSink):
    """Writes every frame with the latest top-k drawn on it (MPEG-4 Part 2, ``mp4v``).

    The video goes to a hidden temporary file beside ``path`` and is renamed
    into place by :meth:`close`, so ``path`` is either the complete video or
    untouched; :meth:`abort` (a failed run) removes the temporary file.
    ``fps`` is the playback rate written into the file (the source's rate).
    """

    every_frame = True

    def __init__(self, path: str | os.PathLike[str], fps: float, top_k: int = 3, fourcc: str = "mp4v") -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.fourcc = fourcc
        self._overlay = _Overlay(top_k)
        self._writer: cv2.VideoWriter | None = None
        self._tmp: Path | None = None
        self._size: tuple[int, int] | None = None  # (width, height)
        self._bgr: np.ndarray | None = None
        self.frames_written = 0
        parent = self.path.parent
        if not parent.is_dir():
            raise EdgeError(f"cannot write {self.path}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise EdgeError(f"cannot write {self.path}: no permission to write in {parent}")
        if self.path.is_dir():
            raise EdgeError(f"cannot write {self.path}: it is a directory")

    def _open(self, width: int, height: int) -> None:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.stem}.", suffix=self.path.suffix or ".mp4", dir=self.path.parent
        )
        os.close(fd)
        self._tmp = Path(tmp)
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (width, height))
        if not writer.isOpened():
            writer.release()
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
            raise EdgeError(
                f"cannot write {self.path}: OpenCV has no {self.fourcc} encoder for {self.path.suffix or 'this'} "
                "files; use a .mp4 name"
            )
        self._writer = writer
        self._size = (width, height)

    def on_frame(self, frame: Frame) -> None:
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
        """Finish the file and move it into place."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.release()
        assert self._tmp is not None
        # mkstemp made it private (0600); give it the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)
        os.replace(self._tmp, self.path)
        self._tmp = None

    def abort(self) -> None:
        """Drop the partial file: the run failed."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def opencv_has_gui() -> bool:
    """Whether this OpenCV build can open windows (opencv-python-headless cannot)."""
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
        self._overlay = _Overlay(top_k)
        self._bgr: np.ndarray | None = None
        self._open = False

    def on_frame(self, frame: Frame) -> None:
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
            cv2.destroyWindow(self.window)
            cv2.waitKey(1)
            self._open = False
