"""Long-stream policies on a real stream whose content changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from movinet_edge.clip import load_clip
from movinet_edge.model import StreamingClassifier
from movinet_edge.windowing import WindowedClassifier, WindowPolicy

WINDOW_SECONDS = 10.0


@pytest.fixture(scope="module")
def two_scenes(clips: Path) -> tuple[np.ndarray, np.ndarray]:
    return load_clip(clips / "carving_ice.mp4", 5.0, 172), load_clip(clips / "rope_pushdown.mp4", 5.0, 172)


def _steady(model_dir: Path, scene: np.ndarray, steps: int = 40) -> np.ndarray:
    clf = StreamingClassifier.open(model_dir, num_threads=2)
    for i in range(steps):
        logits = clf.step_square(scene[i % len(scene)])
    return logits


def test_rescale_keeps_the_pool_mean_and_bounds_history(float_model_dir: Path, two_scenes) -> None:
    scene, _ = two_scenes
    clf = StreamingClassifier.open(float_model_dir, num_threads=2)
    for frame in scene[:20]:
        clf.step_square(frame)
    pools = [(b, c) for b, c in clf._pools]  # noqa: SLF001 - checking the invariant itself
    before = [b.input_view().copy() / c.input_view().item() for b, c in pools]
    clf.rescale_history(5)
    after = [b.input_view().copy() / c.input_view().item() for b, c in pools]
    for x, y in zip(before, after):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    assert clf.history_frames == 5

    windowed = WindowedClassifier(StreamingClassifier.open(float_model_dir, num_threads=2), WINDOW_SECONDS)
    for i in range(120):
        windowed.step_logits(scene[i % len(scene)])
        assert windowed.history_frames <= windowed.window_frames
    assert windowed.resets > 0


@pytest.mark.parametrize("policy", [None, WindowPolicy.RESCALE, WindowPolicy.DUAL])
def test_prediction_follows_a_scene_change_after_a_long_stream(float_model_dir: Path, two_scenes, policy) -> None:
    """100 s of scene A, then scene B: the output must move to B's within the window.

    The model is randomly initialised (no pretrained weights here), so its
    top-1 is the same class for both scenes; what changes is the whole logit
    vector. The prediction counts as switched when it is nearer to what a
    fresh stream of B gives than to what a fresh stream of A gives.
    """
    a, b = two_scenes
    ref_a, ref_b = _steady(float_model_dir, a), _steady(float_model_dir, b)
    assert np.abs(ref_a - ref_b).mean() > 1e-3, "the two scenes must be told apart"
    clf = StreamingClassifier.open(float_model_dir, num_threads=2)
    model = clf if policy is None else WindowedClassifier(clf, WINDOW_SECONDS, policy)
    step = clf.step_square if policy is None else model.step_logits
    for i in range(500):
        step(a[i % len(a)])
    switched = None
    for j in range(100):
        logits = step(b[j % len(b)])
        if np.abs(logits - ref_b).mean() < np.abs(logits - ref_a).mean():
            switched = j
            break
    if policy is None:
        # Cumulative pooling: 100 s of history outweigh 20 s of the new scene.
        assert switched is None
    else:
        assert switched is not None and switched <= WINDOW_SECONDS * clf.fps, switched
