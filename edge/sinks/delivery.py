"""Delivery to a server that may be away: a bounded queue, retries with backoff, and what the operator reads.

Every network sink needs the same three things, so they live here once:

- :class:`BoundedQueue`: messages made while the server is unreachable wait
  here; at most ``size`` of them, and when it is full the *oldest* make room
  (counted), because on a device that ran for days the newest events matter most.
- :class:`LinkState` and :class:`LinkLog`: whether the sink reaches its server,
  since when, and why not; logged at WARNING with the reason (host name not
  found, connection refused, timed out, not authorised) on the first failure,
  then at most once a minute while it lasts, and at INFO when it is back. A
  broker that is silently unreachable for days is the failure operators miss.
- :class:`DeliveryQueue`: a worker thread that sends queued items one by one
  (in order) with exponential backoff between failed tries; a
  :class:`PermanentFailure` (the server answered "no", e.g. HTTP 4xx) drops the
  item and counts it instead of retrying forever.

The MQTT sink keeps paho-mqtt's own reconnect loop and uses the queue and the
link state; the webhook sink uses :class:`DeliveryQueue` whole.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

#: While a server stays unreachable, its warning is repeated at most this often (seconds).
REPEAT_WARNING = 60.0


def describe_network_error(exc: BaseException) -> str:
    """Why a connection failed, in words an operator can act on."""
    import ssl

    if isinstance(exc, socket.gaierror):
        return f"host name not found (DNS: {exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the server's certificate is not trusted ({exc.verify_message or exc.reason})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc})"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out (host down, address unreachable, or a firewall drops the packets)"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


@dataclass
class LinkState:
    """Whether a network sink reaches its server (read by /healthz and the metrics)."""

    connected: bool = False
    last_error: str | None = None  # the most recent failure's reason (kept after a reconnect)
    since: float = field(default_factory=time.monotonic)  # monotonic time of the last change of ``connected``
    ever_connected: bool = False

    def down_for(self, now: float | None = None) -> float:
        """Seconds since the link went down (0 while connected)."""
        return 0.0 if self.connected else (time.monotonic() if now is None else now) - self.since


class LinkLog:
    """Keeps a :class:`LinkState` and logs its changes at a rate a journal can bear.

    ``name``: the sink as the operator knows it ("MQTT"); ``target``: where it
    connects (host:port, a URL without its path). Callers serialise the calls
    (one network thread, or their own lock).
    """

    def __init__(self, logger: logging.Logger, name: str, target: str, state: LinkState,
                 repeat: float = REPEAT_WARNING, clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.log = logger
        self.name = name
        self.target = target
        self.state = state
        self.repeat = repeat
        self.clock = clock
        self.attempts = 0  # failed tries in the current outage
        self._warned_at: float | None = None
        self._warned_reason: str | None = None

    def up(self, detail: str = "") -> None:
        """Connected (or the server answered): INFO, saying how long it was away if it was."""
        state = self.state
        now = self.clock()
        if state.connected:
            return
        outage = now - state.since
        suffix = f", {detail}" if detail else ""
        if state.ever_connected:
            self.log.info("%s: connected to %s again after %.0f s%s", self.name, self.target, outage, suffix)
        elif self.attempts:
            self.log.info("%s: connected to %s after %d failed tries over %.0f s%s",
                          self.name, self.target, self.attempts, outage, suffix)  # fmt: skip
        else:
            self.log.info("%s: connected to %s%s", self.name, self.target, suffix)
        state.connected = True
        state.since = now
        state.ever_connected = True
        self.attempts = 0
        self._warned_at = self._warned_reason = None

    def down(self, reason: str) -> None:
        """A failed try or a lost connection: WARNING with the reason, first time and then at a bounded rate."""
        state = self.state
        now = self.clock()
        state.last_error = reason
        self.attempts += 1
        if state.connected:
            state.connected = False
            state.since = now
            self.log.warning("%s: lost the connection to %s (%s); reconnecting", self.name, self.target, reason)
            # The first failed reconnect says why (the broker is down, a network is gone): warned too.
            self.attempts = 0
            self._warned_at = self._warned_reason = None
            return
        since_warning = None if self._warned_at is None else now - self._warned_at
        changed = reason != self._warned_reason and (since_warning is None or since_warning >= min(10.0, self.repeat))
        if since_warning is None or since_warning >= self.repeat or changed:
            if self.attempts == 1 or since_warning is None:
                self.log.warning("%s: cannot reach %s: %s; retrying", self.name, self.target, reason)
            else:
                self.log.warning("%s: still cannot reach %s after %d tries over %.0f s: %s; retrying",
                                 self.name, self.target, self.attempts, now - state.since, reason)  # fmt: skip
            self._warned_at, self._warned_reason = now, reason
        else:
            self.log.debug("%s: cannot reach %s: %s; retrying", self.name, self.target, reason)


class BoundedQueue(Generic[T]):
    """Messages waiting for the server: at most ``size``; when full the oldest make room and are counted.

    Thread-safe; ``changed`` is notified on every put, so a worker can wait on it.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"queue size must be at least 1, got {size}")
        self.size = size
        self.dropped = 0
        self._items: deque[T] = deque()
        self.changed = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> T | None:
        """Add at the end; returns the oldest item if it had to make room (already counted)."""
        with self.changed:
            lost = None
            if len(self._items) >= self.size:
                lost = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.changed.notify_all()
            return lost

    def put_back(self, item: T) -> T | None:
        """Return a taken item to the head (its send failed); if the queue filled meanwhile, it is the
        oldest and is the one dropped (returned, counted)."""
        with self.changed:
            if len(self._items) >= self.size:
                self.dropped += 1
                return item
            self._items.appendleft(item)
            self.changed.notify_all()
            return None

    def get(self) -> T | None:
        """The oldest item, or None when empty."""
        with self.changed:
            return self._items.popleft() if self._items else None

    def take_all(self) -> list[T]:
        with self.changed:
            items = list(self._items)
            self._items.clear()
            return items

    def extend(self, items: list[T]) -> None:
        """Put ``items`` (in order) at the end, dropping the oldest as needed."""
        for item in items:
            self.put(item)


