"""The Pi's commands of docs/raspberry-pi.md, as the guide gives them.

A fenced block whose info string is ``sh pi-test`` runs on every Pi, ``sh
pi-test-32`` only on the 32-bit OS (armhf), ``sh pi-test-64`` only on the 64-bit
one (arm64). Other blocks (the workstation's, systemctl, the camera) are for
reading. The packages the guide's ``apt install`` lines name are what the
emulated tree must be built with, so the tree's recipe is read from here too.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "raspberry-pi.md"
TAGS = {"armhf": ("pi-test", "pi-test-32"), "arm64": ("pi-test", "pi-test-64")}
# Raspberry Pi OS packages that Debian does not have; the emulated tree cannot get them.
RASPBERRY_PI_ONLY = ("python3-picamera2", "rpicam-apps", "libcamera-apps")
_FENCE = re.compile(r"^```(\S*)\s*(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    tag: str
    text: str


def blocks(guide: Path = GUIDE) -> list[Block]:
    """Every fenced block tagged pi-test*, in the guide's order."""
    found: list[Block] = []
    lines = guide.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match or not match.group(1):
            i += 1
            continue
        start, tag, body = i + 1, match.group(2), []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        if tag.startswith("pi-test"):
            found.append(Block(start, tag, "\n".join(body) + "\n"))
        i += 1
    return found


def blocks_for(arch: str, guide: Path = GUIDE) -> list[Block]:
    return [b for b in blocks(guide) if b.tag in TAGS[arch]]


def apt_packages(arch: str, guide: Path = GUIDE) -> tuple[str, ...]:
    """The packages the guide's ``apt install`` lines for ``arch`` name (Raspberry Pi-only ones left out)."""
    names: list[str] = []
    for block in blocks_for(arch, guide):
        for line in block.text.splitlines():
            words = shlex.split(line, comments=True)
            if "apt" in words[:2] or "apt-get" in words[:2]:
                rest = words[words.index("install") + 1:] if "install" in words else []
                names += [w for w in rest if not w.startswith("-") and w not in RASPBERRY_PI_ONLY]
    return tuple(dict.fromkeys(names))
