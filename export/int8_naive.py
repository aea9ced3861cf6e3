"""The ``naive`` int8 recipe: what the official tool and most public projects do.

Everything int8, all inputs and outputs included, calibrated by the same data
as ours. It exists to be measured beside the selective recipe (its states
saturate and its graph falls off XNNPACK; see int8_selective.py), and it gives
real int8 states whose input and output scales differ, which the runtime must
requantize: the edge tests run it for that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the registry is read before numpy and TensorFlow load
    import numpy as np


def quantize_naive(
    calibrated: bytes,
    *,
    streams: Sequence[np.ndarray] = (),
    tolerance: float | None = None,
    float_ops: tuple[str, ...] = (),
    log: Callable[[str], None] = lambda _: None,
) -> tuple[bytes, dict[str, Any]]:
    """Full int8 of the calibrated model; nothing is measured, so streams and tolerance go unused."""
    import tensorflow as tf  # here, not at the top: the recipe registry is read before TensorFlow loads
    from tensorflow.lite.python import convert as lite_convert

    from .tflite_graph import Graph

    model = lite_convert.mlir_quantize(
        calibrated,
        disable_per_channel=False,
        fully_quantize=True,
        input_data_type=tf.int8,
        output_data_type=tf.int8,
    )
    return model, {"recipe": "naive", "float_ops": [], "io": "int8", "precision_by_op": Graph(model).precision_by_op()}
