"""Smoothing, top-k and action events on synthetic probability sequences."""

from __future__ import annotations

import numpy as np
import pytest
from movinet_edge.errors import EdgeError
from movinet_edge.postprocess import (
    EventDetector,
    EventOptions,
    Smoother,
    SmoothingOptions,
    softmax,
    top_k,
)

LABELS = ["walking", "running", "jumping", "sitting"]


def onehotish(index: int, score: float, n: int = 4) -> np.ndarray:
    """A probability vector with ``score`` on ``index`` and the rest spread evenly."""
    p = np.full(n, (1.0 - score) / (n - 1), dtype=np.float32)
    p[index] = score
    return p


def test_softmax_is_stable_and_sums_to_one() -> None:
    logits = np.array([[1000.0, 1001.0, 999.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    p = softmax(logits)
    assert p.dtype == np.float32
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[1], 1 / 3, rtol=1e-6)
    assert p[0].argmax() == 1


def test_top_k_best_first_with_ties_in_class_order() -> None:
    probs = np.array([0.1, 0.4, 0.1, 0.4], dtype=np.float32)
    assert top_k(probs, LABELS, 2) == [("running", pytest.approx(0.4)), ("sitting", pytest.approx(0.4))]
    assert [label for label, _ in top_k(probs, LABELS, 10)] == ["running", "sitting", "walking", "jumping"]
    assert top_k(probs, LABELS, 0) == []


def test_top_k_on_600_classes_matches_a_full_sort() -> None:
    rng = np.random.default_rng(0)
    probs = softmax(rng.normal(size=600).astype(np.float32))
    labels = [f"class {i}" for i in range(600)]
    expected = [labels[i] for i in np.argsort(-probs)[:5]]
    assert [label for label, _ in top_k(probs, labels, 5)] == expected


def test_top_k_rejects_labels_that_do_not_fit_the_model() -> None:
    with pytest.raises(EdgeError, match="3 labels for 4 model classes"):
        top_k(np.zeros(4, dtype=np.float32), LABELS[:3], 2)


def test_ema_smoothing() -> None:
    s = Smoother(SmoothingOptions(method="ema", alpha=0.5))
    a, b = onehotish(0, 1.0), onehotish(1, 1.0)
    np.testing.assert_allclose(s.update(a), a)  # the first step is taken as is
    np.testing.assert_allclose(s.update(b), 0.5 * a + 0.5 * b)
    out = s.update(b)
    np.testing.assert_allclose(out, 0.25 * a + 0.75 * b)
    # The returned array is the caller's: later steps do not change it.
    s.update(a)
    np.testing.assert_allclose(out, 0.25 * a + 0.75 * b)
    s.reset()
    np.testing.assert_allclose(s.update(b), b)


def test_mean_smoothing_over_a_window() -> None:
    s = Smoother(SmoothingOptions(method="mean", window=3), num_classes=4)
    steps = [onehotish(i % 4, 1.0) for i in range(5)]
    outs = [s.update(p) for p in steps]
    np.testing.assert_allclose(outs[0], steps[0])
    np.testing.assert_allclose(outs[1], (steps[0] + steps[1]) / 2)
    np.testing.assert_allclose(outs[4], (steps[2] + steps[3] + steps[4]) / 3, rtol=1e-6)


def test_no_smoothing_passes_through_a_copy() -> None:
    s = Smoother(SmoothingOptions(method="none"))
    p = onehotish(2, 0.7)
    out = s.update(p)
    np.testing.assert_array_equal(out, p)
    assert out is not p


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "median"}, "unknown smoothing"),
        ({"alpha": 0.0}, "alpha"),
        ({"window": 0}, "window"),
    ],
)
def test_bad_smoothing_options(kwargs: dict, message: str) -> None:
    with pytest.raises(EdgeError, match=message):
        SmoothingOptions(**kwargs)


def run(detector: EventDetector, scores: list[float], label: int = 1, t0: float = 0.0, dt: float = 0.2):
    events = []
    for n, score in enumerate(scores):
        events += detector.update(t0 + n * dt, onehotish(label, score))
    return events


