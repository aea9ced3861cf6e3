"""Several streams in one process on one loaded model: real clips, real file sources, real threads."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from movinet_edge.errors import EdgeError
from movinet_edge.fair_lock import FairLock
from movinet_edge.frames import Frame
from movinet_edge.model import StreamingClassifier
from movinet_edge.pipeline import PipelineOptions, run_pipeline
from movinet_edge.results import BaseSink, Prediction
from movinet_edge.sources import ReconnectPolicy, VideoFileSource
from movinet_edge.streams import StreamRunner, StreamSpec, run_streams
from movinet_edge.windowing import WindowedClassifier

CLIPS = ("carving_ice.mp4", "rope_pushdown.mp4", "flipping_pancake.mkv", "carving_ice.mp4")


class Recorder(BaseSink):
    """Keeps every prediction's raw and smoothed probabilities; counts closes."""

    def __init__(self) -> None:
        self.raw: list[np.ndarray] = []
        self.smoothed: list[np.ndarray] = []
        self.timestamps: list[float] = []
        self.closed = 0
        self.aborted = 0

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        assert prediction.raw_probabilities is not None
        self.raw.append(prediction.raw_probabilities.copy())
        self.smoothed.append(prediction.probabilities.copy())
        self.timestamps.append(prediction.timestamp)

    def close(self) -> None:
        self.closed += 1

    def abort(self) -> None:
        self.aborted += 1


# --- the lock the streams take turns on -----------------------------------------------------------


def _turns(lock, threads: int = 4, rounds: int = 100) -> list[int]:
    """How many turns each thread had when the first finished its ``rounds``, every thread
    taking the lock back as soon as it let it go (as a stream stepping back to back does)."""
    counts = [0] * threads
    done = threading.Event()
    snapshot: list[int] = []
    start = threading.Barrier(threads)

    def work(i: int) -> None:
        start.wait()
        for _ in range(rounds):
            with lock:
                if done.is_set():
                    return
                counts[i] += 1
                time.sleep(0.001)  # an invoke's worth of holding it, in miniature
        if not done.is_set():
            done.set()
            snapshot.extend(counts)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    return snapshot


def test_the_fair_lock_gives_every_waiting_thread_its_turn() -> None:
    turns = _turns(FairLock())
    # First come, first served: while all four want it, each gets one turn in four (a plain
    # threading.Lock here measured [0, 0, 0, 100]: the releasing thread takes it straight back).
    assert max(turns) == 100 and min(turns) >= 95, turns


def test_the_fair_lock_refuses_a_release_it_does_not_hold() -> None:
    lock = FairLock()
    with pytest.raises(RuntimeError, match="unlocked"):
        lock.release()
    with lock:
        assert lock.locked()
    assert not lock.locked() and lock.waiting == 0


# --- several pipelines, one model --------------------------------------------------------------------


def _single(model_dir: Path, clip: Path, wrap=None) -> Recorder:
    clf = StreamingClassifier.open(model_dir, num_threads=1)
    recorder = Recorder()
    with VideoFileSource(clip) as source:
        run_pipeline(source, wrap(clf) if wrap else clf, [recorder], PipelineOptions())
    return recorder


