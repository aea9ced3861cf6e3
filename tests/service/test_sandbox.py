"""Paths the service needs, checked against the sandbox of the unit that runs it: the rendered
units' own settings, and `movinet-edge install-service` end to end (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from service.support import serve_command

from movinet_edge.service.sandbox import check_sandbox_paths
from movinet_edge.service.unit import render_packaged_unit, render_unit

SYSTEM = render_packaged_unit()
USER = render_unit(["/opt/me/bin/movinet-edge"], Path("/home/me/.config/movinet-edge/config.toml"), user=True)


def test_paths_the_system_unit_hides() -> None:
    warnings = check_sandbox_paths(SYSTEM, {
        "the program": "/tmp/venv/bin/movinet-edge",
        "the config": "/etc/movinet-edge/config.toml",
        "the model": "/var/tmp/a0",
        "the labels": "/home/me/labels.txt",
        "the CA file": "/root/ca.pem",
    })  # fmt: skip
    assert len(warnings) == 4, warnings
    program, model, labels, ca = warnings
    assert program.startswith("the program /tmp/venv/bin/movinet-edge is not visible to the service: "
                              "the service has an empty /tmp of its own (PrivateTmp=yes)"), program
    assert "/var/tmp of its own (PrivateTmp=yes)" in model
    assert "/home is hidden from the service (ProtectHome=yes)" in labels
    assert "/root is hidden" in ca and "/var/lib/movinet-edge" in ca  # where to put it instead


def test_what_the_system_unit_lets_the_service_write() -> None:
    fine = {"the video output": "/var/lib/movinet-edge/out.mp4"}  # StateDirectory=movinet-edge
    assert check_sandbox_paths(SYSTEM, {"the model": "/var/lib/movinet-edge/a0"}, fine) == []
    [read_only] = check_sandbox_paths(SYSTEM, {}, {"the video output": "/srv/out/v.mp4"})
    assert read_only == ("the service cannot write the video output /srv/out/v.mp4: the file system is read-only "
                         "for it (ProtectSystem=strict); write below /var/lib/movinet-edge, or add "
                         "ReadWritePaths=/srv/out to the unit (systemctl edit movinet-edge)")
    [private] = check_sandbox_paths(SYSTEM, {}, {"the video output": "/tmp/v.mp4"})
    assert "the service's own /tmp (PrivateTmp=yes)" in private and "removed when it stops" in private
    # An operator's ReadWritePaths= opens a folder inside the read-only file system.
    opened = SYSTEM.replace("ProtectSystem=strict\n", "ProtectSystem=strict\nReadWritePaths=-/srv/out\n")
    assert check_sandbox_paths(opened, {}, {"the video output": "/srv/out/v.mp4"}) == []


def test_a_unit_is_judged_by_its_own_settings() -> None:
    # A user unit has no such sandbox: home and /tmp are fine there.
    assert check_sandbox_paths(USER, {"the model": "/home/me/a0", "the config": "/tmp/c.toml"},
                               {"the video output": "/home/me/v.mp4"}) == []  # fmt: skip
    # DynamicUser=yes alone implies a private /tmp and a read-only system (systemd.exec(5)).
    bare = "[Service]\nExecStart=/usr/bin/movinet-edge serve\nDynamicUser=yes\n"
    assert len(check_sandbox_paths(bare, {"the model": "/tmp/a0"}, {"the output": "/srv/v.mp4"})) == 2


def test_a_link_into_a_hidden_folder_is_followed(tmp_path: Path) -> None:
    unit = "[Service]\nProtectHome=yes\n"  # /tmp itself is fine for this unit
    link = tmp_path / "model"
    link.symlink_to("/root/models/a0")
    [warning] = check_sandbox_paths(unit, {"the model": link})
    assert warning.startswith(f"the model {link} (a link to /root/models/a0) is not visible"), warning


def test_install_service_warns_about_paths_under_tmp(tmp_path: Path) -> None:
    """The issue: /home and /root were warned about, /tmp (hidden by PrivateTmp=yes) was not."""
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\npath = "{tmp_path / "a0"}"\n[source]\ncamera = "0"\n'
                      f'[output]\nsave = "{tmp_path / "annotated.mp4"}"\n')  # fmt: skip
    result = subprocess.run([*serve_command(), "install-service", "--config", str(config), "--output",
                             str(tmp_path / "u.service")], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={**os.environ})  # fmt: skip
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert any(w.startswith(f"warning: the config {config} is not visible") for w in warnings), warnings
    assert any(w.startswith(f"warning: the model {tmp_path / 'a0'} is not visible") for w in warnings), warnings
    assert any("annotated.mp4" in w and "PrivateTmp=yes" in w for w in warnings), warnings
    assert all("PrivateTmp=yes" in w for w in warnings), warnings
    assert "Traceback" not in result.stderr
