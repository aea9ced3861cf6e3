"""The reader thread of live sources, and how a stream backs off between reconnects.

Live sources (cameras, streams) read in a background thread that keeps only
the newest frame: when the consumer is slower than the camera, old frames are
dropped (and counted), never queued, so the delay between the scene and the
prediction cannot grow. Nothing here may hang: the consumer waits with a
timeout (its watchdog), and the thread, not the consumer, releases the device,
so a read stuck in a network timeout never blocks a shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from .base import SourceStats

log = logging.getLogger("movinet_edge.sources")


@dataclass
class ReconnectPolicy:
    """Exponential backoff for a stream that stopped: initial_delay, doubling up to max_delay.

    ``max_attempts`` consecutive failed attempts (None: try forever, what a
    service wants) end the stream with an EdgeError. A delivered frame resets
    the count.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    factor: float = 2.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (1-based)."""
        return min(self.max_delay, self.initial_delay * self.factor ** max(0, attempt - 1))


class Ended:
    """The reader stopped: the source ended or failed."""


ENDED = Ended()


class LatestFrameReader:
    """Reads in a thread and keeps only the newest image: a slow consumer never sees old frames.

    ``read`` returns an image or None for a failed read. After
    ``max_failures`` failed reads in a row the reader ends (the stream closed,
    the camera was unplugged); a stuck ``read`` is the consumer's watchdog's
    business. The thread owns the device while it runs and calls ``release``
    when it exits: a device is never released under a read in progress, and
    the owner never has to wait for a read that is stuck in a network timeout.
    """

    def __init__(
        self,
        read: Callable[[], np.ndarray | None],
        release: Callable[[], None],
        stats: SourceStats,
        name: str,
        max_failures: int,
    ) -> None:
        self._read = read
        self._release = release
        self._stats = stats
        self._max_failures = max_failures
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, float, int] | None = None
        self._ended = False
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._count = 0
        self._thread = threading.Thread(target=self._run, name=f"movinet-edge reader ({name})", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                image = self._read()
                if image is None:
                    self._stats.failed_reads += 1
                    failures += 1
                    if failures >= self._max_failures:
                        break
                    self._stop.wait(0.01)
                    continue
                failures = 0
                ts = time.monotonic()
                with self._cond:
                    if self._latest is not None:
                        self._stats.dropped += 1
                    self._latest = (image, ts, self._count)
                    self._count += 1
                    self._cond.notify()
        except Exception as exc:  # surfaced to the consumer as the reason of the end
            self.error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()
            try:
                self._release()
            except Exception as exc:  # the device vanished: nothing left to free
                log.debug("release after reading: %s", exc)

    def get(self, timeout: float | None) -> tuple[np.ndarray, float, int] | Ended | None:
        """The newest frame (image, monotonic time, sequence), ENDED, or None after ``timeout`` s."""
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None or self._ended, timeout)
            if self._latest is not None:
                latest, self._latest = self._latest, None
                return latest
            return ENDED if self._ended else None

    @property
    def count(self) -> int:
        return self._count

    def interrupt(self) -> None:
        """Ask the thread to stop and wake the consumer; returns at once (any thread)."""
        self._stop.set()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def stop(self, join_timeout: float) -> bool:
        """Stop the thread, waiting up to ``join_timeout`` s; False if a read is still stuck
        (the thread then releases the device itself when that read returns)."""
        self.interrupt()
        self._thread.join(join_timeout)
        return not self._thread.is_alive()
