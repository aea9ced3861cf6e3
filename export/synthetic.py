"""Synthetic motion clips: a task that needs temporal order to solve.

Used where no real video is at hand: calibration when the user gives no
videos (with a warning that real videos calibrate better), the default parity
clip, and the tests and benchmarks that train small models (pretrained
weights cannot be fetched everywhere). Each clip shows a shape moving across
a noisy background; the class is the direction of motion. Any single frame
is uninformative (random position, colour, shape), so a model must compare
frames to get it right — just what a causal video model is for.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

DIRECTIONS = ("right", "left", "down", "up", "down-right", "up-left", "down-left", "up-right")
_VECTORS = {
    "right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1),
    "down-right": (1, 1), "up-left": (-1, -1), "down-left": (-1, 1), "up-right": (1, -1),
}
CLASSES = tuple(f"moving {d}" for d in DIRECTIONS)


def motion_clip(
    label: int, resolution: int, frames: int, rng: np.random.Generator, plain: bool = False
) -> np.ndarray:
    """One clip of class ``label``: uint8 [frames, resolution, resolution, 3].

    ``plain``: a light disc on a grey background with little noise instead of
    random shapes and colours. Single frames are just as uninformative (the
    position is random), but the motion is most of what varies, so a model
    learns direction from a random start in a few hundred steps instead of
    sitting at chance for the first ~600 (measured at 32 and 64 px).
    """
    dx, dy = _VECTORS[DIRECTIONS[label]]
    norm = math.hypot(dx, dy)
    speed = rng.uniform(0.03, 0.06) * resolution  # pixels per frame
    vx, vy = dx / norm * speed, dy / norm * speed
    radius = int(rng.uniform(0.15, 0.22) * resolution if plain else rng.uniform(0.10, 0.18) * resolution)
    # The scene wraps around (a torus): long streams never run out of frame.
    x0, y0 = rng.uniform(0, resolution, size=2)
    if plain:
        background = np.full(3, rng.integers(60, 120))
        color, shape, noise_level = np.full(3, 230), 0, 4.0
    else:
        background = rng.integers(0, 256, size=3)
        color = (background + rng.integers(80, 176, size=3)) % 256
        shape = rng.integers(0, 3)
        noise_level = rng.uniform(4, 16)
    base = np.empty((resolution, resolution, 3), np.uint8)
    base[:] = background
    out = np.empty((frames, resolution, resolution, 3), np.uint8)
    for t in range(frames):
        img = base.copy()
        cx, cy = (x0 + vx * t) % resolution, (y0 + vy * t) % resolution
        c = tuple(int(v) for v in color)
        for ox in (-resolution, 0, resolution):  # draw the wrapped copies too
            for oy in (-resolution, 0, resolution):
                _draw(img, shape, int(round(cx + ox)), int(round(cy + oy)), radius, c)
        noisy = img.astype(np.int16) + rng.normal(0, noise_level, img.shape).astype(np.int16)
        out[t] = np.clip(noisy, 0, 255).astype(np.uint8)
    return out


def _draw(img: np.ndarray, shape: int, cx: int, cy: int, radius: int, color: tuple[int, ...]) -> None:
    h, w = img.shape[:2]
    if cx + radius < 0 or cy + radius < 0 or cx - radius >= w or cy - radius >= h:
        return
    if shape == 0:
        cv2.circle(img, (cx, cy), radius, color, -1)
    elif shape == 1:
        cv2.rectangle(img, (cx - radius, cy - radius), (cx + radius, cy + radius), color, -1)
    else:
        pts = np.array([[cx, cy - radius], [cx - radius, cy + radius], [cx + radius, cy + radius]], np.int32)
        cv2.fillPoly(img, [pts], color)


def motion_dataset(count: int, resolution: int, frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` clips with balanced labels: (uint8 [N, T, H, W, 3], int [N])."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(DIRECTIONS)
    rng.shuffle(labels)
    clips = np.stack([motion_clip(int(y), resolution, frames, rng) for y in labels])
    return clips, labels


def motion_stream(labels: list[int], segment_frames: int, resolution: int, seed: int = 0) -> np.ndarray:
    """A long stream whose action changes: one clip per label, back to back."""
    rng = np.random.default_rng(seed)
    return np.concatenate([motion_clip(y, resolution, segment_frames, rng) for y in labels])


def synthetic_clip(resolution: int, frames: int = 24, seed: int = 0) -> np.ndarray:
    """One deterministic clip, e.g. for parity when no video is given."""
    return motion_clip(0, resolution, frames, np.random.default_rng(seed))
