"""Run a cached Raspberry Pi OS-like rootfs (Debian bookworm, arm64 or armhf) as a chroot under qemu-user.

Why a chroot and not ``qemu-arm -L ROOTFS`` (tests/arm64/qemu_user.py): the
32-bit test runs what a person types on a Pi (a venv, its pip, the console
script, a shell running the guide's commands), and those start other ARM
programs: ``python3 -m venv`` runs ensurepip in a child Python, a shell runs
everything. A child exec()ed under ``-L`` is an ARM binary the host kernel
cannot run; with binfmt_misc it can, and a chroot makes every absolute path
(the venv's interpreter link, shebangs) resolve inside the tree.

What this needs from the host: root (chroot), and binfmt_misc entries for qemu
with the F flag (the kernel opens qemu when it is registered, so it works
inside the chroot): Debian's qemu-user-static + binfmt-support register them;
tests/arm64/install-host-deps.sh makes sure. Without them the tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# binfmt_misc entry and qemu binary per Debian architecture.
QEMU = {"arm64": ("qemu-aarch64", "qemu-aarch64-static"), "armhf": ("qemu-arm", "qemu-arm-static")}
# The CPU to emulate, first one this qemu knows: a Pi 4's Cortex-A72. qemu-arm
# before 8.x has no A72 in 32-bit mode; its Cortex-A15 is the ARMv7 (NEON, VFPv4,
# idiv) that Debian armhf builds for. Not "max": XNNPACK then picks kernels for
# extensions a Pi lacks, some of which qemu 7.2 gets wrong.
CPU_PREFERENCE = {"arm64": ("cortex-a72",), "armhf": ("cortex-a72", "cortex-a15")}
HOST_FILES = (Path("/etc/resolv.conf"), Path("/etc/ssl/certs/ca-certificates.crt"))


class CannotChroot(RuntimeError):
    """This host cannot run the tree as a chroot; the message says what is missing."""


def binfmt_problem(arch: str) -> str | None:
    """Why exec() of this arch's binaries will not work here, or None when it will."""
    entry_name, _binary = QEMU[arch]
    entry = BINFMT_DIR / entry_name
    if not (BINFMT_DIR / "register").exists():
        return "binfmt_misc is not mounted (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc)"
    if not entry.is_file():
        return f"binfmt_misc has no {entry_name} entry (apt-get install qemu-user-static binfmt-support)"
    text = entry.read_text()
    if not text.startswith("enabled"):
        return f"the binfmt_misc entry {entry_name} is disabled (update-binfmts --enable {entry_name})"
    flags = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags:")), "")
    if "F" not in flags:
        return f"the binfmt_misc entry {entry_name} lacks the F flag, so qemu cannot be found inside a chroot"
    return None


def check_host(arch: str) -> None:
    """Raise CannotChroot when this host cannot enter an ``arch`` tree (before anything is built)."""
    if os.geteuid() != 0:
        raise CannotChroot("entering the rootfs needs root (chroot)")
    problem = binfmt_problem(arch)
    if problem:
        raise CannotChroot(f"{problem}; run tests/arm64/install-host-deps.sh as root")


def pick_cpu(arch: str) -> str:
    """$MOVINET_QEMU_CPU, else the first of CPU_PREFERENCE[arch] this qemu offers."""
    configured = os.environ.get("MOVINET_QEMU_CPU")
    if configured:
        return configured
    binary = shutil.which(QEMU[arch][1]) or shutil.which(QEMU[arch][0])
    offered = ""
    if binary:
        offered = subprocess.run([binary, "-cpu", "help"], capture_output=True, text=True, timeout=30).stdout
    names = set(offered.split())
    return next((cpu for cpu in CPU_PREFERENCE[arch] if cpu in names), CPU_PREFERENCE[arch][-1])


@dataclass(frozen=True)
class ChrootGuest:
    """One emulated Pi: a rootfs entered with chroot, its programs run by qemu through binfmt_misc."""

    root: Path
    arch: str
    cpu: str

    @classmethod
    def open(cls, root: Path, arch: str) -> ChrootGuest:
        """The guest, or CannotChroot saying why this host cannot run it."""
        check_host(arch)
        guest = cls(root=root, arch=arch, cpu=pick_cpu(arch))
        guest.copy_host_files()
        return guest

    def copy_host_files(self) -> None:
        """DNS and the CA bundle, for pip inside (ca-certificates' own bundle is made by a script that never ran)."""
        for source in HOST_FILES:
            if source.is_file():
                target = self.root / str(source).lstrip("/")
                if target.is_symlink():
                    target.unlink()
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """A login-like environment: nothing of the host's leaks in but the proxy settings."""
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "QEMU_CPU": self.cpu,
        }
        for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(extra or {})
        return env

    def command(self, argv: list[str], cwd: str = "/") -> list[str]:
        """Host command line that runs ``argv`` in the guest, in guest folder ``cwd``."""
        return ["chroot", str(self.root), "/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd, *argv]

    def run(self, argv: list[str], *, cwd: str = "/", env: dict[str, str] | None = None,
            timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess:  # fmt: skip
        return subprocess.run(self.command(argv, cwd), env=self.environment(env), timeout=timeout,
                              **kwargs)  # type: ignore[call-overload]  # fmt: skip

    def path(self, guest_path: str) -> Path:
        """The host path of a guest path."""
        return self.root / guest_path.lstrip("/")
