"""The one assembly layer: a run configuration in, the pipelines out.

``live``, ``classify``, ``serve`` and ``bench`` describe what they want as a
:class:`RunConfig` made of the library's own option types (from CLI flags or
the service's TOML; both are translated by their entry point), and
:func:`build` wires the stages: the model (loaded once, forked per camera),
each camera's source, classifier with its long-stream window, pipeline
options and sinks, and the shared network sinks. The entry points only choose
what to run and how to report; none of them wires stages itself.

Nothing here names a CLI flag or a TOML key in an error: problems are raised
as :class:`OptionProblems` keyed by option names (``source.video``,
``window.seconds``), which each entry point turns into its own words.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TextIO

from .errors import EdgeError
from .model_path import resolve_model
from .options import at_least, check_options, option, positive
from .postprocess import EventOptions, SmoothingOptions
from .runtime import RUNTIMES
from .sinks.camera_lines import CameraLines
from .sinks.registry import SinkContext, SinkKind, missing_requirements, sink_kinds
from .sources.registry import SourceContext, SourceKind, source_kinds

log = logging.getLogger("movinet_edge")

RESIZE_POLICIES = ("crop", "pad", "stretch")
WINDOW_POLICIES = ("rescale", "dual")
DEFAULT_CAMERA = "default"


class OptionProblems(EdgeError):
    """Problems with options, each ``(dotted option name, what is wrong)``; the entry point words them."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{key}: {message}" for key, message in self.problems))


# ---- the option types that are not a stage's own -------------------------------------------


@dataclass
class ModelOptions:
    """Which model, how it runs. ``path`` None: $MOVINET_EDGE_MODEL or the exporter's folders."""

    path: Path | None = field(default=None, metadata=option("Model folder or .tflite file.", flag="--model"))
    labels: Path | None = field(default=None, metadata=option("Labels file (one a line) instead of the model's."))
    threads: int | None = field(default=None, metadata=option("Interpreter threads.", check=at_least(1)))
    top_k: int = field(default=5, metadata=option("How many classes to report.", check=at_least(1)))
    # How frames are made square. Unset: the policy in the model's manifest (the
    # one it was trained and exported with), else crop.
    resize: str | None = field(default=None, metadata=option("How a frame becomes square.", choices=RESIZE_POLICIES))
    runtime: str | None = field(default=None, metadata=option("TFLite runtime.", choices=RUNTIMES))
    # Several cameras share one model; more interpreters (each with its own packed weights)
    # step them in parallel on a loaded or many-core board.
    pool: int = field(default=1, metadata=option("Interpreters shared by the cameras.", check=at_least(1)))


@dataclass
class WindowOptions:
    """The long-stream window. ``enabled`` None: on for cameras and streams, off for files."""

    enabled: bool | None = None
    seconds: float | None = field(default=None, metadata=option("Seconds of history.", check=positive))
    # rescale: one invoke a frame, pools shrunk to half a window when full;
    # dual: two state sets W/2 apart, exact windows at twice the compute.
    policy: str = field(default="rescale", metadata=option("rescale or dual.", choices=WINDOW_POLICIES))

    def applies(self, live: bool) -> bool:
        if self.enabled is not None:
            return self.enabled
        return True if self.seconds is not None else live


@dataclass
class SourceChoice:
    """One source: a registered kind and that kind's options."""

    kind: str
    options: Any

    @property
    def spec(self) -> SourceKind:
        return source_kinds()[self.kind]


@dataclass
class CameraConfig:
    """One stream of a run: its id, its source, and what may differ per camera."""

    id: str
    source: SourceChoice
    events: EventOptions = field(default_factory=EventOptions)
    window: WindowOptions = field(default_factory=WindowOptions)


@dataclass
class RunConfig:
    """Everything a run needs, in the library's own types."""

    cameras: list[CameraConfig]
    model: ModelOptions = field(default_factory=ModelOptions)
    smoothing: SmoothingOptions = field(default_factory=SmoothingOptions)
    #: Sink kind key -> that kind's options, for the sinks this run turns on.
    sinks: dict[str, Any] = field(default_factory=dict)
    device_id: str = ""
    max_steps: int | None = None

    @property
    def many(self) -> bool:
        return len(self.cameras) > 1


