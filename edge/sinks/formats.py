"""Predictions and events as text for people and as JSON records for programs.

One definition each, shared by the console, JSON lines, the service's event
records (:class:`~movinet_edge.service.monitor.EventStamper`) and the network
sinks, so every output spells a record the same way. No numpy or OpenCV here:
the values are read, never computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..results import Event, Prediction


def format_event(event: Event, origin: float = 0.0) -> str:
    """An event as one line for people; times relative to ``origin``."""
    if event.kind == "new":
        return f"* {event.label} started at {event.start - origin:.2f}s (score {event.score:.3f})"
    if event.kind == "update":
        return f"* {event.label} continues at {event.timestamp - origin:.2f}s (score {event.score:.3f})"
    if event.kind == "end":
        end = event.end if event.end is not None else event.timestamp
        return (
            f"* {event.label} ended at {end - origin:.2f}s after {end - event.start:.2f}s "
            f"(peak score {event.score:.3f})"
        )
    return f"* {event.kind} {event.label} at {event.timestamp - origin:.2f}s (score {event.score:.3f})"


def prediction_record(prediction: Prediction) -> dict[str, Any]:
    """The JSON form of a prediction (also what other sinks such as MQTT can publish)."""
    return {
        "type": "prediction",
        "timestamp": round(prediction.timestamp, 6),
        "frame_index": prediction.frame_index,
        "step": prediction.step,
        "top_k": [{"label": label, "score": round(score, 6)} for label, score in prediction.top_k],
        "latency_ms": round(prediction.latency_ms, 3),
    }


def event_record(event: Event) -> dict[str, Any]:
    """The JSON form of an event; ``extra`` keys are merged in (never over the fixed ones)."""
    record: dict[str, Any] = {
        "type": "event",
        "kind": event.kind,
        "label": event.label,
        "score": round(event.score, 6),
        "start": round(event.start, 6),
        "end": None if event.end is None else round(event.end, 6),
        "timestamp": round(event.timestamp, 6),
    }
    for key, value in event.extra.items():
        record.setdefault(key, value)
    return record
