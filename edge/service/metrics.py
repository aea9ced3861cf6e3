"""Prometheus metrics of the service, from its cameras' monitors, sources, windows and MQTT sink.

Everything lives in a registry of its own (not the client library's global
one), so two services in one process, or a test, never share counters.
Counters that other parts already keep (the source's dropped frames and
reconnects, the long-stream window's rescales or state resets, the MQTT
publisher's queue) are read when Prometheus scrapes, through a collector,
instead of being copied on every frame. The latency histogram is observed
per model step; it is the one figure that needs every sample.

With named cameras every per-camera series carries a ``camera`` label; a
single unnamed camera gives the same series as ever, without labels.
``movinet_edge_healthy`` is the whole service's verdict (what /healthz
answers); ``movinet_edge_camera_healthy`` is each named camera's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from ..frames import Frame
from ..results import BaseSink, Prediction
from .monitor import ServiceMonitor
from .service_health import ServiceHealth, as_service_health

PREFIX = "movinet_edge"
# A0 on a Pi 4 takes 30-80 ms a step, A2 int8 a few hundred: buckets cover 2 ms to 2 s.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0)
EVENT_KINDS = ("new", "update", "end")

_GAUGES = (  # per camera: (name, help, Snapshot attribute)
    ("ready", "1 once the model is loaded and the first frame arrived.", "ready"),
    ("input_fps", "Frames per second the loop reads (over the health window).", "input_fps"),
    ("camera_fps", "Frames per second the source produces, dropped ones included.", "camera_fps"),
    ("model_fps", "Model steps per second (over the health window).", "model_fps"),
    ("model_target_fps", "The frame rate the model was trained for.", "target_fps"),
    ("last_frame_age_seconds", "Seconds since the last frame arrived.", "last_frame_age"),
)
_SOURCE_COUNTERS = (  # per camera: (name, help, SourceStats attribute)
    ("frames_dropped", "Frames the source dropped because the loop was busy.", "dropped"),
    ("failed_reads", "Reads that returned no frame.", "failed_reads"),
    ("reconnects", "Reconnect attempts of a stream source.", "reconnects"),
)


class _LiveCollector(Collector):
    """Reads the live figures at scrape time."""

    def __init__(self, health: ServiceHealth, source: Any, classifier: Any, info: dict[str, str]) -> None:
        self.health = health
        self.source = source  # a single-camera service's source, when its monitor has no source_stats
        self.classifier = classifier  # likewise for its classifier
        self.info = info

    def collect(self) -> Iterator[Metric]:
        health = self.health
        now = health.clock()
        labels = ["camera"] if health.named else []
        info = InfoMetricFamily(f"{PREFIX}_build", "What runs here: version, device id, model, source.")
        info.add_metric([], self.info)
        yield info
        yield GaugeMetricFamily(f"{PREFIX}_healthy", "1 while the service is healthy (what /healthz says).",
                                value=float(health.health(now).ok))

        cameras = [([name] if health.named else [], m, m.snapshot(now)) for name, m in health.monitors.items()]
        if health.named:
            family = GaugeMetricFamily(f"{PREFIX}_camera_healthy", "1 while this camera's frames flow and "
                                       "inference keeps up.", labels=labels)
            for key, monitor, _ in cameras:
                family.add_metric(key, float(monitor.health(now).ok))
            yield family
        for name, doc, attribute in _GAUGES:
            family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
            for key, _, snap in cameras:
                family.add_metric(key, _value(getattr(snap, attribute)))
            yield family

        counters = {
            "frames": ("Frames the loop read.", lambda m, s: s.frames),
            "steps": ("Model steps (frames fed to the model).", lambda m, s: s.steps),
            **{name: (doc, lambda m, s, a=attr: getattr(self._source_stats(m), a, 0))
               for name, doc, attr in _SOURCE_COUNTERS},
            "window_rescales": ("Times the long-stream window (rescale policy) halved the pooled history.",
                                lambda m, s: self._window_counts(m)[0]),
            "state_resets": ("Times the model's states were reset (the dual window policy resets one of "
                             "its two state sets each half window).", lambda m, s: self._window_counts(m)[1]),
        }
        for name, (doc, read) in counters.items():
            family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
            for key, monitor, snap in cameras:
                family.add_metric(key, float(read(monitor, snap)))
            yield family
        events = CounterMetricFamily(f"{PREFIX}_events", "Action events, by kind.", labels=[*labels, "kind"])
        for key, _, snap in cameras:
            for kind in EVENT_KINDS:
                events.add_metric([*key, kind], snap.events.get(kind, 0))
        yield events
        yield from self._mqtt(now)

    def _mqtt(self, now: float) -> Iterator[Metric]:
        sink = self.health.mqtt
        state = self.health.mqtt_state(now)
        if sink is None or state is None:
            return
        m = sink.stats
        yield _gauge("mqtt_connected", "1 while connected to the MQTT broker.", state.connected)
        yield _gauge("mqtt_disconnected_seconds", "Seconds without a broker (since the start if it never "
                     "connected); 0 while connected.", 0.0 if state.connected else state.seconds)
        yield _gauge("mqtt_queued_messages", "Messages waiting for the broker (queued or unacknowledged).",
                     sink.queued)
        yield _counter("mqtt_published", "Messages the broker acknowledged (QoS 0: sent).", m.acked)
        yield _counter("mqtt_dropped", "Messages dropped because the queue was full.", m.dropped)
        yield _counter("mqtt_connects", "Successful connections to the broker.", m.connects)

    def _source_stats(self, monitor: ServiceMonitor) -> Any:
        if monitor.source_stats is not None:
            return monitor.source_stats
        return getattr(self.source, "stats", None)

    def _window_counts(self, monitor: ServiceMonitor) -> tuple[int, int]:
        """(rescales, state resets) of the camera's long-stream window: its ``resets`` counts
        rescales under the rescale policy and state resets under dual."""
        classifier = monitor.classifier if monitor.classifier is not None else self.classifier
        resets = int(getattr(classifier, "resets", 0))
        policy = getattr(classifier, "policy", None)
        if getattr(policy, "value", policy) == "rescale":
            return resets, 0
        return 0, resets


def _value(value: float | bool | None) -> float:
    return float("nan") if value is None else float(value)


def _gauge(name: str, doc: str, value: float | bool | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=_value(value))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, value=float(value))


class _LatencySink(BaseSink):
    """Observes one camera's inference latency (a sink in that camera's pipeline)."""

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        self.histogram.observe(prediction.latency_ms / 1000.0)


class ServiceMetrics(BaseSink):
    """The service's registry. Each camera's pipeline gets :meth:`sink` (its latency histogram);
    with one camera this object is that sink itself.

    ``health``: the :class:`ServiceHealth` (or, for one camera, its monitor).
    ``source``, ``classifier``, ``mqtt``: for a single camera given as its
    monitor, where the monitor does not hold them (``source_stats``,
    ``classifier``) - with several cameras each monitor holds its own, and
    the MQTT sink is the health's.
    """

    def __init__(
        self,
        health: ServiceHealth | ServiceMonitor,
        *,
        source: Any = None,
        classifier: Any = None,
        mqtt: Any = None,
        info: dict[str, str] | None = None,
        process: bool = True,
    ) -> None:
        self.health = as_service_health(health, mqtt)
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            f"{PREFIX}_inference_latency_seconds",
            "Time per model step: input encoding, inference and state carry (resizing too, unless done ahead).",
            labelnames=["camera"] if self.health.named else [],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._sinks = {name: self.sink(name) for name in self.health.monitors}
        self.registry.register(_LiveCollector(self.health, source, classifier, dict(info or {})))
        if process:
            # Memory and CPU of the process: what shows a leak after weeks.
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    def sink(self, camera: str | None = None) -> BaseSink:
        """The sink that observes ``camera``'s inference latency (None: the only, unnamed camera)."""
        if camera not in self.health.monitors:
            raise KeyError(f"no camera {camera!r}; the cameras are {list(self.health.monitors)}")
        return _LatencySink(self.latency.labels(camera=camera) if self.health.named else self.latency)

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        if self.health.several:
            raise RuntimeError("with several cameras, add metrics.sink(camera) to each camera's pipeline")
        next(iter(self._sinks.values())).on_prediction(prediction, frame)

