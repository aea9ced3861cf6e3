"""The MQTT publisher against a real mosquitto: availability, info, events, the bounded
queue while the broker is away, passwords and TLS. (Failures an operator must see, Home
Assistant discovery and several cameras: test_mqtt_failures.py, test_home_assistant.py.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("paho.mqtt", reason="the MQTT sink needs the [service] extra (paho-mqtt)")

from movinet_edge.sinks.mqtt import MqttOptions, MqttSink, TlsOptions
from service.support import missing_tool, wait_until


def record(seq: int, kind: str = "update") -> dict:
    return {"type": "event", "kind": kind, "label": "juggling", "seq": seq, "device_id": "cam1"}


@pytest.fixture
def sinks():
    made: list[MqttSink] = []

    def make(options: MqttOptions, device_id: str = "cam1", **kwargs) -> MqttSink:
        sink = MqttSink(options, device_id, **kwargs)
        made.append(sink)
        return sink.start()

    yield make
    for sink in made:
        sink.close()


def test_availability_info_events_and_offline(broker, subscribe, sinks) -> None:
    sub = subscribe(broker.port, "edge/cam1/#")
    sink = sinks(MqttOptions(host="127.0.0.1", port=broker.port, topic_prefix="edge"),
                 info={"model": "a0"})
    wait_until(lambda: sink.stats.connected, what="the connection")
    for seq in range(1, 4):
        sink.publish_event(record(seq))
    wait_until(lambda: len(sub.on("edge/cam1/events")) == 3, what="three events")
    assert [e["seq"] for e in sub.events("edge/cam1/events")] == [1, 2, 3]
    assert [m.payload for m in sub.on("edge/cam1/availability")] == ["online"]
    assert sub.on("edge/cam1/info")[0].json() == {"model": "a0"}
    wait_until(lambda: sink.queued == 0, what="acknowledgements")
    sink.close()
    assert sink.stats.acked == sink.stats.sent == 6  # online, info, 3 events, offline
    wait_until(lambda: sub.on("edge/cam1/availability")[-1].payload == "offline", what="offline")
    # Retained for whoever looks later: the device said goodbye.
    late = subscribe(broker.port, "edge/cam1/availability", client_id="late", persistent=False)
    wait_until(lambda: late.on("edge/cam1/availability"), what="the retained availability")
    assert late.on("edge/cam1/availability")[0].payload == "offline"


def test_events_wait_for_the_broker_in_a_bounded_queue(broker, subscribe, sinks) -> None:
    sub = subscribe(broker.port, "movinet-edge/cam1/events")  # persistent: the broker keeps its session
    broker.stop()
    sink = sinks(MqttOptions(host="127.0.0.1", port=broker.port, queue_size=3,
                             reconnect_max_delay=1.0))
    for seq in range(1, 6):
        sink.publish_event(record(seq))
    assert not sink.stats.connected
    assert sink.queued == 3 and sink.stats.dropped == 2  # the oldest two made room
    broker.start()
    wait_until(lambda: len(sub.on("movinet-edge/cam1/events")) == 3, what="the queued events")
    assert [e["seq"] for e in sub.events("movinet-edge/cam1/events")] == [3, 4, 5]
    wait_until(lambda: sink.queued == 0, what="acknowledgements")


def test_username_and_password(make_broker, subscribe, sinks, tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        missing_tool("mosquitto_passwd is not installed (Debian package mosquitto)")
    passwords = tmp_path / "passwd"
    passwords.touch()
    subprocess.run([tool, "-b", str(passwords), "cam1", "s3cret"], check=True, capture_output=True)
    passwords.chmod(0o600)
    broker = make_broker("auth", listener_options=f"password_file {passwords}\n", allow_anonymous=False)
    wrong = sinks(MqttOptions(host="127.0.0.1", port=broker.port, username="cam1", password="no"))
    right = sinks(MqttOptions(host="127.0.0.1", port=broker.port, username="cam1",
                              password="s3cret"), "cam2")
    wait_until(lambda: right.stats.connected, what="the connection with the right password")
    wait_until(lambda: wrong.stats.last_error, what="the refusal")
    assert not wrong.stats.connected and "authori" in wrong.stats.last_error.lower()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def test_tls_with_a_private_ca(make_broker, sinks, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        missing_tool("openssl is not installed (Debian package openssl); it makes the test's certificates")
    d = tmp_path / "pki"
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
             "-out", "server.csr", cwd=d)
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=d)
    broker = make_broker("tls", listener_options=(
        f"cafile {d / 'ca.crt'}\ncertfile {d / 'server.crt'}\nkeyfile {d / 'server.key'}\n"
    ))  # fmt: skip
    tls = TlsOptions(enabled=True, ca_file=d / "ca.crt")
    sink = sinks(MqttOptions(host="127.0.0.1", port=broker.port, tls=tls))
    wait_until(lambda: sink.stats.connected, what="a TLS connection")
    sink.publish_event(record(1))
    wait_until(lambda: sink.queued == 0, what="the acknowledgement")
    # Without our CA the broker's certificate is not trusted: no connection.
    untrusted = sinks(MqttOptions(host="127.0.0.1", port=broker.port, tls=TlsOptions(enabled=True)), "cam2")
    wait_until(lambda: untrusted.stats.last_error, what="the failed handshake")
    assert not untrusted.stats.connected


def test_event_payload_is_compact_json(broker, subscribe, sinks) -> None:
    sub = subscribe(broker.port, "movinet-edge/cam1/events", persistent=False, client_id="p")
    sink = sinks(MqttOptions(host="127.0.0.1", port=broker.port, qos=0, retain=True))
    wait_until(lambda: sink.stats.connected, what="the connection")
    sink.publish_event({**record(1), "label": "tai chi — 太极"})
    message = wait_until(lambda: sub.on("movinet-edge/cam1/events"), what="the event")[0]
    assert json.loads(message.payload)["label"] == "tai chi — 太极" and ", " not in message.payload


def test_retained_events_reach_a_subscriber_that_connects_later(broker, subscribe, sinks) -> None:
    """``retain = true``: the broker keeps the last event per topic for whoever subscribes afterwards.

    A dashboard that starts after the event still sees the current action; with
    the default (no retain) it sees nothing until the next event.
    """
    retained = sinks(MqttOptions(host="127.0.0.1", port=broker.port, qos=1, retain=True))
    plain = sinks(MqttOptions(host="127.0.0.1", port=broker.port, qos=1), "cam2")
    wait_until(lambda: retained.stats.connected and plain.stats.connected, what="both connections")
    retained.publish_event(record(1, "new"))
    retained.publish_event(record(2))
    plain.publish_event(record(1, "new"))
    # QoS 1 acknowledged: the broker holds the events before anyone subscribes.
    wait_until(lambda: retained.queued == 0 and plain.queued == 0, what="the acknowledgements")

    late = subscribe(broker.port, "movinet-edge/+/events", client_id="late-dashboard", persistent=False)
    message = wait_until(lambda: late.on("movinet-edge/cam1/events"), what="the retained event")[0]
    assert message.retain and message.json()["seq"] == 2  # the last one, flagged as retained
    # Barrier: a message of the subscriber's own comes back after anything the broker
    # had queued for it on subscribing, so a retained cam2 event would be here by now.
    late.client.publish("movinet-edge/barrier/events", "{}", qos=1)
    wait_until(lambda: late.on("movinet-edge/barrier/events"), what="the subscriber's own message")
    assert late.on("movinet-edge/cam2/events") == []
    assert [m.json()["seq"] for m in late.on("movinet-edge/cam1/events")] == [2]


def test_no_event_is_lost_across_a_broker_restart(broker, subscribe, sinks) -> None:
    """Events sent before, during and after a restart all arrive (at least once, QoS 1)."""
    sub = subscribe(broker.port, "movinet-edge/cam1/events")  # persistent: the broker keeps its session
    sink = sinks(MqttOptions(host="127.0.0.1", port=broker.port, reconnect_max_delay=1.0))
    wait_until(lambda: sink.stats.connected, what="the connection")
    for seq in range(1, 6):
        sink.publish_event(record(seq))
    broker.stop()  # some of those may be in flight: paho sends them again after the reconnect
    wait_until(lambda: not sink.stats.connected, what="the sink to notice")
    for seq in range(6, 11):
        sink.publish_event(record(seq))
    broker.start()
    wait_until(lambda: {e["seq"] for e in sub.events("movinet-edge/cam1/events")} == set(range(1, 11)),
               what="every event")  # fmt: skip
    wait_until(lambda: sink.queued == 0, what="acknowledgements")
    assert sink.stats.dropped == 0 and sink.stats.connects == 2
