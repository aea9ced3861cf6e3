"""A folder of numbered image frames (kind ``image-folder``), played at a given frame rate.

Frames exported by another tool, a time-lapse, or a camera that saves JPEGs:
``frame_0001.jpg``, ``frame_0002.jpg`` ... or ``1.png``, ``2.png`` ... ``10.png``.
Names are sorted naturally (the digits as numbers, so 10 comes after 9), and
frame ``i`` has timestamp ``i / fps``, because image files carry no time.
Like a video file, it is played as fast as the consumer takes frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EdgeError
from ..options import option, positive
from .base import FrameSource, to_rgb
from .registry import SourceContext, SourceKind, register, require_valid

if TYPE_CHECKING:
    import numpy as np

    from ..frames import Frame

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def natural_key(name: str) -> list[str | int]:
    """Sort key that compares runs of digits as numbers: frame_2 < frame_10."""
    parts = re.split(r"(\d+)", name.lower())
    # Even positions are text, odd ones digits: lists of this shape always compare.
    return [int(p) if i % 2 else p for i, p in enumerate(parts)]


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` in frame order (not recursive; hidden files skipped)."""
    files = [
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


class ImageFolderSource(FrameSource):
    """The images of a folder as frames at ``fps``; ``loop=True`` starts again at the end.

    Every image is decoded when its frame is taken; one that cannot be (not an
    image, truncated, deleted meanwhile) ends the run with an EdgeError naming
    the file, rather than a silent gap in the frames.
    """

    def __init__(self, path: str | Path, fps: float = 5.0, loop: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = f"image folder {self.path}"
        self.live = False
        if not fps > 0:
            raise EdgeError(f"image folder fps must be positive, got {fps:g}")
        self.fps = float(fps)
        self.loop = loop
        if not self.path.exists():
            raise EdgeError(f"image folder {self.path} does not exist")
        if not self.path.is_dir():
            raise EdgeError(f"image folder {self.path} is not a folder")
        try:
            self.files = list_images(self.path)
        except PermissionError:
            raise EdgeError(f"cannot read image folder {self.path}: permission denied") from None
        if not self.files:
            kinds = ", ".join(IMAGE_SUFFIXES)
            raise EdgeError(f"image folder {self.path} has no images ({kinds}); give the folder of the frames")
        #: The number of frames of one pass.
        self.frame_count: int | None = len(self.files)
        # Fail now on an unreadable first image, not mid-run; it is the first frame too.
        self._first: np.ndarray | None = self._load(self.files[0])
        self.height, self.width = self._first.shape[:2]

    def _load(self, file: Path) -> np.ndarray:
        import cv2

        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            if not file.exists():
                raise EdgeError(f"image {file} is gone: it was deleted or moved while in use")
            raise EdgeError(f"cannot read image {file}: not an image OpenCV can decode, or an incomplete file")
        return to_rgb(bgr)

    def _frames(self) -> Iterator[Frame]:
        from ..frames import Frame

        index = 0
        while not self._stopping.is_set():
            for file in self.files:
                if self._stopping.is_set():
                    return
                image = self._first if self._first is not None else self._load(file)
                self._first = None  # decoded by __init__: only ever the very first frame
                self.stats.frames += 1
                yield Frame(image, index / self.fps, index)
                index += 1
            if not self.loop:
                return


@dataclass
class ImageFolderOptions:
    """``image-folder``: numbered image files (frame_0001.jpg ...) played as frames."""

    path: Path = field(
        metadata=option("A folder of numbered frames (frame_0001.jpg, ...; jpg, png or bmp).", flag="--image-folder")
    )
    fps: float = field(
        default=5.0, metadata=option("The frame rate the images were taken at.", check=positive, flag="--image-fps")
    )
    loop: bool = field(default=False, metadata=option("Start again at the end (timestamps keep increasing)."))


def open_image_folder(options: ImageFolderOptions, context: SourceContext) -> ImageFolderSource:
    require_valid("image-folder", options)
    return ImageFolderSource(options.path, fps=options.fps, loop=options.loop)


KIND = register(
    SourceKind(
        key="image-folder",
        options=ImageFolderOptions,
        open=open_image_folder,
        live=False,
        help="Classify a folder of numbered image frames.",
    )
)
