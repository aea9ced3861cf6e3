"""Fixtures for the service tests: real parts only (see support.py).

The broker is Debian's ``mosquitto`` binary (``apt-get install mosquitto``),
started with a configuration of our own on a free port, never the system
service; tests that need it are skipped with the reason when it is missing (they fail
instead under ``MOVINET_REQUIRE_TOOLS=1``, which .ci/run sets after installing it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.support import Broker, NotifySocket, ServiceProcess, Subscriber, missing_tool, write_config


def _mosquitto() -> str:
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if os.access(p, os.X_OK)), None
    )
    if binary is None:
        missing_tool("mosquitto is not installed (Debian: apt-get install mosquitto); the MQTT tests need a broker")
    return binary


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Brokers with listener options of the test's choosing (TLS, passwords), started."""
    binary = _mosquitto()
    made: list[Broker] = []

    def make(name: str = "broker", **kwargs: Any) -> Broker:
        b = Broker(binary, tmp_path / name, **kwargs)
        made.append(b)
        b.start()
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def broker(make_broker: Callable[..., Broker]) -> Broker:
    """A plain broker: anonymous, loopback, persistent sessions."""
    return make_broker()


@pytest.fixture
def subscribe() -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(port: int, topic: str, **kwargs: Any) -> Subscriber:
        sub = Subscriber(port, topic, **kwargs)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    # AF_UNIX paths are limited to ~108 bytes: pytest's tmp_path can be longer.

    folder = Path(tempfile.mkdtemp(prefix="mvn-notify-"))
    ns = NotifySocket(folder / "notify.sock")
    try:
        yield ns
    finally:
        ns.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def start_service() -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(*args: object, env: dict[str, str] | None = None) -> ServiceProcess:
        service = ServiceProcess([str(a) for a in args], env=env)
        started.append(service)
        return service

    yield start
    for service in started:
        service.kill()


@pytest.fixture
def looped_clip_config(tmp_path: Path, float_model_dir: Path, clips: Path) -> Callable[..., Path]:
    """A config that plays carving_ice.mp4 as a camera and reports one steady action.

    The test model has random weights (every class near 1/600), so the events
    are made deterministic: thresholds at 0 and one allowed label give a "new"
    at the second step, an "update" every 0.5 s and an "end" at shutdown.
    """

    def make(name: str = "service.toml", device_id: str = "dev-a", mqtt_port: int | None = None,
             extra: str = "") -> Path:
        mqtt = (
            f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\nqos = 1\nreconnect_max_delay = 1.0\n'
            if mqtt_port
            else ""
        )
        return write_config(
            tmp_path / name,
            f'device_id = "{device_id}"\n'
            "[model]\n"
            f'path = "{float_model_dir}"\n'
            "threads = 1\n"
            "[source]\n"
            f'video = "{clips / "carving_ice.mp4"}"\n'
            "realtime = true\nloop = true\n"
            "[events]\n"
            'start_threshold = 0.0\nend_threshold = 0.0\nallow = ["brush painting"]\nupdate_every = 0.5\n'
            "[output]\nconsole = \"events\"\n"
            '[http]\nlisten = "127.0.0.1:0"\n'
            f"{mqtt}{extra}",
        )

    return make

