"""TOML tables into option dataclasses, with every problem collected and none raised half-way.

The service reads one file; a device runs unattended, so every problem in it
(unknown keys with a suggestion, wrong types, values out of range) is
reported at once, one line each, through a ``report(dotted_key, message)``
callback. The dataclasses are the library's own option types: their field
types say what a value must be and their :func:`~movinet_edge.options.option`
metadata how it is checked, so nothing here knows a particular section.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from ..errors import EdgeError

EX_CONFIG = 78

Report = Callable[[str, str], None]


class ConfigError(EdgeError):
    """The configuration has problems; ``problems`` holds one line for each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems), exit_code=EX_CONFIG)


def read_toml(file: Path) -> dict[str, Any]:
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


def build_table(
    cls: type, table: Any, section: str, report: Report, base: Path, known: Iterable[str] | None = None
) -> Any:
    """One dataclass from one TOML table: unknown keys, types and per-key checks reported.

    ``known``: the keys the table may hold when it is shared with other dataclasses
    (None: just this one's); the others' keys are not this one's to report.
    """

    def dotted(key: str) -> str:
        return f"{section}.{key}" if section else key

    hints = typing.get_type_hints(cls)
    spec = {f.name: f for f in fields(cls) if not f.metadata.get("internal")}
    values: dict[str, Any] = {}
    if not isinstance(table, dict):
        report(section, f"must be a table ([{section}]), got {describe(table)}")
        table = {}
    allowed = list(spec) if known is None else list(known)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(allowed)}"
            report(dotted(key), f"unknown key{hint}")
    for name, f in spec.items():
        hint = hints[name]
        if is_dataclass(hint):
            values[name] = build_table(hint, table.get(name, {}), dotted(name), report, base)  # type: ignore[arg-type]
            continue
        if name not in table:
            continue  # the default
        try:
            value = convert(table[name], hint, base)
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


def describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def convert(value: Any, hint: Any, base: Path) -> Any:
    """``value`` as the annotated type; ValueError says what was expected."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            if value == "" and args[0] in (Path, str):
                return None  # an empty string means "not set"
            return convert(value, args[0], base)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValueError(f"expected a table of strings, got {describe(value)}")
        return dict(value)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ValueError(f"expected a list of strings, got {describe(value)}")
        bad = [v for v in value if not isinstance(v, item)]
        if bad:
            raise ValueError(f"expected a list of strings, got {describe(bad[0])} in it")
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
    raise ValueError(f"expected {_TYPE_NAMES.get(hint, str(hint))}, got {describe(value)}")


