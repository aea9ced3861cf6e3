"""int8 recipes: which tensors become int8, which stay float, and why.

Two recipes, both from one calibration (calibrate once, quantize many):

``selective`` (ours, the default): int8 weights (per channel) and int8
activations for the convolutions of the blocks, float where int8 was
measured to break MoViNet (see int8_plan.py for the numbers):
- ADD/DIV carry the causal pools' running SUM and its division by the frame
  count; in int8 the sum leaves any calibrated range within seconds and the
  stream collapses (naive int8 agreed 0% with float after ~30 frames). Every
  op that writes a state output stays float for the same reason.
- MUL includes the squeeze-excitation gating and the ReZero-style residual
  scales, whose scale ratios XNNPACK refuses in int8.
- HARD_SWISH and AVERAGE_POOL_2D: XNNPACK runs them only in float; in int8
  they fall back to built-in kernels and split the graph into dozens of
  partitions (90 for A0), which made naive int8 2x *slower* than float.
  (The quantizer keeps pools int8 even when deny-listed, so they are turned
  into float islands afterwards.)
- The classifier head keeps float activations with int8 weights (computed
  by XNNPACK with per-call input quantization): its logits outgrow any
  calibrated range on confident streams.
- The last blocks (the most sensitive, on the smallest maps) move to the same
  float-activation, int8-weight form until the model is within a tolerance
  on the calibration streams (a measured, per-model decision; int8_plan.py).
Model inputs and outputs stay float (states included) so the runtime carries
states with plain copies; ``--input-dtype uint8|int8`` then swaps only the
image input so a device can feed camera bytes directly.

``naive`` is what the official tool and most public projects do: everything
int8 including all inputs and outputs, calibrated by the same data. It exists
to be measured beside ours, and it gives real int8 states whose input and
output scales differ (the runtime must requantize them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import convert as lite_convert

from .errors import ExportError
from .int8_plan import (
    DEFAULT_TOLERANCE,
    Int8Plan,
    clamp_hard_swish_inputs,
    head_nodes,
    plan_float_units,
    set_image_range,
    unit_of,
)
from .tflite_graph import Graph

INT8_RECIPES = ("selective", "naive")
SELECTIVE_FLOAT_OPS = ("ADD", "DIV", "MUL", "HARD_SWISH", "AVERAGE_POOL_2D")


def calibrate(savedmodel: Path, signature_key: str, dataset: Callable[[], Iterator[dict[str, Any]]]) -> bytes:
    """A float TFLite model annotated with the activation ranges seen on ``dataset``."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel), signature_keys=[signature_key])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # noqa: SLF001 - the documented debugger route
    try:
        calibrated = converter.convert()
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"int8 calibration failed: {first}") from None
    # Frames are bytes / 255: the image range is known, not measured (a uint8
    # input then maps camera bytes with scale exactly 1/255).
    return set_image_range(calibrated, 0.0, 1.0)


