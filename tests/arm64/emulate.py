#!/usr/bin/env python3
"""Run the edge package on an emulated arm64 Raspberry Pi OS (Debian bookworm, Python 3.11).

    emulate.py probe                 exit 0 if this machine can emulate arm64, 3 (with the reason) if not
    emulate.py prepare [--wheel W]   cache the rootfs, install the wheel (built from the project when
                                     not given) with the service extra and its aarch64 deps, check
                                     TensorFlow is absent
    emulate.py run -- CMD ARGS...    run CMD in the prepared guest (``movinet-edge``, ``python3.11``, ...)

The rootfs is cached in ``$MOVINET_ARM64_CACHE`` (default ``~/.cache/movinet-edge/arm64``)
and only built when missing; the packages are reinstalled on every ``prepare``
because CI builds a new wheel each run. Exit codes: 0 ok, 2 a setup problem (the
message says what to fix), 3 this machine cannot run the check (no working qemu,
or no debootstrap/root while the rootfs is not cached yet); ``run`` returns the
guest command's exit code.
"""

from __future__ import annotations

import argparse
import fcntl
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pi_packages  # noqa: E402
import pi_rootfs  # noqa: E402
import qemu_user  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXIT_SETUP = 2
EXIT_CANNOT_EMULATE = 3
GUEST_SITE = "opt/movinet-edge/site-packages"
# The base install plus what `movinet-edge serve` needs (MQTT, metrics, systemd notify).
EXTRAS = ("service",)
# A hang guard, far above the ~6 s the check takes under emulation.
GUEST_CHECK_TIMEOUT_S = 300
# Run in the guest after installing: the base install must not drag TensorFlow in,
# and the runtime's imports must load on aarch64.
GUEST_CHECK = """
import importlib.metadata as metadata, platform, sys
try:
    import tensorflow
except ModuleNotFoundError:
    pass
else:
    sys.exit(f"tensorflow is importable in the edge install ({tensorflow.__file__}); the base dependencies must not pull it in")
import ai_edge_litert.interpreter, cv2, numpy, movinet_edge, paho.mqtt.client, prometheus_client
versions = ", ".join(f"{d} {metadata.version(d)}" for d in ("movinet-edge", "ai-edge-litert", "numpy", "opencv-python-headless", "paho-mqtt"))
print(f"{platform.machine()} Python {platform.python_version()}: {versions}; import tensorflow fails as it should")
"""

_started = time.monotonic()


