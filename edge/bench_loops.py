"""The timed loops of ``movinet-edge bench``: bare steps, decoding, our pipeline, the reference loop.

Each returns a result dataclass (:mod:`movinet_edge.bench_results`); none of
them asserts anything about time.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .bench_results import LoopThroughput, StepLatency


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else math.nan


def bench_frames(classifier: Any, clip: Path | None, count: int = 32) -> np.ndarray:
    """Square frames at the model resolution: the clip's, sampled as the stream would, else seeded noise."""
    if clip is not None:
        from .clip import load_clip

        return load_clip(clip, classifier.fps, classifier.resolution, classifier.resize_policy, max_frames=count)
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, classifier.resolution, classifier.resolution, 3), dtype=np.uint8)


def bench_step(classifier: Any, frames: np.ndarray, iterations: int, warmup: int = 5) -> StepLatency:
    """Time ``step_square`` (encode, invoke, carry states) over the frames, cycling."""
    n = len(frames)
    classifier.reset()
    for i in range(warmup):
        classifier.step_square(frames[i % n])
    perf = time.perf_counter
    times: list[float] = []
    for i in range(iterations):
        frame = frames[(warmup + i) % n]
        t0 = perf()
        classifier.step_square(frame)
        times.append((perf() - t0) * 1000.0)
    return StepLatency(
        threads=int(classifier.num_threads or 0),
        iterations=iterations,
        median_ms=statistics.median(times),
        p90_ms=_percentile(times, 90),
        mean_ms=statistics.fmean(times),
        min_ms=min(times),
    )


def bench_decode(clip: Path, decode_threads: int | None = None) -> float:
    """Seconds to decode the clip once through our source, nothing else (the floor of any file loop)."""
    from .sources import VideoFileSource, quiet_opencv_logs

    quiet_opencv_logs()
    with VideoFileSource(clip, decode_threads=decode_threads) as source:
        start = time.perf_counter()
        for _ in source:
            pass
        return time.perf_counter() - start


def bench_pipeline(classifier: Any, clip: Path, passes: int) -> LoopThroughput:
    """Our loop (:func:`run_pipeline`, no sinks) over the clip ``passes`` times.

    Each pass is preceded by a decode-only pass, so ``decode_s`` is taken
    under the same conditions (a busy machine drifts) as the loop's time.
    """
    from .pipeline import PipelineOptions, run_pipeline
    from .sources import VideoFileSource, decode_threads_for, quiet_opencv_logs

    quiet_opencv_logs()
    decode_threads = decode_threads_for(classifier.num_threads)  # as the CLI opens it
    frames = steps = 0
    wall = decode = 0.0
    medians: list[float] = []
    for _ in range(passes):
        decode += bench_decode(clip, decode_threads)
        with VideoFileSource(clip, decode_threads=decode_threads) as source:
            stats = run_pipeline(source, classifier, [], PipelineOptions(top_k=5))
        frames += stats.frames_read
        steps += stats.steps
        wall += stats.wall_s
        medians.append(stats.median_latency_ms)
    return LoopThroughput(
        loop="movinet-edge",
        threads=int(classifier.num_threads or 0),
        passes=passes,
        frames=frames,
        steps=steps,
        wall_s=wall,
        median_step_ms=statistics.median(medians),
        decode_s=decode,
    )


def bench_reference(model_path: Path, labels: Path, clip: Path, threads: int, passes: int,
                    runtime: Any = None) -> LoopThroughput:
    """The reference loop over the clip ``passes`` times, each pass a new scene (``clear()``)."""
    from .reference_loop import ReferenceOptions, ReferenceVideoClassifier, run_reference_loop

    reference = ReferenceVideoClassifier(model_path, labels, ReferenceOptions(num_threads=threads), runtime)
    frames = steps = 0
    wall = 0.0
    step_ms: list[float] = []
    for _ in range(passes):
        reference.clear()
        run = run_reference_loop(reference, clip)
        frames += run.frames_read
        steps += run.steps
        wall += run.wall_s
        step_ms.extend(run.classify_ms)
    return LoopThroughput(
        loop="reference",
        threads=threads,
        passes=passes,
        frames=frames,
        steps=steps,
        wall_s=wall,
        median_step_ms=statistics.median(step_ms) if step_ms else math.nan,
        adapted=list(reference.adapted),
    )
