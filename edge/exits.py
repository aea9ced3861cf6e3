"""How a command ends: one ``error:`` line and an exit code, for our errors and for usage errors alike.

Typer reports a bad option value or an unknown option in a framed, multi-line
usage box; scripts and service logs want the one line every other error
gets. :func:`run_app` runs a Typer app so that both CLIs (``movinet-edge``,
``movinet-export``) end the same way; the domain errors (EdgeError,
ExportError) are still turned into their line and code by each CLI's
``main``.
"""

from __future__ import annotations

import sys
from typing import Any

import typer


def _click_exception() -> type[BaseException]:
    """Click's base exception, wherever this Typer keeps Click (vendored since 0.20, a dependency before)."""
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == "ClickException":
            return cls
    return typer.BadParameter  # pragma: no cover - Click without ClickException


ClickException = _click_exception()


def usage_line(exc: BaseException) -> str:
    """``error: <what is wrong>; see '<command> --help'`` for a usage error."""
    message = " ".join(str(getattr(exc, "format_message", lambda: str(exc))()).split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None)
    return f"error: {message}; see '{command} --help'" if command else f"error: {message}"


def plain_help() -> None:
    """Help as plain text, wrapped, never cut short.

    With Rich installed (Typer pulls it in) Typer draws help in boxes that cut
    option names with "…" at 80 columns (``--calibration-vid…``) and escapes
    the brackets of ``[default: ...]``. Both commands use Click's own
    formatter instead: it wraps the help text and always prints flags whole.
    """
    import typer.core

    typer.core.HAS_RICH = False  # read at call time by Typer's help and error formatting


def run_app(app: typer.Typer, prog_name: str, args: list[str] | None = None) -> int:
    """Run ``app`` and return its exit code; a usage error prints one line and returns 2."""
    plain_help()
    try:
        result: Any = app(args=args, prog_name=prog_name, standalone_mode=False)
    except ClickException as exc:
        print(usage_line(exc), file=sys.stderr)
        return int(getattr(exc, "exit_code", 2) or 2)
    except typer.Abort:  # end of input at a prompt
        return 1
    return result if isinstance(result, int) else 0
