"""What a source hands to the rest of the pipeline: one decoded frame and when it was seen."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class FrameExpired(RuntimeError):
    """A lazily decoded frame was read after its source moved on (a bug in the consumer)."""


class FrameDecodeError(RuntimeError):
    """A lazily decoded frame's pixels could not be decoded; consumers skip the frame."""


class Frame:
    """One RGB frame.

    ``timestamp`` is in seconds on the source's own clock: the presentation
    time for a file, the capture time (monotonic) for a live source. The
    sampler decides from it, not from ``index``, which frames reach the model,
    so a 30 fps camera, a 5 fps file and a jittery stream give the same rate.

    A file source may hand out frames whose pixels are produced on first use
    of :attr:`image` (:meth:`lazy`): a 30 fps file feeding a 5 fps model then
    converts only the frames the sampler keeps (colour conversion costs as
    much as decoding). Such a frame's pixels must be read before the next
    frame is taken from the source; afterwards :attr:`image` raises
    :class:`FrameExpired` instead of returning another frame's pixels.
    """

    __slots__ = ("timestamp", "index", "_image", "_load")

    def __init__(self, image: np.ndarray, timestamp: float, index: int) -> None:
        self._image: np.ndarray | None = image  # H x W x 3, uint8, RGB
        self._load: Callable[[], np.ndarray | None] | None = None
        self.timestamp = timestamp
        self.index = index  # position in the source, counting every decoded frame

    @classmethod
    def lazy(cls, load: Callable[[], np.ndarray | None], timestamp: float, index: int) -> Frame:
        """A frame whose RGB pixels ``load()`` makes when first needed (``None``: undecodable)."""
        frame = cls.__new__(cls)
        frame._image, frame._load = None, load
        frame.timestamp, frame.index = timestamp, index
        return frame

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            load, self._load = self._load, None
            if load is None:
                raise FrameExpired(f"frame {self.index} was read after its source moved on")
            image = load()
            if image is None:
                raise FrameDecodeError(f"frame {self.index} could not be decoded")
            self._image = image
        return self._image

    @property
    def loaded(self) -> bool:
        return self._image is not None

    def expire(self) -> None:
        """Called by the source before it moves on: an unread lazy frame can no longer be read."""
        self._load = None

    def __repr__(self) -> str:
        shape = "lazy" if self._image is None else "x".join(map(str, self._image.shape))
        return f"Frame(index={self.index}, timestamp={self.timestamp:.3f}, {shape})"
