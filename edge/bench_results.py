"""What a benchmark measured: plain dataclasses, the derived numbers readers want, and their JSON form.

Kept apart from the code that measures, so a script that only reads or
re-renders a report (bench/run_bench.py, the README table) needs none of it.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .bench_machine import MachineInfo
from .files import write_json_atomic


@dataclass
class StepLatency:
    """Bare model steps at one thread count (milliseconds)."""

    threads: int
    iterations: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float

    @property
    def fps(self) -> float:
        return 1000.0 / self.median_ms if self.median_ms > 0 else 0.0


@dataclass
class LoopThroughput:
    """One loop ("movinet-edge" or "reference") over ``passes`` runs of a clip.

    ``fps`` is model steps per second of wall time; ``median_step_ms`` is the
    loop's own per-step time (ours: resize + step; the reference's: its
    "time per inference", cvtColor + classify with its pre/post-processing).
    """

    loop: str
    threads: int
    passes: int
    frames: int
    steps: int
    wall_s: float
    median_step_ms: float
    adapted: list[str] = field(default_factory=list)
    decode_s: float | None = None  # the same passes decoded only (VideoFileSource, no model): ours only

    @property
    def fps(self) -> float:
        return self.steps / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def seconds_per_pass(self) -> float:
        return self.wall_s / self.passes


@dataclass
class ThreadResult:
    threads: int
    step: StepLatency
    pipeline: LoopThroughput | None = None
    reference: LoopThroughput | None = None

    @property
    def overhead_pct(self) -> float | None:
        """Pipeline time per step over the bare step's mean, in percent."""
        if self.pipeline is None or self.pipeline.steps == 0 or self.step.mean_ms <= 0:
            return None
        per_step_ms = self.pipeline.wall_s * 1000.0 / self.pipeline.steps
        return (per_step_ms / self.step.mean_ms - 1.0) * 100.0

    @property
    def overhead_excl_decode_pct(self) -> float | None:
        """The same, with the time a decode-only pass takes taken out: what our loop adds besides decoding."""
        p = self.pipeline
        if p is None or p.decode_s is None or p.steps == 0 or self.step.mean_ms <= 0:
            return None
        per_step_ms = (p.wall_s - p.decode_s) * 1000.0 / p.steps
        return (per_step_ms / self.step.mean_ms - 1.0) * 100.0

    @property
    def reference_ratio(self) -> float | None:
        """How many times faster our loop gets through the clip than the reference."""
        if self.pipeline is None or self.reference is None or self.pipeline.wall_s <= 0:
            return None
        ours = self.pipeline.wall_s / max(self.pipeline.frames, 1)
        theirs = self.reference.wall_s / max(self.reference.frames, 1)
        return theirs / ours


@dataclass
class ColdStart:
    """Fresh ``movinet-edge`` processes on the clip."""

    threads: int
    runs: list[float]  # seconds from spawn to the first prediction, per process
    peak_rss_mb: float  # the largest of the processes' peak resident set sizes
    peak_private_mb: float  # of that, anonymous memory (what the process allocated), sampled every 10 ms
    peak_file_backed_mb: float  # mapped files (shared libraries, the model), sampled every 10 ms
    command: list[str]

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs) if self.runs else math.nan


@dataclass
class ModelBench:
    model: str
    model_id: str
    precision: str
    int8_recipe: str | None
    runtime: str
    runtime_version: str
    resolution: int
    model_mb: float
    coverage: dict[str, Any]
    threads: list[ThreadResult] = field(default_factory=list)
    cold_start: ColdStart | None = None
    name: str = ""  # short name for tables (the model folder's name)
    error: str | None = None  # why the measurements stopped (the runtime could not load or run the model)


@dataclass
class BenchReport:
    machine: MachineInfo
    options: dict[str, Any]
    models: list[ModelBench] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # what a bench script adds (sizes, export times)

    def to_dict(self) -> dict[str, Any]:
        return report_to_dict(self)

    def write_json(self, path: str | os.PathLike[str]) -> None:
        write_json_atomic(Path(path), self.to_dict())


def _with_derived(obj: Any) -> Any:
    """asdict plus the derived numbers (fps, overhead, ratio) that readers of the JSON want."""
    if isinstance(obj, StepLatency):
        return {**asdict(obj), "fps": round(obj.fps, 3)}
    if isinstance(obj, LoopThroughput):
        d = asdict(obj)
        d.update(fps=round(obj.fps, 3), frames_per_s=round(obj.frames_per_s, 3))
        return d
    if isinstance(obj, ThreadResult):
        return {
            "threads": obj.threads,
            "step": _with_derived(obj.step),
            "pipeline": _with_derived(obj.pipeline) if obj.pipeline else None,
            "reference": _with_derived(obj.reference) if obj.reference else None,
            "pipeline_overhead_pct": _round(obj.overhead_pct),
            "pipeline_overhead_excl_decode_pct": _round(obj.overhead_excl_decode_pct),
            "reference_ratio": _round(obj.reference_ratio),
        }
    if isinstance(obj, ColdStart):
        return {**asdict(obj), "median_s": _round(obj.median_s)}
    if isinstance(obj, ModelBench):
        d = {k: v for k, v in asdict(obj).items() if k not in ("threads", "cold_start")}
        d["threads"] = [_with_derived(t) for t in obj.threads]
        d["cold_start"] = _with_derived(obj.cold_start) if obj.cold_start else None
        return d
    return obj


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(value, digits)


def report_to_dict(report: BenchReport) -> dict[str, Any]:
    return {
        "machine": asdict(report.machine),
        "options": report.options,
        "models": [_with_derived(m) for m in report.models],
        **({"extra": report.extra} if report.extra else {}),
    }
