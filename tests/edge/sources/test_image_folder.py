"""A folder of numbered image frames, written with OpenCV into tmp_path: order, timestamps,
formats, looping, and the files that cannot be played."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from movinet_edge.errors import EdgeError
from movinet_edge.frames import Frame
from movinet_edge.sources import ImageFolderSource, quiet_opencv_logs
from movinet_edge.sources.image_folder import ImageFolderOptions, natural_key
from movinet_edge.sources.registry import SourceContext, source_kind

quiet_opencv_logs()


def picture(n: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A BGR picture that says which frame it is: the number in the pixels, and a gradient."""
    height, width = size
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 0] = n * 10  # blue: the frame number
    image[:, :, 1] = np.arange(width, dtype=np.uint8)[None, :] * 3  # green: left to right
    image[:, :, 2] = 200  # red
    return image


def write_frames(folder: Path, names: list[str]) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for n, name in enumerate(names):
        image = picture(n)
        assert cv2.imwrite(str(folder / name), image)
        written[name] = image
    return written


def test_frames_play_in_natural_order_with_timestamps_from_the_rate(tmp_path: Path) -> None:
    names = [f"frame_{i}.png" for i in range(1, 13)]  # 1..12: "frame_10" sorts after "frame_9"
    written = write_frames(tmp_path / "frames", names)
    (tmp_path / "frames" / "notes.txt").write_text("not a frame")
    (tmp_path / "frames" / ".hidden.png").write_bytes(b"")
    with ImageFolderSource(tmp_path / "frames", fps=4.0) as source:
        assert not source.live and source.fps == 4.0 and source.frame_count == 12
        assert (source.width, source.height) == (64, 48)
        frames = list(source)
    assert [f.index for f in frames] == list(range(12))
    assert [f.timestamp for f in frames] == [i / 4.0 for i in range(12)]
    for frame, name in zip(frames, names, strict=True):
        assert isinstance(frame, Frame) and frame.image.dtype == np.uint8
        np.testing.assert_array_equal(frame.image, written[name][:, :, ::-1])  # RGB; PNG is lossless
    assert source.stats.frames == 12


def test_natural_sort_of_names() -> None:
    names = ["img10.jpg", "img2.jpg", "img1.jpg", "IMG3.jpg", "a_2_b10.png", "a_2_b9.png", "a_10_b1.png"]
    assert sorted(names, key=natural_key) == [
        "a_2_b9.png", "a_2_b10.png", "a_10_b1.png", "img1.jpg", "img2.jpg", "IMG3.jpg", "img10.jpg",
    ]  # fmt: skip


def test_jpeg_png_and_bmp_mix_and_gray_images_become_rgb(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    assert cv2.imwrite(str(folder / "0001.jpg"), picture(1))
    assert cv2.imwrite(str(folder / "0002.JPEG"), picture(2))
    assert cv2.imwrite(str(folder / "0003.bmp"), picture(3))
    gray = np.full((48, 64), 90, np.uint8)
    assert cv2.imwrite(str(folder / "0004.png"), gray)
    with ImageFolderSource(folder) as source:
        frames = list(source)
    assert len(frames) == 4 and all(f.image.shape == (48, 64, 3) for f in frames)
    np.testing.assert_array_equal(frames[2].image, picture(3)[:, :, ::-1])  # BMP: lossless
    assert np.abs(frames[0].image.astype(int) - picture(1)[:, :, ::-1]).mean() < 3  # JPEG: close
    assert (frames[3].image == 90).all()
    assert [f.timestamp for f in frames] == [0.0, 0.2, 0.4, pytest.approx(0.6)]  # the default 5 fps


def test_loop_keeps_counting(tmp_path: Path) -> None:
    written = write_frames(tmp_path / "f", ["a1.png", "a2.png", "a3.png"])
    with ImageFolderSource(tmp_path / "f", fps=10.0, loop=True) as source:
        frames = [f for _, f in zip(range(8), source)]
    assert [f.index for f in frames] == list(range(8))
    assert [f.timestamp for f in frames] == pytest.approx([i / 10 for i in range(8)])
    np.testing.assert_array_equal(frames[3].image, written["a1.png"][:, :, ::-1])
    np.testing.assert_array_equal(frames[7].image, written["a2.png"][:, :, ::-1])


def test_stop_ends_a_looping_folder(tmp_path: Path) -> None:
    write_frames(tmp_path / "f", ["1.png", "2.png"])
    with ImageFolderSource(tmp_path / "f", loop=True) as source:
        it = iter(source)
        next(it)
        source.stop()
        assert list(it) == []


def test_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(EdgeError) as info:
        ImageFolderSource(tmp_path / "nope")
    assert str(info.value) == f"image folder {tmp_path / 'nope'} does not exist"


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    assert cv2.imwrite(str(tmp_path / "one.png"), picture(1))
    with pytest.raises(EdgeError, match=r"image folder .*one\.png is not a folder"):
        ImageFolderSource(tmp_path / "one.png")


def test_a_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("frames go here")
    (tmp_path / "sub").mkdir()
    assert cv2.imwrite(str(tmp_path / "sub" / "1.png"), picture(1))  # not recursive
    with pytest.raises(EdgeError) as info:
        ImageFolderSource(tmp_path)
    assert str(info.value) == (
        f"image folder {tmp_path} has no images (.jpg, .jpeg, .png, .bmp); give the folder of the frames"
    )


def test_an_unreadable_image_is_named(tmp_path: Path) -> None:
    """The frames before it play; the broken one ends the run with its name, not a silent gap."""
    folder = tmp_path / "f"
    write_frames(folder, ["f1.png", "f2.png", "f3.png", "f4.png"])
    (folder / "f3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 10)
    frames = []
    with ImageFolderSource(folder) as source:
        with pytest.raises(EdgeError) as info:
            for frame in source:
                frames.append(frame)
    assert len(frames) == 2
    assert str(info.value) == (
        f"cannot read image {folder / 'f3.png'}: not an image OpenCV can decode, or an incomplete file"
    )


def test_an_unreadable_first_image_fails_at_open(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "0.jpg").write_bytes(b"")
    assert cv2.imwrite(str(folder / "1.jpg"), picture(1))
    with pytest.raises(EdgeError, match=r"cannot read image .*0\.jpg: not an image"):
        ImageFolderSource(folder)


def test_an_image_deleted_while_playing_is_gone(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    write_frames(folder, ["1.png", "2.png", "3.png"])
    with ImageFolderSource(folder) as source:
        with pytest.raises(EdgeError) as info:
            for frame in source:
                if frame.index == 0:
                    (folder / "2.png").unlink()
    assert str(info.value) == f"image {folder / '2.png'} is gone: it was deleted or moved while in use"


# --- the kind ---------------------------------------------------------------------------


def test_the_image_folder_kind(tmp_path: Path) -> None:
    write_frames(tmp_path / "f", ["1.png", "2.png", "3.png"])
    kind = source_kind("image-folder")
    assert kind.config_key == "image_folder" and kind.target == "path" and not kind.live
    with kind.open(ImageFolderOptions(tmp_path / "f", fps=2.0, loop=True), SourceContext(name="bench")) as source:
        frames = [f for _, f in zip(range(5), source)]
    assert [f.timestamp for f in frames] == [0.0, 0.5, 1.0, 1.5, 2.0]
    with pytest.raises(EdgeError) as info:
        kind.open(ImageFolderOptions(tmp_path / "f", fps=0.0), SourceContext())
    assert str(info.value) == "image-folder fps: must be positive, got 0"
