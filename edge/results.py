"""What the pipeline reports: predictions per model step and action events.

Sinks (console, JSON lines, annotated video, MQTT, metrics) consume these
plain values; they never reach back into the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: listing the sink kinds for --help needs no numpy
    import numpy as np

    from .frames import Frame


@dataclass(frozen=True, slots=True)
class Prediction:
    """The model's output for one step (one frame at the model's fps)."""

    timestamp: float  # source timestamp of the frame that was fed, seconds
    frame_index: int  # index of that frame in the source
    step: int  # how many frames the model has consumed since start
    probabilities: np.ndarray  # smoothed class probabilities, float32 [num_classes]
    top_k: list[tuple[str, float]]  # (label, score), best first, from `probabilities`
    latency_ms: float  # time spent in preprocessing + model for this step
    raw_probabilities: np.ndarray | None = None  # before smoothing


@dataclass(frozen=True, slots=True)
class Event:
    """An action starts (``new``), continues (``update``) or stops (``end``)."""

    kind: str  # "new" | "update" | "end"
    label: str
    score: float
    start: float  # timestamp of the step where the action started, seconds
    end: float | None = None  # set on "end"
    timestamp: float = 0.0  # timestamp of the step that produced this event
    extra: dict[str, object] = field(default_factory=dict)


class Sink(Protocol):
    """Anything that consumes the pipeline's output. All methods are optional-by-default in
    implementations via :class:`BaseSink`."""

    def on_frame(self, frame: Frame) -> None: ...

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None: ...

    def on_event(self, event: Event) -> None: ...

    def close(self) -> None: ...


class BaseSink:
    """A sink that ignores everything; subclasses override what they need.

    ``every_frame``: the sink reads the pixels of every frame in ``on_frame``
    (it draws or writes them), not only of the frames the model gets; a file
    source read ahead then decodes them all.
    """

    every_frame = False

    def on_frame(self, frame: Frame) -> None:
        pass

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        pass

    def on_event(self, event: Event) -> None:
        pass

    def close(self) -> None:
        pass
