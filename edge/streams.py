"""Several cameras in one process: one pipeline per stream, each in its own thread, one model.

Each stream is a whole :func:`~movinet_edge.pipeline.run_pipeline` (its own
sampler, window, smoother and event detector) on a fork of one loaded
classifier (:meth:`StreamingClassifier.fork`), so the model is in memory
once and the streams take turns on it in order (the engine's fair lock).
The pipelines are unchanged: this module only runs them side by side and
keeps them apart when one fails.

Why threads: the interpreter's invoke and OpenCV's decoding release the
GIL, and live sources already read in threads of their own; what Python
does per frame is small next to either. A stream that fails (its source
raises :class:`EdgeError`: a camera unplugged, a file gone) is reported and
retried on its own, with backoff, through its ``reopen`` callable, while the
others go on; a stop event ends them all. Per-stream counters (frames,
steps, dropped, latency) can be read at any time with :meth:`StreamRunner.stats`.

A stream's sinks stay open across its restarts (an event log or a video
keeps going after a camera comes back) and are closed once, when the
stream ends for good: aborted if it ended by a failure, as run_pipeline
would. Sources are closed by the runner when their run ends.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np

from .errors import EdgeError
from .frames import Frame
from .pipeline import Classifier, PipelineOptions, PipelineStats, run_pipeline
from .results import BaseSink, Prediction, Sink
from .sources import ReconnectPolicy

log = logging.getLogger("movinet_edge.streams")

# Latency percentiles are taken over this many recent steps (a service runs for months).
LATENCY_WINDOW = 1024
#: Between restarts of a failed stream: 1 s doubling up to 30 s, forever (a service's cameras come back).
DEFAULT_RETRY = ReconnectPolicy(initial_delay=1.0, max_delay=30.0)


@dataclass
class StreamSpec:
    """One stream to run: a name for reports, its source, its classifier (a fork), its sinks.

    ``reopen``: makes a fresh source after a failure (None: a failure ends the stream).
    """

    name: str
    source: Iterable[Frame]
    classifier: Classifier
    sinks: list[Sink] = field(default_factory=list)
    options: PipelineOptions | None = None
    reopen: Callable[[], Iterable[Frame]] | None = None


class StreamLike(Protocol):
    """What the runner reads from a stream: :class:`StreamSpec` fits (so does any object with
    these attributes; one with ``camera`` instead of ``name`` is named by that)."""

    source: Iterable[Frame]
    classifier: Classifier
    sinks: list[Sink]
    options: PipelineOptions | None
    reopen: Callable[[], Iterable[Frame]] | None


@dataclass
class StreamStats:
    """One stream's counters at one moment.

    ``state``: "starting", "running", "retrying" (failed, waiting to reopen),
    "ended" (its source ended), "stopped" (the stop event), "failed" (given up).
    ``dropped``: frames its sources dropped because the stream was busy (summed
    over restarts). Latency is the classifier step, waiting for the turn included.
    """

    name: str
    state: str
    frames: int
    steps: int
    dropped: int
    failures: int
    restarts: int
    running_s: float
    latency_p50_ms: float
    latency_p95_ms: float
    last_error: str | None = None

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.running_s if self.running_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["steps_per_s"] = self.steps_per_s
        return d


@dataclass
class StreamResult:
    """How a stream ended: every run's PipelineStats (one per start), combined, and why it stopped."""

    name: str
    runs: list[PipelineStats]
    stats: PipelineStats
    failures: int
    error: BaseException | None = None  # the failure it ended with (None: ended or stopped)


class _Counter(BaseSink):
    """Counts what a stream's pipeline does, readable from other threads while it runs."""

    def __init__(self) -> None:
        self.frames = 0
        self.steps = 0
        self._lock = threading.Lock()
        self._latency: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def on_frame(self, frame: Frame) -> None:
        self.frames += 1

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        self.steps += 1
        with self._lock:
            self._latency.append(prediction.latency_ms)

    def latency(self) -> tuple[float, float]:
        with self._lock:
            recent = np.fromiter(self._latency, np.float64, len(self._latency))
        if recent.size == 0:
            return 0.0, 0.0
        p50, p95 = np.percentile(recent, (50, 95))
        return float(p50), float(p95)


