"""Cold start and peak memory: fresh ``movinet-edge`` processes, measured from outside.

A process's ``ru_maxrss`` is only honest when taken by someone who did not
fork it while holding memory of its own (see :func:`cold_start_once`), so the
processes measured here are started through a small launcher process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .bench_results import ColdStart
from .errors import EdgeError

COLD_START_TIMEOUT_S = 300.0


def edge_command() -> list[str]:
    """The ``movinet-edge`` console script of this environment (or ``python -m`` it)."""
    script = Path(sys.executable).with_name("movinet-edge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "movinet_edge.cli"]


_RSS_MARK = "movinet-bench-peak-rss-kib="
# Forks from a process of a few MB, execs the command, waits for it and appends
# its own ru_maxrss to stderr; exits with the command's status.
_RSS_LAUNCHER = f"""
import os, sys, time
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
anon = shared = 0
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    anon = max(anon, int(line.split()[1]))
                elif line.startswith("RssFile:"):
                    shared = max(shared, int(line.split()[1]))
    except OSError:
        pass
    time.sleep(0.01)
sys.stderr.write("\\n{_RSS_MARK}%d %d %d\\n" % (usage.ru_maxrss, anon, shared))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def cold_start_once(model: Path, clip: Path, threads: int, runtime: str | None = None,
                    timeout: float = COLD_START_TIMEOUT_S) -> tuple[float, tuple[float, float, float], list[str]]:
    """Spawn ``movinet-edge --video CLIP --json``: (seconds to first prediction, memory, command).

    Memory is (peak RSS, peak private RSS, peak file-backed RSS) in MB. The
    process runs the whole clip so that the peaks cover a real run, not only
    the start. It is started by a small launcher process (see
    :data:`_RSS_LAUNCHER`) because Linux carries the high-water RSS of the
    process that forks into the child's ``ru_maxrss`` across exec: spawned
    straight from a benchmark that holds models and frames, every child
    "peaked" at the benchmark's own size (225 MB measured for a 105 MB run).
    The launcher also samples the child's RssAnon and RssFile every 10 ms: the
    file-backed part (the shared libraries' pages) depends on the page cache,
    not on us (identical wheels measured 48 MB in one venv, 77 MB in a freshly
    installed one, at the same 37 MB private).
    """
    command = [*edge_command(), "--video", str(clip), "--model", str(model), "--json",
               "--no-window", "--threads", str(threads)]  # fmt: skip
    launched = [sys.executable, "-c", _RSS_LAUNCHER, *command]
    env = {k: v for k, v in os.environ.items() if k != "MOVINET_EDGE_MODEL"}
    if runtime:
        env["MOVINET_EDGE_RUNTIME"] = runtime
    with tempfile.TemporaryFile() as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(launched, stdout=subprocess.PIPE, stderr=stderr, env=env)
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            first_line = proc.stdout.readline()
            first = time.perf_counter() - t0
            proc.stdout.read()  # the rest of the predictions: let it finish the clip
            proc.wait()
        finally:
            watchdog.cancel()
            if proc.returncode is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        stderr.seek(0)
        lines = stderr.read().decode(errors="replace").strip().splitlines()
        peaks_kib = None
        if lines and lines[-1].startswith(_RSS_MARK):
            peaks_kib = [int(v) for v in lines.pop()[len(_RSS_MARK):].split()]
        if proc.returncode != 0 or not first_line.strip() or peaks_kib is None:
            why = lines[-1] if lines else f"exit status {proc.returncode}"
            raise EdgeError(f"cold-start run of movinet-edge failed: {why}")
    # ru_maxrss and /proc are in KiB on Linux (macOS is not a target).
    total, private, shared = (v / 1024.0 for v in peaks_kib)
    return first, (total, private, shared), command


def bench_cold_start(model: Path, clip: Path, threads: int, runs: int, runtime: str | None = None,
                     on_run: Callable[[int], None] | None = None) -> ColdStart:
    """``runs`` fresh processes; ``on_run(i)`` is called before each (progress)."""
    times: list[float] = []
    peak = private = shared = 0.0
    command: list[str] = []
    for i in range(runs):
        if on_run is not None:
            on_run(i)
        seconds, (rss, anon, files), command = cold_start_once(model, clip, threads, runtime)
        times.append(seconds)
        peak, private, shared = max(peak, rss), max(private, anon), max(shared, files)
    return ColdStart(threads=threads, runs=times, peak_rss_mb=peak, peak_private_mb=private,
                     peak_file_backed_mb=shared, command=command)
