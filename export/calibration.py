"""Calibration data for int8: long real sequences with the states carried.

Why this matters: the causal average pools keep a running SUM in
``*_pool_buffer`` (divided by frame_count + 1). Calibrating on short clips
(as the official tool does) records ranges that the sums leave after a few
seconds of streaming, and quantized states then saturate. So every
calibration sample is one *step of a stream*: the frame plus the float
states the TF streaming model had at that point, over sequences as long as
the user's videos allow.
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from movinet_edge.progress import Progress

from .errors import ExportError

# One step of the float TF streaming model: {"image": ..., states...} -> {"logits": ..., states...}.
StreamStep = Callable[[dict[str, Any]], dict[str, Any]]

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".gif"}
DEFAULT_STREAM_FRAMES = 64  # ~13 s at 5 fps: long enough for the pool sums to settle
DEFAULT_MAX_STREAMS = 8
SYNTHETIC_STREAMS = 4


def expand_videos(specs: list[str]) -> list[Path]:
    """Files, folders (searched recursively) and globs -> sorted video files."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found += [p for p in sorted(path.rglob("*")) if p.suffix.lower() in VIDEO_SUFFIXES]
        elif path.is_file():
            found.append(path)
        else:
            matches = [Path(p) for p in sorted(glob.glob(spec, recursive=True))]
            if not matches:
                raise ExportError(f"calibration video {spec} does not exist (no file, folder or glob match)")
            found += [p for p in matches if p.is_file()]
    unique = list(dict.fromkeys(found))
    if specs and not unique:
        raise ExportError(f"no videos found in {', '.join(specs)}; give files, folders or globs of videos")
    return unique


def calibration_streams(videos: list[str], frames: int, *, fps: float, resolution: int,
                        resize_policy: str = "crop") -> list[np.ndarray]:
    """Square uint8 streams [T, res, res, 3] at the model's ``fps``; synthetic when no videos are given.

    ``frames``: per stream (0: DEFAULT_STREAM_FRAMES); ``resize_policy``: how frames are made
    square, as the device will (crop, pad or stretch).
    """
    from movinet_edge.clip import load_clip
    from movinet_edge.preprocess import ResizePolicy

    frames = frames or DEFAULT_STREAM_FRAMES
    paths = expand_videos(videos)
    if not paths:
        from .synthetic import motion_stream

        print(
            "warning: no --calibration-videos given: calibrating on built-in synthetic motion clips; "
            "videos like the ones the device will see calibrate better",
            file=sys.stderr,
        )
        return [
            motion_stream([(i + k) % 8 for k in range(4)], max(frames // 4, 4), resolution, seed=100 + i)
            for i in range(SYNTHETIC_STREAMS)
        ]
    if len(paths) > DEFAULT_MAX_STREAMS * 4:
        # Many short videos: spread over the set rather than taking the first ones.
        step = len(paths) / (DEFAULT_MAX_STREAMS * 4)
        paths = [paths[int(i * step)] for i in range(DEFAULT_MAX_STREAMS * 4)]
    streams, skipped = [], []
    for path in paths:
        try:
            streams.append(load_clip(path, fps, resolution, max_frames=frames, policy=ResizePolicy(resize_policy)))
        except Exception as exc:  # noqa: BLE001 - an unreadable video is reported, not fatal
            skipped.append(f"{path.name}: {exc}")
    for line in skipped:
        print(f"warning: calibration video skipped ({line})", file=sys.stderr)
    if not streams:
        raise ExportError("none of the calibration videos could be read; check the paths and codecs")
    return _join_short(streams, frames)


def _join_short(streams: list[np.ndarray], frames: int) -> list[np.ndarray]:
    """Concatenate short clips into streams of about ``frames`` (states run across clip cuts, as live)."""
    out: list[np.ndarray] = []
    current: list[np.ndarray] = []
    length = 0
    for clip in streams:
        current.append(clip)
        length += len(clip)
        if length >= frames:
            out.append(np.concatenate(current)[:frames])
            current, length = [], 0
        if len(out) >= DEFAULT_MAX_STREAMS:
            break
    if current and len(out) < DEFAULT_MAX_STREAMS:
        out.append(np.concatenate(current))
    return out


def stream_dataset(step: StreamStep, initial_states: dict[str, Any], streams: list[np.ndarray],
                   progress: bool = True) -> Iterator[dict[str, Any]]:
    """Yield one sample per stream step: the frame plus the float states the TF stream had before it.

    ``step`` is the float TF streaming model (tensors in, tensors out) and
    ``initial_states`` its states at the start of a stream. Generated lazily
    (a sample of A0 holds ~3 MB of states) by running the model alongside.
    """
    import tensorflow as tf

    total = sum(len(s) for s in streams)
    with Progress(total, "calibrating", unit="frames", quiet=not progress) as bar:
        for stream in streams:
            states = {k: np.asarray(v) for k, v in initial_states.items()}
            for frame in stream:
                feed = {**states, "image": frame[None, None].astype(np.float32) / 255.0}
                yield feed
                out = step({k: tf.constant(v) for k, v in feed.items()})
                states = {k: v.numpy() for k, v in out.items() if k != "logits"}
                bar.update(1)
