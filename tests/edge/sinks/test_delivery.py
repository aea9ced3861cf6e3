"""The pieces every network sink shares: the bounded queue, the link state and its log lines,
and the reasons an operator reads for a failed connection (real sockets)."""

from __future__ import annotations

import logging
import socket

import pytest
from movinet_edge.sinks.delivery import BoundedQueue, LinkLog, LinkState, describe_network_error

from service.support import free_port


def test_the_queue_drops_the_oldest_and_counts() -> None:
    queue: BoundedQueue[int] = BoundedQueue(3)
    assert [queue.put(i) for i in range(1, 6)] == [None, None, None, 1, 2]
    assert queue.dropped == 2 and len(queue) == 3
    assert queue.get() == 3
    queue.put(6)
    assert queue.put_back(3) == 3 and queue.dropped == 3  # full: the oldest (the one put back) goes
    assert queue.take_all() == [4, 5, 6] and queue.get() is None
    assert queue.put_back(4) is None and queue.get() == 4
    with pytest.raises(ValueError):
        BoundedQueue(0)


def test_the_link_log_warns_once_then_at_a_bounded_rate(caplog) -> None:
    now = [1000.0]
    state = LinkState(since=now[0])
    logger = logging.getLogger("test.link")
    caplog.set_level(logging.DEBUG, logger="test.link")
    link = LinkLog(logger, "MQTT", "broker:1883", state, repeat=60.0, clock=lambda: now[0])

    def lines() -> list[tuple[str, str]]:
        out = [(r.levelname, r.getMessage()) for r in caplog.records]
        caplog.clear()
        return out

    for _ in range(5):  # a retry every 2 s: one warning, then debug
        link.down("connection refused")
        now[0] += 2.0
    assert lines() == [("WARNING", "MQTT: cannot reach broker:1883: connection refused; retrying")] + [
        ("DEBUG", "MQTT: cannot reach broker:1883: connection refused; retrying")
    ] * 4
    now[0] = 1061.0
    link.down("connection refused")
    assert lines() == [("WARNING", "MQTT: still cannot reach broker:1883 after 6 tries over 61 s: "
                                   "connection refused; retrying")]  # fmt: skip
    now[0] += 12.0
    link.down("not authorised")  # a new reason is worth a line (not more than one per 10 s)
    assert lines()[0][0] == "WARNING"
    assert (state.connected, state.last_error, state.ever_connected) == (False, "not authorised", False)
    link.up("sent 3 queued")
    assert lines() == [("INFO", "MQTT: connected to broker:1883 after 7 failed tries over 73 s, sent 3 queued")]
    assert state.connected and state.ever_connected and state.since == now[0] and state.down_for() == 0.0
    now[0] += 5.0
    link.down("disconnected: keepalive timeout")
    assert lines() == [("WARNING", "MQTT: lost the connection to broker:1883 (disconnected: keepalive timeout); "
                                   "reconnecting")]  # fmt: skip
    assert state.since == now[0] and not state.connected
    now[0] += 1.0
    link.down("connection refused")  # the first failed reconnect after a loss says why
    link.down("connection refused")
    assert lines() == [("WARNING", "MQTT: cannot reach broker:1883: connection refused; retrying"),
                       ("DEBUG", "MQTT: cannot reach broker:1883: connection refused; retrying")]  # fmt: skip
    now[0] += 29.0
    link.up()
    assert lines() == [("INFO", "MQTT: connected to broker:1883 again after 30 s")]


def test_reasons_from_real_sockets() -> None:
    with pytest.raises(OSError) as refused:
        socket.create_connection(("127.0.0.1", free_port()), timeout=2)
    assert describe_network_error(refused.value) == "connection refused (nothing listens on that port)"
    with pytest.raises(OSError) as unknown:
        socket.getaddrinfo("no-such-host.invalid", 80)
    assert describe_network_error(unknown.value).startswith("host name not found (DNS: ")
    assert describe_network_error(TimeoutError()).startswith("timed out")
    assert describe_network_error(OSError(113, "No route to host")) == "no route to host"
    assert describe_network_error(ValueError("odd")) == "odd"
