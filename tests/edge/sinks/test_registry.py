"""The sink registry: every kind found by importing the package's modules, each with options
the CLI and the config can derive from, and nothing heavy imported to list them."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from movinet_edge.options import check_options, declared_fields
from movinet_edge.sinks.registry import SinkContext, SinkKind, missing_requirements, register, sink_kind, sink_kinds


def test_every_kind_is_found_with_its_section_and_options() -> None:
    kinds = sink_kinds()
    assert {k: (v.section, v.service, v.live) for k, v in kinds.items()} == {
        "console": ("output", True, False),
        "video": ("output", True, True),
        "display": ("output", False, True),
        "mqtt": ("mqtt", True, False),
        "webhook": ("webhook", True, False),
    }
    assert sink_kinds() == kinds  # discovered once; the same kinds every call
    for kind in kinds.values():
        assert kind.help
        hints = typing.get_type_hints(kind.options)  # the config and the flags read the annotations
        for f in declared_fields(kind.options):
            assert f.metadata.get("help"), f"{kind.key}.{f.name} has no help"
            assert f.name in hints
        # Defaults are valid, and they leave every kind but the console off.
        defaults = kind.options()
        assert check_options(defaults) == []
        assert kind.enabled(defaults) is (kind.key == "console")


def test_the_flags_of_today_are_declared() -> None:
    def flags(key: str) -> set[str]:
        out = set()
        for f in declared_fields(sink_kind(key).options):
            if f.metadata.get("cli", True) and not dataclasses.is_dataclass(f.type):
                out.add(f.metadata.get("flag") or "--" + f.name.replace("_", "-"))
        return out

    assert flags("console") == {"--console"}
    assert flags("video") == {"--save"}
    assert flags("display") == {"--display"}
    assert flags("mqtt") == {"--mqtt-host", "--mqtt-port", "--mqtt-topic-prefix", "--mqtt-qos"}
    assert flags("webhook") == {"--webhook-url"}


def test_checks_say_what_is_wrong() -> None:
    kinds = sink_kinds()
    mqtt = kinds["mqtt"].options(host="broker", qos=3, topic_prefix="a/#", port=0)
    assert dict(check_options(mqtt)) == {
        "qos": "must be in [0, 2], got 3",
        "topic_prefix": "'a/#': no wildcards (+ #), no leading, trailing or double '/'",
        "port": "must be in [1, 65535], got 0",
    }
    console = kinds["console"].options(console="loud")
    assert check_options(console) == [("console", "must be one of none, events, predictions, json; got 'loud'")]
    webhook = kinds["webhook"].options(url="ftp://x", headers={"Bad Name": "v"})
    assert dict(check_options(webhook)) == {
        "url": "must be an http:// or https:// URL with a host, got 'ftp://x'",
        "headers": "'Bad Name' is not a valid HTTP header name",
    }


def test_mqtt_cross_checks() -> None:
    from movinet_edge.sinks.mqtt import MqttOptions, TlsOptions

    assert MqttOptions(host="b").problems() == []
    problems = MqttOptions(host="b", password="p", tls=TlsOptions(cert_file=Path("c.pem"), insecure=True)).problems()
    assert problems == [
        ("mqtt.username", "a password is set but no username"),
        ("mqtt.tls.key_file", "a client certificate needs both cert_file and key_file"),
        ("mqtt.tls.enabled", "TLS files or options are set but enabled = false"),
    ]
    both = MqttOptions(host="b", username="u", password="p", password_file=Path("pw")).problems()
    assert both == [("mqtt.password_file", "give password or password_file, not both")]
    assert MqttOptions(host="b").effective_port == 1883
    assert MqttOptions(host="b", tls=TlsOptions(enabled=True)).effective_port == 8883


def test_register_refuses_a_second_kind_with_the_same_key() -> None:
    video = sink_kind("video")
    assert register(video) is video  # the same kind again (a module imported twice) is fine
    with pytest.raises(ValueError, match="registered twice"):
        register(dataclasses.replace(video, help="another"))
    with pytest.raises(KeyError, match="known: "):
        sink_kind("carrier-pigeon")


def test_missing_requirements_name_the_pip_package() -> None:
    kind = SinkKind("x", "x", object, open=lambda o, c: None, enabled=lambda o: True,
                    requires=(("json", "stdlib-json"), ("no_such_module_here.sub", "no-such-package")))  # fmt: skip
    assert missing_requirements(kind) == ["no-such-package"]
    try:
        import paho.mqtt  # noqa: F401
    except ImportError:  # the base install: the service extra is what it lacks
        assert missing_requirements(sink_kind("mqtt")) == ["paho-mqtt"]
    else:
        assert missing_requirements(sink_kind("mqtt")) == []


def test_sink_context_defaults() -> None:
    context = SinkContext()
    assert (context.device_id, context.info, context.top_k, context.cameras) == ("", {}, 5, ())


def _modules_after(code: str) -> dict[str, bool]:
    probe = (
        "import sys, json\n"
        f"{code}\n"
        "print(json.dumps({m: m in sys.modules for m in ('cv2', 'numpy', 'paho', 'urllib.request')}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(result.stdout)


def test_the_registry_imports_nothing_heavy() -> None:
    """--help lists the kinds' options: the registry must not load numpy, OpenCV or paho-mqtt."""
    assert _modules_after("import movinet_edge.sinks.registry") == {
        "cv2": False, "numpy": False, "paho": False, "urllib.request": False
    }  # fmt: skip
    # Listing every kind imports each sink's module, yet neither OpenCV, paho-mqtt nor urllib.
    listed = _modules_after("from movinet_edge.sinks.registry import sink_kinds; assert len(sink_kinds()) == 5")
    assert listed["cv2"] is False and listed["paho"] is False and listed["urllib.request"] is False
    # The names the rest of the runtime imports from the package still work, on first use.
    assert _modules_after("from movinet_edge.sinks import event_record, format_event")["cv2"] is False
