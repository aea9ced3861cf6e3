"""Frame sources on real parts: the test clips, broken files, a missing camera, and a
real MJPEG-over-HTTP server on 127.0.0.1 (tests/helpers/mjpeg.py) that drops out and
stalls, to show reconnects and the stall watchdog."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.mjpeg import MjpegServer, clip_jpegs
from movinet_edge.errors import EdgeError
from movinet_edge.frames import Frame
from movinet_edge.sources import (
    PICAMERA_HINT,
    CameraSource,
    PiCameraSource,
    ReconnectPolicy,
    SourceSpec,
    StreamSource,
    VideoFileSource,
    decode_threads_for,
    open_source,
    quiet_opencv_logs,
)

quiet_opencv_logs()


# --- files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, count, shape, fps",
    [
        ("carving_ice.mp4", 131, (172, 172, 3), 29.6),
        ("rope_pushdown.mp4", 50, (400, 400, 3), 5.0),
        ("flipping_pancake.mkv", 310, (240, 426, 3), 30.0),
    ],
)
def test_video_file_frames_timestamps_and_indices(name: str, count: int, shape: tuple, fps: float, clips: Path) -> None:
    with VideoFileSource(clips / name) as source:
        assert source.fps == pytest.approx(fps, abs=0.05)
        frames = list(source)
    assert len(frames) == count
    assert [f.index for f in frames] == list(range(count))
    assert all(isinstance(f, Frame) and f.image.shape == shape and f.image.dtype == np.uint8 for f in frames)
    ts = np.array([f.timestamp for f in frames])
    assert ts[0] == 0.0 and np.all(np.diff(ts) > 0)
    # Presentation times, not counts: the mean interval is the container's.
    assert np.mean(np.diff(ts)) == pytest.approx(1 / fps, rel=0.05)
    assert source.stats.frames == count and source.stats.dropped == 0


def test_frames_are_rgb_and_independent_arrays(clips: Path) -> None:
    path = clips / "rope_pushdown.mp4"
    cap = cv2.VideoCapture(str(path))
    ok, bgr0 = cap.read()
    cap.release()
    assert ok
    with VideoFileSource(path) as source:
        it = iter(source)
        first = next(it)
        first_image = first.image  # read before the source moves on
        second = next(it)
        second_image = second.image
    np.testing.assert_array_equal(first_image, bgr0[:, :, ::-1])
    # The decode buffer is reused, the frames handed out are not.
    assert not np.shares_memory(first_image, second_image)
    np.testing.assert_array_equal(first.image, bgr0[:, :, ::-1])


def test_file_frames_are_decoded_only_when_read(clips: Path) -> None:
    """A 30 fps file feeding a 5 fps model: only the sampled frames are converted to pixels,
    and a frame not read before the next one is taken cannot hand out another frame's pixels."""
    from movinet_edge.frames import FrameExpired
    from movinet_edge.sampler import FrameSampler

    sampler = FrameSampler(5.0)
    seen: list[Frame] = []
    with VideoFileSource(clips / "flipping_pancake.mkv") as source:
        assert source.fps == 30.0
        source.lazy_frames = True  # as the pipeline sets it
        for frame in source:
            seen.append(frame)
            if sampler.accept(frame.timestamp):
                assert frame.image.shape == (240, 426, 3)
    loaded = [f for f in seen if f.loaded]
    assert len(seen) == 310 and 50 <= len(loaded) <= 53  # 10.3 s at 5 fps
    with pytest.raises(FrameExpired, match=f"frame {seen[1].index} was read after its source moved on"):
        seen[1].image


def test_loop_continues_timestamps_and_indices(clips: Path) -> None:
    with VideoFileSource(clips / "rope_pushdown.mp4", loop=True) as source:
        frames = [f for _, f in zip(range(125), source)]
    ts = [f.timestamp for f in frames]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    assert ts[50] == pytest.approx(10.0)  # one 0.2 s interval after the last frame at 9.8 s
    assert ts[124] == pytest.approx(24.8)
    assert [f.index for f in frames] == list(range(125))
    np.testing.assert_array_equal(frames[0].image, frames[50].image)


def test_realtime_drops_late_frames_instead_of_queueing_them(clips: Path) -> None:
    # A consumer that spends 0.1 s per frame on a 30 fps clip keeps up with about
    # one frame in three; a live source drops the rest rather than falling behind.
    with VideoFileSource(clips / "carving_ice.mp4", realtime=True) as source:
        got = []
        for frame in source:
            got.append(frame)
            if frame.timestamp >= 1.5:
                break
            time.sleep(0.1)
    assert source.stats.frames == len(got)
    assert source.stats.frames + source.stats.dropped == got[-1].index + 1
    assert source.stats.dropped > len(got)
    assert all(b.index > a.index for a, b in zip(got, got[1:]))


