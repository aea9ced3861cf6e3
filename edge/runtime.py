"""Find a TFLite interpreter on the device, never TensorFlow.

Two runtimes run our models (docs/raspberry-pi.md says which install gets which):

- ``ai_edge_litert`` (pip ``ai-edge-litert``): the maintained one, the default.
  Wheels for Linux x86_64 and aarch64, Python 3.10-3.14; none for 32-bit ARM.
- ``tflite_runtime`` (pip ``tflite-runtime``): 2.14 is its last release. The
  only runtime for 32-bit ARM (armv7l), Python <= 3.11, built for numpy 1.x.
  Its XNNPACK build takes no int8 convolutions (int8 models run 4-8x slower
  than on ai-edge-litert) and it has no int8 DIV kernel, so the "naive" int8
  recipe (int8 states and pools) cannot run on it; float32, float16,
  dynamic-range and the selective int8 recipe (any input type) do.

Which one runs: the name given to :func:`find_runtime` (the command line's or
the service configuration's choice), else ``$MOVINET_EDGE_RUNTIME``, else the
first of :data:`RUNTIMES` that is installed. A runtime asked for by name is
never replaced by another: whoever names it wants to know which interpreter
ran, so a missing one is a one-line error saying what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EdgeError
from .model_path import MAKE_MODEL_HINT

RUNTIMES = ("ai_edge_litert", "tflite_runtime")
RUNTIME_ENV = "MOVINET_EDGE_RUNTIME"
# What to pip install for each runtime module.
DISTRIBUTIONS = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}
# tflite-runtime with the numpy (and OpenCV) it was built for.
TFLITE_RUNTIME_SPEC = "'movinet-edge[tflite-runtime]'"
TFLITE_RUNTIME_EXTRA = f"pip install {TFLITE_RUNTIME_SPEC}"
# uname machines of a 32-bit ARM userland: a 32-bit kernel, or `linux32` on a 64-bit one.
ARM32_MACHINES = ("armv7l", "armv8l")
# Where each runtime has wheels, for the hint when it is missing.
_TFLITE_RUNTIME_MACHINES = ("x86_64", "aarch64", *ARM32_MACHINES)
_TFLITE_RUNTIME_LAST_PYTHON = (3, 11)


@dataclass(frozen=True)
class Runtime:
    name: str
    version: str
    interpreter_class: Any


def find_runtime(name: str | None = None) -> Runtime:
    """The runtime called ``name`` (one of :data:`RUNTIMES`, or its pip name), or the first installed.

    ``name`` None: ``$MOVINET_EDGE_RUNTIME`` if set, else ai_edge_litert, else
    tflite_runtime. A named runtime that is missing, or installed but unable
    to load (tflite-runtime beside numpy 2), is an :class:`EdgeError` of one
    line that says what to install; so is finding none at all.
    """
    from_env = name is None and bool(os.environ.get(RUNTIME_ENV))
    requested = name if name is not None else (os.environ.get(RUNTIME_ENV) or None)
    if requested is not None:
        canonical = requested.strip().replace("-", "_")
        if canonical not in RUNTIMES:
            where = f" in {RUNTIME_ENV}" if from_env else ""
            raise EdgeError(f"unknown runtime {requested!r}{where}; choose one of {', '.join(RUNTIMES)}")
        runtime, problem = _load(canonical)
        if runtime is not None:
            return runtime
        if from_env:
            raise EdgeError(f"{RUNTIME_ENV} asks for {canonical}, but {problem}, or unset {RUNTIME_ENV}")
        raise EdgeError(problem)
    problems = []
    for candidate in RUNTIMES:
        runtime, problem = _load(candidate)
        if runtime is not None:
            return runtime
        if _is_installed(candidate):
            problems.append(problem)  # installed but unusable: say why, not "none found"
    if problems:
        raise EdgeError(problems[0])
    raise EdgeError(_none_found())


def _is_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that fails to import, or a module whose spec is unset
        return False


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(DISTRIBUTIONS[module])
    except Exception:  # noqa: BLE001 - a version is only for reports
        return "unknown"


def _load(module: str) -> tuple[Runtime | None, str]:
    """(the runtime, "") or (None, why it cannot run here, with what to do: one line)."""
    dist = DISTRIBUTIONS[module]
    if not _is_installed(module):
        return None, _missing(module)
    version = _version(module)
    if module == "tflite_runtime":
        # Built against numpy 1.x: under numpy 2 it prints a page to stderr and fails in the
        # interpreter's constructor. Say it here, in one line, before anything is loaded.
        import numpy

        if int(numpy.__version__.split(".")[0]) >= 2:
            fix = "pip install 'numpy<2'" if _is_arm32() else (
                f"pip install 'numpy<2' 'opencv-python-headless<4.12' (what {TFLITE_RUNTIME_SPEC} installs)"
            )
            why = f"is built for numpy 1.x and cannot run beside numpy {numpy.__version__}"
            return None, f"{dist} {version} {why}; {fix}"
    try:
        interpreter_module = importlib.import_module(f"{module}.interpreter")
    except ImportError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"{dist} {version} is installed but does not load ({first}); pip install --force-reinstall {dist}"
    return Runtime(name=module, version=version, interpreter_class=interpreter_module.Interpreter), ""


def _is_arm32() -> bool:
    return platform.machine() in ARM32_MACHINES or (platform.machine() == "aarch64" and sys.maxsize < 2**32)


def _tflite_runtime_has_wheels() -> bool:
    return (
        sys.platform == "linux"
        and sys.version_info[:2] <= _TFLITE_RUNTIME_LAST_PYTHON
        and (platform.machine() in _TFLITE_RUNTIME_MACHINES)
    )


def _python() -> str:
    return f"Python {sys.version_info[0]}.{sys.version_info[1]}"


def _missing(module: str) -> str:
    """'X is not installed; <what to do>' for this machine and Python."""
    dist = DISTRIBUTIONS[module]
    if module == "tflite_runtime":
        if _tflite_runtime_has_wheels():
            return f"{dist} is not installed; {TFLITE_RUNTIME_EXTRA}"
        return (f"{dist} is not installed and has no wheel for {_python()} on {platform.machine()} "
                f"(its last release, 2.14, stops at Python 3.11 on Linux); use ai_edge_litert")  # fmt: skip
    if _is_arm32():
        return f"{dist} has no wheels for 32-bit ARM; use tflite_runtime, or a 64-bit OS"
    return f"{dist} is not installed; pip install {dist}"


def _none_found() -> str:
    if _is_arm32():
        if _tflite_runtime_has_wheels():
            return f"no TFLite runtime found; on 32-bit ARM only tflite-runtime runs: {TFLITE_RUNTIME_EXTRA}"
        return (f"no TFLite runtime found, and none has wheels for 32-bit ARM with {_python()} "
                "(tflite-runtime stops at Python 3.11); use a 64-bit OS, or Raspberry Pi OS Bookworm (Python 3.11)")
    return "no TFLite runtime found (ai-edge-litert or tflite-runtime); install one: pip install ai-edge-litert"


def is_tflite_file(path: Path) -> bool:
    """A TFLite flatbuffer carries the file identifier 'TFL3' at bytes 4..8."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] == b"TFL3"


