"""Where frames come from: one module per kind of source, found through :mod:`.registry`.

Kinds: ``video`` (:mod:`.video_file`), ``url`` (:mod:`.stream`), ``camera``
(:mod:`.camera`, and :mod:`.picamera` for the Pi camera), ``image-folder``
(:mod:`.image_folder`). A new kind is one new module here that registers
itself; :func:`source_kinds` finds it.

Problems a user can fix become :class:`~movinet_edge.errors.EdgeError` with one
line saying what to do; OpenCV's own console chatter can be silenced with
:func:`quiet_opencv_logs` so that line is all a user sees.

The names below are imported on first use (PEP 562), so that importing the
registry or listing the kinds does not load OpenCV and numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import FrameSource, SourceStats, decode_threads_for, open_ffmpeg_capture, quiet_opencv_logs, to_rgb
    from .camera import CameraOptions, CameraSource
    from .image_folder import ImageFolderOptions, ImageFolderSource
    from .picamera import PICAMERA_HINT, PiCameraSource
    from .reader import ReconnectPolicy
    from .registry import (
        ReconnectCallback,
        RecoveredCallback,
        SourceContext,
        SourceKind,
        register,
        source_kind,
        source_kinds,
    )
    from .stream import StreamOptions, StreamSource
    from .video_file import VideoFileSource, VideoOptions

_HOMES = {
    "FrameSource": "base",
    "SourceStats": "base",
    "decode_threads_for": "base",
    "open_ffmpeg_capture": "base",
    "quiet_opencv_logs": "base",
    "to_rgb": "base",
    "CameraOptions": "camera",
    "CameraSource": "camera",
    "ImageFolderOptions": "image_folder",
    "ImageFolderSource": "image_folder",
    "PICAMERA_HINT": "picamera",
    "PiCameraSource": "picamera",
    "ReconnectPolicy": "reader",
    "ReconnectCallback": "registry",
    "RecoveredCallback": "registry",
    "SourceContext": "registry",
    "SourceKind": "registry",
    "register": "registry",
    "source_kind": "registry",
    "source_kinds": "registry",
    "StreamOptions": "stream",
    "StreamSource": "stream",
    "VideoFileSource": "video_file",
    "VideoOptions": "video_file",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
