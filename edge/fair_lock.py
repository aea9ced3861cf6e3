"""A first-come, first-served lock: streams sharing one interpreter take turns.

``threading.Lock`` makes no promise about who gets it next. A thread that
releases it and asks again at once (a stream that steps back to back) often
wins over threads already waiting, so on a busy device one camera can starve
the others. :class:`FairLock` hands the lock to the longest waiter on release
(ownership passes directly, the releaser cannot barge back in), so N streams
each get one invoke in N, and when the model cannot keep up with all of them
the frames that go late are spread evenly over the streams.
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType


class FairLock:
    """A non-reentrant lock granted in the order it was asked for."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()  # guards the two fields below, held for a few instructions
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        try:
            turn.acquire()  # released by the holder that hands the lock to us
        except BaseException:
            # Interrupted while waiting (KeyboardInterrupt): leave the queue, or, if the lock
            # was handed to us meanwhile, pass it on, so the others are not left waiting forever.
            with self._mutex:
                try:
                    self._waiters.remove(turn)
                    handed = False
                except ValueError:
                    handed = True
            if handed:
                self.release()
            raise

    def release(self) -> None:
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of an unlocked FairLock")
            if self._waiters:
                self._waiters.popleft().release()  # still held: it now belongs to the next in line
            else:
                self._held = False

    @property
    def waiting(self) -> int:
        """Threads queued for the lock now (for diagnostics)."""
        return len(self._waiters)

    def locked(self) -> bool:
        return self._held

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