# ---- sources from flat keys (the CLI's flags, the TOML's [source] table) -------------------


def source_fields() -> dict[str, tuple[list[SourceKind], Any]]:
    """Every source option by its flat key: (the kinds that take it, its dataclass field)."""
    table: dict[str, tuple[list[SourceKind], Any]] = {}
    for kind in source_kinds().values():
        for i, f in enumerate(fields(kind.options)):
            key = kind.config_key if i == 0 else f.name
            if key in table:
                table[key][0].append(kind)
            else:
                table[key] = ([kind], f)
    return table


def target_keys() -> list[str]:
    return [kind.config_key for kind in source_kinds().values()]


def choose_sources(values: Mapping[str, Any]) -> list[SourceChoice]:
    """Sources from flat keys: each target key (``video``, ``url``...) may hold one value or a list.

    The other keys set options of the kinds that take them; a key that none of
    the chosen kinds takes is a problem (``realtime`` with a camera).
    """
    kinds = source_kinds()
    problems: list[tuple[str, str]] = []
    chosen: list[tuple[SourceKind, Any]] = []
    for kind in kinds.values():
        value = values.get(kind.config_key)
        if value is None or value == []:
            continue
        for target in value if isinstance(value, (list, tuple)) else [value]:
            chosen.append((kind, target))
    if not chosen:
        names = ", ".join(k.config_key for k in kinds.values())
        problems.append(("source", f"give a source: one of {names}"))
        raise OptionProblems(problems)
    table = source_fields()
    used = {kind.key for kind, _ in chosen}
    for key, value in values.items():
        if key in target_keys() or key not in table or value is None:
            continue
        takers, f = table[key]
        if value != _default(f) and not any(k.key in used for k in takers):
            problems.append((f"source.{key}", f"applies to {' and '.join(k.config_key for k in takers)} sources only"))
    choices: list[SourceChoice] = []
    for kind, target in chosen:
        kwargs: dict[str, Any] = {}
        for i, f in enumerate(fields(kind.options)):
            if i == 0:
                kwargs[f.name] = target
            elif values.get(f.name) is not None:
                kwargs[f.name] = values[f.name]
        options = kind.options(**kwargs)
        problems += [(f"source.{kind.config_key if n == kind.target else n}", p) for n, p in check_options(options)]
        choices.append(SourceChoice(kind.key, options))
    if problems:
        raise OptionProblems(problems)
    return choices


def _default(f: Any) -> Any:
    from dataclasses import MISSING

    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def camera_ids(choices: Sequence[SourceChoice]) -> list[str]:
    """Ids for sources given on a command line: ``default`` for one, else a short unique name each."""
    if len(choices) == 1:
        return [DEFAULT_CAMERA]
    ids: list[str] = []
    for i, choice in enumerate(choices):
        target = str(getattr(choice.options, choice.spec.target))
        stem = Path(target).stem if choice.kind in ("video", "image-folder") else target
        base = "".join(c if c.isalnum() or c in "_.-" else "-" for c in stem).strip("-")[:32] or f"cam{i + 1}"
        name = base if base not in ids else f"{base}-{i + 1}"
        ids.append(name)
    return ids


# ---- the model ----------------------------------------------------------------------------


def open_model(options: ModelOptions) -> Any:
    """The model, loaded once (the native runtime's chatter silenced)."""
    # Imported here so that argument errors and --help do not load a TFLite runtime.
    from .model import StreamingClassifier
    from .native_logs import native_stderr_silenced

    path = resolve_model(options.path)
    with native_stderr_silenced():
        return StreamingClassifier.open(
            path, labels=options.labels, num_threads=options.threads, resize_policy=options.resize,
            runtime=options.runtime, pool=options.pool,
        )  # fmt: skip