def test_a_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match=r"video .*nope\.mp4 does not exist"):
        VideoFileSource(tmp_path / "nope.mp4")


def test_a_directory_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match="is not a file"):
        VideoFileSource(tmp_path)


def test_a_zero_byte_file_has_no_frames(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(EdgeError, match=r"empty\.mp4 has no frames"):
        VideoFileSource(empty)


def test_a_valid_container_without_frames_has_no_frames(tmp_path: Path) -> None:
    path = tmp_path / "zero.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 64))
    assert writer.isOpened()
    writer.release()
    assert path.stat().st_size > 0
    with pytest.raises(EdgeError, match=r"zero\.avi has no frames"):
        VideoFileSource(path)


def test_garbage_and_a_truncated_mp4_are_unreadable(tmp_path: Path, clips: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((clips / "carving_ice.mp4").read_bytes()[:20000])  # the index (moov) is at the end
    for path in (garbage, truncated):
        with pytest.raises(EdgeError, match="cannot read video .*not a video OpenCV can decode"):
            VideoFileSource(path)


def test_a_truncated_mkv_plays_what_it_has(tmp_path: Path, clips: Path) -> None:
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes((clips / "flipping_pancake.mkv").read_bytes()[:200_000])
    with VideoFileSource(truncated) as source:
        frames = list(source)
    assert 0 < len(frames) < 310


def test_close_releases_and_ends_iteration(clips: Path) -> None:
    source = VideoFileSource(clips / "carving_ice.mp4")
    it = iter(source)
    next(it)
    source.close()
    source.close()  # twice is fine
    assert list(source) == []


# --- cameras -----------------------------------------------------------------------


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


def test_pi_camera_without_picamera2() -> None:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("picamera2 is installed here")
    with pytest.raises(EdgeError) as info:
        PiCameraSource()
    assert str(info.value) == PICAMERA_HINT
    assert "sudo apt install python3-picamera2" in PICAMERA_HINT


# --- open_source ---------------------------------------------------------------------


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
    with pytest.raises(EdgeError, match="camera 57 did not open"):
        open_source(SourceSpec(camera="57"))
    with pytest.raises(EdgeError, match="camera /dev/video57 did not open"):
        open_source(SourceSpec(camera="/dev/video57"))


@pytest.mark.parametrize(
    "spec, message",
    [
        (SourceSpec(), "give exactly one source"),
        (SourceSpec(camera="0", video=Path("x.mp4")), r"\(got --camera and --video\)"),
        (SourceSpec(camera="0", url="rtsp://x", video=Path("x")), "--camera and --url and --video"),
        (SourceSpec(camera="front"), "--camera 'front'"),
        (SourceSpec(url="localhost:8554"), "is not a URL"),
        (SourceSpec(camera="0", realtime=True), "--realtime and --loop apply to --video only"),
    ],
)
def test_open_source_errors(spec: SourceSpec, message: str) -> None:
    with pytest.raises(EdgeError, match=message):
        open_source(spec)


# --- a real MJPEG stream over HTTP ------------------------------------------------------


@pytest.fixture(scope="module")
def jpegs(clips: Path) -> list[bytes]:
    return clip_jpegs(clips / "rope_pushdown.mp4", 10)


def collect(source: StreamSource) -> tuple[list[Frame], EdgeError | None]:
    frames: list[Frame] = []
    try:
        for frame in source:
            frames.append(frame)
    except EdgeError as exc:
        return frames, exc
    return frames, None


def test_stream_reconnects_with_exponential_backoff(jpegs: list[bytes]) -> None:
    script = [("frames", 8), ("error", 503), ("error", 503), ("frames", 8)]
    calls: list[tuple[int, float, str]] = []
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.15, max_attempts=3)
    with MjpegServer(jpegs, script) as server:
        with StreamSource(
            server.url, reconnect=policy, on_reconnect=lambda *a: calls.append(a), read_timeout=5.0
        ) as source:
            frames, error = collect(source)
            stats = source.stats
    # The stream dropped, two reconnects failed (503), the third got frames again;
    # when it dropped again, three more attempts failed and the source gave up.
    assert server.connections == [
        "frames:8",
        "error:503",
        "error:503",
        "frames:8",
        "error:503",
        "error:503",
        "error:503",
    ]
    assert [(a, d) for a, d, _ in calls] == [(1, 0.05), (2, 0.1), (3, 0.15), (1, 0.05), (2, 0.1), (3, 0.15)]
    assert calls[0][2] == "the stream ended" and calls[1][2] == "could not reconnect"
    assert error is not None and "gave up after 3 reconnect attempts" in str(error)
    assert stats.reconnects == 6
    # Frames from both connections, decoded for real: the first is the clip's first frame.
    assert 2 <= len(frames) <= 16 and stats.frames == len(frames)
    assert stats.frames + stats.dropped == 16
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)) and indices[-1] >= 8  # indices keep counting across connections
    ts = [f.timestamp for f in frames]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    expected = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert frames[0].image.shape == (400, 400, 3)
    assert np.abs(frames[0].image.astype(int) - expected.astype(int)).mean() < 2.0


