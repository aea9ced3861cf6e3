"""What the MQTT sink is told: ``[mqtt]`` and ``[mqtt.tls]``, declared once, and a TLS context checked file by file.

These dataclasses are the one definition of the options: the service's
configuration reads its ``[mqtt]`` table into :class:`MqttOptions` and the
``serve`` flags (``--mqtt-host``...) are derived from the field metadata.

A CA file, certificate or key that is not what it should be (a key where the
certificate belongs, an empty file, a DER file) must stop the service at
start with the file named, exit 78 like any configuration error, instead of
surfacing as "handshake failed" in the log once an hour. Each file is loaded
on its own so the error can say which one is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EdgeError
from ..options import at_least, between, option

if TYPE_CHECKING:
    import ssl

#: sysexits' EX_CONFIG: the service's unit does not restart on it (see service/config.py).
EX_CONFIG = 78

_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


@dataclass
class TlsOptions:
    """TLS to the broker (port 8883 by default when enabled)."""

    enabled: bool = field(default=False, metadata=option("Connect with TLS.", cli=False))
    ca_file: Path | None = field(default=None, metadata=option(
        "CA certificate(s) that signed the broker's certificate (PEM); default: the system's.", cli=False))
    cert_file: Path | None = field(default=None, metadata=option("Client certificate (PEM).", cli=False))
    key_file: Path | None = field(default=None, metadata=option("The client certificate's private key (PEM).",
                                                                  cli=False))
    # Skips the broker's host name check: self-signed test brokers only.
    insecure: bool = field(default=False, metadata=option("Do not check the broker's host name.", cli=False))


def topic_level_check(value: str | None) -> str | None:
    """A topic prefix: no wildcards (+ #), no leading, trailing or double '/'."""
    if value is None:
        return None
    if not value or any(c in value for c in "+#\x00") or "//" in value or value.startswith("/") or value.endswith("/"):
        return f"{value!r}: no wildcards (+ #), no leading, trailing or double '/'"
    return None


@dataclass
class MqttOptions:
    """How to reach the broker and what to publish (the topics: :mod:`movinet_edge.sinks.mqtt`)."""

    host: str | None = field(default=None, metadata=option("MQTT broker host (enables MQTT).", flag="--mqtt-host"))
    port: int | None = field(default=None, metadata=option(
        "MQTT broker port (default 1883, 8883 with TLS).", flag="--mqtt-port", check=between(1, 65535)))
    client_id: str | None = field(default=None, metadata=option("Client id (default movinet-edge-DEVICE).", cli=False))
    topic_prefix: str = field(default="movinet-edge", metadata=option(
        "Topic prefix.", flag="--mqtt-topic-prefix", check=topic_level_check))
    qos: int = field(default=1, metadata=option("QoS of event messages (0-2).", flag="--mqtt-qos", check=between(0, 2)))
    retain: bool = field(default=False, metadata=option("Retain event messages.", cli=False))
    username: str | None = field(default=None, metadata=option("User name.", cli=False))
    password: str | None = field(default=None, metadata=option("Password (better: password_file).", cli=False))
    password_file: Path | None = field(default=None, metadata=option("File holding the password.", cli=False))
    keepalive: int = field(default=30, metadata=option("Keepalive, seconds.", cli=False, check=between(5, 3600)))
    # paho-mqtt numbers messages 1-65535: more than that cannot be in flight at once.
    queue_size: int = field(default=1000, metadata=option(
        "Messages kept while the broker is away.", cli=False, check=between(1, 50_000)))
    reconnect_max_delay: float = field(default=30.0, metadata=option(
        "Longest wait between reconnects, seconds.", cli=False, check=at_least(1.0)))
    home_assistant: bool = field(default=False, metadata=option("Publish Home Assistant discovery.", cli=False))
    discovery_prefix: str = field(default="homeassistant", metadata=option(
        "Home Assistant's discovery prefix.", cli=False, check=topic_level_check))
    tls: TlsOptions = field(default_factory=TlsOptions, metadata=option("TLS to the broker.", cli=False))
    #: The labels that get a Home Assistant binary sensor (the entry point fills it from the allow list).
    labels: tuple[str, ...] = field(default=(), metadata={"internal": True})
    reconnect_min_delay: float = field(default=1.0, metadata={"internal": True})

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls.enabled else 1883

    def problems(self) -> list[tuple[str, str]]:
        """Rules that involve more than one option: [(dotted name as the service config knows it, problem)]."""
        problems = []
        if (self.password is not None or self.password_file is not None) and self.username is None:
            problems.append(("mqtt.username", "a password is set but no username"))
        if self.password is not None and self.password_file is not None:
            problems.append(("mqtt.password_file", "give password or password_file, not both"))
        t = self.tls
        if (t.cert_file is None) != (t.key_file is None):
            problems.append(("mqtt.tls.key_file" if t.cert_file is not None else "mqtt.tls.cert_file",
                             "a client certificate needs both cert_file and key_file"))  # fmt: skip
        if not t.enabled and (t.ca_file or t.cert_file or t.insecure):
            problems.append(("mqtt.tls.enabled", "TLS files or options are set but enabled = false"))
        return problems

    def read_password(self) -> str | None:
        """The password, from the file if one is named (a secret should not sit in the config)."""
        if self.password_file is None:
            return self.password
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise EdgeError(f"MQTT: cannot read the password file {self.password_file}: {reason}", EX_CONFIG) from None


def _fail(message: str) -> EdgeError:
    return EdgeError(f"MQTT TLS: {message}", exit_code=EX_CONFIG)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise _fail(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def tls_context(options: TlsOptions) -> ssl.SSLContext:
    """A client context that verifies the broker; EdgeError (exit 78) naming the file that is wrong."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, host name checked
    if options.ca_file is not None:
        _read(options.ca_file, "CA file")
        try:
            context.load_verify_locations(cafile=str(options.ca_file))
        except (ssl.SSLError, OSError) as exc:
            raise _fail(f"the CA file {options.ca_file} holds no certificate ({getattr(exc, 'reason', None) or exc}); "
                        "give the CA's certificate in PEM form (-----BEGIN CERTIFICATE-----)") from None
    else:
        context.load_default_certs()
    if options.cert_file is not None:
        text = _read(options.cert_file, "certificate file")
        block = _PEM_CERT.search(text)
        try:
            if block is None:
                raise ValueError("no PEM certificate")
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=block.group(0))  # parses it
        except (ssl.SSLError, ValueError):
            raise _fail(f"the certificate file {options.cert_file} holds no certificate; give the client "
                        "certificate in PEM form (-----BEGIN CERTIFICATE-----)") from None
        if options.key_file is not None:
            _read(options.key_file, "key file")
        try:
            context.load_cert_chain(str(options.cert_file), str(options.key_file) if options.key_file else None)
        except (ssl.SSLError, OSError) as exc:
            key = options.key_file if options.key_file is not None else options.cert_file
            raise _fail(f"the key file {key} is not the private key of {options.cert_file} "
                        f"({getattr(exc, 'reason', None) or exc}); give the matching key in PEM form") from None
    return context
