"""Opening sources the way every entry point does: flat keys (CLI flags, TOML keys) chosen into a kind
and its options (movinet_edge.app.choose_sources), opened with the assembly's context. Problems are
keyed by option name, never a CLI flag or a config key: the entry point words them."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.mjpeg import MjpegServer, clip_jpegs

from movinet_edge.app import BuildHooks, OptionProblems, choose_sources, open_source
from movinet_edge.errors import EdgeError
from movinet_edge.sources import StreamSource, VideoFileSource, decode_threads_for, quiet_opencv_logs

quiet_opencv_logs()


def _open(values: dict, hooks: BuildHooks | None = None):  # type: ignore[no-untyped-def]
    (choice,) = choose_sources(values)
    return open_source(choice, "default", hooks or BuildHooks())


def test_decoder_threads_leave_the_interpreter_its_cores(clips: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    assert decode_threads_for(None) == decode_threads_for(1) == max(1, cores - 1)
    assert decode_threads_for(cores) == decode_threads_for(cores + 4) == 1
    # The thread count reaches FFmpeg: the capture reports it, and the frames are the same.
    with VideoFileSource(clips / "carving_ice.mp4") as source:
        assert source.decode_threads == decode_threads_for(None)
        assert source._cap.get(cv2.CAP_PROP_N_THREADS) == decode_threads_for(None)
        default = [f.image for f in source]
    with _open({"video": clips / "carving_ice.mp4"}, BuildHooks(decode_threads=3)) as source:
        assert source._cap.get(cv2.CAP_PROP_N_THREADS) == 3
        three = [f.image for f in source]
    assert len(default) == len(three) == 131
    assert all(np.array_equal(a, b) for a, b in zip(default, three, strict=True))


def test_open_source_picks_the_kind(clips: Path) -> None:
    with _open({"video": clips / "rope_pushdown.mp4"}) as source:
        assert isinstance(source, VideoFileSource) and not source.live
    with _open({"video": clips / "rope_pushdown.mp4", "realtime": True, "loop": True}) as source:
        assert source.realtime and source.loop
    with pytest.raises(EdgeError, match="camera 57 did not open"):
        _open({"camera": "57"})
    with pytest.raises(EdgeError, match="camera /dev/video57 did not open"):
        _open({"camera": "/dev/video57"})


@pytest.mark.parametrize(
    "values, problem",
    [
        ({}, ("source", "give a source: one of video, url, camera, image_folder")),
        ({"camera": "front"}, ("source.camera", "give a V4L2 index (0), a device (/dev/video0) or 'picam'")),
        ({"url": "localhost:8554"}, ("source.url", "not a URL; use e.g. rtsp://host:554/stream or "
                                     "http://host/video.mjpg")),
        ({"camera": "0", "realtime": True}, ("source.realtime", "applies to video sources only")),
        ({"url": "rtsp://x", "loop": True}, ("source.loop", "applies to video and image_folder sources only")),
    ],
)
def test_source_problems_are_keyed_by_option(values: dict, problem: tuple[str, str]) -> None:
    with pytest.raises(OptionProblems) as info:
        choose_sources(values)
    assert info.value.problems == [problem]
    assert "--" not in str(info.value)  # the entry point names its own flags


def test_a_stream_reports_reconnects_to_the_entry_point(clips: Path) -> None:
    jpegs = clip_jpegs(clips / "rope_pushdown.mp4", 10)
    calls: list[tuple[str, int, float, str]] = []
    hooks = BuildHooks(on_reconnect=lambda *a: calls.append(a))
    with MjpegServer(jpegs, [("frames", 2)]) as server:
        values = {"url": server.url, "reconnect_initial_delay": 0.01, "reconnect_max_attempts": 1}
        with _open(values, hooks) as source:
            assert isinstance(source, StreamSource) and source.live
            assert source.decode_threads == decode_threads_for(None)
            frames = []
            with pytest.raises(EdgeError, match="gave up after 1 reconnect attempts"):
                for frame in source:
                    frames.append(frame)
    assert frames
    assert [(c[0], c[1]) for c in calls] == [("default", 1)]
