"""The synthetic motion task at training speed: clips, datasets, streams and videos of it.

:mod:`movinet_export.synthetic` draws one clip of a shape moving in one of 8
directions; this module samples it the way the small trained models
(:mod:`movinet_export.motion_training`) see it: every ``stride``-th frame of
the motion (so the shape moves far enough a frame to be seen at the coarse
feature maps), balanced datasets, long streams whose direction changes, and
lossless videos of them for the exporter's calibration. Shared by the tests
and the int8 benchmark, so both measure on the same data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .synthetic import DIRECTIONS, motion_clip


def task_clip(label: int, resolution: int, frames: int, stride: int, rng: np.random.Generator,
              plain: bool = True) -> np.ndarray:
    """A direction-of-motion clip whose shape moves ``stride`` times the synthetic module's speed.

    ``plain`` (default): the synthetic module's plain look (a disc on grey),
    which a random start learns in minutes; False: random shapes and colours.
    """
    return motion_clip(label, resolution, frames * stride, rng, plain=plain)[::stride]


def task_dataset(count: int, resolution: int, frames: int, stride: int, seed: int,
                 plain: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``count`` clips with balanced labels: (uint8 [N, T, H, W, 3], int [N])."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(DIRECTIONS)
    rng.shuffle(labels)
    clips = np.stack([task_clip(int(y), resolution, frames, stride, rng, plain) for y in labels])
    return clips, labels


def task_stream(labels: list[int], segment_frames: int, resolution: int, stride: int, seed: int,
                plain: bool = True) -> np.ndarray:
    """One long stream: a clip per label, back to back (the action changes, nothing is reset)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([task_clip(y, resolution, segment_frames, stride, rng, plain) for y in labels])


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Lossless FFV1 .mkv (the reader gets back exactly these frames), written under a temporary name."""
    import cv2

    from movinet_edge.files import atomic_path

    height, width = frames.shape[1:3]
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError("OpenCV cannot write FFV1 .mkv here")
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()


def task_videos(folder: Path, params: dict[str, Any], videos: int, frames: int, fps: float) -> Path:
    """Training-distribution streams (a direction change every clip length) as videos: calibration input.

    ``params``: the training parameters (resolution, frames, stride, plain) of
    :mod:`movinet_export.motion_training`. Videos already there are kept.
    """
    folder.mkdir(parents=True, exist_ok=True)
    segment = params["frames"]
    for i in range(videos):
        path = folder / f"calib_{i:02d}.mkv"
        if path.is_file():
            continue
        rng = np.random.default_rng(500 + i)
        labels = [int(v) for v in rng.integers(0, 8, size=-(-frames // segment))]
        stream = task_stream(labels, segment, params["resolution"], params["stride"], seed=600 + i,
                             plain=params["plain"])[:frames]
        write_video(path, stream, fps)
    return folder
