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
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgeError
from .manifest import LABELS_NAME, MODEL_NAME, write_json_atomic
from .progress import Progress

COLD_START_TIMEOUT_S = 300.0


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


# --- results ----------------------------------------------------------------------------


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
class MachineInfo:
    """Where the numbers were taken; the README table quotes it."""

    cpu: str
    machine: str
    cores: int
    usable_cores: int
    memory_gb: float
    system: str
    python: str
    numpy: str
    opencv: str
    runtime: str
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None

    def summary(self) -> str:
        load = ""
        if self.load_before is not None:
            load = f", load average {self.load_before[0]:.2f} before"
            if self.load_after is not None:
                load += f" / {self.load_after[0]:.2f} after"
        return (
            f"{self.cpu} ({self.machine}), {self.usable_cores} of {self.cores} cores usable, "
            f"{self.memory_gb:.1f} GB RAM, {self.system}, Python {self.python}, numpy {self.numpy}, "
            f"OpenCV {self.opencv}, {self.runtime}{load}"
        )


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


# --- the machine --------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    try:  # Raspberry Pi OS on arm64 names the board only in the device tree
        return Path("/proc/device-tree/model").read_text(errors="replace").strip("\x00 \n")
    except OSError:
        return platform.processor() or platform.machine()


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _load() -> tuple[float, float, float] | None:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return None


def machine_info(runtime: str | None = None) -> MachineInfo:
    import cv2

    from .runtime import find_runtime

    rt = find_runtime(runtime)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return MachineInfo(
        cpu=_cpu_name(),
        machine=platform.machine(),
        cores=os.cpu_count() or 1,
        usable_cores=usable,
        memory_gb=round(_memory_gb(), 2),
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        numpy=np.__version__,
        opencv=cv2.__version__,
        runtime=f"{rt.name} {rt.version}",
        load_before=_load(),
    )


# --- measurements ---------------------------------------------------------------------------


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


