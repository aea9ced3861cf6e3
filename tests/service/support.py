"""Helpers for the service tests: a mosquitto broker on a loopback port, a notify socket
the test owns, an MQTT subscriber, and `movinet-edge serve` as a subprocess (fixtures in
conftest.py). Waits are bounded (a test fails when one runs out). The one time the tests
assert is the promised shutdown: signal to exit within ``STOP_WITHIN`` seconds.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

WAIT = 30.0  # seconds any single wait may take before the test fails
STOP_WITHIN = 2.0  # issue 5: SIGTERM/SIGINT -> end events, offline, exit 0 within 2 s


# Set by .ci/run once apt-get has installed mosquitto, openssl and systemd: there a
# missing tool is a broken CI machine, and skipping would hide the tests it guards.
REQUIRE_TOOLS = "MOVINET_REQUIRE_TOOLS"


def missing_tool(reason: str) -> NoReturn:
    """Skip with ``reason`` (a developer machine may lack the tool), or fail under MOVINET_REQUIRE_TOOLS=1."""
    if os.environ.get(REQUIRE_TOOLS) == "1":
        pytest.fail(f"{REQUIRE_TOOLS}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


# ---- the broker ------------------------------------------------------------------------


class Broker:
    """A mosquitto process on 127.0.0.1:port with persistence in ``folder`` (survives restarts)."""

    def __init__(self, binary: str, folder: Path, listener_options: str = "", allow_anonymous: bool = True) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        folder.mkdir(parents=True, exist_ok=True)
        # `user`: mosquitto started as root would switch to the "mosquitto" account,
        # which cannot write the persistence file in a test's folder.
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"{listener_options}"
            f"allow_anonymous {'true' if allow_anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            f"user {getpass.getuser()}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=self.log.open("ab"), stderr=subprocess.STDOUT
        )

        def listening() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"mosquitto exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_until(listening, what=f"mosquitto on port {self.port}")

    def stop(self) -> None:
        """A clean stop (SIGTERM): mosquitto saves sessions and queued messages."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


# ---- an MQTT subscriber ------------------------------------------------------------------


@dataclass
class Received:
    topic: str
    payload: str
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A paho client that records everything under ``topic``.

    ``persistent``: a fixed client id without clean session and QoS 1, so the
    broker keeps its subscription and queues messages across a broker restart
    (with persistence) and while it reconnects - how a fleet's consumer
    that must not lose events subscribes.
    """

    def __init__(self, port: int, topic: str, client_id: str = "test-subscriber", persistent: bool = True) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self.topic = topic
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent, protocol=mqtt.MQTTv311
        )
        self.client.reconnect_delay_set(1, 2)
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self.subscribed.wait(WAIT):
            pytest.fail("the test subscriber did not get its subscription")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, msg.payload.decode(), bool(msg.retain)))

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def events(self, topic: str) -> list[dict[str, Any]]:
        return [m.json() for m in self.on(topic)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- the notify socket ---------------------------------------------------------------------


class NotifySocket:
    """The socket systemd would listen on: NOTIFY_SOCKET points here; datagrams are kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        """Read what has arrived (each datagram may hold several VAR=value lines)."""
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                return self.messages
            for line in data.decode().splitlines():
                if line:
                    self.messages.append(line)

    def wait_for(self, predicate: Callable[[list[str]], Any], what: str) -> Any:
        return wait_until(lambda: predicate(self.drain()), what=what)

    def close(self) -> None:
        self.sock.close()


# ---- the service as a subprocess ---------------------------------------------------------


def serve_command() -> list[str]:
    script = Path(sys.executable).with_name("movinet-edge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "movinet_edge.cli"]


class ServiceProcess:
    """``movinet-edge serve`` running; stderr is collected by a thread (the HTTP address is in it)."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
        self.proc = subprocess.Popen(
            [*serve_command(), "serve", *args],
            env=full_env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self.stopped_in: float | None = None  # seconds from the stop signal to the exit, once stopped
        self._threads = [
            threading.Thread(target=self._collect, args=(self.proc.stderr, self.stderr), daemon=True),
            threading.Thread(target=self._collect, args=(self.proc.stdout, self.stdout), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _collect(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def log(self) -> str:
        return "\n".join(self.stderr[-40:])

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"the service exited with {self.proc.returncode}:\n{self.log()}")
        return True

    @property
    def http_url(self) -> str:
        def find() -> str | None:
            self.alive()
            for line in self.stderr:
                match = re.search(r"HTTP on (http://\S+)", line)
                if match:
                    return match.group(1)
            return None

        return wait_until(find, what="the service's HTTP address in its log")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.http_url + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> dict[str, float]:
        """Sample name (with labels) -> value, from /metrics through Prometheus' own parser."""
        from prometheus_client.parser import text_string_to_metric_families

        status, text = self.get("/metrics")
        assert status == 200
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = WAIT, within: float | None = STOP_WITHIN) -> int:
        """Send ``sig``, wait for the exit, and fail unless it came within ``within`` seconds.

        The time runs from the signal to the moment the process is reaped (the
        exit status is polled every 10 ms, so it reads at most that much late) and
        is kept in ``stopped_in``; the exit code is returned for the caller to check.
        """
        self.proc.send_signal(sig)
        started = time.monotonic()
        deadline = started + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"the service did not exit within {timeout:g} s of {signal.Signals(sig).name}:\n{self.log()}")
            time.sleep(0.01)
        self.stopped_in = time.monotonic() - started
        rc = self.proc.returncode
        for t in self._threads:
            t.join(5)
        print(f"{signal.Signals(sig).name}: exit {rc} {self.stopped_in:.2f} s after the signal")
        if within is not None and self.stopped_in > within:
            pytest.fail(f"the service took {self.stopped_in:.2f} s to exit after {signal.Signals(sig).name} "
                        f"(promised: within {within:g} s):\n{self.log()}")
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path

