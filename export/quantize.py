"""What every int8 recipe shares: the calibration run, and camera-byte image inputs.

Calibrate once, quantize many: :func:`calibrate` records the activation
ranges of the streaming model on the calibration streams (states carried; see
calibration.py for why) into a float TFLite model, and each int8 recipe
(int8_recipes.py) quantizes that same model its own way.
:func:`set_image_input_dtype` then lets a recipe whose inputs stay float take
``uint8``/``int8`` camera bytes on its image input alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import tensorflow as tf

from .errors import ExportError
from .int8_plan import set_image_range
from .tflite_graph import Graph


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
