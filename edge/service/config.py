"""The service's configuration: one TOML file, checked completely before anything starts.

A device runs unattended, so a mistake in its configuration must show up at
start as a list the operator can work through, not one error per restart:
:func:`load_config` collects *every* problem and raises one
:class:`ConfigError` holding them, one line each (:mod:`.tables` does the
per-key work).

The sections are the library's own option types: ``[model]`` and
``[window]`` are :mod:`movinet_edge.app`'s, ``[source]`` (or one
``[[cameras]]`` table per camera) holds the keys the registered source kinds
declare, and every registered sink declares its own section (``[output]``,
``[mqtt]``, ``[webhook]``...). A new source or sink therefore needs no change
here.

CLI flags override the file: ``movinet-edge serve`` passes them as dotted keys
(``{"model.top_k": 3}``) that replace the file's values before validation, so
a value from either place is checked by the same rules. Relative paths in the
file are relative to the file (a service's working directory is ``/``); those
given on the command line are relative to the current directory.

Exit code 78 (``EX_CONFIG``) marks a configuration error: the systemd unit lists
it in ``RestartPreventExitStatus=`` so a misconfigured device does not restart
in a loop, while a camera that went away (exit 2) is retried.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..app import DEFAULT_CAMERA, CameraConfig, ModelOptions, RunConfig, WindowOptions, source_fields, target_keys
from ..errors import EdgeError
from ..options import one_of, option
from ..postprocess import EventOptions, SmoothingOptions
from ..sinks.registry import sink_kinds
from .camera_tables import read_cameras
from .http_server import HttpLimits
from .monitor import HealthOptions
from .sections import DEVICE_ID, HTTP_PARTS, EventsSection, HttpSection, SmoothingSection
from .tables import EX_CONFIG, ConfigError, Report, build_table, read_toml

__all__ = ["EX_CONFIG", "HTTP_PARTS", "ConfigError", "ServiceConfig", "load_config", "parse_listen",
           "example_config_path"]  # fmt: skip


@dataclass
class ServiceConfig:
    """Everything ``movinet-edge serve`` needs, validated."""

    device_id: str = ""
    log_level: str = field(default="info", metadata=option(check=one_of(("debug", "info", "warning", "error"))))
    model: ModelOptions = field(default_factory=ModelOptions)
    smoothing: SmoothingSection = field(default_factory=SmoothingSection)
    events: EventsSection = field(default_factory=EventsSection)
    window: WindowOptions = field(default_factory=WindowOptions)
    http: HttpSection = field(default_factory=HttpSection, metadata={"internal": True})
    health: HealthOptions = field(default_factory=HealthOptions, metadata={"internal": True})
    http_limits: HttpLimits = field(default_factory=HttpLimits, metadata={"internal": True})
    #: The cameras, each with its source and per-camera overrides ([source] makes one).
    cameras: list[CameraConfig] = field(default_factory=list, metadata={"internal": True})
    #: Sink kind key -> options, for every service sink (enabled or not).
    sinks: dict[str, Any] = field(default_factory=dict, metadata={"internal": True})
    #: Where it was read from (None: defaults and flags only).
    path: Path | None = field(default=None, metadata={"internal": True})

    def smoothing_options(self) -> SmoothingOptions:
        s = self.smoothing
        return SmoothingOptions(method=s.method, alpha=s.alpha, window=s.window)  # type: ignore[arg-type]

    def event_options(self) -> EventOptions:
        return self.events.options()

    @property
    def http_address(self) -> tuple[str, int]:
        return parse_listen(self.http.listen)

    @property
    def source(self) -> Any:
        """The first camera's source options (one camera: the source)."""
        return self.cameras[0].source.options

    def windowed(self) -> bool:
        """Whether the long-stream window applies to the first camera."""
        camera = self.cameras[0]
        return camera.window.applies(camera.source.spec.live)

    def sink(self, key: str) -> Any:
        return self.sinks.get(key)

    @property
    def mqtt(self) -> Any:
        return self.sinks.get("mqtt")

    def run_config(self) -> RunConfig:
        """The run this configuration describes, for :func:`movinet_edge.app.build`."""
        kinds = sink_kinds()
        enabled = {key: options for key, options in self.sinks.items() if kinds[key].enabled(options)}
        mqtt = enabled.get("mqtt")
        if mqtt is not None and getattr(mqtt, "home_assistant", False):
            # Home Assistant gets a binary sensor per label the events are allowed for.
            allowed = tuple(dict.fromkeys(name for c in self.cameras for name in c.events.allow))
            enabled["mqtt"] = replace(mqtt, labels=allowed)
        return RunConfig(
            cameras=self.cameras, model=self.model, smoothing=self.smoothing_options(), sinks=enabled,
            device_id=self.device_id,
        )  # fmt: skip


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9750`` for IPv6) into (host, port); raises ValueError with what is wrong."""
    text = value.strip()
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", text)
    if not match:
        raise ValueError(f"must be HOST:PORT (e.g. 127.0.0.1:9750, [::1]:9750), got {value!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    return host, port


def default_device_id() -> str:
    """The host name, made fit for an MQTT topic level."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname().split(".")[0]) or "device"
    return name[:64] if name[0].isalnum() else f"d{name}"[:64]


