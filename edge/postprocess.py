"""From the model's per-step probabilities to what a user wants to hear about.

A streaming classifier answers at every step (5 times a second for A0), and
its top class flickers when two actions look alike. This module turns that
stream into stable output: a :class:`Smoother` over steps, :func:`top_k` for
display, and an :class:`EventDetector` that reports an action once when it
starts (``new``), now and then while it lasts (``update``) and once when it
stops (``end``), with hysteresis so that a score hovering at the threshold
does not produce a storm of start/stop events.

Everything here is plain numpy on [num_classes] vectors, vectorised over
classes, so it costs microseconds per step on a Raspberry Pi.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .errors import EdgeError
from .results import Event

SmoothingMethod = Literal["ema", "mean", "none"]
SMOOTHING_METHODS: tuple[str, ...] = ("ema", "mean", "none")


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (float32 in, float32 out)."""
    x = np.asarray(logits, dtype=np.float32)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= np.sum(shifted, axis=axis, keepdims=True)
    return shifted


def top_k(probs: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` best (label, score) pairs, best first.

    Uses a partial sort (argpartition), which matters with 600 classes and a
    small k on a slow CPU.
    """
    p = np.asarray(probs).reshape(-1)
    if len(labels) != p.shape[0]:
        raise EdgeError(
            f"{len(labels)} labels for {p.shape[0]} model classes; pass the labels file that belongs to the model"
        )
    n = p.shape[0]
    k = max(0, min(int(k), n))
    if k == 0:
        return []
    if k < n:
        idx = np.argpartition(p, n - k)[n - k :]
        # argpartition picks any of the classes tied at the cut; take the lowest indices, as argmax does.
        cut = p[idx].min()
        above = np.flatnonzero(p > cut)
        idx = np.concatenate((above, np.flatnonzero(p == cut)[: k - above.size]))
    else:
        idx = np.arange(n)
    # Stable order for ties: higher score first, then lower class index.
    idx = idx[np.lexsort((idx, -p[idx]))]
    return [(labels[i], float(p[i])) for i in idx]


@dataclass
class SmoothingOptions:
    """How predictions are smoothed over model steps.

    ``ema``: exponential moving average, ``alpha`` is the weight of the newest
    step (1.0 = no smoothing). ``mean``: plain average of the last ``window``
    steps. ``none``: the model's own output (a streaming MoViNet already
    integrates over time through its pooled states).
    """

    method: SmoothingMethod = "ema"
    alpha: float = 0.5
    window: int = 5

    def __post_init__(self) -> None:
        if self.method not in SMOOTHING_METHODS:
            raise EdgeError(f"unknown smoothing {self.method!r}; use one of {', '.join(SMOOTHING_METHODS)}")
        if not 0.0 < self.alpha <= 1.0:
            raise EdgeError(f"smoothing alpha must be in (0, 1], got {self.alpha}")
        if self.window < 1:
            raise EdgeError(f"smoothing window must be at least 1 step, got {self.window}")


class Smoother:
    """Smooths a stream of probability vectors; state lives in preallocated buffers.

    :meth:`update` returns a new array each step (a :class:`Prediction` keeps
    it, so it must not change under the consumer's feet); everything else is
    updated in place.
    """

    def __init__(self, options: SmoothingOptions | None = None, num_classes: int | None = None) -> None:
        self.options = options or SmoothingOptions()
        self._ema: np.ndarray | None = None
        self._ring: np.ndarray | None = None
        self._filled = 0
        self._pos = 0
        if num_classes is not None:
            self._allocate(num_classes)

    def _allocate(self, num_classes: int) -> None:
        if self.options.method == "ema":
            self._ema = np.zeros(num_classes, dtype=np.float32)
        elif self.options.method == "mean":
            self._ring = np.zeros((self.options.window, num_classes), dtype=np.float32)

    def reset(self) -> None:
        """Forget the history (a new clip, a classifier reset)."""
        self._filled = 0
        self._pos = 0

    def update(self, probs: np.ndarray) -> np.ndarray:
        p = np.asarray(probs, dtype=np.float32).reshape(-1)
        method = self.options.method
        if method == "none":
            return p.copy()
        if (self._ema is None and method == "ema") or (self._ring is None and method == "mean"):
            self._allocate(p.shape[0])
        if method == "ema":
            ema = self._ema
            assert ema is not None
            if self._filled == 0:
                ema[:] = p
                self._filled = 1
            else:
                ema *= 1.0 - self.options.alpha
                ema += self.options.alpha * p
            return ema.copy()
        ring = self._ring
        assert ring is not None
        ring[self._pos] = p
        self._pos = (self._pos + 1) % ring.shape[0]
        self._filled = min(self._filled + 1, ring.shape[0])
        # Until the window is full, rows 0.._filled-1 are the ones written.
        return ring[: self._filled].mean(axis=0, dtype=np.float32)


@dataclass
class EventOptions:
    """When an action counts as happening.

    An action starts after ``min_steps`` consecutive steps at or above
    ``start_threshold`` and ends when its score falls below
    ``end_threshold`` (hysteresis: end < start, so a score wobbling around the
    start threshold does not flap). While it lasts, an ``update`` is sent every
    ``update_every`` seconds, or sooner when the score moved by
    ``update_delta`` since the last report (0 disables either trigger).
    ``allow`` (if not empty) and ``deny`` filter labels.
    """

    start_threshold: float = 0.5
    end_threshold: float = 0.3
    min_steps: int = 2
    update_every: float = 5.0
    update_delta: float = 0.15
    allow: Sequence[str] = field(default_factory=tuple)
    deny: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not 0.0 <= self.end_threshold <= self.start_threshold <= 1.0:
            raise EdgeError(
                f"thresholds must satisfy 0 <= end ({self.end_threshold}) <= start ({self.start_threshold}) <= 1"
            )
        if self.min_steps < 1:
            raise EdgeError(f"min_steps must be at least 1, got {self.min_steps}")
        if self.update_every < 0 or self.update_delta < 0:
            raise EdgeError("update_every and update_delta must not be negative")


@dataclass
class _Active:
    start: float
    score: float  # latest score
    last_score: float  # score at the last event sent
    last_report: float  # timestamp of the last event sent
    peak: float
    steps: int = 1  # steps since "new", that one included


class EventDetector:
    """Turns smoothed probabilities into ``new`` / ``update`` / ``end`` events.

    Several actions may be active at once when thresholds are below 0.5.
    ``end`` events carry the action's peak score as ``score``; ``extra`` holds
    ``duration`` (s), ``last_score`` and ``steps``.
    """

    def __init__(self, labels: Sequence[str], options: EventOptions | None = None) -> None:
        self.options = options or EventOptions()
        self.labels = list(labels)
        self._eligible = self._eligibility(self.labels, self.options.allow, self.options.deny)
        # Consecutive steps at/above start_threshold, per class (int32, in place).
        self._run = np.zeros(len(self.labels), dtype=np.int32)
        self._run_start = np.zeros(len(self.labels), dtype=np.float64)
        self._active: dict[int, _Active] = {}

    @staticmethod
    def _eligibility(labels: list[str], allow: Iterable[str], deny: Iterable[str]) -> np.ndarray:
        known = set(labels)
        allow, deny = list(allow), list(deny)
        unknown = [name for name in (*allow, *deny) if name not in known]
        if unknown:
            raise EdgeError(
                f"unknown label {unknown[0]!r} in --allow/--deny; labels are the lines of the model's labels.txt"
            )
        mask = np.ones(len(labels), dtype=bool)
        if allow:
            allowed = set(allow)
            mask[:] = [name in allowed for name in labels]
        if deny:
            denied = set(deny)
            mask &= np.array([name not in denied for name in labels], dtype=bool)
        return mask

    @property
    def active(self) -> dict[str, float]:
        """Label -> start timestamp of the actions in progress."""
        return {self.labels[i]: a.start for i, a in self._active.items()}

    def reset(self) -> None:
        """Forget everything without emitting events (use :meth:`flush` to close them)."""
        self._run[:] = 0
        self._active.clear()

    def update(self, timestamp: float, probs: np.ndarray) -> list[Event]:
        """Feed one step; returns the events it caused (usually none)."""
        o = self.options
        p = np.asarray(probs).reshape(-1)
        if p.shape[0] != len(self.labels):
            raise EdgeError(f"{p.shape[0]} model classes for {len(self.labels)} labels")
        events: list[Event] = []

        # Actions in progress: end or update. Few entries, so a Python loop is fine.
        for i in list(self._active):
            a = self._active[i]
            score = float(p[i])
            a.score = score
            if score < o.end_threshold:
                del self._active[i]
                self._run[i] = 0
                events.append(self._end(i, a, timestamp))
                continue
            a.steps += 1
            if score > a.peak:
                a.peak = score
            due = o.update_every > 0 and timestamp - a.last_report >= o.update_every
            moved = o.update_delta > 0 and abs(score - a.last_score) >= o.update_delta
            if due or moved:
                a.last_score, a.last_report = score, timestamp
                events.append(
                    Event(kind="update", label=self.labels[i], score=score, start=a.start, timestamp=timestamp)
                )

        # Candidates: vectorised over all classes.
        above = (p >= o.start_threshold) & self._eligible
        starting = above & (self._run == 0)
        self._run_start[starting] = timestamp
        self._run[above] += 1
        self._run[~above] = 0
        for i in np.flatnonzero(self._run >= o.min_steps):
            i = int(i)
            if i in self._active:
                continue
            score = float(p[i])
            start = float(self._run_start[i])
            self._active[i] = _Active(start=start, score=score, last_score=score, last_report=timestamp, peak=score)
            events.append(Event(kind="new", label=self.labels[i], score=score, start=start, timestamp=timestamp))
        return events

    def flush(self, timestamp: float) -> list[Event]:
        """End every action in progress (end of stream, shutdown)."""
        events = [self._end(i, a, timestamp) for i, a in self._active.items()]
        self._active.clear()
        self._run[:] = 0
        return events

    def _end(self, i: int, a: _Active, timestamp: float) -> Event:
        return Event(
            kind="end",
            label=self.labels[i],
            score=a.peak,
            start=a.start,
            end=timestamp,
            timestamp=timestamp,
            extra={"duration": round(timestamp - a.start, 6), "last_score": a.score, "steps": a.steps},
        )
