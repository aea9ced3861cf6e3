"""The systemd unit for ``movinet-edge serve``, and ``movinet-edge install-service``.

One renderer makes both the unit that ``install-service`` writes (with the
path of the ``movinet-edge`` that runs it) and the file shipped for package
maintainers (``movinet-edge.service`` beside this module, ``/usr/bin``); a
test keeps the two the same.

Why the unit looks the way it does:

- ``Type=notify`` + ``WatchdogSec``: systemd calls the service started when
  the model is loaded and frames arrive (READY=1), and restarts it when the
  frame loop stops pinging (a hung driver or inference).
- ``Restart=on-failure``; ``RestartPreventExitStatus=78``: a camera that went
  away (exit 2) is retried every ``RestartSec``, a broken configuration
  (EX_CONFIG, 78) is not restarted in a loop.
- ``DynamicUser=yes`` + ``SupplementaryGroups=video``: no account to create,
  access to cameras through the ``video`` group, nothing else.
  ``DevicePolicy=closed`` with ``DeviceAllow=`` for V4L2, media controller and
  DMA heaps (the Pi camera's libcamera) instead of ``PrivateDevices=``, which
  would hide the camera.
- Hardening that a camera service can live with: a read-only system, no home
  directories, private /tmp, no privileges, capabilities or namespaces, a
  system-call allow list, only UNIX and IP sockets (MQTT, RTSP, HTTP).
  ``MemoryDenyWriteExecute=`` is left off: JIT-compiling TFLite delegates and
  libffi trampolines need writable executable memory. ``PrivateNetwork=`` and
  ``IPAddressDeny=`` are left off: brokers and cameras are on the network.
- User units (``--user``) run in the user's manager, which cannot drop
  privileges it does not have: they keep the settings that work unprivileged.

``install-service`` checks the program, its package, the config and the
files the config names against the sandbox of the unit it writes
(sandbox.py): a model in /tmp or /home would be missing under systemd.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EdgeError
from .config import EX_CONFIG, ConfigError, example_config_path, load_config
from .sandbox import check_sandbox_paths

UNIT_NAME = "movinet-edge.service"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
SYSTEM_CONFIG = Path("/etc/movinet-edge/config.toml")
PACKAGED_EXECUTABLE = "/usr/bin/movinet-edge"
WATCHDOG_SEC = 30
RESTART_SEC = 5

_HARDENING = """\
# Hardening (`systemd-analyze security movinet-edge` rates it OK).
DevicePolicy=closed
DeviceAllow=char-video4linux rw
DeviceAllow=char-media rw
DeviceAllow=char-dma_heap rw
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateMounts=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
# No ProcSubset=pid: it hides /proc/cpuinfo, which XNNPACK's CPU detection reads on
# ARM (without it the model falls back to slow kernels), and /proc/stat, without
# which the process_* metrics (memory, CPU) vanish from /metrics.
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
LockPersonality=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
# A filtered call fails with EPERM instead of killing the process: a library that
# probes, say, sched_setaffinity for its thread pool carries on without it.
SystemCallErrorNumber=EPERM
UMask=0077
"""

# What a user's service manager can enforce without privileges (seccomp and
# the no-new-privileges bit; namespaces would need user namespaces).
_USER_HARDENING = """\
# Hardening that works in a user's service manager.
NoNewPrivileges=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
UMask=0077
"""


def quote_exec_arg(arg: str) -> str:
    """One ExecStart= argument: quoted if needed, with systemd's % and $ escaped."""
    if arg and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        quoted = arg
    else:
        quoted = '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return quoted.replace("%", "%%").replace("$", "$$")


def render_unit(command: list[str], config: Path, user: bool = False) -> str:
    """The unit text that runs ``command serve --config config``."""
    exec_start = " ".join(quote_exec_arg(a) for a in [*command, "serve", "--config", str(config)])
    lines = [
        "[Unit]",
        "Description=movinet-edge streaming action recognition",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
        f"WatchdogSec={WATCHDOG_SEC}",
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        f"RestartPreventExitStatus={EX_CONFIG}",
        "# Loading a model and opening a camera on a Pi takes a while.",
        "TimeoutStartSec=180",
        "TimeoutStopSec=10",
        "Environment=PYTHONUNBUFFERED=1",
    ]
    if not user:
        lines += [
            "DynamicUser=yes",
            "SupplementaryGroups=video",
            "# /var/lib/movinet-edge: a place for models the service user can read.",
            "StateDirectory=movinet-edge",
            "ConfigurationDirectory=movinet-edge",
        ]
    lines.append((_USER_HARDENING if user else _HARDENING).rstrip("\n"))
    lines += ["", "[Install]", f"WantedBy={'default.target' if user else 'multi-user.target'}", ""]
    return "\n".join(lines)


def packaged_unit_path() -> Path:
    """The unit shipped with the package for distributions (/usr/bin/movinet-edge)."""
    return Path(__file__).with_name(UNIT_NAME)


def render_packaged_unit() -> str:
    return render_unit([PACKAGED_EXECUTABLE], SYSTEM_CONFIG)


def service_command() -> list[str]:
    """How systemd should start this installation's movinet-edge.

    The console script beside this Python (a venv's bin/), not resolved
    through symlinks: a venv's python is a link, and the link is what selects
    the venv.
    """
    script = Path(sys.executable).parent / "movinet-edge"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "movinet_edge.cli"]


