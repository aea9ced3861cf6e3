"""What an export is asked to do, checked whole before any slow work, and where it goes by default.

Everything here is plain Python: the command line builds an
:class:`ExportOptions` and :func:`check_options` refuses a wrong value in
well under a second, before TensorFlow loads (about 6 s) and long before a
build and a calibration (minutes). The library checks the same options again
at every :meth:`Exporter.export`, because tests and benchmarks change them
between exports of one build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ExportError
from .int8_recipes import DEFAULT_INT8_RECIPE, RECIPES, int8_recipe
from .zoo import lookup

PRECISIONS = ("float32", "float16", "dynamic", "int8")
INPUT_DTYPES = ("float32", "uint8", "int8")
# movinet_edge.preprocess.ResizePolicy's values, named here so that checking them loads no OpenCV.
RESIZE_POLICIES = ("crop", "pad", "stretch")
DEFAULT_MODELS_DIR = Path("models")


@dataclass
class ExportOptions:
    model_id: str = "a0"
    checkpoint: str | None = None  # path, directory, prefix, .tar.gz or URL
    saved_model: Path | None = None
    labels: str | None = None  # path or URL; None: the Kinetics-600 labels packaged with us
    resolution: int | None = None
    num_classes: int | None = None  # default: from the checkpoint's head
    cache_dir: Path | None = None
    parity_video: Path | None = None
    parity_frames: int = 50
    calibration_videos: list[str] = field(default_factory=list)
    calibration_frames: int = 0  # 0: the recipe's default
    input_dtype: str = "float32"
    int8_recipe: str = DEFAULT_INT8_RECIPE  # a name in int8_recipes.RECIPES
    int8_tolerance: float | None = None  # selective: accepted relative logit error (None: int8_plan's default)
    # How frames are made square (crop, pad, stretch): recorded in the manifest for
    # the device, and used for the parity and calibration clips. A fine-tuned model
    # keeps the policy it was trained with.
    resize_policy: str = "crop"
    progress: bool = True


def default_output(model_id: str, precision: str, int8_recipe: str = DEFAULT_INT8_RECIPE,
                   base: Path = DEFAULT_MODELS_DIR) -> Path:
    """models/<id>_stream_<precision>/ (where movinet-edge looks by default); another int8 recipe
    than the default adds its name, so that exporting both recipes keeps both models."""
    name = f"{model_id}_stream_{precision}"
    if precision == "int8" and int8_recipe != DEFAULT_INT8_RECIPE:
        name += f"_{int8_recipe}"
    return base / name


def check_options(options: ExportOptions, precision: str) -> None:
    """Every value, alone and with the others; files are checked by the exporter (check_inputs)."""
    lookup(options.model_id)
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    recipe = int8_recipe(options.int8_recipe)
    if options.input_dtype not in INPUT_DTYPES:
        raise ExportError(f"unknown --input-dtype {options.input_dtype!r}; choose {', '.join(INPUT_DTYPES)}")
    if options.input_dtype != "float32":
        if precision != "int8":
            raise ExportError("--input-dtype uint8/int8 needs --quantize int8")
        if options.input_dtype not in recipe.image_input_dtypes:
            others = [name for name, r in RECIPES.items() if options.input_dtype in r.image_input_dtypes]
            raise ExportError(f"--input-dtype {options.input_dtype} does not apply to the {recipe.name} int8 "
                              f"recipe ({recipe.help}); use --int8-recipe {' or '.join(others)}")
    if options.resize_policy not in RESIZE_POLICIES:
        raise ExportError(f"unknown --resize {options.resize_policy!r}; choose crop, pad or stretch")
    if options.saved_model is not None and options.checkpoint is not None:
        raise ExportError("pass either --checkpoint or --saved-model, not both")
    if options.resolution is not None and options.resolution < 32:
        raise ExportError(f"--resolution {options.resolution}: MoViNet needs at least 32 pixels")
    if options.num_classes is not None and options.num_classes < 1:
        raise ExportError(f"--num-classes {options.num_classes}: a model needs at least one class")
    if options.calibration_frames < 0:
        raise ExportError(f"--calibration-frames {options.calibration_frames}: pass 0 (the default) or more")
    if options.int8_tolerance is not None and not options.int8_tolerance > 0:
        raise ExportError(f"int8 tolerance {options.int8_tolerance}: must be positive")

