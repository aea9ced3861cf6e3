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
RUNTIME_ENV = "MOVINET_EDGE_RUNTIME"
# What to pip install for each runtime module.
DISTRIBUTIONS = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}


@dataclass(frozen=True)
class Runtime:
    name: str
    version: str
    interpreter_class: Any


def find_runtime(preferred: str | None = None) -> Runtime:
    """The first importable runtime of RUNTIMES, or the one asked for.

    ``preferred`` (else ``$MOVINET_EDGE_RUNTIME``) names exactly one runtime:
    when it is not installed that is an error, not a silent fallback, because
    whoever set it (a benchmark, a device with a known-good runtime) wants to
    know which interpreter ran.
    """
    from_env = not preferred and bool(os.environ.get(RUNTIME_ENV))
    preferred = preferred or os.environ.get(RUNTIME_ENV) or None
    if preferred is not None and preferred not in RUNTIMES:
        where = f" in {RUNTIME_ENV}" if from_env else ""
        raise EdgeError(f"unknown runtime {preferred!r}{where}; choose one of {', '.join(RUNTIMES)}")
    order = (preferred,) if preferred else RUNTIMES
    for name in order:
        try:
            module = importlib.import_module(f"{name}.interpreter")
        except ImportError:
            continue
        try:
            from importlib.metadata import version

            ver = version(DISTRIBUTIONS[name])
        except Exception:  # noqa: BLE001 - a version is only for reports
            ver = "unknown"
        return Runtime(name=name, version=ver, interpreter_class=module.Interpreter)
    if preferred is not None:
        dist = DISTRIBUTIONS[preferred]
        if from_env:
            raise EdgeError(
                f"{RUNTIME_ENV} asks for {preferred}, which is not installed; "
                f"pip install {dist}, or unset {RUNTIME_ENV}"
            )
        raise EdgeError(f"runtime {preferred} is not installed; pip install {dist}")
    raise EdgeError(
        "no TFLite runtime found (ai-edge-litert or tflite-runtime); install one: pip install ai-edge-litert"
    )


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


_MADV_DONTNEED = 4  # Linux


def release_model_pages(path: Path) -> int:
    """Unmap the resident pages of the interpreter's mmap of ``path``; bytes released.

    The interpreter maps the whole model file, and delegating it to XNNPACK
    reads every weight once to pack its own copy, so all of the file stays
    in this process's resident set (15 MB for A0 float32) although the
    delegated ops never read it again. ``madvise(MADV_DONTNEED)`` on a
    read-only file mapping only drops the page-table entries: a page an op
    still reads (a built-in kernel's constants) faults back in from the page
    cache, so nothing changes but the resident size (A0 float32: 98 -> 84 MB
    after 20 steps, of which 64 kB came back). Best effort: does nothing
    where /proc or madvise is missing.
    """
    import ctypes

    target = str(Path(path).resolve())
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            spans = []
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].rstrip("\n") == target and "w" not in fields[1]:
                    start, end = (int(v, 16) for v in fields[0].split("-"))
                    spans.append((start, end - start))
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return sum(size for start, size in spans if madvise(start, size, _MADV_DONTNEED) == 0)
