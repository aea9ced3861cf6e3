"""What a systemd unit's sandbox lets the service see and write, checked before it runs.

The unit hardens the service (unit.py): ``ProtectHome=yes`` hides /home and
/root, ``PrivateTmp=yes`` gives it an empty /tmp of its own,
``ProtectSystem=strict`` makes everything read-only except the state
directory and ``ReadWritePaths=``. A program, config or model in one of
those places works from a shell and fails under systemd, at the next boot,
with a message about a missing file. So ``install-service`` reads the
sandbox settings from the very unit text it writes (an edited or user unit
is judged by its own settings) and checks every path the service will use.

Rules are applied by the longest matching folder, the way systemd's mounts
nest: ``ReadWritePaths=/srv/out`` opens /srv/out inside a read-only /.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

# What a rule does to the paths below it.
HIDDEN = "hidden"  # not there at all (inaccessible, or an empty folder in its place)
PRIVATE = "private"  # an empty folder of the service's own: writable, invisible outside, gone at stop
READ_ONLY = "read-only"
WRITABLE = "writable"

_TRUE = ("yes", "true", "on", "1")
_STATE_ROOTS = {"StateDirectory": "/var/lib", "CacheDirectory": "/var/cache", "LogsDirectory": "/var/log",
                "RuntimeDirectory": "/run"}
_HOMES = ("/home", "/root", "/run/user")


@dataclass
class Sandbox:
    """The file-system rules of one unit's [Service] section."""

    rules: list[tuple[PurePosixPath, str, str]] = field(default_factory=list)  # (folder, effect, setting)
    state_directory: str | None = None

    @classmethod
    def from_unit(cls, text: str) -> Sandbox:
        settings = _service_settings(text)

        def last(key: str, default: str = "") -> str:
            values = settings.get(key)
            return values[-1].strip().lower() if values else default

        dynamic = last("DynamicUser") in _TRUE
        # DynamicUser=yes implies these at least (systemd.exec(5)); explicit settings may be stricter.
        protect_system = last("ProtectSystem", "strict" if dynamic else "no")
        protect_home = last("ProtectHome", "read-only" if dynamic else "no")
        if dynamic and protect_system in ("no", "false", "yes", "true", "full"):
            protect_system = "strict"
        if dynamic and protect_home in ("no", "false"):
            protect_home = "read-only"
        private_tmp = last("PrivateTmp", "yes" if dynamic else "no") in _TRUE or dynamic

        sandbox = cls()
        add = sandbox._add
        if protect_system == "strict":
            add("/", READ_ONLY, "ProtectSystem=strict")
            for api in ("/dev", "/proc", "/sys"):
                add(api, WRITABLE, "ProtectSystem=strict")
        elif protect_system in ("yes", "true", "full"):
            for folder in ("/usr", "/boot", "/efi", *(("/etc",) if protect_system == "full" else ())):
                add(folder, READ_ONLY, f"ProtectSystem={protect_system}")
        if protect_home in _TRUE or protect_home in ("read-only", "tmpfs"):
            effect = {"read-only": READ_ONLY, "tmpfs": PRIVATE}.get(protect_home, HIDDEN)
            for folder in _HOMES:
                add(folder, effect, f"ProtectHome={protect_home}")
        if private_tmp:
            for folder in ("/tmp", "/var/tmp"):
                add(folder, PRIVATE, "PrivateTmp=yes")
        for key, root in _STATE_ROOTS.items():
            for name in _paths(settings.get(key, [])):
                add(f"{root}/{name}", WRITABLE, f"{key}={name}")
                if key == "StateDirectory" and sandbox.state_directory is None:
                    sandbox.state_directory = f"{root}/{name}"
        for key, effect in (("ReadOnlyPaths", READ_ONLY), ("ReadWritePaths", WRITABLE),
                            ("InaccessiblePaths", HIDDEN)):
            for path in _paths(settings.get(key, [])):
                add(path, effect, f"{key}={path}")
        return sandbox

    def _add(self, folder: str, effect: str, setting: str) -> None:
        self.rules.append((PurePosixPath(folder), effect, setting))

    def effect(self, path: PurePosixPath) -> tuple[str, str] | None:
        """(effect, the setting behind it) of the innermost rule over ``path``; None: untouched."""
        best: tuple[int, str, str] | None = None
        for folder, effect, setting in self.rules:
            if path == folder or folder in path.parents:
                depth = len(folder.parts)
                if best is None or depth >= best[0]:  # a later rule at the same depth is more explicit
                    best = (depth, effect, setting)
        return None if best is None else best[1:]


