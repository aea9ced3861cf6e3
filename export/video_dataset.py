"""Find a user's labelled videos on disk and split them into train / val / test.

Two layouts are accepted, the ones video datasets ship in:

- one folder per class (UCF101, HMDB51 after unpacking)::

      DATA_DIR/<class>/<video>            -> a stratified test split is held out

- split folders of class folders::

      DATA_DIR/train/<class>/<video>
      DATA_DIR/test/<class>/<video>       (optional: else held out of train)
      DATA_DIR/val/<class>/<video>        (optional; also "valid", "validation")

Videos may sit in subfolders of a class folder. Classes are the train split's
class folder names, sorted, so the label order is stable across runs and
machines. Every video is opened once here (header and first frame, in
parallel threads: OpenCV releases the GIL while decoding), so a file that
cannot be decoded is reported and skipped before training starts instead of
failing an epoch hours in, and never counted as a sample.

This module does not import TensorFlow: a wrong folder fails in a second.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from movinet_edge.errors import EdgeError
from movinet_edge.progress import Progress
from movinet_edge.sources import VideoFileSource, quiet_opencv_logs

from .errors import ExportError

#: Containers OpenCV's FFmpeg reads that hold video; other files are ignored (and counted).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts"}
)
SPLIT_NAMES = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}
_MAX_LISTED = 20  # skipped files listed one per line; the rest counted


@dataclass(frozen=True)
class VideoItem:
    """One labelled video that opened and decoded a first frame.

    ``duration`` (seconds, from the container's frame count and rate) bounds
    the random start of a training window; None where the header does not say.
    """

    path: Path
    label: int
    duration: float | None = None


@dataclass(frozen=True)
class SkippedVideo:
    path: Path
    reason: str


@dataclass
class VideoDataset:
    """The classes and the videos of each split, as training and evaluation use them."""

    root: Path
    layout: str  # "class-folders" or "split-folders"
    classes: list[str]
    train: list[VideoItem]
    test: list[VideoItem]
    val: list[VideoItem] = field(default_factory=list)
    skipped: list[SkippedVideo] = field(default_factory=list)
    ignored_files: int = 0  # files without a video suffix
    test_held_out: bool = False  # test split taken out of the training videos
    # The folder of the training class folders: ``root`` or its train/ folder. What
    # a later ``movinet-export --calibration-videos`` should calibrate on.
    train_root: Path | None = None

    @property
    def selection_split(self) -> str:
        """The split that picks the best epoch: val when there is one, else test."""
        return "val" if self.val else "test"

    def split(self, name: str) -> list[VideoItem]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def counts(self) -> dict[str, list[int]]:
        """Videos per class in each split (for the report)."""
        out = {}
        for name in ("train", "val", "test"):
            counts = np.bincount([v.label for v in self.split(name)], minlength=len(self.classes))
            out[name] = [int(c) for c in counts]
        return out

    def summary(self) -> str:
        parts = [f"{len(self.classes)} classes", f"train {len(self.train)}"]
        if self.val:
            parts.append(f"val {len(self.val)}")
        parts.append(f"test {len(self.test)}" + (" (held out of train)" if self.test_held_out else ""))
        if self.skipped:
            parts.append(f"{len(self.skipped)} unreadable skipped")
        if self.ignored_files:
            parts.append(f"{self.ignored_files} non-video files ignored")
        return f"{self.root}: " + ", ".join(parts)


def discover(
    data_dir: Path,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> VideoDataset:
    """Scan ``data_dir``, open every video once, and return the splits.

    Raises :class:`ExportError` (one line) for an empty or missing folder,
    fewer than two classes, a class without readable training videos, or
    test/val classes that train does not have.
    """
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise ExportError(f"data folder {data_dir} does not exist; pass a folder of class folders of videos")
    if not data_dir.is_dir():
        raise ExportError(f"{data_dir} is not a folder; pass a folder of class folders of videos")
    quiet_opencv_logs()
    folders = _subfolders(data_dir)
    split_dirs = {name: _find_split(folders, aliases) for name, aliases in SPLIT_NAMES.items()}
    if split_dirs["train"] is not None:
        layout = "split-folders"
        others = [f.name for f in folders if f not in split_dirs.values()]
        if others:
            raise ExportError(
                f"{data_dir} has split folders and other folders ({', '.join(others[:5])}); "
                "put every class folder inside train/, val/ or test/"
            )
        train_root = split_dirs["train"]
    elif split_dirs["test"] is not None or split_dirs["val"] is not None:
        raise ExportError(f"{data_dir} has test/ or val/ folders but no train/ folder; add train/<class>/<videos>")
    else:
        layout = "class-folders"
        train_root = data_dir
    assert train_root is not None

    classes = [f.name for f in _subfolders(train_root)]
    if not classes:
        raise ExportError(
            f"no class folders in {train_root}; put the videos of each class in a folder named after it"
        )
    if len(classes) < 2:
        raise ExportError(
            f"only one class ({classes[0]}) in {train_root}; a classifier needs at least two class folders"
        )
    for name in classes:
        if "\n" in name or "\r" in name:
            raise ExportError(f"class folder name {name!r} has a line break; rename it (labels are one a line)")
    index = {name: i for i, name in enumerate(classes)}

    # Collect (path, label, split) before opening anything, so one pool opens them all.
    wanted: list[tuple[Path, int, str]] = []
    ignored = 0
    for split in ("train", "val", "test"):
        root = train_root if split == "train" else split_dirs[split]
        if root is None:
            continue
        for class_dir in _subfolders(root):
            if class_dir.name not in index:
                raise ExportError(
                    f"{class_dir} is a class that {train_root} does not have; "
                    "every test/val class needs training videos"
                )
            videos, others = _videos_in(class_dir)
            ignored += others
            wanted.extend((path, index[class_dir.name], split) for path in videos)
        if split == "train" and not wanted:
            raise ExportError(f"no video files in the class folders of {train_root} "
                              f"(looked for {', '.join(sorted(VIDEO_SUFFIXES))})")

    probes = _probe_all([w[0] for w in wanted], workers, progress)
    splits: dict[str, list[VideoItem]] = {"train": [], "val": [], "test": []}
    skipped: list[SkippedVideo] = []
    for (path, label, split), (duration, error) in zip(wanted, probes):
        if error is not None:
            skipped.append(SkippedVideo(path, error))
        else:
            splits[split].append(VideoItem(path, label, duration))
    if skipped and progress:
        report_skipped(skipped)
    if not any(splits.values()):
        raise ExportError(
            f"none of the {len(wanted)} videos in {data_dir} could be decoded "
            f"(first: {skipped[0].path}: {skipped[0].reason}); check the files and the OpenCV/FFmpeg build"
        )
    per_class = np.bincount([v.label for v in splits["train"]], minlength=len(classes))
    empty = [classes[i] for i in range(len(classes)) if per_class[i] == 0]
    if empty:
        raise ExportError(
            f"class {empty[0]} has no readable training videos"
            + (f" ({len(empty) - 1} more classes neither)" if len(empty) > 1 else "")
            + "; add videos or remove the class folder"
        )

    held_out = False
    if split_dirs["test"] is None:
        if not 0.0 < test_fraction < 1.0:
            raise ExportError(f"test fraction {test_fraction} must be between 0 and 1 (exclusive)")
        splits["train"], splits["test"] = stratified_split(splits["train"], test_fraction, seed)
        held_out = True
    if not splits["test"]:
        raise ExportError(f"the test split of {data_dir} has no readable videos; add videos to test/<class>/")
    return VideoDataset(
        root=data_dir,
        layout=layout,
        classes=classes,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        skipped=skipped,
        ignored_files=ignored,
        test_held_out=held_out,
        train_root=train_root,
    )


def stratified_split(items: list[VideoItem], fraction: float, seed: int) -> tuple[list[VideoItem], list[VideoItem]]:
    """Hold out ``fraction`` of each class (at least one video where a class has two or more).

    A class with a single video stays in train: it cannot be both learnt and tested.
    """
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[VideoItem]] = {}
    for item in items:
        by_class.setdefault(item.label, []).append(item)
    train: list[VideoItem] = []
    test: list[VideoItem] = []
    for label in sorted(by_class):
        group = by_class[label]
        order = rng.permutation(len(group))
        n_test = 0 if len(group) < 2 else min(len(group) - 1, max(1, int(round(len(group) * fraction))))
        chosen = set(order[:n_test].tolist())
        for i, item in enumerate(group):
            (test if i in chosen else train).append(item)
    return train, test


def report_skipped(skipped: Iterable[SkippedVideo], stream=None) -> None:  # noqa: ANN001 - a text stream
    """One line per unreadable video on stderr (the first few), then a count."""
    stream = stream or sys.stderr
    items = list(skipped)
    for item in items[:_MAX_LISTED]:
        print(f"skipping unreadable video {item.path}: {item.reason}", file=stream)
    if len(items) > _MAX_LISTED:
        print(f"... and {len(items) - _MAX_LISTED} more unreadable videos (all listed in metrics.json)", file=stream)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _find_split(folders: list[Path], aliases: tuple[str, ...]) -> Path | None:
    for folder in folders:
        if folder.name.lower() in aliases:
            return folder
    return None


def _videos_in(class_dir: Path) -> tuple[list[Path], int]:
    """Video files under a class folder (recursively, sorted) and how many other files there were."""
    videos, others = [], 0
    for path in sorted(class_dir.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(class_dir).parts) or not path.is_file():
            continue
        if path.suffix.lower() in VIDEO_SUFFIXES:
            videos.append(path)
        else:
            others += 1
    return videos, others


def probe_video(path: Path) -> tuple[float | None, str | None]:
    """(duration in seconds or None, None) for a readable video, (None, reason) otherwise."""
    try:
        with VideoFileSource(path) as source:
            if source.fps and source.frame_count:
                return source.frame_count / source.fps, None
            return None, None
    except EdgeError as exc:
        return None, _reason(str(exc), path)


def _reason(message: str, path: Path) -> str:
    # The edge reader's messages start with "video PATH ..." or "cannot read video PATH: ...";
    # the report already names the file.
    text = message.replace(f"video {path} ", "").replace(f"cannot read video {path}: ", "")
    return text


def _probe_all(paths: list[Path], workers: int | None, progress: bool) -> list[tuple[float | None, str | None]]:
    workers = workers or min(8, os.cpu_count() or 1)
    results: list[tuple[float | None, str | None]] = []
    probe: Callable[[Path], tuple[float | None, str | None]] = probe_video
    with Progress(len(paths), "scanning videos", unit="videos", quiet=not progress) as bar:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(probe, paths):
                results.append(result)
                bar.update()
    return results
