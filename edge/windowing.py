"""Long-stream policies: keep predictions about the last N seconds, forever.

The pooling states are cumulative averages over everything seen since the
last reset, so after minutes a stream stops reacting to new actions, and the
sums grow without bound (which also breaks any quantized range). A plain
periodic reset would fix that but leave a blind spot: right after a reset
the model has seen one frame. Two policies avoid it:

``rescale`` (default, one invoke per frame): when the pools hold W frames,
shrink every running sum to W/2 frames' worth *keeping its mean* (sum *=
(W/2)/count, count = W/2). The output does not jump, new frames weigh
double from then on, and old frames fade geometrically: the pools always
summarise roughly the last W/2..W frames. The short stream buffers
(temporal convolutions) are untouched; they only ever hold a few frames.

``dual`` (two invokes per frame): two state sets run side by side, started
W/2 frames apart; each is reset when it reaches W frames, and the one with
more history is reported, so the reported one always has W/2..W frames. It
is exact windowing at twice the compute. The second state set is a
:meth:`~movinet_edge.model.StreamingClassifier.fork` of the classifier (same
interpreter, its own states), so each set steps in one turn of the shared
model, without snapshot copies.

W is ``window_seconds * fps`` frames. :meth:`WindowedClassifier.fork` makes
another stream's window on the same loaded model.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from .model import StreamingClassifier, softmax

DEFAULT_WINDOW_SECONDS = 10.0


class WindowPolicy(str, Enum):
    RESCALE = "rescale"
    DUAL = "dual"


class WindowedClassifier:
    """A :class:`StreamingClassifier` whose memory is bounded to about ``window_seconds``."""

    def __init__(
        self,
        classifier: StreamingClassifier,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        policy: WindowPolicy | str = WindowPolicy.RESCALE,
    ) -> None:
        self.classifier = classifier
        self.requested_policy = WindowPolicy(policy)
        self.policy = self.requested_policy
        self.fallback: str | None = None
        if self.policy is WindowPolicy.RESCALE and not classifier.has_pool_states:
            # Rescaling needs to find the pooling sums and frame counts by their official names;
            # dual windows only reset whole state sets, whatever they are called.
            self.policy = WindowPolicy.DUAL
            self.fallback = "the model's states are not named *_pool_buffer/*_pool_frame_count: dual windows instead"
        self.window_frames = max(4, int(round(window_seconds * classifier.fps)))
        self.window_seconds = self.window_frames / classifier.fps
        self.resets = 0  # state resets (dual) or rescales (rescale), for metrics
        self._ages = [0, 0]
        # Dual: the two state sets, the classifier itself and a fork of it.
        self._sets = [classifier, classifier.fork()] if self.policy is WindowPolicy.DUAL else [classifier]
        self.reset()

    def fork(self) -> WindowedClassifier:
        """The same window for another stream: the classifier forked (shared model, own states)."""
        return WindowedClassifier(self.classifier.fork(), self.window_seconds, self.requested_policy)

    # The classifier's identity, so a pipeline can use either.
    @property
    def labels(self) -> list[str]:
        return self.classifier.labels

    @property
    def fps(self) -> float:
        return self.classifier.fps

    @property
    def resolution(self) -> int:
        return self.classifier.resolution

    @property
    def num_classes(self) -> int:
        return self.classifier.num_classes

    @property
    def history_frames(self) -> int:
        """Frames the reported prediction summarises (its pools' frame count)."""
        if self.policy is WindowPolicy.RESCALE:
            return self.classifier.history_frames
        return max(self._ages)

    def reset(self) -> None:
        for state_set in self._sets:
            state_set.reset()
        self._ages = [0, 0]

    def prepare(self, frame_rgb: np.ndarray) -> np.ndarray:
        """The classifier's preprocessing (so a reader thread can do it ahead)."""
        return self.classifier.prepare(frame_rgb)

    def step(self, frame_rgb: np.ndarray) -> np.ndarray:
        return softmax(self.step_logits(frame_rgb))

    def step_logits(self, frame_rgb: np.ndarray) -> np.ndarray:
        square = self.classifier.prepare(frame_rgb)
        if self.policy is WindowPolicy.RESCALE:
            return self._step_rescale(square)
        return self._step_dual(square)

    def _step_rescale(self, square: np.ndarray) -> np.ndarray:
        logits = self.classifier.step_square(square)
        if self.classifier.history_frames >= self.window_frames:
            self.classifier.rescale_history(self.window_frames // 2)
            self.resets += 1
        return logits

    def _step_dual(self, square: np.ndarray) -> np.ndarray:
        half = self.window_frames // 2
        # The second set starts once the first is half a window old.
        active = [0] if self._ages[0] < half and self._ages[1] == 0 and self.resets == 0 else [0, 1]
        outputs: dict[int, np.ndarray] = {}
        for i in active:
            outputs[i] = self._sets[i].step_square(square)
            self._ages[i] += 1
        reported = max(active, key=lambda i: self._ages[i])
        logits = outputs[reported]
        for i in active:
            if self._ages[i] >= self.window_frames:
                self._sets[i].reset()
                self._ages[i] = 0
                self.resets += 1
        return logits
