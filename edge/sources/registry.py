"""The source kinds: each kind's module registers itself here; the entry points ask for them.

A new video source is one new module in this package: it declares an options
dataclass (its first field is the target, e.g. the path or the URL; every field
carries :func:`~movinet_edge.options.option` metadata), an ``open`` function
and a :class:`SourceKind`, and calls :func:`register` when imported.
:func:`source_kinds` imports every module of the package once, so the CLI's
flags and the config file's keys follow from the declarations without a list
to keep in step.

This module imports neither OpenCV nor numpy: ``--help`` and the config loader
read the kinds, and the kinds' modules import the heavy parts only when a
source opens.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import EdgeError
from ..options import check_options, declared_fields, flag_of

if TYPE_CHECKING:
    from .base import FrameSource

#: Told before each reconnect attempt of a stream: (attempt, delay_s, reason).
ReconnectCallback = Callable[[int, float, str], None]
#: Told when a stream delivers frames again after an outage: (outage_s).
RecoveredCallback = Callable[[float], None]


@dataclass(frozen=True)
class SourceContext:
    """What the assembly layer hands every source besides its own options."""

    decode_threads: int | None = None  # FFmpeg decoder threads; None: decode_threads_for(None)
    on_reconnect: ReconnectCallback | None = None  # told IN ADDITION to the source's own log lines
    on_recovered: RecoveredCallback | None = None
    name: str | None = None  # a camera id for log lines and thread names (many cameras)


@dataclass(frozen=True)
class SourceKind:
    """One kind of source: its key, its options and how to open it.

    ``key`` names the kind everywhere: the CLI flag ``--<key>`` and the config
    key ``<key with _>`` take the value of the options' first field (the
    target). ``live``: frames happen in real time (cameras, streams), so the
    long-stream window is on by default. ``help``: one line for ``--help``.
    """

    key: str
    options: type
    open: Callable[[Any, SourceContext], FrameSource]
    live: bool
    help: str

    @property
    def config_key(self) -> str:
        return self.key.replace("-", "_")

    @property
    def target(self) -> str:
        """The name of the options' first field: what ``--<key> VALUE`` sets."""
        return dataclasses.fields(self.options)[0].name


#: The order the kinds are listed in (--help, errors); other kinds follow by key.
_FIRST = ("video", "url", "camera")

_kinds: dict[str, SourceKind] = {}
_lock = threading.RLock()  # reentrant: discovery imports modules that register
_discovered = False


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _check_shared_fields(kind: SourceKind) -> None:
    """Fields of the same name in two kinds are one flag and one key: they must agree."""
    for other in _kinds.values():
        theirs = {f.name: f for f in list(declared_fields(other.options))[1:]}
        for f in list(declared_fields(kind.options))[1:]:
            g = theirs.get(f.name)
            if g is None:
                continue
            mine = (str(f.type), _default_of(f), flag_of(f), f.metadata.get("cli", True))
            them = (str(g.type), _default_of(g), flag_of(g), g.metadata.get("cli", True))
            if mine != them:
                raise TypeError(
                    f"source kinds {other.key!r} and {kind.key!r} both declare {f.name!r} but differ "
                    f"(type, default, flag, cli): {them} != {mine}; a shared field must be identical"
                )


def register(kind: SourceKind) -> SourceKind:
    """Add a kind (called by its module at import); returns it, so ``KIND = register(...)`` reads well."""
    if not dataclasses.is_dataclass(kind.options) or not dataclasses.fields(kind.options):
        raise TypeError(f"source kind {kind.key!r}: options must be a dataclass whose first field is the target")
    with _lock:
        known = _kinds.get(kind.key)
        if known is not None:
            if known == kind:
                return known
            raise ValueError(f"source kind {kind.key!r} is registered twice")
        _check_shared_fields(kind)
        _kinds[kind.key] = kind
    return kind


def _discover() -> None:
    """Import every module of this package once; each registers its kind(s) at import."""
    global _discovered
    with _lock:
        if _discovered:
            return
        package = __name__.rpartition(".")[0]
        for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
            importlib.import_module(f"{package}.{module.name}")
        _discovered = True


def source_kinds() -> dict[str, SourceKind]:
    """Every kind by key: video, url, camera, then the others by key."""
    _discover()
    with _lock:
        keys = [k for k in _FIRST if k in _kinds] + sorted(k for k in _kinds if k not in _FIRST)
        return {k: _kinds[k] for k in keys}


def source_kind(key: str) -> SourceKind:
    """The kind called ``key``; an EdgeError listing the known ones otherwise."""
    kinds = source_kinds()
    if key not in kinds:
        raise EdgeError(f"unknown source kind {key!r}; known: {', '.join(kinds)}")
    return kinds[key]


def require_valid(key: str, options: Any) -> None:
    """Run the options' declared checks; the first problem becomes an EdgeError.

    The entry points run the same checks first and name their flag or key;
    this is for a library caller, so the words here are the option's own:
    "url 'cam:554': not a URL ...", "camera capture size: must be ...".
    """
    problems = check_options(options)
    if not problems:
        return
    name, problem = problems[0]
    target = dataclasses.fields(type(options))[0].name
    if name == target:
        raise EdgeError(f"{key} {getattr(options, name)!r}: {problem}")
    raise EdgeError(f"{key} {name.replace('_', ' ')}: {problem}")
