"""Streaming SavedModel -> TFLite, one precision at a time.

Every route goes through a SavedModel with one ``serving_default`` signature
(``image`` + states in, ``logits`` + states out): our own builds save a
light one (a tf.Module holding only the variables and the traced step, which
is several times faster than serialising the whole Keras model), and
``--saved-model`` inputs are read as they are. One conversion path for both
means one set of bugs.

Precisions are recipes (:class:`Recipe`): float32, float16 (weights stored as
float16, computed in float32 on CPU), dynamic (int8 weights, float
activations) and int8 (calibrated activations, quantized by one of the
recipes of int8_recipes.py; see calibration.py for the data).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tensorflow as tf
import tf_keras

from .errors import ExportError
from .int8_recipes import DEFAULT_INT8_RECIPE
from .options import PRECISIONS

SIGNATURE_KEY = "serving_default"

# A representative dataset yields dicts {input name: numpy array} for one step.
RepresentativeDataset = Callable[[], Iterator[dict[str, Any]]]


@dataclass
class Recipe:
    """How to convert: precision plus what int8 needs."""

    precision: str = "float32"
    input_dtype: str = "float32"  # int8 only: float32 | uint8 | int8
    int8_recipe: str = DEFAULT_INT8_RECIPE  # int8 only: a name in int8_recipes.RECIPES
    calibrated: bytes | None = None  # int8 only: the calibrated float model (calibration.py)
    # int8 selective only: frames (square uint8, one array a stream) to measure its per-block decisions.
    streams: list[Any] = field(default_factory=list)
    tolerance: float | None = None  # int8 selective only: accepted relative logit error (None: default)
    log: Callable[[str], None] = lambda _: None
    # Ops kept in float in an int8 model (empty: the recipe's default).
    float_ops: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ExportError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")


@dataclass
class Conversion:
    tflite: bytes
    precision: str
    seconds: float
    op_counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def save_stream_savedmodel(model: tf_keras.Model, specs: dict[str, tf.TensorSpec], image: tf.TensorSpec, path: Path) -> None:
    """Save the streaming step as a light SavedModel with named inputs and outputs."""

    def predict(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        logits, states = model(inputs, training=False)
        return {**states, "logits": logits}

    module = tf.Module()
    module.variables_ = list(model.variables)  # tracked: the only thing the step captures
    module.serve = tf.function(predict, input_signature=[{**specs, "image": image}])
    tf.saved_model.save(module, str(path), signatures={SIGNATURE_KEY: module.serve.get_concrete_function()})


def save_signature_savedmodel(fn: Any, inputs: dict[str, tf.TensorSpec], path: Path) -> None:
    """Re-save one signature of a loaded SavedModel as a light SavedModel of its own.

    A SavedModel written by Keras (tf-models-official's export tool) carries the
    whole object graph, every layer's functions included; the converter reads
    all of it (measured: 60 s for A0, against 19 s for our light save). Only
    the streaming step and the variables it captures are needed.
    """
    module = tf.Module()
    module.variables_ = list(fn.variables)
    module.serve = tf.function(lambda feed: fn(**feed), input_signature=[dict(inputs)])
    tf.saved_model.save(module, str(path), signatures={SIGNATURE_KEY: module.serve.get_concrete_function()})


def inspect_savedmodel(path: Path) -> tuple[str, dict[str, tf.TensorSpec], dict[str, tf.TensorSpec], Any]:
    """Find the streaming signature of a SavedModel; refuse one that cannot stream.

    Returns the signature key, its inputs and outputs, and the loaded object (loading takes
    tens of seconds for a Keras SavedModel: once is enough)."""
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError) as exc:
        raise ExportError(f"cannot load SavedModel {path}: {str(exc).strip().splitlines()[0][:200]}") from None
    signatures = dict(loaded.signatures)
    if not signatures:
        raise ExportError(f"SavedModel {path} has no signatures; export it with signatures (image + states)")
    for key in (SIGNATURE_KEY, "call", *signatures):
        if key not in signatures:
            continue
        fn = signatures[key]
        inputs = fn.structured_input_signature[1]
        outputs = fn.structured_outputs
        states = sorted(k for k in inputs if k != "image")
        if "image" in inputs and "logits" in outputs and states and all(s in outputs for s in states):
            return key, dict(inputs), {k: v for k, v in outputs.items()}, loaded
    keys = ", ".join(signatures)
    raise ExportError(
        f"SavedModel {path} is not a streaming MoViNet: no signature ({keys}) takes 'image' plus states and "
        "returns 'logits' plus states; export a causal model with external states (a base model cannot stream)"
    )


def convert(savedmodel: Path, signature_key: str, recipe: Recipe) -> Conversion:
    """Run the TFLite converter for one recipe."""
    start = time.monotonic()
    if recipe.precision == "int8":
        return _convert_int8(recipe, start)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel), signature_keys=[signature_key])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if recipe.precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif recipe.precision == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        tflite = converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises many types; one line for the user
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"TFLite conversion ({recipe.precision}) failed: {first}") from None
    return Conversion(
        tflite=tflite,
        precision=recipe.precision,
        seconds=round(time.monotonic() - start, 2),
        op_counts=op_counts(tflite),
        details=dict(recipe.details),
    )


def _convert_int8(recipe: Recipe, start: float) -> Conversion:
    from .int8_recipes import int8_recipe
    from .quantize import set_image_input_dtype

    if recipe.calibrated is None:
        raise ExportError("internal: int8 conversion needs a calibrated model")
    tflite, decided = int8_recipe(recipe.int8_recipe).quantize(
        recipe.calibrated, streams=recipe.streams, tolerance=recipe.tolerance, float_ops=recipe.float_ops,
        log=recipe.log)
    if recipe.input_dtype != "float32":  # which recipes can take it is checked with the options
        tflite, image = set_image_input_dtype(tflite, recipe.input_dtype)
        decided.update(image)
    return Conversion(
        tflite=tflite,
        precision="int8",
        seconds=round(time.monotonic() - start, 2),
        op_counts=op_counts(tflite),
        details={**recipe.details, "quantization": decided},
    )


def op_counts(tflite: bytes) -> dict[str, int]:
    """How many ops of each builtin type the model has (for the report)."""
    try:
        from tensorflow.lite.python import schema_py_generated as schema
    except ImportError:  # pragma: no cover - layout differs between TF versions
        return {}
    model = schema.ModelT.InitFromPackedBuf(tflite, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    counts: Counter[str] = Counter()
    for sub in model.subgraphs[:1]:
        for op in sub.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            counts[names.get(builtin, str(builtin))] += 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
