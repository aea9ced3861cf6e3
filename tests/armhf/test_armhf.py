"""32-bit Raspberry Pi OS, emulated: the guide's commands install the package, and it classifies like x86.

docs/raspberry-pi.md's commands for the Pi (run_pi_guide.py) run in a Debian
Bookworm armhf chroot under qemu-arm: apt packages (python3-venv, Debian's
numpy and OpenCV), a venv in /opt with ``--system-site-packages``, ``pip
install`` of the wheel with the service extra (the environment markers must pick
tflite-runtime 2.14 and leave numpy and OpenCV to Debian, nothing built from
source, no ``--no-deps``), the model in /var/lib/movinet-edge, ``classify``,
``install-service`` and the service's configuration check. Then, in the same
guest: the int8 export's top-5 on the whole clip must match x86's, and the
exports and runtimes 32-bit ARM cannot run must be refused in one line.

Needs root (chroot) and binfmt_misc with qemu-arm (tests/arm64/install-host-deps.sh);
skips, with the reason, without them, and fails instead under
MOVINET_REQUIRE_ARM64=1 (set by .ci/run once the host packages are in). The
first run builds the armhf tree (about 600 MB; 2-3 min, cached like the arm64 one).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arm64 import pi_packages, pi_rootfs
from arm64.top_k_agreement import REPORTED_K, assert_same_top_k, classify_top_k
from armhf.chroot_guest import CannotChroot
from armhf.run_pi_guide import MODEL_NAME, PI_HOME, CLIP_NAME, GuideRun, SetupError, guide_session

pytestmark = pytest.mark.armhf

ARCH = "armhf"
VENV = "/opt/movinet-edge"
GUEST_MODEL = f"/var/lib/movinet-edge/{MODEL_NAME}"
RUN_TIMEOUT_S = 600  # a hang guard: an emulated classify of the clip takes under a minute
TIMES: dict[str, float] = {}


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("MOVINET_REQUIRE_ARM64") == "1":
        pytest.fail(f"MOVINET_REQUIRE_ARM64=1 but the armhf guide cannot run: {reason}", pytrace=False)
    pytest.skip(f"armhf emulation not run: {reason} (MOVINET_REQUIRE_ARM64=1 makes this a failure)")


def _log(message: str) -> None:
    print(f"[armhf] {message}", flush=True)


@pytest.fixture(scope="module")
def guide(int8_model_dir: Path, clips: Path) -> Iterator[GuideRun]:
    """The guide, run once in a fresh overlay of the cached armhf tree; the guest stays for the tests."""
    wheel = os.environ.get("MOVINET_EDGE_WHEEL")
    started = time.monotonic()
    try:
        with guide_session(pi_rootfs.default_cache_dir().expanduser().resolve(), ARCH, int8_model_dir,
                           clips / "carving_ice.mp4", _log, wheel=Path(wheel) if wheel else None) as run:  # fmt: skip
            TIMES["guide (tree, venv, pip install, classify, install-service)"] = time.monotonic() - started
            yield run
    except (CannotChroot, pi_rootfs.HostCannotBuild) as error:
        _skip_or_fail(str(error))
    except (SetupError, pi_rootfs.RootfsError, pi_packages.PackagesError) as error:
        pytest.fail(f"the armhf guide could not be set up: {error}", pytrace=False)


def _guest_run(run: GuideRun, argv: list[str], **env: str) -> subprocess.CompletedProcess:
    return run.guest.run(argv, cwd=PI_HOME, env={"HOME": PI_HOME, **env}, capture_output=True, text=True,
                         timeout=RUN_TIMEOUT_S)  # fmt: skip


def test_the_guide_runs_on_32_bit_raspberry_pi_os(guide: GuideRun) -> None:
    for result in guide.results:
        print(f"docs/raspberry-pi.md line {result.line} ({result.tag}): exit {result.exit_code}, {result.seconds:.0f} s")
    assert guide.ok, f"a command of docs/raspberry-pi.md failed in the emulated 32-bit Pi:\n{guide.output[-6000:]}"
    assert len(guide.results) >= 5


INSPECT = """
import importlib.metadata as m, json, platform, sys, cv2, numpy
dists = {d.metadata["Name"].lower(): d.version for d in m.distributions()}
print(json.dumps({"machine": platform.machine(), "bits": 64 if sys.maxsize > 2**32 else 32, "dists": dists,
                  "numpy": [numpy.__version__, numpy.__file__], "cv2": [cv2.__version__, cv2.__file__]}))
