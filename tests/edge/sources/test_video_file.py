"""Video files on real parts: the test clips, broken files, and a file deleted while it plays."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from movinet_edge.errors import EdgeError
from movinet_edge.frames import Frame
from movinet_edge.sources import VideoFileSource, decode_threads_for, quiet_opencv_logs
from movinet_edge.sources.registry import SourceContext, source_kind
from movinet_edge.sources.video_file import VideoOptions

quiet_opencv_logs()


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


# --- a file that goes away while it plays -----------------------------------------------


def test_a_looped_video_deleted_while_playing_says_it_is_gone(tmp_path: Path, clips: Path) -> None:
    """The open pass plays to its end (the decoder holds the file open); the next pass cannot
    reopen it, and the error says the file is gone rather than that it is not a video."""
    path = tmp_path / "clip.mp4"
    shutil.copyfile(clips / "rope_pushdown.mp4", path)
    frames: list[Frame] = []
    with VideoFileSource(path, loop=True) as source:
        with pytest.raises(EdgeError) as info:
            for frame in source:
                frames.append(frame)
                if len(frames) == 1:
                    path.unlink()
    assert len(frames) == 50  # the whole first pass
    assert str(info.value) == f"video {path} is gone: it was deleted or moved while in use"


def test_a_looped_video_emptied_while_playing_has_no_frames(tmp_path: Path, clips: Path) -> None:
    path = tmp_path / "clip.mp4"
    shutil.copyfile(clips / "rope_pushdown.mp4", path)
    with VideoFileSource(path, loop=True) as source:
        with pytest.raises(EdgeError, match=r"clip\.mp4 has no frames \(the file is empty\)"):
            for frame in source:
                if frame.index == 0:
                    os.truncate(path, 0)


def test_a_video_replaced_by_garbage_while_playing_is_still_unreadable(tmp_path: Path, clips: Path) -> None:
    """Only a missing file is 'gone': one that is there but broken keeps the decoder's message."""
    path = tmp_path / "clip.mp4"
    shutil.copyfile(clips / "rope_pushdown.mp4", path)
    with VideoFileSource(path, loop=True) as source:
        with pytest.raises(EdgeError, match="cannot read video .*not a video OpenCV can decode"):
            for frame in source:
                if frame.index == 0:
                    path.unlink()
                    path.write_bytes(b"not a video" * 1000)


# --- the kind ---------------------------------------------------------------------------


def test_the_video_kind_opens_a_file_with_the_context_decoder_threads(clips: Path) -> None:
    kind = source_kind("video")
    assert kind.options is VideoOptions and kind.target == "path" and not kind.live
    options = VideoOptions(clips / "rope_pushdown.mp4", loop=True)
    with kind.open(options, SourceContext(decode_threads=3)) as source:
        assert isinstance(source, VideoFileSource) and source.loop and not source.realtime
        assert source._cap.get(cv2.CAP_PROP_N_THREADS) == 3
        assert [f.index for _, f in zip(range(60), source)] == list(range(60))  # past the end: looped
    with kind.open(VideoOptions(clips / "rope_pushdown.mp4"), SourceContext()) as source:
        assert source.decode_threads == decode_threads_for(None)
