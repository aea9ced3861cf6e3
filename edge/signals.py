"""SIGTERM and SIGINT at any moment: a request to stop, never a traceback or a kill mid-write.

The handlers are installed by the console entry point before anything heavy
is imported (:mod:`movinet_edge.entry`), so a signal during start-up (imports,
config, loading the model: seconds on a Pi) is remembered and the command
ends cleanly as soon as it looks. They are installed explicitly even when the
process inherited SIGINT as ignored (started with ``&`` from a script, or
``nohup``): Ctrl-C and ``kill -INT`` must still stop a live run.

After the first signal the default handlers come back, so a second signal
ends a shutdown that hangs (SIGTERM kills, SIGINT raises KeyboardInterrupt).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """The process-wide stop request: an event, the signal that set it, and the sources to wake."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._sources: list[Any] = []
        self._lock = threading.Lock()
        self.installed = False

    def install(self) -> StopRequest:
        """Catch SIGTERM and SIGINT from now on (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                signal.signal(sig, self._handle)
            self.installed = True
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler)

    def request(self, signum: int | None = None) -> None:
        """Ask the run to stop (any thread): set the event and wake every source."""
        if self.signum is None:
            self.signum = signum
        self.event.set()
        with self._lock:
            sources = list(self._sources)
        for source in sources:
            source.stop()

    def watch(self, sources: Iterable[Any]) -> None:
        """Sources to wake on a stop request; woken at once if the request came already."""
        with self._lock:
            self._sources.extend(sources)
        if self.event.is_set():
            for source in sources:
                source.stop()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def interrupted(self) -> bool:
        """Stopped by SIGINT (Ctrl-C): a live command exits 130 as shells expect."""
        return self.signum == signal.SIGINT


#: The process's one stop request (installed by the entry point; tests may make their own).
STOP = StopRequest()
