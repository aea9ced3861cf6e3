"""The service's TOML configuration: every problem reported at once, one line each;
CLI flags override the file; the shipped example holds every option."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import typing
from pathlib import Path

import pytest

from movinet_edge.service.config import (
    EX_CONFIG,
    ConfigError,
    ServiceConfig,
    example_config_path,
    load_config,
    parse_listen,
)
from service.support import serve_command


def _all_keys() -> list[str]:
    """Every option of the service: its own sections, the source keys and each sink's section."""
    from movinet_edge.app import source_fields
    from movinet_edge.sinks.registry import sink_kinds

    from movinet_edge.service.config import HTTP_PARTS

    keys = _keys(ServiceConfig) + [key for part in HTTP_PARTS for key in _keys(part, "http.")]
    keys += [f"source.{key}" for key, (_kinds, f) in source_fields().items()]
    for kind in sink_kinds().values():
        if kind.service:
            keys += _keys(kind.options, f"{kind.section}.")
    return keys


def _keys(cls: type, prefix: str = "") -> list[str]:
    """Dotted names of every option, from the dataclasses."""
    hints = typing.get_type_hints(cls)
    out: list[str] = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            out += _keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def test_example_config_holds_every_option_and_loads() -> None:
    text = example_config_path().read_text()
    section = ""
    present: set[str] = set()
    for line in text.splitlines():
        if m := re.match(r"^\[([a-z.]+)\]", line):
            section = m.group(1) + "."
        elif m := re.match(r"^#?\s?([a-z_]+) = ", line):
            present.add(section + m.group(1))
    missing = [k for k in _all_keys() if k not in present]
    assert not missing, f"example.toml lacks {missing}"
    config = load_config(example_config_path(), check_files=False)
    assert config.source.device == "0" and config.http.listen == "127.0.0.1:9750"
    assert config.mqtt.host is None and config.windowed() is True  # a camera: windowed by default


def test_every_problem_is_reported_one_line_each(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'device_id = "kitchen cam"\n'
        '[model]\ntop_k = 0\nthread = 2\nresize = "squash"\n'
        '[source]\ncamera = "0"\nvideo = "missing.mp4"\n'
        "[events]\nstart_threshold = 0.2\nend_threshold = 0.4\n"
        '[smoothing]\nalpha = "high"\n'
        '[window]\npolicy = "sliding"\n'
        '[http]\nlisten = "localhost"\n'
        '[mqtt]\nhost = "broker"\nqos = 3\ntopic_prefix = "a/#"\n'
        '[mqtt.tls]\nenabled = true\ncert_file = "client.pem"\n'
        "[colour]\nred = 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    problems = info.value.problems
    expected = [
        r"\[model\] thread: unknown key; did you mean 'threads'\?",
        r"\[model\] top_k: must be at least 1, got 0",
        r"\[model\] resize: must be one of crop, pad, stretch; got 'squash'",
        r"\[smoothing\] alpha: expected a number, got str 'high'",
        r"\[mqtt\] qos: must be in \[0, 2\], got 3",
        r"\[window\] policy: must be one of rescale, dual; got 'sliding'",
        r"device_id: 'kitchen cam': use 1-64 letters",
        r"\[source\]: give exactly one of video, url, camera, image_folder \(got video and camera\)",
        r"\[events\] end_threshold: must not exceed start_threshold",
        r"\[http\] listen: must be HOST:PORT",
        r"\[mqtt\] topic_prefix: 'a/#': no wildcards",
        r"\[mqtt.tls\] key_file: a client certificate needs both cert_file and key_file",
        r"colour: unknown key",
        r"\[source\] video: video .*missing.mp4 does not exist",
        r"\[mqtt.tls\] cert_file: certificate .*client.pem does not exist",
    ]
    for pattern in expected:
        assert any(re.search(pattern, p) for p in problems), f"no problem matches {pattern!r}:\n" + "\n".join(problems)
    assert len(problems) == len(expected), "\n".join(problems)
    assert all(p.startswith(f"{bad}: ") and "\n" not in p for p in problems)
    assert info.value.exit_code == EX_CONFIG


def test_flags_override_the_file_and_are_named_in_problems(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"x")
    config = tmp_path / "c.toml"
    config.write_text('[model]\ntop_k = 3\n[source]\nvideo = "clip.mp4"\nloop = true\n[mqtt]\nqos = 2\n')
    loaded = load_config(config)
    assert loaded.model.top_k == 3
    assert loaded.source.path == tmp_path / "clip.mp4"  # relative to the file, not the working directory
    assert loaded.model.resize is None  # unset: the policy the model's manifest records
    loaded = load_config(config, {"model.top_k": 7, "source.camera": "picam", "mqtt.qos": 0, "model.resize": "pad"})
    assert loaded.model.top_k == 7 and loaded.mqtt.qos == 0 and loaded.model.resize == "pad"
    # A source flag replaces the file's source, video-only options included.
    assert loaded.source.device == "picam" and loaded.cameras[0].source.kind == "camera"
    with pytest.raises(ConfigError) as info:
        load_config(config, {"model.top_k": 0}, flag_names={"model.top_k": "--top-k"})
    assert info.value.problems == ["--top-k: must be at least 1, got 0"]


def test_toml_syntax_error_is_one_line_with_its_position(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[model]\npath = "unterminated\n')
    with pytest.raises(ConfigError) as info:
        load_config(config)
    (problem,) = info.value.problems
    assert problem.startswith(f"{config}: not valid TOML") and "line 2" in problem


def test_missing_config_file_says_where_the_example_is(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; start from the example"):
        load_config(tmp_path / "nope.toml")


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:9750") == ("127.0.0.1", 9750)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    for bad in ("localhost", ":80", "1.2.3.4:99999", "[::1]"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_serve_with_a_bad_config_prints_each_problem_and_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[model]\ntop_k = -1\n[source]\nurl = "camera.local"\n')
    result = subprocess.run(
        [*serve_command(), "serve", "--config", str(config), "--mqtt-qos", "5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == EX_CONFIG
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert all(line.startswith("error: ") for line in lines)
    assert any("--mqtt-qos: must be in [0, 2], got 5" in line for line in lines)
    assert any("[source] url: not a URL" in line for line in lines)


def test_serve_check_validates_without_starting(tmp_path: Path, clips: Path) -> None:
    result = subprocess.run(
        [*serve_command(), "serve", "--config", str(example_config_path()), "--video", str(clips / "carving_ice.mp4"),
         "--model", str(clips), "--check"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
