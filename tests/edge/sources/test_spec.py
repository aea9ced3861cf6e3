"""SourceSpec and open_source: the adapter the entry points use until they open kinds themselves.
Its errors name sources and options by their own names, never a CLI flag or a config key."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.mjpeg import MjpegServer, clip_jpegs
from movinet_edge.errors import EdgeError
from movinet_edge.sources import (
    ReconnectPolicy,
    SourceSpec,
    StreamSource,
    VideoFileSource,
    decode_threads_for,
    open_source,
    quiet_opencv_logs,
)

quiet_opencv_logs()


def test_decoder_threads_leave_the_interpreter_its_cores(clips: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    assert decode_threads_for(None) == decode_threads_for(1) == max(1, cores - 1)
    assert decode_threads_for(cores) == decode_threads_for(cores + 4) == 1
    # The thread count reaches FFmpeg: the capture reports it, and the frames are the same.
    with VideoFileSource(clips / "carving_ice.mp4") as source:
        assert source.decode_threads == decode_threads_for(None)
        assert source._cap.get(cv2.CAP_PROP_N_THREADS) == decode_threads_for(None)
        default = [f.image for f in source]
    with open_source(SourceSpec(video=clips / "carving_ice.mp4", decode_threads=3)) as source:
        assert source._cap.get(cv2.CAP_PROP_N_THREADS) == 3
        three = [f.image for f in source]
    assert len(default) == len(three) == 131
    assert all(np.array_equal(a, b) for a, b in zip(default, three, strict=True))


def test_open_source_picks_the_one_source(clips: Path) -> None:
    with open_source(SourceSpec(video=clips / "rope_pushdown.mp4")) as source:
        assert isinstance(source, VideoFileSource) and not source.live
    with open_source(SourceSpec(video=clips / "rope_pushdown.mp4", realtime=True, loop=True)) as source:
        assert source.realtime and source.loop
    with pytest.raises(EdgeError, match="camera 57 did not open"):
        open_source(SourceSpec(camera="57"))
    with pytest.raises(EdgeError, match="camera /dev/video57 did not open"):
        open_source(SourceSpec(camera="/dev/video57"))


@pytest.mark.parametrize(
    "spec, message",
    [
        (SourceSpec(), "give exactly one source: a camera, a url or a video"),
        (SourceSpec(camera="0", video=Path("x.mp4")), r"\(got camera and video\)"),
        (SourceSpec(camera="0", url="rtsp://x", video=Path("x")), r"\(got camera and url and video\)"),
        (SourceSpec(camera="front"), "^camera 'front': give a V4L2 index"),
        (SourceSpec(url="localhost:8554"), "^url 'localhost:8554': not a URL"),
        (SourceSpec(camera="0", realtime=True), "^realtime and loop apply to a video only$"),
        (SourceSpec(url="rtsp://x", loop=True), "^realtime and loop apply to a video only$"),
    ],
)
def test_open_source_errors(spec: SourceSpec, message: str) -> None:
    with pytest.raises(EdgeError, match=message) as info:
        open_source(spec)
    assert "--" not in str(info.value)  # the entry point names its own flags


def test_open_source_for_a_url_reports_reconnects(clips: Path) -> None:
    jpegs = clip_jpegs(clips / "rope_pushdown.mp4", 10)
    calls: list[tuple[int, float, str]] = []
    spec = SourceSpec(
        url="",
        reconnect=ReconnectPolicy(initial_delay=0.01, max_attempts=1),
        on_reconnect=lambda *a: calls.append(a),
    )
    with MjpegServer(jpegs, [("frames", 2)]) as server:
        spec.url = server.url
        with open_source(spec) as source:
            assert isinstance(source, StreamSource) and source.live
            assert source.decode_threads == decode_threads_for(None)
            assert source.policy == ReconnectPolicy(initial_delay=0.01, max_delay=30.0, max_attempts=1)
            frames = []
            with pytest.raises(EdgeError, match="gave up after 1 reconnect attempts"):
                for frame in source:
                    frames.append(frame)
    assert frames
    assert [c[0] for c in calls] == [1]
