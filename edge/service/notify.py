"""systemd's notify protocol: READY, WATCHDOG and STATUS from the frame loop.

The datagrams go through `systemd-watchdog` (PyPI ``systemd-watchdog``, MIT):
pure Python, no libsystemd headers or C compiler needed on a Pi, maintained,
and it also implements ``sd_watchdog_enabled()`` (``WATCHDOG_USEC`` and
``WATCHDOG_PID``) and abstract-namespace sockets. ``sdnotify`` has not been
released since 2017; ``systemd-python`` and ``cysystemd`` compile against
libsystemd. The library's own throttle (``ping``) runs on the wall clock,
which jumps on a Pi without a real-time clock when NTP syncs, so this module
throttles on the monotonic clock and sends with ``notify()``.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op. A notify
socket that went away is logged once and never stops the service: systemd
notices missing pings on its own.

Why the pings come from the frame loop (:class:`SystemdSink` is a pipeline
sink): a loop stuck in a driver call or a hung inference stops pinging, and
systemd restarts the service after ``WatchdogSec``. A stream that is
reconnecting pings from the reconnect callback: the loop is alive, waiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from systemd_watchdog import WatchDog

from ..frames import Frame
from ..results import BaseSink, Prediction

log = logging.getLogger(__name__)

# STATUS= is for people looking at `systemctl status`: every few seconds is plenty.
STATUS_EVERY = 2.0


class Notifier:
    """READY=1, WATCHDOG=1 (every third of ``WatchdogSec``), STATUS= (throttled): the messages a service sends."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._wd = WatchDog()
        self._clock = clock
        self._failed = False
        self.ready_sent = False
        self._last_ping: float | None = None
        self._last_status: float | None = None
        # sd_watchdog_enabled(): WATCHDOG_USEC set (and WATCHDOG_PID ours, if set).
        watchdog_us = self._wd.timeout if self._wd.is_enabled else 0
        self.watchdog_enabled = self._wd.is_enabled and 0 < watchdog_us < 24 * 3600 * 1_000_000
        #: Seconds between pings: a third of the watchdog timeout, so one late ping is no restart.
        self.ping_interval = watchdog_us / 3e6 if self.watchdog_enabled else None

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens (NOTIFY_SOCKET is set)."""
        return self._wd.is_enabled

    @property
    def watchdog_seconds(self) -> float | None:
        return self._wd.timeout / 1e6 if self.watchdog_enabled else None

    def _safe(self, send: Callable[[], None]) -> None:
        try:
            send()
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("cannot notify the service manager (%s); going on without it", exc)

    def ready(self, status: str | None = None) -> None:
        if status:
            self.status(status, force=True)
        self._safe(self._wd.ready)
        self.ready_sent = True

    def ping(self, now: float | None = None) -> bool:
        """WATCHDOG=1 if one is due; True if sent."""
        if self.ping_interval is None:
            return False
        now = self._clock() if now is None else now
        if self._last_ping is not None and now - self._last_ping < self.ping_interval:
            return False
        self._last_ping = now
        self._safe(self._wd.notify)
        return True

    def status(self, text: str, now: float | None = None, force: bool = False) -> bool:
        """STATUS=text, at most every STATUS_EVERY seconds unless ``force``; True if sent."""
        if not self.enabled:
            return False
        now = self._clock() if now is None else now
        if not force and self._last_status is not None and now - self._last_status < STATUS_EVERY:
            return False
        self._last_status = now
        # One line: systemd shows STATUS= verbatim and a newline would end the message.
        line = " ".join(text.split())
        self._safe(lambda: self._wd.status(line))
        return True

    def stopping(self, status: str = "stopping") -> None:
        self.status(status, force=True)


class SystemdSink(BaseSink):
    """READY=1 at the first frame (the model is loaded by then), then pings and status from the loop.

    ``status_line`` makes the STATUS= text (the monitor's rates and top-1).
    """

    def __init__(self, notifier: Notifier, status_line: Callable[[], str]) -> None:
        self.notifier = notifier
        self.status_line = status_line

    def on_frame(self, frame: Frame) -> None:
        n = self.notifier
        if not n.ready_sent:
            n.ready(f"running: first frame at {frame.timestamp:.2f} s")
        n.ping()

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        self.notifier.status(self.status_line())

    def keepalive(self, *args: object) -> None:
        """For callbacks that mean "the loop is alive but waiting" (a stream reconnecting)."""
        self.notifier.ping()
