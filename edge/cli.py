"""``movinet-edge``: the device command, a thin layer over the library.

Without a subcommand it classifies live sources (cameras, the Pi camera,
streams, files, image folders: one or several, each flag repeatable) and
prints smoothed top-k predictions and action events; ``movinet-edge classify
VIDEO`` classifies one clip. The source and sink flags are derived from the
registered kinds (:mod:`.flags`), and :func:`movinet_edge.app.build` wires
the stages. Every user error is an :class:`EdgeError`, turned by :func:`main`
into ``error: <message>`` on stderr and its exit code, never a traceback.
Ctrl-C exits 130, SIGTERM 0, at any moment (:mod:`.signals`).

Other subcommands live in their own modules and register here.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from . import __version__
from .errors import EdgeError
from .flags import flag_names, sink_flags, source_flags, with_options
from .model_path import MODEL_ENV
from .signals import STOP

#: A base-install module that is not there: what to do, in one line (cv2 and numpy come from Debian on
#: 32-bit Raspberry Pi OS, where PyPI has no wheels for them).
MISSING_MODULE_HINTS = {
    "cv2": "OpenCV (cv2) is missing; on 32-bit Raspberry Pi OS: sudo apt install python3-opencv and make the venv "
    "with --system-site-packages; elsewhere: pip install opencv-python-headless",
    "numpy": "numpy is missing; on 32-bit Raspberry Pi OS: sudo apt install python3-numpy and make the venv with "
    "--system-site-packages; elsewhere: pip install numpy",
}

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 120}

app = typer.Typer(
    name="movinet-edge",
    help="Streaming action recognition with a MoViNet TFLite model: cameras, streams and video files.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
)


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _version(value: bool) -> None:
    if value:
        print(f"movinet-edge {__version__}")
        raise typer.Exit()


def _choice(*values: str) -> click.Choice:
    return click.Choice(list(values))


ModelOpt = Annotated[
    Path | None,
    typer.Option("--model", help=f"Model folder or .tflite file (default: ${MODEL_ENV}, then models/a0_stream_int8, "
                 "then models/a0_stream_float32)", show_default=False),
]
LabelsOpt = Annotated[Path | None, typer.Option("--labels", help="Labels file (one a line) instead of the model's.")]
TopKOpt = Annotated[int, typer.Option("--top-k", min=1, help="How many classes to report.")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", min=1, help="Interpreter threads (default: the runtime's).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output (one object a line in live mode).")]
ResizeOpt = Annotated[
    str | None,
    typer.Option("--resize", click_type=_choice("crop", "pad", "stretch"), show_default=False,
                 help="How a frame becomes the model's square: crop (centre crop), pad (letterbox) or stretch. "
                 "Default: the policy the model was exported with (its manifest; crop without one)."),
]
RuntimeOpt = Annotated[
    str | None,
    typer.Option("--runtime", click_type=_choice("ai_edge_litert", "tflite_runtime"), show_default=False,
                 help="TFLite runtime (default: $MOVINET_EDGE_RUNTIME, then whichever is installed)."),
]
VersionOpt = Annotated[
    bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
]


LIVE_FLAGS = source_flags() + sink_flags(service=False)


@app.callback(invoke_without_command=True, context_settings=CONTEXT)
@with_options(LIVE_FLAGS)
def live(
    ctx: typer.Context,
    *,
    model: ModelOpt = None,
    labels: LabelsOpt = None,
    top_k: TopKOpt = 5,
    threads: ThreadsOpt = None,
    resize: ResizeOpt = None,
    runtime: RuntimeOpt = None,
    pool: Annotated[int, typer.Option("--pool", min=1, help="Interpreters shared by several sources (each holds "
                                      "the weights once).")] = 1,
    json_output: JsonOpt = False,
    smoothing: Annotated[str, typer.Option("--smoothing", click_type=_choice("ema", "mean", "none"),
                                           help="Smoothing over steps.")] = "ema",
    alpha: Annotated[float, typer.Option("--alpha", help="EMA weight of the newest step (0-1].")] = 0.5,
    start_threshold: Annotated[float, typer.Option("--start-threshold", help="Score at which an action starts.")] = 0.5,
    end_threshold: Annotated[float, typer.Option("--end-threshold", help="Score below which it ends.")] = 0.3,
    allow: Annotated[
        list[str] | None, typer.Option("--allow", help="Only report events for this label (repeatable).")
    ] = None,
    deny: Annotated[
        list[str] | None, typer.Option("--deny", help="Never report events for this label (repeatable).")
    ] = None,
    window_seconds: Annotated[
        float | None,
        typer.Option("--window-seconds", show_default=False, help="Long-stream window: how many seconds of history "
                     "count (default: on for cameras and streams, off for files)."),
    ] = None,
    no_window: Annotated[bool, typer.Option("--no-window", help="Keep all history (no long-stream window).")] = False,
    window_policy: Annotated[
        str,
        typer.Option("--window-policy", click_type=_choice("rescale", "dual"),
                     help="rescale: shrink the pooled history to half a window when full (one invoke a frame); "
                     "dual: two state sets half a window apart, reset in turn (exact, twice the compute)."),
    ] = "rescale",
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Stop after this many model steps (per camera).")
    ] = None,
    version: VersionOpt = False,
    derived: dict[str, dict[str, Any]],
) -> None:
    """Classify live sources and print the top-k actions as they happen (several sources: lines tagged by camera)."""
    if ctx.invoked_subcommand is not None:
        return
    from .app import (CameraConfig, ModelOptions, OptionProblems, RunConfig, WindowOptions, camera_ids,
                      choose_sources)
    from .postprocess import EventOptions, SmoothingOptions

    if window_seconds is not None and no_window:
        raise EdgeError("--window-seconds and --no-window contradict each other; give one")
    if window_seconds is not None and not window_seconds > 0:
        raise EdgeError(f"--window-seconds must be positive, got {window_seconds:g}")
    names = flag_names(LIVE_FLAGS)
    try:
        choices = choose_sources(derived.get("source", {}))
    except OptionProblems as exc:
        raise EdgeError(_flag_problems(exc, names)) from None
    events = EventOptions(start_threshold=start_threshold, end_threshold=end_threshold,
                          allow=tuple(allow or ()), deny=tuple(deny or ()))  # fmt: skip
    window = WindowOptions(enabled=False if no_window else None, seconds=window_seconds, policy=window_policy)
    sinks = _live_sinks(derived, json_output, top_k)
    config = RunConfig(
        cameras=[CameraConfig(cid, choice, events, window) for cid, choice in zip(camera_ids(choices), choices)],
        model=ModelOptions(path=model, labels=labels, threads=threads, top_k=top_k, resize=resize, runtime=runtime,
                           pool=pool),
        smoothing=SmoothingOptions(method=smoothing, alpha=alpha),  # type: ignore[arg-type]
        sinks=sinks,
        max_steps=max_steps,
    )
    run_live(config)


def _live_sinks(derived: dict[str, dict[str, Any]], json_output: bool, top_k: int) -> dict[str, Any]:
    """The console (predictions, or JSON lines) plus every sink whose flags were given."""
    from .sinks.registry import sink_kinds

    out: dict[str, Any] = {}
    for kind in sink_kinds().values():
        if not kind.live and kind.key != "console":  # the console is every command's
            continue
        values = dict(derived.get(f"sink.{kind.key}", {}))
        if kind.key == "console":
            values.setdefault("console", "json" if json_output else "predictions")
        try:
            options = kind.options(**values)
        except TypeError as exc:  # pragma: no cover - a kind whose options need a value
            raise EdgeError(f"{kind.key}: {exc}") from None
        if kind.enabled(options):
            out[kind.key] = options
    return out


def _flag_problems(exc: Any, names: dict[str, str]) -> str:
    """OptionProblems in the words of this command line: the flag, then what is wrong."""
    parts = []
    for key, message in exc.problems:
        if key == "source":
            from .app import target_keys

            flags = ", ".join(names.get(f"source.{k}", k) for k in target_keys())
            parts.append(f"give a source: {flags} (each may be repeated)")
            continue
        parts.append(f"{names.get(key, key)}: {message}")
    return "; ".join(parts)


def run_live(config: Any) -> None:
    """Build from ``config`` and run until the sources end, --max-steps or a signal; one summary line each."""
    from .app import BuildHooks, build, run, window_summary

    STOP.install()  # explicitly, even if SIGINT was inherited as ignored
    _log_to_stderr()
    hooks = BuildHooks(stop=STOP.event, on_sources=STOP.watch)
    with build(config, hooks) as assembly:
        if not STOP.requested:
            stats = run(assembly, STOP.event)
            for stream, stat in zip(assembly.streams, stats):
                where = f"[{stream.camera}] " if config.many else ""
                _err(f"movinet-edge: {where}{stat.summary()}, {window_summary(stream.classifier)}")
    if STOP.interrupted:
        raise typer.Exit(130)


def _log_to_stderr() -> None:
    """Warnings (a stream lost, back after N s) as plain lines on stderr, unless logging is set up already."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)