def check_sandbox_paths(unit_text: str, read: Mapping[str, os.PathLike[str] | str],
                        write: Mapping[str, os.PathLike[str] | str] | None = None) -> list[str]:
    """Warnings (one line each: what, why, what to do) for paths the unit's sandbox hides or keeps from writing.

    ``read``: what the service reads, by what it is ("the config"); ``write``:
    what it writes (an annotated video). Paths are checked as given and with
    symbolic links resolved: a link from /opt into /tmp fails like /tmp.
    """
    sandbox = Sandbox.from_unit(unit_text)
    keep = sandbox.state_directory or "/var/lib/movinet-edge"
    warnings: list[str] = []
    for what, given in read.items():
        for path in _forms(given):
            found = sandbox.effect(path)
            if found is None or found[0] not in (HIDDEN, PRIVATE):
                continue
            effect, setting = found
            shown = _shown(given, path)
            if effect == PRIVATE:
                why = f"the service has an empty {_top(path, sandbox)} of its own ({setting})"
            else:
                why = f"{_top(path, sandbox)} is hidden from the service ({setting})"
            warnings.append(f"{what} {shown} is not visible to the service: {why}; move it where the service "
                            f"can read it ({keep}, /etc/movinet-edge, /opt), or install a user unit")
            break
    for what, given in (write or {}).items():
        for path in _forms(given):
            found = sandbox.effect(path)
            if found is None or found[0] == WRITABLE:
                continue
            effect, setting = found
            shown = _shown(given, path)
            if effect == PRIVATE:
                warnings.append(f"{what} {shown} would be written to the service's own {_top(path, sandbox)} "
                                f"({setting}), which nobody else sees and which is removed when it stops; "
                                f"write below {keep}")
            else:
                state = "hidden from" if effect == HIDDEN else "read-only for"
                folder = PurePosixPath(path).parent
                warnings.append(f"the service cannot write {what} {shown}: {_top(path, sandbox)} is {state} "
                                f"it ({setting}); write below {keep}, or add ReadWritePaths={folder} to the "
                                "unit (systemctl edit movinet-edge)")
            break
    return warnings


def _service_settings(text: str) -> dict[str, list[str]]:
    """Key -> values of the [Service] section, in order (an empty value resets a list, as in systemd)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Service" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if value:
            settings.setdefault(key, []).append(value)
        else:
            settings[key] = []
    return settings


def _paths(values: list[str]) -> list[str]:
    """Space-separated paths of list settings, without systemd's ``-``/``+`` prefixes and quotes."""
    out = []
    for value in values:
        for word in value.split():
            word = word.strip('"').lstrip("-+")
            if word:
                out.append(word.rstrip("/") or "/")
    return out


def _forms(given: os.PathLike[str] | str) -> list[PurePosixPath]:
    path = os.path.abspath(os.fspath(given))
    real = os.path.realpath(path)
    return [PurePosixPath(path)] + ([PurePosixPath(real)] if real != path else [])


def _shown(given: os.PathLike[str] | str, path: PurePosixPath) -> str:
    as_given = os.path.abspath(os.fspath(given))
    return as_given if str(path) == as_given else f"{as_given} (a link to {path})"


def _top(path: PurePosixPath, sandbox: Sandbox) -> str:
    """The folder of the rule that applies, for the message (/tmp, /home, or the path's own)."""
    best = None
    for folder, _, _ in sandbox.rules:
        if (path == folder or folder in path.parents) and (best is None or len(folder.parts) >= len(best.parts)):
            best = folder
    return str(best) if best is not None and str(best) != "/" else "the file system"
