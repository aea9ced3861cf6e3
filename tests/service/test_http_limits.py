"""The HTTP server stays small whatever clients do: real sockets against a real server.

Idle connections hold no thread, the number of connections is bounded, idle and half-sent requests
are closed after their timeouts, and a probe still gets its answer meanwhile."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from service.http_support import Clock, get
from service.support import WAIT, wait_until

from movinet_edge.service.health import HealthServer
from movinet_edge.service.http_server import HttpLimits
from movinet_edge.service.metrics import ServiceMetrics
from movinet_edge.service.monitor import EventStamper, ServiceMonitor, WallClock


@contextmanager
def server(limits: HttpLimits | None = None) -> Iterator[HealthServer]:
    monitor = ServiceMonitor(5.0, stamper=EventStamper("dev", WallClock()), clock=Clock())
    metrics = ServiceMetrics(monitor, process=False)
    with HealthServer(monitor, metrics.registry, "127.0.0.1", 0, **({"limits": limits} if limits else {})) as s:
        yield s


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed ``sock`` (waits up to WAIT seconds; False if it never does)."""
    sock.settimeout(WAIT)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_500_idle_connections_hold_no_threads_and_healthz_still_answers() -> None:
    limits = HttpLimits()  # the defaults
    before = threading.active_count()
    with server() as s:
        threads_serving = threading.active_count() - before
        clients = []
        try:
            for _ in range(500):
                clients.append(socket.create_connection((s.host, s.port), timeout=WAIT))
            status, _, body = get(s.url + "/healthz")
            assert status == 503 and '"starting"' in body  # answered (no frames yet: starting)
            assert threading.active_count() - before == threads_serving <= limits.workers + 1
            wait_until(lambda: s.connections <= limits.max_connections, what="the server to bound its connections")
        finally:
            for c in clients:
                c.close()


def test_idle_connections_are_closed_after_the_timeout() -> None:
    with server(HttpLimits(idle_timeout=0.5)) as s:
        silent = socket.create_connection((s.host, s.port), timeout=WAIT)  # connects, never asks
        kept = http.client.HTTPConnection(s.host, s.port, timeout=WAIT)  # asks once, keeps it open
        kept.request("GET", "/healthz")
        response = kept.getresponse()
        assert response.status == 503 and response.getheader("Connection") != "close"
        response.read()
        assert closed_by_server(silent)
        assert closed_by_server(kept.sock)
        wait_until(lambda: s.connections == 0, what="the server to forget the closed connections")


def test_a_request_trickling_in_holds_no_worker_and_is_dropped_after_the_read_timeout() -> None:
    with server(HttpLimits(workers=1, read_timeout=1.0)) as s:
        slow = socket.create_connection((s.host, s.port), timeout=WAIT)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        assert get(s.url + "/metrics")[0] == 200  # the one worker is free
        assert closed_by_server(slow)


def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    with server() as s:
        conn = http.client.HTTPConnection(s.host, s.port, timeout=WAIT)
        for path, status in (("/healthz", 503), ("/metrics", 200), ("/nope", 404)):
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == status
            response.read()
        conn.close()
        raw = socket.create_connection((s.host, s.port), timeout=WAIT)
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
        first, _, second = answer.partition(b"HTTP/1.1 200")
        assert first.startswith(b"HTTP/1.1 503") and b'"starting"' in first
        assert second and b"Content-Length" in second and not second.rstrip().endswith(b"}")  # HEAD: no body
