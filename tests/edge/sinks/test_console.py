"""The console sink: lines for people, JSON lines for programs, and the journal's event lines."""

from __future__ import annotations

import io
import json

import numpy as np
from movinet_edge.frames import Frame
from movinet_edge.results import Event, Prediction
from movinet_edge.sinks import ConsoleSink, EventLinesSink, JsonLinesSink
from movinet_edge.sinks.console import ConsoleOptions, open_console
from movinet_edge.sinks.registry import SinkContext


def prediction(step: int = 3, timestamp: float = 0.6) -> Prediction:
    probs = np.array([0.7, 0.2, 0.1], dtype=np.float32)
    return Prediction(
        timestamp=timestamp,
        frame_index=18,
        step=step,
        probabilities=probs,
        top_k=[("carving ice", 0.7), ("ice skating", 0.2)],
        latency_ms=12.3456,
    )


FRAME = Frame(np.zeros((8, 8, 3), np.uint8), 0.6, 18)


def test_console_lines() -> None:
    out = io.StringIO()
    sink = ConsoleSink(out)
    # A live source's timestamps are a monotonic clock: shown as time since the first frame.
    sink.on_frame(Frame(FRAME.image, 100.0, 0))
    sink.on_prediction(prediction(timestamp=100.6), FRAME)
    sink.on_event(Event(kind="new", label="carving ice", score=0.7, start=100.4, timestamp=100.6))
    sink.on_event(Event(kind="end", label="carving ice", score=0.9, start=100.4, end=102.4, timestamp=102.4))
    sink.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "    0.60s  step     3  carving ice 0.700 | ice skating 0.200  (12.3 ms)",
        "* carving ice started at 0.40s (score 0.700)",
        "* carving ice ended at 2.40s after 2.00s (peak score 0.900)",
    ]


def test_json_lines() -> None:
    out = io.StringIO()
    sink = JsonLinesSink(out)
    sink.on_prediction(prediction(), FRAME)
    sink.on_event(
        Event(
            kind="end",
            label="carving ice",
            score=0.9,
            start=0.4,
            end=2.4,
            timestamp=2.4,
            extra={"duration": 2.0, "kind": "not this one"},
        )
    )
    sink.close()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first == {
        "type": "prediction",
        "timestamp": 0.6,
        "frame_index": 18,
        "step": 3,
        "top_k": [{"label": "carving ice", "score": 0.7}, {"label": "ice skating", "score": 0.2}],
        "latency_ms": 12.346,
    }
    assert second == {
        "type": "event",
        "kind": "end",
        "label": "carving ice",
        "score": 0.9,
        "start": 0.4,
        "end": 2.4,
        "timestamp": 2.4,
        "duration": 2.0,
    }


def test_the_console_modes_of_the_service() -> None:
    """[output] console: events (the journal's lines, on the source's clock), predictions, json."""
    made = {}
    for mode in ("events", "predictions", "json"):
        out = io.StringIO()
        sink = open_console(ConsoleOptions(console=mode), SinkContext(stdout=out))
        sink.on_frame(Frame(FRAME.image, 100.0, 0))
        sink.on_prediction(prediction(timestamp=100.6), FRAME)
        sink.on_event(Event(kind="new", label="carving ice", score=0.7, start=100.4, timestamp=100.6))
        sink.close()
        made[mode] = (type(sink), out.getvalue().splitlines())
    assert made["events"] == (EventLinesSink, ["* carving ice started at 100.40s (score 0.700)"])
    assert made["predictions"][0] is ConsoleSink and len(made["predictions"][1]) == 2
    assert made["json"][0] is JsonLinesSink
    assert [json.loads(line)["type"] for line in made["json"][1]] == ["prediction", "event"]
