"""Events to an MQTT broker: availability with a last will, JSON events, a bounded queue.

Topic layout (``P`` is ``[mqtt] topic_prefix``, default ``movinet-edge``;
``D`` is the device id, default the host name)::

    P/D/availability     "online" / "offline"       retained, QoS 1; the broker's last will
                                                     publishes "offline" if the device vanishes
    P/D/info             JSON: version, model, labels, source, session    retained, QoS 1
    P/D/events           JSON per event (new / update / end)               [mqtt] qos, retain
    P/D/C/events         the same for camera C, when several cameras share the device
    P/D/C/availability   "online" / "offline" per camera (publish_camera_state), retained

plus Home Assistant discovery and states when enabled (see :mod:`.home_assistant`).

A fleet shares one broker: every device writes only below its own ``P/D/``
and connects with its own client id (``movinet-edge-D``), so devices never
clash; a dashboard subscribes to ``P/+/events`` and ``P/+/availability``.
Device ids must be unique in a fleet: two devices with the same id take over
each other's MQTT session.

An event record holds ``kind``, ``label``, ``score``, ``start_time`` /
``end_time`` / ``time`` (RFC 3339 UTC), ``start`` / ``end`` / ``timestamp``
(seconds on the source's clock), ``device_id``, ``action_id`` (the same for
an action's new, updates and end), ``session`` (new at every start) and
``seq`` (1, 2, 3... within a session). Delivery is at least once for QoS 1:
after a reconnect a message may arrive twice, or out of order; ``(session,
seq)`` identifies it.

While the broker is away the client reconnects with backoff (paho-mqtt's
network thread) and events wait in a :class:`~.delivery.BoundedQueue` of
``queue_size`` messages; when it is full the oldest are dropped and counted
(``movinet_edge_mqtt_dropped``). QoS 1/2 messages sent but not acknowledged
when the connection dropped are sent again by paho-mqtt after the reconnect.
A broker that is connected but stops acknowledging gets at most
``queue_size`` messages in flight; newer ones are dropped and counted. A
broker that cannot be reached is logged at WARNING with the reason (see
:class:`~.delivery.LinkLog`) and shows in :class:`MqttStats`.

paho-mqtt (the ``[service]`` extra) is imported when a sink is made, not when
the registry lists this kind.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..results import BaseSink
from . import home_assistant as ha
from .delivery import BoundedQueue, LinkLog, LinkState, describe_network_error
from .mqtt_options import MqttOptions, TlsOptions, tls_context
from .registry import SinkContext, SinkKind, register

if TYPE_CHECKING:
    from ..frames import Frame
    from ..results import Prediction

__all__ = ["MqttOptions", "MqttSink", "MqttStats", "TlsOptions", "open_mqtt"]

log = logging.getLogger(__name__)

ONLINE = "online"
OFFLINE = "offline"


class _QuietReconnects(logging.Filter):
    """paho-mqtt 2.2 logs an ERROR whenever its loop finds no socket: at every reconnect attempt and
    at a clean disconnect. The sink logs connection changes itself; keep paho's other messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_paho_log = logging.getLogger(f"{__name__}.paho")
_paho_log.addFilter(_QuietReconnects())


@dataclass
class MqttStats(LinkState):
    """Connection state (``connected``, ``last_error``, ``since``, ``ever_connected``) and counters."""

    connects: int = 0
    sent: int = 0  # handed to the client library
    acked: int = 0  # acknowledged by the broker (QoS 0: written to the socket)
    dropped: int = 0  # lost to a full queue


@dataclass
class _Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool


def _refusal(reason: Any) -> str:
    """A CONNACK refusal in words an operator can act on."""
    text = str(reason)
    lowered = text.lower()
    if "authori" in lowered or "user name or password" in lowered:
        return f"not authorised: the broker refused the user name or password ({text})"
    if "identifier" in lowered:
        return f"the broker refused the client id ({text})"
    return f"the broker refused the connection ({text})"


