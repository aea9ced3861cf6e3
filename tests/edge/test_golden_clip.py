"""The golden result: the committed model on a real clip gives the committed top-5, without TensorFlow.

As the tensorflow/examples Raspberry Pi video classifier checks its model on
carving_ice.mp4 against expected categories and scores: if a runtime upgrade,
a preprocessing change or a change in how states are carried moves what the
device computes, this fails and says by how much. The rule (a tolerance on
every probability, near ties may swap) is :func:`helpers.golden.assert_golden`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.golden import assert_golden, expected_result
from movinet_edge.model import StreamingClassifier
from movinet_edge.pipeline import classify_clip


@pytest.fixture(scope="module")
def expected() -> dict:
    return expected_result()


@pytest.mark.parametrize("threads", [1, 2])
def test_the_golden_model_gives_the_golden_top5_on_carving_ice(golden_model_dir: Path, clips: Path,
                                                             expected: dict, threads: int) -> None:
    """At 1 thread (CI) and 2: the thread count must not move the result beyond the tolerance."""
    classifier = StreamingClassifier.open(golden_model_dir, num_threads=threads)
    result = classify_clip(clips / expected["clip"], classifier, top_k=len(expected["top_k"]))
    assert result.steps == expected["steps"]
    print("top-5:", ", ".join(f"{label} {score:.6f}" for label, score in result.top_k))
    assert_golden(result.labels, result.final, result.top_k, expected)


def test_the_golden_result_through_the_command_line(golden_model_dir: Path, clips: Path, expected: dict,
                                                    tmp_path: Path) -> None:
    """``movinet-edge classify --json`` as a real subprocess: what a user on the device sees."""
    result = subprocess.run(
        [sys.executable, "-m", "movinet_edge.cli", "classify", str(clips / expected["clip"]),
         "--model", str(golden_model_dir), "--json", "--top-k", str(len(expected["top_k"])), "--threads", "1"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["steps"] == expected["steps"]
    top_k = [(e["label"], e["score"]) for e in out["top_k"]]
    # The command prints the top-k only; the classes it leaves out are checked by the library test above.
    shown = dict(top_k)
    probabilities = np.array([shown.get(label, p) for label, p in expected["probabilities"].items()])
    assert_golden(list(expected["probabilities"]), probabilities, top_k, expected)


def test_a_moved_result_fails(expected: dict) -> None:
    """The rule can fail: a probability moved by more than the tolerance, or a rank that is no near tie."""
    labels = list(expected["probabilities"])
    probabilities = np.array(list(expected["probabilities"].values()))
    top_k = [(e["label"], e["score"]) for e in expected["top_k"]]
    assert_golden(labels, probabilities, top_k, expected)
    moved = probabilities.copy()
    moved[labels.index(top_k[0][0])] += 3 * expected["score_tolerance"]
    with pytest.raises(AssertionError, match="moved by more than"):
        assert_golden(labels, moved, top_k, expected)
    # The best and the fifth label swapped (the committed result is no five-way tie).
    assert top_k[0][1] - top_k[-1][1] > 2 * expected["score_tolerance"]
    swapped = [(top_k[-1][0], top_k[0][1]), *top_k[1:-1], (top_k[0][0], top_k[-1][1])]
    with pytest.raises(AssertionError, match="rank 1"):
        assert_golden(labels, probabilities, swapped, expected)