def _user_config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def default_unit_path(user: bool) -> Path:
    return _user_config_home() / "systemd" / "user" / UNIT_NAME if user else SYSTEM_UNIT_DIR / UNIT_NAME


def default_config_path(user: bool) -> Path:
    return _user_config_home() / "movinet-edge" / "config.toml" if user else SYSTEM_CONFIG


@dataclass
class InstallResult:
    unit_path: Path
    config_path: Path
    unit_changed: bool  # False: the same unit was there already
    config_created: bool  # True: the example was copied to config_path
    warnings: list[str]
    next_steps: list[str]


def install_service(
    *,
    user: bool = False,
    config: Path | None = None,
    output: Path | None = None,
    force: bool = False,
    command: list[str] | None = None,
) -> InstallResult:
    """Write the unit (and, if there is none, a config from the example); say how to enable it.

    ``output``: write the unit there instead of systemd's directory (packaging,
    review). An existing, different unit is only replaced with ``force``.
    """
    config_path = (config or default_config_path(user)).expanduser().absolute()
    unit_path = (output or default_unit_path(user)).expanduser().absolute()
    command = command or service_command()
    text = render_unit(command, config_path, user=user)
    warnings: list[str] = []
    reads: dict[str, Path] = {
        "the program": Path(command[0]),
        "the movinet_edge package": Path(__file__).resolve().parents[1],
        "the config": config_path,
    }
    writes: dict[str, Path] = {}

    unit_changed = True
    if unit_path.is_dir():
        raise EdgeError(f"{unit_path} is a directory; give a file name for the unit")
    if unit_path.exists():
        current = unit_path.read_text(encoding="utf-8", errors="replace")
        unit_changed = current != text
        if unit_changed and not force:
            raise EdgeError(f"{unit_path} exists and differs; pass --force to replace it")

    config_created = False
    if not config_path.exists():
        _write_atomic(config_path, example_config_path().read_text(encoding="utf-8"), mode=0o644)
        config_created = True
    try:
        loaded = load_config(config_path, check_files=False)
    except ConfigError as exc:
        if not config_created:
            warnings += [f"config: {p}" for p in exc.problems]
    else:
        config_reads, config_writes = config_paths(loaded)
        reads.update(config_reads)
        writes.update(config_writes)
    warnings += check_sandbox_paths(text, reads, writes)
    if unit_changed:
        _write_atomic(unit_path, text, mode=0o644)

    ctl = "systemctl --user" if user else "sudo systemctl"
    steps: list[str] = []
    if config_created:
        steps.append(f"edit {config_path} (model, source, outputs; it is the example config)")
    if output is None:
        steps += [f"{ctl} daemon-reload", f"{ctl} enable --now {UNIT_NAME}"]
        steps.append(f"journalctl {'--user ' if user else ''}-u movinet-edge -f   (logs)")
        if user:
            steps.append("loginctl enable-linger $USER   (to keep it running without a login session)")
        else:
            steps.append("models the service reads belong in /var/lib/movinet-edge or another path outside /home")
    else:
        target = default_unit_path(user)
        steps.append(f"install it as {target}, then: {ctl} daemon-reload && {ctl} enable --now {UNIT_NAME}")
    return InstallResult(unit_path, config_path, unit_changed, config_created, warnings, steps)


# Fields whose path the service writes (the rest it reads).
_WRITTEN_FIELDS = ("save",)
_NAMES = {("model", "path"): "the model", ("model", "labels"): "the labels"}


def config_paths(config: Any) -> tuple[dict[str, Path], dict[str, Path]]:
    """(read, write): every path a loaded service config holds, by what it is, for the sandbox check.

    Found by walking the config's dataclasses, lists and dicts, so a new
    source or sink with a path option is checked without a change here.
    """
    reads: dict[str, Path] = {}
    writes: dict[str, Path] = {}

    def visit(value: Any, where: tuple[str, ...]) -> None:
        if isinstance(value, Path):
            written = where[-1] in _WRITTEN_FIELDS
            (writes if written else reads)[_path_name(where, written)] = value
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                if where or f.name != "path":  # the top level's path is the config file itself
                    visit(getattr(value, f.name), (*where, f.name))
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(item, (*where, str(key)))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(item, (*where, str(getattr(item, "id", index))))

    visit(config, ())
    return reads, writes


def _path_name(where: tuple[str, ...], written: bool) -> str:
    """What a config path is, in words: "the model", "the source of camera door", "the video output"."""
    if where[-2:] in _NAMES:
        return _NAMES[where[-2:]]
    if where[0] == "cameras" and len(where) > 1:
        return f"the source of camera {where[1]}" + ("" if where[-1] == "path" else f" ({where[-1]})")
    if where[0] == "sinks" and len(where) > 1:
        return f"the {where[1]} output" if written else f"the {where[1]} {where[-1].replace('_', ' ')}"
    return "the file " + ".".join(where)


def _write_atomic(path: Path, text: str, mode: int) -> None:
    """Write a file whole or not at all, creating its folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except PermissionError:
        raise EdgeError(f"cannot write {path}: permission denied (run with sudo, or use --user)") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
