"""``movinet-edge``: the device command, a thin layer over the library.

Without a subcommand it classifies a live source (camera, Pi camera, stream,
or a file) and prints smoothed top-k predictions and action events;
``movinet-edge classify VIDEO`` classifies one clip. Every user error is an
:class:`EdgeError`, turned by :func:`main` into ``error: <message>`` on stderr
and its exit code, never a traceback; Ctrl-C exits 130.

Other subcommands live in their own modules and register here, e.g.::

    from .serve import serve_cmd
    app.command("serve")(serve_cmd)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from . import __version__
from .errors import EdgeError
from .manifest import MODEL_NAME
from .native_logs import native_stderr_silenced

# The exporter's default outputs, int8 first (the fast one on a Pi).
DEFAULT_MODEL_DIRS = (Path("models/a0_stream_int8"), Path("models/a0_stream_float32"))
MODEL_ENV = "MOVINET_EDGE_MODEL"
NO_MODEL = "no model found; make one with: movinet-export --model a0 --quantize   (or pass --model DIR)"

app = typer.Typer(
    name="movinet-edge",
    help="Streaming action recognition with a MoViNet TFLite model: cameras, streams and video files.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Smoothing(str, Enum):
    ema = "ema"
    mean = "mean"
    none = "none"


class WindowPolicyName(str, Enum):
    """Typer needs an Enum it can import without numpy; mirrors windowing.WindowPolicy."""

    rescale = "rescale"
    dual = "dual"


class ResizeName(str, Enum):
    """Mirrors preprocess.ResizePolicy without importing OpenCV for --help."""

    crop = "crop"
    pad = "pad"
    stretch = "stretch"


def resolve_model(model: Path | None) -> Path:
    """--model, else $MOVINET_EDGE_MODEL, else the exporter's default output folders under CWD."""
    if model is not None:
        return model
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    for folder in DEFAULT_MODEL_DIRS:
        if (folder / MODEL_NAME).is_file():
            return folder
    raise EdgeError(NO_MODEL)


def open_classifier(
    model: Path | None, labels: Path | None, threads: int | None, resize: str | None = None
) -> Any:
    """The classifier the commands (and the service) run; ``resize`` None: the manifest's policy."""
    # Imported here so that `--help` and argument errors do not load a TFLite runtime.
    from .model import StreamingClassifier

    if threads is not None and threads < 1:
        raise EdgeError(f"--threads must be at least 1, got {threads}")
    path = resolve_model(model)
    with native_stderr_silenced():
        return StreamingClassifier.open(path, labels=labels, num_threads=threads, resize_policy=resize)


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _version(value: bool) -> None:
    if value:
        print(f"movinet-edge {__version__}")
        raise typer.Exit()


ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model",
        help=f"Model folder or .tflite file (default: ${MODEL_ENV}, then models/a0_stream_int8, "
        "then models/a0_stream_float32)",
        show_default=False,
    ),
]
LabelsOpt = Annotated[Path | None, typer.Option("--labels", help="Labels file (one a line) instead of the model's.")]
TopKOpt = Annotated[int, typer.Option("--top-k", min=1, help="How many classes to report.")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="Interpreter threads (default: the runtime's).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output (one object a line in live mode).")]
ResizeOpt = Annotated[
    ResizeName | None,
    typer.Option(
        "--resize",
        help="How a frame becomes the model's square: crop (centre crop), pad (letterbox, nothing cut off) "
        "or stretch (ignore the aspect ratio). Default: the policy the model was exported with "
        "(its manifest; crop without one).",
        show_default=False,
    ),
]