def _sink_sections() -> dict[str, list[Any]]:
    """Config section -> the service sink kinds that keep their options there."""
    sections: dict[str, list[Any]] = {}
    for kind in sink_kinds().values():
        if kind.service:
            sections.setdefault(kind.section, []).append(kind)
    return sections


def _static_sections() -> set[str]:
    return {f.name for f in fields(ServiceConfig) if not f.metadata.get("internal")} - {"device_id", "log_level"}


def _shared_section(name: str, classes: list[type], table: Any, report: Report, base: Path) -> list[Any]:
    """One TOML table read into several option types (each takes its own keys; the others are unknown)."""
    names = {f.name for cls in classes for f in fields(cls)}
    if isinstance(table, dict):
        for key in table:
            if key not in names:  # reported once for the section, not by each type sharing it
                build_table(classes[0], {key: table[key]}, name, report, base, known=sorted(names))
    out = []
    for cls in classes:
        own_names = {f.name for f in fields(cls)}
        own = {k: v for k, v in table.items() if k in own_names} if isinstance(table, dict) else table
        out.append(build_table(cls, own, name, report, base))
    return out


# ---- loading -------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str] | None,
    overrides: Mapping[str, Any] | None = None,
    *,
    flag_names: Mapping[str, str] | None = None,
    check_files: bool = True,
) -> ServiceConfig:
    """Read ``path`` (None: defaults only), apply ``overrides`` (dotted keys), validate.

    ``flag_names`` maps dotted keys to the CLI flag that set them, so a problem
    with an overridden value names the flag. With ``check_files`` the files the
    configuration names (model, labels, video, TLS files, password file) must
    exist. Raises :class:`ConfigError` listing every problem.
    """
    raw: dict[str, Any] = {}
    where = "defaults"
    base = Path.cwd()
    if path is not None:
        file = Path(path)
        where = str(file)
        base = file.resolve().parent
        raw = read_toml(file)
    overrides = dict(overrides or {})
    flag_names = dict(flag_names or {})
    if any(f"source.{key}" in overrides for key in target_keys()):
        # A source on the command line replaces the file's (and its cameras), with the
        # file's kind-specific options (the flags may give them again).
        raw.pop("cameras", None)
        section = raw.get("source")
        if isinstance(section, dict):
            raw["source"] = {k: v for k, v in section.items() if k not in source_fields()}
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        table = raw
        for name in parents:
            nxt = table.get(name)
            if not isinstance(nxt, dict):
                nxt = {}
                table[name] = nxt
            table = nxt
        if isinstance(value, Path):
            value = str(value.expanduser().resolve())
        elif isinstance(value, list) and value and isinstance(value[0], Path):
            value = [str(v.expanduser().resolve()) for v in value]
        table[key] = value

    problems: list[str] = []
    reported: set[str] = set()
    sections = _sink_sections()
    known_sections = _static_sections() | set(sections) | {"source", "cameras", "http"}

    def report(dotted: str, message: str) -> None:
        reported.add(dotted)
        if dotted in flag_names:
            problems.append(f"{flag_names[dotted]}: {message}")
            return
        section, _, key = dotted.rpartition(".")
        if dotted in known_sections:
            location = f"[{dotted}]"
        else:
            location = f"[{section}] {key}" if section else key
        problems.append(f"{where}: {location}: {message}")

    top = {k: v for k, v in raw.items() if k in _static_sections() or k not in known_sections}
    config = build_table(ServiceConfig, top, "", report, base,
                         known=["device_id", "log_level", *sorted(known_sections)])  # fmt: skip
    assert isinstance(config, ServiceConfig)
    config.path = Path(path) if path is not None else None
    if not config.device_id:
        config.device_id = default_device_id()
    elif not DEVICE_ID.match(config.device_id):
        report("device_id", f"{config.device_id!r}: use 1-64 letters, digits, '.', '_' or '-' (it is an MQTT topic level)")
    for section, kinds in sections.items():
        for kind, options in zip(kinds, _shared_section(section, [k.options for k in kinds], raw.get(section, {}),
                                                        report, base)):  # fmt: skip
            config.sinks[kind.key] = options
    config.http, config.health, config.http_limits = _shared_section("http", list(HTTP_PARTS), raw.get("http", {}),
                                                                    report, base)  # fmt: skip
    config.cameras = read_cameras(raw, config.events, config.window, report, base)
    _cross_checks(config, report, reported)
    if check_files:
        _file_checks(config, report)
    if problems:
        raise ConfigError(problems)
    return config


