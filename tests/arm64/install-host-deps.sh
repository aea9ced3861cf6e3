#!/usr/bin/env bash
# Install what an x86_64 Debian/Ubuntu host needs to run the emulated Raspberry Pi OS
# tests (bookworm): qemu user emulation, debootstrap to fetch the arm64 and armhf
# packages, and the Debian archive keyring debootstrap verifies them with; and
# binfmt_misc entries for qemu-arm and qemu-aarch64 with the F flag, which the
# armhf test's chroot needs (tests/armhf/chroot_guest.py: a shell in the guest
# starts ARM programs; the arm64 test runs qemu directly and does not need them).
#
# Idempotent: when everything is already installed it touches nothing (no apt-get
# update), so CI can call it on every run. Exits non-zero with one line when it
# cannot install (no root and no sudo, apt failure); the emulation tests then skip
# with their own reason instead of failing for an unrelated host problem.
set -euo pipefail

packages=(qemu-user-static debootstrap binfmt-support debian-archive-keyring ca-certificates)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

# binfmt_misc: mounted, and qemu's entries enabled (a container's host may own them: then
# they are only checked). Run last, after the packages that provide the entries.
enable_binfmt() {
    local dir=/proc/sys/fs/binfmt_misc
    if [ ! -e "$dir/register" ]; then
        "${sudo[@]}" mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null || {
            echo "[arm64] cannot mount binfmt_misc at $dir; the armhf test will skip" >&2
            return 1
        }
    fi
    local entry
    for entry in qemu-arm qemu-aarch64; do
        if [ ! -e "$dir/$entry" ]; then
            "${sudo[@]}" update-binfmts --enable "$entry" >/dev/null 2>&1 || true
        fi
        if ! grep -q '^enabled' "$dir/$entry" 2>/dev/null || ! grep -q '^flags:.*F' "$dir/$entry"; then
            echo "[arm64] binfmt_misc has no enabled $entry entry with the F flag; the armhf test will skip" >&2
            return 1
        fi
    done
    echo "[arm64] binfmt_misc: qemu-arm and qemu-aarch64 enabled"
}

sudo=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "[arm64] host deps present: ${packages[*]}"
    enable_binfmt
    exit $?
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "[arm64] cannot install ${missing[*]}: this host has no apt-get; install qemu-user-static and debootstrap by hand" >&2
    exit 1
fi

if [ "$(id -u)" -ne 0 ] && [ ${#sudo[@]} -eq 0 ]; then
    echo "[arm64] cannot install ${missing[*]}: not root and no password-less sudo; run this script as root" >&2
    exit 1
fi

echo "[arm64] installing host deps: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[arm64] host deps installed: ${missing[*]}"
enable_binfmt
