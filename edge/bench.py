"""Benchmarks of a model on this device: what ``movinet-edge bench`` measures.

For one model directory (or .tflite file) and each thread count:

- **step**: latency of one model step on frames already at the model
  resolution (encode + invoke + carrying the states), median and p90 after a
  warm-up. This is the floor everything else is compared with.
- **pipeline**: our whole loop on a real clip (decode every frame, resample to
  the model rate, crop/resize, step, smooth, rank), as fast as it goes, no
  sinks. Its *overhead* is its time per step over the bare step's (means of
  both: wall time per step includes every outlier, so the step side must too).
  Decoding is part of it (a 30 fps clip decodes six frames per 5 fps step), so
  a decode-only pass of the clip is timed too and the overhead is also shown
  without it: what our loop adds besides the decoder.
- **reference**: the same model and clip through the TensorFlow examples'
  Raspberry Pi loop (:mod:`movinet_edge.reference_loop`), the yardstick; the
  *ratio* is its time for the clip over ours (the same decoded frames, so it
  is the ratio of clip throughput; model steps per second are shown too).

Once per model, at the largest thread count:

- **cold start**: a fresh ``movinet-edge --video CLIP --json`` process, from
  spawn to its first prediction line on stdout (interpreter start, imports,
  model load, first decode and step: what a user waits for);
- **peak RSS** of that process over the whole clip (``wait4``'s rusage of it).

Plus the XNNPACK delegate coverage (partitions, ops left on built-in kernels).
Timings on a busy machine are noisy: the report records the load average
before and after so a reader can judge. No assert here is about time.

This module runs the measurements of one model and several; the parts live
beside it: the result types (bench_results), the machine (bench_machine),
the timed loops (bench_loops), fresh processes (bench_cold_start), the table
(bench_table), and N cameras through one process (bench_streams).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .bench_cold_start import COLD_START_TIMEOUT_S, bench_cold_start, cold_start_once, edge_command
from .bench_loops import bench_decode, bench_frames, bench_pipeline, bench_reference, bench_step
from .bench_machine import MachineInfo, load_average, machine_info
from .bench_results import (
    BenchReport,
    ColdStart,
    LoopThroughput,
    ModelBench,
    StepLatency,
    ThreadResult,
    report_to_dict,
)
from .bench_table import format_table
from .errors import EdgeError
from .model_path import MAKE_MODEL_HINT
from .manifest import LABELS_NAME, MODEL_NAME
from .progress import Progress

__all__ = [
    "COLD_START_TIMEOUT_S", "BenchOptions", "BenchReport", "ColdStart", "LoopThroughput", "MachineInfo",
    "ModelBench", "StepLatency", "ThreadResult", "bench_cold_start", "bench_decode", "bench_frames",
    "bench_model", "bench_models", "bench_pipeline", "bench_reference", "bench_step", "cold_start_once",
    "edge_command", "format_table", "machine_info", "report_to_dict",
]  # fmt: skip


@dataclass
class BenchOptions:
    """What to measure and how long.

    ``clip``: a real video for the pipeline, the reference loop and the cold
    start; without one only the bare step is measured (on seeded noise).
    ``passes``: times the clip is run through each loop (more: steadier fps).
    ``cold_starts``: fresh processes started (0 skips cold start and RSS).
    """

    threads: tuple[int, ...] = (1, 2)
    iterations: int = 50
    warmup: int = 5
    clip: Path | None = None
    passes: int = 3
    cold_starts: int = 3
    reference: bool = True
    runtime: str | None = None  # ai_edge_litert | tflite_runtime; None: find_runtime's choice
    progress: bool = True

    def __post_init__(self) -> None:
        self.threads = tuple(int(t) for t in self.threads)
        if not self.threads:
            raise EdgeError("give at least one thread count")
        if any(t < 1 for t in self.threads):
            raise EdgeError(f"thread counts must be at least 1, got {', '.join(map(str, self.threads))}")
        if self.iterations < 1:
            raise EdgeError(f"iterations must be at least 1, got {self.iterations}")
        if self.warmup < 0:
            raise EdgeError(f"warm-up must be 0 or more, got {self.warmup}")
        if self.passes < 1:
            raise EdgeError(f"passes must be at least 1, got {self.passes}")
        if self.cold_starts < 0:
            raise EdgeError(f"cold starts must be 0 or more, got {self.cold_starts}")
        if self.clip is not None:
            self.clip = Path(self.clip)
            if not self.clip.is_file():
                raise EdgeError(f"clip {self.clip} does not exist; pass a video file with --clip")


# --- one model, several models ---------------------------------------------------------------


def _labels_path(model_dir: Path, classifier: Any) -> Path:
    """A labels file for the reference (it insists on one): the model's, else written from its labels."""
    folder = model_dir if model_dir.is_dir() else model_dir.parent
    name = classifier.manifest.labels_file if classifier.manifest else LABELS_NAME
    if (folder / name).is_file():
        return folder / name
    fd, tmp = tempfile.mkstemp(prefix="movinet-bench-labels-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(classifier.labels) + "\n")
    return Path(tmp)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def bench_model(model: str | os.PathLike[str], options: BenchOptions | None = None) -> ModelBench:
    """Every measurement of one model (see the module docstring).

    A model this runtime cannot load or run (an op kernel an older runtime
    lacks, say) is a result, not a crash: ``error`` says why, and whatever
    was measured before stays.
    """
    from .native_logs import native_stderr_silenced  # the runtime's "Created XNNPACK delegate" line
    from .delegation import delegate_coverage
    from .manifest import MANIFEST_NAME, load_manifest
    from .model import StreamingClassifier
    from .runtime import find_runtime

    options = options or BenchOptions()
    path = Path(model)
    if not path.exists():
        raise EdgeError(f"model {path} does not exist; {MAKE_MODEL_HINT}")
    model_file = path / MODEL_NAME if path.is_dir() else path
    folder = path if path.is_dir() else path.parent
    manifest = load_manifest(folder / MANIFEST_NAME) if (folder / MANIFEST_NAME).is_file() else None
    runtime = find_runtime(options.runtime)
    name = path.name if path.is_dir() else path.stem
    result = ModelBench(
        model=str(path),
        name=name,
        model_id=manifest.model_id if manifest else "unknown",
        precision=manifest.precision if manifest else "unknown",
        int8_recipe=(manifest.quantization or {}).get("recipe") if manifest and manifest.precision == "int8" else None,
        runtime=runtime.name,
        runtime_version=runtime.version,
        resolution=manifest.resolution if manifest else 0,
        model_mb=round(model_file.stat().st_size / 1e6, 3) if model_file.is_file() else 0.0,
        coverage={},
    )
    clip = options.clip
    per_thread = 1 + ((2 if options.reference else 1) if clip else 0)
    tasks = len(options.threads) * per_thread + (options.cold_starts if clip else 0)
    labels_file: Path | None = None
    with Progress(tasks, f"bench {name}", unit="tasks", quiet=not options.progress) as bar:
        try:
            with native_stderr_silenced():
                probe = StreamingClassifier.open(path, num_threads=options.threads[0], runtime=runtime.name)
            result.resolution = probe.resolution
            result.coverage = delegate_coverage(probe.interpreter).to_dict()
            frames = bench_frames(probe, clip)
            labels_file = _labels_path(path, probe) if clip and options.reference else None
            del probe
            for threads in options.threads:
                with native_stderr_silenced():
                    classifier = StreamingClassifier.open(path, num_threads=threads, runtime=runtime.name)
                bar.set_postfix(f"step x{options.iterations}, {threads} thread(s)")
                row = ThreadResult(threads, bench_step(classifier, frames, options.iterations, options.warmup))
                result.threads.append(row)
                bar.update()
                if clip is not None:
                    bar.set_postfix(f"pipeline x{options.passes}, {threads} thread(s)")
                    row.pipeline = bench_pipeline(classifier, clip, options.passes)
                    bar.update()
                    if labels_file is not None:
                        bar.set_postfix(f"reference loop x{options.passes}, {threads} thread(s)")
                        with native_stderr_silenced():
                            row.reference = bench_reference(
                                model_file, labels_file, clip, threads, options.passes, runtime
                            )
                        bar.update()
                del classifier
            if clip is not None and options.cold_starts:
                threads = max(options.threads)

                def on_run(i: int) -> None:
                    if i:
                        bar.update()
                    bar.set_postfix(f"cold start {i + 1}/{options.cold_starts}, {threads} thread(s)")

                result.cold_start = bench_cold_start(path, clip, threads, options.cold_starts, runtime.name, on_run)
                bar.update()
        except (EdgeError, RuntimeError, ValueError) as exc:
            result.error = f"{runtime.name} {runtime.version}: {_first_line(exc)}"
            bar.set_postfix("failed")
        finally:
            if labels_file is not None and labels_file.name.startswith("movinet-bench-labels-"):
                labels_file.unlink(missing_ok=True)
    return result


def bench_models(models: Sequence[str | os.PathLike[str]], options: BenchOptions | None = None) -> BenchReport:
    options = options or BenchOptions()
    machine = machine_info(options.runtime)
    report = BenchReport(machine=machine, options=_options_dict(options))
    for model in models:
        report.models.append(bench_model(model, options))
    machine.load_after = load_average()
    return report


def _options_dict(options: BenchOptions) -> dict[str, Any]:
    d = asdict(options)
    d["clip"] = str(options.clip) if options.clip else None
    d["threads"] = list(options.threads)
    d.pop("progress", None)
    return d
