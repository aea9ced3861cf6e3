"""Where benchmark numbers were taken: CPU, cores, memory, software versions, load average.

Timings on a busy machine are noisy: the load average before and after a run
is recorded so that a reader can judge them.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class MachineInfo:
    """Where the numbers were taken; docs/benchmarks.md quotes it."""

    cpu: str
    machine: str
    cores: int
    usable_cores: int
    memory_gb: float
    system: str
    python: str
    numpy: str
    opencv: str
    runtime: str
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None

    def summary(self) -> str:
        load = ""
        if self.load_before is not None:
            load = f", load average {self.load_before[0]:.2f} before"
            if self.load_after is not None:
                load += f" / {self.load_after[0]:.2f} after"
        return (
            f"{self.cpu} ({self.machine}), {self.usable_cores} of {self.cores} cores usable, "
            f"{self.memory_gb:.1f} GB RAM, {self.system}, Python {self.python}, numpy {self.numpy}, "
            f"OpenCV {self.opencv}, {self.runtime}{load}"
        )


def _cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    try:  # Raspberry Pi OS on arm64 names the board only in the device tree
        return Path("/proc/device-tree/model").read_text(errors="replace").strip("\x00 \n")
    except OSError:
        return platform.processor() or platform.machine()


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def load_average() -> tuple[float, float, float] | None:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return None


def machine_info(runtime: str | None = None) -> MachineInfo:
    import cv2

    from .runtime import find_runtime

    rt = find_runtime(runtime)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return MachineInfo(
        cpu=_cpu_name(),
        machine=platform.machine(),
        cores=os.cpu_count() or 1,
        usable_cores=usable,
        memory_gb=round(_memory_gb(), 2),
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        numpy=np.__version__,
        opencv=cv2.__version__,
        runtime=f"{rt.name} {rt.version}",
        load_before=load_average(),
    )
