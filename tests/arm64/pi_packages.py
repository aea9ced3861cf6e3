"""Install the edge wheel and its aarch64 dependencies into the emulated Pi, with the host pip.

Why the host pip: pip inside the rootfs would run under emulation (slow) and needs
certificates and network from the guest. The host pip resolves for another
platform when told the exact tags and installs into a plain directory that the
guest Python gets on ``PYTHONPATH``.

Why every manylinux tag is listed: ``pip --platform manylinux_2_36_aarch64`` does
not imply older glibc levels, so naming only the newest misses e.g.
ai-edge-litert 2.x (tagged ``manylinux_2_27``) and silently resolves an old 1.x.
Bookworm ships glibc 2.36, so everything from 2.17 to 2.36 runs there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

GUEST_PYTHON_VERSION = "3.11"
GUEST_GLIBC_MINOR = 36
# A hang guard: a cold install (about 70 MB of wheels) takes under half a minute.
PIP_TIMEOUT_S = 600

Log = Callable[[str], None]


class PackagesError(RuntimeError):
    """The wheel or its dependencies could not be installed; the message says why."""


def platform_args() -> list[str]:
    """pip options that select cp311 wheels a bookworm aarch64 system can load."""
    platforms = ["manylinux2014_aarch64"] + [
        f"manylinux_2_{minor}_aarch64" for minor in range(17, GUEST_GLIBC_MINOR + 1)
    ]
    args = ["--only-binary=:all:", "--implementation", "cp",
            "--python-version", GUEST_PYTHON_VERSION, "--abi", "cp311"]
    for platform in platforms:
        args += ["--platform", platform]
    return args


def build_wheel(project: Path, out_dir: Path, log: Log) -> Path:
    """Build the project's wheel the way a release would (isolated, no deps)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("movinet_edge-*.whl"):
        stale.unlink()
    log(f"wheel: building from {project}")
    result = _pip(["wheel", "--no-deps", "--quiet", "-w", str(out_dir), str(project)])
    wheels = sorted(out_dir.glob("movinet_edge-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise PackagesError(f"pip wheel failed for {project}:\n{_tail(result)}")
    log(f"wheel: {wheels[0].name}")
    return wheels[0]


def install(wheel: Path, site_dir: Path, log: Log, extras: tuple[str, ...] = ()) -> list[str]:
    """Install ``wheel`` (with ``extras``) and its aarch64 dependencies into a fresh ``site_dir``.

    Installs into a scratch directory first and swaps it in, so a failed resolve
    leaves the previous install (or nothing) rather than a mix. Returns the
    installed distributions as ``name==version``.
    """
    if not wheel.is_file():
        raise PackagesError(f"wheel {wheel} does not exist; build it with pip wheel --no-deps")
    scratch = site_dir.with_name(site_dir.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    log(f"packages: resolving {wheel.name} for cp311 aarch64 (downloads about 70 MB on a cold pip cache)")
    # pip byte-compiles with the host Python; when that is a 3.11 too, the guest
    # reuses the .pyc files instead of compiling every module under emulation.
    requirement = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
    result = _pip(["install", "--quiet", "--target", str(scratch), *platform_args(), requirement])
    if result.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise PackagesError(
            f"pip could not install {wheel.name} for aarch64 (a dependency may lack a "
            f"cp311 manylinux aarch64 wheel):\n{_tail(result)}"
        )
    shutil.rmtree(site_dir, ignore_errors=True)
    scratch.rename(site_dir)
    dists = installed_distributions(site_dir)
    log(f"packages: {len(dists)} installed: {', '.join(dists)}")
    return dists


def installed_distributions(site_dir: Path) -> list[str]:
    """``name==version`` for every dist-info in ``site_dir``, read from its METADATA."""
    found = []
    for metadata in sorted(site_dir.glob("*.dist-info/METADATA")):
        fields = dict(
            line.split(": ", 1) for line in metadata.read_text(errors="replace").splitlines()[:20]
            if ": " in line
        )
        found.append(f"{fields.get('Name', metadata.parent.name)}=={fields.get('Version', '?')}")
    return found


def _pip(args: list[str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        raise PackagesError(f"pip {args[0]} did not finish in {PIP_TIMEOUT_S} s (stalled index?)") from error


def _tail(result: subprocess.CompletedProcess[str], lines: int = 20) -> str:
    # Local extra indexes that do not hold a project warn per package; they are
    # noise next to the actual error.
    text = [line for line in (result.stdout + result.stderr).splitlines()
            if "is ignored: it is neither a file nor a directory" not in line]
    return "\n".join(text[-lines:])