def test_a_stalled_stream_times_out_and_reconnects(jpegs: list[bytes]) -> None:
    # The server keeps the connection open and sends nothing: the read timeout
    # (not a hang) ends it, and the source reconnects.
    script = [("stall", 3), ("frames", 3)]
    calls: list[tuple[int, float, str]] = []
    policy = ReconnectPolicy(initial_delay=0.01, max_attempts=1)
    with MjpegServer(jpegs, script) as server:
        source = StreamSource(server.url, reconnect=policy, on_reconnect=lambda *a: calls.append(a), read_timeout=0.5)
        with source:
            frames, error = collect(source)
    assert server.connections[:2] == ["stall:3", "frames:3"]
    assert len(calls) == 2 and calls[0][:2] == (1, 0.01)
    assert error is not None and "gave up after 1 reconnect attempts" in str(error)
    assert 2 <= len(frames) <= 6


def test_a_stream_that_stalls_is_noticed_by_the_watchdog_in_one_line(jpegs: list[bytes]) -> None:
    """The camera keeps the connection open and stops sending. FFmpeg would wait its read
    timeout (30 s here); the source's own watchdog gives up on the connection after
    ``stall_timeout``, says why in one line, and reconnects; here the camera then refuses,
    so the source ends with one line instead of hanging."""
    calls: list[tuple[int, float, str]] = []
    policy = ReconnectPolicy(initial_delay=0.05, max_attempts=1)
    with MjpegServer(jpegs, [("stall", 3)]) as server:
        source = StreamSource(
            server.url, reconnect=policy, on_reconnect=lambda *a: calls.append(a), read_timeout=30.0, stall_timeout=0.5
        )
        started = time.monotonic()
        with source:
            frames, error = collect(source)
        elapsed = time.monotonic() - started
    assert 1 <= len(frames) <= 3
    assert calls == [(1, 0.05, "no frame for 0.5 s")]
    assert error is not None
    assert str(error) == f"stream {server.url} lost (could not reconnect); gave up after 1 reconnect attempts"
    assert "\n" not in str(error)
    assert server.connections == ["stall:3", "error:503"]
    # Watchdog 0.5 s + at most 1 s waiting for the stuck read + the reconnect: far from 30 s.
    assert elapsed < 5.0, elapsed
    assert source.stats.reconnects == 1


def test_stop_from_another_thread_ends_a_waiting_stream(jpegs: list[bytes]) -> None:
    with MjpegServer(jpegs, [("stall", 2)]) as server:
        with StreamSource(server.url, reconnect=ReconnectPolicy(max_attempts=0), read_timeout=30.0) as source:
            it = iter(source)
            assert next(it).image.shape == (400, 400, 3)
            stopper = threading.Timer(0.2, source.stop)
            stopper.start()
            # Without stop() this would wait 30 s for the read timeout and then fail
            # with "gave up after 0 reconnect attempts".
            rest, error = collect(source)
            stopper.join()
    assert error is None
    assert len(rest) <= 1


def test_a_stream_that_does_not_open(jpegs: list[bytes]) -> None:
    with MjpegServer(jpegs, [("error", 404)]) as server:
        url = server.url.replace("http://", "http://viewer:s3cret@")
        with pytest.raises(EdgeError) as info:
            StreamSource(url, open_timeout=2.0)
    message = str(info.value)
    assert message.startswith("cannot open stream http://viewer:***@127.0.0.1:")
    assert "s3cret" not in message


def test_open_source_for_a_url_reports_reconnects(jpegs: list[bytes]) -> None:
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
            frames, error = collect(source)
    assert frames and error is not None
    assert [c[0] for c in calls] == [1]
