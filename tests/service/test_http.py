"""The HTTP endpoints on a real server (127.0.0.1, a free port), fed by a real monitor."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from service.http_support import Clock, Feeder, Source, get, samples

from movinet_edge.errors import EdgeError
from movinet_edge.frames import Frame
from movinet_edge.results import Event, Prediction
from movinet_edge.service.health import HealthServer
from movinet_edge.service.metrics import ServiceMetrics
from movinet_edge.service.monitor import EventStamper, HealthOptions, ServiceMonitor, WallClock


class Windowed:
    """Stands for a long-stream window that does not say its policy: the metrics read its ``resets``
    as state resets (test_window_metrics.py has the real windows)."""

    resets = 3


@pytest.fixture
def served():
    clock, source = Clock(), Source()
    monitor = ServiceMonitor(
        5.0, HealthOptions(frame_timeout=2.0), stamper=EventStamper("dev", WallClock(), "s"),
        source_stats=source.stats, recent_events=3, clock=clock,
    )  # fmt: skip
    metrics = ServiceMetrics(monitor, source=source, classifier=Windowed(), info={"device_id": "dev"})
    with HealthServer(monitor, metrics.registry, "127.0.0.1", 0) as server:
        yield server, monitor, metrics, clock, source


def feed(monitor: ServiceMonitor, metrics: ServiceMetrics, clock: Clock, source: Source, seconds: float) -> None:
    image = np.zeros((2, 2, 3), np.uint8)
    for i in range(int(seconds * 10)):
        clock.now += 0.1
        source.stats.frames += 1
        frame = Frame(image, clock.now, i)
        monitor.on_frame(frame)
        if i % 2 == 0:
            prediction = Prediction(clock.now, i, i, np.ones(2), [("juggling", 0.7)], 25.0)
            monitor.on_prediction(prediction, frame)
            metrics.on_prediction(prediction, frame)


def test_healthz_is_503_until_frames_flow_then_200(served) -> None:
    server, monitor, metrics, clock, source = served
    status, content_type, body = get(server.url + "/healthz")
    assert status == 503 and content_type == "application/json"
    assert json.loads(body)["status"] == "starting"
    feed(monitor, metrics, clock, source, seconds=3)
    status, _, body = get(server.url + "/healthz")
    assert status == 200, body
    health = json.loads(body)
    assert health["ok"] and health["top1"] == {"label": "juggling", "score": 0.7}
    clock.now += 5
    status, _, body = get(server.url + "/healthz")
    assert status == 503 and json.loads(body)["status"] == "stalled"


def test_metrics_in_prometheus_format(served) -> None:
    server, monitor, metrics, clock, source = served
    feed(monitor, metrics, clock, source, seconds=2)
    monitor.on_event(Event("new", "juggling", 0.7, start=50.0, timestamp=50.5))
    status, content_type, text = get(server.url + "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    m = samples(text)
    assert m["movinet_edge_inference_latency_seconds_count"] == 10
    assert m['movinet_edge_inference_latency_seconds_bucket{le="0.02"}'] == 0
    assert m['movinet_edge_inference_latency_seconds_bucket{le="0.03"}'] == 10
    assert m["movinet_edge_frames_total"] == 20 and m["movinet_edge_steps_total"] == 10
    assert m["movinet_edge_frames_dropped_total"] == 7 and m["movinet_edge_reconnects_total"] == 2
    assert m["movinet_edge_state_resets_total"] == 3
    assert m['movinet_edge_events_total{kind="new"}'] == 1 and m['movinet_edge_events_total{kind="end"}'] == 0
    assert abs(m["movinet_edge_model_fps"] - 5.0) < 0.5 and m["movinet_edge_model_target_fps"] == 5
    assert m['movinet_edge_build_info{device_id="dev"}'] == 1
    assert "process_resident_memory_bytes" in m
    status, content_type, text = get(server.url + "/metrics", accept="application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text") and text.rstrip().endswith("# EOF")


def test_events_endpoint_keeps_the_most_recent(served) -> None:
    server, monitor, *_ = served
    for i in range(5):
        monitor.on_event(Event("update", "juggling", 0.5 + i / 10, start=1.0, timestamp=2.0 + i))
    status, _, body = get(server.url + "/events")
    events = json.loads(body)["events"]
    assert status == 200 and [e["seq"] for e in events] == [3, 4, 5]  # recent_events=3, newest last
    _, _, body = get(server.url + "/events?limit=1")
    assert [e["seq"] for e in json.loads(body)["events"]] == [5]
    assert get(server.url + "/events?limit=x")[0] == 400
    status, _, body = get(server.url + "/nope")
    assert status == 404 and "/healthz" in json.loads(body)["error"]


def test_healthz_is_not_ok_before_rates_are_known(served) -> None:
    """The first second after the first frame: frames flow, but whether inference keeps up is unknown."""
    server, monitor, metrics, clock, source = served
    feeder = Feeder(monitor, clock, source=source)
    feeder.run(0.5)
    status, _, body = get(server.url + "/healthz")
    health = json.loads(body)
    assert status == 503 and health["status"] == "starting" and "measuring rates" in health["reason"], body
    feeder.run(1.0)
    assert get(server.url + "/healthz")[0] == 200


def test_healthz_is_200_within_2_s_of_frames_coming_back(served) -> None:
    """After an outage the rate window must not span it: a probe would restart a healthy service."""
    server, monitor, metrics, clock, source = served
    feeder = Feeder(monitor, clock, source=source)  # 10 fps, 5 steps/s: what the 5 fps model can do
    feeder.run(12)
    assert get(server.url + "/healthz")[0] == 200
    clock.now += 8  # the camera is gone for 8 s
    status, _, body = get(server.url + "/healthz")
    assert status == 503 and json.loads(body)["status"] == "stalled"
    answers = []
    for tick in range(1, 101):  # frames again; /healthz every 0.1 s for 10 s
        feeder.run(0.1)
        status, _, body = get(server.url + "/healthz")
        answers.append((round(tick * 0.1, 1), status, json.loads(body)["status"]))
    first_ok = next((t for t, status, _ in answers if status == 200), None)
    assert first_ok is not None and first_ok <= 2.0, answers[:30]
    assert all(status == 200 for t, status, _ in answers if t >= first_ok), answers  # and it stays so
    assert {state for t, _, state in answers if t < first_ok} <= {"recovering"}, answers


def test_a_pause_shorter_than_the_timeout_is_not_called_behind(served) -> None:
    server, monitor, metrics, clock, source = served
    monitor.options.frame_timeout = 5.0
    feeder = Feeder(monitor, clock, source=source)
    feeder.run(10)
    clock.now += 4.0  # no frame for 4 s, under the timeout: the rates are what they were, not diluted
    status, _, body = get(server.url + "/healthz")
    health = json.loads(body)
    assert status == 200 and health["last_frame_age_s"] == 4.0 and abs(health["model_fps"] - 5.0) < 0.3, body


def test_a_port_in_use_is_a_clear_error(served) -> None:
    server, monitor, metrics, *_ = served
    with pytest.raises(EdgeError, match=rf"cannot listen on 127.0.0.1:{server.port} for HTTP"):
        HealthServer(monitor, metrics.registry, "127.0.0.1", server.port)


def test_ipv6_loopback(served) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    _, monitor, metrics, *_ = served
    try:
        server = HealthServer(monitor, metrics.registry, "::1", 0)
    except EdgeError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with server:
        assert server.url.startswith("http://[::1]:")
        assert get(server.url + "/healthz")[0] == 503