"""


def test_pip_picked_tflite_runtime_and_left_numpy_and_opencv_to_debian(guide: GuideRun) -> None:
    assert guide.ok, "the guide did not run (see the first test)"
    result = _guest_run(guide, [f"{VENV}/bin/python", "-c", INSPECT])
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert (found["machine"], found["bits"]) == ("armv7l", 32)
    dists = found["dists"]
    assert dists.get("tflite-runtime", "").startswith("2.14"), dists
    assert "ai-edge-litert" not in dists and "opencv-python-headless" not in dists, dists
    assert found["numpy"][1].startswith("/usr/lib/python3/dist-packages/"), found["numpy"]
    assert found["cv2"][1].startswith("/usr/lib/python3/dist-packages/"), found["cv2"]
    assert found["numpy"][0].startswith("1."), found["numpy"]


def test_int8_classify_on_armhf_matches_x86(guide: GuideRun, int8_model_dir: Path, clips: Path) -> None:
    """tflite-runtime's int8 kernels and Debian's OpenCV 4.6 on ARMv7 against ai-edge-litert on x86."""
    assert guide.ok, "the guide did not run (see the first test)"
    started = time.monotonic()
    emulated = _guest_run(guide, [f"{VENV}/bin/movinet-edge", "classify", f"{PI_HOME}/{CLIP_NAME}", "--model",
                                  GUEST_MODEL, "--json", "--top-k", str(REPORTED_K)])  # fmt: skip
    TIMES["emulated classify (int8, tflite-runtime)"] = time.monotonic() - started
    native = subprocess.run([sys.executable, "-m", "movinet_edge.cli", "classify", str(clips / "carving_ice.mp4"),
                             "--model", str(int8_model_dir), "--json", "--top-k", str(REPORTED_K)],
                            capture_output=True, text=True, timeout=RUN_TIMEOUT_S)  # fmt: skip
    assert emulated.returncode == 0, emulated.stderr
    assert native.returncode == 0, native.stderr
    assert json.loads(emulated.stdout)["steps"] == json.loads(native.stdout)["steps"] > 0
    assert_same_top_k(classify_top_k(native.stdout), classify_top_k(emulated.stdout), names=("x86", "armhf"))


def test_what_32_bit_arm_cannot_run_is_one_line(guide: GuideRun, int8_naive_model_dir: Path) -> None:
    assert guide.ok, "the guide did not run (see the first test)"
    naive = f"{PI_HOME}/a0_int8_naive"
    shutil.copytree(int8_naive_model_dir, guide.guest.path(naive), dirs_exist_ok=True)
    clip = f"{PI_HOME}/{CLIP_NAME}"
    refused = _guest_run(guide, [f"{VENV}/bin/movinet-edge", "classify", clip, "--model", naive])
    assert refused.returncode == 2 and refused.stdout == "", refused.stderr
    (line,) = refused.stderr.splitlines()
    assert line.startswith(f"error: {naive}/model.tflite needs ai-edge-litert: tflite-runtime 2.14.0 has no kernel "
                           "for DIV on int8"), line  # fmt: skip
    # ai-edge-litert asked for by name where it has no wheels.
    asked = _guest_run(guide, [f"{VENV}/bin/movinet-edge", "classify", clip, "--model", GUEST_MODEL],
                       MOVINET_EDGE_RUNTIME="ai_edge_litert")  # fmt: skip
    assert asked.returncode == 2 and asked.stdout == "", asked.stderr
    assert asked.stderr.splitlines() == [
        "error: MOVINET_EDGE_RUNTIME asks for ai_edge_litert, but ai-edge-litert has no wheels for 32-bit ARM; "
        "use tflite_runtime, or a 64-bit OS, or unset MOVINET_EDGE_RUNTIME"
    ]


def test_armhf_times(guide: GuideRun, record_property) -> None:
    """Not a speed check: the step's parts, printed for the CI log (the guide's blocks one by one)."""
    blocks = ", ".join(f"line {r.line} {r.seconds:.0f} s" for r in guide.results)
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in TIMES.items())
    report = f"armhf step: {sum(TIMES.values()):.0f} s [{parts}]; guide blocks: {blocks}"
    print(report)
    record_property("armhf_step", report)
