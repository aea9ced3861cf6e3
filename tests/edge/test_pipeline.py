"""The device loop with a real exported model and the real clips."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from movinet_edge.errors import EdgeError
from movinet_edge.frames import Frame
from movinet_edge.model import StreamingClassifier
from movinet_edge.pipeline import (
    PipelineOptions,
    classify_clip,
    run_pipeline,
    write_probabilities,
)
from movinet_edge.postprocess import EventOptions, SmoothingOptions
from movinet_edge.results import BaseSink, Event, Prediction
from movinet_edge.sinks import AnnotatedVideoSink
from movinet_edge.sources import VideoFileSource


@pytest.fixture(scope="module")
def classifier(golden_model_dir: Path) -> StreamingClassifier:
    return StreamingClassifier.open(golden_model_dir)


class Recorder(BaseSink):
    """Keeps what the pipeline hands to sinks."""

    def __init__(self) -> None:
        self.frames: list[int] = []
        self.predictions: list[Prediction] = []
        self.events: list[Event] = []
        self.closed = 0

    def on_frame(self, frame: Frame) -> None:
        self.frames.append(frame.index)

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        assert frame.index == prediction.frame_index
        self.predictions.append(prediction)

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed += 1


def test_a_30_fps_clip_feeds_the_model_at_5_fps(classifier: StreamingClassifier, clips: Path) -> None:
    sink = Recorder()
    with VideoFileSource(clips / "carving_ice.mp4") as source:
        stats = run_pipeline(source, classifier, [sink], PipelineOptions(top_k=3))
    assert sink.frames == list(range(131))
    assert stats.frames_read == 131
    assert stats.steps == stats.frames_fed == len(sink.predictions) == 22
    assert stats.frames_skipped == 131 - 22
    assert [p.step for p in sink.predictions] == list(range(1, 23))
    # Every 6th frame of a 30 fps clip (the file says 29.6 fps; its timestamps are 1/30 s apart).
    assert [p.frame_index for p in sink.predictions] == list(range(0, 131, 6))
    for p in sink.predictions:
        assert p.probabilities.shape == (classifier.num_classes,)
        assert p.probabilities.sum() == pytest.approx(1.0, abs=1e-4)
        assert len(p.top_k) == 3
        assert [s for _, s in p.top_k] == sorted((s for _, s in p.top_k), reverse=True)
        assert p.top_k[0][0] == classifier.labels[int(p.probabilities.argmax())]
        assert p.latency_ms > 0
        assert p.raw_probabilities is not None
    assert sink.closed == 1
    assert stats.ended_by == "end"
    assert stats.mean_latency_ms > 0 and stats.median_latency_ms > 0 and stats.model_fps > 0


def test_smoothing_is_applied_to_the_raw_output(classifier: StreamingClassifier, clips: Path) -> None:
    sink = Recorder()
    options = PipelineOptions(smoothing=SmoothingOptions(method="ema", alpha=0.25))
    with VideoFileSource(clips / "rope_pushdown.mp4") as source:
        run_pipeline(source, classifier, [sink], options)
    raw = [p.raw_probabilities for p in sink.predictions]
    expected = raw[0].copy()
    for r, p in zip(raw[1:], sink.predictions[1:]):
        expected = 0.75 * expected + 0.25 * r
        np.testing.assert_allclose(p.probabilities, expected, rtol=1e-4, atol=1e-6)


def test_max_steps_and_stop(classifier: StreamingClassifier, clips: Path) -> None:
    sink = Recorder()
    with VideoFileSource(clips / "rope_pushdown.mp4") as source:
        stats = run_pipeline(source, classifier, [sink], PipelineOptions(max_steps=4))
    assert stats.steps == 4 and stats.ended_by == "max_steps"
    assert sink.closed == 1

    stop = threading.Event()

    class StopAfterThree(Recorder):
        def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
            super().on_prediction(prediction, frame)
            if len(self.predictions) == 3:
                stop.set()

    stopper = StopAfterThree()
    with VideoFileSource(clips / "rope_pushdown.mp4") as source:
        stats = run_pipeline(source, classifier, [stopper], stop=stop)
    assert stats.steps == 3 and stats.ended_by == "stop"
    assert stopper.closed == 1


def test_events_are_flushed_at_the_end_of_the_stream(classifier: StreamingClassifier, clips: Path) -> None:
    # Thresholds of 0 make the first label an action from its first step, whatever
    # the (untrained) model says; it never drops below 0, so only the flush ends it.
    label = classifier.labels[0]
    sink = Recorder()
    options = PipelineOptions(
        events=EventOptions(
            start_threshold=0.0, end_threshold=0.0, min_steps=2, update_every=0, update_delta=0, allow=[label]
        )
    )
    with VideoFileSource(clips / "rope_pushdown.mp4") as source:
        stats = run_pipeline(source, classifier, [sink], options)
    assert [(e.kind, e.label) for e in sink.events] == [("new", label), ("end", label)]
    new, end = sink.events
    assert new.start == pytest.approx(0.0) and new.timestamp == pytest.approx(0.2)
    assert end.end == pytest.approx(9.8)  # the last frame of the clip
    assert stats.events == 2


def test_a_failing_run_leaves_no_half_written_video(
    classifier: StreamingClassifier, tmp_path: Path, clips: Path
) -> None:
    class Broken(BaseSink):
        def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
            if prediction.step == 3:
                raise EdgeError("the broker went away")

    out = tmp_path / "annotated.mp4"
    with VideoFileSource(clips / "rope_pushdown.mp4") as source:
        with pytest.raises(EdgeError, match="broker"):
            run_pipeline(source, classifier, [AnnotatedVideoSink(out, fps=5.0), Broken()])
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_run_keeps_what_it_wrote(classifier: StreamingClassifier, tmp_path: Path, clips: Path) -> None:
    class CtrlC(BaseSink):
        def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
            if prediction.step == 3:
                raise KeyboardInterrupt

    out = tmp_path / "annotated.mp4"
    recorder = Recorder()
    with VideoFileSource(clips / "rope_pushdown.mp4") as source:
        with pytest.raises(KeyboardInterrupt):
            run_pipeline(source, classifier, [AnnotatedVideoSink(out, fps=5.0), CtrlC(), recorder])
    assert [p.name for p in tmp_path.iterdir()] == ["annotated.mp4"]
    assert recorder.closed == 1


def test_classify_clip(classifier: StreamingClassifier, clips: Path) -> None:
    result = classify_clip(clips / "carving_ice.mp4", classifier, top_k=5)
    assert result.steps == 22 and result.frames_read == 131
    assert result.probabilities.shape == (22, classifier.num_classes)
    np.testing.assert_array_equal(result.final, result.probabilities[-1])
    assert [label for label, _ in result.top_k] == [classifier.labels[i] for i in np.argsort(-result.final)[:5]]
    assert list(result.frame_indices) == list(range(0, 131, 6))
    # From a fresh state every time: the same clip gives the same answer.
    again = classify_clip(clips / "carving_ice.mp4", classifier, top_k=5, keep_probabilities=False)
    np.testing.assert_allclose(again.final, result.final, rtol=1e-5, atol=1e-7)
    assert again.probabilities.shape == (0, classifier.num_classes)


def test_classify_clip_every_frame_and_progress(classifier: StreamingClassifier, clips: Path) -> None:
    seen: list[int] = []
    with VideoFileSource(clips / "carving_ice.mp4") as source:
        result = classify_clip(source, classifier, fps=0, on_frame=lambda f: seen.append(f.index))
    assert result.steps == 131 and seen == list(range(131))


def test_write_probabilities(classifier: StreamingClassifier, tmp_path: Path, clips: Path) -> None:
    result = classify_clip(clips / "rope_pushdown.mp4", classifier)
    write_probabilities(result, tmp_path / "p.csv")
    write_probabilities(result, tmp_path / "p.json")
    rows = list(csv.reader((tmp_path / "p.csv").read_text().splitlines()))
    assert rows[0] == ["step", "timestamp", *classifier.labels]
    assert len(rows) == 51
    assert float(rows[2][1]) == pytest.approx(0.2)
    np.testing.assert_allclose([float(x) for x in rows[-1][2:]], result.final, rtol=1e-4, atol=1e-6)
    records = json.loads((tmp_path / "p.json").read_text())
    assert len(records) == 50 and records[0]["step"] == 1
    assert records[-1]["probabilities"][classifier.labels[0]] == pytest.approx(float(result.final[0]), abs=1e-6)
    with pytest.raises(EdgeError, match="use a .csv or .json"):
        write_probabilities(result, tmp_path / "p.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "p.json"]
