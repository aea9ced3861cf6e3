"""The annotated video (complete or absent, never half-written; bad paths refused in one line
before any work) and the display's refusal on a headless OpenCV."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from movinet_edge.errors import EdgeError
from movinet_edge.frames import Frame
from movinet_edge.results import Prediction
from movinet_edge.sinks import DISPLAY_NEEDS_GUI, AnnotatedVideoSink, DisplaySink, opencv_has_gui
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


def test_a_path_the_system_refuses_is_one_line_before_any_frame(tmp_path: Path) -> None:
    """/proc and /sys refuse files even to root (whom os.access lets through): the constructor says so."""
    with pytest.raises(EdgeError) as info:
        AnnotatedVideoSink("/proc/x.mp4", fps=5.0)
    message = str(info.value)
    assert message.startswith("cannot write /proc/x.mp4:") and "\n" not in message
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        probe = readonly / "probe"
        try:
            probe.touch()
            writable = True  # root ignores the mode bits
            probe.unlink()
        except PermissionError:
            writable = False
        if not writable:
            with pytest.raises(EdgeError, match="cannot write .*out.mp4"):
                AnnotatedVideoSink(readonly / "out.mp4", fps=5.0)
    finally:
        readonly.chmod(0o700)
    with pytest.raises(EdgeError, match="name ending in .mp4"):
        AnnotatedVideoSink(tmp_path / "no-suffix", fps=5.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["readonly"]  # no probe or temporary file left


def test_save_to_proc_on_the_command_line_is_one_line(tmp_path: Path, float_model_dir: Path, clips: Path) -> None:
    """The CLI turns the constructor's EdgeError into one line and a non-zero exit, no traceback."""
    script = Path(sys.executable).with_name("movinet-edge")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "movinet_edge.cli"]
    result = subprocess.run(
        [*command, "--video", str(clips / "carving_ice.mp4"),
         "--model", str(float_model_dir), "--save", "/proc/x.mp4", "--max-steps", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "/proc/x.mp4" in line]
    assert len(errors) == 1 and "cannot write /proc/x.mp4" in errors[0]
