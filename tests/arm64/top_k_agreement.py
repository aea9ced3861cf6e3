"""Do two runs of the same model give the same top-5? For runs on other machines or runtimes.

Given the same frames, x86 and emulated arm64 LiteRT give bit-identical logits
(measured). The frames are not the same: OpenCV's FFmpeg converts YUV to BGR
with per-architecture SIMD code, off by up to 2/255 per pixel, which moved A0
logits by up to 0.01 and top-5 scores by up to ~0.6% relative; another OpenCV
(Debian's 4.6 on armhf) or another runtime's kernels (tflite-runtime's built-in
int8 ones) move them as much. 3% leaves room for sharper (trained) models; a
broken port is off by far more. The test models have random weights, so their
top scores are near-ties: a label may swap places with its neighbour, which is
why each side reports its top 10 and a top-5 label is looked up there.
"""

from __future__ import annotations

import json
import math

TOP_K = 5  # compared
REPORTED_K = 10  # asked for, so that a label at rank 5 on one side can be found at rank 6+ on the other
SCORE_REL_TOL = 0.03
SCORE_ABS_TOL = 1e-6  # the CLI rounds scores to 6 decimals

TopK = list[tuple[str, float]]


def last_top_k(stdout: str) -> TopK:
    """The top-k of the last ``"type": "prediction"`` JSON line of the live command, as (label, score)."""
    predictions = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("type") == "prediction":
            predictions.append(record)
    assert predictions, f"no prediction lines in the CLI output:\n{stdout[-2000:]}"
    return _entries(predictions[-1])


def classify_top_k(stdout: str) -> TopK:
    """The top-k of `movinet-edge classify --json` (one JSON object)."""
    return _entries(json.loads(stdout))


def _entries(record: dict) -> TopK:
    top_k = [(entry["label"], float(entry["score"])) for entry in record["top_k"]]
    # REPORTED_K asked for; a model with fewer classes gives them all.
    assert len(top_k) >= TOP_K, f"expected at least {TOP_K} entries in top_k, got {top_k}"
    return top_k


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=SCORE_REL_TOL, abs_tol=SCORE_ABS_TOL)


def assert_same_top_k(reference: TopK, other: TopK, names: tuple[str, str] = ("x86", "arm64")) -> None:
    """Same top-5 up to near-ties, judged against each side's top-10.

    Scores must agree rank by rank over the top 5. A label in one side's top 5
    must be in the other's top 10 with a close score: it may swap places, or
    drop to rank 6-10, only where the scores around it are a near-tie.
    """
    report = f"\n  {names[0]}: {reference}\n  {names[1]}: {other}"
    for rank in range(TOP_K):
        assert _close(reference[rank][1], other[rank][1]), f"rank {rank + 1} scores differ{report}"
    for side, ours, theirs in ((names[0], reference, other), (names[1], other, reference)):
        their_scores = dict(theirs)
        for label, score in ours[:TOP_K]:
            assert label in their_scores, (
                f"{label!r} is in the {side} top {TOP_K} but not in the other's top {REPORTED_K}{report}")
            assert _close(score, their_scores[label]), f"{label!r} scores differ{report}"