def windowed(classifier: Any, window: WindowOptions, live: bool) -> Any:
    """The classifier a camera runs: with the long-stream window where it applies."""
    if not window.applies(live):
        return classifier
    from .windowing import DEFAULT_WINDOW_SECONDS, WindowedClassifier

    seconds = window.seconds if window.seconds is not None else DEFAULT_WINDOW_SECONDS
    wrapped = WindowedClassifier(classifier, window_seconds=seconds, policy=window.policy)
    if wrapped.fallback:
        log.warning("%s", wrapped.fallback)
    return wrapped


def window_summary(classifier: Any) -> str:
    """Which long-stream window ran: on by default for live sources, so say whether it was."""
    window_seconds = getattr(classifier, "window_seconds", None)
    if window_seconds is None:
        return "no long-stream window"
    policy = classifier.policy.value
    count = classifier.resets
    what = "rescale" if policy == "rescale" else "reset"
    return f"long-stream window {window_seconds:g} s ({policy}, {count} {what}{'' if count == 1 else 's'})"


# ---- sinks -----------------------------------------------------------------------------------


def enabled_sinks(config: RunConfig) -> list[tuple[SinkKind, Any]]:
    kinds = sink_kinds()
    return [(kinds[key], options) for key, options in config.sinks.items() if kinds[key].enabled(options)]


def check_requirements(config: RunConfig) -> None:
    """The optional packages the configured sinks need, all named in one line."""
    missing: list[str] = []
    for kind, _options in enabled_sinks(config):
        missing += [p for p in missing_requirements(kind) if p not in missing]
    if missing:
        raise EdgeError(f"missing {', '.join(missing)}: pip install 'movinet-edge[service]'")


@dataclass
class Stream:
    """One camera's pipeline, built: source, classifier (with window), sinks, options."""

    camera: str
    source: Any
    classifier: Any
    sinks: list[Any]
    options: Any  # PipelineOptions
    live: bool
    reopen: Callable[[], Any] | None = None  # a fresh source after a failure (many cameras)


@dataclass
class Assembly:
    """What :func:`build` made; close it (or use ``with``) to release every device."""

    config: RunConfig
    model: Any  # the loaded StreamingClassifier (the cameras run forks of it)
    streams: list[Stream]
    #: Sink kind key -> the one sink of that kind all cameras share (they take stamped event records).
    network: dict[str, Any]

    @property
    def network_sinks(self) -> list[Any]:
        return list(self.network.values())
    stack: ExitStack

    @property
    def model_path(self) -> Path:
        return Path(self.model.model_path)

    def __enter__(self) -> Assembly:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def close(self) -> None:
        self.stack.close()


@dataclass
class BuildHooks:
    """What an entry point adds to the wiring without wiring stages itself."""

    stdout: TextIO | None = None
    stop: threading.Event | None = None
    on_reconnect: Callable[[str, int, float, str], None] | None = None  # (camera, attempt, delay, reason)
    on_recovered: Callable[[str, float], None] | None = None  # (camera, outage seconds)
    decode_threads: int | None = None
    #: Called with the opened sources before the model loads (a signal handler wants them).
    on_sources: Callable[[list[Any]], None] | None = None
    #: Per-camera sinks the entry point adds (a service monitor), before the configured ones.
    camera_sinks: Callable[[str, Any, Any], list[Any]] | None = None  # (camera, source, classifier)
    info: dict[str, str] = field(default_factory=dict)


def open_source(choice: SourceChoice, camera: str, hooks: BuildHooks) -> Any:
    kind = choice.spec
    context = SourceContext(
        decode_threads=hooks.decode_threads,
        on_reconnect=(lambda a, d, r: hooks.on_reconnect(camera, a, d, r)) if hooks.on_reconnect else None,
        on_recovered=(lambda s: hooks.on_recovered(camera, s)) if hooks.on_recovered else None,
        name=None if camera == DEFAULT_CAMERA else camera,
    )
    return kind.open(choice.options, context)


