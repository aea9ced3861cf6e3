"""The ``selective`` int8 recipe (ours, the default): int8 where it holds, float where it breaks MoViNet.

int8 weights (per channel) and int8 activations for the convolutions of the
blocks; float where int8 was measured to break MoViNet (see int8_plan.py for
the numbers):
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
states with plain copies; an image input of uint8 or int8 is then swapped in
alone (quantize.set_image_input_dtype) so a device can feed camera bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the registry is read before numpy and TensorFlow load
    import numpy as np

SELECTIVE_FLOAT_OPS = ("ADD", "DIV", "MUL", "HARD_SWISH", "AVERAGE_POOL_2D")


def quantize_selective(
    calibrated: bytes,
    *,
    streams: Sequence[np.ndarray] = (),
    tolerance: float | None = None,
    float_ops: tuple[str, ...] = (),
    log: Callable[[str], None] = lambda _: None,
) -> tuple[bytes, dict[str, Any]]:
    """Quantize by the rules above; returns the model and what was decided.

    ``streams`` (square uint8 frames, states carried within each) measure the
    per-block decisions; without them only the fixed rules apply. ``tolerance``
    None: int8_plan's default.
    """
    # Here, not at the top: the recipe registry is read before TensorFlow loads.
    from tensorflow.lite.python import convert as lite_convert

    from .int8_plan import DEFAULT_TOLERANCE, Int8Plan, clamp_hard_swish_inputs, head_nodes, plan_float_units, unit_of
    from .tflite_graph import Graph

    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
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