class _KeptOpen:
    """A sink that outlives one pipeline run: run_pipeline's close/abort are deferred to the runner."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.every_frame = bool(getattr(sink, "every_frame", False))
        self.on_frame = sink.on_frame
        self.on_prediction = sink.on_prediction
        self.on_event = sink.on_event

    def close(self) -> None:
        pass

    def finish(self, failed: bool) -> None:
        abort = getattr(self.sink, "abort", None) if failed else None
        if abort is not None:
            abort()
        else:
            self.sink.close()


def _name_of(stream: Any, index: int) -> str:
    return str(getattr(stream, "name", None) or getattr(stream, "camera", None) or f"stream{index + 1}")


class _Worker:
    """One stream's thread: runs its pipeline, restarts it after a failure, keeps its counters."""

    def __init__(self, runner: StreamRunner, stream: Any, index: int) -> None:
        self.runner = runner
        self.name = _name_of(stream, index)
        self.source: Iterable[Frame] = stream.source
        self.classifier = stream.classifier
        self.options = stream.options
        self.reopen = getattr(stream, "reopen", None)
        self.counter = _Counter()
        self.sinks = [_KeptOpen(s) for s in stream.sinks]
        self.state = "starting"
        self.failures = 0
        self.restarts = 0
        self.dropped_before = 0  # by sources already replaced
        self.last_error: str | None = None
        self.error: BaseException | None = None
        self.runs: list[PipelineStats] = []
        self.started = self.ended = 0.0
        self.thread = threading.Thread(target=self._run, name=f"movinet-edge stream {self.name}", daemon=True)

    def stats(self) -> StreamStats:
        source_stats = getattr(self.source, "stats", None)
        now = self.ended or time.monotonic()
        p50, p95 = self.counter.latency()
        return StreamStats(
            name=self.name, state=self.state, frames=self.counter.frames, steps=self.counter.steps,
            dropped=self.dropped_before + (source_stats.dropped if source_stats is not None else 0),
            failures=self.failures, restarts=self.restarts, running_s=max(0.0, now - self.started) if self.started else 0.0,
            latency_p50_ms=p50, latency_p95_ms=p95, last_error=self.last_error,
        )  # fmt: skip

    def stop_source(self) -> None:
        stop = getattr(self.source, "stop", None)
        if stop is not None:
            stop()

    def _run(self) -> None:
        stop = self.runner.stop_event
        self.started = time.monotonic()
        attempt = 0  # consecutive failures without a step in between
        try:
            while True:
                self.state = "running"
                frames, steps, t0 = self.counter.frames, self.counter.steps, time.monotonic()
                try:
                    stats = run_pipeline(self.source, self.classifier, [*self.sinks, self.counter], self.options, stop)
                except EdgeError as exc:
                    self.runs.append(self._failed_run(frames, steps, t0))
                    self._retire_source()
                    if self.counter.steps > steps:
                        attempt = 0  # it ran before failing: back to the shortest wait
                    attempt = self._restart(exc, attempt + 1)
                    if attempt == 0:
                        return
                    continue
                self.runs.append(stats)
                self.state = "stopped" if stats.ended_by == "stop" or stop.is_set() else "ended"
                return
        except BaseException as exc:  # noqa: BLE001 - a bug in one stream must not take the others down
            self.error, self.state, self.last_error = exc, "failed", f"{type(exc).__name__}: {exc}"
            log.error("stream %s failed: %s", self.name, self.last_error, exc_info=not isinstance(exc, EdgeError))
        finally:
            self.ended = time.monotonic()
            if not isinstance(self.source, _Retired):
                self._retire_source()
            self._finish_sinks()

    def _failed_run(self, frames: int, steps: int, t0: float) -> PipelineStats:
        """What a run that raised did, from the counters (run_pipeline returns no stats then)."""
        source_stats = getattr(self.source, "stats", None)
        wall = time.monotonic() - t0
        done = self.counter.steps - steps
        return PipelineStats(
            frames_read=self.counter.frames - frames, frames_fed=done, steps=done,
            frames_skipped=self.counter.frames - frames - done,
            frames_dropped=source_stats.dropped if source_stats is not None else 0,
            wall_s=wall, model_fps=done / wall if wall > 0 else 0.0, ended_by="error",
        )  # fmt: skip

    def _restart(self, exc: EdgeError, attempt: int) -> int:
        """Wait and reopen the source until it opens: the attempt count it took, 0 when the
        stream is given up or stopped."""
        policy, stop = self.runner.retry, self.runner.stop_event
        while True:
            self.failures += 1
            self.last_error = str(exc)
            if self.reopen is None or (policy.max_attempts is not None and attempt > policy.max_attempts):
                self.error, self.state = exc, "failed"
                log.error("stream %s failed: %s", self.name, exc)
                return 0
            delay = policy.delay(attempt)
            self.state = "retrying"
            log.warning("stream %s failed: %s; reopening in %.1f s (attempt %d)", self.name, exc, delay, attempt)
            if self.runner.on_failure is not None:
                self.runner.on_failure(self.name, str(exc), attempt, delay)
            if stop.wait(delay):
                self.state = "stopped"
                return 0
            try:
                self.source = self.reopen()
            except EdgeError as again:
                exc, attempt = again, attempt + 1
                continue
            self.restarts += 1
            if stop.is_set():  # stopped while it opened: the runner could not stop this one
                self.stop_source()
            return attempt

    def _retire_source(self) -> None:
        source_stats = getattr(self.source, "stats", None)
        if source_stats is not None:
            self.dropped_before += source_stats.dropped
        close = getattr(self.source, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - a device that vanished has nothing left to free
                log.debug("stream %s: closing its source: %s", self.name, exc)
        self.source = _Retired()

    def _finish_sinks(self) -> None:
        failed = self.error is not None
        for sink in self.sinks:
            try:
                sink.finish(failed)
            except Exception as exc:  # noqa: BLE001 - one sink failing to close must not hide the others
                log.error("stream %s: closing a sink: %s", self.name, exc)
                if self.error is None:
                    self.error = exc

    def result(self) -> StreamResult:
        return StreamResult(self.name, list(self.runs), combine(self.runs), self.failures, self.error)


class _Retired:
    """In place of a closed source: its drops are in ``dropped_before`` already."""

    stats = None


class StreamRunner:
    """Runs several streams' pipelines side by side until they end or ``stop`` is set.

    ``retry``: the backoff between restarts of a failed stream (its ``max_attempts``
    consecutive failed restarts give the stream up; a run that made a step resets the count). ``on_failure(name,
    reason, attempt, delay)``: called when a stream fails, before it waits (metrics,
    an operator's log). Use :meth:`run` (blocks), or :meth:`start`, :meth:`stats`
    while it runs, and :meth:`wait`.
    """

    def __init__(
        self,
        streams: Sequence[StreamLike],
        stop: threading.Event | None = None,
        retry: ReconnectPolicy | None = None,
        on_failure: Callable[[str, str, int, float], None] | None = None,
    ) -> None:
        if not streams:
            raise EdgeError("no streams to run")
        self.stop_event = stop if stop is not None else threading.Event()
        self.retry = retry or DEFAULT_RETRY
        self.on_failure = on_failure
        self._workers = [_Worker(self, s, i) for i, s in enumerate(streams)]
        names = [w.name for w in self._workers]
        if len(set(names)) != len(names):
            raise EdgeError(f"stream names must differ: {', '.join(names)}")

    @property
    def names(self) -> list[str]:
        return [w.name for w in self._workers]

    def start(self) -> None:
        for worker in self._workers:
            worker.thread.start()

    def stats(self) -> list[StreamStats]:
        """Every stream's counters now (any thread)."""
        return [w.stats() for w in self._workers]

    def stop(self) -> None:
        """End every stream soon (any thread): sets the stop event and wakes the sources."""
        self.stop_event.set()
        for worker in self._workers:
            worker.stop_source()

    def stop_stream(self, name: str) -> None:
        """Stop one stream's current source (it ends as its source would); the others go on."""
        next(w for w in self._workers if w.name == name).stop_source()

    def alive(self) -> bool:
        return any(w.thread.is_alive() for w in self._workers)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every stream to end (True) or ``timeout`` (False). A stop event set by
        someone else (a signal handler) also wakes every stream's source from here."""
        deadline = None if timeout is None else time.monotonic() + timeout
        stopped = False
        while self.alive():
            if self.stop_event.is_set() and not stopped:
                self.stop()  # wake sources the setter did not know of (reopened ones)
                stopped = True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            tick = 0.1 if left is None else min(0.1, left)
            running = [w for w in self._workers if w.thread.is_alive()]
            if stopped and running:  # the event stays set: wait on the threads instead
                running[0].thread.join(tick)
            else:
                self.stop_event.wait(tick)
        return True

    def results(self) -> list[StreamResult]:
        return [w.result() for w in self._workers]

    def run(self) -> list[StreamResult]:
        """Start, wait for every stream to end; on Ctrl-C stop them all, wait, and re-raise."""
        self.start()
        try:
            self.wait()
        except BaseException:
            self.stop()
            for worker in self._workers:
                worker.thread.join()
            raise
        return self.results()


def run_streams(
    streams: Sequence[StreamLike],
    stop: threading.Event | None = None,
    retry: ReconnectPolicy | None = None,
    on_failure: Callable[[str, str, int, float], None] | None = None,
) -> list[PipelineStats]:
    """Run the streams side by side (see :class:`StreamRunner`); each one's stats over all its runs.

    When every stream has ended, the first failure a stream ended with is
    raised (an EdgeError keeps its one line), so an entry point exits as it
    would for one stream; the other streams ran to their end meanwhile.
    """
    results = StreamRunner(streams, stop, retry, on_failure).run()
    for result in results:
        if result.error is not None:
            raise result.error
    return [r.stats for r in results]


def combine(runs: Sequence[PipelineStats]) -> PipelineStats:
    """One stream's PipelineStats over its runs (restarts): counts added, latency weighted by steps."""
    if not runs:
        return PipelineStats(ended_by="error")
    total = PipelineStats(ended_by=runs[-1].ended_by)
    for name in ("frames_read", "frames_fed", "frames_skipped", "frames_dropped", "failed_reads", "reconnects",
                 "steps", "events", "wall_s"):  # fmt: skip
        setattr(total, name, sum(getattr(r, name) for r in runs))
    if total.steps:
        total.mean_latency_ms = sum(r.mean_latency_ms * r.steps for r in runs) / total.steps
        total.median_latency_ms = statistics.median(r.median_latency_ms for r in runs if r.steps)
    if total.wall_s > 0:
        total.input_fps = total.frames_read / total.wall_s
        total.model_fps = total.steps / total.wall_s
    return total
