"""The cameras of a service configuration: a ``[source]`` table, or one ``[[cameras]]`` table each.

The keys are the ones the registered source kinds declare (:func:`movinet_edge.app.source_fields`):
a target key names the kind (``video``, ``url``, ``camera``, ``image_folder``), the others set that
kind's options. ``[source]`` holds one camera, or, beside ``[[cameras]]``, defaults for every camera
whose kind takes them; each camera may override ``[events]`` and ``[window]``.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..app import DEFAULT_CAMERA, CameraConfig, OptionProblems, WindowOptions, choose_sources, source_fields, target_keys
from ..errors import EdgeError
from ..postprocess import EventOptions
from ..sources.registry import source_kinds
from .sections import DEVICE_ID, EventsSection
from .tables import Report, build_table, convert


def _source_values(table: Any, section: str, report: Report, base: Path, allowed: set[str]) -> dict[str, Any]:
    """A table's source keys, converted to their declared types (unknown keys reported)."""
    table_fields = source_fields()
    values: dict[str, Any] = {}
    if not isinstance(table, dict):
        report(section, "must be a table")
        return values
    for key, value in table.items():
        if key in allowed:
            continue
        if key not in table_fields:
            names = list(table_fields) + sorted(allowed)
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(names)}"
            report(f"{section}.{key}", f"unknown key{hint}")
            continue
        takers, f = table_fields[key]
        hint_type = typing.get_type_hints(takers[0].options)[f.name]
        items = value if isinstance(value, list) and key in target_keys() else [value]
        try:
            converted = [convert(v, hint_type, base) for v in items]
        except ValueError as exc:
            report(f"{section}.{key}", str(exc))
            continue
        values[key] = converted if isinstance(value, list) and key in target_keys() else converted[0]
    return values


def read_cameras(raw: dict[str, Any], events: EventsSection, window: WindowOptions, report: Report,
                 base: Path) -> list[CameraConfig]:  # fmt: skip
    """[source] (one camera) or [[cameras]] (each with an id, a source and optional overrides)."""
    tables = raw.get("cameras")
    if tables is not None and "source" in raw and any(k in raw["source"] for k in target_keys()):
        report("cameras", "give either [source] or [[cameras]] tables, not both")
        return []
    if tables is None:
        values = _source_values(raw.get("source", {}), "source", report, base, set())
        given = [k for k in target_keys() if values.get(k) not in (None, [])]
        if len(given) > 1:
            report("source", f"give exactly one of {', '.join(target_keys())} (got {' and '.join(given)}); "
                   "several cameras: one [[cameras]] table each")
        try:
            choices = choose_sources(values)
        except OptionProblems as exc:
            for key, message in exc.problems:
                report(key if key != "source" else "source", _source_message(key, message))
            return []
        # Several from [source] is only possible as an error (reported above) or from repeated
        # CLI flags; the latter get an id each, and an error's files are still checked.
        ids = [DEFAULT_CAMERA] if len(choices) == 1 or len(given) > 1 else [f"cam{i + 1}" for i in range(len(choices))]
        return [CameraConfig(cid, choice, _event_options(events), window) for cid, choice in zip(ids, choices)]
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        report("cameras", "must be [[cameras]] tables, one per camera")
        return []
    shared = dict(raw["source"]) if isinstance(raw.get("source"), dict) else {}
    cameras: list[CameraConfig] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        where = f"cameras[{index}]"
        cid = table.get("id")
        if not isinstance(cid, str) or not DEVICE_ID.match(cid):
            report(f"{where}.id", "every camera needs an id: 1-64 letters, digits, '.', '_' or '-' (an MQTT topic level)")
            continue
        if cid in seen:
            report(f"{where}.id", f"{cid!r} is used twice; camera ids must be unique")
            continue
        seen.add(cid)
        where = f"cameras.{cid}"
        own = {k: v for k, v in table.items() if k not in ("id", "events", "window")}
        values = _source_values(own, where, report, base, set())
        # [source] keys are defaults for every camera whose kind takes them (a stream's
        # reconnect delays do not apply to a file camera, and that is not an error).
        kinds = {k.config_key: k for k in source_kinds().values()}
        takes = {f.name for key in target_keys() if values.get(key) is not None for f in fields(kinds[key].options)}
        for key, value in _source_values(shared, "source", report, base, set()).items():
            if key in takes and key not in values and key not in target_keys():
                values[key] = value
        try:
            choices = choose_sources(values)
        except OptionProblems as exc:
            for key, message in exc.problems:
                report(where if key == "source" else f"{where}.{key.removeprefix('source.')}",
                       _source_message(key, message))  # fmt: skip
            continue
        if len(choices) != 1:
            report(where, "give one source per camera")
            continue
        cam_events = build_table(EventsSection, {**_table(raw, "events"), **_table(table, "events")},
                                 f"{where}.events", report, base)  # fmt: skip
        cam_window = build_table(WindowOptions, {**_table(raw, "window"), **_table(table, "window")},
                                 f"{where}.window", report, base)  # fmt: skip
        cameras.append(CameraConfig(cid, choices[0], _event_options(cam_events), cam_window))
    return cameras


def _event_options(section: EventsSection) -> EventOptions:
    """The section's options; rules the library checks itself are reported by _cross_checks."""
    try:
        return section.options()
    except EdgeError:
        return EventOptions()


def _table(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    return dict(value) if isinstance(value, dict) else {}


def _source_message(key: str, message: str) -> str:
    if key == "source":
        return f"give exactly one of {', '.join(target_keys())}" if "give a source" in message else message
    return message
