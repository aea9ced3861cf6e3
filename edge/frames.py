"""What a source hands to the rest of the pipeline: one decoded frame and when it was seen."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One RGB frame.

    ``timestamp`` is in seconds on the source's own clock: the presentation
    time for a file, the capture time (monotonic) for a live source. The
    sampler decides from it, not from ``index``, which frames reach the model,
    so a 30 fps camera, a 5 fps file and a jittery stream give the same rate.
    """

    image: np.ndarray  # H x W x 3, uint8, RGB
    timestamp: float
    index: int  # position in the source, counting every decoded frame
