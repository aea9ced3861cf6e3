"""Training and evaluation clips as the device sees them, fed through tf.data.

A clip is ``frames`` frames sampled at the model's fps from a random start
(training) or from the first frame (evaluation), squared by the inference
resize policy (crop or pad) and scaled to [0, 1]. The reading composes the
device runtime's own parts — :class:`~movinet_edge.sources.VideoFileSource`
for decoding and timestamps, :class:`~movinet_edge.sampler.FrameSampler` for
the fps, :func:`~movinet_edge.preprocess.resize_square` for the pixels — so
what the model learns from is what it will be fed; an evaluation clip equals
:func:`movinet_edge.clip.load_clip` with ``max_frames=frames``. (The TF
tutorial's loader sampled every 15th frame whatever the video's rate and fed
values in [0, 255]; neither survives contact with a streaming device.)

A video shorter than the window is padded by repeating its last frame: the
scene holds still, which is what a camera shows when nothing moves.

Augmentation is light and the same for every frame of a clip (a moving crop
would fake motion): a zoom crop of 80-100 %, brightness and contrast jitter,
and a horizontal flip only when asked (it swaps left and right, so it breaks
classes like "swipe left" / "swipe right").

All randomness is drawn up front from one seeded generator per epoch, so runs
are repeatable whatever the number of parallel decoders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from movinet_edge.errors import EdgeError
from movinet_edge.preprocess import ResizePolicy, resize_square
from movinet_edge.sampler import FrameSampler
from movinet_edge.sources import VideoFileSource

from .video_dataset import VideoItem

# Augmentation parameters per clip: zoom scale, crop x, crop y (fractions of the
# free room), brightness offset, contrast factor, flip (0/1).
_AUG_SIZE = 6
_IDENTITY = np.array([1.0, 0.5, 0.5, 0.0, 1.0, 0.0], np.float32)


@dataclass(frozen=True)
class ClipSpec:
    """What a clip is: fixed by the model (fps, resolution) and the run (frames, policy)."""

    fps: float
    resolution: int
    frames: int
    policy: ResizePolicy = ResizePolicy.CROP

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


@dataclass(frozen=True)
class Augmentation:
    enabled: bool = True
    flip: bool = False
    min_zoom: float = 0.8
    brightness: float = 0.1  # +- fraction of the value range
    contrast: float = 0.15  # +- fraction


@dataclass
class DecodeFailures:
    """Videos that opened at the scan but failed while reading a clip, by path.

    The pipeline drops such a clip (it never counts as a sample) and the
    trainer reports these after each epoch.
    """

    failures: dict[str, str] = field(default_factory=dict)

    def take(self) -> dict[str, str]:
        out, self.failures = self.failures, {}
        return out


def read_window(path: str | Path, spec: ClipSpec, start: float = 0.0) -> np.ndarray:
    """uint8 [frames, R, R, 3]: ``spec.frames`` frames at ``spec.fps`` from ``start`` seconds.

    Frames before ``start`` are decoded and dropped (seeking is not exact in
    every container); the sampler anchors on the first frame at or after it.
    A start past the real end (a header that overstated the length) falls
    back to the beginning.
    """
    frames: list[np.ndarray] = []
    sampler = FrameSampler(spec.fps)
    with VideoFileSource(path) as source:
        for frame in source:
            if frame.timestamp < start:
                continue
            if not sampler.accept(frame.timestamp):
                continue
            frames.append(resize_square(frame.image, spec.resolution, spec.policy))
            if len(frames) >= spec.frames:
                break
    if not frames:
        if start > 0:
            return read_window(path, spec, 0.0)
        raise EdgeError(f"video {path} has no frames that could be decoded")
    while len(frames) < spec.frames:
        frames.append(frames[-1])
    return np.stack(frames)


def augment(clip: np.ndarray, params: np.ndarray) -> np.ndarray:
    """uint8 clip + parameters -> float32 clip in [0, 1], one transform for all frames."""
    zoom, fx, fy, brightness, contrast, flip = (float(p) for p in params)
    res = clip.shape[1]
    out = clip
    if zoom < 0.999:
        side = max(1, int(round(res * zoom)))
        x0 = int(round((res - side) * fx))
        y0 = int(round((res - side) * fy))
        out = np.stack([
            cv2.resize(f[y0 : y0 + side, x0 : x0 + side], (res, res), interpolation=cv2.INTER_LINEAR) for f in out
        ])
    if flip >= 0.5:
        out = out[:, :, ::-1]
    values = out.astype(np.float32) * np.float32(1.0 / 255.0)
    if contrast != 1.0 or brightness != 0.0:
        mean = values.mean(dtype=np.float32)
        values = (values - mean) * np.float32(contrast) + mean + np.float32(brightness)
        np.clip(values, 0.0, 1.0, out=values)
    return np.ascontiguousarray(values)


def draw_augmentations(count: int, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """float32 [count, 6] parameters for :func:`augment` (identity when disabled)."""
    params = np.tile(_IDENTITY, (count, 1))
    if not aug.enabled:
        return params
    params[:, 0] = rng.uniform(aug.min_zoom, 1.0, count)
    params[:, 1] = rng.uniform(0.0, 1.0, count)
    params[:, 2] = rng.uniform(0.0, 1.0, count)
    params[:, 3] = rng.uniform(-aug.brightness, aug.brightness, count)
    params[:, 4] = rng.uniform(1.0 - aug.contrast, 1.0 + aug.contrast, count)
    if aug.flip:
        params[:, 5] = rng.integers(0, 2, count)
    return params


def random_starts(items: Sequence[VideoItem], spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random start (seconds) per video such that the window fits where known."""
    room = np.array([max(0.0, (v.duration or 0.0) - spec.seconds) for v in items], np.float64)
    return (rng.uniform(0.0, 1.0, len(items)) * room).astype(np.float32)


