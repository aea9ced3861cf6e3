"""The sink kinds: each module of this package that makes a sink declares its kind here, once.

A kind says what a configuration calls it (``key``), which service TOML
section holds its options, the options dataclass itself (with
:func:`~movinet_edge.options.option` metadata on every field, from which the
CLI flags and config keys are derived), how to open it and whether a given
configuration turns it on. Adding a sink is one new module that calls
:func:`register` at import time; :func:`sink_kinds` finds it by importing every
module of the package once.

Nothing heavy is imported here or by a kind's declaration: ``--help`` lists
the kinds' options, and a sink's third-party package (paho-mqtt) may not be
installed at all. :func:`missing_requirements` says which are missing, so the
entry point can name them in one line before anything starts.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass(frozen=True)
class SinkContext:
    """What the assembly layer hands a sink besides its own options."""

    device_id: str = ""
    #: What runs here: version, model, model_fps, classes, source, session, started.
    info: dict[str, str] = field(default_factory=dict)
    source_fps: float | None = None
    top_k: int = 5
    #: A sink may end the run by setting it (the display: q or Esc).
    stop: threading.Event | None = None
    stdout: TextIO | None = None
    #: Camera ids when several streams share the sink.
    cameras: tuple[str, ...] = ()


@dataclass(frozen=True)
class SinkKind:
    """One kind of sink, as a configuration knows it."""

    key: str  # "console", "video", "display", "mqtt", "webhook"
    section: str  # the service TOML section holding its options: "output", "mqtt", "webhook"
    options: type  # a dataclass with movinet_edge.options metadata on every field
    open: Callable[[Any, SinkContext], Any]  # (options, context) -> a Sink (movinet_edge.results protocol)
    enabled: Callable[[Any], bool]  # does this configuration turn it on
    requires: tuple[tuple[str, str], ...] = ()  # (importable module, pip package)
    service: bool = True  # offered by serve's config
    live: bool = True  # offered by the live command line
    help: str = ""


_kinds: dict[str, SinkKind] = {}
_lock = threading.Lock()
_discovered = False


def register(kind: SinkKind) -> SinkKind:
    """Add a kind (a sink module calls this at import time); a second kind with the same key is a bug."""
    with _lock:
        known = _kinds.get(kind.key)
        if known is not None and known is not kind:
            raise ValueError(f"sink kind {kind.key!r} is registered twice ({known.open} and {kind.open})")
        _kinds[kind.key] = kind
    return kind


def sink_kinds() -> dict[str, SinkKind]:
    """Every kind, by key. The first call imports each module of the package (once)."""
    global _discovered
    if not _discovered:
        with _lock:
            package = __name__.rpartition(".")[0]
            names = [m.name for m in pkgutil.iter_modules(importlib.import_module(package).__path__)]
        for name in names:
            importlib.import_module(f"{package}.{name}")  # outside the lock: the module calls register()
        _discovered = True
    with _lock:
        return dict(_kinds)


def sink_kind(key: str) -> SinkKind:
    """The kind called ``key``; KeyError names the known ones."""
    kinds = sink_kinds()
    try:
        return kinds[key]
    except KeyError:
        raise KeyError(f"no sink kind {key!r}; known: {', '.join(kinds)}") from None


def missing_requirements(kind: SinkKind) -> list[str]:
    """The pip packages ``kind`` needs that cannot be imported here."""
    return missing_packages(kind.requires)


def missing_packages(requires: Iterable[tuple[str, str]]) -> list[str]:
    """Of (importable module, pip package) pairs, the packages whose module cannot be imported here."""
    missing = []
    for module, package in requires:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # the parent package of a dotted name is missing
            found = False
        if not found and package not in missing:
            missing.append(package)
    return missing