def log(message: str) -> None:
    """Progress goes to stderr: stdout of ``run`` is the guest command's own (JSON lines)."""
    print(f"[arm64 {time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Layout:
    """Where the cached rootfs and the installed packages live."""

    cache_dir: Path
    rootfs: pi_rootfs.RootfsOptions

    @property
    def site_dir(self) -> Path:
        return self.rootfs.root / GUEST_SITE

    def guest(self, qemu: str) -> qemu_user.Guest:
        return qemu_user.Guest(root=self.rootfs.root, site_dir=self.site_dir, qemu=qemu)


@contextmanager
def cache_lock(cache_dir: Path) -> Iterator[None]:
    """Serialise builds sharing one cache (parallel CI jobs on one machine)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cmd_probe(layout: Layout) -> int:
    qemu = qemu_user.find_qemu()
    qemu_user.probe(qemu)
    log(f"probe: {qemu} runs arm64 code")
    return 0


def cmd_prepare(layout: Layout, wheel: Path | None, project: Path) -> int:
    qemu = qemu_user.find_qemu()
    qemu_user.probe(qemu)
    log(f"probe: {qemu} runs arm64 code")
    with cache_lock(layout.cache_dir):
        pi_rootfs.ensure_rootfs(layout.rootfs, log)
        if wheel is None:
            wheel = pi_packages.build_wheel(project, layout.cache_dir / "wheelhouse", log)
        pi_packages.install(wheel, layout.site_dir, log, extras=EXTRAS)
        log("check: importing the runtime on arm64 (emulated, ~10 s)")
        try:
            result = layout.guest(qemu).run(["python3.11", "-c", GUEST_CHECK], capture_output=True,
                                            text=True, timeout=GUEST_CHECK_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            raise SetupProblem(f"the emulated import check hung for {GUEST_CHECK_TIMEOUT_S} s") from error
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr, end="")
        log(f"check FAILED: guest Python {qemu_user.describe_exit(result.returncode)}")
        return 1
    log(f"check: {result.stdout.strip()}")
    log(f"ready: rootfs {pi_rootfs.tree_size_mib(layout.rootfs.root):.0f} MiB including packages")
    return 0


def cmd_run(layout: Layout, argv: list[str]) -> int:
    if not layout.site_dir.is_dir():
        raise SetupProblem(f"no prepared guest in {layout.cache_dir}; run `{Path(__file__).name} prepare` first")
    guest = layout.guest(qemu_user.find_qemu())
    pi_rootfs.write_cpuinfo(guest.root)
    try:
        guest.command(argv)
    except FileNotFoundError as error:
        raise SetupProblem(str(error)) from error
    log(f"run (emulated aarch64): {' '.join(argv)}")
    returncode = guest.run(argv).returncode
    if returncode != 0:
        log(f"run: {argv[0]} {qemu_user.describe_exit(returncode)}")
    return returncode if returncode >= 0 else 128 - returncode


def prepared_guest(cache_dir: Path | None = None) -> qemu_user.Guest:
    """The guest ``prepare`` made, for tests that run it themselves (a service they signal)."""
    cache_dir = (cache_dir or pi_rootfs.default_cache_dir()).expanduser().resolve()
    layout = Layout(cache_dir, pi_rootfs.RootfsOptions(cache_dir=cache_dir, mirror=""))
    if not layout.site_dir.is_dir():
        raise SetupProblem(f"no prepared guest in {cache_dir}; run `{Path(__file__).name} prepare` first")
    pi_rootfs.write_cpuinfo(layout.rootfs.root)
    return layout.guest(qemu_user.find_qemu())


class SetupProblem(RuntimeError):
    """A problem the person running the script can fix."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=pi_rootfs.default_cache_dir(),
                        help="cache directory (default: $MOVINET_ARM64_CACHE or ~/.cache/movinet-edge/arm64)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("probe", help="exit 0 if this machine can emulate arm64, 3 if not")
    prepare = commands.add_parser("prepare", help="cache the rootfs and install the edge wheel")
    prepare.add_argument("--wheel", type=Path, help="built movinet_edge wheel (default: build one)")
    prepare.add_argument("--project", type=Path, default=PROJECT_ROOT,
                         help=f"project to build the wheel from (default: {PROJECT_ROOT})")
    run = commands.add_parser("run", help="run a command in the prepared guest")
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args(argv)
    if args.command == "run":
        args.argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not args.argv:
            parser.error("run needs a command: run -- movinet-edge --help")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cache_dir = args.cache.expanduser().resolve()
    layout = Layout(cache_dir, pi_rootfs.RootfsOptions(cache_dir=cache_dir, mirror=pi_rootfs.apt_mirror()))
    try:
        if args.command == "probe":
            return cmd_probe(layout)
        if args.command == "prepare":
            wheel = args.wheel.resolve() if args.wheel else None
            return cmd_prepare(layout, wheel, args.project.resolve())
        return cmd_run(layout, args.argv)
    except qemu_user.CannotEmulate as error:
        print(f"[arm64] cannot emulate arm64 on this machine: {error}", file=sys.stderr)
        return EXIT_CANNOT_EMULATE
    except pi_rootfs.HostCannotBuild as error:
        print(f"[arm64] cannot build the arm64 rootfs on this machine: {error}", file=sys.stderr)
        return EXIT_CANNOT_EMULATE
    except (SetupProblem, pi_rootfs.RootfsError, pi_packages.PackagesError) as error:
        print(f"[arm64] {error}", file=sys.stderr)
        return EXIT_SETUP


if __name__ == "__main__":
    sys.exit(main())
