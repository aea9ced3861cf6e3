"""sd_notify through a real datagram socket the test owns, as systemd would own it."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from movinet_edge.frames import Frame
from movinet_edge.service.notify import STATUS_EVERY, Notifier, SystemdSink


@pytest.fixture
def systemd(notify_socket, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    return notify_socket


def test_ready_watchdog_and_status(systemd) -> None:
    n = Notifier()
    assert n.enabled and n.watchdog_seconds == 3.0 and n.ping_interval == 1.0
    n.ready()
    assert n.ping(now=10.0) and not n.ping(now=10.5) and n.ping(now=11.0)  # a third of WatchdogSec
    assert n.status("5.0 fps in,\n top-1 juggling", now=10.0)
    assert not n.status("later", now=10.0 + STATUS_EVERY / 2)  # throttled
    n.stopping()
    assert systemd.drain() == [
        "READY=1", "WATCHDOG=1", "WATCHDOG=1", "STATUS=5.0 fps in, top-1 juggling", "STATUS=stopping",
    ]  # fmt: skip


def test_the_sink_says_ready_at_the_first_frame_and_pings_from_the_loop(systemd) -> None:
    sink = SystemdSink(Notifier(), lambda: "running")
    assert systemd.drain() == []
    frame = Frame(np.zeros((2, 2, 3), np.uint8), 0.0, 0)
    sink.on_frame(frame)
    sink.on_frame(frame)  # within the ping interval: nothing more
    messages = systemd.drain()
    assert messages[-2:] == ["READY=1", "WATCHDOG=1"] and messages.count("READY=1") == 1


def test_abstract_socket(monkeypatch) -> None:
    name = f"movinet-edge-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        Notifier().ready()
        assert server.recv(100) == b"READY=1\n"


def test_no_service_manager_means_no_messages(monkeypatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled and n.watchdog_seconds is None
    n.ready()
    assert not n.ping() and not n.status("x")


def test_watchdog_meant_for_another_process_is_ignored(systemd, monkeypatch) -> None:
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    n = Notifier()
    assert n.enabled and n.watchdog_seconds is None and not n.ping()


def test_a_vanished_socket_does_not_stop_the_service(systemd, caplog) -> None:
    n = Notifier()
    systemd.close()
    systemd.path.unlink()
    n.ready()
    n.ping(now=1.0)
    assert n.ready_sent
    assert sum("cannot notify the service manager" in r.message for r in caplog.records) == 1
