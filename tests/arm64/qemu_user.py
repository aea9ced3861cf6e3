"""Run arm64 programs of the cached rootfs on an x86 host with qemu user emulation.

``qemu-aarch64-static -L ROOTFS`` runs one guest process: it loads the guest's
dynamic linker from ROOTFS and, for every absolute path the guest opens, prefers
``ROOTFS/path`` when that exists. No chroot, no binfmt_misc and no root are
needed to run, which is why this works on locked-down CI machines. The cost: a
guest that exec()s another arm64 binary needs binfmt_misc, which the edge CLI
never does.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

GUEST_PYTHON = "usr/bin/python3.11"
PROBE_EXIT_CODE = 42
# The CPU qemu emulates: a Raspberry Pi 4's. qemu's default ("max") offers SVE, SME,
# i8mm and more, which XNNPACK then uses, and qemu 7.2 gets some of those wrong:
# int8 and dynamic-range models gave garbage (float32 was right). A Pi has none of them.
# ``$MOVINET_QEMU_CPU`` overrides (cortex-a76: a Pi 5).
DEFAULT_CPU = "cortex-a72"
# Host variables that would point the guest at x86 files or another Python.
_HOST_ONLY_VARIABLES = (
    "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "VIRTUAL_ENV",
    "LD_LIBRARY_PATH", "LD_PRELOAD",
)


class CannotEmulate(RuntimeError):
    """This machine cannot run arm64 code at all; the arm64 check should skip."""


def find_qemu() -> str:
    """Path of the qemu aarch64 user emulator (``$MOVINET_QEMU`` overrides)."""
    configured = os.environ.get("MOVINET_QEMU")
    candidates = [configured] if configured else ["qemu-aarch64-static", "qemu-aarch64"]
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    raise CannotEmulate(
        f"no qemu aarch64 user emulator found ({' or '.join(candidates)}); "
        "run tests/arm64/install-host-deps.sh"
    )


def probe(qemu: str) -> None:
    """Run a 132-byte static arm64 program that exits with 42, or raise CannotEmulate.

    Proves that this machine can emulate arm64 at all (qemu present, executable,
    not blocked by seccomp or mount options) before anything is downloaded, so
    that a broken rootfs later is a failure and not mistaken for a skip.
    """
    with tempfile.TemporaryDirectory(prefix="movinet-arm64-probe-") as scratch:
        program = Path(scratch) / "exit42"
        program.write_bytes(_exit_program(PROBE_EXIT_CODE))
        program.chmod(program.stat().st_mode | stat.S_IXUSR)
        try:
            result = subprocess.run([qemu, str(program)], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise CannotEmulate(f"{qemu} cannot run here: {error}") from error
    if result.returncode != PROBE_EXIT_CODE:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CannotEmulate(
            f"{qemu} could not run a minimal arm64 program "
            f"(exit {result.returncode}, expected {PROBE_EXIT_CODE}): {detail[0]}"
        )


def _exit_program(code: int) -> bytes:
    """A static aarch64 ELF whose whole text is ``exit(code)``."""
    base, header_size, program_header_size = 0x400000, 64, 56
    text = struct.pack(
        "<3I",
        0xD2800000 | (code << 5),  # movz x0, #code
        0xD2800000 | (93 << 5) | 8,  # movz x8, #93 (exit)
        0xD4000001,  # svc #0
    )
    size = header_size + program_header_size + len(text)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 2, 183, 1, base + header_size + program_header_size,
        header_size, 0, 0, header_size, program_header_size, 1, 0, 0, 0,
    )
    program_header = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return header + program_header + text


@dataclass(frozen=True)
class Guest:
    """One emulated Pi: the rootfs, the directory holding its Python packages, the emulator."""

    root: Path
    site_dir: Path
    qemu: str

    def command(self, argv: list[str]) -> list[str]:
        """Host command line that runs guest ``argv``.

        A console script that pip put in ``site_dir/bin`` (``movinet-edge``) runs
        through the guest Python: its shebang names the host interpreter, and
        qemu-user does not follow shebangs anyway. Other names are looked up in
        the guest's /usr/bin, /usr/sbin.
        """
        if not argv:
            raise ValueError("no command given")
        program, rest = argv[0], argv[1:]
        prefix = [self.qemu, "-L", str(self.root)]
        script = self.site_dir / "bin" / program
        if "/" not in program and script.is_file():
            return prefix + [str(self.root / GUEST_PYTHON), str(script), *rest]
        if program.startswith("/"):
            return prefix + [str(self.root / program.lstrip("/")), *rest]
        for directory in ("usr/bin", "usr/sbin"):
            candidate = self.root / directory / program
            if candidate.is_file():
                return prefix + [str(candidate), *rest]
        raise FileNotFoundError(f"{program} is neither a console script in {self.site_dir / 'bin'} nor in the guest's /usr/bin")

    def environment(self) -> dict[str, str]:
        """The host environment minus what points at x86 files, plus the guest's packages."""
        env = {k: v for k, v in os.environ.items() if k not in _HOST_ONLY_VARIABLES}
        env["PYTHONPATH"] = str(self.site_dir)
        env["QEMU_CPU"] = os.environ.get("MOVINET_QEMU_CPU") or DEFAULT_CPU
        # The host user's ~/.local site-packages hold x86 builds for the same 3.11.
        env["PYTHONNOUSERSITE"] = "1"
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        return env

    def run(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        """``subprocess.run`` of guest ``argv``; keyword arguments pass through."""
        return subprocess.run(self.command(argv), env=self.environment(), **kwargs)  # type: ignore[call-overload]


def describe_exit(returncode: int) -> str:
    """Human reading of a guest's exit status, with the known qemu pitfall for SIGSEGV."""
    if returncode >= 0:
        return f"exit {returncode}"
    name = signal.Signals(-returncode).name
    if -returncode == signal.SIGSEGV:
        return (f"killed by {name}; under qemu this usually means the guest read the x86 "
                "/proc/cpuinfo (check ROOTFS/proc/cpuinfo exists)")
    return f"killed by {name}"
