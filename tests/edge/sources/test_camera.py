"""Cameras: a V4L2 device that is not there, the camera code path on a real capture, the Pi
camera without picamera2, and the capture size and rate options of the ``camera`` kind."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from movinet_edge.errors import EdgeError
from movinet_edge.options import check_options
from movinet_edge.sources import PICAMERA_HINT, CameraSource, PiCameraSource, quiet_opencv_logs
from movinet_edge.sources.camera import CameraOptions, parse_size
from movinet_edge.sources.registry import SourceContext, source_kind

quiet_opencv_logs()


def _has_picamera2() -> bool:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        return False
    return True


def test_a_camera_that_does_not_open() -> None:
    with pytest.raises(EdgeError) as info:
        CameraSource(57)
    assert str(info.value) == ("camera 57 did not open: check /dev/video57 and that the user is in the 'video' group")


def test_a_camera_delivers_the_newest_frames_then_is_unplugged(clips: Path) -> None:
    """The camera code path (reader thread, newest frame wins, stall and unplug detection) on a real
    capture: OpenCV's FFmpeg backend reading a clip stands in for V4L2, which CI machines lack. At
    the end of the clip every read fails, as when a USB camera is pulled: one clear error."""
    source = CameraSource(str(clips / "carving_ice.mp4"), backend=cv2.CAP_FFMPEG, stall_timeout=2.0)
    assert source.live and source.fps == pytest.approx(30.0, abs=1.0)
    frames = []
    with pytest.raises(EdgeError, match=r"camera .*carving_ice.mp4 stopped delivering frames \(unplugged\?\)"):
        for frame in source:
            frames.append(frame)
            time.sleep(0.002)  # a consumer slower than the reader: older frames are replaced, not queued
    source.close()
    assert 0 < len(frames) == source.stats.frames
    assert source.stats.failed_reads >= 50  # the end of the clip: reads that keep failing
    # RGB pixels of the frame its index names, as OpenCV decodes the clip.
    capture = cv2.VideoCapture(str(clips / "carving_ice.mp4"))
    decoded = [capture.read()[1] for _ in range(frames[0].index + 1)][-1]
    capture.release()
    np.testing.assert_array_equal(frames[0].image, cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB))
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps)
    sequence = [f.index for f in frames]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)


def test_the_camera_id_names_the_reader_thread(clips: Path) -> None:
    import threading

    with CameraSource(str(clips / "carving_ice.mp4"), backend=cv2.CAP_FFMPEG, camera_id="front") as source:
        assert source.label == f"front: camera {clips / 'carving_ice.mp4'}"
        next(iter(source))
        names = [t.name for t in threading.enumerate()]
    assert f"movinet-edge reader (front: camera {clips / 'carving_ice.mp4'})" in names


def test_a_capture_size_the_camera_does_not_have_is_logged(clips: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The size and rate are requests (V4L2 picks its nearest mode): the camera path asks, reads
    back what it got, and says so when that differs. A clip through FFmpeg ignores the request."""
    caplog.set_level(logging.WARNING, logger="movinet_edge.sources")
    path = clips / "carving_ice.mp4"
    with CameraSource(str(path), width=320, height=240, fps=15.0, backend=cv2.CAP_FFMPEG) as source:
        assert (source.width, source.height) == (172, 172)
    lines = [r.getMessage() for r in caplog.records if r.name == "movinet_edge.sources"]
    assert f"camera {path}: asked for 320x240, the camera gives 172x172" in lines
    assert any(line.startswith(f"camera {path}: asked for 15 fps, the camera gives 29.") for line in lines)
    caplog.clear()
    with CameraSource(str(path), width=172, height=172, backend=cv2.CAP_FFMPEG):
        pass
    assert not [r for r in caplog.records if r.name == "movinet_edge.sources"]


def test_pi_camera_without_picamera2() -> None:
    if _has_picamera2():
        pytest.skip("picamera2 is installed here")
    with pytest.raises(EdgeError) as info:
        PiCameraSource()
    assert str(info.value) == PICAMERA_HINT
    assert "sudo apt install python3-picamera2" in PICAMERA_HINT


# --- the kind ---------------------------------------------------------------------------


def test_the_camera_kind_opens_v4l2_indices_and_devices() -> None:
    kind = source_kind("camera")
    assert kind.live and kind.target == "device" and kind.options is CameraOptions
    with pytest.raises(EdgeError, match="^camera 57 did not open: check /dev/video57"):
        kind.open(CameraOptions("57", capture_size="640x480", capture_fps=15), SourceContext())
    with pytest.raises(EdgeError, match="^camera /dev/video57 did not open"):
        kind.open(CameraOptions(" /dev/video57 "), SourceContext(name="door"))


@pytest.mark.parametrize("name", ["picam", "PiCamera", "picamera2", "pi"])
def test_the_camera_kind_opens_the_pi_camera_by_name(name: str) -> None:
    if _has_picamera2():
        pytest.skip("picamera2 is installed here")
    with pytest.raises(EdgeError) as info:
        source_kind("camera").open(CameraOptions(name, capture_size="1280x720", capture_fps=15), SourceContext())
    assert str(info.value) == PICAMERA_HINT


@pytest.mark.parametrize(
    "text, size",
    [("640x480", (640, 480)), ("1280X720", (1280, 720)), (" 320 x 240 ", (320, 240)), ("1x1", (1, 1))],
)
def test_capture_sizes_parse(text: str, size: tuple[int, int]) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "options, field, problem",
    [
        (CameraOptions("0", capture_size="640"), "capture_size",
         "must be WIDTHxHEIGHT in pixels, e.g. 640x480; got '640'"),
        (CameraOptions("0", capture_size="640x"), "capture_size", "got '640x'"),
        (CameraOptions("0", capture_size="640*480"), "capture_size", "got '640*480'"),
        (CameraOptions("0", capture_size="-640x480"), "capture_size", "got '-640x480'"),
        (CameraOptions("0", capture_size="0x480"), "capture_size", "both from 1 to 16384"),
        (CameraOptions("0", capture_size="99999x480"), "capture_size", "both from 1 to 16384"),
        (CameraOptions("0", capture_fps=0.0), "capture_fps", "must be positive, got 0"),
        (CameraOptions("0", capture_fps=-5.0), "capture_fps", "must be positive, got -5"),
        (CameraOptions("front"), "device", "give a V4L2 index (0), a device (/dev/video0) or 'picam'"),
        (CameraOptions(""), "device", "give a V4L2 index"),
    ],
)  # fmt: skip
def test_bad_camera_options_are_declared_problems(options: CameraOptions, field: str, problem: str) -> None:
    """The checks live on the fields (so the CLI and the config file name their own flag or key);
    a library caller opening the kind gets the same problem in the option's own words."""
    problems = check_options(options)
    assert len(problems) == 1 and problems[0][0] == field and problem in problems[0][1]
    with pytest.raises(EdgeError) as info:
        source_kind("camera").open(options, SourceContext())
    message = str(info.value)
    assert problem in message and "--" not in message and "\n" not in message
    if field == "device":
        assert message.startswith(f"camera {options.device!r}: ")
    else:
        assert message.startswith(f"camera {field.replace('_', ' ')}: ")


def test_good_camera_options_have_no_problems() -> None:
    for options in (CameraOptions("0"), CameraOptions("/dev/video2", "1920x1080", 30.0), CameraOptions("picam")):
        assert check_options(options) == []
