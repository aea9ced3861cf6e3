"""The service's HTTP endpoints: ``/healthz``, ``/metrics``, ``/events``.

A small server on threads of its own (http_server.py: a fixed number of
threads, bounded connections, timeouts): the frame loop never waits for a
client, and a slow scraper or a port scanner cannot stall inference or the
probes. It binds to 127.0.0.1 unless configured otherwise, because metrics
and recent events are not for everyone on the network.

- ``/healthz``: 200 while frames flow and inference keeps up, else 503; the
  body is JSON with the reason (what a load balancer, a container runtime
  or a person with curl wants), every camera's state and the broker's (see
  service_health.py for how they add up).
- ``/metrics``: Prometheus text format (OpenMetrics if the scraper asks).
- ``/events``: the most recent events as JSON, newest last; ``?limit=N``.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ..errors import EdgeError
from .http_server import BoundedHTTPServer, HttpLimits, OneRequestHandler
from .monitor import ServiceMonitor
from .service_health import ServiceHealth, as_service_health

log = logging.getLogger(__name__)


class _Server(BoundedHTTPServer):
    health: ServiceHealth
    registry: CollectorRegistry


class _Handler(OneRequestHandler):
    server: _Server  # type: ignore[assignment]
    server_version = "movinet-edge"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        url = urlsplit(self.path)
        route = url.path.rstrip("/") or "/"
        if route == "/healthz":
            health = self.server.health.health()
            body = {"status": health.state, "ok": health.ok, "reason": health.reason, **health.details}
            self._json(HTTPStatus.OK if health.ok else HTTPStatus.SERVICE_UNAVAILABLE, body)
        elif route == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(HTTPStatus.OK, encoder(self.server.registry), content_type)
        elif route == "/events":
            query = parse_qs(url.query)
            try:
                limit = int(query.get("limit", ["0"])[0])
                if limit < 0:
                    raise ValueError
            except ValueError:
                self._json(HTTPStatus.BAD_REQUEST, {"error": "limit must be a non-negative integer"})
                return
            self._json(HTTPStatus.OK, {"events": self.server.health.recent_events(limit or None)})
        elif route == "/":
            self._json(HTTPStatus.OK, {"endpoints": ["/healthz", "/metrics", "/events"]})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {url.path}; try /healthz, /metrics, /events"})

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def _json(self, status: HTTPStatus, body: Any) -> None:
        self._send(status, json.dumps(body, ensure_ascii=False).encode(), "application/json")

    def _send(self, status: HTTPStatus, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        log.debug("http %s - %s", self.address_string(), format % args)


class HealthServer:
    """The HTTP endpoints on background threads. ``port`` 0 picks a free one (see :attr:`port`).

    ``health``: the service's :class:`ServiceHealth` (a single camera's
    monitor is taken as a one-camera service). ``limits``: threads,
    connections and timeouts (defaults suit a probe, a scraper and a few
    people).
    """

    def __init__(self, health: ServiceHealth | ServiceMonitor, registry: CollectorRegistry,
                 host: str = "127.0.0.1", port: int = 9750, limits: HttpLimits | None = None) -> None:
        try:
            self._server = _Server((host, port), _Handler, limits)
        except OSError as exc:
            raise EdgeError(
                f"cannot listen on {host}:{port} for HTTP ({exc.strerror or exc}); "
                "choose another [http] listen address or stop what uses it"
            ) from None
        self._server.health = as_service_health(health)
        self._server.registry = registry

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return self._server.connections

    def start(self) -> HealthServer:
        self._server.start()
        return self

    def close(self) -> None:
        """Stop serving (within a second), close the connections and free the port."""
        self._server.close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
