"""The three-field source description the CLI and the service used before the registry.

Kept as a thin adapter over :mod:`.registry` until the entry points build
sources from the kinds themselves; then this module goes. Its errors name the
kinds and options by their own names (camera, url, video, realtime, loop),
never a CLI flag or a config key: the entry point says where a value came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EdgeError
from .camera import CameraOptions
from .reader import ReconnectPolicy
from .registry import ReconnectCallback, SourceContext, source_kind
from .stream import StreamOptions
from .video_file import VideoOptions

if TYPE_CHECKING:
    from .base import FrameSource


@dataclass
class SourceSpec:
    """The source as the CLI describes it: exactly one of camera, url, video."""

    camera: str | None = None  # "0", "/dev/video2" or "picam"
    url: str | None = None
    video: Path | None = None
    realtime: bool = False
    loop: bool = False
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    on_reconnect: ReconnectCallback | None = None
    decode_threads: int | None = None  # FFmpeg's, for video and url (None: decode_threads_for(None))

    def check(self) -> None:
        given = [key for key in ("camera", "url", "video") if getattr(self, key) is not None]
        if len(given) != 1:
            got = f" (got {' and '.join(given)})" if given else ""
            raise EdgeError(f"give exactly one source: a camera, a url or a video{got}")
        if (self.realtime or self.loop) and self.video is None:
            raise EdgeError("realtime and loop apply to a video only")

    @property
    def live(self) -> bool:
        return self.video is None


def _options(spec: SourceSpec) -> tuple[str, Any]:
    """The kind key and its options for a checked spec."""
    if spec.video is not None:
        return "video", VideoOptions(spec.video, realtime=spec.realtime, loop=spec.loop)
    if spec.url is not None:
        policy = spec.reconnect
        return "url", StreamOptions(
            spec.url,
            reconnect_initial_delay=policy.initial_delay,
            reconnect_max_delay=policy.max_delay,
            reconnect_max_attempts=policy.max_attempts,
        )
    return "camera", CameraOptions(spec.camera or "")


def open_source(spec: SourceSpec) -> FrameSource:
    """Open the one source a :class:`SourceSpec` names (raises EdgeError on anything wrong)."""
    spec.check()
    key, options = _options(spec)
    context = SourceContext(decode_threads=spec.decode_threads, on_reconnect=spec.on_reconnect)
    return source_kind(key).open(options, context)
