#!/usr/bin/env python3
"""Run docs/raspberry-pi.md's commands for the Pi in an emulated Raspberry Pi OS userland.

    run_pi_guide.py [--arch armhf|arm64] [--wheel W] [--model DIR] [--clip FILE] [--keep]

The tree is Debian Bookworm for the arch, built once (cached, tests/arm64/pi_rootfs.py)
with the packages the guide's ``apt install`` lines name. Each run starts from
that tree unchanged: it is the lower layer of an overlay mount whose upper layer
is a scratch folder, so what the guide does (a venv in /opt, files in /etc and
/var/lib) is thrown away afterwards, or kept with ``--keep`` for a look.

What stands in for what the guide assumes (see its last section): the workstation's
``scp`` is a copy of the wheel, the model folder and a clip into /home/pi; ``sudo``
runs the command as the chroot's root; ``apt`` checks that what it is asked to
install is in the tree (it was built with exactly those) and changes nothing.
Each block runs in its own bash with ``set -euo pipefail`` as user pi's login
would (HOME=/home/pi, USER=pi), and the run stops at the first block that fails.

Exit codes: 0 every block ran, 1 a block failed (its output says which), 2 a
setup problem, 3 this machine cannot run the guide (not root, no binfmt_misc).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from arm64 import pi_packages, pi_rootfs  # noqa: E402
from armhf import pi_guide  # noqa: E402
from armhf.chroot_guest import CannotChroot, ChrootGuest, check_host  # noqa: E402

EXIT_FAILED, EXIT_SETUP, EXIT_CANNOT = 1, 2, 3
PI_USER, PI_HOME = "pi", "/home/pi"
# What the guide calls the clip and the model folder it copies over (the exporter's default name).
CLIP_NAME = "clip.mp4"
MODEL_NAME = "a0_stream_int8"
# A hang guard per block: the slowest, the venv with its pip under emulation, takes about 2 min.
BLOCK_TIMEOUT_S = 900

Log = Callable[[str], None]

# Defined before every block. `sudo` runs as the chroot's root already; `apt` checks its
# packages against the tree's recipe ($GUIDE_PACKAGES) and installs nothing.
PRELUDE = r"""
sudo() { "$@"; }
apt() {
    case "${1:-}" in
    update|upgrade|full-upgrade) return 0 ;;
    install)
        shift
        for pkg in "$@"; do
            case "$pkg" in -*) continue ;; esac
            case " $GUIDE_PACKAGES $GUIDE_PI_ONLY " in
            *" $pkg "*) ;;
            *) echo "run_pi_guide: the guide installs $pkg, which the emulated tree was not built with" >&2; return 1 ;;
            esac
        done ;;
    *) echo "run_pi_guide: apt $1 is not emulated" >&2; return 1 ;;
    esac
}
apt-get() { apt "$@"; }
"""


@dataclass
class BlockResult:
    line: int
    tag: str
    seconds: float
    exit_code: int


@dataclass
class GuideRun:
    """A finished run: the guest (still mounted) and what each block did."""

    guest: ChrootGuest
    arch: str
    results: list[BlockResult] = field(default_factory=list)
    output: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.exit_code == 0 for r in self.results)


# python3-opencv pulls Mesa's GL drivers and the LLVM they link (130 MB); OpenCV never loads them
# (checked: nothing but the drivers links libLLVM), so they stay out of the cached tree.
PRUNE = ("usr/lib/*/dri", "usr/lib/*/libLLVM-*.so*", "usr/lib/*/libz3.so*")


def rootfs_options(cache_dir: Path, arch: str) -> pi_rootfs.RootfsOptions:
    """The tree the guide runs in: Debian Bookworm with python3 and what the guide apt-installs."""
    include = tuple(dict.fromkeys(("python3", *pi_guide.apt_packages(arch))))
    return pi_rootfs.RootfsOptions(cache_dir=cache_dir, mirror=pi_rootfs.apt_mirror(), arch=arch,
                                   include=include, flavour="guide", prune=PRUNE)  # fmt: skip


class Overlay:
    """The cached tree as the read-only lower layer of a writable overlay (a copy where overlayfs fails)."""

    def __init__(self, lower: Path, scratch: Path) -> None:
        self.lower, self.scratch = lower, scratch
        self.merged = scratch / "root"
        self.mounted = False

    def __enter__(self) -> Path:
        upper, work = self.scratch / "upper", self.scratch / "work"
        for folder in (upper, work, self.merged):
            folder.mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={self.lower},upperdir={upper},workdir={work}"
        mount = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(self.merged)],
                               capture_output=True, text=True)  # fmt: skip
        if mount.returncode == 0:
            self.mounted = True
        else:  # no overlayfs here (some containers): a private copy, hard links where possible
            self.merged.rmdir()
            subprocess.run(["cp", "-a", "--reflink=auto", str(self.lower), str(self.merged)], check=True)
        return self.merged

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.merged)], capture_output=True)
            self.mounted = False


def place_workstation_files(root: Path, wheel: Path, model: Path, clip: Path) -> None:
    """What the guide's scp lines leave in the pi user's home."""
    home = root / PI_HOME.lstrip("/")
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy2(wheel, home / wheel.name)
    shutil.copytree(model, home / MODEL_NAME, dirs_exist_ok=True)
    shutil.copy2(clip, home / CLIP_NAME)


def run_guide(guest: ChrootGuest, arch: str, log: Log) -> GuideRun:
    """Run the guide's blocks for ``arch`` in ``guest`` (prepared: user pi, files in place), in order."""
    run = GuideRun(guest=guest, arch=arch)
    env = {"HOME": PI_HOME, "USER": PI_USER, "LOGNAME": PI_USER,
           "GUIDE_PACKAGES": " ".join(rootfs_packages(arch)),
           "GUIDE_PI_ONLY": " ".join(pi_guide.RASPBERRY_PI_ONLY)}  # fmt: skip
    output: list[str] = []
    for block in pi_guide.blocks_for(arch):
        log(f"guide line {block.line} ({block.tag}): {block.text.strip().splitlines()[0]}")
        started = time.monotonic()
        try:
            result = guest.run(["/bin/bash", "-c", "set -euo pipefail\n" + PRELUDE + block.text], cwd=PI_HOME,
                               env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)  # fmt: skip
            code, text = result.returncode, result.stdout + result.stderr
        except subprocess.TimeoutExpired as error:
            code, text = 124, f"timed out after {BLOCK_TIMEOUT_S} s\n{error.stdout or ''}{error.stderr or ''}"
        seconds = time.monotonic() - started
        output.append(f"--- docs/raspberry-pi.md line {block.line} ({block.tag}), exit {code}, {seconds:.0f} s\n"
                      f"{block.text}--- output\n{text}")  # fmt: skip
        run.results.append(BlockResult(block.line, block.tag, seconds, code))
        log(f"  exit {code} in {seconds:.0f} s")
        if code != 0:
            log(f"FAILED: the guide's block at line {block.line}:\n{text[-3000:]}")
            break
    run.output = "\n".join(output)
    return run


