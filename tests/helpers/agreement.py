"""How closely a quantized model follows its float model: the measure lives in the package
(:mod:`movinet_export.agreement`), so the int8 test and the benchmark measure the same thing."""

from __future__ import annotations

from movinet_export.agreement import (
    SKIP_FRAMES,
    HeldOut,
    clip_predictions,
    compare,
    held_out,
    open_model,
    stream_metrics,
    stream_predictions,
)

__all__ = ["SKIP_FRAMES", "HeldOut", "clip_predictions", "compare", "held_out", "open_model",
           "stream_metrics", "stream_predictions"]
