"""What an operator sees when the broker cannot be reached: a WARNING with the reason (host
name not found, connection refused, not authorised) within seconds, then quiet retries, INFO
when it is back, and the state in MqttStats for /healthz. Bad TLS material stops the start
with the file named (exit 78)."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("paho.mqtt", reason="the MQTT sink needs the [service] extra (paho-mqtt)")
from movinet_edge.errors import EdgeError
from movinet_edge.sinks.mqtt import MqttOptions, MqttSink, TlsOptions

from service.support import free_port, missing_tool, wait_until

LOGGER = "movinet_edge.sinks.mqtt"


@pytest.fixture
def sinks() -> Iterator[Callable[..., MqttSink]]:
    made: list[MqttSink] = []

    def make(options: MqttOptions, device_id: str = "cam1") -> MqttSink:
        sink = MqttSink(options, device_id)
        made.append(sink)
        return sink.start()

    yield make
    for sink in made:
        sink.close()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def attempts(caplog: pytest.LogCaptureFixture) -> int:
    return sum("cannot reach" in r.getMessage() for r in caplog.records if r.name == LOGGER)


def test_an_unknown_host_is_a_warning_with_the_reason_once(sinks, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    sink = sinks(MqttOptions(host="no-such-host.invalid", reconnect_min_delay=0.2, reconnect_max_delay=1.0))
    wait_until(lambda: attempts(caplog) >= 3, what="three tries")
    (message,) = warnings(caplog)  # the retries after it are at debug level, for a minute
    assert message.startswith("MQTT: cannot reach no-such-host.invalid:1883: host name not found (DNS: ")
    assert message.endswith("; retrying")
    stats = sink.stats
    assert not stats.connected and not stats.ever_connected
    assert stats.last_error.startswith("host name not found")
    assert stats.down_for() > 0


def test_a_refused_port_is_a_warning_with_the_reason(sinks, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    port = free_port()  # nothing listens there
    sink = sinks(MqttOptions(host="127.0.0.1", port=port))
    wait_until(lambda: warnings(caplog), timeout=5, what="the warning")
    assert warnings(caplog) == [
        f"MQTT: cannot reach 127.0.0.1:{port}: connection refused (nothing listens on that port); retrying"
    ]
    assert sink.stats.last_error == "connection refused (nothing listens on that port)"


def test_a_server_that_never_answers_is_a_warning(sinks, caplog) -> None:
    """What a black hole that accepts TCP looks like (a firewall's proxy, a port of something else)."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    silent = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    try:
        port = silent.getsockname()[1]
        sink = sinks(MqttOptions(host="127.0.0.1", port=port, keepalive=5))
        wait_until(lambda: warnings(caplog), timeout=15, what="the warning")
        assert warnings(caplog) == [f"MQTT: cannot reach 127.0.0.1:{port}: no answer to CONNECT within the keepalive "
                                    "(Keep alive timeout); is it an MQTT broker?; retrying"]  # fmt: skip
        assert sink.stats.last_error.startswith("no answer to CONNECT")
    finally:
        silent.close()
        for conn in accepted:
            conn.close()


def test_bad_credentials_are_a_warning_saying_not_authorised(make_broker, sinks, caplog, tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        missing_tool("mosquitto_passwd is not installed (Debian package mosquitto)")
    passwords = tmp_path / "passwd"
    passwords.touch()
    subprocess.run([tool, "-b", str(passwords), "cam1", "s3cret"], check=True, capture_output=True)
    passwords.chmod(0o600)
    broker = make_broker("auth", listener_options=f"password_file {passwords}\n", allow_anonymous=False)
    caplog.set_level(logging.INFO, logger=LOGGER)
    sink = sinks(MqttOptions(host="127.0.0.1", port=broker.port, username="cam1", password="wrong"))
    wait_until(lambda: warnings(caplog), timeout=5, what="the warning")
    message = warnings(caplog)[0]
    assert message.startswith(f"MQTT: cannot reach 127.0.0.1:{broker.port}: not authorised")
    assert "not authorised" in sink.stats.last_error and not sink.stats.connected


def test_lost_and_back_are_logged_and_kept_in_the_stats(broker, sinks, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    sink = sinks(MqttOptions(host="127.0.0.1", port=broker.port, reconnect_max_delay=1.0))
    wait_until(lambda: sink.stats.connected, what="the connection")
    up_since = sink.stats.since
    assert sink.stats.ever_connected and sink.stats.last_error is None
    broker.stop()
    wait_until(lambda: not sink.stats.connected, what="the loss")
    assert sink.stats.since > up_since
    wait_until(lambda: len(warnings(caplog)) >= 2, what="the loss and a failed reconnect")
    lost, retry = warnings(caplog)[:2]
    assert lost.startswith(f"MQTT: lost the connection to 127.0.0.1:{broker.port}")
    assert retry.endswith("connection refused (nothing listens on that port); retrying")
    broker.start()
    wait_until(lambda: sink.stats.connected, what="the reconnection")
    infos = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.INFO]
    assert any(m.startswith(f"MQTT: connected to 127.0.0.1:{broker.port} again after") for m in infos)
    assert sink.stats.connects == 2


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def test_tls_material_that_is_not_a_certificate_stops_the_start(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.crt"
    not_pem.write_text("this is not a certificate\n")
    with pytest.raises(EdgeError) as info:
        MqttSink(MqttOptions(host="127.0.0.1", tls=TlsOptions(enabled=True, ca_file=not_pem)), "cam1")
    assert info.value.exit_code == 78
    assert str(info.value).startswith(f"MQTT TLS: the CA file {not_pem} holds no certificate")
    assert "\n" not in str(info.value)

    if shutil.which("openssl") is None:
        missing_tool("openssl is not installed (Debian package openssl); it makes the test's keys")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=client",
             "-keyout", "client.key", "-out", "client.crt", cwd=tmp_path)
    _openssl("genrsa", "-out", "other.key", "2048", cwd=tmp_path)
    key, cert, other = tmp_path / "client.key", tmp_path / "client.crt", tmp_path / "other.key"
    # A key where the certificate belongs.
    with pytest.raises(EdgeError) as info:
        MqttSink(MqttOptions(host="h", tls=TlsOptions(enabled=True, cert_file=key, key_file=key)), "cam1")
    assert info.value.exit_code == 78
    assert str(info.value).startswith(f"MQTT TLS: the certificate file {key} holds no certificate")
    # A key that does not belong to the certificate.
    with pytest.raises(EdgeError) as info:
        MqttSink(MqttOptions(host="h", tls=TlsOptions(enabled=True, cert_file=cert, key_file=other)), "cam1")
    assert info.value.exit_code == 78
    assert str(info.value).startswith(f"MQTT TLS: the key file {other} is not the private key of {cert}")
    # The matching pair is fine (the sink is made, not started).
    MqttSink(MqttOptions(host="h", tls=TlsOptions(enabled=True, cert_file=cert, key_file=key)), "cam1")


def test_a_password_file_that_cannot_be_read_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(EdgeError) as info:
        MqttSink(MqttOptions(host="h", username="u", password_file=tmp_path), "cam1")  # a directory
    assert info.value.exit_code == 78
    assert str(info.value).startswith(f"MQTT: cannot read the password file {tmp_path}")
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    assert MqttOptions(host="h", username="u", password_file=secret).read_password() == "s3cret"
