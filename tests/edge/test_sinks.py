"""Sinks: console lines, JSON lines, an annotated video written atomically, and the
display's refusal on a headless OpenCV."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
from movinet_edge.errors import EdgeError
from movinet_edge.frames import Frame
from movinet_edge.results import Event, Prediction
from movinet_edge.sinks import (
    DISPLAY_NEEDS_GUI,
    AnnotatedVideoSink,
    ConsoleSink,
    DisplaySink,
    JsonLinesSink,
    opencv_has_gui,
)
from movinet_edge.sources import VideoFileSource


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


def write_clip(sink: AnnotatedVideoSink, path: Path, predict_every: int = 6) -> int:
    n = 0
    with VideoFileSource(path) as source:
        for frame in source:
            sink.on_frame(frame)
            if frame.index % predict_every == 0:
                sink.on_prediction(prediction(step=frame.index // predict_every, timestamp=frame.timestamp), frame)
            n += 1
    return n


def test_annotated_video_is_complete_and_annotated(tmp_path: Path, clips: Path) -> None:
    out = tmp_path / "annotated.mp4"
    sink = AnnotatedVideoSink(out, fps=30.0)
    n = write_clip(sink, clips / "carving_ice.mp4")
    # Nothing at the final name until close(); the partial file is hidden beside it.
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".annotated.")]
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4"]
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # readable by others, like a normal file

    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    written = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        written.append(bgr)
    cap.release()
    assert len(written) == n == 131
    assert written[0].shape == (172, 172, 3)

    # The labels are drawn in the top-left corner: against the same frames written
    # without predictions, that is where the pictures differ.
    plain = tmp_path / "plain.mp4"
    plain_sink = AnnotatedVideoSink(plain, fps=30.0)
    with VideoFileSource(clips / "carving_ice.mp4") as source:
        for frame in source:
            plain_sink.on_frame(frame)
    plain_sink.close()
    cap = cv2.VideoCapture(str(plain))
    for _ in range(10):
        ok, bare = cap.read()
    cap.release()
    diff = np.abs(written[9].astype(int) - bare.astype(int)).mean(axis=2)
    assert diff[:40, :100].mean() > 5.0
    assert diff[100:, :].mean() < 1.0


def test_abort_leaves_no_file_and_keeps_an_existing_one(tmp_path: Path, clips: Path) -> None:
    out = tmp_path / "annotated.mp4"
    out.write_bytes(b"an older video")
    sink = AnnotatedVideoSink(out, fps=5.0)
    with VideoFileSource(clips / "rope_pushdown.mp4") as source:
        for frame, _ in zip(source, range(10)):
            sink.on_frame(frame)
    sink.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4"]
    assert out.read_bytes() == b"an older video"


def test_a_sink_without_frames_writes_nothing(tmp_path: Path) -> None:
    sink = AnnotatedVideoSink(tmp_path / "none.mp4", fps=5.0)
    sink.close()
    assert list(tmp_path.iterdir()) == []


def test_frames_of_another_size_are_scaled_to_the_first(tmp_path: Path) -> None:
    out = tmp_path / "mixed.mp4"
    sink = AnnotatedVideoSink(out, fps=5.0)
    sink.on_frame(Frame(np.full((120, 160, 3), 200, np.uint8), 0.0, 0))
    sink.on_frame(Frame(np.full((240, 320, 3), 50, np.uint8), 0.2, 1))
    sink.close()
    cap = cv2.VideoCapture(str(out))
    sizes = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        sizes.append(bgr.shape)
    assert sizes == [(120, 160, 3), (120, 160, 3)]


def test_unwritable_destinations(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match="directory .* does not exist"):
        AnnotatedVideoSink(tmp_path / "missing" / "out.mp4", fps=5.0)
    with pytest.raises(EdgeError, match="it is a directory"):
        AnnotatedVideoSink(tmp_path, fps=5.0)


def test_display_on_a_headless_opencv() -> None:
    if opencv_has_gui():
        pytest.skip("this OpenCV has a GUI")
    with pytest.raises(EdgeError) as info:
        DisplaySink()
    assert str(info.value) == DISPLAY_NEEDS_GUI
    assert "pip install opencv-python instead of opencv-python-headless" in str(info.value)