def quantize(
    calibrated: bytes,
    recipe_name: str,
    float_ops: tuple[str, ...] = (),
    streams: Sequence[np.ndarray] = (),
    tolerance: float = DEFAULT_TOLERANCE,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[bytes, dict[str, Any]]:
    """Quantize a calibrated model by recipe; returns the model and what was decided.

    ``streams`` (square uint8 frames, states carried within each) measure the
    selective recipe's per-block decisions; without them only its fixed rules apply.
    """
    if recipe_name == "naive":
        model = lite_convert.mlir_quantize(
            calibrated,
            disable_per_channel=False,
            fully_quantize=True,
            input_data_type=tf.int8,
            output_data_type=tf.int8,
        )
        return model, {"recipe": "naive", "float_ops": [], "io": "int8",
                       "precision_by_op": Graph(model).precision_by_op()}
    if recipe_name != "selective":
        raise ExportError(f"unknown int8 recipe {recipe_name!r}; choose one of {', '.join(INT8_RECIPES)}")
    ops = tuple(float_ops) or SELECTIVE_FLOAT_OPS
    calibrated, clamped = clamp_hard_swish_inputs(calibrated)
    graph = Graph(calibrated)
    head = head_nodes(graph)
    state_nodes = graph.output_nodes()
    by_unit: dict[str, list[str]] = {}
    for op in graph.ops():
        if (unit := unit_of(op.node)) is not None:
            by_unit.setdefault(unit, []).append(op.node)

    built: dict[tuple[str, ...], bytes] = {}

    def build(float_units: list[str]) -> bytes:
        key = tuple(float_units)
        if key not in built:  # the plan's pick was already built while it was measured
            built[key] = _build(float_units)
        return built[key]

    def _build(float_units: list[str]) -> bytes:
        float_nodes = head + [n for u in float_units for n in by_unit[u]]
        model = lite_convert.mlir_quantize(
            calibrated,
            disable_per_channel=False,
            fully_quantize=False,
            denylisted_ops=list(ops),
            denylisted_nodes=sorted(set(float_nodes + state_nodes)),
        )
        edited = Graph(model)
        edited.int8_weights(float_nodes)
        edited.float_islands("AVERAGE_POOL_2D")
        return edited.pack()

    plan = plan_float_units(calibrated, build, streams, tolerance, log) if streams else Int8Plan(tolerance, head=head)
    model = build(plan.float_units)
    decided = {
        "recipe": "selective",
        "float_ops": list(ops),
        "io": "float32",
        "per_channel_weights": True,
        "hard_swish_inputs_clamped": clamped,
        "state_output_nodes_float": len(state_nodes),
        "plan": plan.to_dict(),
        # What came of it, op by op: int8, float activations with int8 weights, float.
        "precision_by_op": Graph(model).precision_by_op(),
    }
    return model, decided


def set_image_input_dtype(tflite: bytes, dtype: str) -> tuple[bytes, dict[str, Any]]:
    """Make the ``image`` input uint8/int8 (camera bytes) while states stay as they are.

    The converter's own ``inference_input_type`` would change every input,
    states included. Here only the image changes: its float input feeds a
    QUANTIZE op; the input becomes that op's int8 output (int8), or a uint8
    tensor that the QUANTIZE op converts (uint8, zero point + 128).
    """
    if dtype == "float32":
        return tflite, {}
    from tensorflow.lite.python import schema_py_generated as schema

    graph = Graph(tflite)
    sub = graph.sub
    image_index = graph.input_index("image")
    if image_index is None:
        raise ExportError("internal: no image input in the signature")
    consumers = graph.consumers().get(image_index, [])
    if len(consumers) != 1 or consumers[0].name != "QUANTIZE":
        raise ExportError(
            "--input-dtype uint8/int8 needs an int8 first convolution and this model's is float (the int8 "
            "plan keeps blocks float when int8 costs too much accuracy); export with --input-dtype float32"
        )
    qop = sub.operators[consumers[0].index]
    quantized = sub.tensors[qop.outputs[0]]
    scale = float(quantized.quantization.scale[0])
    zero_point = int(quantized.quantization.zeroPoint[0])
    image = sub.tensors[image_index]
    if dtype == "int8":
        # Drop the QUANTIZE op: the int8 tensor becomes the input.
        new_index = qop.outputs[0]
        sub.operators = [op for op in sub.operators if op is not qop]
        sub.inputs = [new_index if i == image_index else i for i in sub.inputs]
        graph.set_input_index("image", new_index)
        quantized.name = image.name
        result = {"scale": scale, "zero_point": zero_point}
    else:  # uint8: the input tensor itself becomes uint8; QUANTIZE requantizes uint8 -> int8
        image.type = schema.TensorType.UINT8
        q = schema.QuantizationParametersT()
        q.scale, q.zeroPoint = [scale], [zero_point + 128]
        image.quantization = q
        result = {"scale": scale, "zero_point": zero_point + 128}
    return graph.pack(), {"image_input": {"dtype": dtype, **result}}