def edge_command() -> list[str]:
    """The ``movinet-edge`` console script of this environment (or ``python -m`` it)."""
    script = Path(sys.executable).with_name("movinet-edge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "movinet_edge.cli"]


_RSS_MARK = "movinet-bench-peak-rss-kib="
# Forks from a process of a few MB, execs the command, waits for it and appends
# its own ru_maxrss to stderr; exits with the command's status.
_RSS_LAUNCHER = f"""
import os, sys, time
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
anon = shared = 0
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    anon = max(anon, int(line.split()[1]))
                elif line.startswith("RssFile:"):
                    shared = max(shared, int(line.split()[1]))
    except OSError:
        pass
    time.sleep(0.01)
sys.stderr.write("\\n{_RSS_MARK}%d %d %d\\n" % (usage.ru_maxrss, anon, shared))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def cold_start_once(model: Path, clip: Path, threads: int, runtime: str | None = None,
                    timeout: float = COLD_START_TIMEOUT_S) -> tuple[float, tuple[float, float, float], list[str]]:
    """Spawn ``movinet-edge --video CLIP --json``: (seconds to first prediction, memory, command).

    Memory is (peak RSS, peak private RSS, peak file-backed RSS) in MB. The
    process runs the whole clip so that the peaks cover a real run, not only
    the start. It is started by a small launcher process (see
    :data:`_RSS_LAUNCHER`) because Linux carries the high-water RSS of the
    process that forks into the child's ``ru_maxrss`` across exec: spawned
    straight from a benchmark that holds models and frames, every child
    "peaked" at the benchmark's own size (225 MB measured for a 105 MB run).
    The launcher also samples the child's RssAnon and RssFile every 10 ms: the
    file-backed part (the shared libraries' pages) depends on the page cache,
    not on us (identical wheels measured 48 MB in one venv, 77 MB in a freshly
    installed one, at the same 37 MB private).
    """
    command = [*edge_command(), "--video", str(clip), "--model", str(model), "--json",
               "--no-window", "--threads", str(threads)]  # fmt: skip
    launched = [sys.executable, "-c", _RSS_LAUNCHER, *command]
    env = {k: v for k, v in os.environ.items() if k != "MOVINET_EDGE_MODEL"}
    if runtime:
        env["MOVINET_EDGE_RUNTIME"] = runtime
    with tempfile.TemporaryFile() as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(launched, stdout=subprocess.PIPE, stderr=stderr, env=env)
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            first_line = proc.stdout.readline()
            first = time.perf_counter() - t0
            proc.stdout.read()  # the rest of the predictions: let it finish the clip
            proc.wait()
        finally:
            watchdog.cancel()
            if proc.returncode is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        stderr.seek(0)
        lines = stderr.read().decode(errors="replace").strip().splitlines()
        peaks_kib = None
        if lines and lines[-1].startswith(_RSS_MARK):
            peaks_kib = [int(v) for v in lines.pop()[len(_RSS_MARK):].split()]
        if proc.returncode != 0 or not first_line.strip() or peaks_kib is None:
            why = lines[-1] if lines else f"exit status {proc.returncode}"
            raise EdgeError(f"cold-start run of movinet-edge failed: {why}")
    # ru_maxrss and /proc are in KiB on Linux (macOS is not a target).
    total, private, shared = (v / 1024.0 for v in peaks_kib)
    return first, (total, private, shared), command


def bench_cold_start(model: Path, clip: Path, threads: int, runs: int, runtime: str | None = None,
                     on_run: Callable[[int], None] | None = None) -> ColdStart:
    """``runs`` fresh processes; ``on_run(i)`` is called before each (progress)."""
    times: list[float] = []
    peak = private = shared = 0.0
    command: list[str] = []
    for i in range(runs):
        if on_run is not None:
            on_run(i)
        seconds, (rss, anon, files), command = cold_start_once(model, clip, threads, runtime)
        times.append(seconds)
        peak, private, shared = max(peak, rss), max(private, anon), max(shared, files)
    return ColdStart(threads=threads, runs=times, peak_rss_mb=peak, peak_private_mb=private,
                     peak_file_backed_mb=shared, command=command)


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
        raise EdgeError(f"model {path} does not exist; export one with: movinet-export --model a0")
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
    machine.load_after = _load()
    return report


def _options_dict(options: BenchOptions) -> dict[str, Any]:
    d = asdict(options)
    d["clip"] = str(options.clip) if options.clip else None
    d["threads"] = list(options.threads)
    d.pop("progress", None)
    return d


# --- tables ------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{suffix}"


def _precision_label(m: ModelBench) -> str:
    return f"int8 ({m.int8_recipe})" if m.precision == "int8" and m.int8_recipe else m.precision


def format_table(report: BenchReport) -> str:
    """Markdown: one row per model and thread count, then cold start / RSS, then delegate notes."""
    lines = [
        "| model | precision | runtime | threads | step median ms | step p90 ms | pipeline fps | overhead "
        "| overhead excl. decode | reference fps | x reference | XNNPACK |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in report.models:
        cov = m.coverage
        delegated = f"{cov.get('delegated_ops', 0)}/{cov.get('total_ops', 0)} ops, {cov.get('partitions', 0)} part."
        if m.error and not m.threads:
            lines.append(f"| {m.model_id} | {_precision_label(m)} | {m.runtime} {m.runtime_version} | - "
                         f"| failed: {m.error} |||||||")
            continue
        for t in m.threads:
            lines.append(
                f"| {m.model_id} | {_precision_label(m)} | {m.runtime} {m.runtime_version} | {t.threads} "
                f"| {_fmt(t.step.median_ms, '.1f')} | {_fmt(t.step.p90_ms, '.1f')} "
                f"| {_fmt(t.pipeline.fps if t.pipeline else None, '.1f')} "
                f"| {_fmt(t.overhead_pct, '+.0f', '%')} | {_fmt(t.overhead_excl_decode_pct, '+.0f', '%')} "
                f"| {_fmt(t.reference.fps if t.reference else None, '.1f')} "
                f"| {_fmt(t.reference_ratio, '.2f', 'x')} | {delegated} |"
            )
    starts = [m for m in report.models if m.cold_start is not None]
    if starts:
        lines += ["", "| model | precision | size MB | cold start s (median) | runs | peak RSS MB "
                  "| of it private MB | of it mapped files MB |",
                  "|---|---|---:|---:|---|---:|---:|---:|"]  # fmt: skip
        for m in starts:
            cs = m.cold_start
            assert cs is not None
            runs = ", ".join(f"{r:.2f}" for r in cs.runs)
            lines.append(
                f"| {m.model_id} | {_precision_label(m)} | {m.model_mb:.2f} | {cs.median_s:.2f} | {runs} "
                f"| {cs.peak_rss_mb:.0f} | {cs.peak_private_mb:.0f} | {cs.peak_file_backed_mb:.0f} |"
            )
    notes = []
    for m in report.models:
        if m.error:
            notes.append(f"- {m.name}: failed: {m.error}")
        left = m.coverage.get("builtin_ops") or {}
        if left:
            ops = ", ".join(f"{k} x{v}" for k, v in left.items())
            notes.append(f"- {m.name}: left on built-in kernels: {ops}")
        for t in m.threads:
            if t.reference is not None and t.reference.adapted:
                notes.append(f"- {m.name}: reference loop adapted ({', '.join(t.reference.adapted)})")
                break
    if notes:
        lines += ["", *notes]
    lines += ["", f"Machine: {report.machine.summary()}"]
    return "\n".join(lines)
