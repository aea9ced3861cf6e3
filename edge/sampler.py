"""Which frames reach the model: a time-slot sampler.

A streaming MoViNet is trained at a fixed frame rate (5 fps for A0-A2): its
causal convolutions and its cumulative pooling assume that consecutive inputs
are 1/fps apart. Cameras, files and network streams deliver 30 fps, 5 fps,
29.97 fps, or whatever a congested link lets through, so the sampler decides
from *timestamps*, never from frame counts, which frames the model sees.

The clock is a grid of slots ``anchor + k / fps``. The first frame at or after
a slot takes it; frames between slots are skipped. Late frames are dropped,
never queued, so the model always sees the newest frame and latency cannot
grow. When a gap (a stalled stream, a slow step) has skipped whole slots, the
grid is re-anchored on the frame that ends the gap, so the model gets one
frame, not a burst of catch-up frames 1 ms apart. A timestamp that jumps
backwards by more than a period (a stream that restarted its clock) also
re-anchors; one slightly out of order (jitter) is skipped as late.
"""

from __future__ import annotations

# A frame this much of the target period before its slot still takes it: it
# absorbs float rounding of timestamps (6 * (1/30) is not exactly 0.2).
_MIN_TOLERANCE = 1e-6
# Weight of the newest interval in the source-interval estimate.
_INTERVAL_EMA = 0.1


class FrameSampler:
    """Accepts frames at ``target_fps`` by their timestamps (seconds, any origin).

    A frame takes a slot if it arrives at most half a source interval early:
    the source frame *nearest* the slot wins, instead of always the one after
    it. That keeps jittered frames of a 5 fps source at 5 fps (a frame 20 ms
    early is still that slot's frame) while a 30 fps source gives exactly
    every 6th frame. The source interval is estimated from the timestamps.
    """

    def __init__(self, target_fps: float) -> None:
        if not target_fps > 0:
            raise ValueError(f"target_fps must be positive, got {target_fps}")
        self.target_fps = float(target_fps)
        self.period = 1.0 / self.target_fps
        self.accepted = 0
        self.skipped = 0
        self.reanchors = 0  # gaps and clock jumps, for diagnostics
        self._next_slot: float | None = None
        self._last_ts: float | None = None
        self._interval: float | None = None  # estimated source frame interval, <= period

    def reset(self) -> None:
        """Forget the grid: the next frame is accepted and becomes the new anchor."""
        self._next_slot = None
        self._last_ts = None
        self._interval = None

    def accept(self, timestamp: float) -> bool:
        """Should the frame with this timestamp be fed to the model?"""
        last = self._last_ts
        self._last_ts = timestamp
        if self._next_slot is None or last is None:
            return self._anchor(timestamp)
        delta = timestamp - last
        if delta < 0:
            if delta < -self.period:
                # The source clock went backwards: a restarted stream or a looped
                # file without continuing timestamps. The old grid means nothing now.
                self.reanchors += 1
                self._interval = None
                return self._anchor(timestamp)
            # A frame slightly out of order (jittery timestamps): it is late by
            # definition, so skip it and keep measuring from the newest one.
            self._last_ts = last
            self.skipped += 1
            return False
        if delta > 0:
            # Clamp to the period: a gap says nothing about the frame rate.
            d = delta if delta < self.period else self.period
            self._interval = d if self._interval is None else self._interval + _INTERVAL_EMA * (d - self._interval)

        tolerance = self._tolerance()
        slot = self._next_slot
        if timestamp < slot - tolerance:
            self.skipped += 1
            return False
        if timestamp >= slot + self.period - tolerance:
            # This frame would also take the following slot: whole slots were
            # skipped by a gap. Start a new grid here rather than emit a burst.
            self.reanchors += 1
            self._next_slot = timestamp + self.period
        else:
            self._next_slot = slot + self.period
        self.accepted += 1
        return True

    def _anchor(self, timestamp: float) -> bool:
        self._next_slot = timestamp + self.period
        self.accepted += 1
        return True

    def _tolerance(self) -> float:
        if self._interval is None:
            return _MIN_TOLERANCE
        return max(_MIN_TOLERANCE, 0.5 * self._interval)
