"""The device loop: frames in, predictions and events out.

For every frame a source delivers: the sinks see it (an annotated video keeps
every frame), the sampler decides from its timestamp whether the model gets
it, and if so the classifier steps, the output is smoothed, ranked and handed
to the sinks, and the event detector turns it into action events. At the end
(source exhausted, ``stop`` set, ``max_steps`` reached, Ctrl-C) open events
are flushed and the sinks closed, so nothing is lost.

:func:`classify_clip` is the batch counterpart used by ``movinet-edge
classify``: every sampled frame of one video through a fresh model, the
per-step probabilities and the final top-k.
"""

from __future__ import annotations

import csv
import io
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import EdgeError
from .frames import Frame, FrameDecodeError
from .files import check_writable, write_json_atomic, write_text_atomic
from .postprocess import EventDetector, EventOptions, Smoother, SmoothingOptions
from .postprocess import top_k as rank
from .results import Event, Prediction, Sink
from .readahead import sampled_frames
from .sampler import FrameSampler
from .sources import FrameSource, VideoFileSource

# Median latency is taken over this many recent steps: a service runs for
# months, its statistics must not grow with it.
LATENCY_WINDOW = 1024


class Classifier(Protocol):
    """What the pipeline needs from a model: StreamingClassifier and WindowedClassifier fit."""

    @property
    def labels(self) -> list[str]: ...

    @property
    def fps(self) -> float: ...

    def step(self, frame_rgb: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


@dataclass
class PipelineOptions:
    """How the loop runs. ``target_fps`` None means the model's own frame rate."""

    top_k: int = 5
    smoothing: SmoothingOptions = field(default_factory=SmoothingOptions)
    events: EventOptions = field(default_factory=EventOptions)
    target_fps: float | None = None
    max_steps: int | None = None
    reset_classifier: bool = True  # start from empty states

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise EdgeError(f"top-k must be at least 1, got {self.top_k}")
        if self.max_steps is not None and self.max_steps < 1:
            raise EdgeError(f"max-steps must be at least 1, got {self.max_steps}")
        if self.target_fps is not None and not self.target_fps > 0:
            raise EdgeError(f"target fps must be positive, got {self.target_fps}")


@dataclass
class PipelineStats:
    """What a run did, for the end-of-run summary and metrics.

    ``frames_skipped``: read but not fed (the sampler's choice, by design).
    ``frames_dropped``: lost by the source because the loop was busy (late
    live frames). ``median_latency_ms`` is over the last LATENCY_WINDOW steps.
    """

    frames_read: int = 0
    frames_fed: int = 0
    frames_skipped: int = 0
    frames_dropped: int = 0
    failed_reads: int = 0
    reconnects: int = 0
    steps: int = 0
    events: int = 0
    wall_s: float = 0.0
    mean_latency_ms: float = 0.0
    median_latency_ms: float = 0.0
    input_fps: float = 0.0
    model_fps: float = 0.0
    ended_by: str = "end"  # "end" | "stop" | "max_steps" | "interrupt" | "error"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for people."""
        parts = [
            f"{self.frames_read} frames read",
            f"{self.frames_fed} fed to the model",
            f"{self.steps} steps in {self.wall_s:.1f} s",
            f"{self.model_fps:.1f} steps/s",
            f"latency mean {self.mean_latency_ms:.1f} ms, median {self.median_latency_ms:.1f} ms",
        ]
        if self.frames_dropped:
            parts.append(f"{self.frames_dropped} late frames dropped")
        if self.reconnects:
            parts.append(f"{self.reconnects} reconnects")
        return ", ".join(parts)


class _Latency:
    """Running mean over all steps, median over recent ones, without growing."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.recent: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def add(self, ms: float) -> None:
        self.count += 1
        self.total += ms
        self.recent.append(ms)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.recent) if self.recent else 0.0


def run_pipeline(
    source: Iterable[Frame],
    classifier: Classifier,
    sinks: Sequence[Sink],
    options: PipelineOptions | None = None,
    stop: threading.Event | None = None,
) -> PipelineStats:
    """Run until the source ends, ``stop`` is set or ``max_steps`` is reached.

    ``stop`` is checked between frames; a caller stopping a live source from
    another thread should also call ``source.stop()`` so a wait for the next
    frame ends at once. Sinks are always closed; if the run fails, sinks with
    an ``abort()`` method (file writers) get that instead, so no half-written
    file is left. The source is the caller's to close.
    """
    options = options or PipelineOptions()
    labels = list(classifier.labels)
    sampler = FrameSampler(options.target_fps or classifier.fps)
    smoother = Smoother(options.smoothing, num_classes=len(labels))
    detector = EventDetector(labels, options.events)
    stats = PipelineStats()
    latency = _Latency()
    k = options.top_k
    max_steps = options.max_steps
    last_ts: float | None = None
    perf = time.perf_counter
    # Bound methods looked up once: this loop runs for every frame.
    frame_hooks = [sink.on_frame for sink in sinks]
    prediction_hooks = [sink.on_prediction for sink in sinks]
    event_hooks = [sink.on_event for sink in sinks]

    def emit(events: list[Event]) -> None:
        for event in events:
            stats.events += 1
            for hook in event_hooks:
                hook(event)

    if options.reset_classifier:
        classifier.reset()
    if isinstance(source, FrameSource):
        source.lazy_frames = True  # this loop reads a frame's pixels before the next frame, or never
    # A file read as fast as it goes is decoded on another core while the model steps.
    every_frame = any(getattr(sink, "every_frame", False) for sink in sinks)
    start = perf()
    failed = False
    try:
        with sampled_frames(source, sampler.accept, every_frame, getattr(classifier, "prepare", None)) as frames:
            for frame, accepted, prepared in frames:
                if stop is not None and stop.is_set():
                    stats.ended_by = "stop"
                    break
                stats.frames_read += 1
                last_ts = frame.timestamp
                try:
                    for hook in frame_hooks:
                        hook(frame)
                    if not accepted:
                        continue  # never decoded to pixels, if the source is lazy
                    # Made square at the model's resolution by the reader thread when it could.
                    image = frame.image if prepared is None else prepared
                except FrameDecodeError:
                    continue  # counted by the source as a failed read
                t0 = perf()
                raw = classifier.step(image)
                ms = (perf() - t0) * 1000.0
                latency.add(ms)
                stats.frames_fed += 1
                stats.steps += 1
                probs = smoother.update(raw)
                prediction = Prediction(
                    timestamp=frame.timestamp,
                    frame_index=frame.index,
                    step=stats.steps,
                    probabilities=probs,
                    top_k=rank(probs, labels, k),
                    latency_ms=ms,
                    raw_probabilities=raw,
                )
                for hook in prediction_hooks:
                    hook(prediction, frame)
                events = detector.update(frame.timestamp, probs)
                if events:
                    emit(events)
                if max_steps is not None and stats.steps >= max_steps:
                    stats.ended_by = "max_steps"
                    break
            else:
                if stop is not None and stop.is_set():
                    stats.ended_by = "stop"
    except KeyboardInterrupt:
        # The user ended the run: what was produced so far is good, keep it.
        stats.ended_by = "interrupt"
        raise
    except BaseException:
        failed = True
        stats.ended_by = "error"
        raise
    finally:
        try:
            if last_ts is not None:
                # Close open actions even after a failure: an MQTT listener that saw
                # "new" should see "end". A sink failing again here must not hide
                # the original error.
                try:
                    emit(detector.flush(last_ts))
                except Exception:
                    if not failed:
                        raise
        finally:
            _close_sinks(sinks, failed)
            _finish_stats(stats, source, latency, perf() - start)
    return stats


def _close_sinks(sinks: Sequence[Sink], failed: bool) -> None:
    """Close every sink even if one of them fails; re-raise the first failure."""
    first: BaseException | None = None
    for sink in sinks:
        try:
            abort = getattr(sink, "abort", None) if failed else None
            if abort is not None:
                abort()
            else:
                sink.close()
        except Exception as exc:
            first = first or exc
    if first is not None and not failed:
        raise first


def _finish_stats(stats: PipelineStats, source: object, latency: _Latency, wall: float) -> None:
    stats.frames_skipped = stats.frames_read - stats.frames_fed
    source_stats = getattr(source, "stats", None)
    if source_stats is not None:
        stats.frames_dropped = source_stats.dropped
        stats.failed_reads = source_stats.failed_reads
        stats.reconnects = source_stats.reconnects
    stats.wall_s = wall
    stats.mean_latency_ms = latency.mean
    stats.median_latency_ms = latency.median
    if wall > 0:
        stats.input_fps = stats.frames_read / wall
        stats.model_fps = stats.steps / wall


# --- whole clips ----------------------------------------------------------------------


@dataclass
class ClipResult:
    """A whole clip through the model.

    ``probabilities`` holds the model's output after every step ([steps,
    classes], unsmoothed; empty if not kept). A streaming MoViNet's last
    output already covers the whole clip, so ``top_k`` comes from it.
    """

    labels: list[str]
    steps: int
    frames_read: int
    timestamps: np.ndarray  # [steps] seconds
    frame_indices: np.ndarray  # [steps]
    probabilities: np.ndarray  # [steps, num_classes] float32, or [0, num_classes]
    final: np.ndarray  # [num_classes] the last step's probabilities
    top_k: list[tuple[str, float]]


def classify_clip(
    video: str | os.PathLike[str] | Iterable[Frame],
    classifier: Classifier,
    *,
    top_k: int = 5,
    fps: float | None = None,
    keep_probabilities: bool = True,
    on_frame: Callable[[Frame], None] | None = None,
) -> ClipResult:
    """Classify one video from a fresh state.

    ``video``: a path, or an open source (e.g. a VideoFileSource the caller
    opened to learn its frame count). Frames are sampled at ``fps`` (None:
    the model's rate; 0: every frame, as the original MoViNet tutorial does
    with its clips). ``on_frame`` is called for every decoded frame (progress).
    """
    if isinstance(video, (str, os.PathLike)):
        with VideoFileSource(video) as source:
            return classify_clip(
                source, classifier, top_k=top_k, fps=fps,
                keep_probabilities=keep_probabilities, on_frame=on_frame,
            )  # fmt: skip
    labels = list(classifier.labels)
    rate = classifier.fps if fps is None else fps
    sampler = FrameSampler(rate) if rate and rate > 0 else None
    classifier.reset()
    kept: list[np.ndarray] = []
    timestamps: list[float] = []
    indices: list[int] = []
    final: np.ndarray | None = None
    frames_read = 0
    if isinstance(video, FrameSource):
        video.lazy_frames = True  # pixels decoded only for the frames the sampler keeps
    prepare = getattr(classifier, "prepare", None)
    with sampled_frames(video, sampler.accept if sampler is not None else _every, prepare=prepare) as frames:
        for frame, accepted, prepared in frames:
            frames_read += 1
            if on_frame is not None:
                on_frame(frame)
            if not accepted:
                continue
            try:
                image = frame.image if prepared is None else prepared
            except FrameDecodeError:
                continue
            final = classifier.step(image)
            timestamps.append(frame.timestamp)
            indices.append(frame.index)
            if keep_probabilities:
                kept.append(final)
    if final is None:
        raise EdgeError("the video has no frames")
    probabilities = np.stack(kept).astype(np.float32, copy=False) if kept else np.zeros((0, len(labels)), np.float32)
    return ClipResult(
        labels=labels,
        steps=len(timestamps),
        frames_read=frames_read,
        timestamps=np.asarray(timestamps, dtype=np.float64),
        frame_indices=np.asarray(indices, dtype=np.int64),
        probabilities=probabilities,
        final=np.asarray(final, dtype=np.float32),
        top_k=rank(final, labels, top_k),
    )


def _every(_timestamp: float) -> bool:
    return True


PROBABILITY_FORMATS = (".csv", ".json")


def check_probabilities_path(path: Path) -> None:
    """Fail before the work, not after, on a destination we cannot write."""
    check_writable(path, PROBABILITY_FORMATS, what="--probabilities")


def write_probabilities(result: ClipResult, path: Path) -> None:
    """Per-step probabilities as CSV (step,timestamp,<one column per label>) or JSON
    ([{"step", "timestamp", "probabilities": {label: score}}]), written atomically."""
    path = Path(path)
    check_probabilities_path(path)
    steps = range(1, result.probabilities.shape[0] + 1)
    if path.suffix.lower() == ".json":
        records = [
            {
                "step": step,
                "timestamp": round(float(ts), 6),
                "probabilities": {label: round(float(p), 6) for label, p in zip(result.labels, row)},
            }
            for step, ts, row in zip(steps, result.timestamps, result.probabilities)
        ]
        write_json_atomic(path, records)
        return
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["step", "timestamp", *result.labels])
    for step, ts, row in zip(steps, result.timestamps, result.probabilities):
        writer.writerow([step, f"{ts:.6f}", *(f"{p:.6g}" for p in row)])
    write_text_atomic(path, buf.getvalue())
