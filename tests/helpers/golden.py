"""The committed golden model and its expected result on a real clip (tests/golden/).

Shared by the edge tests, which run on it without TensorFlow, and the export
test that regenerates it, so both judge a result by the same rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_MODEL = GOLDEN / "tiny_a0_int8"
GOLDEN_EXPECTED = GOLDEN / "expected_top5.json"
REGENERATE = GOLDEN / "regenerate.py"


def expected_result(path: Path = GOLDEN_EXPECTED) -> dict[str, Any]:
    return json.loads(path.read_text())


def assert_golden(labels: list[str], probabilities: np.ndarray, top_k: list[tuple[str, float]],
                  expected: dict[str, Any]) -> None:
    """``top_k`` and every class's probability as committed, within the committed tolerance.

    The model has random weights, so its probabilities lie close together: two
    labels whose committed scores are within twice the tolerance may swap ranks
    (a near tie); every other rank must hold.
    """
    tolerance = expected["score_tolerance"]
    want = expected["probabilities"]
    assert labels == list(want), "the golden model's labels changed"
    got = dict(zip(labels, (float(p) for p in probabilities)))
    moved = {label: round(got[label] - p, 6) for label, p in want.items() if abs(got[label] - p) > tolerance}
    assert not moved, f"probabilities moved by more than {tolerance}: {moved}"
    ranked = [(e["label"], e["score"]) for e in expected["top_k"]]
    assert len(top_k) == len(ranked)
    for rank, ((label, score), (want_label, want_score)) in enumerate(zip(top_k, ranked), 1):
        assert abs(score - want_score) <= tolerance, f"rank {rank}: {label} {score:.6f}, committed {want_score:.6f}"
        if label != want_label:
            assert abs(want[label] - want_score) <= 2 * tolerance, (
                f"rank {rank}: {label} ({want[label]:.6f} committed) instead of {want_label} ({want_score:.6f})"
            )
