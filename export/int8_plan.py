"""Which parts of a MoViNet keep float activations in our int8 recipe, decided by measurement.

Static int8 activations (one calibrated range per tensor) are what makes int8
fast, and what breaks MoViNet streams. Measured on a trained A0 (8-class
motion task, 32 px; relative logit error against float over 320-frame
streams, states carried; ``bench/int8_quality.py`` has the full runs):

- The classifier head (its pooled features, the 2048-wide hidden layer and
  the logits) is the worst: quantized alone it gave most of the error (0.28
  logit RMSE raw, 1.23 with a short window, where confident logits leave
  any calibrated range). It always keeps float activations, with int8
  weights (:meth:`Graph.int8_weights`, XNNPACK's dynamically quantized
  path), so it stays 4x smaller and reads its weights 4x faster.
- Every op that writes a state output stays float: the pool sums travel
  through a STRIDED_SLICE that the converter otherwise leaves int8, where
  a running sum saturates after a few seconds.
- The inputs of HARD_SWISH get the range [-3, max]: below -3 the activation
  is exactly 0, so the lower half of a symmetric range was wasted (raw
  stream agreement 85% -> 91% from this alone).
- No single block stands out after that (each quantized alone: 0.006-0.038
  relative error, growing with depth: the stem least, block4_layer0 most),
  but together they add up. So blocks move to float activations from the
  classifier end backwards, the most sensitive and the cheapest first (the
  late blocks run on the smallest maps), and the search finds the shortest
  such suffix that brings the model within ``tolerance`` on the calibration
  streams, played back to back as one long stream (long histories are where
  int8 drifts): a bisection, about 6 candidate models instead of one per
  block (measured: the order matched a greedy search over every block's own
  error on 8 of the first 9 blocks it moved). On the test model it kept the
  stem and block0 static int8, the highest-resolution layers.
- The stem always stays static int8: it adds little error (every block int8
  0.031 relative error on the bench model, the stem and block0 float 0.029)
  and an int8 first convolution is what lets ``--input-dtype uint8`` feed
  camera bytes straight in.

When no candidate meets the tolerance (a random-weight A0: every plan near
0.018 relative error, the all-int8 one among the best), the plan kept is the
one measured closest to float, not the one with the most float blocks.

The result is recorded in the manifest: every candidate's error, which blocks
stayed float, whether the tolerance was met and why that plan was chosen.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .tflite_graph import Graph

# Relative logit error (RMSE over the spread of the float logits) that the
# search accepts on the calibration stream. Measured on the trained 32 px test
# model, held-out 320-frame streams: a greedy search to 0.05 moved 1 block to
# float and agreed with float on 99.6% of frames raw but 97.0% under a 3 s
# window; to 0.03, on 98.6% and 98.4%. The suffix bisection on one long
# calibration stream, at 0.03, moved 12 blocks: 98.6% raw and windowed, but
# 96.9% raw (one stream 93%) on a retrained copy; at 0.02 it moved 14 (the stem
# and block0 stay int8): 98.6% raw, 99.3% windowed. On the 64 px bench model
# (bench/int8_quality.py, 400 held-out clips, 4 x 320-frame streams) 0.02 moved
# 8 blocks: 97.7% raw, under the 98% target; 0.015 moved 13: 98.3%; 0.01
# moved 14: 98.9% raw, 99.3% windowed; 0.005 all 16: 99.5%. The float blocks
# still compute in int8 (int8 weights, inputs quantized per call), so the
# margin costs little speed.
DEFAULT_TOLERANCE = 0.01
HARD_SWISH_FLOOR = -3.0  # hard_swish(x) = 0 for every x <= -3
_UNIT = re.compile(r"/(stem|block\d+_layer\d+)/")
_HEAD = re.compile(r"/head/|classifier_head/")


def unit_of(node: str) -> str | None:
    """The block a node belongs to (MoViNet's layer names), None for anything else."""
    match = _UNIT.search(node)
    return match.group(1) if match else None


def head_nodes(graph: Graph) -> list[str]:
    """The classifier head: by MoViNet's names, else every op between the last spatial tensor and the logits."""
    named = [op.node for op in graph.ops() if _HEAD.search(op.node)]
    if named:
        return named
    logits = next((t for t in graph.sub.outputs if "logits" in graph.tensor_name(int(t))), None)
    producers = {t: op for op in graph.ops() for t in op.outputs}
    out, stack, seen = [], [int(logits)] if logits is not None else [], set()
    while stack:
        op = producers.get(stack.pop())
        if op is None or op.index in seen:
            continue
        seen.add(op.index)
        shape = list(graph.tensor(op.outputs[0]).shape)
        if len(shape) >= 4 and (shape[-2] > 1 or shape[-3] > 1):
            continue
        out.append(op.node)
        stack.extend(t for t in op.inputs if t >= 0)
    return out


def clamp_hard_swish_inputs(calibrated: bytes) -> tuple[bytes, int]:
    """Raise the calibrated minimum of every tensor that only HARD_SWISH reads to -3."""
    graph = Graph(calibrated)
    consumers = graph.consumers()
    changed = 0
    for index, (low, high) in graph.ranges().items():
        readers = consumers.get(index, [])
        if readers and all(op.name == "HARD_SWISH" for op in readers) and low < HARD_SWISH_FLOOR:
            graph.set_range(index, HARD_SWISH_FLOOR, high)
            changed += 1
    return graph.pack(), changed


def set_image_range(calibrated: bytes, low: float = 0.0, high: float = 1.0) -> bytes:
    """Pin the image input to its true range, so a uint8/int8 input has scale exactly 1/255."""
    graph = Graph(calibrated)
    index = graph.input_index("image")
    if index is not None and index in graph.ranges():
        graph.set_range(index, low, high)
    return graph.pack()


@dataclass
class StreamError:
    relative_rmse: float  # RMSE of the logits over the RMS spread of the float logits
    top1_agreement: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 5) for k, v in asdict(self).items()}


