"""Find a TFLite interpreter on the device, never TensorFlow.

Order: ``ai_edge_litert`` (the maintained successor, wheels for aarch64 and
Python 3.12+), then ``tflite_runtime`` (stops at Python 3.11, needs numpy<2).
``MOVINET_EDGE_RUNTIME=tflite_runtime`` forces one, for benchmarks.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EdgeError

RUNTIMES = ("ai_edge_litert", "tflite_runtime")


@dataclass(frozen=True)
class Runtime:
    name: str
    version: str
    interpreter_class: Any


def find_runtime(preferred: str | None = None) -> Runtime:
    preferred = preferred or os.environ.get("MOVINET_EDGE_RUNTIME") or None
    order = (preferred,) if preferred else RUNTIMES
    for name in order:
        if name not in RUNTIMES:
            raise EdgeError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
        try:
            module = importlib.import_module(f"{name}.interpreter")
        except ImportError:
            continue
        try:
            from importlib.metadata import version

            dist = "ai-edge-litert" if name == "ai_edge_litert" else "tflite-runtime"
            ver = version(dist)
        except Exception:  # noqa: BLE001 - a version is only for reports
            ver = "unknown"
        return Runtime(name=name, version=ver, interpreter_class=module.Interpreter)
    wanted = preferred or "ai-edge-litert or tflite-runtime"
    raise EdgeError(f"no TFLite runtime found ({wanted}); install one: pip install ai-edge-litert")


def is_tflite_file(path: Path) -> bool:
    """A TFLite flatbuffer carries the file identifier 'TFL3' at bytes 4..8."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] == b"TFL3"


def make_interpreter(path: Path, num_threads: int | None = None, runtime: Runtime | None = None) -> Any:
    """Load ``path`` into an interpreter with XNNPACK (the default CPU delegate)."""
    path = Path(path)
    if not path.is_file():
        raise EdgeError(f"model file {path} does not exist; export one with movinet-export")
    if not is_tflite_file(path):
        raise EdgeError(f"{path} is not a TFLite model (no TFL3 identifier); pass a model.tflite file")
    runtime = runtime or find_runtime()
    try:
        return runtime.interpreter_class(model_path=str(path), num_threads=num_threads)
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeError(f"{runtime.name} cannot load {path}: {first}") from None
