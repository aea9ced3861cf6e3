"""The edge tests' model: the committed golden one, so they run without TensorFlow.

The device runtime never imports TensorFlow, and its tests should not need it
either: ``pip install . pytest && pytest tests/edge`` must pass on the base
install, in about a minute. Tests that only need *a* streaming model written by
our exporter take ``golden_model_dir``: tests/golden/tiny_a0_int8, a
random-init A0 exported by our own exporter to our selective int8 recipe
(64 px, 8 classes, A0's 43 states), made by tests/golden/regenerate.py and
checked against a fresh export by tests/export/test_golden.py.

Tests that need a particular export (float32 against TensorFlow, the naive
int8 recipe, integer image inputs, Kinetics-600 labels) keep the session
fixtures of tests/conftest.py, which export with TensorFlow and skip, saying
so, where it is not installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.golden import GOLDEN_MODEL


@pytest.fixture(scope="session")
def golden_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the golden model folder (model.tflite, manifest.json, labels.txt).

    A copy, so that a test that writes beside its model cannot change the
    committed files.
    """
    if not (GOLDEN_MODEL / "model.tflite").is_file():
        pytest.fail(f"the golden model is missing at {GOLDEN_MODEL}; run tests/golden/regenerate.py")
    copy = tmp_path_factory.mktemp("golden") / GOLDEN_MODEL.name
    shutil.copytree(GOLDEN_MODEL, copy)
    return copy


@pytest.fixture(scope="session")
def golden_frames(golden_model_dir: Path, clips: Path) -> np.ndarray:
    """carving_ice.mp4 at the golden model's rate and resolution: square uint8 frames, fed as they are."""
    from movinet_edge.clip import load_clip
    from movinet_edge.manifest import load_manifest

    manifest = load_manifest(golden_model_dir / "manifest.json")
    return load_clip(clips / "carving_ice.mp4", manifest.fps, manifest.resolution)


@pytest.fixture
def plot_extra() -> None:
    """matplotlib (the [plot] extra), or the test skips: the base install leaves it out."""
    pytest.importorskip("matplotlib", reason="needs the [plot] extra (matplotlib), which the base install leaves out")