def stream_error(logits: np.ndarray, reference: np.ndarray) -> StreamError:
    spread = np.sqrt(np.mean((reference - reference.mean(axis=-1, keepdims=True)) ** 2)) + 1e-12
    rmse = float(np.sqrt(np.mean((logits - reference) ** 2)) / spread)
    agree = float(np.mean(logits.argmax(-1) == reference.argmax(-1)))
    return StreamError(rmse, agree)


def stream_logits(tflite: bytes, streams: Sequence[np.ndarray]) -> np.ndarray:
    """Logits of every frame of every stream (states carried, reset between streams), via the edge runtime."""
    from movinet_edge.model import StreamingClassifier

    with tempfile.TemporaryDirectory(prefix="movinet-int8-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(tflite)
        clf = StreamingClassifier(path)
        out = []
        for stream in streams:
            clf.reset()
            out.extend(clf.step_square(frame) for frame in stream)
        del clf
    return np.stack(out)


@dataclass
class Int8Plan:
    """What stays float in a selective int8 model, and the measurements behind it."""

    tolerance: float
    float_units: list[str] = field(default_factory=list)  # blocks with float activations (int8 weights)
    units: list[str] = field(default_factory=list)  # every block, in graph order
    tried: dict[int, StreamError] = field(default_factory=dict)  # float suffix length -> error
    head: list[str] = field(default_factory=list)
    reason: str = "not measured: no calibration streams"  # why this plan was chosen, in words

    @property
    def error_all_int8(self) -> StreamError | None:
        return self.tried.get(0)

    @property
    def error(self) -> StreamError | None:
        return self.tried.get(len(self.float_units))

    def to_dict(self) -> dict[str, Any]:
        return {
            "tolerance": self.tolerance,
            "blocks": self.units,
            "float_blocks": self.float_units,
            "error_all_blocks_int8": self.error_all_int8.to_dict() if self.error_all_int8 else None,
            "error": self.error.to_dict() if self.error else None,
            "tried": {str(k): v.to_dict() for k, v in sorted(self.tried.items())},
            # False: no plan measured met the tolerance; the one kept is then the one measured
            # closest to float (the lowest relative error), whatever its number of float blocks.
            "within_tolerance": bool(self.error and self.error.relative_rmse <= self.tolerance),
            "chosen_because": self.reason,
            "head_float_nodes": len(self.head),
            "evaluations": len(self.tried),
        }


def plan_float_units(
    calibrated: bytes,
    build: Callable[[list[str]], bytes],
    streams: Sequence[np.ndarray],
    tolerance: float = DEFAULT_TOLERANCE,
    log: Callable[[str], None] = lambda _: None,
) -> Int8Plan:
    """The fewest blocks, counted from the classifier end, that must keep float activations.

    ``build(float_units)`` makes the int8 model with those blocks in float;
    ``calibrated`` (a float model) gives the reference logits. The error is
    taken to shrink as the float suffix grows (it does, up to noise); the
    bisection keeps the shortest suffix measured within ``tolerance``. When
    none is, the error does not shrink with the suffix (noise dominates, as on
    a random-weight model): the plan kept is the one measured closest to float
    (lowest relative error; on a tie, fewer float blocks), and the log and the
    manifest say so.
    """
    graph = Graph(calibrated)
    units = list(dict.fromkeys(u for op in graph.ops() if (u := unit_of(op.node))))
    plan = Int8Plan(tolerance=tolerance, units=units, head=head_nodes(graph))
    longest = max(len(units) - 1, 0)  # the stem (the first unit) stays int8: see the module docstring
    reference = stream_logits(calibrated, streams)

    def suffix(k: int) -> list[str]:
        return units[len(units) - k:] if k else []

    def within(k: int) -> bool:
        plan.tried[k] = error = stream_error(stream_logits(build(suffix(k)), streams), reference)
        log(f"int8 with the last {k} of {len(units)} blocks in float: relative logit error "
            f"{error.relative_rmse:.4f}, top-1 agreement {error.top1_agreement:.1%} (tolerance {tolerance:g})")
        return error.relative_rmse <= tolerance

    if not units:
        plan.reason = "no MoViNet blocks found: only the fixed rules apply"
        return plan
    if within(0):
        plan.reason = f"every block int8 is within the tolerance {tolerance:g}"
        return plan
    low, high = 0, longest  # low fails; high is taken to pass until measured
    while high - low > 1:
        mid = (low + high) // 2
        if within(mid):
            high = mid
        else:
            low = mid
    if high not in plan.tried:
        within(high)
    if plan.tried[high].relative_rmse <= tolerance:
        plan.float_units = suffix(high)
        plan.reason = f"the fewest float blocks measured within the tolerance {tolerance:g}"
        return plan
    best = min(plan.tried, key=lambda k: (plan.tried[k].relative_rmse, k))
    error = plan.tried[best]
    plan.float_units = suffix(best)
    plan.reason = (f"no plan of the {len(plan.tried)} measured met the tolerance {tolerance:g}; kept the one "
                   f"measured closest to float: {best} float blocks, relative logit error "
                   f"{error.relative_rmse:.4f}, top-1 agreement {error.top1_agreement:.1%}")
    log(f"int8 misses the tolerance {tolerance:g} with every plan measured (up to every block but the stem in "
        f"float activations); keeping the last {best} of {len(units)} blocks in float, the lowest error measured "
        f"({error.relative_rmse:.4f}, top-1 agreement {error.top1_agreement:.1%})")
    return plan
