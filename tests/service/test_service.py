"""`movinet-edge serve` as a real subprocess on a clip looped as a camera: systemd notify
through a socket the test owns, /healthz and /metrics over HTTP, MQTT through a real
broker and subscriber (a broker restart loses no QoS-1 event), a fleet of two devices
on one broker, the last will, and a clean stop on SIGTERM and SIGINT, within 2 s of the signal."""

from __future__ import annotations

import json
import signal

from service.support import STOP_WITHIN, wait_until


def _seqs(events: list[dict]) -> set[int]:
    return {e["seq"] for e in events}


def test_service_end_to_end(looped_clip_config, broker, subscribe, notify_socket, start_service) -> None:
    config = looped_clip_config(mqtt_port=broker.port)
    sub = subscribe(broker.port, "movinet-edge/#")
    service = start_service(
        "--config", config,
        env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1500000"},
    )  # fmt: skip

    # systemd: READY once the model is loaded and a frame arrived, then pings from the loop.
    notify_socket.wait_for(lambda m: "READY=1" in m, "READY=1")
    notify_socket.wait_for(lambda m: m.count("WATCHDOG=1") >= 3, "three WATCHDOG=1 pings")
    status = notify_socket.wait_for(
        lambda m: next((s for s in m if s.startswith("STATUS=") and "top-1" in s), None), "STATUS= with top-1"
    )
    assert "fps in" in status and "model fps" in status, status

    # HTTP: healthy while frames flow and the model keeps up.
    wait_until(lambda: service.alive() and service.get("/healthz")[0] == 200, what="/healthz 200")
    health = json.loads(service.get("/healthz")[1])
    assert health["ok"] is True and health["status"] == "ok"
    assert health["model_fps"] > 0 and health["target_fps"] == 5.0

    metrics = service.metrics()
    assert metrics["movinet_edge_inference_latency_seconds_count"] > 0
    assert metrics['movinet_edge_inference_latency_seconds_bucket{le="+Inf"}'] > 0
    for name in ("input_fps", "model_fps", "frames_dropped_total", "state_resets_total", "reconnects_total"):
        assert f"movinet_edge_{name}" in metrics, name
    assert metrics['movinet_edge_events_total{kind="new"}'] == 1
    assert metrics["movinet_edge_healthy"] == 1 and metrics["movinet_edge_mqtt_connected"] == 1

    status_code, body = service.get("/events")
    assert status_code == 200
    recent = json.loads(body)["events"]
    assert recent and recent[0]["kind"] == "new" and recent[0]["device_id"] == "dev-a"

    # MQTT: availability, the retained info, events as JSON.
    availability = "movinet-edge/dev-a/availability"
    events_topic = "movinet-edge/dev-a/events"
    wait_until(lambda: [m.payload for m in sub.on(availability)] == ["online"], what="availability online")
    info = wait_until(lambda: sub.on("movinet-edge/dev-a/info"), what="the info message")[-1].json()
    assert info["device_id"] == "dev-a" and info["classes"] == "600"
    wait_until(lambda: len(sub.on(events_topic)) >= 3, what="three events")
    first = sub.events(events_topic)[0]
    assert first["kind"] == "new" and first["label"] == "brush painting" and first["device_id"] == "dev-a"
    assert first["start_time"].endswith("Z") and first["seq"] == 1

    # The broker goes away while events keep coming: they wait in the queue...
    broker.stop()
    wait_until(lambda: service.metrics()["movinet_edge_mqtt_connected"] == 0, what="the service to notice")
    wait_until(lambda: service.metrics()["movinet_edge_mqtt_queued_messages"] >= 2, what="events queued")
    # ...and reach the subscriber once it is back.
    broker.restart()
    wait_until(lambda: service.metrics()["movinet_edge_mqtt_connected"] == 1, what="the service to reconnect")
    made_before_stop = int(service.metrics()['movinet_edge_events_total{kind="update"}']) + 1
    wait_until(lambda: max(_seqs(sub.events(events_topic))) >= made_before_stop, what="the queued events")
    assert service.metrics()["movinet_edge_mqtt_dropped_total"] == 0

    # SIGTERM: finish, end the action, say offline, exit 0 within 2 s (stop() measures it).
    assert service.stop(signal.SIGTERM) == 0, service.log()
    assert service.stopped_in is not None and service.stopped_in <= STOP_WITHIN
    assert "Traceback" not in service.log()
    events = wait_until(
        lambda: [e for e in sub.events(events_topic) if e["kind"] == "end"] and sub.events(events_topic),
        what="the end event",
    )
    seqs = _seqs(events)
    assert seqs == set(range(1, max(seqs) + 1)), f"QoS-1 events lost: {sorted(set(range(1, max(seqs) + 1)) - seqs)}"
    end = next(e for e in events if e["kind"] == "end")
    assert end["seq"] == max(seqs) and end["end_time"] is not None
    assert len({e["action_id"] for e in events}) == 1  # one action: new, updates, end
    wait_until(lambda: sub.on(availability)[-1].payload == "offline", what="availability offline")
    assert any(s.startswith("STATUS=stopping") for s in notify_socket.drain())
    assert any("ended at" in line for line in service.stdout)  # the journal's event lines


def test_fleet_of_two_devices_and_last_will(looped_clip_config, broker, subscribe, start_service) -> None:
    sub = subscribe(broker.port, "fleet/+/#", client_id="dashboard")
    a = start_service("--config", looped_clip_config("a.toml", "dev-a", broker.port),
                      "--mqtt-topic-prefix", "fleet", "--no-http")
    b = start_service("--config", looped_clip_config("b.toml", "dev-b", broker.port),
                      "--mqtt-topic-prefix", "fleet", "--no-http")
    for device in ("dev-a", "dev-b"):
        wait_until(lambda d=device: [m.payload for m in sub.on(f"fleet/{d}/availability")] == ["online"],
                   what=f"{device} online")
        wait_until(lambda d=device: len(sub.on(f"fleet/{d}/events")) >= 3, what=f"events from {device}")
    for device in ("dev-a", "dev-b"):
        events = sub.events(f"fleet/{device}/events")
        assert {e["device_id"] for e in events} == {device}
        # Each device's own sequence, unbroken: neither took over the other's session.
        seqs = _seqs(events)
        assert seqs == set(range(1, max(seqs) + 1))
    assert a.alive() and b.alive()

    # dev-b dies without a word: the broker publishes its last will.
    b.kill()
    wait_until(lambda: sub.on("fleet/dev-b/availability")[-1].payload == "offline", what="dev-b's last will")
    assert sub.on("fleet/dev-a/availability")[-1].payload == "online"
    assert a.alive()

    # Ctrl-C (SIGINT) stops as cleanly and as fast as SIGTERM.
    assert a.stop(signal.SIGINT) == 0, a.log()
    assert a.stopped_in is not None and a.stopped_in <= STOP_WITHIN
    assert "Traceback" not in a.log()
    wait_until(lambda: sub.on("fleet/dev-a/availability")[-1].payload == "offline", what="dev-a offline")
    wait_until(lambda: sub.events("fleet/dev-a/events")[-1]["kind"] == "end", what="dev-a's end event")


def test_unknown_allow_label_is_a_config_error(looped_clip_config, start_service) -> None:
    service = start_service("--config", looped_clip_config(), "--allow", "juggling chainsaws")
    rc = service.proc.wait(120)
    for t in service._threads:
        t.join(5)
    assert rc == 78, service.log()
    assert len(service.stderr) == 1 and service.stderr[0].startswith("error: "), service.log()
    assert "juggling chainsaws" in service.stderr[0] and "[events]" in service.stderr[0]

