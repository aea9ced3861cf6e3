"""Events to an HTTP endpoint: each stamped event record POSTed as JSON, retried while the server is away.

``[webhook] url`` turns it on. Every record (the same one MQTT publishes:
device id, session, seq, action id, times) is one ``POST`` with
``Content-Type: application/json``; ``headers`` adds e.g. an
``Authorization``. Records go through the shared :class:`~.delivery.DeliveryQueue`:
sent in order from a thread of their own, never blocking the frame loop, at
most ``queue_size`` waiting (the oldest dropped and counted when full).

What the server answers decides what happens to a record:

- 2xx: delivered.
- no answer (refused, DNS, timeout, reset), 5xx, 408 or 429: the server is
  away or busy; the record stays first in line and is retried with backoff
  (doubling up to ``max_delay`` seconds). Delivery is at least once: a record
  whose answer was lost is sent again, and ``(session, seq)`` identifies it.
- any other 4xx, or a redirect: the server refuses this record and will keep
  refusing it; it is logged (at a bounded rate) and dropped, counted.

Only the standard library: no new dependency on the device. The URL may hold a
secret (a token in its path), so logs name only its scheme, host and port.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .. import __version__
from ..options import at_least, between, option, positive
from ..results import BaseSink
from .delivery import DeliveryQueue, DeliveryStats, PermanentFailure
from .registry import SinkContext, SinkKind, register

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name


def url_check(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host, got {value!r}"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"{value!r} has an invalid port"
    return None


def headers_check(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return "must be a table of header names and string values"
    for name, text in value.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            return f"{name!r} is not a valid HTTP header name"
        if not isinstance(text, str) or "\r" in text or "\n" in text:
            return f"header {name}: the value must be one line of text"
    return None


@dataclass
class WebhookOptions:
    """Where to POST the events and how patiently."""

    url: str | None = field(default=None, metadata=option(
        "POST each event as JSON to this http(s) URL (enables the webhook).", flag="--webhook-url", check=url_check))
    timeout: float = field(default=5.0, metadata=option(
        "Seconds to wait for the server's answer.", cli=False, check=positive))
    queue_size: int = field(default=1000, metadata=option(
        "Events kept while the server is away.", cli=False, check=between(1, 100_000)))
    headers: dict[str, str] = field(default_factory=dict, metadata=option(
        "Extra HTTP headers, e.g. Authorization.", cli=False, check=headers_check))
    max_delay: float = field(default=30.0, metadata=option(
        "Longest wait between retries, seconds.", cli=False, check=at_least(1.0)))
    min_delay: float = field(default=0.5, metadata={"internal": True})


class ServerUnavailable(Exception):
    """The server answered 5xx, 408 or 429: away or busy for now; the record is retried."""


class WebhookSink(BaseSink):
    """POSTs event records (from the service monitor's listeners) to ``options.url``.

    :meth:`start` starts the sending thread; :meth:`publish_event` never blocks;
    :meth:`close` waits up to ``close_timeout`` seconds for what is queued.
    """

    def __init__(self, options: WebhookOptions, close_timeout: float = 1.0) -> None:
        if options.url is None or url_check(options.url):
            raise ValueError(f"webhook URL: {url_check(options.url) or 'none given'}")
        self.options = options
        self.close_timeout = close_timeout
        self.headers = {
            "Content-Type": "application/json",
            "User-Agent": f"movinet-edge/{__version__}",
            **options.headers,
        }
        # A redirect is a configuration to fix, not a place to re-POST to: it arrives as an error.
        self._opener = _opener_without_redirects()
        parts = urlsplit(options.url)
        target = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
        self.delivery: DeliveryQueue[bytes] = DeliveryQueue(
            self._post, logger=log, name="webhook", target=target, size=options.queue_size,
            min_delay=options.min_delay, max_delay=options.max_delay,
        )  # fmt: skip

    def start(self) -> WebhookSink:
        self.delivery.start()
        return self

    def publish_event(self, record: dict[str, Any]) -> None:
        """Queue one record; it is serialised now, so later changes to the dict do not matter."""
        self.delivery.put(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode())

    @property
    def stats(self) -> DeliveryStats:
        return self.delivery.stats

    @property
    def queued(self) -> int:
        return self.delivery.stats.queued

    def close(self) -> None:
        self.delivery.close(self.close_timeout)

    def _post(self, body: bytes) -> None:
        import urllib.error
        import urllib.request

        assert self.options.url is not None
        request = urllib.request.Request(self.options.url, data=body, headers=self.headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.options.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            status = f"HTTP {exc.code} {exc.reason}"
            if exc.code >= 500 or exc.code in (408, 429):
                raise ServerUnavailable(status) from None
            if 300 <= exc.code < 400:
                raise PermanentFailure(f"{status}: redirected; give the final URL") from None
            raise PermanentFailure(status) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            raise reason if isinstance(reason, BaseException) else ConnectionError(str(reason)) from None


def _opener_without_redirects() -> Any:
    """urllib's opener, but a 3xx answer arrives as the HTTPError it is instead of being followed."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(NoRedirect)


def open_webhook(options: WebhookOptions, context: SinkContext) -> WebhookSink:
    return WebhookSink(options)


KIND = register(
    SinkKind(
        key="webhook",
        section="webhook",
        options=WebhookOptions,
        open=open_webhook,
        enabled=lambda o: bool(o.url),
        live=False,  # it posts the service's stamped event records
        help="Each event POSTed as JSON to an HTTP endpoint, retried while it is away.",
    )
)
