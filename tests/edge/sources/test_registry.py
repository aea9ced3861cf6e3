"""The source registry: the kinds the package's modules register, the order they are listed
in, a new kind that is one new file, and that listing them stays cheap (no OpenCV, no numpy)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from movinet_edge.errors import EdgeError
from movinet_edge.options import flag_of
from movinet_edge.sources.registry import SourceKind, source_kind, source_kinds


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_the_package_modules_register_their_kinds_in_order() -> None:
    kinds = source_kinds()
    assert list(kinds) == ["video", "url", "camera", "image-folder"]
    assert {k: (v.config_key, v.target, v.live) for k, v in kinds.items()} == {
        "video": ("video", "path", False),
        "url": ("url", "url", True),
        "camera": ("camera", "device", True),
        "image-folder": ("image_folder", "path", False),
    }
    # Each kind comes from its own module.
    assert {k: v.open.__module__.rpartition(".")[2] for k, v in kinds.items()} == {
        "video": "video_file", "url": "stream", "camera": "camera", "image-folder": "image_folder",
    }  # fmt: skip
    assert source_kinds() == kinds and source_kinds() is not kinds  # discovered once; a copy each time


def test_every_option_is_declared_with_help_and_shared_ones_agree() -> None:
    seen: dict[str, tuple[str, object, str]] = {}
    for kind in source_kinds().values():
        assert kind.help and "\n" not in kind.help
        fields = dataclasses.fields(kind.options)
        assert flag_of(fields[0]) == f"--{kind.key}"  # the target's flag is the kind's
        for f in fields:
            assert f.metadata.get("help"), f"{kind.key}.{f.name} has no help"
        for f in fields[1:]:
            signature = (str(f.type), f.default, flag_of(f))
            assert seen.setdefault(f.name, signature) == signature, f.name
    assert seen["loop"] == ("bool", False, "--loop")  # video and image-folder share --loop
    assert seen["fps"][2] == "--image-fps"
    flags = [flag_of(f) for kind in source_kinds().values() for f in dataclasses.fields(kind.options)
             if f.metadata.get("cli", True)]  # fmt: skip
    assert "--fps" not in flags


def test_an_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(EdgeError) as info:
        source_kind("webcam")
    assert str(info.value) == "unknown source kind 'webcam'; known: video, url, camera, image-folder"


def test_listing_the_kinds_imports_neither_opencv_nor_numpy(clips: Path) -> None:
    """``--help`` and the config loader list the kinds; OpenCV and numpy load when a source opens.
    The last step opens one, to show the check sees them when they are there."""
    result = run_python(
        f"""
        import json, sys
        heavy = lambda: sorted(m for m in ("cv2", "numpy") if m in sys.modules)
        steps = {{}}
        import movinet_edge.sources.registry
        steps["registry"] = heavy()
        from movinet_edge.sources.registry import source_kinds
        kinds = source_kinds()
        steps["kinds"] = heavy()
        from movinet_edge.sources import VideoFileSource, ReconnectPolicy
        steps["names"] = heavy()
        VideoFileSource({str(clips / "rope_pushdown.mp4")!r}).close()
        steps["opened"] = heavy()
        print(json.dumps([list(kinds), steps]))
        """
    )
    assert result.returncode == 0, result.stderr
    kinds, steps = json.loads(result.stdout)
    assert kinds == ["video", "url", "camera", "image-folder"]
    assert steps == {"registry": [], "kinds": [], "names": [], "opened": ["cv2", "numpy"]}


NOISE_KIND = '''
"""A test kind: frames of random noise. One file, registered at import."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from movinet_edge.frames import Frame
from movinet_edge.options import option, positive
from movinet_edge.sources.base import FrameSource
from movinet_edge.sources.registry import SourceKind, register, require_valid


class NoiseSource(FrameSource):
    def __init__(self, side, loop):
        super().__init__()
        self.name = f"noise {side}"
        self.side = side

    def _frames(self):
        rng = np.random.default_rng(0)
        for i in range(3):
            yield Frame(rng.integers(0, 256, (self.side, self.side, 3), dtype=np.uint8), i / 10, i)


@dataclass
class NoiseOptions:
    side: int = field(metadata=option("Frame side in pixels.", check=positive))
    loop: bool = field(default=False, metadata=option("Start again at the end (timestamps keep increasing)."))


def open_noise(options, context):
    require_valid("noise", options)
    return NoiseSource(options.side, options.loop)


KIND = register(SourceKind("noise", NoiseOptions, open_noise, live=False, help="Random frames."))
'''


def test_a_new_kind_is_one_new_module(tmp_path: Path) -> None:
    """A module dropped next to the others (here: a folder added to the package's path) is found,
    listed after the built-in kinds, and opens; its errors come out in its own words."""
    (tmp_path / "noise.py").write_text(NOISE_KIND)
    result = run_python(
        f"""
        import json
        import movinet_edge.sources as package
        package.__path__.append({str(tmp_path)!r})
        from movinet_edge.errors import EdgeError
        from movinet_edge.sources.registry import SourceContext, source_kind, source_kinds
        kind = source_kind("noise")
        with kind.open(kind.options(7), SourceContext()) as source:
            frames = [(f.index, f.timestamp, f.image.shape) for f in source]
        try:
            kind.open(kind.options(0), SourceContext())
        except EdgeError as exc:
            error = str(exc)
        try:
            source_kind("nope")
        except EdgeError as exc:
            unknown = str(exc)
        print(json.dumps([list(source_kinds()), kind.target, frames, error, unknown]))
        """
    )
    assert result.returncode == 0, result.stderr
    keys, target, frames, error, unknown = json.loads(result.stdout)
    assert keys == ["video", "url", "camera", "image-folder", "noise"]
    assert target == "side"
    assert frames == [[0, 0.0, [7, 7, 3]], [1, 0.1, [7, 7, 3]], [2, 0.2, [7, 7, 3]]]
    assert error == "noise 0: must be positive, got 0"
    assert unknown == "unknown source kind 'nope'; known: video, url, camera, image-folder, noise"


def test_a_shared_option_that_disagrees_is_refused(tmp_path: Path) -> None:
    """Two kinds' ``loop`` is one flag and one key: a kind declaring it with another default is a bug."""
    disagreeing = NOISE_KIND.replace("loop: bool = field(default=False", "loop: bool = field(default=True")
    (tmp_path / "noise.py").write_text(disagreeing)
    result = run_python(
        f"""
        import movinet_edge.sources as package
        package.__path__.append({str(tmp_path)!r})
        from movinet_edge.sources.registry import source_kinds
        source_kinds()
        """
    )
    assert result.returncode != 0
    assert "TypeError: source kinds" in result.stderr and "both declare 'loop' but differ" in result.stderr


def test_a_kind_registered_twice_is_refused() -> None:
    video = source_kind("video")
    from movinet_edge.sources.registry import register

    assert register(video) is video  # the same kind again (a module imported twice) is harmless
    with pytest.raises(ValueError, match="source kind 'video' is registered twice"):
        register(SourceKind("video", video.options, video.open, live=True, help="another"))
