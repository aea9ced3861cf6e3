"""The edge package, installed from its wheel on an emulated arm64 Raspberry Pi OS, answers like x86.

Runs the real ``movinet-edge`` console script from the wheel under
``qemu-aarch64-static`` in a Debian bookworm arm64 rootfs (Python 3.11, aarch64
wheels of ai-edge-litert/numpy/opencv) on a few frames, and compares its last
top-5 with the same command run natively. Emulation is ~400x slower than native,
hence the few steps.

Skips, with the reason, only when this machine cannot emulate arm64 (no qemu, or
no debootstrap/root to build the not-yet-cached rootfs); set
``MOVINET_REQUIRE_ARM64=1`` to fail instead. ``MOVINET_EDGE_WHEEL`` points at an
already built wheel (CI); otherwise one is built from the checkout.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.arm64

HERE = Path(__file__).resolve().parent
EMULATE = HERE / "emulate.py"
REPO = HERE.parents[1]
EXIT_CANNOT_EMULATE = 3  # emulate.py: this machine cannot run the check
MAX_STEPS = 3
TOP_K = 5
# Same LiteRT version on both sides, but XNNPACK picks different float kernels
# (NEON vs AVX, FMA order), so scores agree closely, not bit for bit.
SCORE_REL_TOL = 1e-3
SCORE_ABS_TOL = 2e-3
# Guards against a hung emulator, not speed checks: one emulated run takes ~1 min.
RUN_TIMEOUT_S = 600


def _clip() -> Path:
    data = Path(os.environ.get("MOVINET_TEST_DATA", REPO.parent / "shared" / "data"))
    clip = data / "clips" / "carving_ice.mp4"
    if not clip.is_file():
        pytest.fail(f"test clip {clip} is missing; set MOVINET_TEST_DATA to the shared data folder")
    return clip


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("MOVINET_REQUIRE_ARM64") == "1":
        pytest.fail(f"MOVINET_REQUIRE_ARM64=1 but {reason}")
    pytest.skip(reason)


def _emulate(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EMULATE), *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def emulated_pi() -> None:
    """A prepared guest: cached rootfs plus the edge wheel and its aarch64 deps."""
    probe = _emulate("probe", timeout=120)
    if probe.returncode == EXIT_CANNOT_EMULATE:
        _skip_or_fail(probe.stderr.strip())
    assert probe.returncode == 0, f"emulate.py probe failed:\n{probe.stdout}{probe.stderr}"

    wheel = os.environ.get("MOVINET_EDGE_WHEEL")
    returncode, output = _stream_emulate("prepare", *(["--wheel", wheel] if wheel else []))
    if returncode == EXIT_CANNOT_EMULATE:
        _skip_or_fail(output.strip().splitlines()[-1])
    assert returncode == 0, f"emulate.py prepare failed (exit {returncode}):\n{output}"


def _stream_emulate(*args: str) -> tuple[int, str]:
    """Run emulate.py echoing its progress live (seen with -s, else in a failure report).

    No timeout here: every step of emulate.py bounds its own (network, emulated
    check), and a line-by-line echo cannot also wait with a deadline.
    """
    lines = []
    with subprocess.Popen([sys.executable, str(EMULATE), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
    return process.returncode, "".join(lines)


def test_base_install_on_arm64_has_no_tensorflow(emulated_pi: None) -> None:
    result = _emulate("run", "--", "python3.11", "-c", "import tensorflow", timeout=RUN_TIMEOUT_S)

    assert result.returncode != 0, "import tensorflow succeeded in the arm64 edge install"
    assert "No module named 'tensorflow'" in result.stderr, result.stderr


def test_edge_cli_on_arm64_matches_x86(emulated_pi: None, float_model_dir: Path) -> None:
    cli_args = ["--video", str(_clip()), "--model", str(float_model_dir),
                "--json", "--max-steps", str(MAX_STEPS)]

    native = subprocess.run([sys.executable, "-m", "movinet_edge.cli", *cli_args],
                            capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    emulated = _emulate("run", "--", "movinet-edge", *cli_args, timeout=RUN_TIMEOUT_S)

    assert native.returncode == 0, f"native movinet-edge failed:\n{native.stderr}"
    assert emulated.returncode == 0, f"emulated movinet-edge failed:\n{emulated.stdout}{emulated.stderr}"
    assert_same_top_k(last_top_k(native.stdout), last_top_k(emulated.stdout))


def last_top_k(stdout: str) -> list[tuple[str, float]]:
    """The top-k of the last ``"type": "prediction"`` JSON line, as (label, score)."""
    predictions = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("type") == "prediction":
            predictions.append(record)
    assert predictions, f"no prediction lines in the CLI output:\n{stdout[-2000:]}"
    top_k = [(entry["label"], float(entry["score"])) for entry in predictions[-1]["top_k"]]
    assert len(top_k) >= TOP_K, f"expected at least {TOP_K} entries in top_k, got {top_k}"
    return top_k[:TOP_K]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=SCORE_REL_TOL, abs_tol=SCORE_ABS_TOL)


def assert_same_top_k(native: list[tuple[str, float]], emulated: list[tuple[str, float]]) -> None:
    """Same top-k up to near-ties.

    Scores must agree rank by rank and label by label. Labels may swap places or
    one may fall out of the top-k only where their scores are a near-tie, which is
    where float kernels of two architectures may legitimately disagree.
    """
    report = f"\n  x86:   {native}\n  arm64: {emulated}"
    for rank, ((_, x86_score), (_, arm_score)) in enumerate(zip(native, emulated), start=1):
        assert _close(x86_score, arm_score), f"rank {rank} scores differ{report}"
    x86_scores, arm_scores = dict(native), dict(emulated)
    for label in x86_scores.keys() & arm_scores.keys():
        assert _close(x86_scores[label], arm_scores[label]), f"{label!r} scores differ{report}"
    for label in x86_scores.keys() - arm_scores.keys():
        assert _close(x86_scores[label], native[-1][1]), f"{label!r} missing on arm64{report}"
    for label in arm_scores.keys() - x86_scores.keys():
        assert _close(arm_scores[label], emulated[-1][1]), f"{label!r} only on arm64{report}"