def make_interpreter(path: Path, num_threads: int | None = None, runtime: Runtime | None = None) -> Any:
    """Load ``path`` into an interpreter with XNNPACK (the default CPU delegate).

    On tflite_runtime the model is also checked to run (:func:`check_runs`), so
    that a model only ai-edge-litert runs fails here, in one line, instead of
    at the first frame of a camera.
    """
    path = Path(path)
    if not path.is_file():
        raise EdgeError(f"model file {path} does not exist; {MAKE_MODEL_HINT}")
    if not is_tflite_file(path):
        raise EdgeError(f"{path} is not a TFLite model (no TFL3 identifier); pass a model.tflite file")
    runtime = runtime or find_runtime()
    try:
        interpreter = runtime.interpreter_class(model_path=str(path), num_threads=num_threads)
    except (ValueError, RuntimeError) as exc:
        first = _first_line(exc)
        if runtime.name == "tflite_runtime" and "Didn't find op" in first:
            # An op (or op version) newer than tflite-runtime 2.14 knows.
            why = f"tflite-runtime {runtime.version} cannot load it ({first})"
            raise EdgeError(f"{path} needs ai-edge-litert: {why}") from None
        raise EdgeError(f"{runtime.name} cannot load {path}: {first}") from None
    if runtime.name == "tflite_runtime":
        check_runs(interpreter, runtime, path)
    return interpreter


# Kernels tflite-runtime 2.14 lacks for a tensor type that our exports produce: DIV takes
# float32, int32 and uint8 only (the naive int8 recipe divides int8 pool sums).
_TFLITE_RUNTIME_MISSING_KERNELS = {("DIV", "int8"): "the naive int8 recipe's pools"}


def unsupported_ops(interpreter: Any) -> list[tuple[str, str, int]]:
    """(op, input type, count) of the ops in the model that tflite-runtime 2.14 has no kernel for."""
    counts: dict[tuple[str, str], int] = {}
    try:
        ops = interpreter._get_ops_details()
        details = {d["index"]: d for d in interpreter.get_tensor_details()}
    except Exception:  # noqa: BLE001 - a private API: without it the trial invoke still decides
        return []
    for op in ops:
        for index in op.get("inputs", ()):
            detail = details.get(int(index))
            if detail is None:
                continue
            key = (str(op.get("op_name")), getattr(detail["dtype"], "__name__", str(detail["dtype"])))
            if key in _TFLITE_RUNTIME_MISSING_KERNELS:
                counts[key] = counts.get(key, 0) + 1
                break
    return [(op, dtype, n) for (op, dtype), n in counts.items()]


def check_runs(interpreter: Any, runtime: Runtime, path: Path) -> None:
    """Raise one line when ``runtime`` cannot run this model: a known missing kernel, else one trial step.

    The op list names the known case (int8 DIV) without running anything; the
    trial invoke on the zero inputs catches whatever else an older runtime
    lacks (a kernel fails in its prepare or its first eval, whatever the
    data). It costs one step at load, on tflite_runtime only.
    """
    missing = unsupported_ops(interpreter)
    if missing:
        what = ", ".join(f"{op} on {dtype} ({n} ops: {_TFLITE_RUNTIME_MISSING_KERNELS[(op, dtype)]})"
                         for op, dtype, n in missing)  # fmt: skip
        raise EdgeError(
            f"{path} needs ai-edge-litert: tflite-runtime {runtime.version} has no kernel for {what}; "
            "on a 64-bit OS pip install ai-edge-litert, or run a float32, float16, dynamic or selective int8 export"
        )
    try:
        interpreter.allocate_tensors()
        interpreter.invoke()
    except (RuntimeError, ValueError) as exc:
        raise EdgeError(
            f"{path} needs ai-edge-litert: tflite-runtime {runtime.version} cannot run it ({_first_line(exc)}); "
            "on a 64-bit OS pip install ai-edge-litert, or run a float32, float16, dynamic or selective int8 export"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


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
