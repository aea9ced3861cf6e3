"""The real `movinet-edge` command in a subprocess: every user error is one line on
stderr and a non-zero exit, never a traceback; with a model, live mode and
`classify` produce their outputs."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

NO_MODEL = "error: no model found; make one with: movinet-export --model a0 --quantize   (or pass --model DIR)"


def command() -> list[str]:
    script = Path(sys.executable).with_name("movinet-edge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "movinet_edge.cli"]


def env_without_model(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MOVINET_EDGE_MODEL"}
    env.update(extra)
    return env


def run(
    *args: object, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*command(), *map(str, args)],
        cwd=cwd,
        env=env if env is not None else env_without_model(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert re.search(expected, lines[0]), lines[0]
    assert result.stdout == ""


# --- errors, no model needed ------------------------------------------------------------


def test_no_source(tmp_path: Path) -> None:
    assert_one_line_error(
        run(cwd=tmp_path), r"give a source: --video, --url, --camera, --image-folder \(each may be repeated\)$"
    )


def test_two_sources_at_once(tmp_path: Path, clips: Path) -> None:
    """Several sources are several cameras: each is opened, so the one that is not there is the error."""
    result = run("--camera", "57", "--video", clips / "carving_ice.mp4", cwd=tmp_path)
    assert_one_line_error(result, r"camera 57 did not open")
    assert result.returncode == 2


def test_nonexistent_video(tmp_path: Path) -> None:
    assert_one_line_error(run("--video", "missing.mp4", cwd=tmp_path), "^error: video missing.mp4 does not exist$")
    assert_one_line_error(run("classify", "missing.mp4", cwd=tmp_path), "video missing.mp4 does not exist")


def test_zero_length_videos(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert_one_line_error(run("--video", empty, cwd=tmp_path), r"empty\.mp4 has no frames")
    assert_one_line_error(run("classify", empty, cwd=tmp_path), r"empty\.mp4 has no frames")
    no_frames = tmp_path / "zero.avi"
    cv2.VideoWriter(str(no_frames), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 64)).release()
    assert_one_line_error(run("classify", no_frames, cwd=tmp_path), r"zero\.avi has no frames")


def test_unreadable_video(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01not a video" * 1000)
    assert_one_line_error(run("classify", garbage, cwd=tmp_path), "cannot read video .*garbage.mp4")


def test_camera_that_does_not_open(tmp_path: Path) -> None:
    result = run("--camera", "57", cwd=tmp_path)
    assert_one_line_error(
        result, "^error: camera 57 did not open: check /dev/video57 and that the user is in the 'video' group$"
    )


def test_pi_camera_without_picamera2(tmp_path: Path) -> None:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("picamera2 is installed here")
    assert_one_line_error(run("--camera", "picam", cwd=tmp_path), "picamera2 is not installed; on Raspberry Pi OS")


def test_stream_that_does_not_open(tmp_path: Path) -> None:
    result = run("--url", "http://127.0.0.1:9/none.mjpg", cwd=tmp_path)
    assert_one_line_error(result, "cannot open stream http://127.0.0.1:9/none.mjpg")


def test_no_model_anywhere(tmp_path: Path, clips: Path) -> None:
    result = run("--video", clips / "carving_ice.mp4", cwd=tmp_path)
    assert_one_line_error(result, "^" + re.escape(NO_MODEL) + "$")
    result = run("classify", clips / "carving_ice.mp4", cwd=tmp_path)
    assert_one_line_error(result, "^" + re.escape(NO_MODEL) + "$")


def test_missing_model_dir(tmp_path: Path, clips: Path) -> None:
    result = run("--video", clips / "carving_ice.mp4", "--model", tmp_path / "no_such_model", cwd=tmp_path)
    assert_one_line_error(result, "no_such_model does not exist; make one with: movinet-export")
    result = run(
        "classify",
        clips / "carving_ice.mp4",
        cwd=tmp_path,
        env=env_without_model(MOVINET_EDGE_MODEL=str(tmp_path / "from_env")),
    )
    assert_one_line_error(result, "from_env does not exist")


def test_display_without_a_gui(tmp_path: Path, clips: Path) -> None:
    from movinet_edge.sinks import opencv_has_gui

    if opencv_has_gui():
        pytest.skip("this OpenCV has a GUI")
    result = run("--display", "--video", clips / "carving_ice.mp4", cwd=tmp_path)
    assert_one_line_error(
        result,
        r"^error: --display needs an OpenCV build with a GUI \(pip install opencv-python instead of "
        r"opencv-python-headless\)$",
    )


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--window-seconds", "8", "--no-window"], "contradict"),
        (["--window-seconds", "0"], "must be positive"),
        (["--alpha", "2"], "alpha must be in"),
        (["--start-threshold", "0.2", "--end-threshold", "0.4"], "thresholds must satisfy"),
        (["--realtime", "--camera", "0"], "--realtime: applies to video sources only"),
        (["--camera", "front"], "--camera: give a V4L2 index"),
    ],
)
def test_bad_option_values(tmp_path: Path, args: list[str], expected: str, clips: Path) -> None:
    if "--camera" not in args:
        args = [*args, "--video", str(clips / "carving_ice.mp4")]
    assert_one_line_error(run(*args, cwd=tmp_path), expected)


def test_bad_probabilities_destination(tmp_path: Path, clips: Path) -> None:
    result = run("classify", clips / "carving_ice.mp4", "--probabilities", tmp_path / "out.txt", cwd=tmp_path)
    assert_one_line_error(result, "use a .csv or .json file name")
    result = run("classify", clips / "carving_ice.mp4", "--probabilities", tmp_path / "no" / "out.csv", cwd=tmp_path)
    assert_one_line_error(result, "directory .* does not exist")


def test_version_and_help(tmp_path: Path) -> None:
    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("movinet-edge ")
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for word in ("--camera", "--url", "--video", "--window-seconds", "classify"):
        assert word in result.stdout


# --- with a model ---------------------------------------------------------------------------

# The MoViNet tutorial's table: f"{label:20s}: {score:.3f}" (longer labels push the score right).
TABLE_LINE = re.compile(r"^(?P<label>.{20,}): (?P<score>[01]\.\d{3})$")


def test_classify_prints_the_top_5_table(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    result = run("classify", clips / "carving_ice.mp4", "--model", golden_model_dir, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    matches = [TABLE_LINE.match(line) for line in lines]
    assert all(matches), lines
    labels = (golden_model_dir / "labels.txt").read_text().splitlines()
    assert all(m["label"].rstrip() in labels for m in matches)
    scores = [float(m["score"]) for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert "Traceback" not in result.stderr


def test_classify_json_and_probabilities(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    labels = (golden_model_dir / "labels.txt").read_text().splitlines()
    out_csv, out_json = tmp_path / "p.csv", tmp_path / "p.json"
    result = run(
        "classify",
        clips / "carving_ice.mp4",
        "--model",
        golden_model_dir,
        "--json",
        "--top-k",
        "3",
        "--probabilities",
        out_csv,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert set(record) == {"video", "model", "steps", "top_k"}
    assert record["video"].endswith("carving_ice.mp4")
    assert record["steps"] == 22  # 4.4 s at the model's 5 fps
    assert [set(x) for x in record["top_k"]] == [{"label", "score"}] * 3

    rows = list(csv.reader(out_csv.read_text().splitlines()))
    assert rows[0] == ["step", "timestamp", *labels]
    assert len(rows) == 1 + record["steps"]
    last = np.array([float(x) for x in rows[-1][2:]])
    assert last.sum() == pytest.approx(1.0, abs=1e-3)
    best = labels[int(last.argmax())]
    assert record["top_k"][0]["label"] == best

    result = run(
        "classify", clips / "carving_ice.mp4", "--model", golden_model_dir, "--probabilities", out_json, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    steps = json.loads(out_json.read_text())
    assert [s["step"] for s in steps] == list(range(1, 23))
    assert set(steps[0]) == {"step", "timestamp", "probabilities"}
    assert list(steps[-1]["probabilities"]) == labels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "p.json"]  # no temporary files left


def test_live_file_json_lines(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    result = run(
        "--video",
        clips / "rope_pushdown.mp4",
        "--model",
        golden_model_dir,
        "--json",
        "--top-k",
        "2",
        "--max-steps",
        "7",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    predictions = [r for r in records if r["type"] == "prediction"]
    assert [p["step"] for p in predictions] == list(range(1, 8))
    # A 5 fps file at the model's 5 fps: every frame is fed.
    assert [p["frame_index"] for p in predictions] == list(range(7))
    assert all(len(p["top_k"]) == 2 and p["latency_ms"] > 0 for p in predictions)
    assert all(r["type"] in ("prediction", "event") for r in records)
    assert result.stderr.startswith("movinet-edge: ") and "7 steps" in result.stderr


def test_live_window_policies(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    """The long-stream window on a file (off by default there), both policies, through the CLI."""
    steps = {}
    for policy in ("rescale", "dual"):
        result = run("--video", clips / "rope_pushdown.mp4", "--model", golden_model_dir, "--json",
                     "--window-seconds", "1", "--window-policy", policy, "--max-steps", "12", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        records = [json.loads(line) for line in result.stdout.splitlines()]
        steps[policy] = [r["top_k"][0]["score"] for r in records if r["type"] == "prediction"]
    assert len(steps["rescale"]) == len(steps["dual"]) == 12
    # Identical until the first window event (5 frames at 5 fps), different after.
    assert steps["rescale"][:5] == pytest.approx(steps["dual"][:5], abs=1e-5)
    assert steps["rescale"][6:] != pytest.approx(steps["dual"][6:], abs=1e-5)
    bad = run("--video", clips / "rope_pushdown.mp4", "--model", golden_model_dir, "--window-policy", "sliding",
              cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_live_console_and_annotated_video(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    out = tmp_path / "annotated.mp4"
    result = run("--video", clips / "carving_ice.mp4", "--model", golden_model_dir, "--save", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    predictions = [line for line in result.stdout.splitlines() if re.match(r"^\s+\d+\.\d\ds  step", line)]
    assert len(predictions) == 22
    cap = cv2.VideoCapture(str(out))
    count = 0
    while cap.grab():
        count += 1
    assert count == 131
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4"]


def test_default_model_locations(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    # Without --model: $MOVINET_EDGE_MODEL, else models/a0_stream_int8, else models/a0_stream_float32.
    (tmp_path / "models").mkdir()
    shutil.copytree(golden_model_dir, tmp_path / "models" / "a0_stream_float32")
    result = run("classify", clips / "carving_ice.mp4", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "models/a0_stream_float32/model.tflite"
    result = run(
        "classify",
        clips / "carving_ice.mp4",
        "--json",
        cwd=tmp_path,
        env=env_without_model(MOVINET_EDGE_MODEL=str(golden_model_dir)),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == str(golden_model_dir / "model.tflite")


def test_default_model_prefers_the_int8_export(tmp_path: Path, float_model_dir: Path, int8_model_dir: Path,
                                               clips: Path) -> None:
    """`movinet-export --model a0 --quantize` then `movinet-edge ...`: the int8 folder is used when both exist."""
    (tmp_path / "models").mkdir()
    shutil.copytree(float_model_dir, tmp_path / "models" / "a0_stream_float32")
    shutil.copytree(int8_model_dir, tmp_path / "models" / "a0_stream_int8")
    result = run("classify", clips / "carving_ice.mp4", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "models/a0_stream_int8/model.tflite"


def test_a_file_that_is_not_a_model_and_labels_that_do_not_fit(tmp_path: Path, float_model_dir: Path,
                                                               clips: Path) -> None:
    """The same one-line refusals the library makes, through the command a user types."""
    fake = tmp_path / "model.tflite"
    fake.write_bytes(b"PK\x03\x04 a zip file, not a flatbuffer" * 10)
    result = run("classify", clips / "carving_ice.mp4", "--model", fake, cwd=tmp_path)
    assert_one_line_error(result, "is not a TFLite model")
    labels = tmp_path / "labels.txt"
    labels.write_text("walking\nrunning\n")
    result = run("--video", clips / "carving_ice.mp4", "--model", float_model_dir, "--labels", labels, cwd=tmp_path)
    assert_one_line_error(result, "labels have 2 entries but the model has 600 classes")


def test_unknown_label_in_allow(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    result = run(
        "--video", clips / "carving_ice.mp4", "--model", golden_model_dir, "--allow", "no such action", cwd=tmp_path
    )
    assert_one_line_error(result, "unknown label 'no such action'")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_signals_end_a_live_run_cleanly(
    tmp_path: Path, golden_model_dir: Path, sig: int, code: int, clips: Path
) -> None:
    # A file played in real time, forever: only a signal ends it.
    proc = subprocess.Popen(
        [
            *command(),
            "--video",
            str(clips / "rope_pushdown.mp4"),
            "--realtime",
            "--loop",
            "--json",
            "--model",
            str(golden_model_dir),
            "--save",
            str(tmp_path / "out.mp4"),
        ],
        cwd=tmp_path,
        env=env_without_model(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the run is going
        assert json.loads(first)["type"] == "prediction"
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code
    assert "Traceback" not in stderr
    # Either way the annotated video is complete and in place.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert cap.grab()
    if sig == signal.SIGTERM:
        assert stderr.startswith("movinet-edge: ")


# --- a clip played as a live stream: the code path of a network camera -------------------------


@pytest.fixture(scope="module")
def carving_jpegs(clips: Path) -> list[bytes]:
    """carving_ice.mp4 (131 frames, 29.6 fps), every frame as a JPEG, as an IP camera sends it."""
    from helpers.mjpeg import clip_jpegs

    return clip_jpegs(clips / "carving_ice.mp4")


class LiveRun:
    """`movinet-edge` in a subprocess whose stdout and stderr lines are collected as they come,
    so a test can act (stop the camera, send a signal) when the output says the time has come."""

    def __init__(self, *args: object, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [*command(), *map(str, args)],
            cwd=cwd,
            env=env_without_model(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(pipe: Any, lines: list[str]) -> None:
        for line in pipe:
            lines.append(line.rstrip("\n"))

    def predictions(self) -> list[dict]:
        records = [json.loads(line) for line in list(self.out)]
        return [r for r in records if r["type"] == "prediction"]

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"movinet-edge exited ({self.proc.returncode}) before {what}: {self.err}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no {what} within {timeout:g} s; stderr: {self.err}")
            time.sleep(0.05)

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"movinet-edge did not end within {timeout:g} s; stderr: {self.err}")
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


RECOVERED_LINE = re.compile(
    r"^stream http://127\.0\.0\.1:\d+/stream\.mjpg: frames are back after \d+\.\d s \(\d+ reconnect attempts?\)$"
)
RECONNECT_LINE = re.compile(
    r"^stream http://127\.0\.0\.1:\d+/stream\.mjpg: (the stream ended|could not reconnect); "
    r"reconnecting in \d+\.\d s \(attempt \d+\)$"
)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_clip_served_as_a_live_stream(
    tmp_path: Path, golden_model_dir: Path, carving_jpegs: list[bytes], sig: int, code: int
) -> None:
    """carving_ice.mp4 re-served at 30 fps as MJPEG over HTTP through `--url`, the path of an
    IP camera: the model gets 5 frames a second by arrival time, the long-stream window is on
    without asking, the camera going away is reported as a reconnect (not an error), the
    stream resumes when it comes back, and a signal ends the run cleanly."""
    from helpers.mjpeg import FOREVER, MjpegServer

    labels = set((golden_model_dir / "labels.txt").read_text().splitlines())
    camera = MjpegServer(carving_jpegs, [("frames", FOREVER)], frame_interval=1 / 30).start()
    port = camera.port
    run = LiveRun("--url", camera.url, "--model", golden_model_dir, "--json", "--top-k", "3", cwd=tmp_path)
    try:
        run.wait_for(lambda: len(run.predictions()) >= 10, 60, "10 predictions")
        camera.stop()  # switched off: the connection ends and the port refuses
        run.wait_for(lambda: any(RECONNECT_LINE.match(line) for line in run.err), 30, "reconnect message")
        before = run.predictions()
        with MjpegServer(carving_jpegs, [("frames", FOREVER)], frame_interval=1 / 30, port=port):
            run.wait_for(lambda: len(run.predictions()) >= len(before) + 3, 30, "predictions after reconnecting")
            run.proc.send_signal(sig)
            returncode = run.finish(timeout=30)
    finally:
        camera.stop()
        run.kill()

    assert returncode == code, run.err
    assert not any("Traceback" in line for line in run.err), run.err
    records = [json.loads(line) for line in run.out]  # stdout holds JSON lines only
    predictions = [r for r in records if r["type"] == "prediction"]
    assert all(r["type"] in ("prediction", "event") for r in records)
    for p in predictions:
        assert len(p["top_k"]) == 3 and {t["label"] for t in p["top_k"]} <= labels
        scores = [t["score"] for t in p["top_k"]]
        assert scores == sorted(scores, reverse=True)
    assert [p["step"] for p in predictions] == list(range(1, len(predictions) + 1))

    # The first connection: a 30 fps camera, a 5 fps model, by timestamps.
    first = [p for p in predictions if p["timestamp"] <= before[-1]["timestamp"]]
    ts = np.array([p["timestamp"] for p in first])
    intervals = np.diff(ts)
    assert np.median(intervals) == pytest.approx(0.2, abs=0.025), intervals
    assert intervals.min() > 0.15, intervals
    assert (len(ts) - 1) / (ts[-1] - ts[0]) == pytest.approx(5.0, abs=0.5)
    frame_steps = np.diff([p["frame_index"] for p in first])
    assert 5 <= np.median(frame_steps) <= 7, frame_steps  # about every 6th frame reaches the model

    # After the reconnect: time and frame indices go on, with the outage as a gap.
    after = predictions[len(first) :]
    assert len(after) >= 3
    assert after[0]["timestamp"] - first[-1]["timestamp"] > 0.5
    indices = [p["frame_index"] for p in predictions]
    assert indices == sorted(set(indices))

    # stderr: the reconnect messages, and on SIGTERM the summary; nothing else (no FFmpeg noise).
    reconnects = [line for line in run.err if RECONNECT_LINE.match(line)]
    assert reconnects[0].endswith(": the stream ended; reconnecting in 0.5 s (attempt 1)"), run.err
    # ...and when the frames came back, how long the outage was (issue 15: said, not only counted).
    back = [line for line in run.err if RECOVERED_LINE.match(line)]
    assert len(back) == 1, run.err
    rest = [line for line in run.err if not RECONNECT_LINE.match(line) and not RECOVERED_LINE.match(line)]
    # SIGTERM and Ctrl-C alike end the run cleanly, with its summary (Ctrl-C then exits 130).
    assert len(rest) == 1 and rest[0].startswith("movinet-edge: "), run.err
    assert f"{len(reconnects)} reconnects" in rest[0]
    # On for a live source without being asked for: the default 10 s window.
    assert rest[0].endswith(", long-stream window 10 s (rescale, 0 rescales)"), rest[0]


@pytest.mark.parametrize(
    "args, summary",
    [
        (["--no-window"], ", no long-stream window"),
        # 1 s at 5 fps is 5 frames. rescale: the pools hold 5 frames at step 5 and are halved to 2;
        # 3 more make 5 again at step 8. dual: the second state set starts at step 3 (half a
        # window late); the first is reset at step 5, the second at step 7.
        (["--window-seconds", "1"], ", long-stream window 1 s (rescale, 2 rescales)"),
        (["--window-seconds", "1", "--window-policy", "dual"], ", long-stream window 1 s (dual, 2 resets)"),
    ],
)
def test_the_window_of_a_live_stream(
    tmp_path: Path, golden_model_dir: Path, carving_jpegs: list[bytes], args: list[str], summary: str
) -> None:
    from helpers.mjpeg import FOREVER, MjpegServer

    with MjpegServer(carving_jpegs, [("frames", FOREVER)], frame_interval=1 / 30) as camera:
        result = run("--url", camera.url, "--model", golden_model_dir, "--json", "--max-steps", "8", *args,
                     cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    predictions = [json.loads(line) for line in result.stdout.splitlines()]
    assert len([p for p in predictions if p["type"] == "prediction"]) == 8
    (line,) = result.stderr.splitlines()
    assert line.startswith("movinet-edge: ") and line.endswith(summary), line


# --- --resize: how a wide frame becomes the model's square ------------------------------------


@pytest.fixture(scope="module")
def library_top5(golden_model_dir: Path, clips: Path) -> dict[str, list]:
    """flipping_pancake.mkv (426x240, wide) through the library, one result per resize policy."""
    from movinet_edge.model import StreamingClassifier
    from movinet_edge.pipeline import classify_clip

    results = {}
    for policy in ("crop", "pad", "stretch"):
        classifier = StreamingClassifier.open(golden_model_dir, num_threads=1, resize_policy=policy)
        results[policy] = classify_clip(clips / "flipping_pancake.mkv", classifier, top_k=5)
    return results


def _scores(top_k: list) -> list[tuple[str, float]]:
    return [(t["label"], t["score"]) if isinstance(t, dict) else (t[0], round(float(t[1]), 6)) for t in top_k]


@pytest.mark.parametrize("policy", ["crop", "pad", "stretch"])
def test_classify_resize_option(
    tmp_path: Path, golden_model_dir: Path, clips: Path, library_top5: dict, policy: str
) -> None:
    result = run("classify", clips / "flipping_pancake.mkv", "--model", golden_model_dir, "--threads", "1",
                 "--resize", policy, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    got = _scores(json.loads(result.stdout)["top_k"])
    expected = _scores(library_top5[policy].top_k)
    assert [label for label, _ in got] == [label for label, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=2e-6)


def test_the_resize_policies_see_different_frames(library_top5: dict) -> None:
    """Otherwise the option tests above could not tell the policies apart. (The random-init
    model's probabilities are all near 1/600; the policies move them by a few percent.)"""
    finals = {policy: result.final for policy, result in library_top5.items()}
    for a, b in (("crop", "pad"), ("crop", "stretch"), ("pad", "stretch")):
        assert np.abs(finals[a] - finals[b]).max() > 0.01 * finals[a].max(), (a, b)
        assert np.abs(finals[a] - finals[b]).max() > 10 * 2e-6, (a, b)  # well above the tolerance used there


def test_resize_defaults_to_the_manifest_policy(
    tmp_path: Path, golden_model_dir: Path, clips: Path, library_top5: dict
) -> None:
    """A model exported (or fine-tuned) on padded frames is fed padded frames unless told otherwise."""
    padded = tmp_path / "padded"
    shutil.copytree(golden_model_dir, padded)
    manifest = json.loads((padded / "manifest.json").read_text())
    manifest["resize_policy"] = "pad"
    (padded / "manifest.json").write_text(json.dumps(manifest))
    result = run("classify", clips / "flipping_pancake.mkv", "--model", padded, "--threads", "1", "--json",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    got = _scores(json.loads(result.stdout)["top_k"])
    assert [s for _, s in got] == pytest.approx([s for _, s in _scores(library_top5["pad"].top_k)], abs=2e-6)


def test_live_resize_option(tmp_path: Path, golden_model_dir: Path, clips: Path, library_top5: dict) -> None:
    """Live mode feeds the same padded frames, step by step (no smoothing: the raw scores)."""
    result = run("--video", clips / "flipping_pancake.mkv", "--model", golden_model_dir, "--threads", "1",
                 "--resize", "pad", "--smoothing", "none", "--json", "--max-steps", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    predictions = [r for r in map(json.loads, result.stdout.splitlines()) if r["type"] == "prediction"]
    reference = library_top5["pad"]
    labels = reference.labels
    assert len(predictions) == 4
    for p, probs in zip(predictions, reference.probabilities[:4]):
        best = np.argsort(probs)[::-1][:5]
        assert [t["label"] for t in p["top_k"]] == [labels[i] for i in best]
        assert [t["score"] for t in p["top_k"]] == pytest.approx(probs[best].tolist(), abs=2e-6)


def test_bad_resize_value(tmp_path: Path, clips: Path) -> None:
    result = run("classify", clips / "flipping_pancake.mkv", "--resize", "zoom", cwd=tmp_path)
    assert result.returncode == 2
    # A usage error is one line like every other error, not Typer's framed box. (The
    # wording inside is Click's and varies a little between Typer releases.)
    assert re.fullmatch(r"error: Invalid value for '--resize': .*'zoom' is not one of 'crop', 'pad', 'stretch'; "
                        r"see 'movinet-edge classify --help'\n", result.stderr), result.stderr
    unknown = run("--video", clips / "flipping_pancake.mkv", "--frobnicate", cwd=tmp_path)
    assert unknown.returncode == 2
    assert re.fullmatch(r"error: No such option:? '?--frobnicate'?; see 'movinet-edge --help'\n", unknown.stderr)
