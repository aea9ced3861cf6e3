"""The assembly layer (movinet_edge.app) and the commands built on it, on the committed golden model.

Several sources in one process share one model and never each other's states: every camera's
predictions equal a run of that source alone. Flags come from the registered kinds; signals end a
run cleanly at any moment, even when SIGINT was inherited as ignored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from helpers.signals import wait_for_handler

from movinet_edge.app import OptionProblems, camera_ids, choose_sources


def command() -> list[str]:
    script = Path(sys.executable).with_name("movinet-edge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "movinet_edge.entry"]


def run(*args: object, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MOVINET_EDGE_MODEL"}
    return subprocess.run([*command(), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def records(stdout: str) -> list[dict]:
    out = []
    for line in stdout.splitlines():
        record = json.loads(line)
        record.pop("latency_ms", None)
        out.append(record)
    return out


# ---- sources from flat keys -----------------------------------------------------------------


def test_sources_from_flat_keys(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"x")
    choices = choose_sources({"video": [tmp_path / "a.mp4", tmp_path / "b.mp4"], "loop": True, "url": "rtsp://cam/s"})
    assert [c.kind for c in choices] == ["video", "video", "url"]
    assert choices[0].options.loop is True and choices[1].options.path == tmp_path / "b.mp4"
    assert camera_ids(choices) == ["a", "b", "rtsp---cam-s"]
    with pytest.raises(OptionProblems) as info:
        choose_sources({"camera": "0", "realtime": True})
    assert info.value.problems == [("source.realtime", "applies to video sources only")]
    with pytest.raises(OptionProblems) as info:
        choose_sources({})
    assert info.value.problems[0][0] == "source"
    with pytest.raises(OptionProblems) as info:
        choose_sources({"url": "camera.local"})
    assert info.value.problems[0][0] == "source.url" and "not a URL" in info.value.problems[0][1]


# ---- the command line -----------------------------------------------------------------------


def test_help_lists_every_kind_and_the_choices(tmp_path: Path) -> None:
    result = subprocess.run([*command(), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "80"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    for flag in ("--video", "--url", "--camera", "--image-folder", "--image-fps", "--capture-size", "--save"):
        assert flag in result.stdout, flag
    assert "crop|pad|stretch" in result.stdout and "rescale|dual" in result.stdout
    assert "…" not in result.stdout  # nothing cut short at 80 columns
    short = subprocess.run([*command(), "-h"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert short.returncode == 0 and "--image-folder" in short.stdout


def test_each_camera_equals_its_own_run(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    """Two clips through one process, one model: each camera's records are what a run of that clip alone gives."""
    a, b = clips / "carving_ice.mp4", clips / "rope_pushdown.mp4"
    common = ("--model", golden_model_dir, "--json", "--max-steps", "12", "--top-k", "3")
    both = run("--video", a, "--video", b, *common, cwd=tmp_path)
    assert both.returncode == 0, both.stderr
    tagged = records(both.stdout)
    assert {r["camera"] for r in tagged} == {"carving_ice", "rope_pushdown"}
    for clip in (a, b):
        alone = run("--video", clip, *common, cwd=tmp_path)
        assert alone.returncode == 0, alone.stderr
        mine = [{k: v for k, v in r.items() if k != "camera"} for r in tagged if r["camera"] == clip.stem]
        assert mine == records(alone.stdout), clip.name
    summaries = [line for line in both.stderr.splitlines() if line.startswith("movinet-edge: [")]
    assert len(summaries) == 2 and all("12 steps" in line for line in summaries), both.stderr


def test_image_folder_source(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    """A folder of numbered frames plays like a clip; its predictions are the clip's own when the rate is."""
    folder = tmp_path / "frames"
    folder.mkdir()
    cap = cv2.VideoCapture(str(clips / "carving_ice.mp4"))
    fps = cap.get(cv2.CAP_PROP_FPS)
    index = 0
    while index < 60:
        ok, bgr = cap.read()
        if not ok:
            break
        cv2.imwrite(str(folder / f"frame_{index + 1}.png"), bgr)  # lossless: the same pixels as decoded
        index += 1
    cap.release()
    result = run("--image-folder", folder, "--image-fps", f"{fps}", "--model", golden_model_dir, "--json",
                 "--max-steps", "5", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    steps = [r for r in records(result.stdout) if r["type"] == "prediction"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5]
    bad = run("--image-folder", tmp_path / "nope", "--model", golden_model_dir, cwd=tmp_path)
    assert bad.returncode != 0 and len(bad.stderr.splitlines()) == 1 and "Traceback" not in bad.stderr


def test_unwritable_save_is_refused_before_the_model(tmp_path: Path, clips: Path) -> None:
    result = run("--video", clips / "carving_ice.mp4", "--save", "/proc/x.mp4", "--model", tmp_path / "none",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot write /proc/x.mp4") and len(result.stderr.splitlines()) == 1


# ---- signals at any moment ------------------------------------------------------------------


def _start(args: list[object], cwd: Path, ignore_sigint: bool = False) -> subprocess.Popen:
    def preexec() -> None:
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `cmd &` from a script, or nohup

    return subprocess.Popen([*command(), *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=preexec)  # fmt: skip


# Moments counted from the process start, but never before its handler exists: until then Python
# itself is starting (25 ms bare, 80 ms with the editable install's import finder here, more on a
# loaded machine) and no program can catch anything; the entry point installs ours before it
# imports anything else (movinet_edge.entry), so from then on every moment is covered.
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2, 1.0])
def test_sigterm_at_any_moment_is_a_clean_exit(tmp_path: Path, golden_model_dir: Path, clips: Path,
                                               delay: float) -> None:  # fmt: skip
    proc = _start(["--video", clips / "carving_ice.mp4", "--realtime", "--loop", "--model", golden_model_dir],
                  tmp_path)  # fmt: skip
    started = time.monotonic()
    installed = wait_for_handler(proc.pid)
    time.sleep(max(0.0, delay - (time.monotonic() - started)))
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == 0, (delay, err)
    assert "Traceback" not in err, err
    print(f"handler at {installed * 1000:.0f} ms; SIGTERM at t={delay:g} s: exit 0 after {took:.2f} s")


def test_ctrl_c_stops_a_run_that_inherited_sigint_ignored(tmp_path: Path, golden_model_dir: Path,
                                                           clips: Path) -> None:  # fmt: skip
    proc = _start(["--video", clips / "carving_ice.mp4", "--realtime", "--loop", "--model", golden_model_dir],
                  tmp_path, ignore_sigint=True)  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the first prediction: the run is under way
    assert "step" in first
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("SIGINT was ignored: still running 5 s later")
    assert proc.returncode == 130
