"""When a process has its SIGTERM handler: read from /proc, so a test can signal at chosen moments
of a start-up without racing the interpreter's own (before any program code runs, no handler can
exist; the kernel's default then ends the process)."""

from __future__ import annotations

import signal
import time
from pathlib import Path


def catches(pid: int, sig: int = signal.SIGTERM) -> bool:
    """Whether ``pid`` has a handler for ``sig`` (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def wait_for_handler(pid: int, timeout: float = 10.0) -> float:
    """Seconds until ``pid`` catches SIGTERM (measured from the call)."""
    start = time.monotonic()
    while not catches(pid):
        if time.monotonic() - start > timeout:
            raise AssertionError(f"process {pid} installed no SIGTERM handler within {timeout:g} s")
        time.sleep(0.002)
    return time.monotonic() - start
