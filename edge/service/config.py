"""The service's configuration: one TOML file, checked completely before anything starts.

A device runs unattended, so a mistake in its configuration must show up at
start as a list the operator can work through, not one error per restart:
:func:`load_config` collects *every* problem (unknown keys with a suggestion,
wrong types, values out of range, contradictions, missing files) and raises
one :class:`ConfigError` holding them, one line each.

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

import difflib
import math
import os
import re
import socket
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from ..errors import EdgeError
from ..postprocess import SMOOTHING_METHODS, EventOptions, SmoothingOptions

EX_CONFIG = 78

CONSOLE_MODES = ("none", "events", "predictions", "json")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# MQTT topic levels must not hold wildcards; an empty level would make "a//b".
_TOPIC_BAD = re.compile(r"[+#\x00]|//|^/|/$")


class ConfigError(EdgeError):
    """The configuration has problems; ``problems`` holds one line for each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems), exit_code=EX_CONFIG)


# ---- value checks --------------------------------------------------------------------
# A check returns None when the value is fine, else what is wrong (no key, no location).
Check = Callable[[Any], "str | None"]


def _between(low: float, high: float, *, low_open: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if v is None:
            return None
        ok = (v > low if low_open else v >= low) and v <= high
        bracket = "(" if low_open else "["
        return None if ok else f"must be in {bracket}{low:g}, {high:g}], got {v:g}"

    return check


def _at_least(low: float) -> Check:
    return lambda v: None if v is None or v >= low else f"must be at least {low:g}, got {v:g}"


def _positive(v: Any) -> str | None:
    return None if v is None or v > 0 else f"must be positive, got {v:g}"


def _one_of(choices: tuple[str, ...]) -> Check:
    return lambda v: None if v is None or v in choices else f"must be one of {', '.join(choices)}; got {v!r}"


def _opt(check: Check | None = None, doc: str = "") -> dict[str, Any]:
    return {"check": check, "doc": doc}


# ---- sections ------------------------------------------------------------------------


@dataclass
class ModelSection:
    """[model]: which model, how it runs. ``path`` None: $MOVINET_EDGE_MODEL or the exporter's folders."""

    path: Path | None = None
    labels: Path | None = None
    threads: int | None = field(default=None, metadata=_opt(_at_least(1)))
    top_k: int = field(default=5, metadata=_opt(_at_least(1)))
    # How frames are made square: crop, pad or stretch. Unset: the policy in the
    # model's manifest (the one it was trained and exported with), else crop.
    resize: str | None = field(default=None, metadata=_opt(_one_of(("crop", "pad", "stretch"))))


@dataclass
class SourceSection:
    """[source]: exactly one of camera, url, video; reconnect policy for streams."""

    camera: str | None = None
    url: str | None = None
    video: Path | None = None
    realtime: bool = False
    loop: bool = False
    reconnect_initial_delay: float = field(default=0.5, metadata=_opt(_positive))
    reconnect_max_delay: float = field(default=10.0, metadata=_opt(_positive))


@dataclass
class SmoothingSection:
    method: str = field(default="ema", metadata=_opt(_one_of(SMOOTHING_METHODS)))
    alpha: float = field(default=0.5, metadata=_opt(_between(0.0, 1.0, low_open=True)))
    window: int = field(default=5, metadata=_opt(_at_least(1)))


@dataclass
class EventsSection:
    start_threshold: float = field(default=0.5, metadata=_opt(_between(0.0, 1.0)))
    end_threshold: float = field(default=0.3, metadata=_opt(_between(0.0, 1.0)))
    min_steps: int = field(default=2, metadata=_opt(_at_least(1)))
    update_every: float = field(default=5.0, metadata=_opt(_at_least(0.0)))
    update_delta: float = field(default=0.15, metadata=_opt(_at_least(0.0)))
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)


