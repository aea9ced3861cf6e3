"""`movinet-edge classify VIDEO --plot`: the tutorial's animation, one plot frame per model step.

Through the real command (a subprocess) for GIF and the errors, through the
library for MP4; matplotlib missing is simulated with a real package on
PYTHONPATH that fails to import, as an install without the extra would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from movinet_edge.model import StreamingClassifier
from movinet_edge.pipeline import classify_clip
from movinet_edge.plot import FrameRecorder, PlotOptions, select_labels, write_prediction_plot


def command() -> list[str]:
    script = Path(sys.executable).with_name("movinet-edge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "movinet_edge.cli"]


def run(*args: object, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "MOVINET_EDGE_MODEL"}
    full_env.update(env or {})
    return subprocess.run(
        [*command(), *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300
    )


def test_gif_has_one_frame_per_step(tmp_path: Path, golden_model_dir: Path, clips: Path, plot_extra: None) -> None:
    from PIL import Image  # matplotlib's dependency: present with the [plot] extra

    out = tmp_path / "plot.gif"
    result = run(
        "classify", clips / "carving_ice.mp4", "--model", golden_model_dir, "--plot", out, "--json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    steps = json.loads(result.stdout)["steps"]
    assert steps > 1
    with Image.open(out) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == steps
        gif.seek(0)
        first = np.asarray(gif.convert("RGB"))
    expected = PlotOptions()
    assert first.shape == (expected.height, expected.width, 3)
    assert first.std() > 10  # a picture, not a blank frame
    # Nothing but the animation is left in the folder (no temporary files).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.gif"]


def test_mp4_through_the_library(tmp_path: Path, golden_model_dir: Path, clips: Path, plot_extra: None) -> None:
    classifier = StreamingClassifier.open(golden_model_dir)
    recorder = FrameRecorder(classifier)
    result = classify_clip(clips / "rope_pushdown.mp4", recorder, keep_probabilities=True)
    assert len(recorder.frames) == result.steps
    options = PlotOptions(top_k=3, width=320, height=360)
    out = tmp_path / "plot.mp4"
    written = write_prediction_plot(result, recorder.frames, out, options=options, progress=False)
    assert written == result.steps
    cap = cv2.VideoCapture(str(out))
    try:
        frames = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if frames == 0:
                assert bgr.shape == (360, 320, 3)
            frames += 1
    finally:
        cap.release()
    assert frames == result.steps


def test_labels_start_with_the_final_answer() -> None:
    probs = np.tile(np.linspace(0.01, 0.02, 6, dtype=np.float32), (4, 1))  # low, no ties
    probs[:3, 2] = 0.9  # top for most of the clip
    probs[:, 4] = 0.5  # always second
    probs[3, 5] = 0.95  # the last step's answer
    chosen = select_labels(probs, 3)
    assert chosen[0] == 5
    assert set(chosen) == {5, 2, 4}


def test_bad_plot_names_fail_before_the_work(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    clip = clips / "carving_ice.mp4"
    for target, message in [
        (tmp_path / "plot.png", r"use a \.gif or \.mp4 file name"),
        (tmp_path / "missing" / "plot.gif", "directory .* does not exist"),
    ]:
        result = run("classify", clip, "--model", golden_model_dir, "--plot", target, cwd=tmp_path)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert re.search(message, lines[0]), lines[0]
        assert result.stdout == ""
        assert not target.exists()


def test_missing_matplotlib_is_one_clear_line(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    broken = tmp_path / "site"
    (broken / "matplotlib").mkdir(parents=True)
    (broken / "matplotlib" / "__init__.py").write_text("raise ImportError(\"No module named 'matplotlib'\")\n")
    out = tmp_path / "plot.gif"
    result = run(
        "classify", clips / "carving_ice.mp4", "--model", golden_model_dir, "--plot", out,
        cwd=tmp_path, env={"PYTHONPATH": str(broken)},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --plot needs matplotlib: pip install 'movinet-edge[plot]'"
    assert result.stdout == ""
    assert not out.exists()