@pytest.mark.parametrize("count, windowed", [(2, False), (4, True)])
def test_streams_on_one_model_give_what_each_gives_alone(
    count: int, windowed: bool, golden_model_dir: Path, clips: Path
) -> None:
    """2 (plain) and 4 (dual windows, 8 state sets on one interpreter) real clips through the runner,
    each in its own thread and pipeline: every step's output is bit-identical to the same clip
    through a model loaded for it alone."""

    def wrap(clf: StreamingClassifier):
        return WindowedClassifier(clf, 2.0, "dual") if windowed else clf

    paths = [clips / name for name in CLIPS[:count]]
    alone = [_single(golden_model_dir, path, wrap if windowed else None) for path in paths]
    first = wrap(StreamingClassifier.open(golden_model_dir, num_threads=1))
    recorders = [Recorder() for _ in paths]
    streams = [
        StreamSpec(f"cam{i}", VideoFileSource(path), first if i == 0 else first.fork(), [recorders[i]])
        for i, path in enumerate(paths)
    ]
    runner = StreamRunner(streams)
    results = runner.run()
    for result, recorder, expected in zip(results, recorders, alone):
        assert result.error is None and result.failures == 0 and result.stats.ended_by == "end"
        assert result.stats.steps == len(expected.raw) == len(recorder.raw) > 20
        np.testing.assert_array_equal(np.stack(recorder.raw), np.stack(expected.raw))
        np.testing.assert_array_equal(np.stack(recorder.smoothed), np.stack(expected.smoothed))
        assert recorder.closed == 1 and recorder.aborted == 0
    stats = runner.stats()
    assert [s.name for s in stats] == [f"cam{i}" for i in range(count)]
    assert [s.steps for s in stats] == [r.stats.steps for r in results]
    assert all(s.state == "ended" and s.frames >= s.steps and s.latency_p95_ms >= s.latency_p50_ms > 0 for s in stats)


def test_a_failing_stream_is_reopened_with_backoff_while_the_others_go_on(golden_model_dir: Path, clips: Path,
                                                                          tmp_path: Path) -> None:  # fmt: skip
    """Three cameras (files played in real time). One's file vanishes: at the end of its first
    pass its source cannot reopen it (a real EdgeError). That stream is retried on its own, with
    backoff, while the other two keep stepping; when the file is back it runs again. A stop
    event then ends them all, and each stream's sinks are closed once."""
    flaky = tmp_path / "flaky.mp4"
    shutil.copy(clips / "carving_ice.mp4", flaky)

    def reopen() -> VideoFileSource:
        return VideoFileSource(flaky, realtime=True, loop=True)

    model = StreamingClassifier.open(golden_model_dir, num_threads=1)
    recorders = [Recorder() for _ in range(3)]
    streams = [
        StreamSpec("flaky", reopen(), model, [recorders[0]], reopen=reopen),
        StreamSpec("rope", VideoFileSource(clips / "rope_pushdown.mp4", realtime=True, loop=True), model.fork(),
                   [recorders[1]]),
        StreamSpec("pancake", VideoFileSource(clips / "flipping_pancake.mkv", realtime=True, loop=True),
                   model.fork(), [recorders[2]]),
    ]  # fmt: skip
    flaky.unlink()  # the first pass plays from the open file; the next one must reopen it
    failures: list[tuple[str, int]] = []
    stop = threading.Event()
    runner = StreamRunner(streams, stop, ReconnectPolicy(initial_delay=0.2, max_delay=0.4),
                          on_failure=lambda name, reason, attempt, delay: failures.append((name, attempt)))
    runner.start()
    try:
        by_name = _wait_for(runner, lambda s: s["flaky"].state == "retrying" and s["flaky"].failures >= 2, 30)
        healthy_before = by_name["rope"].steps, by_name["pancake"].steps
        time.sleep(1.5)
        during = {s.name: s for s in runner.stats()}
        assert during["flaky"].state == "retrying" and during["flaky"].restarts == 0
        assert "does not exist" in (during["flaky"].last_error or "")
        # About 1.5 s at 5 fps each while the flaky one is down: they never waited for it.
        assert during["rope"].steps - healthy_before[0] >= 4 and during["pancake"].steps - healthy_before[1] >= 4
        assert during["rope"].state == during["pancake"].state == "running"

        shutil.copy(clips / "carving_ice.mp4", flaky)  # the camera comes back
        flaky_steps = during["flaky"].steps
        _wait_for(runner, lambda s: s["flaky"].restarts == 1 and s["flaky"].steps >= flaky_steps + 5, 30)
    finally:
        stop.set()
        assert runner.wait(30), "the stop event must end every stream"
    results = {r.name: r for r in runner.results()}
    final = {s.name: s for s in runner.stats()}
    assert final["flaky"].state == final["rope"].state == final["pancake"].state == "stopped"
    assert results["flaky"].error is None and results["flaky"].failures >= 2
    assert [r.ended_by for r in results["flaky"].runs] == ["error", "stop"]
    assert failures[0] == ("flaky", 1) and [a for n, a in failures] == list(range(1, len(failures) + 1))
    assert all(name == "flaky" for name, _ in failures)
    assert results["rope"].failures == results["pancake"].failures == 0
    assert [r.closed for r in recorders] == [1, 1, 1] and [r.aborted for r in recorders] == [0, 0, 0]
    # The restarted stream starts from a fresh state on its new source: its clock begins again.
    assert min(np.diff(recorders[0].timestamps)) < 0