def test_an_action_starts_after_min_steps_and_ends_below_the_end_threshold() -> None:
    det = EventDetector(
        LABELS, EventOptions(start_threshold=0.6, end_threshold=0.4, min_steps=2, update_every=0, update_delta=0)
    )
    events = run(det, [0.1, 0.7, 0.8, 0.9, 0.5, 0.45, 0.3, 0.2])
    assert [(e.kind, e.label) for e in events] == [("new", "running"), ("end", "running")]
    new, end = events
    assert new.start == pytest.approx(0.2)  # where the run of high scores began
    assert new.timestamp == pytest.approx(0.4)  # where min_steps was reached
    assert new.score == pytest.approx(0.8)
    assert end.end == pytest.approx(1.2) and end.timestamp == pytest.approx(1.2)
    assert end.score == pytest.approx(0.9)  # the peak
    assert end.extra["duration"] == pytest.approx(1.0)
    assert end.extra["last_score"] == pytest.approx(0.3)
    assert det.active == {}


def test_hysteresis_keeps_a_wobbling_score_as_one_event() -> None:
    det = EventDetector(
        LABELS, EventOptions(start_threshold=0.6, end_threshold=0.3, min_steps=1, update_every=0, update_delta=0)
    )
    events = run(det, [0.65, 0.55, 0.62, 0.5, 0.61, 0.58])
    assert [e.kind for e in events] == ["new"]
    assert det.active == {"running": 0.0}


def test_a_single_spike_is_not_an_action() -> None:
    det = EventDetector(LABELS, EventOptions(start_threshold=0.6, min_steps=3))
    assert run(det, [0.9, 0.1, 0.9, 0.9, 0.1, 0.95, 0.2]) == []


def test_updates_by_time_and_by_score_change() -> None:
    det = EventDetector(
        LABELS, EventOptions(start_threshold=0.5, end_threshold=0.3, min_steps=1, update_every=1.0, update_delta=0.2)
    )
    # 0.2 s steps: an update every 1.0 s while the score is steady, and one at
    # once when it jumps by >= 0.2.
    scores = [0.6] * 11 + [0.85, 0.85]
    events = run(det, scores)
    kinds = [(e.kind, round(e.timestamp, 3)) for e in events]
    assert kinds == [("new", 0.0), ("update", 1.0), ("update", 2.0), ("update", 2.2)]
    assert events[-1].score == pytest.approx(0.85)


def test_flush_ends_open_events() -> None:
    det = EventDetector(LABELS, EventOptions(min_steps=1, update_every=0, update_delta=0))
    run(det, [0.9, 0.8])
    events = det.flush(10.0)
    assert [(e.kind, e.label, e.end) for e in events] == [("end", "running", 10.0)]
    assert events[0].extra["last_score"] == pytest.approx(0.8)
    assert det.flush(11.0) == []


def test_two_actions_at_once_with_low_thresholds() -> None:
    det = EventDetector(
        LABELS, EventOptions(start_threshold=0.3, end_threshold=0.2, min_steps=1, update_every=0, update_delta=0)
    )
    p = np.array([0.4, 0.4, 0.1, 0.1], dtype=np.float32)
    events = det.update(0.0, p)
    assert sorted(e.label for e in events) == ["running", "walking"]


def test_allow_and_deny_filter_labels() -> None:
    opts = dict(start_threshold=0.5, min_steps=1, update_every=0, update_delta=0)
    allow = EventDetector(LABELS, EventOptions(allow=["jumping"], **opts))
    assert run(allow, [0.9], label=1) == []
    assert [e.label for e in run(allow, [0.9], label=2)] == ["jumping"]
    deny = EventDetector(LABELS, EventOptions(deny=["running"], **opts))
    assert run(deny, [0.9, 0.9], label=1) == []
    assert [e.label for e in run(deny, [0.9], label=0)] == ["walking"]


def test_unknown_labels_in_filters_are_a_user_error() -> None:
    with pytest.raises(EdgeError, match="unknown label 'swimming'"):
        EventDetector(LABELS, EventOptions(allow=["swimming"]))


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(EdgeError, match="thresholds"):
        EventOptions(start_threshold=0.3, end_threshold=0.5)
