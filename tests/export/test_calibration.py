"""Calibration inputs for int8: which videos are found, how they become streams.

The calibration itself (states carried through TF, ranges recorded) runs in
the int8 exports of test_export.py and test_int8_quality.py; this module
covers what the user hands to ``--calibration-videos``: files, folders,
globs, unreadable files, and no videos at all.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from movinet_export.calibration import DEFAULT_STREAM_FRAMES, calibration_streams, expand_videos
from movinet_export.cli import normalize_args
from movinet_export.errors import ExportError
from movinet_export.zoo import lookup

A0_FPS = lookup("a0").fps


@pytest.fixture()
def video_tree(tmp_path: Path, test_data: Path) -> Path:
    """clips/a.mp4, clips/nested/b.mkv, notes.txt, broken.mp4 (not a video)."""
    root = tmp_path / "videos"
    (root / "nested").mkdir(parents=True)
    shutil.copy(test_data / "clips" / "carving_ice.mp4", root / "a.mp4")
    mkv = next((test_data / "clips").glob("*.mkv"))
    shutil.copy(mkv, root / "nested" / "b.mkv")
    (root / "notes.txt").write_text("not a video\n")
    (root / "broken.mp4").write_bytes(b"\x00" * 4096)
    return root


def test_files_folders_and_globs_are_expanded_once_each(video_tree: Path) -> None:
    folder = expand_videos([str(video_tree)])
    assert [p.name for p in folder] == ["a.mp4", "broken.mp4", "b.mkv"]  # recursive, videos only, sorted
    assert expand_videos([str(video_tree / "a.mp4")]) == [video_tree / "a.mp4"]
    globbed = expand_videos([str(video_tree / "**" / "*.mkv")])
    assert [p.name for p in globbed] == ["b.mkv"]
    # The same file named twice (a folder and the file in it) is used once.
    both = expand_videos([str(video_tree / "a.mp4"), str(video_tree)])
    assert len(both) == len(set(both)) == 3


def test_a_path_that_matches_nothing_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        expand_videos([str(tmp_path / "missing.mp4")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="no videos found"):
        expand_videos([str(tmp_path / "empty")])


def test_unreadable_videos_are_skipped_with_a_warning(video_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    streams = calibration_streams([str(video_tree)], frames=0, fps=A0_FPS, resolution=32)
    err = capsys.readouterr().err
    assert "calibration video skipped (broken.mp4" in err
    # Two readable clips at 5 fps, joined into one stream of up to DEFAULT_STREAM_FRAMES: the states
    # run across the cut as they do live, instead of restarting every few seconds.
    assert len(streams) == 1
    assert 10 < len(streams[0]) <= DEFAULT_STREAM_FRAMES
    assert streams[0].shape[1:] == (32, 32, 3) and streams[0].dtype == np.uint8


def test_only_unreadable_videos_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 4096)
    with pytest.raises(ExportError, match="none of the calibration videos could be read"):
        calibration_streams([str(tmp_path)], frames=0, fps=A0_FPS, resolution=32)


def test_no_videos_calibrates_on_synthetic_motion_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    streams = calibration_streams([], frames=40, fps=A0_FPS, resolution=48)
    assert "no --calibration-videos given" in capsys.readouterr().err
    assert len(streams) >= 2
    for stream in streams:
        assert stream.shape[1:] == (48, 48, 3) and stream.dtype == np.uint8
        assert len(stream) >= 40 // 4
        assert np.abs(np.diff(stream.astype(np.int16), axis=0)).mean() > 1  # it moves


def test_several_paths_after_one_flag_and_quantize_alone() -> None:
    """What the shell passes for `--calibration-videos clips/*.mp4`: every path up to the next option;
    and `--quantize` with no value (last, or before another option) is int8."""
    args = ["--model", "a0", "--calibration-videos", "a.mp4", "b.mp4", "c.mp4", "--quantize", "--force"]
    assert normalize_args(args) == [
        "--model", "a0",
        "--calibration-videos", "a.mp4", "--calibration-videos", "b.mp4", "--calibration-videos", "c.mp4",
        "--quantize", "int8", "--force",
    ]
    assert normalize_args(["--model", "a0", "--quantize"]) == ["--model", "a0", "--quantize", "int8"]
    # -q is --quiet (as in movinet-edge), never --quantize: it takes no value.
    assert normalize_args(["--quantize", "-q"]) == ["--quantize", "int8", "-q"]
    assert normalize_args(["-q", "--quantize", "float16"]) == ["-q", "--quantize", "float16"]
    assert normalize_args(["--quantize", "int4"]) == ["--quantize", "int4"]  # refused by the command itself
    # Other options keep their one value; a repeated flag stays as it was.
    assert normalize_args(["--labels", "l.txt", "x"]) == ["--labels", "l.txt", "x"]
    assert normalize_args(["--calibration-videos", "a", "--calibration-videos", "b"]) == [
        "--calibration-videos", "a", "--calibration-videos", "b"]


def test_several_paths_reach_the_exporter_through_the_cli(tmp_path: Path) -> None:
    """The real command with three paths after one flag: all three are checked before any slow work,
    so a missing third path is named (it would be a usage error if the flag took only one)."""
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    result = subprocess.run(
        [sys.executable, "-m", "movinet_export.cli", "--quantize", "--output", str(tmp_path / "out"),
         "--calibration-videos", str(a), str(b), str(tmp_path / "missing*.mp4"), "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: calibration video {tmp_path / 'missing*.mp4'} does not exist "
                     "(no file, folder or glob match)"], result.stderr
    assert not (tmp_path / "out").exists()


def test_streams_are_squared_by_the_resize_policy_given(clips: Path) -> None:
    """Plain values in (no exporter): the policy reaches the frames. A 4:3 clip padded keeps black bars
    at the top and bottom that a centre crop has not."""
    video = [str(clips / "flipping_pancake.mkv")]
    crop = calibration_streams(video, frames=8, fps=A0_FPS, resolution=48, resize_policy="crop")[0]
    pad = calibration_streams(video, frames=8, fps=A0_FPS, resolution=48, resize_policy="pad")[0]
    assert crop.shape == pad.shape == (8, 48, 48, 3)
    assert pad[:, :3].max() == 0 and pad[:, -3:].max() == 0  # letterbox bars
    assert crop[:, :3].max() > 0
