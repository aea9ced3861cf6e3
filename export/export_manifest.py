"""The manifest an export writes beside its model: what the device needs, and how the model was made.

The device reads the tensors (names, shapes, dtypes, quantization) from the
model file itself, through the edge runtime, so the manifest describes the
file that was written rather than what the converter was asked for; the
rest (source, versions, int8 decisions, delegate coverage) is the record of
how it was made.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from movinet_edge.manifest import Manifest, Quantization, StateInfo, TensorInfo, state_kind

from .streaming_model import StreamingModel
from .zoo import ZooEntry

VERSIONED_PACKAGES = ("movinet-edge", "tensorflow", "tf-keras", "tf-models-official", "ai-edge-litert", "numpy")


def package_versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def build_manifest(model_path: Path, entry: ZooEntry, model: StreamingModel, precision: str, conversion: Any,
                   resize_policy: str, log: Callable[[str], None]) -> Manifest:
    """The manifest of the TFLite file at ``model_path``, read back through the edge runtime."""
    from movinet_edge.delegation import delegate_coverage
    from movinet_edge.model import StreamingClassifier

    clf = StreamingClassifier(model_path, num_threads=1)
    ins, outs = clf.input_details, clf.output_details
    coverage = delegate_coverage(clf.interpreter)
    log(coverage.summary())

    def tensor_info(name: str, detail: dict[str, Any]) -> TensorInfo:
        return TensorInfo(name=name, shape=[int(x) for x in detail["shape"]],
                          dtype=np.dtype(detail["dtype"]).name, quantization=_quantization(detail))

    states = [
        StateInfo(
            name=s.name,
            shape=list(s.shape),
            dtype=s.dtype.name,
            kind=state_kind(s.name),
            input_quantization=_quantization(ins[s.name]),
            output_quantization=_quantization(outs[s.name]),
        )
        for s in clf.states
    ]
    return Manifest(
        model_id=entry.model_id,
        resolution=model.resolution,
        fps=entry.fps,
        num_classes=model.num_classes,
        precision=precision,
        signature_key=clf.signature_key,
        image=tensor_info("image", ins["image"]),
        logits=tensor_info("logits", outs["logits"]),
        states=states,
        resize_policy=resize_policy,
        source=model.source,
        versions=package_versions(),
        quantization=conversion.details.get("quantization"),
        conversion={
            "seconds": conversion.seconds,
            "bytes": len(conversion.tflite),
            "op_counts": conversion.op_counts,
            "architecture": model.arch,
            "delegate": coverage.to_dict(),
            **{k: v for k, v in conversion.details.items() if k != "quantization"},
        },
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def _quantization(detail: dict[str, Any]) -> Quantization | None:
    """A tensor's scale and zero point, for int8/uint8 tensors (int32 counters are not quantized)."""
    if np.dtype(detail["dtype"]).kind not in "iu" or np.dtype(detail["dtype"]) == np.int32:
        return None
    params = detail.get("quantization_parameters") or {}
    scales = params.get("scales")
    if scales is None or len(scales) == 0:
        return None
    return Quantization(float(scales[0]), int(params["zero_points"][0]))
