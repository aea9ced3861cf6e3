"""Prometheus metrics of the service, from the monitor, the source and the classifier.

Everything lives in a registry of its own (not the client library's global
one), so two services in one process, or a test, never share counters.
Counters that other parts already keep (the source's dropped frames and
reconnects, the long-stream window's state resets, the MQTT publisher's
queue) are read when Prometheus scrapes, through a collector, instead of being
copied on every frame. The latency histogram is observed per model step; it is
the one figure that needs every sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from ..frames import Frame
from ..results import BaseSink, Prediction
from .monitor import ServiceMonitor

PREFIX = "movinet_edge"
# A0 on a Pi 4 takes 30-80 ms a step, A2 int8 a few hundred: buckets cover 2 ms to 2 s.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0)
EVENT_KINDS = ("new", "update", "end")


class _LiveCollector(Collector):
    """Reads the live counters at scrape time."""

    def __init__(
        self,
        monitor: ServiceMonitor,
        source: Any,
        classifier: Any,
        mqtt: Any,
        info: dict[str, str],
        health: Callable[[], bool],
    ) -> None:
        self.monitor = monitor
        self.source = source
        self.classifier = classifier
        self.mqtt = mqtt
        self.info = info
        self.health = health

    def collect(self) -> Iterator[Metric]:
        snap = self.monitor.snapshot()
        info = InfoMetricFamily(f"{PREFIX}_build", "What runs here: version, device id, model, source.")
        info.add_metric([], self.info)
        yield info

        yield _gauge("healthy", "1 while frames flow and inference keeps up (what /healthz says).", self.health())
        yield _gauge("ready", "1 once the model is loaded and the first frame arrived.", snap.ready)
        yield _gauge("input_fps", "Frames per second the loop reads (over the health window).", snap.input_fps)
        yield _gauge("camera_fps", "Frames per second the source produces, dropped ones included.", snap.camera_fps)
        yield _gauge("model_fps", "Model steps per second (over the health window).", snap.model_fps)
        yield _gauge("model_target_fps", "The frame rate the model was trained for.", snap.target_fps)
        yield _gauge("last_frame_age_seconds", "Seconds since the last frame arrived.", snap.last_frame_age)

        yield _counter("frames", "Frames the loop read.", snap.frames)
        yield _counter("steps", "Model steps (frames fed to the model).", snap.steps)
        stats = getattr(self.source, "stats", None)
        yield _counter("frames_dropped", "Frames the source dropped because the loop was busy.",
                       getattr(stats, "dropped", 0))
        yield _counter("failed_reads", "Reads that returned no frame.", getattr(stats, "failed_reads", 0))
        yield _counter("reconnects", "Reconnect attempts of a stream source.", getattr(stats, "reconnects", 0))
        yield _counter("state_resets", "Times the long-stream window reset the model's states.",
                       getattr(self.classifier, "resets", 0))
        events = CounterMetricFamily(f"{PREFIX}_events", "Action events, by kind.", labels=["kind"])
        for kind in EVENT_KINDS:
            events.add_metric([kind], snap.events.get(kind, 0))
        yield events

        if self.mqtt is not None:
            m = self.mqtt.stats
            yield _gauge("mqtt_connected", "1 while connected to the MQTT broker.", m.connected)
            yield _gauge("mqtt_queued_messages", "Messages waiting for the broker (queued or unacknowledged).",
                         self.mqtt.queued)
            yield _counter("mqtt_published", "Messages the broker acknowledged (QoS 0: sent).", m.acked)
            yield _counter("mqtt_dropped", "Messages dropped because the queue was full.", m.dropped)
            yield _counter("mqtt_connects", "Successful connections to the broker.", m.connects)


def _gauge(name: str, doc: str, value: float | bool | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=float("nan") if value is None else float(value))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, value=float(value))


class ServiceMetrics(BaseSink):
    """The service's registry; as a sink it observes each step's inference latency."""

    def __init__(
        self,
        monitor: ServiceMonitor,
        *,
        source: Any = None,
        classifier: Any = None,
        mqtt: Any = None,
        info: dict[str, str] | None = None,
        process: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            f"{PREFIX}_inference_latency_seconds",
            "Time per model step: input encoding, inference and state carry (resizing too, unless done ahead).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(
            _LiveCollector(monitor, source, classifier, mqtt, dict(info or {}), lambda: monitor.health().ok)
        )
        if process:
            # Memory and CPU of the process: what shows a leak after weeks.
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        self.latency.observe(prediction.latency_ms / 1000.0)
