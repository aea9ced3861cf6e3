"""What the service knows about itself while it runs: rates, health, recent events.

:class:`ServiceMonitor` is a pipeline sink, one per camera. It sees every
frame, prediction and event and keeps what an operator asks about - is it
alive, does inference keep up, what happened lately - in bounded memory,
because a device runs for months. The HTTP endpoints, the Prometheus
collector and the systemd status line read it (through
:class:`~.service_health.ServiceHealth`, which adds up the cameras and the
MQTT sink); it never blocks the frame loop (a short lock, no I/O).

Rates are measured over ``window`` seconds, but never across an outage: when
frames come back after a pause of several frame intervals the rates start
over, so a recovered camera is judged on the present within a second or
two, not called "behind" until the window has rolled past the outage. Until
a rate is known (the first second, or the first after an outage) the camera
is not "ok": a probe is not told the service keeps up before anyone knows.

It also turns an :class:`~movinet_edge.results.Event` into the record a fleet
needs (:class:`EventStamper`): the device id, wall-clock times (source
timestamps are a monotonic clock or a position in a file), an id shared by an
action's ``new``/``update``/``end`` and a per-run sequence number, so a
consumer of an at-least-once MQTT stream can drop duplicates and spot gaps.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..frames import Frame
from ..options import at_least, between, option, positive
from ..results import BaseSink, Event, Prediction
from ..sinks import event_record

# Rate meters keep one mark per this many seconds: bounded memory at any frame rate.
_MARK_EVERY = 0.25
# A pause between frames longer than this many frame intervals (and at least
# _OUTAGE_MIN seconds) is an outage: the rates start over after it (see on_frame).
_OUTAGE_INTERVALS = 4.0
_OUTAGE_MIN = 1.0


class RateMeter:
    """Events per second over a sliding window, from a running count.

    Marks (time, count) are kept at most every 0.25 s, so memory is bounded by
    ``window / 0.25`` whatever the rate. :meth:`rate` is None until the
    window holds ``min_span`` seconds: a rate over 0.1 s means nothing.
    """

    def __init__(self, window: float = 10.0, min_span: float = 1.0) -> None:
        self.window = window
        self.min_span = min_span
        self._marks: deque[tuple[float, int]] = deque()

    def mark(self, now: float, count: int) -> None:
        marks = self._marks
        if not marks or now - marks[-1][0] >= _MARK_EVERY:
            marks.append((now, count))
        # Keep one mark at or beyond the window edge so the span covers the window.
        while len(marks) > 2 and now - marks[1][0] >= self.window:
            marks.popleft()

    def rate(self, now: float, count: int) -> float | None:
        if not self._marks:
            return None
        t0, c0 = self._marks[0]
        span = now - t0
        if span < self.min_span:
            return None
        return (count - c0) / span

    def reset(self) -> None:
        self._marks.clear()


@dataclass
class HealthOptions:
    """When the service counts as healthy.

    ``frame_timeout``: seconds without a frame before a camera is stalled.
    ``keep_up_ratio``: model steps per second must reach this share of what it
    could do (the model's fps, or the camera's rate if that is lower).
    ``window``: seconds over which rates are measured.

    ``mqtt_grace``: seconds a configured MQTT sink may be without a broker
    (at start, or after losing it) before /healthz names it as a problem.
    ``mqtt_required`` is off by default: the problem shows (status
    "degraded", the reason, the metrics) but /healthz stays 200, because a
    liveness probe that restarts the service cannot bring a broker back, and a
    restart would drop the events queued for it. Turn it on where events that
    do not reach the broker are an outage (a readiness gate, say).

    ``all_cameras_required`` is off by default: with several cameras, one
    stalled camera is named in /healthz (status "degraded", 200) while the
    others keep serving, because restarting the whole service does not bring
    an unplugged camera back and interrupts the ones that work. When every
    camera is unhealthy /healthz is 503 either way.
    """

    frame_timeout: float = field(default=5.0, metadata=option(
        "Seconds without a frame before a camera counts as stalled.", check=positive, cli=False))
    keep_up_ratio: float = field(default=0.8, metadata=option(
        "Share of the possible model steps per second that counts as keeping up.",
        check=between(0.0, 1.0, low_open=True), cli=False))
    window: float = field(default=10.0, metadata=option(
        "Seconds over which rates are measured.", check=positive, cli=False))
    mqtt_grace: float = field(default=30.0, metadata=option(
        "Seconds the MQTT sink may be without a broker before health reports it.", check=at_least(0.0), cli=False))
    mqtt_required: bool = field(default=False, metadata=option(
        "A broker that stays away makes /healthz 503 (default: 200, status degraded).", cli=False))
    all_cameras_required: bool = field(default=False, metadata=option(
        "Any unhealthy camera makes /healthz 503 (default: only when all are).", cli=False))


@dataclass
class Health:
    """A verdict for /healthz: ``ok`` and a one-line reason, plus figures for people."""

    ok: bool
    # One camera: "starting" | "recovering" | "ok" | "stalled" | "behind" | "stopped";
    # the whole service (service_health.py) adds "degraded" and "disconnected".
    state: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


class WallClock:
    """Maps source timestamps to wall-clock time.

    Source timestamps are seconds on the source's own clock (monotonic for a
    camera, the position for a file played as one). The offset to
    ``time.time()`` is taken at every frame, so it follows a looped file and
    clock adjustments.
    """

    def __init__(self) -> None:
        self.offset: float | None = None

    def update(self, source_ts: float, wall: float | None = None) -> None:
        self.offset = (time.time() if wall is None else wall) - source_ts

    def wall(self, source_ts: float) -> float:
        return source_ts + (self.offset if self.offset is not None else time.time() - source_ts)


def iso_utc(seconds: float) -> str:
    """RFC 3339 UTC with milliseconds: what JSON consumers parse without surprises."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventStamper:
    """Events as records for a fleet: device id, wall times, action id, sequence number."""

    def __init__(self, device_id: str, clock: WallClock, session: str | None = None) -> None:
        self.device_id = device_id
        self.clock = clock
        #: Changes with every start of the service: (session, seq) identifies a record.
        self.session = session or uuid.uuid4().hex[:12]
        self.seq = 0
        self._actions: dict[str, tuple[str, str]] = {}  # label -> (id, start time) of the action in progress

    def stamp(self, event: Event) -> dict[str, Any]:
        self.seq += 1
        record = event_record(event)
        clock = self.clock
        if event.kind == "new" or event.label not in self._actions:
            # The start time is fixed once: the clock offset jitters by milliseconds
            # from frame to frame, and an action's records should agree on it.
            self._actions[event.label] = (f"{self.session}-{self.seq}", iso_utc(clock.wall(event.start)))
        action_id, start_time = self._actions[event.label]
        if event.kind == "end":
            self._actions.pop(event.label, None)
        record.update(
            device_id=self.device_id,
            session=self.session,
            seq=self.seq,
            action_id=action_id,
            time=iso_utc(clock.wall(event.timestamp)),
            start_time=start_time,
            end_time=None if event.end is None else iso_utc(clock.wall(event.end)),
        )
        return record


