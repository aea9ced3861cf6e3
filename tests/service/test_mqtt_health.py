"""/healthz and /metrics say when the MQTT sink has no broker: a real mosquitto, a real MQTT sink,
a real HTTP server, and a monitor fed frames in real time (so the cameras themselves are fine)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from service.http_support import get, samples
from service.support import free_port, wait_until

from movinet_edge.frames import Frame
from movinet_edge.results import Prediction
from movinet_edge.service.health import HealthServer
from movinet_edge.service.metrics import ServiceMetrics
from movinet_edge.service.monitor import EventStamper, HealthOptions, ServiceMonitor, WallClock
from movinet_edge.service.service_health import ServiceHealth
from movinet_edge.sinks.mqtt import MqttSink
from movinet_edge.sinks.mqtt_options import MqttOptions

GRACE = 1.0


@pytest.fixture
def camera() -> Iterator[ServiceMonitor]:
    """A monitor fed at 10 fps with 5 steps/s (what its 5 fps model can do), on the real clock."""
    monitor = ServiceMonitor(5.0, HealthOptions(), stamper=EventStamper("dev", WallClock()))
    stop = threading.Event()

    def feed() -> None:
        image, i = np.zeros((2, 2, 3), np.uint8), 0
        while not stop.wait(0.1):
            frame = Frame(image, time.monotonic(), i)
            monitor.on_frame(frame)
            if i % 2 == 0:
                monitor.on_prediction(Prediction(frame.timestamp, i, i, np.ones(2), [("a", 0.9)], 5.0), frame)
            i += 1

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    wait_until(lambda: monitor.health().ok, what="the camera to be healthy")
    yield monitor
    stop.set()
    thread.join()


@pytest.fixture
def sink_to() -> Iterator[Any]:
    made: list[MqttSink] = []

    def make(port: int) -> MqttSink:
        sink = MqttSink(MqttOptions(host="127.0.0.1", port=port, reconnect_max_delay=1.0), device_id="dev")
        made.append(sink)
        return sink.start()

    yield make
    for sink in made:
        sink.close()


def healthz(server: HealthServer) -> tuple[int, dict[str, Any]]:
    status, _, body = get(server.url + "/healthz")
    return status, json.loads(body)


def test_a_broker_that_never_answers_is_reported_after_the_grace_period(camera, sink_to) -> None:
    port = free_port()  # nothing listens there
    sink = sink_to(port)
    health = ServiceHealth([camera], mqtt=sink, options=HealthOptions(mqtt_grace=GRACE))
    required = ServiceHealth([camera], mqtt=sink, options=HealthOptions(mqtt_grace=GRACE, mqtt_required=True))
    metrics = ServiceMetrics(health, process=False)
    with HealthServer(health, metrics.registry, "127.0.0.1", 0) as server, \
            HealthServer(required, metrics.registry, "127.0.0.1", 0) as strict:
        status, answer = healthz(server)
        if answer["mqtt"]["for_s"] < GRACE:  # within the grace period: connecting, not a problem yet
            assert status == 200 and answer["status"] == "ok" and answer["mqtt"]["state"] == "connecting", answer
        wait_until(lambda: healthz(server)[1]["status"] == "degraded", what="MQTT to be reported")
        status, answer = healthz(server)
        assert status == 200 and answer["ok"], answer  # by default the service stays up
        assert answer["reason"].startswith(f"MQTT broker 127.0.0.1:{port} not connected for"), answer["reason"]
        assert answer["reasons"] == [answer["reason"]]
        assert answer["mqtt"]["connected"] is False and answer["mqtt"]["last_error"], answer["mqtt"]
        status, answer = healthz(strict)
        assert status == 503 and answer["status"] == "disconnected", answer  # mqtt_required
        m = samples(get(server.url + "/metrics")[2])
        assert m["movinet_edge_mqtt_connected"] == 0 and m["movinet_edge_mqtt_disconnected_seconds"] > GRACE
        assert m["movinet_edge_healthy"] == 1


def test_a_lost_broker_is_reported_and_its_return_clears_it(camera, sink_to, broker) -> None:
    sink = sink_to(broker.port)
    health = ServiceHealth([camera], mqtt=sink, options=HealthOptions(mqtt_grace=GRACE))
    metrics = ServiceMetrics(health, process=False)
    with HealthServer(health, metrics.registry, "127.0.0.1", 0) as server:
        wait_until(lambda: healthz(server)[1]["mqtt"]["connected"], what="the connection")
        status, answer = healthz(server)
        assert status == 200 and answer["status"] == "ok" and answer["mqtt"]["state"] == "connected", answer
        m = samples(get(server.url + "/metrics")[2])
        assert m["movinet_edge_mqtt_connected"] == 1 and m["movinet_edge_mqtt_disconnected_seconds"] == 0

        broker.stop()
        wait_until(lambda: healthz(server)[1]["mqtt"]["state"] == "reconnecting", what="the sink to notice")
        wait_until(lambda: healthz(server)[1]["status"] == "degraded", what="the outage to be reported")
        status, answer = healthz(server)
        assert status == 200 and "MQTT broker" in answer["reason"] and " lost for " in answer["reason"], answer
        assert samples(get(server.url + "/metrics")[2])["movinet_edge_mqtt_disconnected_seconds"] > GRACE

        broker.start()
        wait_until(lambda: healthz(server)[1]["status"] == "ok", what="the broker's return to clear it")
        assert samples(get(server.url + "/metrics")[2])["movinet_edge_mqtt_connected"] == 1
