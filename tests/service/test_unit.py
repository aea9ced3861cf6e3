"""The systemd unit: what it says, that the shipped file matches the renderer, how
`systemd-analyze security` rates it, and `movinet-edge install-service` end to end."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from movinet_edge.service.config import example_config_path, load_config
from movinet_edge.service.unit import (
    packaged_unit_path,
    quote_exec_arg,
    render_packaged_unit,
    render_unit,
)
from service.support import missing_tool, serve_command

# systemd-analyze's words for exposure levels, best first.
RATINGS = ("PERFECT", "SAFE", "OK", "MEDIUM", "EXPOSED", "UNSAFE", "DANGEROUS")


def _settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_shipped_unit_is_the_rendered_one() -> None:
    assert packaged_unit_path().read_text() == render_packaged_unit()


def test_system_unit_settings() -> None:
    s = _settings(render_packaged_unit())
    assert s["ExecStart"] == ["/usr/bin/movinet-edge serve --config /etc/movinet-edge/config.toml"]
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert int(s["WatchdogSec"][0]) > 0
    assert s["Restart"] == ["on-failure"] and s["RestartPreventExitStatus"] == ["78"]
    assert s["DynamicUser"] == ["yes"] and s["SupplementaryGroups"] == ["video"]
    assert "char-video4linux rw" in s["DeviceAllow"]
    for key, value in {
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
        "ProtectKernelTunables": "yes", "RestrictNamespaces": "yes", "CapabilityBoundingSet": "",
    }.items():  # fmt: skip
        assert s[key] == [value], key
    assert "PrivateDevices" not in s  # it would hide the camera
    # It would hide /proc/cpuinfo (XNNPACK's CPU detection on ARM) and /proc/stat (process_* metrics).
    assert "ProcSubset" not in s
    assert s["WantedBy"] == ["multi-user.target"]


def test_user_unit_keeps_what_works_unprivileged() -> None:
    config = Path("/home/me/.config/movinet-edge/config.toml")
    s = _settings(render_unit(["/opt/me/bin/movinet-edge"], config, user=True))
    assert s["Type"] == ["notify"] and s["NoNewPrivileges"] == ["yes"]
    assert "DynamicUser" not in s and "ProtectSystem" not in s
    assert s["WantedBy"] == ["default.target"]


def test_exec_arguments_are_quoted_for_systemd() -> None:
    assert quote_exec_arg("/usr/bin/movinet-edge") == "/usr/bin/movinet-edge"
    assert quote_exec_arg("/srv/my models/c.toml") == '"/srv/my models/c.toml"'
    assert quote_exec_arg("/srv/100%/c.toml") == "/srv/100%%/c.toml"  # % starts a specifier
    assert quote_exec_arg('/a"b$c') == '"/a\\"b$$c"'


def test_systemd_analyze_security_rates_the_unit_ok_or_better(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing_tool("systemd-analyze is not installed (Debian package systemd)")
    unit = tmp_path / "movinet-edge.service"
    unit.write_text(render_packaged_unit())
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(unit)], capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", result.stdout)
    if match is None and ("offline" in result.stderr or "Unknown option" in result.stderr):
        missing_tool(f"this systemd-analyze cannot analyze units offline (systemd 250 or later can): "
                     f"{result.stderr.strip()[:200]}")
    assert match, result.stdout[-2000:] + result.stderr
    score, rating = float(match.group(1)), match.group(2)
    assert rating in RATINGS[:3], f"exposure {score} {rating}"
    assert score < 2.0  # 1.5 when written; a regression of the hardening shows here


def _install(*args: object, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*serve_command(), "install-service", *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd,
        env=None if env is None else {**os.environ, **env},
    )


def test_install_service_writes_unit_and_config_and_says_what_next(tmp_path: Path) -> None:
    unit = tmp_path / "out" / "movinet-edge.service"
    config = tmp_path / "etc" / "config.toml"
    result = _install("--config", config, "--output", unit, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    text = unit.read_text()
    exec_start = _settings(text)["ExecStart"][0]
    assert exec_start.endswith(f"serve --config {config}")
    assert Path(exec_start.split()[0]).exists()  # this installation's movinet-edge (or its python)
    # No config there yet: the example was copied, and the operator is told to edit it.
    assert config.read_text() == example_config_path().read_text()
    assert f"edit {config}" in result.stdout and "systemctl daemon-reload" in result.stdout

    again = _install("--config", config, "--output", unit, cwd=tmp_path)
    assert again.returncode == 0 and "unchanged" in again.stdout

    unit.write_text(text.replace("WatchdogSec=30", "WatchdogSec=99"))
    refused = _install("--config", config, "--output", unit, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == f"error: {unit} exists and differs; pass --force to replace it"
    assert "WatchdogSec=99" in unit.read_text()  # untouched
    forced = _install("--config", config, "--output", unit, "--force", cwd=tmp_path)
    assert forced.returncode == 0 and unit.read_text() == text


def test_install_service_for_a_user_goes_to_their_service_manager(tmp_path: Path) -> None:
    """`install-service --user` with no paths: the unit under $XDG_CONFIG_HOME/systemd/user, the config
    beside it, the user manager's commands and lingering in the next steps."""
    home = tmp_path / "config-home"
    result = _install("--user", cwd=tmp_path, env={"XDG_CONFIG_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    unit = home / "systemd" / "user" / "movinet-edge.service"
    config = home / "movinet-edge" / "config.toml"
    settings = _settings(unit.read_text())
    assert settings["ExecStart"][0].endswith(f"serve --config {config}")
    assert settings["WantedBy"] == ["default.target"] and "DynamicUser" not in settings
    assert config.read_text() == example_config_path().read_text()
    for step in ("systemctl --user daemon-reload", "systemctl --user enable --now movinet-edge.service",
                 "journalctl --user -u movinet-edge", "loginctl enable-linger"):
        assert step in result.stdout, result.stdout
    assert "sudo" not in result.stdout


def test_install_service_warns_about_an_invalid_existing_config(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[model]\ntop_k = 0\n")
    result = _install("--config", config, "--output", tmp_path / "u.service", cwd=tmp_path)
    assert result.returncode == 0
    assert "warning: config: " in result.stderr and "top_k: must be at least 1" in result.stderr
    assert config.read_text() == "[model]\ntop_k = 0\n"  # never overwritten
    load_config(example_config_path(), check_files=False)


def test_install_service_print_writes_nothing(tmp_path: Path) -> None:
    result = _install("--print", "--config", tmp_path / "c.toml", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("[Unit]") and "Type=notify" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_installed_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing_tool("systemd-analyze is not installed (Debian package systemd)")
    unit = tmp_path / "movinet-edge.service"
    config = tmp_path / "config.toml"
    result = _install("--config", config, "--output", unit, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    assert "movinet-edge.service" not in verify.stderr, verify.stderr  # no complaint about our unit


def test_a_config_error_exits_with_the_status_the_unit_does_not_restart(tmp_path: Path) -> None:
    """`serve` with a broken config exits 78 (EX_CONFIG), and the unit names exactly that status in
    RestartPreventExitStatus=, so systemd does not restart a misconfigured device in a loop."""
    settings = _settings(render_packaged_unit())
    assert settings["Restart"] == ["on-failure"]
    config = tmp_path / "bad.toml"
    config.write_text("[model]\ntop_k = 0\n")
    result = subprocess.run([*serve_command(), "serve", "--config", str(config)], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)  # fmt: skip
    assert "Traceback" not in result.stderr and "top_k" in result.stderr
    assert settings["RestartPreventExitStatus"] == [str(result.returncode)] == ["78"]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing_tool("systemd-analyze is not installed (Debian package systemd)")
    unit = tmp_path / "movinet-edge.service"
    unit.write_text(render_packaged_unit())
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # systemd's own parser knows the setting (a typo would be "Unknown key name"); the binary is not here.
    assert "RestartPreventExitStatus" not in verify.stderr and "Unknown" not in verify.stderr, verify.stderr
