"""The health of the whole service: every camera's monitor and the MQTT sink, judged together.

A service runs one :class:`~.monitor.ServiceMonitor` per camera (one
pipeline each) and at most one MQTT sink. :class:`ServiceHealth` is what
/healthz, /metrics and the systemd status line read: one verdict with every
reason in it, each camera's own state by name, and the broker's state.

How parts add up (see :class:`~.monitor.HealthOptions` for why these are
the defaults):

- The service is stopping: 503 "stopped".
- Every camera unhealthy (the only camera, with one): 503 with the worst
  camera's state ("stalled" before "behind" before "recovering" before
  "starting").
- Some cameras unhealthy: 200 "degraded", naming them; 503 with
  ``all_cameras_required``.
- A configured MQTT sink without a broker for longer than ``mqtt_grace``:
  200 "degraded" saying so; 503 "disconnected" with ``mqtt_required``.

With one camera the JSON is the monitor's own, as it always was (plus
``reasons``, ``mqtt`` and ``camera`` with its name, if it has one); with
several, each camera's figures are under ``cameras``, by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .monitor import Health, HealthOptions, ServiceMonitor

# Worst first: the state the service reports when several cameras are unhealthy.
SEVERITY = ("stopped", "stalled", "behind", "recovering", "starting")


@dataclass
class MqttState:
    """The broker connection as /healthz and /metrics show it.

    ``state``: "connected", "connecting" (never connected since the start)
    or "reconnecting". ``seconds``: how long it has been so (for a sink that
    never connected, since the service started). ``problem``: a reason for
    /healthz once it has been without a broker for longer than the grace
    period, else None.
    """

    state: str
    connected: bool
    seconds: float
    last_error: str | None
    problem: str | None

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state, "connected": self.connected, "for_s": round(self.seconds, 3),
                "last_error": self.last_error, "ok": self.problem is None}


class ServiceHealth:
    """Judges the service from its cameras' monitors and its MQTT sink.

    ``monitors``: one per camera, named by their ``camera`` (names must
    differ; one unnamed monitor is a single-camera service). ``mqtt``: the
    MQTT sink, or None; its ``stats`` are read duck-typed (``connected``,
    ``last_error``, ``since`` - monotonic time of the last change -,
    ``ever_connected``), and ``options.host``/``effective_port`` if it has
    them, to name the broker.
    ``options``: the service-wide settings (MQTT grace, whether all cameras
    are required); default: the first monitor's. ``clock``: default the
    first monitor's, which must be the monotonic one when there is an MQTT
    sink (its ``since`` is on that clock).
    """

    def __init__(
        self,
        monitors: Sequence[ServiceMonitor],
        *,
        mqtt: Any = None,
        options: HealthOptions | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not monitors:
            raise ValueError("ServiceHealth needs at least one monitor")
        names = [m.camera for m in monitors]
        if len(set(names)) != len(names) or (len(names) > 1 and None in names):
            raise ValueError(f"cameras need distinct names when there are several, got {names}")
        self.monitors: dict[str | None, ServiceMonitor] = {m.camera: m for m in monitors}
        self.mqtt = mqtt
        self.options = options or monitors[0].options
        self.clock = clock or monitors[0].clock
        self.started = self.clock()

    @property
    def named(self) -> bool:
        """True when cameras have names: the metrics carry a ``camera`` label."""
        return None not in self.monitors

    @property
    def several(self) -> bool:
        """True with more than one camera: /healthz lists them under ``cameras``."""
        return len(self.monitors) > 1

    def mark_stopping(self) -> None:
        for monitor in self.monitors.values():
            monitor.mark_stopping()

    # ---- MQTT ----------------------------------------------------------------------------
    def mqtt_state(self, now: float | None = None) -> MqttState | None:
        if self.mqtt is None:
            return None
        now = self.clock() if now is None else now
        stats = self.mqtt.stats
        connected = bool(stats.connected)
        ever = bool(stats.ever_connected)
        # Never connected: counted from the service's start at the earliest (the sink may
        # have been made, and its clock started, a while before it was started).
        since = stats.since if ever else max(stats.since, self.started)
        seconds = max(0.0, now - since)
        error = getattr(stats, "last_error", None)
        if connected:
            return MqttState("connected", True, seconds, error, None)
        state = "reconnecting" if ever else "connecting"
        problem = None
        if seconds > self.options.mqtt_grace:
            where = self._broker()
            what = "lost" if ever else "not connected"
            problem = f"MQTT broker{where} {what} for {seconds:.0f} s" + (f" ({error})" if error else "")
        return MqttState(state, False, seconds, error, problem)

    def _broker(self) -> str:
        options = getattr(self.mqtt, "options", None)
        host = getattr(options, "host", None)
        port = getattr(options, "effective_port", None) or getattr(options, "port", None)
        return f" {host}:{port}" if host is not None and port is not None else ""

    # ---- the verdict ---------------------------------------------------------------------
    def health(self, now: float | None = None) -> Health:
        now = self.clock() if now is None else now
        verdicts = {name: m.health(now) for name, m in self.monitors.items()}
        mqtt = self.mqtt_state(now)
        o = self.options

        def says(name: str | None, h: Health) -> str:
            return f"camera {name}: {h.reason}" if self.several else h.reason

        bad = sorted(((n, h) for n, h in verdicts.items() if not h.ok), key=lambda nh: _rank(nh[1].state))
        reasons = [says(n, h) for n, h in bad]
        if mqtt is not None and mqtt.problem is not None:
            reasons.append(mqtt.problem)
        if self.several:
            details: dict[str, Any] = {"cameras": {
                name: {"status": h.state, "ok": h.ok, "reason": h.reason, **h.details}
                for name, h in verdicts.items()
            }}
        else:
            (name, only), = verdicts.items()
            details = dict(only.details) if name is None else {"camera": name, **only.details}
        details["reasons"] = reasons
        if mqtt is not None:
            details["mqtt"] = mqtt.as_json()

        if bad and (len(bad) == len(verdicts) or o.all_cameras_required or bad[0][1].state == "stopped"):
            name, worst = bad[0]
            return Health(False, worst.state, says(name, worst), details)
        if mqtt is not None and mqtt.problem is not None and o.mqtt_required:
            return Health(False, "disconnected", mqtt.problem, details)
        if reasons:  # some cameras, or the broker, but the service goes on
            return Health(True, "degraded", "; ".join(reasons), details)
        if len(verdicts) == 1:
            (name, only), = verdicts.items()
            return Health(True, only.state, says(name, only), details)
        return Health(True, "ok", f"{len(verdicts)} cameras keep up", details)

    def status_line(self, now: float | None = None) -> str:
        """One line for ``systemctl status``: each camera's rates, and a missing broker."""
        now = self.clock() if now is None else now
        if self.several:
            line = "; ".join(f"{name}: {m.status_line(now)}" for name, m in self.monitors.items())
        else:
            line = next(iter(self.monitors.values())).status_line(now)
        mqtt = self.mqtt_state(now)
        if mqtt is not None and mqtt.problem is not None:
            line += "; MQTT broker away"
        return line

    def recent_events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The most recent event records of all cameras, oldest first."""
        if not self.several:
            return next(iter(self.monitors.values())).recent_events(limit)
        items = [r for m in self.monitors.values() for r in m.recent_events(limit)]
        items.sort(key=lambda r: str(r.get("time", "")))
        return items[-limit:] if limit else items


def _rank(state: str) -> int:
    return SEVERITY.index(state) if state in SEVERITY else len(SEVERITY)


def as_service_health(health: ServiceHealth | ServiceMonitor, mqtt: Any = None) -> ServiceHealth:
    """A single-camera service given as its monitor, as a :class:`ServiceHealth`."""
    if isinstance(health, ServiceHealth):
        if mqtt is not None and health.mqtt is None:
            health.mqtt = mqtt
        return health
    return ServiceHealth([health], mqtt=mqtt)