def build(config: RunConfig, hooks: BuildHooks | None = None) -> Assembly:
    """Open the sources (first: a camera that is not there fails in a second), load the model once,
    and wire each camera's classifier and sinks. Raises EdgeError; releases what it opened on failure."""
    from .pipeline import PipelineOptions
    from .sources import decode_threads_for, quiet_opencv_logs

    hooks = hooks or BuildHooks()
    if hooks.decode_threads is None:
        hooks = replace(hooks, decode_threads=decode_threads_for(config.model.threads))
    check_requirements(config)
    quiet_opencv_logs()
    stack = ExitStack()
    try:
        sources = []
        for camera in config.cameras:
            source = open_source(camera.source, camera.id, hooks)
            stack.callback(source.close)
            sources.append(source)
        if hooks.on_sources is not None:
            hooks.on_sources(sources)
        stdout = hooks.stdout if hooks.stdout is not None else sys.stdout
        kinds = enabled_sinks(config)
        shared = SinkContext(device_id=config.device_id, info=hooks.info, top_k=config.model.top_k, stop=hooks.stop,
                             stdout=stdout, cameras=tuple(c.id for c in config.cameras))  # fmt: skip
        # Network sinks first: their configuration (TLS material) is checked before the model loads.
        # ``hooks.info`` is filled in by the entry point once the model is known; they publish it on start().
        network = {kind.key: kind.open(options, shared) for kind, options in kinds if _is_network(kind)}
        # The per-camera sinks are opened before the model too: a --display without a GUI or an
        # unwritable --save is refused in a second, not after the model loaded.
        contexts = [replace(shared, source_fps=source.fps,
                            stdout=CameraLines(stdout, camera.id) if config.many else stdout)
                    for camera, source in zip(config.cameras, sources)]  # fmt: skip
        configured = [[kind.open(_per_camera(options, camera.id, config.many), context)
                       for kind, options in kinds if not _is_network(kind)]
                      for camera, context in zip(config.cameras, contexts)]  # fmt: skip
        model = open_model(config.model)
        streams: list[Stream] = []
        for index, (camera, source) in enumerate(zip(config.cameras, sources)):
            live = camera.source.spec.live
            classifier = model if index == 0 else model.fork()
            classifier = windowed(classifier, camera.window, live)
            sinks: list[Any] = []
            if hooks.camera_sinks is not None:
                sinks += hooks.camera_sinks(camera.id, source, classifier)
            sinks += configured[index]
            # A network sink that also follows predictions (Home Assistant's current action)
            # gets a per-camera view of itself.
            sinks += [sink.camera_sink(camera.id) for sink in network.values() if hasattr(sink, "camera_sink")]
            pipeline = PipelineOptions(
                top_k=config.model.top_k, smoothing=config.smoothing, events=camera.events, max_steps=config.max_steps,
            )  # fmt: skip
            reopen = (lambda c=camera: _reopen(c, hooks)) if config.many else None
            streams.append(Stream(camera.id, source, classifier, sinks, pipeline, live, reopen))
        return Assembly(config, model, streams, network, stack)
    except BaseException:
        stack.close()
        raise


def _reopen(camera: CameraConfig, hooks: BuildHooks) -> Any:
    """A fresh source for a camera that failed (many cameras: it is retried on its own)."""
    source = open_source(camera.source, camera.id, hooks)
    if hooks.on_sources is not None:
        hooks.on_sources([source])
    return source


def _is_network(kind: SinkKind) -> bool:
    """Network sinks take stamped event records (publish_event), one instance for all cameras."""
    return kind.section not in ("output",)


def _per_camera(options: Any, camera: str, many: bool) -> Any:
    """A file a sink writes gets the camera id in its name when several cameras write one each."""
    if not many:
        return options
    changes = {}
    for f in fields(options):
        value = getattr(options, f.name)
        if isinstance(value, Path):
            changes[f.name] = value.with_name(f"{value.stem}-{camera}{value.suffix}")
    return replace(options, **changes) if changes else options


def run(assembly: Assembly, stop: threading.Event) -> list[Any]:
    """Run every camera's pipeline until its source ends or ``stop``; PipelineStats per camera."""
    from .pipeline import run_pipeline

    streams = assembly.streams
    if len(streams) == 1:
        s = streams[0]
        return [run_pipeline(s.source, s.classifier, s.sinks, s.options, stop)]
    from .streams import run_streams

    return run_streams(streams, stop)

