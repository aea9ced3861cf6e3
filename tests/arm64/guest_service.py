"""``movinet-edge serve`` running in the emulated Pi, as systemd would run it on one.

The service is the guest's console script under qemu-user, with its config
file, model and clip read from host paths (qemu's ``-L`` falls back to the
host for paths not in the rootfs) and its sockets on the host's loopback
(qemu-user has no network of its own): the test's broker and HTTP client
reach it as they would a service on the same machine. A signal sent to the
qemu process is delivered to the guest Python, so SIGTERM is the real stop.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from arm64.qemu_user import Guest


class GuestService:
    """A running ``movinet-edge serve --config FILE`` in the guest; stderr and stdout collected."""

    def __init__(self, guest: Guest, config: Path) -> None:
        self.proc = subprocess.Popen(
            guest.command(["movinet-edge", "serve", "--config", str(config)]),
            env=guest.environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self._threads = [threading.Thread(target=self._collect, args=(stream, into), daemon=True)
                         for stream, into in ((self.proc.stderr, self.stderr), (self.proc.stdout, self.stdout))]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _collect(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def log(self) -> str:
        return "\n".join(self.stderr[-40:])

    def exited(self) -> int | None:
        return self.proc.poll()

    def http_url(self) -> str | None:
        """The address the service logged ("HTTP on http://..."), once it has."""
        for line in self.stderr:
            match = re.search(r"HTTP on (http://\S+)", line)
            if match:
                return match.group(1)
        return None

    def get(self, path: str) -> tuple[int, str]:
        url = self.http_url()
        assert url is not None, "the service has not logged its HTTP address yet"
        try:
            with urllib.request.urlopen(url + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, float]:
        """Send ``sig`` and wait for the exit: (exit code, seconds it took); kills after ``timeout``."""
        self.proc.send_signal(sig)
        started = time.monotonic()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the emulated service did not exit within {timeout:g} s of "
                                 f"{signal.Signals(sig).name}:\n{self.log()}") from None  # fmt: skip
        for thread in self._threads:
            thread.join(5)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
