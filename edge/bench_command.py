"""``movinet-edge bench``: the benchmark as a command, a thin layer over :mod:`movinet_edge.bench`
(one stream, as fast as it goes) and :mod:`movinet_edge.bench_streams` (``--streams N``: N cameras
in real time through one process and one loaded model).

Prints the markdown table on stdout (progress goes to stderr) and, with
``--json``, writes every number there. Nothing heavy is imported until the
command runs, so ``movinet-edge --help`` stays fast.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .errors import EdgeError


class RuntimeChoice(str, Enum):
    ai_edge_litert = "ai_edge_litert"
    tflite_runtime = "tflite_runtime"


def bench_cmd(
    models: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Model folders or .tflite files (default: as for classify: $MOVINET_EDGE_MODEL, then models/...).",
            show_default=False,
        ),
    ] = None,
    clip: Annotated[
        Path | None,
        typer.Option(
            "--clip",
            help="A real video: adds pipeline fps, the reference loop, cold start and peak RSS "
            "(without it only the bare step is timed).",
        ),
    ] = None,
    threads: Annotated[
        list[int] | None, typer.Option("--threads", help="Thread count to measure (repeatable; default: 1 and 2).")
    ] = None,
    iterations: Annotated[int, typer.Option("--iterations", help="Timed bare steps per thread count.")] = 50,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed steps first.")] = 5,
    passes: Annotated[int, typer.Option("--passes", help="Runs of the clip through each loop.")] = 3,
    cold_starts: Annotated[
        int, typer.Option("--cold-starts", help="Fresh processes for cold start and peak RSS (0: skip).")
    ] = 3,
    reference: Annotated[
        bool, typer.Option("--reference/--no-reference", help="Also run the TensorFlow examples' loop on the clip.")
    ] = True,
    runtime: Annotated[
        RuntimeChoice | None,
        typer.Option("--runtime", help="TFLite runtime (default: $MOVINET_EDGE_RUNTIME, then whichever is installed)."),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the results to this JSON file.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
    streams: Annotated[
        int | None,
        typer.Option(
            "--streams",
            help="Play the --clip as N cameras in real time through one process and one loaded model "
            "(per-stream steps/s, drops, latency, CPU, peak RSS), instead of the single-stream measurements.",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[float, typer.Option("--duration", help="With --streams: seconds to run.")] = 20.0,
    pool: Annotated[
        int, typer.Option("--pool", help="With --streams: interpreters the streams are spread over.")
    ] = 1,
    separate: Annotated[
        bool,
        typer.Option("--separate/--no-separate",
                     help="With --streams N > 1: also run the N streams as N processes, to compare memory."),
    ] = True,
    fault: Annotated[
        bool, typer.Option("--fault", help="With --streams: stop one stream's source halfway; report the others.")
    ] = False,
) -> None:
    """Time a model on this machine: step latency, pipeline fps, the reference loop, cold start, RSS;
    with --streams N, N real-time cameras through one process and one loaded model."""
    from .files import check_writable
    from .model_path import MAKE_MODEL_HINT, resolve_model

    if json_path is not None:
        check_writable(json_path, (".json",), "--json")
    paths = list(models) if models else [resolve_model(None)]
    for path in paths:
        if not path.exists():
            raise EdgeError(f"model {path} does not exist; {MAKE_MODEL_HINT}")
    if streams is not None:
        _bench_streams(paths, clip, streams, duration, threads, pool, separate, fault, runtime, json_path, quiet)
        return
    from .bench import BenchOptions, bench_models, format_table

    options = BenchOptions(
        threads=tuple(threads) if threads else (1, 2),
        iterations=iterations,
        warmup=warmup,
        clip=clip,
        passes=passes,
        cold_starts=cold_starts,
        reference=reference,
        runtime=runtime.value if runtime else None,
        progress=not quiet,
    )
    report = bench_models(paths, options)
    print(format_table(report))
    if json_path is not None:
        report.write_json(json_path)


def _bench_streams(paths: list[Path], clip: Path | None, streams: int, duration: float, threads: list[int] | None,
                   pool: int, separate: bool, fault: bool, runtime: RuntimeChoice | None, json_path: Path | None,
                   quiet: bool) -> None:  # fmt: skip
    """``--streams N``: the library's checks, with the flags named where the user can fix them."""
    from .bench_streams import StreamsBenchOptions, bench_streams, format_streams_table

    if len(paths) != 1:
        raise EdgeError("--streams measures one model; pass one model folder or .tflite file")
    if clip is None:
        raise EdgeError("--streams needs --clip VIDEO: the clip every stream plays in real time, like a camera")
    if not clip.is_file():
        raise EdgeError(f"--clip {clip} does not exist; pass a video file")
    if threads is not None and len(threads) > 1:
        raise EdgeError("--streams takes one --threads value (the interpreter's threads)")
    for flag, value, low in (("--streams", streams, 1), ("--pool", pool, 1), ("--threads", (threads or [1])[0], 1)):
        if value < low:
            raise EdgeError(f"{flag} must be at least {low}, got {value}")
    if not duration > 0:
        raise EdgeError(f"--duration must be positive, got {duration:g}")
    if fault and streams < 2:
        raise EdgeError("--fault needs --streams 2 or more: one stream to stop, others to watch")
    options = StreamsBenchOptions(
        model=paths[0], clip=clip, streams=streams, duration=duration, threads=(threads or [1])[0], pool=pool,
        separate=separate, fault=fault, runtime=runtime.value if runtime else None, progress=not quiet,
    )  # fmt: skip
    report = bench_streams(options)
    print(format_streams_table(report))
    if json_path is not None:
        report.write_json(json_path)


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the ``movinet-edge`` app."""
    app.command("bench")(bench_cmd)
