"""A cached Debian bookworm root filesystem: the userland of 64-bit (arm64) or 32-bit (armhf) Raspberry Pi OS.

Why not a full debootstrap: the second stage runs every maintainer script under
emulation (about 5 minutes on CI). Running Python only needs the files, so we let
``debootstrap --foreign`` resolve, download and verify the packages (it also
unpacks the essential ones) and unpack the rest on the host with ``dpkg-deb``. The
result is enough for ``qemu-aarch64-static -L ROOTFS ROOTFS/usr/bin/python3.11`` (or
``chroot ROOTFS python3`` once binfmt_misc knows qemu, see tests/armhf/chroot.py).

The tree is built in a scratch directory next to the cache and renamed into place,
so an interrupted build never leaves a half tree that looks valid; a stamp file
records the recipe and any change to it triggers a rebuild.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SUITE = "bookworm"
ARCH = "arm64"
# python3 pulls python3.11 and its stdlib; nothing else is needed because the
# project's dependencies come as manylinux wheels installed by the host pip.
INCLUDE = ("python3",)
ARCHES = ("arm64", "armhf")
# Bump when the build steps change so cached trees from older recipes are rebuilt.
RECIPE_VERSION = 4
STAMP_NAME = ".movinet-rootfs"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
GUEST_PYTHON = "usr/bin/python3.11"
# A hang guard: the first stage takes under a minute on CI.
DEBOOTSTRAP_TIMEOUT_S = 600

Log = Callable[[str], None]


class RootfsError(RuntimeError):
    """The arm64 tree could not be built; the message says what to fix."""


class HostCannotBuild(RootfsError):
    """This host lacks what building the tree needs (root, debootstrap), as opposed to a failed build."""


@dataclass(frozen=True)
class RootfsOptions:
    """Where the tree lives and where its packages come from."""

    cache_dir: Path
    mirror: str
    arch: str = ARCH
    include: tuple[str, ...] = INCLUDE
    # A tree for another use of the same arch (other packages) gets its own folder.
    flavour: str = ""
    # Globs (relative to the tree) deleted after unpacking: big files nothing loads at
    # import time, kept out of the cache.
    prune: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        return self.cache_dir / f"rootfs-{SUITE}-{self.arch}{'-' + self.flavour if self.flavour else ''}"

    @property
    def recipe(self) -> str:
        # The mirror is not part of the recipe: any mirror serves the same suite.
        pruned = f" prune={','.join(self.prune)}" if self.prune else ""
        return f"v{RECIPE_VERSION} {SUITE} {self.arch} minbase include={','.join(self.include)}{pruned}\n"


def default_cache_dir() -> Path:
    """``$MOVINET_ARM64_CACHE``, else ``~/.cache/movinet-edge/arm64``."""
    configured = os.environ.get("MOVINET_ARM64_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "movinet-edge" / "arm64"


def apt_mirror(sources: tuple[Path, ...] = (Path("/etc/apt/sources.list"),)) -> str:
    """The Debian mirror this host's apt uses, so CI fetches from where it is allowed to.

    ``$MOVINET_ARM64_MIRROR`` wins. Otherwise the first URI serving the plain
    ``bookworm`` suite (not -security, not -updates, not third-party repos) in the
    one-line or deb822 apt sources; failing that, deb.debian.org.
    """
    configured = os.environ.get("MOVINET_ARM64_MIRROR")
    if configured:
        return configured.rstrip("/")
    files = list(sources)
    source_dir = Path("/etc/apt/sources.list.d")
    if source_dir.is_dir():
        files += sorted(source_dir.glob("*.list")) + sorted(source_dir.glob("*.sources"))
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        mirror = _mirror_from_sources(text)
        if mirror:
            return mirror
    return FALLBACK_MIRROR


def _mirror_from_sources(text: str) -> str | None:
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    # One-line format: deb [options] URI SUITE COMPONENTS...
    for line in lines:
        match = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if match and match.group(2) == SUITE and _is_debian_archive(match.group(1)):
            return match.group(1).rstrip("/")
    # deb822 format: stanzas separated by blank lines.
    stanza: dict[str, str] = {}
    for line in lines + [""]:
        if not line:
            uris, suites = stanza.get("uris", "").split(), stanza.get("suites", "").split()
            if "deb" in stanza.get("types", "").split() and SUITE in suites:
                for uri in uris:
                    if _is_debian_archive(uri):
                        return uri.rstrip("/")
            stanza = {}
            continue
        if ":" in line:
            key, value = line.split(":", 1)
            stanza[key.strip().lower()] = value.strip()
    return None


def _is_debian_archive(uri: str) -> bool:
    return uri.startswith(("http://", "https://")) and uri.rstrip("/").endswith("/debian")


def is_ready(options: RootfsOptions) -> bool:
    """True when the cached tree was completed by the current recipe."""
    stamp = options.root / STAMP_NAME
    return stamp.is_file() and stamp.read_text() == options.recipe


def ensure_rootfs(options: RootfsOptions, log: Log) -> Path:
    """Return the cached tree, building it first when it is missing or outdated."""
    if is_ready(options):
        log(f"rootfs: cached at {options.root}")
        write_cpuinfo(options.root, options.arch)
        return options.root
    if os.geteuid() != 0:
        raise HostCannotBuild(
            "building the arm64 rootfs needs root (debootstrap creates device nodes "
            "and owned files); run as root or point MOVINET_ARM64_CACHE at a built one"
        )
    if shutil.which("debootstrap") is None:
        raise HostCannotBuild(
            "debootstrap is not installed; run tests/arm64/install-host-deps.sh"
        )
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    scratch = options.cache_dir / f"rootfs-building-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    started = time.monotonic()
    log(f"rootfs: building Debian {SUITE} {options.arch} from {options.mirror} (cold cache, a minute or more)")
    try:
        _debootstrap_first_stage(scratch, options, log)
        unpacked = _unpack_remaining_packages(scratch)
        log(f"rootfs: unpacked {unpacked} more packages on the host")
        linked = register_alternatives(scratch)
        log(f"rootfs: {len(linked)} alternatives linked (update-alternatives never ran)")
        write_accounts(scratch)
        _drop_unused_files(scratch, options.prune)
        write_cpuinfo(scratch, options.arch)
        guest_python = scratch / GUEST_PYTHON
        if not guest_python.is_file():
            log_path = options.cache_dir / f"debootstrap-{options.arch}.log"
            raise RootfsError(f"the built tree has no /{GUEST_PYTHON}; see {log_path}")
        (scratch / STAMP_NAME).write_text(options.recipe)
        shutil.rmtree(options.root, ignore_errors=True)
        scratch.rename(options.root)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log(f"rootfs: ready in {time.monotonic() - started:.0f} s, {tree_size_mib(options.root):.0f} MiB at {options.root}")
    return options.root


def _debootstrap_first_stage(target: Path, options: RootfsOptions, log: Log) -> None:
    """Resolve, download, verify and unpack the essential packages; no emulation."""
    mirror, arch = options.mirror, options.arch
    log_path = options.cache_dir / f"debootstrap-{arch}.log"
    # `timeout` because wget inside debootstrap waits up to 15 min on a stalled mirror.
    command = [
        "timeout", str(DEBOOTSTRAP_TIMEOUT_S), "debootstrap", f"--arch={arch}", "--variant=minbase", "--foreign",
        f"--include={','.join(options.include)}", SUITE, str(target), mirror,
    ]
    per_package = ("I: Retrieving ", "I: Validating ", "I: Extracting ")
    counts = {prefix: 0 for prefix in per_package}
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        for line in process.stdout:
            log_file.write(line)
            prefix = next((p for p in per_package if line.startswith(p)), None)
            if prefix is None:
                log(f"debootstrap: {line.rstrip()}")
                continue
            counts[prefix] += 1
            if counts[prefix] % 25 == 0:
                log(f"debootstrap: {prefix[3:].strip().lower()} {counts[prefix]} packages")
        returncode = process.wait()
    if returncode != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
        why = f"timed out after {DEBOOTSTRAP_TIMEOUT_S} s" if returncode == 124 else f"failed (exit {returncode})"
        raise RootfsError(
            f"debootstrap {why} fetching {SUITE}/{arch} from {mirror}; "
            f"full log {log_path}; set MOVINET_ARM64_MIRROR to a reachable Debian mirror\n{tail}"
        )


def _unpack_remaining_packages(root: Path) -> int:
    """Unpack what the first stage only downloaded (the --include set and its deps).

    ``tar --keep-directory-symlink`` matters: the first stage already merged /usr
    (``/lib -> usr/lib``), and a plain ``dpkg-deb -x`` replaces those links with
    real directories, splitting the tree in two.
    """
    meta = root / "debootstrap"
    required = set((meta / "required").read_text().split())
    debpaths = dict(
        line.split(None, 1) for line in (meta / "debpaths").read_text().splitlines() if line.strip()
    )
    unpacked = 0
    for package, relative in sorted(debpaths.items()):
        if package in required:
            continue
        deb = root / relative.strip().lstrip("/")
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as dpkg:
            tar = subprocess.run(
                ["tar", "-x", "--keep-directory-symlink", "--no-same-owner", "-C", str(root)],
                stdin=dpkg.stdout, capture_output=True, text=True,
            )
        if dpkg.returncode != 0 or tar.returncode != 0:
            raise RootfsError(f"could not unpack {deb.name}: {tar.stderr.strip() or 'dpkg-deb failed'}")
        unpacked += 1
    return unpacked


_ALTERNATIVE = re.compile(r"update-alternatives\s+--install\s+(/\S+)\s+(\S+)\s+(/\S+)\s+(\d+)")


def register_alternatives(root: Path) -> dict[str, str]:
    """Make the links ``update-alternatives --install`` would have made; {link: target}.

    Maintainer scripts do not run in this tree, and some of them make links that
    programs load through: numpy's ``libblas.so.3`` and ``liblapack.so.3`` are
    such alternatives (numpy does not import without them), ``awk`` another.
    Each package's postinst is read from its .deb; where several packages offer
    one link the highest priority wins, as with update-alternatives. The links
    are relative, so they resolve inside the tree under ``qemu -L`` and in a chroot.
    """
    debpaths = root / "debootstrap" / "debpaths"
    if not debpaths.is_file():
        return {}
    best: dict[str, tuple[int, str]] = {}
    for line in debpaths.read_text().splitlines():
        if not line.strip():
            continue
        deb = root / line.split(None, 1)[1].strip().lstrip("/")
        script = subprocess.run(["dpkg-deb", "--info", str(deb), "postinst"], capture_output=True, text=True)
        if script.returncode != 0:
            continue  # no postinst
        for link, _name, target, priority in _ALTERNATIVE.findall(script.stdout.replace("\\\n", " ")):
            if "$" in link + target or not (root / target.lstrip("/")).exists():
                continue
            if link not in best or int(priority) > best[link][0]:
                best[link] = (int(priority), target)
    made = {}
    for link, (_priority, target) in best.items():
        path = root / link.lstrip("/")
        if path.exists() or path.is_symlink():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(os.path.relpath(root / target.lstrip("/"), path.parent))
        made[link] = target
    return made


def write_accounts(root: Path) -> None:
    """/etc/passwd, /etc/group and their shadow files, as base-passwd's postinst writes them.

    Without them nothing has a user name (``usermod``, ``install -o``, Python's
    ``getpass``), and the guide's ``usermod -aG video`` has no group to add to.
    """
    masters = root / "usr" / "share" / "base-passwd"
    for name in ("passwd", "group"):
        target, master = root / "etc" / name, masters / f"{name}.master"
        if not target.exists() and master.is_file():
            shutil.copyfile(master, target)
    for name, source in (("shadow", "passwd"), ("gshadow", "group")):
        target, accounts = root / "etc" / name, root / "etc" / source
        if target.exists() or not accounts.is_file():
            continue
        names = [line.split(":", 1)[0] for line in accounts.read_text().splitlines() if line.strip()]
        entry = "{}:*:19000:0:99999:7:::" if name == "shadow" else "{}:*::"
        target.write_text("".join(entry.format(n) + "\n" for n in names))
        target.chmod(0o640)


# Nothing the guest runs reads these; together they are half of the tree (the
# arm64 package index alone is ~50 MB), and the tree is what CI caches.
_UNUSED_IN_GUEST = ("var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale")


def _drop_unused_files(root: Path, prune: tuple[str, ...] = ()) -> None:
    """Delete the unpacked .debs, the apt index, documentation and what ``prune`` names."""
    for deb in (root / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        deb.unlink()
    for relative in _UNUSED_IN_GUEST:
        shutil.rmtree(root / relative, ignore_errors=True)
    for pattern in prune:
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def write_cpuinfo(root: Path, arch: str = ARCH) -> None:
    """Give the guest an arm64 (or armhf) ``/proc/cpuinfo`` (a Raspberry Pi 4's Cortex-A72).

    qemu-user passes ``/proc/cpuinfo`` through from the x86 host. LiteRT's XNNPACK
    parses it with the cpuinfo library, finds no ARM cores and segfaults. With
    ``-L ROOTFS`` qemu opens ``ROOTFS/proc/cpuinfo`` instead when it exists. One
    entry per host CPU keeps the thread pool the size of what can actually run.
    Rewritten on every use because the cache may move between machines.

    debootstrap makes ``ROOTFS/proc`` a symlink to the host's ``/proc`` when it
    thinks it runs in a container (``/.dockerenv`` exists, as on many CI runners);
    that link is replaced by a plain directory, otherwise the file cannot be
    written and qemu would read the host's cpuinfo through it anyway. In a
    chroot the same file is the guest's /proc/cpuinfo.

    armhf: what a 32-bit process reads on a Pi 4 (ARMv7 features, NEON).
    """
    cores = os.cpu_count() or 1
    if arch == "armhf":
        entry = (
            "processor\t: {n}\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nBogoMIPS\t: 108.00\n"
            "Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32\n"
            "CPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\n"
            "CPU part\t: 0xd08\nCPU revision\t: 3\n"
        )
    else:
        entry = (
            "processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
            "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n"
            "CPU part\t: 0xd08\nCPU revision\t: 3\n"
        )
    text = "\n".join(entry.format(n=n) for n in range(cores))
    text += "\nHardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n"
    proc = root / "proc"
    if proc.is_symlink():
        proc.unlink()
    proc.mkdir(exist_ok=True)
    target = proc / "cpuinfo"
    if not target.is_file() or target.read_text() != text:
        partial = proc / "cpuinfo.partial"
        partial.write_text(text)
        partial.replace(target)


def tree_size_mib(path: Path) -> float:
    """Apparent size of a tree (links not followed), for the progress log."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total / (1024 * 1024)
