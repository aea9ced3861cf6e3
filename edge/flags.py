"""CLI flags derived from option declarations: a new source or sink gets its flags without editing the CLI.

Typer reads a command's parameters from its signature; :func:`with_options`
appends parameters made from dataclass fields (their :func:`~.options.option`
metadata: flag, help, choices) to a command function, and hands the values to
the function grouped by the prefix they were declared under. A flag that is
not given arrives as None, so a value from a config file is only replaced by
one the user typed.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from .options import flag_of


@dataclasses.dataclass(frozen=True)
class DerivedFlag:
    """One derived CLI parameter: the group and key its value goes to, and how Typer declares it."""

    group: str  # e.g. "source", "sink.video"
    key: str  # the option's flat key in that group
    flag: str
    annotation: Any
    param: str  # the Python parameter name (unique)


def _base_type(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def flag_for(group: str, key: str, f: dataclasses.Field[Any], hint: Any, *, flag: str | None = None,
             repeat: bool = False) -> DerivedFlag:
    """A Typer parameter for one dataclass field; None default, so 'not given' is visible."""
    base = _base_type(hint)
    meta = f.metadata
    name = flag or flag_of(f)
    help_text = meta.get("help", "")
    choices = meta.get("choices")
    extra: dict[str, Any] = {"show_default": False}
    if choices:
        extra["click_type"] = click.Choice(list(choices))
    if base is bool:
        no = "--no-" + name[2:]
        annotation = Annotated[bool | None, typer.Option(f"{name}/{no}", help=help_text, show_default=False)]
    elif repeat:
        item = base if base in (str, Path, int, float) else str
        annotation = Annotated[list[item] | None, typer.Option(name, help=help_text, **extra)]  # type: ignore[valid-type]
    else:
        item = base if base in (str, Path, int, float) else str
        annotation = Annotated[item | None, typer.Option(name, help=help_text, **extra)]  # type: ignore[operator]
    param = (group + "__" + key).replace(".", "_").replace("-", "_")
    return DerivedFlag(group, key, name, annotation, param)


def dataclass_flags(group: str, cls: type, *, skip: Iterable[str] = ()) -> list[DerivedFlag]:
    """Flags for every CLI-visible field of an options dataclass."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True) or f.metadata.get("internal"):
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            continue  # nested tables (TLS) are config-file only
        out.append(flag_for(group, f.name, f, hints[f.name]))
    return out


def with_options(flags: list[DerivedFlag]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``flags`` to a command; the command receives them as ``derived={group: {key: value}}``."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        hints = typing.get_type_hints(func, include_extras=True)
        params = [p for p in signature.parameters.values() if p.name != "derived"]
        seen = {p.name for p in params}
        taken = {flag for p in params for flag in _declared_flags(hints.get(p.name))}
        added = []
        for d in flags:
            if d.param in seen or d.flag in taken:
                continue  # the command declares it itself (a shared flag, e.g. --loop)
            seen.add(d.param)
            taken.add(d.flag)
            added.append(d)
            params.append(inspect.Parameter(d.param, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=d.annotation))  # fmt: skip

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            derived: dict[str, dict[str, Any]] = {}
            for d in added:
                value = kwargs.pop(d.param, None)
                if value is not None and value != []:
                    derived.setdefault(d.group, {})[d.key] = value
            return func(*args, derived=derived, **kwargs)

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
                  and p.default is not inspect.Parameter.empty else p for p in params]  # fmt: skip
        positional = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keyword = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
        wrapper.__signature__ = signature.replace(parameters=positional + keyword)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in positional + keyword}
        wrapper.__annotations__["return"] = None
        del wrapper.__wrapped__  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _declared_flags(annotation: Any) -> list[str]:
    for meta in getattr(annotation, "__metadata__", ()):
        decls = getattr(meta, "param_decls", None)
        if decls:
            return [d for decl in decls for d in decl.split("/")]
    return []


# ---- the flags of the registered kinds ---------------------------------------------------


def source_flags() -> list[DerivedFlag]:
    """One repeatable flag per source kind (--video, --url, --camera, ...) and the kinds' own options."""
    from .app import source_fields
    from .sources.registry import source_kinds

    kinds = source_kinds()
    targets = {kind.config_key: kind for kind in kinds.values()}
    flags = []
    for key, (takers, f) in source_fields().items():
        hint = typing.get_type_hints(takers[0].options)[f.name]
        if key in targets:
            kind = targets[key]
            flags.append(flag_for("source", key, f, hint, flag=f"--{kind.key}", repeat=True))
        elif f.metadata.get("cli", True):
            flags.append(flag_for("source", key, f, hint))
    return flags


def sink_flags(service: bool) -> list[DerivedFlag]:
    from .sinks.registry import sink_kinds

    flags = []
    for kind in sink_kinds().values():
        if (kind.service if service else kind.live):
            flags += dataclass_flags(f"sink.{kind.key}", kind.options)
    return flags


def flag_names(flags: list[DerivedFlag]) -> dict[str, str]:
    """Dotted option name -> the flag that set it (so a problem names what the user typed)."""
    names = {}
    for d in flags:
        group = d.group.removeprefix("sink.")
        names[f"{'source' if d.group == 'source' else group}.{d.key}"] = d.flag
    return names
