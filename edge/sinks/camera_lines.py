"""One console for several cameras: every line says which camera it is about.

The console and JSON-lines sinks write to a text stream; with several cameras
each gets this wrapper around the shared stdout, so a human line starts with
``[door]`` and a JSON line gains ``"camera": "door"`` (it stays one JSON
object), without either sink knowing about cameras.
"""

from __future__ import annotations

import io
from typing import TextIO


class CameraLines(io.TextIOBase):
    """Writes each line to ``out`` with the camera id in front (several cameras on one console)."""

    def __init__(self, out: TextIO, tag: str) -> None:
        self.out = out
        self.tag = tag
        self._at_start = True

    def write(self, text: str) -> int:
        json_line = text.startswith("{")
        if json_line and self._at_start:
            # JSON lines get the camera as a key, so each line stays one JSON object.
            text = '{"camera":"' + self.tag + '",' + text[1:]
        else:
            lines = text.split("\n")
            text = "\n".join(
                (f"[{self.tag}] {line}" if line and (i > 0 or self._at_start) else line) for i, line in enumerate(lines)
            )
        self._at_start = text.endswith("\n")
        self.out.write(text)
        return len(text)

    def flush(self) -> None:
        self.out.flush()
