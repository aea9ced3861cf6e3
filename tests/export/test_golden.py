"""The committed golden model (tests/golden/) is still what our exporter writes.

The edge tests run on a committed model so that they need no TensorFlow; this
test keeps it honest. It runs tests/golden/regenerate.py, as a user would,
into a temporary folder and checks that the fresh export is equivalent to the
committed one: the same signature, the same states (names, shapes, dtypes,
kinds, quantization), the same manifest facts, logits close on real clips, and
the golden top-5 reproduced. When an exporter change fails this on purpose,
regenerate the golden model and say why in the commit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.golden import GOLDEN_EXPECTED, GOLDEN_MODEL, REGENERATE, assert_golden, expected_result
from movinet_edge.clip import load_clip
from movinet_edge.manifest import load_manifest
from movinet_edge.model import StreamingClassifier

pytestmark = pytest.mark.slow

# Two int8 exports of the same weights whose calibration or int8 plan differ slightly
# (another TensorFlow patch release) may differ by a few quantization steps of the logits
# (~0.01 each); the int8 model itself is within ~0.015 of TensorFlow on carving_ice.
LOGIT_TOLERANCE = 0.05
CLIPS = ("carving_ice.mp4", "rope_pushdown.mp4")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory, test_data: Path) -> tuple[Path, Path]:
    pytest.importorskip("tensorflow", reason="regenerating the golden model needs TensorFlow (the export extra)")
    out = tmp_path_factory.mktemp("golden")
    model, expected = out / GOLDEN_MODEL.name, out / GOLDEN_EXPECTED.name
    result = subprocess.run(
        [sys.executable, str(REGENERATE), "--output", str(model), "--expected", str(expected),
         "--data", str(test_data), "--quiet"],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"wrote {model} ("), result.stdout
    return model, expected


def _signature(model_dir: Path) -> dict[str, dict[str, tuple]]:
    clf = StreamingClassifier.open(model_dir, num_threads=1)

    def describe(details: dict) -> dict[str, tuple]:
        return {name: (tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name) for name, d in details.items()}

    return {"key": clf.signature_key, "inputs": describe(clf.input_details), "outputs": describe(clf.output_details)}


def test_the_regenerated_model_has_the_golden_signature_and_states(regenerated: tuple[Path, Path]) -> None:
    model, _ = regenerated
    assert sorted(p.name for p in model.iterdir()) == sorted(p.name for p in GOLDEN_MODEL.iterdir())
    assert (model / "labels.txt").read_text() == (GOLDEN_MODEL / "labels.txt").read_text()
    assert _signature(model) == _signature(GOLDEN_MODEL)
    fresh, golden = load_manifest(model / "manifest.json"), load_manifest(GOLDEN_MODEL / "manifest.json")
    for field in ("model_id", "resolution", "fps", "num_classes", "precision", "signature_key", "resize_policy",
                  "labels_file", "image", "logits"):
        assert getattr(fresh, field) == getattr(golden, field), field
    assert len(fresh.states) == len(golden.states) == 43

    def state(s: object) -> tuple:
        return (s.name, list(s.shape), s.dtype, s.kind, s.input_quantization is None, s.output_quantization is None)

    assert [state(s) for s in fresh.states] == [state(s) for s in golden.states]
    assert fresh.source["location"] == golden.source["location"] == "checkpoint"
    assert fresh.source["sha256"] == golden.source["sha256"], "the seed no longer gives the same weights"
    assert fresh.parity["passed"] and fresh.quantization["recipe"] == golden.quantization["recipe"]


@pytest.mark.parametrize("clip", CLIPS)
def test_the_regenerated_model_computes_what_the_golden_one_does(
    regenerated: tuple[Path, Path], clips: Path, clip: str
) -> None:
    """Every step of a real clip, states carried: logits within a few quantization steps."""
    model, _ = regenerated
    frames = load_clip(clips / clip, 5.0, load_manifest(GOLDEN_MODEL / "manifest.json").resolution)
    fresh = StreamingClassifier.open(model, num_threads=1)
    golden = StreamingClassifier.open(GOLDEN_MODEL, num_threads=1)
    diffs = [float(np.abs(fresh.step_square(f) - golden.step_square(f)).max()) for f in frames]
    print(f"{clip}: {len(frames)} steps, max |logit diff| {max(diffs):.4g}")
    assert max(diffs) <= LOGIT_TOLERANCE, diffs


def test_the_regenerated_result_is_the_golden_one(regenerated: tuple[Path, Path]) -> None:
    """The top-5 the script writes for the fresh model passes the committed golden result's check."""
    _, expected_file = regenerated
    fresh, golden = expected_result(expected_file), expected_result()
    assert fresh["clip"] == golden["clip"] and fresh["steps"] == golden["steps"]
    assert_golden(list(fresh["probabilities"]), np.array(list(fresh["probabilities"].values())),
                  [(e["label"], e["score"]) for e in fresh["top_k"]], golden)
