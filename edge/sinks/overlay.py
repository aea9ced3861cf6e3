"""The latest top-k drawn on frames: shared by the annotated video and the display window.

OpenCV is imported where it draws, not at the top: the sink registry imports
every module of this package to list the kinds (for ``--help``), which must
not pay for OpenCV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from ..results import Prediction


class Overlay:
    """Draws the latest top-k on frames. Text is rebuilt per prediction, not per frame."""

    def __init__(self, top_k: int) -> None:
        self.top_k = top_k
        self.lines: list[str] = []

    def update(self, prediction: Prediction) -> None:
        self.lines = [f"{label}  {score:.2f}" for label, score in prediction.top_k[: self.top_k]]

    def draw(self, bgr: np.ndarray) -> None:
        import cv2

        h = bgr.shape[0]
        scale = max(0.35, h / 720.0)
        thickness = max(1, round(scale * 1.5))
        step = int(26 * scale) + 4
        y = step
        for line in self.lines:
            # A dark outline under light text stays readable on any background.
            cv2.putText(bgr, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.putText(bgr, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
            y += step