@app.callback(invoke_without_command=True)
def live(
    ctx: typer.Context,
    camera: Annotated[
        str | None, typer.Option("--camera", help="V4L2 camera index or device (0, /dev/video2), or 'picam'.")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="Stream URL (rtsp://..., http://...mjpg).")] = None,
    video: Annotated[Path | None, typer.Option("--video", help="Video file.")] = None,
    realtime: Annotated[bool, typer.Option("--realtime", help="Play --video at its own speed, like a camera.")] = False,
    loop: Annotated[bool, typer.Option("--loop", help="Play --video again and again.")] = False,
    model: ModelOpt = None,
    labels: LabelsOpt = None,
    top_k: TopKOpt = 5,
    threads: ThreadsOpt = None,
    resize: ResizeOpt = None,
    json_output: JsonOpt = False,
    smoothing: Annotated[Smoothing, typer.Option("--smoothing", help="Smoothing over steps.")] = Smoothing.ema,
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
        typer.Option(
            "--window-seconds",
            help="Long-stream window: how many seconds of history count (default: on "
            "for cameras and streams, off for files).",
            show_default=False,
        ),
    ] = None,
    no_window: Annotated[bool, typer.Option("--no-window", help="Keep all history (no long-stream window).")] = False,
    window_policy: Annotated[
        WindowPolicyName,
        typer.Option(
            "--window-policy",
            help="rescale: shrink the pooled history to half a window when full (one invoke a frame); "
            "dual: two state sets half a window apart, reset in turn (exact, twice the compute).",
        ),
    ] = WindowPolicyName.rescale,
    save: Annotated[Path | None, typer.Option("--save", help="Write the annotated video here (.mp4).")] = None,
    display: Annotated[bool, typer.Option("--display", help="Show the annotated video in a window.")] = False,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Stop after this many model steps.")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Classify a live source and print the top-k actions as they happen."""
    if ctx.invoked_subcommand is not None:
        return
    from .pipeline import PipelineOptions, run_pipeline
    from .postprocess import EventOptions, SmoothingOptions
    from .sinks import AnnotatedVideoSink, ConsoleSink, DisplaySink, JsonLinesSink
    from .sources import SourceSpec, decode_threads_for, open_source, quiet_opencv_logs

    if window_seconds is not None and no_window:
        raise EdgeError("--window-seconds and --no-window contradict each other; give one")
    if window_seconds is not None and not window_seconds > 0:
        raise EdgeError(f"--window-seconds must be positive, got {window_seconds:g}")
    spec = SourceSpec(camera=camera, url=url, video=video, realtime=realtime, loop=loop,
                      decode_threads=decode_threads_for(threads))  # fmt: skip
    spec.check()
    options = PipelineOptions(
        top_k=top_k,
        smoothing=SmoothingOptions(method=smoothing.value, alpha=alpha),
        events=EventOptions(
            start_threshold=start_threshold,
            end_threshold=end_threshold,
            allow=tuple(allow or ()),
            deny=tuple(deny or ()),
        ),
        max_steps=max_steps,
    )
    stop = threading.Event()
    display_sink = DisplaySink(top_k=min(top_k, 3), stop=stop) if display else None

    def on_reconnect(attempt: int, delay: float, reason: str) -> None:
        _err(f"{source_name}: {reason}; reconnecting in {delay:.1f} s (attempt {attempt})")

    source_name = "stream"
    spec.on_reconnect = on_reconnect
    quiet_opencv_logs()
    with open_source(spec) as source:
        source_name = source.name
        classifier = open_classifier(model, labels, threads, resize.value if resize else None)
        if no_window:
            windowed = False
        elif window_seconds is not None:
            windowed = True
        else:
            windowed = spec.live  # long streams need it; a file is one clip
        if windowed:
            from .windowing import DEFAULT_WINDOW_SECONDS, WindowedClassifier

            classifier = WindowedClassifier(
                classifier,
                window_seconds=window_seconds if window_seconds is not None else DEFAULT_WINDOW_SECONDS,
                policy=window_policy.value,
            )
            if classifier.fallback:
                _err(f"warning: {classifier.fallback}")
        sinks: list[Any] = [JsonLinesSink(sys.stdout) if json_output else ConsoleSink(sys.stdout)]
        if save is not None:
            sinks.append(AnnotatedVideoSink(save, fps=source.fps or 30.0, top_k=min(top_k, 3)))
        if display_sink is not None:
            sinks.append(display_sink)

        def on_sigterm(signum: int, frame: object) -> None:
            # systemd stops services with SIGTERM: finish cleanly, like the end of a file.
            stop.set()
            source.stop()

        previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            stats = run_pipeline(source, classifier, sinks, options, stop)
        finally:
            signal.signal(signal.SIGTERM, previous)
    _err(f"movinet-edge: {stats.summary()}, {_window_summary(classifier)}")


def _window_summary(classifier: Any) -> str:
    """Which long-stream window ran: on by default for live sources, so say whether it was."""
    window_seconds = getattr(classifier, "window_seconds", None)
    if window_seconds is None:
        return "no long-stream window"
    policy = classifier.policy.value
    count = classifier.resets
    what = "rescale" if policy == "rescale" else "reset"
    return f"long-stream window {window_seconds:g} s ({policy}, {count} {what}{'' if count == 1 else 's'})"


@app.command("classify")
def classify_cmd(
    video: Annotated[Path, typer.Argument(help="Video file to classify.", show_default=False)],
    model: ModelOpt = None,
    labels: LabelsOpt = None,
    top_k: TopKOpt = 5,
    threads: ThreadsOpt = None,
    resize: ResizeOpt = None,
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
        classifier = open_classifier(model, labels, threads, resize.value if resize else None)
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
            "model": str(getattr(classifier, "model_path", "")),
            "steps": result.steps,
            "top_k": [{"label": label, "score": round(score, 6)} for label, score in result.top_k],
        }
        print(json.dumps(record, ensure_ascii=False))
    else:
        for label, score in result.top_k:
            print(f"{label:20s}: {score:.3f}")


from .service.commands import register as _register_service  # noqa: E402 - serve, install-service

_register_service(app)

from .bench_command import register as _register_bench  # noqa: E402 - bench

_register_bench(app)


def main() -> None:
    """Console entry point: one domain exception, one line, one exit code."""
    from .exits import run_app

    try:
        code = run_app(app, "movinet-edge")
    except EdgeError as e:
        _err(f"error: {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)


if __name__ == "__main__":
    main()
