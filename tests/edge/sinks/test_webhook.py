"""The webhook sink against a real HTTP server on a loopback port: records arrive as JSON, a
server that is down is retried until it is up, 5xx is retried, 4xx is dropped and counted, a
full queue drops the oldest."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from movinet_edge.sinks.webhook import WebhookOptions, WebhookSink

from service.support import free_port, wait_until


class Endpoint:
    """An HTTP server that records every POST; ``answer(record) -> status`` decides the reply.

    It can be stopped and started again on the same port (a server that goes away and comes back).
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.answer: Callable[[dict[str, Any]], int] = lambda record: 200
        self.server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/secret-token"

    def start(self) -> Endpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                record = json.loads(body)
                status = endpoint.answer(record)
                if status < 300:
                    with endpoint._lock:
                        endpoint.received.append(record)
                        endpoint.headers.append(dict(self.headers))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def seqs(self) -> list[int]:
        with self._lock:
            return [r["seq"] for r in self.received]


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.stop()


@pytest.fixture
def sinks() -> Iterator[Callable[..., WebhookSink]]:
    made: list[WebhookSink] = []

    def make(url: str, **kwargs: Any) -> WebhookSink:
        kwargs.setdefault("max_delay", 1.0)
        kwargs.setdefault("timeout", 2.0)
        sink = WebhookSink(WebhookOptions(url=url, min_delay=0.05, **kwargs))
        made.append(sink)
        return sink.start()

    yield make
    for sink in made:
        sink.close()


def record(seq: int, kind: str = "update") -> dict[str, Any]:
    return {"type": "event", "kind": kind, "label": "juggling", "seq": seq, "device_id": "cam1", "session": "s1"}


def test_events_arrive_as_json_in_order(endpoint: Endpoint, sinks) -> None:
    endpoint.start()
    sink = sinks(endpoint.url, headers={"Authorization": "Bearer t0ken"})
    for seq in range(1, 4):
        sink.publish_event({**record(seq), "label": "tai chi — 太极"})
    wait_until(lambda: len(endpoint.received) == 3, what="three events")
    assert endpoint.seqs() == [1, 2, 3]
    assert endpoint.received[0] == {**record(1), "label": "tai chi — 太极"}
    headers = endpoint.headers[0]
    assert headers["Content-Type"] == "application/json" and headers["Authorization"] == "Bearer t0ken"
    assert headers["User-Agent"].startswith("movinet-edge/")
    wait_until(lambda: sink.stats.sent == 3, what="the count")
    stats = sink.stats
    assert (stats.queued, stats.dropped, stats.failures, stats.connected, stats.ever_connected) == (0, 0, 0, True, True)


def test_a_server_that_is_down_is_retried_until_it_is_up(endpoint: Endpoint, sinks, caplog) -> None:
    caplog.set_level(logging.INFO, logger="movinet_edge.sinks.webhook")
    sink = sinks(endpoint.url)  # nothing listens yet
    for seq in range(1, 4):
        sink.publish_event(record(seq))
    wait_until(lambda: sink.stats.failures >= 2, what="failed tries")
    stats = sink.stats
    assert not stats.connected and not stats.ever_connected and stats.queued == 3
    assert "connection refused" in stats.last_error
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # One warning with the reason, naming the server but not the URL's secret path.
    assert warnings == [f"webhook: cannot reach http://127.0.0.1:{endpoint.port}: "
                        "connection refused (nothing listens on that port); retrying"]  # fmt: skip
    endpoint.start()
    wait_until(lambda: len(endpoint.received) == 3, what="the queued events")
    assert endpoint.seqs() == [1, 2, 3]
    # The server keeps a request before it answers; the sink counts it once the answer is back.
    wait_until(lambda: sink.stats.connected and sink.stats.sent == 3, what="the link state and the sends counted")
    assert sink.stats.dropped == 0
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("webhook: connected to" in m and "failed tries" in m for m in infos)


