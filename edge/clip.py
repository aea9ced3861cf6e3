"""Read a whole clip the way the stream sees it: sampled at the model fps, square, uint8.

Used wherever a clip is handled at once (parity checks, calibration, whole-clip
classification, fine-tuning data), so that all of them see exactly the frames
and pixels the live pipeline would feed the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import EdgeError
from .frames import FrameDecodeError
from .preprocess import ResizePolicy, resize_square
from .sampler import FrameSampler
from .sources import VideoFileSource


def load_clip(
    path: str | Path,
    fps: float,
    resolution: int,
    policy: ResizePolicy = ResizePolicy.CROP,
    max_frames: int | None = None,
) -> np.ndarray:
    """Frames of ``path`` sampled at ``fps`` -> uint8 array [T, resolution, resolution, 3]."""
    sampler = FrameSampler(fps)
    frames: list[np.ndarray] = []
    with VideoFileSource(path) as source:
        source.lazy_frames = True  # only the sampled frames are decoded to pixels
        for frame in source:
            if not sampler.accept(frame.timestamp):
                continue
            try:
                frames.append(resize_square(frame.image, resolution, policy))
            except FrameDecodeError:
                continue
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise EdgeError(f"video {path} has no frames that could be decoded")
    return np.stack(frames)
