"""Long-stream policies on a real stream whose content changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.signatures import edit_signature
from movinet_edge.clip import load_clip
from movinet_edge.manifest import load_manifest
from movinet_edge.model import StreamingClassifier
from movinet_edge.windowing import WindowedClassifier, WindowPolicy

WINDOW_SECONDS = 10.0


@pytest.fixture(scope="module")
def two_scenes(clips: Path, golden_model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    size = load_manifest(golden_model_dir / "manifest.json").resolution  # step_square takes the model's size
    return load_clip(clips / "carving_ice.mp4", 5.0, size), load_clip(clips / "rope_pushdown.mp4", 5.0, size)


def _steady(model_dir: Path, scene: np.ndarray, steps: int = 40) -> np.ndarray:
    clf = StreamingClassifier.open(model_dir, num_threads=2)
    for i in range(steps):
        logits = clf.step_square(scene[i % len(scene)])
    return logits


def test_rescale_keeps_the_pool_mean_and_bounds_history(golden_model_dir: Path, two_scenes) -> None:
    scene, _ = two_scenes
    clf = StreamingClassifier.open(golden_model_dir, num_threads=2)
    for frame in scene[:20]:
        clf.step_square(frame)
    pools = [(b, c) for b, c in clf._pools]  # noqa: SLF001 - checking the invariant itself
    before = [b.input_view().copy() / c.input_view().item() for b, c in pools]
    clf.rescale_history(5)
    after = [b.input_view().copy() / c.input_view().item() for b, c in pools]
    for x, y in zip(before, after):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    assert clf.history_frames == 5

    windowed = WindowedClassifier(StreamingClassifier.open(golden_model_dir, num_threads=2), WINDOW_SECONDS)
    for i in range(120):
        windowed.step_logits(scene[i % len(scene)])
        assert windowed.history_frames <= windowed.window_frames
    assert windowed.resets > 0


# Steps of scene A before the change: before the first rescale (W/2 = 25 frames), right at it,
# at the window (50), between rescales, and after 100 s.
CHANGE_AFTER = (10, 25, 37, 50, 75, 100, 500)


@pytest.mark.parametrize("policy", [WindowPolicy.RESCALE, WindowPolicy.DUAL])
def test_prediction_follows_a_scene_change_at_any_time(golden_model_dir: Path, two_scenes, policy) -> None:
    """Scene A for 2 s to 100 s, then scene B: the output moves to B's within a few seconds, wherever
    the change falls in the window's cycle (measured, 10 s window at 5 fps: rescale 9-33 steps, i.e.
    1.8-6.6 s; dual 0-25 steps). Without a window the same change after 100 s is not followed at all.

    The model is randomly initialised (no pretrained weights here), so its top-1 is the same class
    for both scenes; what changes is the whole logit vector. The prediction counts as switched when
    it is nearer to what a fresh stream of B gives than to what a fresh stream of A gives.
    """
    a, b = two_scenes
    ref_a, ref_b = _steady(golden_model_dir, a), _steady(golden_model_dir, b)
    assert np.abs(ref_a - ref_b).mean() > 1e-3, "the two scenes must be told apart"

    def delay(windowed: bool, before: int) -> int | None:
        clf = StreamingClassifier.open(golden_model_dir, num_threads=2)
        step = WindowedClassifier(clf, WINDOW_SECONDS, policy).step_logits if windowed else clf.step_square
        for i in range(before):
            step(a[i % len(a)])
        for j in range(100):
            logits = step(b[j % len(b)])
            if np.abs(logits - ref_b).mean() < np.abs(logits - ref_a).mean():
                return j
        return None

    delays = {before: delay(True, before) for before in CHANGE_AFTER}
    fps = 5.0
    print(f"\n{policy.value} window {WINDOW_SECONDS:g} s: steps to follow a change after N steps: {delays}")
    # "A few seconds": at most 0.7 of the window (7 s), never the whole window or more.
    bound = int(0.7 * WINDOW_SECONDS * fps)
    assert all(d is not None and d <= bound for d in delays.values()), delays
    if policy is WindowPolicy.RESCALE:
        # Cumulative pooling: 100 s of history outweigh 20 s of the new scene.
        assert delay(False, 500) is None


def test_dual_windows_report_at_least_half_a_window_after_warm_up(golden_model_dir: Path, two_scenes) -> None:
    """No blind spot: once the stream is half a window old, the reported state set has always seen
    between W/2 and W frames, across every reset of either set."""
    scene, _ = two_scenes
    windowed = WindowedClassifier(StreamingClassifier.open(golden_model_dir, num_threads=2), WINDOW_SECONDS,
                                  WindowPolicy.DUAL)
    w = windowed.window_frames
    seen = []
    for i in range(3 * w):
        windowed.step_logits(scene[i % len(scene)])
        if i + 1 >= w // 2:
            seen.append(windowed.history_frames)
    assert windowed.resets >= 4
    assert min(seen) >= w // 2 and max(seen) <= w, (min(seen), max(seen))


def rename_states(source: Path, target: Path) -> None:
    """Our exported model with its states named as another exporter might (``s0``, ``s1``, ...)."""
    names: dict[bytes, bytes] = {}

    def rename(signature: Any) -> None:
        for entry in [*signature.inputs, *signature.outputs]:
            if entry.name.startswith(b"state_"):
                entry.name = names.setdefault(entry.name, b"s%d" % len(names))

    edit_signature(source, target, rename)


def test_a_model_without_official_state_names_gets_dual_windows(golden_model_dir: Path, tmp_path: Path,
                                                                 two_scenes) -> None:
    """Rescaling finds the pooling sums by name; for a model whose states are named otherwise the
    default policy falls back to dual windows (which only reset and restore whole state sets) and
    says so, rather than leaving the history unbounded while counting rescales that did nothing."""
    scene, _ = two_scenes
    renamed = tmp_path / "renamed.tflite"
    rename_states(golden_model_dir / "model.tflite", renamed)
    other = StreamingClassifier.open(renamed, labels=golden_model_dir / "labels.txt", num_threads=2)
    assert len(other.states) == 43 and not other.has_pool_states
    assert all(s.name.startswith("s") for s in other.states)

    windowed = WindowedClassifier(other, WINDOW_SECONDS)  # rescale asked for
    assert windowed.policy is WindowPolicy.DUAL and "dual windows instead" in (windowed.fallback or "")
    reference = WindowedClassifier(StreamingClassifier.open(golden_model_dir, num_threads=2), WINDOW_SECONDS,
                                   WindowPolicy.DUAL)
    for i in range(2 * windowed.window_frames + 5):
        frame = scene[i % len(scene)]
        np.testing.assert_allclose(windowed.step_logits(frame), reference.step_logits(frame), rtol=0, atol=1e-5)
    assert windowed.resets == reference.resets >= 2
