"""The manifest: the one contract between the export half and the device half.

``manifest.json`` sits beside ``model.tflite`` and ``labels.txt``. Both halves
import this module (it has no TensorFlow in it), so the format is defined once.
It is versioned by ``format_version``; readers accept unknown keys so that a
newer exporter does not break an older device.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import EdgeError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
MODEL_NAME = "model.tflite"
LABELS_NAME = "labels.txt"

# How a state is used by the runtime, from the official state names:
#   *_stream_buffer     the last frames a causal temporal convolution needs
#   *_pool_buffer       the running SUM of a causal global average pool
#   *_pool_frame_count  how many frames that sum holds (int32)
STATE_KINDS = ("stream_buffer", "pool_buffer", "pool_frame_count")


def state_kind(name: str) -> str:
    """Classify a state by its official name; ``other`` for names we do not know."""
    for kind in STATE_KINDS:
        if name.endswith(kind):
            return kind
    return "other"


@dataclass
class Quantization:
    """Per-tensor affine quantization: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int


@dataclass
class TensorInfo:
    name: str
    shape: list[int]
    dtype: str
    quantization: Quantization | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorInfo:
        q = d.get("quantization")
        return cls(
            name=d["name"],
            shape=list(d["shape"]),
            dtype=d["dtype"],
            quantization=Quantization(**q) if q else None,
        )


@dataclass
class StateInfo:
    """One carried state: its input and output sides may be quantized differently."""

    name: str
    shape: list[int]
    dtype: str
    kind: str
    input_quantization: Quantization | None = None
    output_quantization: Quantization | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StateInfo:
        iq, oq = d.get("input_quantization"), d.get("output_quantization")
        return cls(
            name=d["name"],
            shape=list(d["shape"]),
            dtype=d["dtype"],
            kind=d.get("kind") or state_kind(d["name"]),
            input_quantization=Quantization(**iq) if iq else None,
            output_quantization=Quantization(**oq) if oq else None,
        )


@dataclass
class Manifest:
    model_id: str
    resolution: int
    fps: float
    num_classes: int
    precision: str
    signature_key: str
    image: TensorInfo
    logits: TensorInfo
    states: list[StateInfo]
    # Real value range the image input expects before quantization (always [0, 1]
    # for MoViNet); for an int8/uint8 input, bytes map onto it via image.quantization.
    input_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    labels_file: str = LABELS_NAME
    # How frames were made square in training (crop, pad or stretch): the device does the same.
    resize_policy: str = "crop"
    source: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    parity: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None
    conversion: dict[str, Any] | None = None
    created: str = ""
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        version = d.get("format_version", 1)
        if version > FORMAT_VERSION:
            raise EdgeError(
                f"manifest format {version} is newer than this movinet-edge understands "
                f"({FORMAT_VERSION}); upgrade movinet-edge"
            )
        try:
            return cls(
                model_id=d["model_id"],
                resolution=int(d["resolution"]),
                fps=float(d["fps"]),
                num_classes=int(d["num_classes"]),
                precision=d["precision"],
                signature_key=d["signature_key"],
                image=TensorInfo.from_dict(d["image"]),
                logits=TensorInfo.from_dict(d["logits"]),
                states=[StateInfo.from_dict(s) for s in d["states"]],
                input_range=list(d.get("input_range", [0.0, 1.0])),
                labels_file=d.get("labels_file", LABELS_NAME),
                resize_policy=d.get("resize_policy", "crop"),
                source=d.get("source", {}),
                versions=d.get("versions", {}),
                parity=d.get("parity"),
                quantization=d.get("quantization"),
                conversion=d.get("conversion"),
                created=d.get("created", ""),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EdgeError(f"manifest is missing or has a bad field ({exc}); re-export the model") from None


def load_manifest(path: Path) -> Manifest:
    """Read a manifest file; a broken one is a one-line error, not a traceback."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EdgeError(f"no manifest at {path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise EdgeError(f"cannot read manifest {path}: {exc}") from None
    if not isinstance(data, dict):
        raise EdgeError(f"manifest {path} is not a JSON object; re-export the model")
    return Manifest.from_dict(data)


def read_labels(path: Path) -> list[str]:
    """One label a line; blank trailing lines ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EdgeError(f"cannot read labels {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise EdgeError(f"labels {path} is not UTF-8 text; save it as UTF-8, one label a line") from None
    labels = [line.strip() for line in lines]
    while labels and not labels[-1]:
        labels.pop()
    return labels
