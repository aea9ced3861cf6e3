"""What the two export commands share on the command line: option value types and the help's style.

``movinet-export`` and ``movinet-export finetune`` take the same kinds of
values (model ids, precisions, resize policies) and print help the same way
as ``movinet-edge``: ``-h``/``--help``, ``--version``, ``-q`` for ``--quiet``.
Every choice is an Enum made from the library's own table (the zoo, the
precisions, the int8 recipe registry), so ``--help`` lists the values and a
wrong one is refused by the parser, in well under a second, before anything
loads TensorFlow. The help is Click's plain layout at up to 120 columns: the
boxed Rich layout cuts long option names (``--calibration-vid…``) on an
80-column terminal, the plain one wraps the help text instead.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import click
import typer
from typer.core import TyperCommand, TyperGroup

from . import __version__
from .int8_recipes import DEFAULT_INT8_RECIPE, RECIPES
from .options import INPUT_DTYPES, PRECISIONS, RESIZE_POLICIES
from .zoo import ZOO

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 120}


def _unescape(formatter: click.HelpFormatter) -> None:
    """Undo the Rich escape Typer puts before "[default: ...]" even when the help is plain.

    (Typer escapes the brackets whenever Rich is installed, whatever the markup mode:
    without this the plain help reads ``\\[default: a0]``.)
    """
    formatter.buffer[:] = [part.replace("\\[", "[") for part in formatter.buffer]


class PlainHelpGroup(TyperGroup):
    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        _unescape(formatter)


class PlainHelpCommand(TyperCommand):
    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        _unescape(formatter)


APP_SETTINGS: dict[str, Any] = {
    "cls": PlainHelpGroup,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,  # Click's plain help: never cuts an option name (see above)
    "context_settings": CONTEXT_SETTINGS,
}
COMMAND_SETTINGS: dict[str, Any] = {"cls": PlainHelpCommand, "context_settings": CONTEXT_SETTINGS}


def _choices(name: str, values: tuple[str, ...] | list[str]) -> Any:
    """A str Enum of ``values`` (each member named and valued as the value), for Typer's choices."""
    return Enum(name, [(value, value) for value in values], type=str)


ModelId = _choices("ModelId", list(ZOO))
Precision = _choices("Precision", PRECISIONS)
# --quantize's values: the quantized precisions first (int8 is what the flag alone means).
Quantize = _choices("Quantize", ("int8", "float16", "dynamic", "float32"))
InputDtype = _choices("InputDtype", INPUT_DTYPES)
Resize = _choices("Resize", RESIZE_POLICIES)
Int8RecipeName = _choices("Int8RecipeName", list(RECIPES))

INT8_RECIPE_HELP = "int8 recipe: " + "; ".join(f"{name}: {recipe.help}" for name, recipe in RECIPES.items()) + "."
DEFAULT_RECIPE = Int8RecipeName(DEFAULT_INT8_RECIPE)


def _print_version(value: bool) -> None:
    if value:
        print(f"movinet-export {__version__}")
        raise typer.Exit()


VersionOpt = Annotated[
    bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
ModelOpt = Annotated[ModelId, typer.Option("--model", "-m", case_sensitive=False, help="Model id (stream).")]