def test_5xx_is_retried_and_4xx_is_dropped_and_counted(endpoint: Endpoint, sinks, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="movinet_edge.sinks.webhook")
    answers = {1: [503, 502, 200], 2: [400], 3: [200], 4: [404], 5: [200]}
    endpoint.answer = lambda r: answers[r["seq"]].pop(0) if len(answers[r["seq"]]) > 1 else answers[r["seq"]][0]
    endpoint.start()
    sink = sinks(endpoint.url)
    for seq in range(1, 6):
        sink.publish_event(record(seq))
    wait_until(lambda: sink.stats.queued == 0 and sink.stats.sent == 3, what="every record handled")
    assert endpoint.seqs() == [1, 3, 5]  # 1 after two retries, in order; 2 and 4 refused for good
    stats = sink.stats
    assert (stats.sent, stats.rejected, stats.dropped, stats.failures) == (3, 2, 2, 2)
    assert stats.last_error == "HTTP 502 Bad Gateway"
    refused = [r.getMessage() for r in caplog.records if "refused a message" in r.getMessage()]
    assert refused == ["webhook: the server refused a message (HTTP 400 Bad Request); dropped (1 so far)"]


def test_a_redirect_is_not_followed(endpoint: Endpoint, sinks) -> None:
    endpoint.answer = lambda r: 308 if r["seq"] == 1 else 200
    endpoint.start()
    sink = sinks(endpoint.url)
    sink.publish_event(record(1))
    sink.publish_event(record(2))
    wait_until(lambda: sink.stats.sent == 1 and sink.stats.queued == 0, what="both records handled")
    assert endpoint.seqs() == [2] and sink.stats.rejected == 1


def test_a_full_queue_drops_the_oldest(endpoint: Endpoint, sinks, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="movinet_edge.sinks.webhook")
    sink = sinks(endpoint.url, queue_size=3)  # the server is down
    for seq in range(1, 7):
        sink.publish_event(record(seq))
    # The one in flight when the queue filled up is the oldest: dropped when its try fails.
    wait_until(lambda: sink.stats.failures >= 1 and sink.stats.dropped == 3, what="the drops")
    assert sink.stats.queued == 3
    assert sum("queue full (3 messages)" in r.getMessage() for r in caplog.records) == 1  # warned once
    endpoint.start()
    wait_until(lambda: len(endpoint.received) == 3, what="what the queue kept")
    assert endpoint.seqs() == [4, 5, 6]
    assert sink.stats.dropped == 3


def test_close_is_bounded_and_counts_what_was_not_delivered(endpoint: Endpoint, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="movinet_edge.sinks.webhook")
    sink = WebhookSink(WebhookOptions(url=endpoint.url, min_delay=0.05, max_delay=30.0), close_timeout=0.5).start()
    for seq in range(1, 3):
        sink.publish_event(record(seq))
    wait_until(lambda: sink.stats.failures >= 1, what="a failed try")
    sink.close()  # returns although the server never came: the worker is in a 30 s backoff at most
    stats = sink.stats
    assert stats.dropped == 2 and stats.sent == 0
    assert any("2 message(s) not delivered at shutdown (connection refused" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    sink.publish_event(record(3))  # after close: counted, not queued
    assert sink.stats.dropped == 3 and sink.stats.queued == 0


def test_the_queue_drains_at_close_when_the_server_is_up(endpoint: Endpoint) -> None:
    endpoint.start()
    sink = WebhookSink(WebhookOptions(url=endpoint.url), close_timeout=5.0).start()
    for seq in range(1, 21):
        sink.publish_event(record(seq))
    sink.close()
    assert endpoint.seqs() == list(range(1, 21))
    assert sink.stats.sent == 20 and sink.stats.dropped == 0


def test_an_invalid_url_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        WebhookSink(WebhookOptions(url="localhost:8080/hook"))