class ClipPipeline:
    """tf.data datasets of (clip float32 [B, T, R, R, 3], label int32 [B])."""

    def __init__(self, spec: ClipSpec, augmentation: Augmentation, batch_size: int, workers: int, seed: int) -> None:
        self.spec = spec
        self.augmentation = augmentation
        self.batch_size = batch_size
        self.workers = max(1, workers)
        self.seed = seed
        self.failures = DecodeFailures()

    def _load(self, path: bytes, start: np.float32, params: np.ndarray) -> tuple[np.ndarray, np.bool_]:
        name = path.decode()
        try:
            clip = read_window(name, self.spec, float(start))
        except EdgeError as exc:
            self.failures.failures[name] = str(exc)
            empty = np.zeros((self.spec.frames, self.spec.resolution, self.spec.resolution, 3), np.float32)
            return empty, np.bool_(False)
        return augment(clip, params), np.bool_(True)

    def _dataset(self, items: Sequence[VideoItem], starts: np.ndarray, params: np.ndarray, order: np.ndarray,
                 drop_remainder: bool):  # noqa: ANN202 - tf.data.Dataset, TF imported lazily
        import tensorflow as tf

        paths = np.array([str(items[i].path) for i in order])
        labels = np.array([items[i].label for i in order], np.int32)
        ds = tf.data.Dataset.from_tensor_slices((paths, labels, starts[order], params[order]))
        shape = (self.spec.frames, self.spec.resolution, self.spec.resolution, 3)

        def load(path, label, start, param):  # noqa: ANN001, ANN202 - tensors
            clip, ok = tf.numpy_function(self._load, [path, start, param], [tf.float32, tf.bool])
            clip.set_shape(shape)
            ok.set_shape(())
            return clip, label, ok

        def readable(clip, label, ok):  # noqa: ANN001, ANN202
            return ok

        def pair(clip, label, ok):  # noqa: ANN001, ANN202
            return clip, label

        ds = ds.map(load, num_parallel_calls=self.workers, deterministic=True)
        ds = ds.filter(readable).map(pair)
        return ds.batch(self.batch_size, drop_remainder=drop_remainder).prefetch(2)

    def training(self, items: Sequence[VideoItem], epoch: int):  # noqa: ANN201
        """Shuffled, random windows, augmented; a fresh draw every epoch."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(items))
        starts = random_starts(items, self.spec, rng)
        params = draw_augmentations(len(items), self.augmentation, rng)
        # Full batches only while there are enough videos: batch norm on a
        # remainder of one or two clips gives noisy statistics.
        return self._dataset(items, starts, params, order, drop_remainder=len(items) >= self.batch_size)

    def evaluation(self, items: Sequence[VideoItem]):  # noqa: ANN201
        """In order, from the first frame, no augmentation: the clip the device would see."""
        n = len(items)
        return self._dataset(items, np.zeros(n, np.float32), np.tile(_IDENTITY, (n, 1)), np.arange(n),
                             drop_remainder=False)

    def steps(self, count: int, drop_remainder: bool = True) -> int:
        full = count // self.batch_size
        return full if drop_remainder and full else -(-count // self.batch_size)