@dataclass
class Snapshot:
    """The monitor's figures at one moment (for metrics and the status line)."""

    ready: bool
    stopping: bool
    frames: int
    steps: int
    events: dict[str, int]
    input_fps: float | None
    camera_fps: float | None
    model_fps: float | None
    target_fps: float
    last_frame_age: float | None
    top1: tuple[str, float] | None
    last_latency_ms: float | None


EventListener = Callable[[dict[str, Any]], None]


class ServiceMonitor(BaseSink):
    """A sink that keeps live figures, judges health and remembers recent events.

    ``source_stats``: the source's counters (frames produced, dropped), read
    live, so the camera's own rate is known even when the loop drops frames.
    ``listeners`` get every stamped event record (the MQTT publisher).
    ``camera``: the stream's name when the service runs several (it labels
    the metrics and event records, and names the camera in /healthz).
    ``classifier``: the stream's classifier; the metrics read its long-stream
    window's counters (``policy``, ``resets``).
    ``clock``: seconds, monotonic; only tests pass another.
    """

    def __init__(
        self,
        target_fps: float,
        options: HealthOptions | None = None,
        *,
        stamper: EventStamper,
        source_stats: Any = None,
        recent_events: int = 100,
        listeners: Sequence[EventListener] = (),
        camera: str | None = None,
        classifier: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera = camera
        self.classifier = classifier
        self.target_fps = float(target_fps)
        self.options = options or HealthOptions()
        self.stamper = stamper
        self.source_stats = source_stats
        self.listeners = list(listeners)
        self.clock = clock
        self._lock = threading.Lock()
        min_span = max(1.0, 2.0 / self.target_fps)
        self._frame_rate = RateMeter(self.options.window, min_span)
        self._step_rate = RateMeter(self.options.window, min_span)
        self._camera_rate = RateMeter(self.options.window, min_span)
        self.frames = 0
        self.steps = 0
        self.events: Counter[str] = Counter()
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None
        self.last_active: float | None = None  # the last frame or model step
        self._camera_seen: int | None = None  # the source's count at the last frame
        self.last_outage: float | None = None  # seconds without frames before the last recovery
        self.top1: tuple[str, float] | None = None
        self.last_latency_ms: float | None = None
        self.stopping = False
        self._recent: deque[dict[str, Any]] = deque(maxlen=recent_events)

    # ---- the sink side (pipeline thread) ---------------------------------------------
    def _camera_count(self) -> int | None:
        stats = self.source_stats
        if stats is None:
            return None
        return int(stats.frames) + int(stats.dropped)

    def on_frame(self, frame: Frame, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        self.stamper.clock.update(frame.timestamp)
        camera = self._camera_count()
        with self._lock:
            last = self.last_frame_at
            if last is None:
                self.first_frame_at = now
            elif now - last > self._outage_gap(last):
                # The rate windows would span the outage for a whole window after it and
                # call a healthy loop "behind": the rates start over with this frame.
                for meter in (self._frame_rate, self._step_rate, self._camera_rate):
                    meter.reset()
                self.last_outage = now - last  # seconds without frames before this one
            self.frames += 1
            self.last_frame_at = self.last_active = now
            self._frame_rate.mark(now, self.frames)
            self._step_rate.mark(now, self.steps)
            if camera is not None:
                self._camera_rate.mark(now, camera)
                self._camera_seen = camera

    def on_prediction(self, prediction: Prediction, frame: Frame, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        with self._lock:
            self.steps += 1
            self.last_active = max(now, self.last_active or now)
            self._step_rate.mark(now, self.steps)
            self.top1 = prediction.top_k[0] if prediction.top_k else None
            self.last_latency_ms = prediction.latency_ms

    def _outage_gap(self, last: float) -> float:
        """How long a pause between frames is an outage: a few of the usual frame intervals."""
        fps = self._frame_rate.rate(last, self.frames)
        return max(_OUTAGE_MIN, _OUTAGE_INTERVALS / fps) if fps else _OUTAGE_MIN

    def on_event(self, event: Event) -> None:
        record = self.stamper.stamp(event)
        if self.camera is not None:
            record["camera"] = self.camera
        with self._lock:
            self.events[event.kind] += 1
            self._recent.append(record)
        for listener in self.listeners:
            listener(record)

    def mark_stopping(self) -> None:
        """The service is shutting down: /healthz says so from now on."""
        self.stopping = True

    # ---- the reader side (any thread) ------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.first_frame_at is not None

    def recent_events(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._recent)
        return items[-limit:] if limit else items

    def snapshot(self, now: float | None = None) -> Snapshot:
        """The figures now. Rates are measured up to the last frame or step: a pause shows as
        ``last_frame_age`` (and "stalled" once it is long), not as a rate that sinks while
        nothing arrives, which would read as inference falling behind."""
        now = self.clock() if now is None else now
        with self._lock:
            end = self.last_active
            input_fps = model_fps = camera_fps = None
            if end is not None:
                input_fps = self._frame_rate.rate(end, self.frames)
                model_fps = self._step_rate.rate(end, self.steps)
                if self._camera_seen is not None:
                    camera_fps = self._camera_rate.rate(end, self._camera_seen)
            return Snapshot(
                ready=self.first_frame_at is not None,
                stopping=self.stopping,
                frames=self.frames,
                steps=self.steps,
                events=dict(self.events),
                input_fps=input_fps,
                camera_fps=camera_fps if camera_fps is not None else input_fps,
                model_fps=model_fps,
                target_fps=self.target_fps,
                last_frame_age=None if self.last_frame_at is None else now - self.last_frame_at,
                top1=self.top1,
                last_latency_ms=self.last_latency_ms,
            )

    def health(self, now: float | None = None) -> Health:
        """Healthy while frames arrive and the model keeps up with the rate it can get."""
        snap = self.snapshot(now)
        o = self.options
        details: dict[str, Any] = {
            "frames": snap.frames,
            "steps": snap.steps,
            "input_fps": _round(snap.input_fps),
            "camera_fps": _round(snap.camera_fps),
            "model_fps": _round(snap.model_fps),
            "target_fps": snap.target_fps,
            "last_frame_age_s": _round(snap.last_frame_age),
            "top1": None if snap.top1 is None else {"label": snap.top1[0], "score": round(snap.top1[1], 6)},
        }
        if snap.stopping:
            return Health(False, "stopped", "the service is stopping", details)
        if not snap.ready or snap.last_frame_age is None:
            return Health(False, "starting", "waiting for the first frame", details)
        if snap.last_frame_age > o.frame_timeout:
            return Health(False, "stalled", f"no frame for {snap.last_frame_age:.1f} s", details)
        if snap.model_fps is None:
            # Not "ok" yet: whether inference keeps up is not known for a second or so,
            # and a probe that sees 200 now and "behind" a second later was told wrong.
            if self.last_outage is None:
                return Health(False, "starting", "frames arrive; measuring rates", details)
            return Health(False, "recovering",
                          f"frames are back after {self.last_outage:.1f} s without; measuring rates", details)
        possible = snap.target_fps if snap.camera_fps is None else min(snap.target_fps, snap.camera_fps)
        needed = o.keep_up_ratio * possible
        details["needed_fps"] = _round(needed)
        if snap.model_fps < needed:
            return Health(
                False,
                "behind",
                f"inference does not keep up: {snap.model_fps:.2f} steps/s, {needed:.2f} needed",
                details,
            )
        return Health(True, "ok", f"{snap.model_fps:.2f} steps/s of {possible:.2f} possible", details)

    def status_line(self, now: float | None = None) -> str:
        """One line for ``systemctl status``: rates and what the model sees now."""
        snap = self.snapshot(now)
        if not snap.ready:
            return "waiting for the first frame"
        parts = []
        if snap.input_fps is not None:
            parts.append(f"{snap.input_fps:.1f} fps in")
        if snap.model_fps is not None:
            parts.append(f"{snap.model_fps:.1f} model fps")
        if snap.top1 is not None:
            parts.append(f"top-1 {snap.top1[0]} {snap.top1[1]:.2f}")
        return ", ".join(parts) or "running"


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