@dataclass
class WindowSection:
    """[window]: the long-stream policy. ``enabled`` unset: on for cameras and streams, off for files."""

    enabled: bool | None = None
    seconds: float | None = field(default=None, metadata=_opt(_positive))
    # rescale: one invoke a frame, pools shrunk to half a window when full;
    # dual: two state sets W/2 apart, exact windows at twice the compute.
    policy: str = field(default="rescale", metadata=_opt(_one_of(("rescale", "dual"))))


@dataclass
class OutputSection:
    """[output]: what goes to stdout (the journal) and an optional annotated video."""

    console: str = field(default="events", metadata=_opt(_one_of(CONSOLE_MODES)))
    save: Path | None = None


@dataclass
class HttpSection:
    """[http]: /healthz, /metrics, /events. Loopback by default: metrics are not for the whole network."""

    enabled: bool = True
    listen: str = "127.0.0.1:9750"
    recent_events: int = field(default=100, metadata=_opt(_between(1, 10000)))
    frame_timeout: float = field(default=5.0, metadata=_opt(_positive))
    keep_up_ratio: float = field(default=0.8, metadata=_opt(_between(0.0, 1.0, low_open=True)))


@dataclass
class TlsSection:
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # skip the broker's host name check (self-signed test brokers only)


@dataclass
class MqttSection:
    """[mqtt]: off unless ``host`` is set."""

    host: str | None = None
    port: int | None = field(default=None, metadata=_opt(_between(1, 65535)))
    client_id: str | None = None
    topic_prefix: str = "movinet-edge"
    qos: int = field(default=1, metadata=_opt(_between(0, 2)))
    retain: bool = False
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    keepalive: int = field(default=30, metadata=_opt(_between(5, 3600)))
    # paho-mqtt numbers messages 1-65535: more than that cannot be in flight at once.
    queue_size: int = field(default=1000, metadata=_opt(_between(1, 50_000)))
    reconnect_max_delay: float = field(default=30.0, metadata=_opt(_at_least(1.0)))
    tls: TlsSection = field(default_factory=TlsSection)

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass
class ServiceConfig:
    """Everything ``movinet-edge serve`` needs, validated."""

    device_id: str = ""
    log_level: str = field(default="info", metadata=_opt(_one_of(("debug", "info", "warning", "error"))))
    model: ModelSection = field(default_factory=ModelSection)
    source: SourceSection = field(default_factory=SourceSection)
    smoothing: SmoothingSection = field(default_factory=SmoothingSection)
    events: EventsSection = field(default_factory=EventsSection)
    window: WindowSection = field(default_factory=WindowSection)
    output: OutputSection = field(default_factory=OutputSection)
    http: HttpSection = field(default_factory=HttpSection)
    mqtt: MqttSection = field(default_factory=MqttSection)
    #: Where it was read from (None: defaults and flags only).
    path: Path | None = field(default=None, metadata={"internal": True})

    # ---- derived options for the library --------------------------------------------
    def smoothing_options(self) -> SmoothingOptions:
        s = self.smoothing
        return SmoothingOptions(method=s.method, alpha=s.alpha, window=s.window)  # type: ignore[arg-type]

    def event_options(self) -> EventOptions:
        e = self.events
        return EventOptions(
            start_threshold=e.start_threshold,
            end_threshold=e.end_threshold,
            min_steps=e.min_steps,
            update_every=e.update_every,
            update_delta=e.update_delta,
            allow=tuple(e.allow),
            deny=tuple(e.deny),
        )

    @property
    def http_address(self) -> tuple[str, int]:
        host, port = parse_listen(self.http.listen)
        return host, port

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or f"movinet-edge-{self.device_id}"

    @property
    def mqtt_port(self) -> int:
        if self.mqtt.port is not None:
            return self.mqtt.port
        return 8883 if self.mqtt.tls.enabled else 1883

    def windowed(self) -> bool:
        """Whether the long-stream window applies (explicit, else on for live sources)."""
        if self.window.enabled is not None:
            return self.window.enabled
        if self.window.seconds is not None:
            return True
        return self.source.video is None

    def mqtt_password(self) -> str | None:
        """The password, from the file if one is named (a secret should not sit in the config)."""
        if self.mqtt.password_file is not None:
            return self.mqtt.password_file.read_text(encoding="utf-8").strip()
        return self.mqtt.password


