"""The monitor's judgement (healthy, stalled, behind), its bounded rate meters, and event
records for a fleet. Time is passed explicitly: the same code runs on the monotonic clock
in the service."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from movinet_edge.frames import Frame
from movinet_edge.results import Event, Prediction
from movinet_edge.service.monitor import EventStamper, HealthOptions, RateMeter, ServiceMonitor, WallClock

IMAGE = np.zeros((4, 4, 3), np.uint8)


@dataclass
class SourceStats:  # what a FrameSource counts (the real class has more fields)
    frames: int = 0
    dropped: int = 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_monitor(target_fps: float = 5.0) -> tuple[ServiceMonitor, Clock, SourceStats]:
    clock, stats = Clock(), SourceStats()
    monitor = ServiceMonitor(
        target_fps,
        HealthOptions(frame_timeout=2.0, keep_up_ratio=0.8, window=5.0),
        stamper=EventStamper("dev", WallClock(), session="s"),
        source_stats=stats,
        clock=clock,
    )
    return monitor, clock, stats


def run(monitor: ServiceMonitor, clock: Clock, stats: SourceStats, seconds: float, camera_fps: float,
        step_every: int) -> None:
    """Frames at ``camera_fps``; every ``step_every``-th reaches the model."""
    for i in range(int(seconds * camera_fps)):
        clock.now += 1.0 / camera_fps
        stats.frames += 1
        frame = Frame(IMAGE, clock.now, stats.frames)
        monitor.on_frame(frame)
        if i % step_every == 0:
            monitor.on_prediction(Prediction(clock.now, stats.frames, 1, np.ones(2), [("a", 0.9)], 12.0), frame)


def test_health_follows_the_frames() -> None:
    monitor, clock, stats = make_monitor()
    health = monitor.health()
    assert (health.ok, health.state) == (False, "starting")
    run(monitor, clock, stats, seconds=0.4, camera_fps=30, step_every=6)
    # Frames flow, but whether inference keeps up is not known yet: not "ok" (the 200 here).
    health = monitor.health()
    assert (health.ok, health.state) == (False, "starting") and "measuring rates" in health.reason
    run(monitor, clock, stats, seconds=4, camera_fps=30, step_every=6)
    health = monitor.health()
    assert (health.ok, health.state) == (True, "ok"), health
    assert abs(health.details["model_fps"] - 5.0) < 0.3 and abs(health.details["camera_fps"] - 30) < 1
    clock.now += 2.5  # the camera stops
    health = monitor.health()
    assert (health.ok, health.state) == (False, "stalled") and "no frame for 2.5 s" in health.reason
    monitor.mark_stopping()
    assert monitor.health().state == "stopped"


def test_inference_that_falls_behind_is_unhealthy() -> None:
    monitor, clock, stats = make_monitor()
    run(monitor, clock, stats, seconds=6, camera_fps=30, step_every=15)  # 2 steps/s for a 5 fps model
    health = monitor.health()
    assert (health.ok, health.state) == (False, "behind"), health
    assert "inference does not keep up" in health.reason


def test_a_slow_camera_is_not_blamed_on_inference() -> None:
    monitor, clock, stats = make_monitor()
    run(monitor, clock, stats, seconds=6, camera_fps=3, step_every=1)  # the model gets all 3 fps there are
    assert monitor.health().ok


def test_rates_start_over_after_an_outage() -> None:
    monitor, clock, stats = make_monitor()
    run(monitor, clock, stats, seconds=6, camera_fps=30, step_every=6)
    clock.now += 3.0  # the camera is gone for 3 s (stalled after 2)
    assert monitor.health().state == "stalled"
    run(monitor, clock, stats, seconds=0.5, camera_fps=30, step_every=6)
    health = monitor.health()
    assert (health.ok, health.state) == (False, "recovering") and "after 3.0 s without" in health.reason, health
    run(monitor, clock, stats, seconds=0.7, camera_fps=30, step_every=6)
    health = monitor.health()  # 1.2 s after: rates of the present only (the 5 s window still spans the outage)
    assert (health.ok, health.state) == (True, "ok") and health.details["model_fps"] >= 4.0, health


def test_a_slow_camera_is_no_outage() -> None:
    """What counts as an outage scales with the frame interval: a 1 fps camera is measured, not reset."""
    monitor, clock, stats = make_monitor()
    run(monitor, clock, stats, seconds=8, camera_fps=1, step_every=1)
    health = monitor.health()
    assert (health.ok, health.state) == (True, "ok") and abs(health.details["camera_fps"] - 1.0) < 0.1, health


def test_frames_the_source_dropped_count_as_camera_rate() -> None:
    monitor, clock, stats = make_monitor()
    # The loop sees 2 fps but the camera made 30: the source dropped the rest while inference ran.
    for _ in range(12):
        clock.now += 0.5
        stats.frames += 1
        stats.dropped += 14
        frame = Frame(IMAGE, clock.now, stats.frames)
        monitor.on_frame(frame)
        monitor.on_prediction(Prediction(clock.now, 0, 1, np.ones(2), [("a", 0.9)], 400.0), frame)
    health = monitor.health()
    assert health.state == "behind" and abs(health.details["camera_fps"] - 30) < 1


def test_rate_meter_memory_is_bounded() -> None:
    meter = RateMeter(window=5.0, min_span=1.0)
    now, count = 0.0, 0
    for _ in range(100_000):  # an hour at ~28 fps
        now += 0.036
        count += 1
        meter.mark(now, count)
    assert len(meter._marks) <= 5.0 / 0.25 + 2
    assert abs(meter.rate(now, count) - 1 / 0.036) < 0.5


def test_event_records_for_a_fleet() -> None:
    clock = WallClock()
    clock.update(source_ts=10.0, wall=1_700_000_010.0)
    stamper = EventStamper("kitchen", clock, session="abc")
    new = stamper.stamp(Event("new", "juggling", 0.8, start=9.5, timestamp=10.0))
    update = stamper.stamp(Event("update", "juggling", 0.9, start=9.5, timestamp=12.0))
    other = stamper.stamp(Event("new", "clapping", 0.6, start=11.0, timestamp=12.0))
    end = stamper.stamp(Event("end", "juggling", 0.9, start=9.5, end=14.0, timestamp=14.0))
    again = stamper.stamp(Event("new", "juggling", 0.7, start=20.0, timestamp=20.0))
    assert [r["seq"] for r in (new, update, other, end, again)] == [1, 2, 3, 4, 5]
    assert new["action_id"] == update["action_id"] == end["action_id"] == "abc-1"
    assert other["action_id"] != new["action_id"] and again["action_id"] == "abc-5"
    assert new["device_id"] == "kitchen" and new["session"] == "abc"
    assert new["start_time"] == "2023-11-14T22:13:29.500Z" and new["end_time"] is None
    assert end["end_time"] == "2023-11-14T22:13:34.000Z" and end["start_time"] == new["start_time"]
    assert end["kind"] == "end" and end["label"] == "juggling" and end["score"] == 0.9
