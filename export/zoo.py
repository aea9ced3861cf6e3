"""The model zoo: what an official MoViNet stream model id means.

Numbers from the MoViNet model garden (official/projects/movinet/README.md):
the stream checkpoints are trained causal, and TFLite streaming exports use
2plus1d convolutions, 2plus3d squeeze-excitation and hard activations, which
change numerics slightly but no weights, so the same checkpoints restore.
A3-A5 were trained with causal positional encoding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CHECKPOINT_URL = "https://storage.googleapis.com/tf_model_garden/vision/movinet/movinet_{id}_stream.tar.gz"
WEIGHTS_MIRROR_ENV = "MOVINET_WEIGHTS_URL"
# Their labels: the Kinetics-600 label map, packaged with us (labels.py).
KINETICS_600 = 600


@dataclass(frozen=True)
class ZooEntry:
    model_id: str
    resolution: int
    fps: float
    num_classes: int
    use_positional_encoding: bool
    # sha256 of the official tarball; None until pinned (the download then
    # records the hash it saw and verifies the cache against it afterwards).
    checkpoint_sha256: str | None = None

    @property
    def checkpoint_url(self) -> str:
        return CHECKPOINT_URL.format(id=self.model_id)

    def official_checkpoint(self) -> str:
        """The official tarball, or the same name under $MOVINET_WEIGHTS_URL (a mirror)."""
        base = os.environ.get(WEIGHTS_MIRROR_ENV)
        if base:
            return f"{base.rstrip('/')}/movinet_{self.model_id}_stream.tar.gz"
        return self.checkpoint_url


ZOO: dict[str, ZooEntry] = {
    "a0": ZooEntry("a0", 172, 5.0, KINETICS_600, False),
    "a1": ZooEntry("a1", 172, 5.0, KINETICS_600, False),
    "a2": ZooEntry("a2", 224, 5.0, KINETICS_600, False),
    "a3": ZooEntry("a3", 256, 12.0, KINETICS_600, True),
    "a4": ZooEntry("a4", 290, 8.0, KINETICS_600, True),
    "a5": ZooEntry("a5", 320, 12.0, KINETICS_600, True),
}

# Architecture settings every streaming TFLite export uses (see
# official/projects/movinet/tools/export_saved_model.py, "Export for TF Lite").
STREAM_ARCH = {
    "causal": True,
    "conv_type": "2plus1d",
    "se_type": "2plus3d",
    "activation": "hard_swish",
    "gating_activation": "hard_sigmoid",
    "classifier_activation": "hard_swish",
}


def lookup(model_id: str) -> ZooEntry:
    from .errors import ExportError

    key = model_id.lower().removesuffix("_stream")
    if key not in ZOO:
        raise ExportError(f"unknown model {model_id!r}; choose one of {', '.join(ZOO)}")
    return ZOO[key]
