#!/usr/bin/env python3
"""The memory of `movinet-edge serve`, for docs/raspberry-pi.md: resident set while it runs, and its peak.

    python tests/armhf/service_memory.py --model int8=models/a0_stream_int8 --model float16=models/a0_stream_float16
                                         [--clip CLIP] [--seconds 20] [--cache DIR]

Runs the service as a Pi would (the config the guide writes, with a looping clip
played at its own speed as the camera, HTTP on, no MQTT) under each runtime in
a venv of its own, as the guide installs it (kept in --cache):
``pip install '.[service]'`` for ai-edge-litert, ``pip install
'.[service,tflite-runtime]'`` for tflite-runtime 2.14 (numpy 1.x). VmRSS is sampled
from /proc every 0.2 s once the service answers /healthz; "peak" is the
kernel's high-water mark (VmHWM), start-up included. Prints a Markdown table.

Measured on the machine it runs on: under qemu-user the numbers would be qemu's
own, so this is not run in the emulated Pi. A speed or size target never lives
in a test; this script is where the numbers come from.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "clips" / "carving_ice.mp4"
SAMPLE_EVERY_S = 0.2
START_TIMEOUT_S = 120


@dataclass
class Measurement:
    runtime: str
    model: str
    steady_mb: float  # median VmRSS while running
    peak_mb: float  # VmHWM


def status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


EXTRAS = {"ai_edge_litert": "service", "tflite_runtime": "service,tflite-runtime"}


def venv_python(cache: Path, runtime: str) -> Path:
    """A venv with this checkout and the runtime's extras, made once (delete it to refresh)."""
    venv = cache / f"venv-{runtime}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"{REPO}[{EXTRAS[runtime]}]"], check=True)
    return python


def measure(python: Path, runtime: str, model: Path, clip: Path, seconds: float, folder: Path) -> Measurement:
    config = folder / f"{runtime}-{model.name}.toml"
    config.write_text(
        'device_id = "memory"\n'
        f'[model]\npath = "{model}"\nruntime = "{runtime}"\n'
        f'[source]\nvideo = "{clip}"\nrealtime = true\nloop = true\n'
        '[output]\nconsole = "none"\n[http]\nlisten = "127.0.0.1:0"\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MOVINET_EDGE_RUNTIME")}
    proc = subprocess.Popen([str(python), "-m", "movinet_edge.cli", "serve", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        url = _wait_for_http(proc)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:  # frames flowing: the model is loaded and stepping
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.5)
        samples = []
        end = time.monotonic() + seconds
        while time.monotonic() < end and proc.poll() is None:
            samples.append(status_kb(proc.pid, "VmRSS"))
            time.sleep(SAMPLE_EVERY_S)
        peak = status_kb(proc.pid, "VmHWM")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    if not samples:
        raise SystemExit(f"the service under {runtime} exited early: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
    samples.sort()
    return Measurement(runtime, model.name, samples[len(samples) // 2] / 1024, peak / 1024)


def _wait_for_http(proc: subprocess.Popen) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode} before serving HTTP")
        match = re.search(r"HTTP on (http://\S+)", line)
        if match:
            return match.group(1)
    raise SystemExit("the service did not log its HTTP address")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR",
                        help="a model folder to measure, named (int8=models/a0_stream_int8); repeatable")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "movinet-edge" / "service-memory")
    parser.add_argument("--runtimes", default="ai_edge_litert,tflite_runtime")
    args = parser.parse_args()
    models = [(name, Path(path).resolve()) for name, path in (m.split("=", 1) for m in args.model)]
    pythons = {runtime: venv_python(args.cache, runtime) for runtime in args.runtimes.split(",")}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for runtime in args.runtimes.split(","):
            for name, model in models:
                m = measure(pythons[runtime], runtime, model, args.clip.resolve(), args.seconds, Path(scratch))
                rows.append(f"| {runtime.replace('_', '-')} | {name} | {m.steady_mb:.0f} | {m.peak_mb:.0f} |")
                print(rows[-1], file=sys.stderr, flush=True)
    print("| runtime | model | steady MB | peak MB |\n|---|---|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
