"""The long-stream window's counter is named for what it counts: rescales under ``rescale`` (which
never resets the states, as the README says), state resets under ``dual``. A real exported model in
a real window, scraped over real HTTP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from service.http_support import Clock, get, samples

from movinet_edge.model import StreamingClassifier
from movinet_edge.service.health import HealthServer
from movinet_edge.service.metrics import ServiceMetrics
from movinet_edge.service.monitor import EventStamper, ServiceMonitor, WallClock
from movinet_edge.service.service_health import ServiceHealth
from movinet_edge.windowing import WindowedClassifier


@pytest.mark.parametrize(("policy", "counted", "zero"), [
    ("rescale", "movinet_edge_window_rescales_total", "movinet_edge_state_resets_total"),
    ("dual", "movinet_edge_state_resets_total", "movinet_edge_window_rescales_total"),
])  # fmt: skip
def test_window_counter_is_named_for_what_it_counts(float_model_dir: Path, policy: str, counted: str,
                                                    zero: str) -> None:
    window = WindowedClassifier(StreamingClassifier.open(float_model_dir, num_threads=1), window_seconds=1.0,
                                policy=policy)  # fmt: skip
    assert window.policy.value == policy
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    for _ in range(4 * window.window_frames):
        window.step(frame)
    assert window.resets >= 3
    monitor = ServiceMonitor(window.fps, stamper=EventStamper("dev", WallClock()), clock=Clock())
    metrics = ServiceMetrics(monitor, classifier=window, process=False)  # a camera's monitor may hold it too
    with HealthServer(monitor, metrics.registry, "127.0.0.1", 0) as server:
        m = samples(get(server.url + "/metrics")[2])
    assert m[counted] == window.resets
    assert m[zero] == 0

    # With several cameras each monitor holds its camera's window; the counter gets the camera label.
    stamper = EventStamper("dev", WallClock())
    monitors = [ServiceMonitor(window.fps, stamper=stamper, camera=name, classifier=window if name == "a" else None,
                               clock=Clock()) for name in ("a", "b")]  # fmt: skip
    metrics = ServiceMetrics(ServiceHealth(monitors), process=False)
    with HealthServer(metrics.health, metrics.registry, "127.0.0.1", 0) as server:
        m = samples(get(server.url + "/metrics")[2])
    assert m[f'{counted}{{camera="a"}}'] == window.resets
    assert m[f'{counted}{{camera="b"}}'] == 0
