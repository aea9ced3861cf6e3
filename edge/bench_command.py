"""``movinet-edge bench``: the benchmark as a command, a thin layer over :mod:`movinet_edge.bench`.

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
) -> None:
    """Time a model on this machine: step latency, pipeline fps, the reference loop, cold start, RSS."""
    from .bench import BenchOptions, bench_models, format_table
    from .cli import resolve_model

    if json_path is not None:
        if json_path.suffix.lower() != ".json":
            raise EdgeError(f"--json {json_path}: use a .json file name")
        if not json_path.parent.is_dir():
            raise EdgeError(f"cannot write {json_path}: directory {json_path.parent} does not exist")
        if json_path.is_dir():
            raise EdgeError(f"cannot write {json_path}: it is a directory")
    paths = list(models) if models else [resolve_model(None)]
    for path in paths:
        if not path.exists():
            raise EdgeError(f"model {path} does not exist; export one with: movinet-export --model a0")
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


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the ``movinet-edge`` app."""
    app.command("bench")(bench_cmd)