_SECTIONS = {"model", "source", "smoothing", "events", "window", "output", "http", "mqtt", "mqtt.tls"}


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
        raw = _read_toml(file)
    overrides = dict(overrides or {})
    flag_names = dict(flag_names or {})
    if any(k in overrides for k in ("source.camera", "source.url", "source.video")):
        # A source on the command line replaces the file's, whatever kind it was,
        # with the file's video-only options (the flags may give them again).
        section = raw.get("source")
        if isinstance(section, dict):
            for key in ("camera", "url", "video", "realtime", "loop"):
                section.pop(key, None)
    cli_paths: set[str] = set()
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
            cli_paths.add(dotted)
        table[key] = value

    problems: list[str] = []
    reported: set[str] = set()  # dotted keys with a problem

    def report(dotted: str, message: str) -> None:
        reported.add(dotted)
        if dotted in flag_names:
            problems.append(f"{flag_names[dotted]}: {message}")
            return
        section, _, key = dotted.rpartition(".")
        if dotted in _SECTIONS:
            location = f"[{dotted}]"
        else:
            location = f"[{section}] {key}" if section else key
        problems.append(f"{where}: {location}: {message}")

    config = _build(ServiceConfig, raw, "", report, base)
    assert isinstance(config, ServiceConfig)
    config.path = Path(path) if path is not None else None
    _cross_checks(config, report, reported)
    if check_files:
        _file_checks(config, report)
    if problems:
        raise ConfigError(problems)
    return config


