"""Parity report: does the TFLite file compute what the TensorFlow model computes?

Three runs over the same frames of a real clip (sampled at the model fps,
centre-cropped, exactly as the device does):
1. the TF streaming model, frame by frame, carrying its states;
2. the TFLite model, frame by frame, through the edge runtime itself (the
   code that will run on the device, XNNPACK included);
3. the non-streaming causal clip model on the whole clip at once.
1 vs 2 checks the conversion; 1 vs 3 checks that streaming equals the clip
computation (the states are carried right). float32 must match within 1e-4.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

FLOAT32_TOLERANCE = 1e-4


@dataclass
class ParityReport:
    clip: str
    frames: int
    precision: str
    tflite_vs_tf_max_abs_logit_diff: float
    tflite_vs_tf_top1_agreement: float  # fraction of frames with the same top-1
    clip_vs_stream_max_abs_logit_diff: float | None  # last frame of the TF stream vs the clip model
    clip_vs_stream_top1_agree: bool | None
    tolerance: float | None  # only float32 has a hard bound
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"parity on {Path(self.clip).name} ({self.frames} frames, {self.precision}):",
            f"  TFLite vs TF stream: max |logit diff| {self.tflite_vs_tf_max_abs_logit_diff:.3g}, "
            f"top-1 agreement {self.tflite_vs_tf_top1_agreement:.1%}",
        ]
        if self.clip_vs_stream_max_abs_logit_diff is not None:
            lines.append(
                f"  TF stream vs clip model: max |logit diff| {self.clip_vs_stream_max_abs_logit_diff:.3g}, "
                f"top-1 {'agrees' if self.clip_vs_stream_top1_agree else 'DIFFERS'}"
            )
        if self.tolerance is not None:
            lines.append(f"  float32 bound {self.tolerance:g}: {'ok' if self.passed else 'EXCEEDED'}")
        return "\n".join(lines)


class TFStreamRunner:
    """The TF streaming model as a compiled per-frame step (traced once, reused)."""

    def __init__(self, step_fn: Any, initial_states: dict[str, tf.Tensor]) -> None:
        self._step = step_fn
        self._initial = initial_states

    def run(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [T, H, W, 3] -> float32 logits [T, classes]."""
        states = dict(self._initial)
        out = []
        for frame in frames:
            image = tf.constant(frame[None, None].astype(np.float32) / 255.0)
            result = self._step({**states, "image": image})
            out.append(result["logits"].numpy().reshape(-1))
            states = {k: v for k, v in result.items() if k != "logits"}
        return np.stack(out)


def tflite_logits(model_path: Path, frames: np.ndarray, labels_count: int | None = None) -> np.ndarray:
    """Run the edge runtime over square uint8 frames; float32 logits [T, classes]."""
    from movinet_edge.model import StreamingClassifier

    clf = StreamingClassifier(model_path, labels=None, num_threads=None)
    return np.stack([clf.step_logits(frame) for frame in frames])


def compare(
    clip: str,
    precision: str,
    tf_logits: np.ndarray,
    lite_logits: np.ndarray,
    clip_logits: np.ndarray | None,
) -> ParityReport:
    diff = float(np.max(np.abs(tf_logits - lite_logits)))
    agreement = float(np.mean(tf_logits.argmax(-1) == lite_logits.argmax(-1)))
    clip_diff = clip_agree = None
    if clip_logits is not None:
        clip_diff = float(np.max(np.abs(clip_logits.reshape(-1) - tf_logits[-1])))
        clip_agree = bool(clip_logits.reshape(-1).argmax() == tf_logits[-1].argmax())
    tolerance = FLOAT32_TOLERANCE if precision == "float32" else None
    passed = diff <= tolerance if tolerance is not None else True
    if clip_diff is not None:
        passed = passed and clip_diff <= max(FLOAT32_TOLERANCE * 10, 1e-3)
    return ParityReport(
        clip=clip,
        frames=int(tf_logits.shape[0]),
        precision=precision,
        tflite_vs_tf_max_abs_logit_diff=diff,
        tflite_vs_tf_top1_agreement=agreement,
        clip_vs_stream_max_abs_logit_diff=clip_diff,
        clip_vs_stream_top1_agree=clip_agree,
        tolerance=tolerance,
        passed=passed,
    )
