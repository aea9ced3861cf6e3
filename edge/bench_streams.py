"""``movinet-edge bench --streams N``: N cameras through one process and one loaded model.

N copies of a clip are played in real time (``VideoFileSource(realtime=True,
loop=True)``: frames arrive at the clip's frame rate and are dropped, as a
camera's, when the stream is busy) through :class:`~movinet_edge.streams.StreamRunner`
on forks of one classifier, for a fixed time. Reported per stream: model
steps per second against the rate the stream can have (the model's, or the
clip's if slower), frames dropped, latency p50/p95 (the classifier step,
the wait for the shared model's turn included). For the process: CPU time
over wall time and peak resident memory (``VmHWM``; private memory sampled).

Beside it, the same N streams as N separate processes (each a ``bench
--streams 1`` of its own, all at once), to show what sharing saves: the sum
of their peak RSS against the one process's. ``fault``: one stream's source
is stopped halfway (a camera switched off) and the others' steps/s before
and during the fault are compared: a dead stream must not stall the rest.

Nothing here asserts a speed; the numbers are for people (bench/run_streams.py
collects 1, 2, 4 and 8 streams into the README's table).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .bench_cold_start import edge_command
from .bench_machine import machine_info
from .errors import EdgeError
from .files import write_json_atomic
from .progress import Progress

DEFAULT_DURATION_S = 20.0
SAMPLE_INTERVAL_S = 0.5


@dataclass
class StreamsBenchOptions:
    """One multi-stream measurement: ``streams`` copies of ``clip`` for ``duration`` seconds.

    ``threads``: interpreter threads; ``pool``: interpreters the streams are
    spread over (1: all take turns on one). ``separate``: also run the streams
    as separate processes (skipped for one stream). ``fault``: stop one
    stream's source halfway.
    """

    model: Path
    clip: Path
    streams: int = 1
    duration: float = DEFAULT_DURATION_S
    threads: int = 1
    pool: int = 1
    separate: bool = True
    fault: bool = False
    runtime: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.model, self.clip = Path(self.model), Path(self.clip)
        if self.streams < 1:
            raise EdgeError(f"the number of streams must be at least 1, got {self.streams}")
        if not self.duration > 0:
            raise EdgeError(f"the duration must be positive, got {self.duration:g} s")
        if self.threads < 1 or self.pool < 1:
            raise EdgeError(f"threads and pool must be at least 1, got {self.threads} and {self.pool}")
        if not self.clip.is_file():
            raise EdgeError(f"clip {self.clip} does not exist; pass a video file to play as every camera")
        if self.fault and self.streams < 2:
            raise EdgeError("a fault needs at least 2 streams: one to stop, others to watch")


@dataclass
class StreamMeasure:
    """One stream of the run (see StreamStats for the counters)."""

    name: str
    steps: int
    running_s: float
    steps_per_s: float
    rate_pct: float  # steps/s over the rate it could have (the model's, or the clip's if slower)
    frames: int
    dropped: int
    dropped_pct: float  # of the frames the source had for it (delivered + dropped)
    latency_p50_ms: float
    latency_p95_ms: float
    state: str


@dataclass
class FaultMeasure:
    """The other streams' steps/s before and while one stream's source was stopped."""

    stream: str
    at_s: float
    others_steps_per_s_before: list[float]
    others_steps_per_s_during: list[float]


@dataclass
class SeparateMeasure:
    """The same streams as separate processes, run at the same time."""

    processes: int
    rss_mb: list[float]
    rss_mb_total: float
    steps_per_s: list[float]
    cpu_pct_total: float


@dataclass
class StreamsReport:
    model: str
    model_id: str
    precision: str
    runtime: str
    clip: str
    clip_fps: float | None
    clip_size: list[int]
    model_rate: float  # steps/s each stream can have: the model's fps, or the clip's if slower
    threads: int
    pool: int
    duration_s: float
    streams: list[StreamMeasure]
    cpu_pct: float  # process CPU time over wall time, 100 = one core busy
    rss_mb: float  # peak resident set (VmHWM)
    private_mb: float  # peak anonymous memory, sampled
    state_mb_per_stream: float
    fault: FaultMeasure | None = None
    separate: SeparateMeasure | None = None
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def min_rate_pct(self) -> float:
        return min((s.rate_pct for s in self.streams), default=0.0)

    @property
    def max_dropped_pct(self) -> float:
        return max((s.dropped_pct for s in self.streams), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(streams_count=len(self.streams), min_rate_pct=round(self.min_rate_pct, 2),
                 max_dropped_pct=round(self.max_dropped_pct, 3))  # fmt: skip
        if self.separate is not None and self.separate.rss_mb:
            d["rss_ratio_vs_one_process"] = round(self.rss_mb / statistics.fmean(self.separate.rss_mb), 3)
        return d

    def write_json(self, path: str | os.PathLike[str]) -> None:
        write_json_atomic(path, self.to_dict())


def _status_kb(field_name: str) -> int:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_streams(options: StreamsBenchOptions) -> StreamsReport:
    """Run the streams in this process (and, if asked, as separate processes afterwards)."""
    report = measure_in_process(options)
    if options.separate and options.streams > 1:
        report.separate = measure_separate(options)
    return report


def measure_in_process(options: StreamsBenchOptions) -> StreamsReport:
    from .app import BuildHooks, CameraConfig, ModelOptions, RunConfig, WindowOptions, build, choose_sources
    from .streams import StreamRunner

    names = [f"cam{i + 1}" for i in range(options.streams)]
    # The assembly of `movinet-edge --video CLIP --realtime --loop` with the clip N times, printing
    # nothing: one model, a fork per camera, each camera's own pipeline (windowed, as a camera is).
    choices = choose_sources({"video": [options.clip] * options.streams, "realtime": True, "loop": True})
    config = RunConfig(
        cameras=[CameraConfig(n, choice, window=WindowOptions(enabled=True)) for n, choice in zip(names, choices)],
        model=ModelOptions(path=options.model, threads=options.threads, runtime=options.runtime, pool=options.pool),
    )  # fmt: skip
    # One decoder thread each: a 320x240 camera needs no more.
    assembly = build(config, BuildHooks(decode_threads=1))
    model = assembly.model
    sources = [stream.source for stream in assembly.streams]
    clip_fps = sources[0].fps
    rate = min(model.fps, clip_fps) if clip_fps else model.fps
    runner = StreamRunner(assembly.streams)
    fault: FaultMeasure | None = None
    private_kb = 0
    cpu0, wall0 = _cpu_seconds(), time.monotonic()
    runner.start()
    try:
        with Progress(int(options.duration), f"bench {options.streams} stream(s)", unit="s",
                      quiet=not options.progress) as bar:  # fmt: skip
            elapsed = 0.0
            fault_at = options.duration / 2 if options.fault else None
            before: dict[str, tuple[int, float]] = {}
            while elapsed < options.duration:
                time.sleep(min(SAMPLE_INTERVAL_S, options.duration - elapsed))
                now = time.monotonic() - wall0
                bar.update(int(now) - int(elapsed))
                elapsed = now
                private_kb = max(private_kb, _status_kb("RssAnon"))
                stats = runner.stats()
                bar.set_postfix(f"{sum(s.steps for s in stats) / max(elapsed, 1e-9):.1f} steps/s in all")
                if fault_at is not None and elapsed >= fault_at and not before:
                    before = {s.name: (s.steps, s.running_s) for s in stats}
                    runner.stop_stream(names[0])  # the camera is switched off
                    fault_at = elapsed
        cpu = _cpu_seconds() - cpu0
        wall = time.monotonic() - wall0
        final = runner.stats()
    finally:
        runner.stop()
        runner.wait()
        assembly.close()
    if options.fault and before:
        others = [s for s in final if s.name != names[0]]
        fault = FaultMeasure(
            stream=names[0],
            at_s=round(fault_at or 0.0, 3),
            others_steps_per_s_before=[round(before[s.name][0] / before[s.name][1], 3) for s in others],
            others_steps_per_s_during=[
                round((s.steps - before[s.name][0]) / max(s.running_s - before[s.name][1], 1e-9), 3) for s in others
            ],
        )
    streams = []
    for s in final:
        offered = s.frames + s.dropped
        streams.append(StreamMeasure(
            name=s.name, steps=s.steps, running_s=round(s.running_s, 3), steps_per_s=round(s.steps_per_s, 3),
            rate_pct=round(100.0 * s.steps_per_s / rate, 2), frames=s.frames, dropped=s.dropped,
            dropped_pct=round(100.0 * s.dropped / offered, 3) if offered else 0.0,
            latency_p50_ms=round(s.latency_p50_ms, 2), latency_p95_ms=round(s.latency_p95_ms, 2), state=s.state,
        ))  # fmt: skip
    if options.fault:  # the stopped stream ran half the time: its rate says nothing
        streams[0].state = "stopped (fault)"
    manifest = model.manifest
    return StreamsReport(
        model=str(options.model), model_id=model.model_id, precision=manifest.precision if manifest else "unknown",
        runtime=f"{model.runtime.name} {model.runtime.version}", clip=str(options.clip),
        clip_fps=round(clip_fps, 3) if clip_fps else None, clip_size=[sources[0].width, sources[0].height],
        model_rate=rate, threads=options.threads, pool=model.pool_size, duration_s=round(wall, 3),
        streams=streams, cpu_pct=round(100.0 * cpu / wall, 1) if wall > 0 else 0.0,
        rss_mb=round(_status_kb("VmHWM") / 1024.0, 1), private_mb=round(private_kb / 1024.0, 1),
        state_mb_per_stream=round(model.state_bytes / 1e6, 3), fault=fault,
        machine=asdict(machine_info(options.runtime)),
    )  # fmt: skip


def measure_separate(options: StreamsBenchOptions) -> SeparateMeasure:
    """``options.streams`` processes of ``movinet-edge bench --streams 1`` at once; their own reports."""
    with tempfile.TemporaryDirectory(prefix="movinet-bench-streams-") as tmp:
        outputs = [Path(tmp) / f"process{i + 1}.json" for i in range(options.streams)]
        env = {k: v for k, v in os.environ.items() if k != "MOVINET_EDGE_MODEL"}
        procs = []
        for out in outputs:
            command = [*edge_command(), "bench", str(options.model), "--clip", str(options.clip), "--streams", "1",
                       "--duration", f"{options.duration:g}", "--threads", str(options.threads), "--no-separate",
                       "--json", str(out), "--quiet"]  # fmt: skip
            if options.runtime:
                command += ["--runtime", options.runtime]
            procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env))
        timeout = options.duration + 300.0
        with Progress(len(procs), f"bench {len(procs)} separate processes", unit="processes",
                      quiet=not options.progress) as bar:  # fmt: skip
            errors = []
            for proc in procs:
                _, stderr = _communicate(proc, timeout)
                if proc.returncode != 0:
                    lines = stderr.decode(errors="replace").strip().splitlines()
                    errors.append(lines[-1] if lines else f"exit status {proc.returncode}")
                bar.update()
        if errors:
            raise EdgeError(f"a separate bench process failed: {errors[0]}")
        reports = [json.loads(out.read_text()) for out in outputs]
    rss = [r["rss_mb"] for r in reports]
    return SeparateMeasure(
        processes=len(reports), rss_mb=rss, rss_mb_total=round(sum(rss), 1),
        steps_per_s=[r["streams"][0]["steps_per_s"] for r in reports],
        cpu_pct_total=round(sum(r["cpu_pct"] for r in reports), 1),
    )  # fmt: skip


def _communicate(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bytes]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return out, err + b"\ntimed out"


def format_streams_table(report: StreamsReport) -> str:
    """Markdown: one row per stream, then the process (CPU, memory), the fault and the separate processes."""
    lines = [
        f"{len(report.streams)} stream(s) of {Path(report.clip).name} "
        f"({report.clip_size[0]}x{report.clip_size[1]}, {report.clip_fps or 0:g} fps) in real time for "
        f"{report.duration_s:.0f} s, {report.model_id} {report.precision}, {report.runtime}, "
        f"{report.threads} thread(s), {report.pool} interpreter(s); model rate {report.model_rate:g} steps/s",
        "",
        "| stream | steps/s | of model rate | steps | dropped | latency p50 ms | latency p95 ms | state |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in report.streams:
        lines.append(f"| {s.name} | {s.steps_per_s:.2f} | {s.rate_pct:.1f}% | {s.steps} "
                     f"| {s.dropped} ({s.dropped_pct:.2f}%) | {s.latency_p50_ms:.1f} | {s.latency_p95_ms:.1f} "
                     f"| {s.state} |")  # fmt: skip
    lines += ["", "| processes | CPU (100% = 1 core) | peak RSS MB | of it private MB | state per stream MB |",
              "|---|---:|---:|---:|---:|",
              f"| 1 (all {len(report.streams)} streams) | {report.cpu_pct:.0f}% | {report.rss_mb:.0f} "
              f"| {report.private_mb:.0f} | {report.state_mb_per_stream:.1f} |"]  # fmt: skip
    sep = report.separate
    if sep is not None:
        lines.append(f"| {sep.processes} (one stream each) | {sep.cpu_pct_total:.0f}% | {sep.rss_mb_total:.0f} "
                     f"(sum; {statistics.fmean(sep.rss_mb):.0f} each) | - | - |")  # fmt: skip
        lines += ["", f"One process holds {len(report.streams)} streams in {report.rss_mb:.0f} MB, "
                      f"{report.rss_mb / statistics.fmean(sep.rss_mb):.2f}x one stream's process; "
                      f"{sep.processes} processes take {sep.rss_mb_total:.0f} MB "
                      f"(their steps/s: {', '.join(f'{v:.2f}' for v in sep.steps_per_s)})."]  # fmt: skip
    if report.fault is not None:
        f = report.fault
        before = ", ".join(f"{v:.2f}" for v in f.others_steps_per_s_before)
        during = ", ".join(f"{v:.2f}" for v in f.others_steps_per_s_during)
        lines += ["", f"Fault: {f.stream}'s source stopped at {f.at_s:.1f} s; the others' steps/s before: "
                      f"{before}; during: {during}."]  # fmt: skip
    lines += ["", f"Machine: {report.machine.get('cpu', '?')}, {report.machine.get('usable_cores', '?')} cores usable, "
                  f"load average {(report.machine.get('load_before') or ['?'])[0]} at the end"]  # fmt: skip
    return "\n".join(lines)