def _read_toml(file: Path) -> dict[str, Any]:
    if not file.exists():
        raise ConfigError([f"config file {file} does not exist; start from the example: movinet-edge install-service "
                           "writes one, or copy it from the package (movinet_edge/service/example.toml)"])
    if file.is_dir():
        raise ConfigError([f"config file {file} is a directory; give the .toml file"])
    try:
        text = file.read_text(encoding="utf-8")
    except PermissionError:
        raise ConfigError([f"cannot read config file {file}: permission denied"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"config file {file} is not UTF-8 text"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file}: not valid TOML: {exc}"]) from None


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", Path: "a path (string)"}


def _build(cls: type, table: Any, section: str, report: Callable[[str, str], None], base: Path) -> Any:
    """One dataclass from one TOML table: unknown keys, types and per-key checks reported."""

    def dotted(key: str) -> str:
        return f"{section}.{key}" if section else key

    hints = typing.get_type_hints(cls)
    spec = {f.name: f for f in fields(cls) if not f.metadata.get("internal")}
    values: dict[str, Any] = {}
    if not isinstance(table, dict):
        report(section, f"must be a table ([{section}]), got {_describe(table)}")
        table = {}
    for key in table:
        if key not in spec:
            close = difflib.get_close_matches(key, list(spec), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(spec)}"
            report(dotted(key), f"unknown key{hint}")
    for name, f in spec.items():
        hint = hints[name]
        if is_dataclass(hint):
            values[name] = _build(hint, table.get(name, {}), dotted(name), report, base)  # type: ignore[arg-type]
            continue
        if name not in table:
            continue  # the default
        try:
            value = _convert(table[name], hint, base)
        except ValueError as exc:
            report(dotted(name), str(exc))
            continue
        check = f.metadata.get("check")
        problem = check(value) if check is not None else None
        if problem:
            report(dotted(name), problem)
            continue
        values[name] = value
    return cls(**values)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _convert(value: Any, hint: Any, base: Path) -> Any:
    """``value`` as the annotated type; ValueError says what was expected."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            if value == "" and args[0] in (Path, str):
                return None  # an empty string means "not set"
            return _convert(value, args[0], base)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ValueError(f"expected a list of strings, got {_describe(value)}")
        bad = [v for v in value if not isinstance(v, item)]
        if bad:
            raise ValueError(f"expected a list of strings, got {_describe(bad[0])} in it")
        return list(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError(f"must be a finite number, got {value}")
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Path:
        if isinstance(value, str) and value:
            path = Path(os.path.expandvars(value)).expanduser()
            return path if path.is_absolute() else (base / path)
    raise ValueError(f"expected {_TYPE_NAMES.get(hint, str(hint))}, got {_describe(value)}")


def _cross_checks(c: ServiceConfig, report: Callable[[str, str], None], reported: set[str]) -> None:
    """Rules that involve more than one key."""
    if not c.device_id:
        c.device_id = default_device_id()
    elif not _DEVICE_ID.match(c.device_id):
        report("device_id", f"{c.device_id!r}: use 1-64 letters, digits, '.', '_' or '-' (it is an MQTT topic level)")
    s = c.source
    given = [k for k in ("camera", "url", "video") if getattr(s, k) is not None]
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        report("source", f"give exactly one of camera, url, video{got}")
    if (s.realtime or s.loop) and s.video is None and given:
        report("source.realtime" if s.realtime else "source.loop", "applies to video only")
    if s.url is not None and "://" not in s.url:
        report("source.url", f"{s.url!r} is not a URL; use e.g. rtsp://host:554/stream")
    if s.reconnect_max_delay < s.reconnect_initial_delay:
        report("source.reconnect_max_delay", "must not be below reconnect_initial_delay")
    e = c.events
    if e.end_threshold > e.start_threshold:
        report("events.end_threshold", f"must not exceed start_threshold ({e.end_threshold:g} > {e.start_threshold:g})")
    if c.window.enabled is False and c.window.seconds is not None:
        report("window.seconds", "is set but the window is disabled (enabled = false); remove one")
    if c.http.enabled:
        try:
            parse_listen(c.http.listen)
        except ValueError as exc:
            report("http.listen", str(exc))
    m = c.mqtt
    if _TOPIC_BAD.search(m.topic_prefix) or not m.topic_prefix:
        report("mqtt.topic_prefix", f"{m.topic_prefix!r}: no wildcards (+ #), no leading, trailing or double '/'")
    if (m.password is not None or m.password_file is not None) and m.username is None:
        report("mqtt.username", "a password is set but no username")
    if m.password is not None and m.password_file is not None:
        report("mqtt.password_file", "give password or password_file, not both")
    has_cert, has_key = m.tls.cert_file is not None, m.tls.key_file is not None
    if has_cert != has_key:
        report("mqtt.tls.key_file" if has_cert else "mqtt.tls.cert_file",
               "a client certificate needs both cert_file and key_file")
    if not m.tls.enabled and (m.tls.ca_file or m.tls.cert_file or m.tls.insecure):
        report("mqtt.tls.enabled", "TLS files or options are set but enabled = false")
    # The library's own rules, in case they are stricter than the ones above (a
    # section already reported keeps its defaults, so it would not fail here).
    for name, build in (("smoothing", c.smoothing_options), ("events", c.event_options)):
        if any(key.startswith(f"{name}.") for key in reported):
            continue
        try:
            build()
        except EdgeError as exc:
            report(name, str(exc))


def _file_checks(c: ServiceConfig, report: Callable[[str, str], None]) -> None:
    """Files the configuration names must be there: found now, not after the model loaded."""

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
    need("source.video", c.source.video, "video")
    need("mqtt.password_file", c.mqtt.password_file, "password file")
    need("mqtt.tls.ca_file", c.mqtt.tls.ca_file, "CA file")
    need("mqtt.tls.cert_file", c.mqtt.tls.cert_file, "certificate")
    need("mqtt.tls.key_file", c.mqtt.tls.key_file, "key")
    if c.output.save is not None and not c.output.save.parent.is_dir():
        report("output.save", f"directory {c.output.save.parent} does not exist")


def example_config_path() -> Path:
    """The example configuration shipped with the package."""
    return Path(__file__).with_name("example.toml")

