"""The service's own TOML sections: smoothing, events and the HTTP endpoints.

The other sections are other modules' option types: ``[model]`` and ``[window]`` are
:mod:`movinet_edge.app`'s, the sources' keys come from their registry, and each sink kind
declares its own section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..options import at_least, between, one_of, option
from ..postprocess import SMOOTHING_METHODS, EventOptions
from .http_server import HttpLimits
from .monitor import HealthOptions

#: A device or camera id: an MQTT topic level.
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class SmoothingSection:
    method: str = field(default="ema", metadata=option(check=one_of(SMOOTHING_METHODS)))
    alpha: float = field(default=0.5, metadata=option(check=between(0.0, 1.0, low_open=True)))
    window: int = field(default=5, metadata=option(check=at_least(1)))


@dataclass
class EventsSection:
    start_threshold: float = field(default=0.5, metadata=option(check=between(0.0, 1.0)))
    end_threshold: float = field(default=0.3, metadata=option(check=between(0.0, 1.0)))
    min_steps: int = field(default=2, metadata=option(check=at_least(1)))
    update_every: float = field(default=5.0, metadata=option(check=at_least(0.0)))
    update_delta: float = field(default=0.15, metadata=option(check=at_least(0.0)))
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)

    def options(self) -> EventOptions:
        return EventOptions(
            start_threshold=self.start_threshold, end_threshold=self.end_threshold, min_steps=self.min_steps,
            update_every=self.update_every, update_delta=self.update_delta,
            allow=tuple(self.allow), deny=tuple(self.deny),
        )  # fmt: skip


@dataclass
class HttpSection:
    """[http]: /healthz, /metrics, /events. Loopback by default: metrics are not for the whole network.

    The same table also holds the health verdict's options (:class:`HealthOptions`) and the
    server's connection limits (:class:`HttpLimits`): one section, three option types.
    """

    enabled: bool = True
    listen: str = "127.0.0.1:9750"
    recent_events: int = field(default=100, metadata=option(check=between(1, 10000)))


HTTP_PARTS = (HttpSection, HealthOptions, HttpLimits)
