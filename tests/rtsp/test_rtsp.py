"""`movinet-edge --url rtsp://...` against a real RTSP server, through a server outage.

The server is GStreamer's gst-rtsp-server (rtsp_server.py, Debian's Python and
packages) serving the carving_ice clip in a loop, paced like a camera. The
command runs a fixed number of model steps; part way through, the server is
killed (SIGKILL, as a camera losing power) and started again on the same
port. The command must notice, say so, reconnect, and finish its steps with
exit 0.

Skips, saying what to install, where GStreamer's RTSP server is missing
(MOVINET_REQUIRE_TOOLS=1, set by .ci/run after installing it, fails instead).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from service.support import free_port, missing_tool, wait_until

HERE = Path(__file__).resolve().parent
SERVER = HERE / "rtsp_server.py"
# Debian's Python: python3-gi and the typelibs are installed for it, not for a venv.
SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
PROBE = """
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [name for name in ("filesrc", "qtdemux", "h264parse", "rtph264pay") if Gst.ElementFactory.find(name) is None]
print(" ".join(missing))
"""
STEPS = 30  # 6 s of stream at the model's 5 fps
STEPS_BEFORE_OUTAGE = 5
RUN_TIMEOUT_S = 180  # a hang guard: the run takes about 10 s


@pytest.fixture(scope="module")
def rtsp_server_python() -> str:
    """The Python that can run rtsp_server.py, or a skip naming the Debian packages."""
    if not Path(SYSTEM_PYTHON).is_file():
        missing_tool(f"no {SYSTEM_PYTHON} for GStreamer's RTSP server (Debian: apt-get install {PACKAGES})")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", PROBE], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        missing_tool(f"GStreamer's RTSP server is not installed ({last}); Debian: apt-get install {PACKAGES}")
    if probe.stdout.strip():
        missing_tool(f"GStreamer elements {probe.stdout.strip()} are missing; Debian: apt-get install {PACKAGES}")
    return SYSTEM_PYTHON


class RtspServer:
    """rtsp_server.py on a loopback port, started and killed by the test."""

    def __init__(self, python: str, clip: Path, port: int, folder: Path) -> None:
        self.python, self.clip, self.port, self.folder = python, clip, port, folder
        self.url = f"rtsp://127.0.0.1:{port}/test"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.folder / f"rtsp_server.{self.starts}.log").open("w")
        self.proc = subprocess.Popen([self.python, str(SERVER), "--port", str(self.port), str(self.clip)],
                                     stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"rtsp_server.py exited with {self.proc.returncode}: {self.log()}")
            return f"listening on {self.url}" in self.log()

        wait_until(listening, what=f"the RTSP server on port {self.port}")

    def log(self) -> str:
        return (self.folder / f"rtsp_server.{self.starts}.log").read_text(errors="replace")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def _edge_command() -> list[str]:
    script = Path(sys.executable).with_name("movinet-edge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "movinet_edge.cli"]


def test_rtsp_stream_survives_a_server_restart(
    rtsp_server_python: str, float_model_dir: Path, clips: Path, tmp_path: Path
) -> None:
    server = RtspServer(rtsp_server_python, clips / "carving_ice.mp4", free_port(), tmp_path)
    server.start()
    stdout: list[str] = []
    stderr: list[str] = []
    command = [*_edge_command(), "--url", server.url, "--model", str(float_model_dir),
               "--max-steps", str(STEPS), "--json"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    readers = [threading.Thread(target=lambda s=s, into=into: into.extend(line.rstrip("\n") for line in s), daemon=True)
               for s, into in ((proc.stdout, stdout), (proc.stderr, stderr))]  # fmt: skip
    for reader in readers:
        reader.start()

    def predictions() -> list[dict]:
        return [json.loads(line) for line in list(stdout) if '"prediction"' in line]

    try:
        wait_until(lambda: proc.poll() is None and len(predictions()) >= STEPS_BEFORE_OUTAGE, timeout=60,
                   what=f"{STEPS_BEFORE_OUTAGE} predictions from the stream")
        server.kill()  # a camera that loses power
        outage_at = len(predictions())
        time.sleep(1.0)
        server.start()
        proc.wait(RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.kill()
    for reader in readers:
        reader.join(5)
    log = "\n".join(stderr)
    assert proc.returncode == 0, log
    assert "Traceback" not in log
    steps = predictions()
    assert [p["step"] for p in steps] == list(range(1, STEPS + 1)), log
    assert outage_at < STEPS, "the run ended before the server went away; the outage tested nothing"
    # The outage was seen and told, and the frames came back from the restarted server.
    assert any("reconnecting in" in line for line in stderr), log
    assert any("frames are back after" in line for line in stderr), log
    assert server.starts == 2 and "listening on" in server.log()
