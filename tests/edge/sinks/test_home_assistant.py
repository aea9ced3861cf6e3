"""Home Assistant MQTT discovery against a real mosquitto: retained configs for the action sensor
and one binary sensor per allowed label, their states, several cameras; plus the camera topics."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

pytest.importorskip("paho.mqtt", reason="the MQTT sink needs the [service] extra (paho-mqtt)")
from movinet_edge.frames import Frame
from movinet_edge.results import Prediction
from movinet_edge.sinks.home_assistant import StateLimiter, discovery_messages, label_slugs, slug
from movinet_edge.sinks.mqtt import MqttOptions, MqttSink

from service.support import wait_until

INFO = {"version": "0.1.0", "model": "/models/a0_stream_int8/model.tflite", "session": "s1"}
FRAME = Frame(np.zeros((8, 8, 3), np.uint8), 0.0, 0)


def prediction(label: str, score: float) -> Prediction:
    return Prediction(0.0, 0, 0, np.zeros(2, np.float32), [(label, score), ("other", 0.01)], 1.0)


@pytest.fixture
def sinks() -> Iterator[Callable[..., MqttSink]]:
    made: list[MqttSink] = []

    def make(options: MqttOptions, device_id: str = "cam1", **kwargs) -> MqttSink:
        sink = MqttSink(options, device_id, info=INFO, **kwargs)
        made.append(sink)
        return sink.start()

    yield make
    for sink in made:
        sink.close()


def barrier(sub, topic: str) -> None:
    """Everything the broker had for ``sub`` before this point has arrived once its own message on
    ``topic`` (one it subscribed to) is back."""
    n = len(sub.on(topic))
    sub.client.publish(topic, "x", qos=1)
    wait_until(lambda: len(sub.on(topic)) > n, what="the subscriber's own message")


def test_discovery_configs_are_retained_and_states_follow_the_events(broker, subscribe, sinks) -> None:
    options = MqttOptions(host="127.0.0.1", port=broker.port, home_assistant=True,
                          labels=("juggling", "carving ice"))  # fmt: skip
    sink = sinks(options, device_id="pi.kitchen")
    wait_until(lambda: sink.stats.connected and sink.queued == 0, what="the announcement, acknowledged")

    # Home Assistant subscribes whenever it starts: the configs are retained for it.
    ha = subscribe(broker.port, "homeassistant/#", client_id="home-assistant", persistent=False)
    configs = wait_until(lambda: len(ha.messages) == 3 and ha.messages, what="three discovery configs")
    assert all(m.retain for m in configs)
    by_topic = {m.topic: m.json() for m in configs}
    assert set(by_topic) == {
        "homeassistant/sensor/pi_kitchen_action/config",
        "homeassistant/binary_sensor/pi_kitchen_juggling/config",
        "homeassistant/binary_sensor/pi_kitchen_carving_ice/config",
    }
    action = by_topic["homeassistant/sensor/pi_kitchen_action/config"]
    device = {"identifiers": ["movinet-edge_pi_kitchen"], "name": "pi.kitchen", "manufacturer": "movinet-edge",
              "model": "MoViNet model.tflite", "sw_version": "0.1.0"}  # fmt: skip
    assert action["device"] == device
    assert action["state_topic"] == action["json_attributes_topic"] == "movinet-edge/pi.kitchen/state"
    assert action["value_template"] == "{{ value_json.action }}" and action["unique_id"] == "pi_kitchen_action"
    carving = by_topic["homeassistant/binary_sensor/pi_kitchen_carving_ice/config"]
    assert carving["state_topic"] == "movinet-edge/pi.kitchen/carving_ice/state"
    assert (carving["name"], carving["payload_on"], carving["payload_off"]) == ("carving ice", "ON", "OFF")
    for payload in by_topic.values():
        assert payload["availability_topic"] == "movinet-edge/pi.kitchen/availability"
        assert payload["device"] == device

    states = subscribe(broker.port, "movinet-edge/pi.kitchen/#", client_id="states", persistent=False)
    # Nothing in progress at start: every label sensor is OFF (retained).
    wait_until(lambda: states.on("movinet-edge/pi.kitchen/juggling/state"), what="the initial state")
    assert [m.payload for m in states.on("movinet-edge/pi.kitchen/juggling/state")] == ["OFF"]
    assert states.on("movinet-edge/pi.kitchen/availability")[0].payload == "online"

    base = {"type": "event", "label": "juggling", "device_id": "pi.kitchen"}
    sink.publish_event({**base, "kind": "new", "seq": 1})
    sink.publish_event({**base, "kind": "update", "seq": 2})
    sink.publish_event({**base, "kind": "end", "seq": 3})
    sink.publish_event({**base, "label": "tai chi", "kind": "new", "seq": 4})  # not allowed: no sensor
    wait_until(lambda: len(states.on("movinet-edge/pi.kitchen/events")) == 4, what="the events")
    wait_until(lambda: len(states.on("movinet-edge/pi.kitchen/juggling/state")) == 4, what="the states")
    assert [m.payload for m in states.on("movinet-edge/pi.kitchen/juggling/state")] == ["OFF", "ON", "ON", "OFF"]
    assert not [m for m in states.messages if "tai" in m.topic]

    # The action sensor: a change goes at once, the same action at most once a second.
    sink.on_prediction(prediction("juggling", 0.91234), FRAME)
    sink.on_prediction(prediction("juggling", 0.95), FRAME)
    sink.on_prediction(prediction("carving ice", 0.7), FRAME)
    barrier(states, "movinet-edge/pi.kitchen/barrier")
    wait_until(lambda: len(states.on("movinet-edge/pi.kitchen/state")) == 2, what="two states")
    barrier(states, "movinet-edge/pi.kitchen/barrier")
    assert [m.json() for m in states.on("movinet-edge/pi.kitchen/state")] == [
        {"action": "juggling", "score": 0.912},
        {"action": "carving ice", "score": 0.7},
    ]


def test_several_cameras_get_their_own_entities_and_topics(broker, subscribe, sinks) -> None:
    options = MqttOptions(host="127.0.0.1", port=broker.port, home_assistant=True, labels=("juggling",))
    sink = sinks(options, cameras=("front", "back"))
    wait_until(lambda: sink.stats.connected and sink.queued == 0, what="the announcement")
    ha = subscribe(broker.port, "homeassistant/#", client_id="home-assistant", persistent=False)
    configs = wait_until(lambda: len(ha.messages) == 4 and ha.messages, what="four configs")
    assert {m.topic for m in configs} == {
        "homeassistant/sensor/cam1_front_action/config",
        "homeassistant/sensor/cam1_back_action/config",
        "homeassistant/binary_sensor/cam1_front_juggling/config",
        "homeassistant/binary_sensor/cam1_back_juggling/config",
    }
    front = next(m.json() for m in configs if m.topic == "homeassistant/sensor/cam1_front_action/config")
    assert front["state_topic"] == "movinet-edge/cam1/front/state" and front["name"] == "front action"

    sub = subscribe(broker.port, "movinet-edge/cam1/#", client_id="dashboard", persistent=False)
    sink.publish_camera_state("front", True)
    sink.publish_camera_state("back", False)
    sink.publish_event({"type": "event", "kind": "new", "label": "juggling", "camera": "front", "seq": 1})
    sink.camera_sink("back").on_prediction(prediction("juggling", 0.5), FRAME)
    wait_until(lambda: sub.on("movinet-edge/cam1/front/events"), what="the front camera's event")
    wait_until(lambda: sub.on("movinet-edge/cam1/back/state"), what="the back camera's state")
    wait_until(lambda: [m.payload for m in sub.on("movinet-edge/cam1/front/juggling/state")][-1:] == ["ON"],
               what="the front camera's label state")  # fmt: skip
    assert sub.on("movinet-edge/cam1/front/events")[0].json()["camera"] == "front"
    assert sub.on("movinet-edge/cam1/events") == []
    assert [m.payload for m in sub.on("movinet-edge/cam1/front/availability")] == ["online"]
    assert [m.payload for m in sub.on("movinet-edge/cam1/back/availability")] == ["offline"]
    sink.close()
    # A camera that was online goes offline with the device.
    wait_until(lambda: sub.on("movinet-edge/cam1/front/availability")[-1].payload == "offline", what="offline")
    assert sub.on("movinet-edge/cam1/availability")[-1].payload == "offline"


def test_without_home_assistant_nothing_extra_is_published(broker, subscribe, sinks) -> None:
    sub = subscribe(broker.port, "#", client_id="everything", persistent=False)
    sink = sinks(MqttOptions(host="127.0.0.1", port=broker.port, labels=("juggling",)))
    wait_until(lambda: sink.stats.connected, what="the connection")
    sink.on_prediction(prediction("juggling", 0.5), FRAME)
    sink.publish_event({"type": "event", "kind": "new", "label": "juggling", "seq": 1})
    wait_until(lambda: sub.on("movinet-edge/cam1/events"), what="the event")
    barrier(sub, "movinet-edge/barrier")
    assert {m.topic for m in sub.messages} == {"movinet-edge/cam1/availability", "movinet-edge/cam1/info",
                                               "movinet-edge/cam1/events", "movinet-edge/barrier"}  # fmt: skip


def test_slugs_and_payloads() -> None:
    assert slug("carving ice") == "carving_ice" and slug("pi.kitchen") == "pi_kitchen" and slug("!!") == "x"
    assert label_slugs(["pull ups", "pull-ups", "Pull Ups", "pull ups"]) == {
        "pull ups": "pull_ups", "pull-ups": "pull_ups_2", "Pull Ups": "pull_ups_3"
    }  # fmt: skip
    messages = discovery_messages(prefix="ha", base="p/d", device_id="d", availability_topic="p/d/availability",
                                  info={}, labels=["a"])  # fmt: skip
    assert [t for t, _ in messages] == ["ha/sensor/d_action/config", "ha/binary_sensor/d_a/config"]
    assert "sw_version" not in messages[0][1]["device"] and messages[0][1]["device"]["model"] == "MoViNet"


def test_the_state_limiter() -> None:
    now = [100.0]
    limiter = StateLimiter(every=1.0, clock=lambda: now[0])
    assert limiter.due(None, "a") and not limiter.due(None, "a")
    assert limiter.due(None, "b")  # a change goes at once
    assert limiter.due("front", "b")  # cameras are separate
    now[0] += 1.0
    assert limiter.due(None, "b") and not limiter.due(None, "b")