def _wait_for(runner: StreamRunner, condition, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stats = {s.name: s for s in runner.stats()}
        if condition(stats):
            return stats
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)


def test_a_stream_that_cannot_be_reopened_ends_with_its_error_after_the_others(
    golden_model_dir: Path, clips: Path, tmp_path: Path
) -> None:
    """Without ``reopen`` a failure ends that stream (its file sinks aborted); the others run to their
    end, and run_streams then raises the failure, as one stream's run would."""
    gone = tmp_path / "gone.mp4"
    shutil.copy(clips / "carving_ice.mp4", gone)
    model = StreamingClassifier.open(golden_model_dir, num_threads=1)
    broken, healthy = Recorder(), Recorder()
    streams = [
        StreamSpec("gone", VideoFileSource(gone, loop=True), model, [broken]),
        StreamSpec("rope", VideoFileSource(clips / "rope_pushdown.mp4"), model.fork(), [healthy]),
    ]
    gone.unlink()
    with pytest.raises(EdgeError, match=r"video .*gone\.mp4"):
        run_streams(streams)
    assert len(healthy.raw) == 50 and healthy.closed == 1  # rope_pushdown: 50 frames at 5 fps, all fed
    assert len(broken.raw) == 22 and broken.aborted == 1 and broken.closed == 0  # one pass, then the failure


def test_stream_names_must_differ(golden_model_dir: Path, clips: Path) -> None:
    model = StreamingClassifier.open(golden_model_dir, num_threads=1)
    with VideoFileSource(clips / "rope_pushdown.mp4") as a, VideoFileSource(clips / "rope_pushdown.mp4") as b:
        with pytest.raises(EdgeError, match="stream names must differ"):
            StreamRunner([StreamSpec("cam", a, model), StreamSpec("cam", b, model.fork())])


def test_a_stream_is_given_up_after_max_attempts_reopens(golden_model_dir: Path, clips: Path, tmp_path: Path) -> None:
    """A camera that never comes back: ``max_attempts`` failed reopens (with their backoff, each
    reported), then the stream ends with the last reason; the other stream was never held up."""
    gone = tmp_path / "gone.mp4"
    shutil.copy(clips / "carving_ice.mp4", gone)
    model = StreamingClassifier.open(golden_model_dir, num_threads=1)
    healthy = Recorder()
    streams = [
        StreamSpec("gone", VideoFileSource(gone, loop=True), model, reopen=lambda: VideoFileSource(gone)),
        StreamSpec("rope", VideoFileSource(clips / "rope_pushdown.mp4"), model.fork(), [healthy]),
    ]
    gone.unlink()
    reported: list[tuple[str, int, float]] = []
    runner = StreamRunner(streams, retry=ReconnectPolicy(initial_delay=0.05, factor=2.0, max_attempts=3),
                          on_failure=lambda name, reason, attempt, delay: reported.append((name, attempt, delay)))
    results = {r.name: r for r in runner.run()}
    assert [(n, a) for n, a, _ in reported] == [("gone", 1), ("gone", 2), ("gone", 3)]
    assert [d for _, _, d in reported] == pytest.approx([0.05, 0.1, 0.2])
    gone_result = results["gone"]
    assert isinstance(gone_result.error, EdgeError) and "does not exist" in str(gone_result.error)
    assert gone_result.failures == 4  # the first pass's end, then three reopens that failed
    assert {s.name: s.state for s in runner.stats()} == {"gone": "failed", "rope": "ended"}
    assert results["rope"].error is None and len(healthy.raw) == 50