def _cross_checks(c: ServiceConfig, report: Report, reported: set[str]) -> None:
    """Rules that involve more than one key."""
    e = c.events
    if e.end_threshold > e.start_threshold:
        report("events.end_threshold", f"must not exceed start_threshold ({e.end_threshold:g} > {e.start_threshold:g})")
    for camera in c.cameras:
        ev = camera.events
        if camera.id != DEFAULT_CAMERA and ev.end_threshold > ev.start_threshold:
            report(f"cameras.{camera.id}.events.end_threshold", "must not exceed start_threshold")
    if c.window.enabled is False and c.window.seconds is not None:
        report("window.seconds", "is set but the window is disabled (enabled = false); remove one")
    if c.http.enabled:
        try:
            parse_listen(c.http.listen)
        except ValueError as exc:
            report("http.listen", str(exc))
    for key, options in c.sinks.items():
        check = getattr(options, "problems", None)
        if callable(check):  # a sink's own rules across its keys (MQTT: password without user...)
            for dotted, message in check():
                report(dotted, message)
    # The library's own rules, in case they are stricter than the ones above.
    for name, build in (("smoothing", c.smoothing_options), ("events", c.event_options)):
        if any(key.startswith(f"{name}.") for key in reported):
            continue
        try:
            build()
        except EdgeError as exc:
            report(name, str(exc))


def _file_checks(c: ServiceConfig, report: Report) -> None:
    """Files the configuration names must be there: found now, not after the model loaded."""
    from ..files import check_writable

    def need(dotted: str, path: Path | None, what: str, directory_ok: bool = False) -> None:
        if path is None:
            return
        if not path.exists():
            report(dotted, f"{what} {path} does not exist")
        elif path.is_dir() and not directory_ok:
            report(dotted, f"{what} {path} is a directory; give the file")
        elif not os.access(path, os.R_OK):
            report(dotted, f"cannot read {what} {path}: permission denied")

    need("model.path", c.model.path, "model", directory_ok=True)
    need("model.labels", c.model.labels, "labels file")
    for camera in c.cameras:
        if camera.source.kind == "video":
            key = "source.video" if camera.id == DEFAULT_CAMERA else f"cameras.{camera.id}.video"
            need(key, getattr(camera.source.options, "path", None), "video")
    words = {"ca_file": "CA file", "cert_file": "certificate", "key_file": "key", "password_file": "password file"}
    kinds = sink_kinds()
    for key, options in c.sinks.items():
        kind = kinds[key]
        for f in fields(options):
            value = getattr(options, f.name)
            if isinstance(value, Path) and kind.section == "output":  # a file the sink writes
                try:
                    check_writable(value)
                except EdgeError as exc:
                    report(f"{kind.section}.{f.name}", str(exc))
            elif isinstance(value, Path) and kind.enabled(options):
                need(f"{kind.section}.{f.name}", value, words.get(f.name, f.name.replace("_", " ")))
            elif is_dataclass_instance(value) and kind.enabled(options):
                for sub in fields(value):
                    inner = getattr(value, sub.name)
                    if isinstance(inner, Path):
                        need(f"{kind.section}.{f.name}.{sub.name}", inner, words.get(sub.name, sub.name))


def is_dataclass_instance(value: Any) -> bool:
    from dataclasses import is_dataclass

    return is_dataclass(value) and not isinstance(value, type)


def example_config_path() -> Path:
    """The example configuration shipped with the package."""
    return Path(__file__).with_name("example.toml")

