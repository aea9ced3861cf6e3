"""Events to an MQTT broker: availability with a last will, JSON events, a bounded queue.

Topic layout (``P`` is ``[mqtt] topic_prefix``, default ``movinet-edge``;
``D`` is the device id, default the host name)::

    P/D/availability   "online" / "offline"       retained, QoS 1; the broker's last will
                                                   publishes "offline" if the device vanishes
    P/D/info           JSON: version, model, labels, source, session    retained, QoS 1
    P/D/events         JSON per event (new / update / end)               [mqtt] qos, retain

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
network thread) and events wait in a queue of ``queue_size`` messages; when
it is full the oldest are dropped and counted (``movinet_edge_mqtt_dropped``).
QoS 1/2 messages sent but not acknowledged when the connection dropped are
sent again by paho-mqtt after the reconnect. A broker that is connected but
stops acknowledging gets at most ``queue_size`` messages in flight; newer
ones are dropped and counted.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from ..errors import EdgeError
from ..results import BaseSink

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
class MqttOptions:
    """How to reach the broker and what to publish; see the module docstring for the topics."""

    host: str
    device_id: str
    port: int = 1883
    client_id: str | None = None
    topic_prefix: str = "movinet-edge"
    qos: int = 1
    retain: bool = False
    username: str | None = None
    password: str | None = None
    keepalive: int = 30
    queue_size: int = 1000
    reconnect_min_delay: float = 1.0
    reconnect_max_delay: float = 30.0
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False

    @property
    def base(self) -> str:
        return f"{self.topic_prefix}/{self.device_id}"

    @property
    def availability_topic(self) -> str:
        return f"{self.base}/availability"

    @property
    def info_topic(self) -> str:
        return f"{self.base}/info"

    @property
    def events_topic(self) -> str:
        return f"{self.base}/events"


@dataclass
class MqttStats:
    connected: bool = False
    connects: int = 0
    sent: int = 0  # handed to the client library
    acked: int = 0  # acknowledged by the broker (QoS 0: written to the socket)
    dropped: int = 0  # lost to a full queue
    last_error: str | None = None


@dataclass
class _Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool


class MqttSink(BaseSink):
    """Publishes event records (from :class:`~.monitor.ServiceMonitor`'s listeners) to a broker.

    :meth:`start` connects in the background and returns at once (a broker
    that is down at boot is retried, not fatal). :meth:`publish_event` never
    blocks the frame loop. :meth:`close` (the pipeline calls it at the end,
    after the final ``end`` events) publishes ``offline``, waits up to
    ``close_timeout`` seconds for acknowledgements and disconnects.
    """

    def __init__(self, options: MqttOptions, info: dict[str, Any] | None = None, close_timeout: float = 1.0) -> None:
        self.options = options
        self.info = dict(info or {})
        self.close_timeout = close_timeout
        self.stats = MqttStats()
        self._lock = threading.Lock()  # the queue and the connection state
        self._ack_lock = threading.Lock()  # sent-but-unacknowledged message ids
        self._inflight: dict[int, int] = {}  # mid -> qos
        self._early_acks: set[int] = set()
        # Messages made while disconnected; the oldest go first when it overflows.
        self._pending: deque[_Message] = deque()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._warned_full = False
        o = options
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=o.client_id or f"movinet-edge-{o.device_id}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        self.client.enable_logger(_paho_log)
        # paho-mqtt keeps unacknowledged QoS>0 messages itself and paces them (20 in flight);
        # its store is bounded by _submit (a broker that stops acknowledging), not by paho,
        # which would refuse the queue flushed after a reconnect.
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=o.reconnect_min_delay, max_delay=o.reconnect_max_delay)  # type: ignore[arg-type]
        self.client.will_set(o.availability_topic, OFFLINE, qos=1, retain=True)
        if o.username is not None:
            self.client.username_pw_set(o.username, o.password)
        if o.tls:
            try:
                self.client.tls_set(
                    ca_certs=str(o.ca_file) if o.ca_file else None,
                    certfile=str(o.cert_file) if o.cert_file else None,
                    keyfile=str(o.key_file) if o.key_file else None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (ssl.SSLError, OSError) as exc:
                raise EdgeError(
                    f"MQTT TLS setup failed ({exc}); check [mqtt.tls] ca_file, cert_file and key_file"
                ) from None
            if o.tls_insecure:
                self.client.tls_insecure_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_connect_fail = self._on_connect_fail

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> MqttSink:
        o = self.options
        log.info("MQTT: connecting to %s:%d as %s, topics %s/...", o.host, o.port, self.client_id, o.base)
        self.client.connect_async(o.host, o.port, keepalive=o.keepalive)
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
        return self.options.client_id or f"movinet-edge-{self.options.device_id}"

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
                self._publish_locked(_Message(self.options.availability_topic, OFFLINE.encode(), 1, True))
        if connected:
            while time.monotonic() < deadline and self.stats.connected and self._unacked():
                time.sleep(0.02)
        lost = self.queued
        if lost:
            log.warning("MQTT: %d message(s) not delivered at shutdown (broker unreachable)", lost)
        self.client.disconnect()
        if self._thread is not None:
            # Connected, the thread ends once DISCONNECT is sent. Otherwise it may sit in a
            # reconnect backoff or a connect timeout: it is a daemon, so do not wait for it.
            self._thread.join(max(0.1, deadline - time.monotonic()) if connected else 0.1)
            self._thread = None

    # ---- publishing --------------------------------------------------------------------
    def publish_event(self, record: dict[str, Any]) -> None:
        """Queue or send one event record (an :class:`~.monitor.EventStamper` record)."""
        o = self.options
        payload = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        self._submit(_Message(o.events_topic, payload, o.qos, o.retain))

    def _submit(self, message: _Message) -> None:
        with self._lock:
            if not self.stats.connected or self._pending:
                self._enqueue_locked(message)
            elif self._unacked_count() >= self.options.queue_size:
                self._count_drop("the broker stopped acknowledging; dropping new events")
            elif not self._publish_locked(message):
                self._pending.appendleft(message)

    def _enqueue_locked(self, message: _Message) -> None:
        if len(self._pending) >= self.options.queue_size:
            self._pending.popleft()
            self._count_drop("the broker is away; dropping the oldest")
        self._pending.append(message)

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
        info = self.client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.stats.sent += 1
            self._track(info.mid, message.qos)
        elif info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
            if message.qos == 0:
                return False  # lost the race with a disconnect
            self.stats.sent += 1  # paho keeps it and sends it after the reconnect
            self._track(info.mid, message.qos)
        else:
            self.stats.last_error = mqtt.error_string(info.rc)
            self.stats.dropped += 1
            log.warning("MQTT: publish to %s failed: %s", message.topic, self.stats.last_error)
        return True

    # ---- paho callbacks (its network thread) -------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.stats.last_error = str(reason)
            log.warning("MQTT: broker refused the connection: %s", reason)
            return
        with self._lock:
            self.stats.connects += 1
            self._warned_full = False
            if self._closing:
                return
            o = self.options
            self._publish_locked(_Message(o.availability_topic, ONLINE.encode(), 1, True))
            if self.info:
                info = json.dumps(self.info, ensure_ascii=False, separators=(",", ":")).encode()
                self._publish_locked(_Message(o.info_topic, info, 1, True))
            batch = list(self._pending)
            self._pending.clear()
            kept = [m for m in batch if not self._publish_locked(m)]
            self._pending.extend(kept)  # the connection dropped again meanwhile
            waiting = len(batch)
            self.stats.connected = not kept
        log.info("MQTT: connected to %s:%d%s", o.host, o.port, f", sent {waiting} queued" if waiting else "")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._lock:
            was = self.stats.connected
            self.stats.connected = False
        with self._ack_lock:
            # QoS 0 messages in flight are gone (at most once); QoS>0 ones paho sends again.
            for mid in [mid for mid, qos in self._inflight.items() if qos == 0]:
                del self._inflight[mid]
        if was and not self._closing:
            log.warning("MQTT: disconnected from %s (%s); reconnecting", self.options.host, reason)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.stats.last_error = "connection failed"
        log.debug("MQTT: cannot reach %s:%d; retrying", self.options.host, self.options.port)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        # Called with paho's message lock held: only the ack lock here, which is never
        # held while calling into paho (self._lock is: taking it here could deadlock).
        with self._ack_lock:
            self.stats.acked += 1
            if self._inflight.pop(mid, None) is None:
                self._early_acks.add(mid)  # acknowledged before publish() returned to us
