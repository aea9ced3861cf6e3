#!/usr/bin/env bash
# Install what an x86_64 Debian/Ubuntu host needs to run the arm64 (Raspberry Pi OS
# bookworm) emulation test: qemu user emulation, debootstrap to fetch the arm64
# packages, and the Debian archive keyring debootstrap verifies them with.
#
# Idempotent: when everything is already installed it touches nothing (no apt-get
# update), so CI can call it on every run. Exits non-zero with one line when it
# cannot install (no root and no sudo, apt failure); the arm64 test then skips
# with its own reason instead of failing for an unrelated host problem.
set -euo pipefail

packages=(qemu-user-static debootstrap binfmt-support debian-archive-keyring ca-certificates)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "[arm64] host deps present: ${packages[*]}"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "[arm64] cannot install ${missing[*]}: this host has no apt-get; install qemu-user-static and debootstrap by hand" >&2
    exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "[arm64] cannot install ${missing[*]}: not root and no password-less sudo; run this script as root" >&2
        exit 1
    fi
fi

echo "[arm64] installing host deps: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[arm64] host deps installed: ${missing[*]}"
