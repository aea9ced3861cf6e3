"""The int8 recipes: one entry each, with its name, its one-line help and the function that does it.

A recipe turns one calibrated float model (see quantize.calibrate) into an int8
model and says what it decided. The command line lists the recipes from here
(``--int8-recipe``'s choices and help) and checks a choice before any slow work,
so adding a recipe is one module with its ``quantize`` function and one entry
below. Importing this registry loads no TensorFlow: each recipe imports the
converter inside its function, when it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ExportError
from .int8_naive import quantize_naive
from .int8_selective import quantize_selective

if TYPE_CHECKING:  # annotations only: the registry is read before numpy and TensorFlow load
    import numpy as np


class QuantizeFn(Protocol):
    """calibrated float model -> (int8 model, what was decided, for the manifest)."""

    def __call__(
        self,
        calibrated: bytes,
        *,
        streams: Sequence[np.ndarray],
        tolerance: float | None,
        float_ops: tuple[str, ...],
        log: Callable[[str], None],
    ) -> tuple[bytes, dict[str, Any]]: ...


@dataclass(frozen=True)
class Int8Recipe:
    name: str
    help: str  # one line: what it does and what it is for (--help lists it)
    quantize: QuantizeFn
    # The image input types it can give (--input-dtype): a recipe with float inputs can take
    # camera bytes through its first QUANTIZE op; one that is int8 throughout cannot.
    image_input_dtypes: tuple[str, ...] = ("float32",)


RECIPES: dict[str, Int8Recipe] = {
    recipe.name: recipe
    for recipe in (
        Int8Recipe(
            "selective",
            "ours (the default): int8 where it was measured to hold; pools, states and the blocks that "
            "need it keep float activations; fast on XNNPACK",
            quantize_selective,
            image_input_dtypes=("float32", "uint8", "int8"),
        ),
        Int8Recipe(
            "naive",
            "the official tool's: everything int8, states included; here to be measured against",
            quantize_naive,
        ),
    )
}
DEFAULT_INT8_RECIPE = "selective"


def int8_recipe(name: str) -> Int8Recipe:
    """The recipe called ``name``, or one line naming the ones there are."""
    recipe = RECIPES.get(name)
    if recipe is None:
        raise ExportError(f"unknown int8 recipe {name!r}; choose {' or '.join(RECIPES)}")
    return recipe