def rootfs_packages(arch: str) -> tuple[str, ...]:
    return rootfs_options(Path("."), arch).include


def prepare_guest(root: Path, arch: str) -> ChrootGuest:
    """The chroot with user pi (what Raspberry Pi Imager creates)."""
    guest = ChrootGuest.open(root, arch)
    pi_rootfs.write_cpuinfo(root, arch)
    if PI_USER not in (root / "etc" / "passwd").read_text():
        made = guest.run(["useradd", "--create-home", "--shell", "/bin/bash", PI_USER],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
        if made.returncode != 0:
            raise SetupError(f"useradd {PI_USER} failed in the guest: {made.stderr.strip()}")
    return guest


@contextmanager
def guide_session(cache: Path, arch: str, model: Path, clip: Path, log: Log, wheel: Path | None = None,
                  keep: bool = False) -> Iterator[GuideRun]:  # fmt: skip
    """Build (or reuse) the tree, run the guide in an overlay of it, and yield the run with the guest
    still there for more commands; the overlay goes when the block ends (unless ``keep``)."""
    check_host(arch)
    options = rootfs_options(cache, arch)
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f".lock-{arch}-guide").open("w") as lock:  # one build of a tree at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        pi_rootfs.ensure_rootfs(options, log)
    wheel = wheel or pi_packages.build_wheel(HERE.parents[1], cache / "wheelhouse", log)
    scratch = Path(tempfile.mkdtemp(prefix=f"pi-guide-{arch}-"))
    overlay = Overlay(options.root, scratch)
    root = overlay.__enter__()
    try:
        guest = prepare_guest(root, arch)
        place_workstation_files(root, wheel, model.resolve(), clip.resolve())
        yield run_guide(guest, arch, log)
    finally:
        if keep:
            log(f"kept: {root} (umount -l {root} when done)")
        else:
            overlay.close()
            shutil.rmtree(scratch, ignore_errors=True)


class SetupError(RuntimeError):
    """Something to fix before the guide can run; the message says what."""


def _log(message: str) -> None:
    print(f"[pi-guide] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=pi_rootfs.ARCHES, default="armhf")
    parser.add_argument("--cache", type=Path, default=pi_rootfs.default_cache_dir())
    parser.add_argument("--wheel", type=Path, help="the movinet_edge wheel (default: built from this checkout)")
    parser.add_argument("--model", type=Path, required=True,
                        help=f"an int8 export (model.tflite, ...); the guide calls it {MODEL_NAME}")
    parser.add_argument("--clip", type=Path, required=True, help="a video clip")
    parser.add_argument("--keep", action="store_true", help="leave the overlay mounted and print where")
    args = parser.parse_args(argv)
    cache = args.cache.expanduser().resolve()
    try:
        with guide_session(cache, args.arch, args.model, args.clip, _log, wheel=args.wheel, keep=args.keep) as run:
            pass
    except (CannotChroot, pi_rootfs.HostCannotBuild) as error:
        print(f"[pi-guide] cannot run the guide on this machine: {error}", file=sys.stderr)
        return EXIT_CANNOT
    except (SetupError, pi_rootfs.RootfsError, pi_packages.PackagesError) as error:
        print(f"[pi-guide] {error}", file=sys.stderr)
        return EXIT_SETUP
    print(run.output)
    return 0 if run.ok else EXIT_FAILED


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