class MqttSink(BaseSink):
    """Publishes event records (from :class:`~movinet_edge.service.monitor.ServiceMonitor`'s listeners).

    :meth:`start` connects in the background and returns at once (a broker
    that is down at boot is retried, not fatal). :meth:`publish_event` never
    blocks the frame loop. :meth:`close` (the pipeline calls it at the end,
    after the final ``end`` events) publishes ``offline``, waits up to
    ``close_timeout`` seconds for acknowledgements and disconnects. TLS files
    and the password file are read here, so a bad one fails before anything starts.
    """

    def __init__(self, options: MqttOptions, device_id: str, info: dict[str, Any] | None = None,
                 close_timeout: float = 1.0, cameras: tuple[str, ...] = ()) -> None:  # fmt: skip
        import paho.mqtt.client as paho

        self._paho = paho
        self.options = options
        self.device_id = device_id
        # Read at each connection, not copied: the entry point may complete it (model, source) before start().
        self.info = info if info is not None else {}
        self.close_timeout = close_timeout
        self.cameras = tuple(cameras)
        self.stats = MqttStats()
        o = options
        self.base = f"{o.topic_prefix}/{device_id}"
        self.availability_topic = f"{self.base}/availability"
        self.info_topic = f"{self.base}/info"
        context = tls_context(o.tls) if o.tls.enabled else None  # a bad file fails here, exit 78
        password = o.read_password()
        self._lock = threading.Lock()  # the queue and the connection state
        self._ack_lock = threading.Lock()  # sent-but-unacknowledged message ids
        self._inflight: dict[int, int] = {}  # mid -> qos
        self._early_acks: set[int] = set()
        # Messages made while disconnected; the oldest go first when it overflows.
        self._pending: BoundedQueue[_Message] = BoundedQueue(o.queue_size)
        self._link = LinkLog(log, "MQTT", f"{o.host}:{o.effective_port}", self.stats)
        self._closing = False
        self._refused = False  # the last CONNECT was refused (its disconnect needs no second report)
        self._thread: threading.Thread | None = None
        self._warned_full = False
        self._online_cameras: set[str] = set()
        self._ha_slugs = ha.label_slugs(o.labels) if o.home_assistant else {}
        self._ha_announced = False
        self._state_limiter = ha.StateLimiter()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv311, clean_session=True
        )
        self.client.enable_logger(_paho_log)
        # paho-mqtt keeps unacknowledged QoS>0 messages itself and paces them (20 in flight);
        # its store is bounded by _submit (a broker that stops acknowledging), not by paho,
        # which would refuse the queue flushed after a reconnect.
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(
            min_delay=o.reconnect_min_delay, max_delay=o.reconnect_max_delay  # type: ignore[arg-type]
        )
        self.client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        if o.username is not None:
            self.client.username_pw_set(o.username, password)
        if context is not None:
            self.client.tls_set_context(context)
            if o.tls.insecure:
                self.client.tls_insecure_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_connect_fail = self._on_connect_fail

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> MqttSink:
        o = self.options
        log.info("MQTT: connecting to %s:%d as %s, topics %s/...", o.host, o.effective_port, self.client_id, self.base)
        self.stats.since = time.monotonic()
        self.client.connect_async(o.host, o.effective_port, keepalive=o.keepalive)
        # paho's loop in a thread of our own, so close() can give up waiting on a
        # broker that does not answer (loop_stop() would join without a timeout).
        self._thread = threading.Thread(
            target=self.client.loop_forever, kwargs={"retry_first_connection": True},
            name="movinet-edge mqtt", daemon=True,
        )  # fmt: skip
        self._thread.start()
        return self

    @property
    def client_id(self) -> str:
        return self.options.client_id or f"movinet-edge-{self.device_id}"

    @property
    def queued(self) -> int:
        """Messages not yet acknowledged: waiting for a connection, or sent and unconfirmed."""
        with self._ack_lock:
            inflight = len(self._inflight)
        return len(self._pending) + inflight

    def close(self) -> None:
        """Publish offline, wait for acknowledgements (bounded), disconnect."""
        deadline = time.monotonic() + self.close_timeout
        with self._lock:
            self._closing = True
            connected = self.stats.connected
            if connected:
                for camera in sorted(self._online_cameras):
                    self._publish_locked(_Message(self._camera_availability(camera), OFFLINE.encode(), 1, True))
                self._publish_locked(_Message(self.availability_topic, OFFLINE.encode(), 1, True))
        if connected:
            while time.monotonic() < deadline and self.stats.connected and self._unacked():
                time.sleep(0.02)
        lost = self.queued
        if lost:
            log.warning("MQTT: %d message(s) not delivered at shutdown (%s)", lost,
                        self.stats.last_error or "broker unreachable")  # fmt: skip
        self.client.disconnect()
        if self._thread is not None:
            # Connected, the thread ends once DISCONNECT is sent. Otherwise it may sit in a
            # reconnect backoff or a connect timeout: it is a daemon, so do not wait for it.
            self._thread.join(max(0.1, deadline - time.monotonic()) if connected else 0.1)
            self._thread = None

    # ---- publishing --------------------------------------------------------------------
    def publish_event(self, record: dict[str, Any]) -> None:
        """Queue or send one event record (an :class:`~movinet_edge.service.monitor.EventStamper` record).

        A record with a ``camera`` goes to that camera's topic (several cameras on one device).
        """
        o = self.options
        camera = record.get("camera") or None
        payload = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        self._submit(_Message(f"{ha.camera_base(self.base, camera)}/events", payload, o.qos, o.retain))
        label_slug = self._ha_slugs.get(record.get("label", ""))
        if label_slug is not None and record.get("kind") in ("new", "update", "end"):
            value = ha.OFF if record["kind"] == "end" else ha.ON
            topic = ha.label_state_topic(self.base, label_slug, self._ha_camera(camera))
            self._submit(_Message(topic, value.encode(), 1, True))

    def publish_camera_state(self, camera: str, online: bool) -> None:
        """A camera of this device came (back) or went: retained ``P/D/<camera>/availability``."""
        with self._lock:
            (self._online_cameras.add if online else self._online_cameras.discard)(camera)
        self._submit(_Message(self._camera_availability(camera), (ONLINE if online else OFFLINE).encode(), 1, True))

    def publish_state(self, action: str, score: float, camera: str | None = None) -> None:
        """The current top action for Home Assistant; on a change, else at most once a second.

        Only while connected: a state is stale by the time a broker comes back.
        """
        if not self.options.home_assistant:
            return
        if not self.stats.connected or not self._state_limiter.due(camera, action):
            return
        payload = json.dumps(ha.state_payload(action, score), separators=(",", ":")).encode()
        self._submit(_Message(ha.state_topic(self.base, self._ha_camera(camera)), payload, 0, True))

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        if self.options.home_assistant and prediction.top_k:
            self.publish_state(*prediction.top_k[0])

    def camera_sink(self, camera: str) -> BaseSink:
        """A pipeline sink for one of several cameras: its predictions become that camera's state."""
        return _CameraState(self, camera)

    def _ha_camera(self, camera: str | None) -> str | None:
        return camera if len(self.cameras) > 1 else None

    def _camera_availability(self, camera: str) -> str:
        return f"{self.base}/{camera}/availability"

    def _submit(self, message: _Message) -> None:
        with self._lock:
            if not self.stats.connected or len(self._pending):
                self._enqueue_locked(message)
            elif self._unacked_count() >= self.options.queue_size:
                self._count_drop("the broker stopped acknowledging; dropping new events")
            elif not self._publish_locked(message):
                if self._pending.put_back(message) is not None:
                    self._count_drop("the broker is away; dropping the oldest")

    def _enqueue_locked(self, message: _Message) -> None:
        if self._pending.put(message) is not None:
            self._count_drop("the broker is away; dropping the oldest")

    def _count_drop(self, why: str) -> None:
        self.stats.dropped += 1
        if not self._warned_full:
            self._warned_full = True
            log.warning("MQTT: queue full (%d messages): %s", self.options.queue_size, why)

    def _unacked(self) -> bool:
        return self._unacked_count() > 0

    def _unacked_count(self) -> int:
        with self._ack_lock:
            return len(self._inflight)

    def _track(self, mid: int, qos: int) -> None:
        """Remember a sent message until the broker acknowledges it (it may already have)."""
        with self._ack_lock:
            if mid in self._early_acks:
                self._early_acks.discard(mid)
            else:
                self._inflight[mid] = qos

    def _publish_locked(self, message: _Message) -> bool:
        """Hand a message to paho; False if it must wait for the next connection (the caller keeps it)."""
        paho = self._paho
        info = self.client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        if info.rc == paho.MQTT_ERR_SUCCESS:
            self.stats.sent += 1
            self._track(info.mid, message.qos)
        elif info.rc == paho.MQTT_ERR_NO_CONN:
            if message.qos == 0:
                return False  # lost the race with a disconnect
            self.stats.sent += 1  # paho keeps it and sends it after the reconnect
            self._track(info.mid, message.qos)
        else:
            self.stats.last_error = paho.error_string(info.rc)
            self.stats.dropped += 1
            log.warning("MQTT: publish to %s failed: %s", message.topic, self.stats.last_error)
        return True

    def _announce_locked(self) -> None:
        """Home Assistant discovery (retained, every connection) and, once, every label OFF."""
        cameras: tuple[str | None, ...] = self.cameras if len(self.cameras) > 1 else (None,)
        for topic, payload in ha.discovery_messages(
            prefix=self.options.discovery_prefix, base=self.base, device_id=self.device_id,
            availability_topic=self.availability_topic, info=self.info, labels=self._ha_slugs, cameras=cameras,
        ):  # fmt: skip
            self._publish_locked(_Message(topic, json.dumps(payload, separators=(",", ":")).encode(), 1, True))
        if not self._ha_announced:
            self._ha_announced = True  # later connections: an action may be in progress
            for camera in cameras:
                for label_slug in self._ha_slugs.values():
                    topic = ha.label_state_topic(self.base, label_slug, camera)
                    self._publish_locked(_Message(topic, ha.OFF.encode(), 1, True))

    # ---- paho callbacks (its network thread) -------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            with self._lock:
                self._refused = True
                self._link.down(_refusal(reason))
            return
        with self._lock:
            self.stats.connects += 1
            self._warned_full = False
            if self._closing:
                return
            self._publish_locked(_Message(self.availability_topic, ONLINE.encode(), 1, True))
            if self.info:
                info = json.dumps(dict(self.info), ensure_ascii=False, separators=(",", ":")).encode()
                self._publish_locked(_Message(self.info_topic, info, 1, True))
            if self.options.home_assistant:
                self._announce_locked()
            batch = self._pending.take_all()
            kept = [m for m in batch if not self._publish_locked(m)]
            self._pending.extend(kept)  # the connection dropped again meanwhile
            if not kept:
                self._link.up(f"sent {len(batch)} queued" if batch else "")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._lock:
            if self._closing:
                pass
            elif self.stats.connected:
                self._link.down(f"disconnected: {reason}")
            elif self._refused:
                self._refused = False  # the broker said why in its CONNACK: already reported
            else:
                # Something accepted the TCP connection but never answered the CONNECT.
                self._link.down(f"no answer to CONNECT within the keepalive ({reason}); is it an MQTT broker?")
            self.stats.connected = False
        with self._ack_lock:
            # QoS 0 messages in flight are gone (at most once); QoS>0 ones paho sends again.
            for mid in [mid for mid, qos in self._inflight.items() if qos == 0]:
                del self._inflight[mid]

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # paho calls this from its `except OSError:` block: the exception in hand says why.
        exc = sys.exc_info()[1]
        with self._lock:
            self._link.down(describe_network_error(exc) if exc is not None else "connection failed")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        # Called with paho's message lock held: only the ack lock here, which is never
        # held while calling into paho (self._lock is: taking it here could deadlock).
        with self._ack_lock:
            self.stats.acked += 1
            if self._inflight.pop(mid, None) is None:
                self._early_acks.add(mid)  # acknowledged before publish() returned to us


class _CameraState(BaseSink):
    """One camera's predictions as its Home Assistant state (several cameras on one sink)."""

    def __init__(self, sink: MqttSink, camera: str) -> None:
        self.sink = sink
        self.camera = camera

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        if self.sink.options.home_assistant and prediction.top_k:
            self.sink.publish_state(*prediction.top_k[0], camera=self.camera)


def open_mqtt(options: MqttOptions, context: SinkContext) -> MqttSink:
    return MqttSink(options, context.device_id, info=context.info, cameras=context.cameras)


KIND = register(
    SinkKind(
        key="mqtt",
        section="mqtt",
        options=MqttOptions,
        open=open_mqtt,
        enabled=lambda o: bool(o.host),
        requires=(("paho.mqtt", "paho-mqtt"),),
        live=False,  # it publishes the service's stamped event records
        help="Events, availability and Home Assistant discovery to an MQTT broker.",
    )
)
