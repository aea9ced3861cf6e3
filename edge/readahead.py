"""Frames paired with the sampler's decision, decoded ahead on another core for files.

A video file processed as fast as it goes spends as long decoding (a 30 fps
H.264 clip decodes six frames for every 5 fps model step) as the model
spends stepping. Decoding releases the GIL, and so does the interpreter's
invoke, so a second thread can decode the next step's frames while the model
runs: :class:`ReadAhead` does that, with the sampler's decision taken in the
reading thread, so that only the frames the model (or a sink that needs every
frame, such as an annotated video) will use are converted to pixels, and the
model's own preprocessing (crop, resize) done there too when it has one.

Cameras and streams already read in a thread of their own and drop late
frames; a file played ``--realtime`` behaves like one. Both keep the inline
path (:func:`sampled_inline`): decisions in the loop's thread, nothing queued.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import numpy as np

from .frames import Frame, FrameDecodeError
from .sources import VideoFileSource

# Frames (most without pixels: 5 of 6 are skipped) the reader may be ahead by:
# enough to cover one step's worth of decoding, little enough memory.
DEPTH = 16

_END = object()


# (frame, accepted by the sampler, the model's input made from it or None)
Sampled = tuple[Frame, bool, "np.ndarray | None"]


@contextmanager
def sampled_frames(
    frames: Iterable[Frame],
    accept: Callable[[float], bool],
    every_frame: bool = False,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Iterator[Iterator[Sampled]]:
    """``(frame, accepted, prepared)``: read ahead for a file played as fast as it goes, inline otherwise.

    ``prepare`` (the classifier's preprocessing) is applied ahead, in the
    reader; inline, ``prepared`` is None and the classifier does it itself.
    """
    if isinstance(frames, VideoFileSource) and not frames.realtime:
        with ReadAhead(frames, accept, every_frame, prepare) as reader:
            yield iter(reader)
    else:
        yield sampled_inline(frames, accept)


def sampled_inline(frames: Iterable[Frame], accept: Callable[[float], bool]) -> Iterator[Sampled]:
    """Each frame with the sampler's decision, taken in the consumer's thread."""
    for frame in frames:
        yield frame, accept(frame.timestamp), None


class ReadAhead:
    """Iterate ``frames`` in a thread; yield ``(frame, accepted, prepared)``, accepted frames decoded.

    ``every_frame``: decode every frame's pixels (a sink draws or writes every
    frame). Use as a context manager: leaving it stops the reader and joins it
    before the caller closes the source, so a capture is never released while
    the reader is inside it.
    """

    def __init__(self, frames: Iterable[Frame], accept: Callable[[float], bool], every_frame: bool = False,
                 prepare: Callable[[np.ndarray], np.ndarray] | None = None, depth: int = DEPTH) -> None:
        self._frames = frames
        self._accept = accept
        self._every_frame = every_frame
        self._prepare = prepare
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="movinet-readahead", daemon=True)

    def __enter__(self) -> ReadAhead:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a reader waiting for room
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for frame in self._frames:
                accepted = self._accept(frame.timestamp)
                prepared = None
                if accepted or self._every_frame:
                    try:
                        image = frame.image  # decode now, in this thread
                    except FrameDecodeError:
                        accepted = False  # counted by the source as a failed read
                    else:
                        if accepted and self._prepare is not None:
                            prepared = self._prepare(image)
                if not self._put((frame, accepted, prepared)) or self._stop.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(exc)
            return
        self._put(_END)

    def __iter__(self) -> Iterator[Sampled]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