@app.command("classify", context_settings=CONTEXT)
def classify_cmd(
    video: Annotated[Path, typer.Argument(help="Video file to classify.", show_default=False)],
    model: ModelOpt = None,
    labels: LabelsOpt = None,
    top_k: TopKOpt = 5,
    threads: ThreadsOpt = None,
    resize: ResizeOpt = None,
    runtime: RuntimeOpt = None,
    json_output: JsonOpt = False,
    probabilities: Annotated[
        Path | None,
        typer.Option("--probabilities", help="Also write per-step probabilities to this .csv or .json file."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also write an animation of the frames beside the top-k probabilities over "
                     "time (.gif or .mp4; needs matplotlib, the 'plot' extra)."),
    ] = None,
) -> None:
    """Classify a whole video clip and print its top-k actions."""
    from .app import ModelOptions, open_model
    from .pipeline import check_probabilities_path, classify_clip, write_probabilities
    from .progress import Progress
    from .sources import VideoFileSource, decode_threads_for, quiet_opencv_logs

    if probabilities is not None:
        check_probabilities_path(probabilities)
    if plot is not None:
        from .plot import FrameRecorder, check_plot_path, write_prediction_plot

        check_plot_path(plot)
    quiet_opencv_logs()
    with VideoFileSource(video, decode_threads=decode_threads_for(threads)) as source:
        classifier = open_model(ModelOptions(path=model, labels=labels, threads=threads, resize=resize,
                                             runtime=runtime))  # fmt: skip
        recorder = FrameRecorder(classifier) if plot is not None else None
        with Progress(source.frame_count, f"classifying {video.name}", unit="frames") as bar:
            result = classify_clip(
                source,
                recorder or classifier,
                top_k=top_k,
                keep_probabilities=probabilities is not None or plot is not None,
                on_frame=lambda _frame: bar.update(),
            )
    if probabilities is not None:
        write_probabilities(result, probabilities)
    if plot is not None and recorder is not None:
        write_prediction_plot(result, recorder.frames, plot, top_k=top_k)
    if json_output:
        record = {
            "video": str(video),
            "model": str(classifier.model_path),
            "steps": result.steps,
            "top_k": [{"label": label, "score": round(score, 6)} for label, score in result.top_k],
        }
        print(json.dumps(record, ensure_ascii=False))
    else:
        for label, score in result.top_k:
            print(f"{label:20s}: {score:.3f}")


def register_commands() -> None:
    """The subcommands that live in their own modules (they import nothing of this one)."""
    from .bench_command import register as register_bench
    from .service.commands import register as register_service

    register_service(app)
    register_bench(app)


register_commands()


def main() -> None:
    """Console entry point: one domain exception, one line, one exit code."""
    from .exits import run_app

    STOP.install()
    try:
        code = run_app(app, "movinet-edge")
    except EdgeError as e:
        _err(f"error: {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except ModuleNotFoundError as e:
        if e.name not in MISSING_MODULE_HINTS:
            raise
        _err(f"error: {MISSING_MODULE_HINTS[e.name]}")
        sys.exit(2)
    sys.exit(code)


if __name__ == "__main__":
    main()
