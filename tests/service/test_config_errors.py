"""Configuration errors found only when the service starts (a port in use, a CA file that is not a
certificate) exit 78 like the others, before the model is loaded, so systemd does not restart in a loop."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from service.support import serve_command

EX_CONFIG = 78


def _serve(config: Path) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = subprocess.run([*serve_command(), "serve", "--config", str(config)], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    return result, time.monotonic() - start


def test_http_port_in_use_exits_78_before_the_model(looped_clip_config: Callable[..., Path], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = looped_clip_config()
        text = config.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
        config.write_text(text)
        result, took = _serve(config)
    assert result.returncode == EX_CONFIG, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"127.0.0.1:{port}" in lines[0], result.stderr
    assert "cannot listen there" in lines[0]
    assert "model" not in "".join(result.stdout), result.stdout  # nothing was loaded or served
    print(f"port in use refused in {took:.2f} s")


def test_a_ca_file_that_is_not_a_certificate_exits_78(looped_clip_config: Callable[..., Path], tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("this is not a certificate\n")
    config = looped_clip_config(mqtt_port=1883, extra=f'[mqtt.tls]\nenabled = true\nca_file = "{ca}"\n')
    result, took = _serve(config)
    assert result.returncode == EX_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    problem = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(problem) == 1 and str(ca) in problem[0], result.stderr
    assert not any("model " in line and "classes" in line for line in result.stderr.splitlines()), result.stderr
    print(f"bad CA file refused in {took:.2f} s")
