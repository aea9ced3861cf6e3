"""How an option declares itself once, for the library, the CLI and the service's TOML alike.

A stage's options are a dataclass; each field may carry :func:`option`
metadata: a one-line help text, a value check, the CLI flag it is known by and
whether it is offered on the command line at all. The entry points derive
their flags and config keys from these declarations (see
:mod:`movinet_edge.app` and :mod:`movinet_edge.service.config`), so a new
source or sink declares its options in its own file and nowhere else.

A check returns None when the value is fine, else what is wrong, without
naming a key, a flag or a file: the entry point that read the value says where
it came from. Nothing heavy is imported here (``--help`` reads it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

#: A check returns None when the value is fine, else what is wrong (no key, no location).
Check = Callable[[Any], "str | None"]


def option(
    help: str = "",
    *,
    check: Check | None = None,
    flag: str | None = None,
    cli: bool = True,
    choices: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Field metadata: ``field(default=..., metadata=option("what it does", check=positive))``.

    ``flag``: the CLI flag (default ``--`` and the field name with dashes);
    ``cli=False``: config file only; ``choices``: the allowed strings (checked,
    and listed in ``--help``).
    """
    if choices is not None and check is None:
        check = one_of(choices)
    return {"help": help, "check": check, "flag": flag, "cli": cli, "choices": choices}


def between(low: float, high: float, *, low_open: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if v is None:
            return None
        ok = (v > low if low_open else v >= low) and v <= high
        bracket = "(" if low_open else "["
        return None if ok else f"must be in {bracket}{low:g}, {high:g}], got {v:g}"

    return check


def at_least(low: float) -> Check:
    return lambda v: None if v is None or v >= low else f"must be at least {low:g}, got {v:g}"


def positive(v: Any) -> str | None:
    return None if v is None or v > 0 else f"must be positive, got {v:g}"


def one_of(choices: tuple[str, ...]) -> Check:
    return lambda v: None if v is None or v in choices else f"must be one of {', '.join(choices)}; got {v!r}"


def flag_of(f: dataclasses.Field[Any]) -> str:
    """The CLI flag of a dataclass field: its declared flag, else ``--field-name``."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def declared_fields(cls: type) -> Iterator[dataclasses.Field[Any]]:
    """The fields of an options dataclass that a user can set (not those marked internal)."""
    for f in dataclasses.fields(cls):
        if not f.metadata.get("internal"):
            yield f


def check_options(options: Any) -> list[tuple[str, str]]:
    """Run every field's check on an options instance: [(field name, problem)], empty when fine."""
    problems = []
    for f in declared_fields(type(options)):
        check = f.metadata.get("check")
        if check is not None:
            problem = check(getattr(options, f.name))
            if problem:
                problems.append((f.name, problem))
    return problems
