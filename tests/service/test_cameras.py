"""Several cameras in one service: /healthz names each camera's state, a stalled one by name, and
the metrics carry a ``camera`` label. A real server on a free port, real monitors on the test's clock."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from service.http_support import Clock, Feeder, Source, get, samples
from service.support import free_port

from movinet_edge.results import Event
from movinet_edge.service.health import HealthServer
from movinet_edge.service.metrics import ServiceMetrics
from movinet_edge.service.monitor import EventStamper, HealthOptions, ServiceMonitor, WallClock
from movinet_edge.service.service_health import ServiceHealth
from movinet_edge.sinks.mqtt import MqttSink
from movinet_edge.sinks.mqtt_options import MqttOptions

CAMERAS = ("door", "yard")


Served = tuple[HealthServer, ServiceHealth, ServiceMetrics, dict[str, Feeder], Clock]


@contextmanager
def cameras(options: HealthOptions, mqtt: Any = None, start: float = 50.0) -> Iterator[Served]:
    clock = Clock(start)
    stamper = EventStamper("dev", WallClock(), "s")
    monitors, sources = [], {}
    for name in CAMERAS:
        sources[name] = Source()
        monitors.append(ServiceMonitor(5.0, options, stamper=stamper, source_stats=sources[name].stats,
                                       camera=name, clock=clock))  # fmt: skip
    health = ServiceHealth(monitors, mqtt=mqtt, options=options)
    metrics = ServiceMetrics(health, info={"device_id": "dev"}, process=False)
    feeders = {m.camera: Feeder(m, clock, source=sources[m.camera], sinks=[metrics.sink(m.camera)])
               for m in monitors}  # fmt: skip
    with HealthServer(health, metrics.registry, "127.0.0.1", 0) as server:
        yield server, health, metrics, feeders, clock


def both(feeders: dict[str, Feeder], clock: Clock, seconds: float, only: str | None = None) -> None:
    """Feed the cameras side by side (``only``: just that one) for ``seconds`` of the shared clock."""
    for _ in range(round(seconds * 10)):
        start = clock.now
        for name, feeder in feeders.items():
            clock.now = start
            if only is None or name == only:
                feeder.run(0.1)
        clock.now = start + 0.1


def test_a_stalled_camera_is_named_and_the_others_keep_the_service_up() -> None:
    with cameras(HealthOptions(frame_timeout=2.0)) as (server, health, metrics, feeders, clock):
        status, _, body = get(server.url + "/healthz")
        assert status == 503 and json.loads(body)["status"] == "starting"
        both(feeders, clock, 3)
        status, _, body = get(server.url + "/healthz")
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "ok", body
        assert set(answer["cameras"]) == set(CAMERAS)
        door = answer["cameras"]["door"]
        assert door["status"] == "ok" and door["frames"] == 30 and abs(door["model_fps"] - 5) < 0.3
        assert door["last_frame_age_s"] is not None

        both(feeders, clock, 3, only="yard")  # the door camera is unplugged
        status, _, body = get(server.url + "/healthz")
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "degraded", body  # the yard camera still works
        assert answer["reason"].startswith("camera door: no frame for 3.0 s"), answer["reason"]
        assert answer["cameras"]["door"]["status"] == "stalled" and answer["cameras"]["yard"]["ok"]

        m = samples(get(server.url + "/metrics")[2])
        assert m["movinet_edge_healthy"] == 1
        assert m['movinet_edge_camera_healthy{camera="door"}'] == 0
        assert m['movinet_edge_camera_healthy{camera="yard"}'] == 1
        assert m['movinet_edge_frames_total{camera="door"}'] == 30
        assert m['movinet_edge_frames_total{camera="yard"}'] == 60
        assert m['movinet_edge_frames_dropped_total{camera="door"}'] == 7
        assert m['movinet_edge_last_frame_age_seconds{camera="door"}'] == pytest.approx(3.0)
        assert m['movinet_edge_inference_latency_seconds_count{camera="yard"}'] == 30
        assert m['movinet_edge_inference_latency_seconds_count{camera="door"}'] == 15
        assert m['movinet_edge_events_total{camera="door",kind="new"}'] == 0

        clock.now += 3  # now both are stalled: nothing works
        status, _, body = get(server.url + "/healthz")
        assert status == 503 and json.loads(body)["status"] == "stalled"
        assert get(server.url + "/metrics")[0] == 200


def test_all_cameras_required_makes_one_stalled_camera_a_503() -> None:
    options = HealthOptions(frame_timeout=2.0, all_cameras_required=True)
    with cameras(options) as (server, health, metrics, feeders, clock):
        both(feeders, clock, 3)
        assert get(server.url + "/healthz")[0] == 200
        both(feeders, clock, 3, only="door")
        status, _, body = get(server.url + "/healthz")
        answer = json.loads(body)
        assert status == 503 and answer["status"] == "stalled" and answer["reason"].startswith("camera yard:"), body


def test_every_reason_is_listed_and_a_required_broker_decides() -> None:
    """One stalled camera (not required) and a broker that never answered (required): 503, both named."""
    sink = MqttSink(MqttOptions(host="127.0.0.1", port=free_port()), device_id="dev")  # never started
    options = HealthOptions(frame_timeout=2.0, mqtt_grace=0.0, mqtt_required=True)
    # The test's clock starts at the real monotonic time: the sink's ``since`` is on that clock.
    with cameras(options, mqtt=sink, start=time.monotonic()) as (server, health, metrics, feeders, clock):
        both(feeders, clock, 3)
        both(feeders, clock, 3, only="yard")
        status, _, body = get(server.url + "/healthz")
        answer = json.loads(body)
        assert status == 503 and answer["status"] == "disconnected", body
        assert answer["reason"].startswith(f"MQTT broker 127.0.0.1:{sink.options.port} not connected for")
        assert [r.split(":")[0] for r in answer["reasons"]] == ["camera door", "MQTT broker 127.0.0.1"]
        assert answer["mqtt"]["state"] == "connecting" and not answer["mqtt"]["ok"]


def test_events_of_all_cameras_in_one_list_each_with_its_camera() -> None:
    with cameras(HealthOptions()) as (server, health, metrics, feeders, clock):
        health.monitors["door"].on_event(Event("new", "juggling", 0.7, start=1.0, timestamp=1.0))
        health.monitors["yard"].on_event(Event("new", "clapping", 0.6, start=2.0, timestamp=2.0))
        events = json.loads(get(server.url + "/events")[2])["events"]
        assert [(e["camera"], e["label"]) for e in events] == [("door", "juggling"), ("yard", "clapping")]
        m = samples(get(server.url + "/metrics")[2])
        assert m['movinet_edge_events_total{camera="yard",kind="new"}'] == 1


def test_cameras_need_distinct_names() -> None:
    clock = Clock()

    def make(name: str | None) -> ServiceMonitor:
        return ServiceMonitor(5.0, stamper=EventStamper("d", WallClock()), camera=name, clock=clock)

    with pytest.raises(ValueError, match="distinct names"):
        ServiceHealth([make("a"), make("a")])
    with pytest.raises(ValueError, match="distinct names"):
        ServiceHealth([make("a"), make(None)])
