"""How a stream's outage is told to the operator: the first failure, then seldom, then its end.

A service reconnecting to a camera for an hour must neither be silent (the
operator sees no predictions and no reason) nor fill the journal with a line
per attempt. So: one WARNING at the first failure, with the reason; further
lines only when the backoff delay has doubled since the last line or a minute
has passed since it; and one line when frames are back, saying how long they
were missing and how many attempts it took.

The times are passed in (monotonic seconds), so the rate rules can be shown
without waiting a minute.
"""

from __future__ import annotations

import logging

log = logging.getLogger("movinet_edge.sources")

#: At most one line per this many seconds while the delay stays the same.
REPEAT_AFTER_S = 60.0


class OutageLog:
    """The log lines of one source's outages (one instance per source, reused across outages).

    ``label``: the source as the lines name it ("front: stream rtsp://cam/...").
    """

    def __init__(self, label: str, repeat_after: float = REPEAT_AFTER_S) -> None:
        self.label = label
        self.repeat_after = repeat_after
        self._since: float | None = None  # when frames were last seen before the outage
        self._attempts = 0
        self._last_line_at: float | None = None
        self._last_line_delay = 0.0

    @property
    def in_outage(self) -> bool:
        return self._since is not None

    def attempt(self, attempt: int, delay: float, reason: str, now: float, last_frame_at: float | None) -> bool:
        """A reconnect attempt is about to wait ``delay`` s; logs it if it is due. True if it logged.

        ``last_frame_at``: when the last frame arrived (None: none yet), the
        start of the outage as the consumer saw it.
        """
        if self._since is None:
            self._since = last_frame_at if last_frame_at is not None else now
            self._attempts = 0
            self._last_line_at = None
        self._attempts += 1
        if self._last_line_at is None:
            log.warning("%s: %s; reconnecting in %.1f s (attempt %d)", self.label, reason, delay, attempt)
        elif delay >= 2 * self._last_line_delay or now - self._last_line_at >= self.repeat_after:
            log.warning(
                "%s: still down after %.1f s (%s); reconnecting in %.1f s (attempt %d)",
                self.label, now - self._since, reason, delay, attempt,
            )  # fmt: skip
        else:
            return False
        self._last_line_at, self._last_line_delay = now, delay
        return True

    def recovered(self, now: float) -> tuple[float, int] | None:
        """A frame arrived at ``now``: logs the end of an outage, if one was going on.

        Returns (outage seconds, reconnect attempts), or None when there was no outage.
        """
        if self._since is None:
            return None
        outage, attempts = now - self._since, self._attempts
        self._since = None
        plural = "" if attempts == 1 else "s"
        log.warning("%s: frames are back after %.1f s (%d reconnect attempt%s)", self.label, outage, attempts, plural)
        return outage, attempts
