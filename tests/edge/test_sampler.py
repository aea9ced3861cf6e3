"""FrameSampler: the model gets its trained frame rate whatever the source delivers."""

from __future__ import annotations

import random

import pytest
from movinet_edge.sampler import FrameSampler


def accepted_indices(timestamps: list[float], fps: float) -> list[int]:
    sampler = FrameSampler(fps)
    return [i for i, ts in enumerate(timestamps) if sampler.accept(ts)]


def test_30_to_5_fps_takes_exactly_every_6th_frame_over_10_s() -> None:
    timestamps = [i / 30 for i in range(300)]
    assert accepted_indices(timestamps, 5.0) == list(range(0, 300, 6))


def test_same_rate_keeps_every_frame() -> None:
    timestamps = [i * 0.2 for i in range(50)]
    assert accepted_indices(timestamps, 5.0) == list(range(50))


def test_file_timestamps_in_milliseconds_rounding() -> None:
    # What OpenCV reports for rope_pushdown.mp4: 600.0000000000001 ms and friends.
    timestamps = [round(i * 200.0, 10) / 1000 + (1e-13 if i % 3 == 0 else -1e-13) for i in range(50)]
    assert accepted_indices(timestamps, 5.0) == list(range(50))


def test_29_97_fps_gives_5_fps_with_5_or_6_frame_spacing() -> None:
    timestamps = [i * 1001 / 30000 for i in range(round(29.97 * 60))]  # one minute
    kept = accepted_indices(timestamps, 5.0)
    assert len(kept) == 300  # one per 0.2 s slot over 60 s
    spacing = {b - a for a, b in zip(kept, kept[1:])}
    assert spacing <= {5, 6}
    # Every accepted frame is the one nearest its slot: never more than half a
    # source interval (16.7 ms) from k * 0.2 s.
    for k, i in enumerate(kept):
        assert abs(timestamps[i] - 0.2 * k) <= 0.5 * 1001 / 30000 + 1e-9


def test_12_fps_to_5_fps_keeps_the_rate_without_bursts() -> None:
    timestamps = [i / 12 for i in range(12 * 20)]  # 20 s
    kept = accepted_indices(timestamps, 5.0)
    assert len(kept) == 100
    gaps = [timestamps[b] - timestamps[a] for a, b in zip(kept, kept[1:])]
    assert min(gaps) >= 2 / 12 - 1e-9 and max(gaps) <= 3 / 12 + 1e-9


@pytest.mark.parametrize("source_fps", [5.0, 15.0, 30.0])
def test_jitter_of_20_ms_keeps_the_rate_within_1_percent(source_fps: float) -> None:
    rng = random.Random(1234)
    seconds = 120
    n = int(source_fps * seconds)
    timestamps = [i / source_fps + rng.uniform(-0.02, 0.02) for i in range(n)]
    kept = accepted_indices(timestamps, 5.0)
    span = timestamps[-1] - timestamps[0]
    rate = len(kept) / span
    assert rate == pytest.approx(5.0, rel=0.01)
    if source_fps == 5.0:
        # A source already at the model's rate loses nothing to its jitter.
        assert len(kept) == n


def test_jittered_arrival_times_sorted_like_a_monotonic_clock() -> None:
    rng = random.Random(7)
    timestamps = sorted(i / 30 + rng.uniform(-0.02, 0.02) for i in range(30 * 60))
    kept = accepted_indices(timestamps, 5.0)
    assert len(kept) / (timestamps[-1] - timestamps[0]) == pytest.approx(5.0, rel=0.01)


def test_a_gap_reanchors_instead_of_bursting() -> None:
    # 30 fps for 2 s, nothing for 3.05 s, then 30 fps again.
    before = [i / 30 for i in range(60)]
    after = [5.05 + i / 30 for i in range(60)]
    sampler = FrameSampler(5.0)
    kept_before = [ts for ts in before if sampler.accept(ts)]
    kept_after = [ts for ts in after if sampler.accept(ts)]
    assert len(kept_before) == 10
    # The first frame after the gap is taken at once, then the 0.2 s grid resumes
    # from it: no frames 33 ms apart to "catch up" the missed slots.
    assert kept_after[0] == after[0]
    gaps = [b - a for a, b in zip(kept_after, kept_after[1:])]
    assert min(gaps) == pytest.approx(0.2, abs=1e-9)
    assert len(kept_after) == 10
    assert sampler.reanchors == 1


def test_timestamps_going_backwards_restart_the_grid() -> None:
    sampler = FrameSampler(5.0)
    first = [ts for ts in (i / 30 for i in range(30)) if sampler.accept(ts)]
    # The stream restarted its clock at 0.
    second = [ts for ts in (i / 30 for i in range(30)) if sampler.accept(ts)]
    assert len(first) == len(second) == 5
    assert second[0] == 0.0


def test_a_frame_slightly_out_of_order_is_skipped_not_reanchored() -> None:
    sampler = FrameSampler(5.0)
    assert sampler.accept(0.0)
    assert not sampler.accept(0.1)
    assert not sampler.accept(0.09)  # 10 ms backwards: jitter, not a restart
    assert sampler.accept(0.2)
    assert sampler.reanchors == 0


def test_counters_and_reset() -> None:
    sampler = FrameSampler(5.0)
    for i in range(30):
        sampler.accept(i / 30)
    assert (sampler.accepted, sampler.skipped) == (5, 25)
    sampler.reset()
    assert sampler.accept(100.0)  # first frame after a reset always goes in


@pytest.mark.parametrize("fps", [0.0, -5.0])
def test_rejects_a_non_positive_rate(fps: float) -> None:
    with pytest.raises(ValueError):
        FrameSampler(fps)
