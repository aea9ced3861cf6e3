"""What the HTTP tests share: a clock the test moves, a source's counters, a camera that feeds a
monitor on that clock, and a client for the real server (urllib, a real socket)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from movinet_edge.frames import Frame
from movinet_edge.results import Prediction
from movinet_edge.service.monitor import ServiceMonitor
from movinet_edge.sources import SourceStats


class Clock:
    """Monotonic seconds that move when the test says (start at ``time.monotonic()`` to be on the
    clock of parts that keep their own, such as the MQTT sink's ``since``)."""

    def __init__(self, now: float = 50.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Source:
    name = "test"

    def __init__(self) -> None:
        self.stats = SourceStats(frames=0, dropped=7, failed_reads=1, reconnects=2)


class Feeder:
    """A camera at ``fps`` whose loop steps the model on every ``step_every``-th frame, on the test's
    clock; ``sinks`` (the metrics' latency sink) see the predictions too."""

    def __init__(self, monitor: ServiceMonitor, clock: Clock, fps: float = 10.0, step_every: int = 2,
                 source: Source | None = None, sinks: Sequence[Any] = ()) -> None:
        self.monitor, self.clock, self.fps, self.step_every = monitor, clock, fps, step_every
        self.source, self.sinks = source, list(sinks)
        self.index = 0

    def run(self, seconds: float) -> None:
        image = np.zeros((2, 2, 3), np.uint8)
        for _ in range(round(seconds * self.fps)):
            self.clock.now += 1.0 / self.fps
            if self.source is not None:
                self.source.stats.frames += 1
            frame = Frame(image, self.clock.now, self.index)
            self.monitor.on_frame(frame)
            if self.index % self.step_every == 0:
                prediction = Prediction(self.clock.now, self.index, self.index, np.ones(2), [("juggling", 0.7)], 25.0)
                self.monitor.on_prediction(prediction, frame)
                for sink in self.sinks:
                    sink.on_prediction(prediction, frame)
            self.index += 1


def get(url: str, accept: str | None = None, timeout: float = 5.0) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def samples(text: str) -> dict[str, float]:
    """Prometheus text as {'name{label="v",...}': value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out