class PermanentFailure(Exception):
    """The server answered and refused the item (e.g. HTTP 4xx): retrying would not help."""


@dataclass(frozen=True)
class DeliveryStats:
    """A :class:`DeliveryQueue`'s figures at one moment."""

    queued: int  # waiting, or being sent
    sent: int  # accepted by the server
    dropped: int  # lost to a full queue, refused by the server, or left at shutdown
    failures: int  # failed tries (each is retried)
    rejected: int  # refused by the server (part of dropped)
    connected: bool  # the last try reached the server (False until one has)
    last_error: str | None
    last_change: float  # monotonic time ``connected`` last changed
    ever_connected: bool


class DeliveryQueue(Generic[T]):
    """Sends queued items in order from a thread of its own, retrying with exponential backoff.

    ``send(item)`` delivers one item or raises: :class:`PermanentFailure` drops
    it (counted, logged at a bounded rate), anything else is a failed try
    (the link is down; the item is retried after ``min_delay``, doubling up to
    ``max_delay``). :meth:`put` never blocks. Items are sent one at a time: a
    webhook's rate is a few events a second at most.
    """

    def __init__(self, send: Callable[[T], None], *, logger: logging.Logger, name: str, target: str,
                 size: int = 1000, min_delay: float = 0.5, max_delay: float = 30.0,
                 describe: Callable[[BaseException], str] = describe_network_error) -> None:  # fmt: skip
        self.send = send
        self.log = logger
        self.name = name
        self.min_delay = min_delay
        self.max_delay = max(max_delay, min_delay)
        self.describe = describe
        self.queue: BoundedQueue[T] = BoundedQueue(size)
        self.link = LinkState()
        self._link_log = LinkLog(logger, name, target, self.link)
        # One lock for the queue, the counters and the link state (the queue's, reentrant).
        self._cond = self.queue.changed
        self._sent = self._failures = self._rejected = self._lost_at_close = 0
        self._in_flight = 0
        self._warned_full = False
        self._rejected_warned_at: float | None = None
        self._closing = False
        self._wake = threading.Event()  # ends a backoff wait early (close)
        self._abort = threading.Event()  # stop now, whatever is left
        self._thread: threading.Thread | None = None

    def start(self) -> DeliveryQueue[T]:
        self._thread = threading.Thread(target=self._run, name=f"movinet-edge {self.name}", daemon=True)
        self._thread.start()
        return self

    def put(self, item: T) -> None:
        """Queue ``item`` for sending; when the queue is full the oldest is dropped (counted, warned once)."""
        with self._cond:
            if self._closing:
                self._lost_at_close += 1
                return
            lost = self.queue.put(item) is not None
            warn = lost and not self._warned_full
            self._warned_full |= lost
        if warn:
            why = f" ({self.link.last_error})" if self.link.last_error else ""
            self.log.warning("%s: queue full (%d messages); dropping the oldest until the server takes them%s",
                             self.name, self.queue.size, why)  # fmt: skip

    @property
    def stats(self) -> DeliveryStats:
        with self._cond:
            link = self.link
            return DeliveryStats(
                queued=len(self.queue) + self._in_flight, sent=self._sent,
                dropped=self.queue.dropped + self._rejected + self._lost_at_close, failures=self._failures,
                rejected=self._rejected, connected=link.connected, last_error=link.last_error,
                last_change=link.since, ever_connected=link.ever_connected,
            )  # fmt: skip

    def close(self, timeout: float = 1.0) -> int:
        """Wait up to ``timeout`` s for the queue to drain (a failed item is tried once more at once),
        then stop the worker; returns how many items were not sent (counted as dropped)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._wake.set()
            while (len(self.queue) or self._in_flight) and self._thread is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.05))
            self._abort.set()
            self._wake.set()
            self._cond.notify_all()
        if self._thread is not None:
            # A send in progress may take up to its own timeout: the thread is a daemon, do not wait for it.
            self._thread.join(max(0.05, deadline - time.monotonic()))
            self._thread = None
        with self._cond:
            lost = len(self.queue) + self._in_flight
            self._lost_at_close += len(self.queue.take_all()) + self._in_flight
            self._in_flight = 0
        if lost:
            self.log.warning("%s: %d message(s) not delivered at shutdown (%s)",
                             self.name, lost, self.link.last_error or "no time left")  # fmt: skip
        return lost

    # ---- the worker ---------------------------------------------------------------------
    def _next(self) -> T | None:
        with self._cond:
            while not self._abort.is_set():
                item = self.queue.get()
                if item is not None:
                    self._in_flight = 1
                    return item
                self._cond.notify_all()  # close() waits for an empty queue
                self._cond.wait(0.5)
        return None

    def _run(self) -> None:
        delay = self.min_delay
        while (item := self._next()) is not None:
            try:
                self.send(item)
            except PermanentFailure as exc:
                with self._cond:
                    self._in_flight = 0
                    self._rejected += 1
                    self._link_log.up()  # it answered: reachable, but it refused this one
                    self._warn_rejected(str(exc))
                    self._cond.notify_all()
            except Exception as exc:  # a failed try: retried
                reason = self.describe(exc)
                with self._cond:
                    if self._abort.is_set():
                        return  # close() counts it as lost
                    self._failures += 1
                    self._link_log.down(reason)
                    self.queue.put_back(item)
                    self._in_flight = 0
                    self._cond.notify_all()
                woke = self._wake.wait(delay * random.uniform(0.8, 1.2))
                if self._abort.is_set():
                    return
                if woke:
                    self._wake.clear()  # close() asked for one more try now, not a retry storm
                delay = min(delay * 2, self.max_delay)
            else:
                with self._cond:
                    self._in_flight = 0
                    self._sent += 1
                    if not self.link.connected:
                        self._warned_full = False
                    self._link_log.up()
                    self._cond.notify_all()
                delay = self.min_delay

    def _warn_rejected(self, why: str) -> None:
        now = time.monotonic()
        if self._rejected_warned_at is None or now - self._rejected_warned_at >= REPEAT_WARNING:
            self._rejected_warned_at = now
            self.log.warning("%s: the server refused a message (%s); dropped (%d so far)", self.name, why,
                             self._rejected)  # fmt: skip
