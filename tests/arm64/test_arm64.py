"""The edge package, installed from its wheel on an emulated arm64 Raspberry Pi OS, answers like x86.

Runs the real ``movinet-edge`` console script from the wheel under
``qemu-aarch64-static`` in a Debian bookworm arm64 rootfs (Python 3.11, aarch64
wheels of ai-edge-litert/numpy/opencv) on a few frames, and compares its last
top-5 with the same command run natively. An emulated A0 step takes 10-30 s
against ~10 ms native on a 2-core x86 machine, hence the three steps.

Skips, with the reason, only when this machine cannot emulate arm64 (no qemu, or
no debootstrap/root to build the not-yet-cached rootfs); set
``MOVINET_REQUIRE_ARM64=1`` to fail instead (.ci/run does once it has installed
the host packages). ``MOVINET_EDGE_WHEEL`` points at an already built wheel;
otherwise one is built from the checkout.

Issue 8 bounds the whole step at 12 minutes: every part is timed (conftest.py)
and the last test checks the sum; the total is printed at the end of the run.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arm64.step_clock import StepClock

pytestmark = pytest.mark.arm64

HERE = Path(__file__).resolve().parent
EMULATE = HERE / "emulate.py"
REPO = HERE.parents[1]
EXIT_CANNOT_EMULATE = 3  # emulate.py: this machine cannot run the check
MAX_STEPS = 3
TOP_K = 5  # compared
REPORTED_K = 10  # asked for, so that a label at rank 5 on one side can be found at rank 6+ on the other
# Given the same frames, x86 and emulated arm64 LiteRT give bit-identical logits
# (measured). The frames are not the same: OpenCV's bundled FFmpeg converts
# YUV to BGR with per-architecture SIMD code, off by up to 2/255 per pixel, which
# moved A0 logits by up to 0.01 and top-5 scores by up to ~0.6% relative. 3%
# leaves room for sharper (trained) models; a broken port is off by far more.
SCORE_REL_TOL = 0.03
SCORE_ABS_TOL = 1e-6  # the CLI rounds scores to 6 decimals
# Guards against a hung emulator, not speed checks: one emulated run takes 0.5-1.5 min.
RUN_TIMEOUT_S = 600


def _clip() -> Path:
    data = Path(os.environ.get("MOVINET_TEST_DATA", REPO.parent / "shared" / "data"))
    clip = data / "clips" / "carving_ice.mp4"
    if not clip.is_file():
        pytest.fail(f"test clip {clip} is missing; set MOVINET_TEST_DATA to the shared data folder")
    return clip


def _skip_or_fail(reason: str) -> None:
    """Skip saying why this machine cannot run the check and how to make it; fail under MOVINET_REQUIRE_ARM64=1."""
    reason = reason.removeprefix("[arm64] ")
    if os.environ.get("MOVINET_REQUIRE_ARM64") == "1":
        pytest.fail(f"MOVINET_REQUIRE_ARM64=1 but {reason}", pytrace=False)
    pytest.skip(f"arm64 emulation check not run: {reason} (MOVINET_REQUIRE_ARM64=1 makes this a failure)")


def _last_line(text: str) -> str:
    """emulate.py says why it cannot emulate in its last line (after any progress lines)."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else "emulate.py gave no reason"


def _emulate(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EMULATE), *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def emulated_pi(arm64_clock: StepClock) -> None:
    """A prepared guest: cached rootfs plus the edge wheel and its aarch64 deps.

    Session-scoped and requested before ``float_model_dir`` so that a machine that
    cannot emulate skips before the (minutes long) model export.
    """
    with arm64_clock.timed("probe"):
        probe = _emulate("probe", timeout=120)
    if probe.returncode == EXIT_CANNOT_EMULATE:
        _skip_or_fail(_last_line(probe.stderr))
    assert probe.returncode == 0, f"emulate.py probe failed:\n{probe.stdout}{probe.stderr}"

    wheel = os.environ.get("MOVINET_EDGE_WHEEL")
    with arm64_clock.timed("prepare (rootfs, wheel, packages, import check)"):
        returncode, output = _stream_emulate("prepare", *(["--wheel", wheel] if wheel else []))
    if returncode == EXIT_CANNOT_EMULATE:
        _skip_or_fail(_last_line(output))
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


def test_base_install_on_arm64_has_no_tensorflow(emulated_pi: None, arm64_clock: StepClock) -> None:
    with arm64_clock.timed("no-tensorflow check"):
        result = _emulate("run", "--", "python3.11", "-c", "import tensorflow", timeout=RUN_TIMEOUT_S)

    assert result.returncode != 0, "import tensorflow succeeded in the arm64 edge install"
    assert "No module named 'tensorflow'" in result.stderr, result.stderr


def test_edge_cli_on_arm64_matches_x86(emulated_pi: None, float_model_dir: Path, arm64_clock: StepClock) -> None:
    cli_args = ["--video", str(_clip()), "--model", str(float_model_dir),
                "--json", "--max-steps", str(MAX_STEPS), "--top-k", str(REPORTED_K)]

    with arm64_clock.timed("native movinet-edge"):
        native = subprocess.run([sys.executable, "-m", "movinet_edge.cli", *cli_args],
                                capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    with arm64_clock.timed("emulated movinet-edge"):
        emulated = _emulate("run", "--", "movinet-edge", *cli_args, timeout=RUN_TIMEOUT_S)

    assert native.returncode == 0, f"native movinet-edge failed:\n{native.stderr}"
    assert emulated.returncode == 0, f"emulated movinet-edge failed:\n{emulated.stdout}{emulated.stderr}"
    assert_same_top_k(last_top_k(native.stdout), last_top_k(emulated.stdout))


def test_arm64_step_takes_under_12_minutes(emulated_pi: None, arm64_clock: StepClock, record_property) -> None:
    """Issue 8: the step stays under 12 minutes; last in this file, so it sums every part above.

    Run alone (``-k``), it sums what ran (the probe and prepare of the fixture) and says so.
    """
    print(arm64_clock.report())
    record_property("arm64_step", arm64_clock.report())  # the end-of-run line (conftest.py)
    assert arm64_clock.total < arm64_clock.limit_s, arm64_clock.report()
    assert "prepare (rootfs, wheel, packages, import check)" in arm64_clock.parts


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
    assert len(top_k) == REPORTED_K, f"expected {REPORTED_K} entries in top_k, got {top_k}"
    return top_k


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=SCORE_REL_TOL, abs_tol=SCORE_ABS_TOL)


def assert_same_top_k(native: list[tuple[str, float]], emulated: list[tuple[str, float]]) -> None:
    """Same top-5 up to near-ties, judged against each side's top-10.

    Scores must agree rank by rank over the top 5. A label in one side's top 5
    must be in the other's top 10 with a close score: it may swap places, or
    drop to rank 6-10, only where the scores around it are a near-tie.
    """
    report = f"\n  x86:   {native}\n  arm64: {emulated}"
    for rank in range(TOP_K):
        assert _close(native[rank][1], emulated[rank][1]), f"rank {rank + 1} scores differ{report}"
    for side, ours, theirs in (("x86", native, emulated), ("arm64", emulated, native)):
        their_scores = dict(theirs)
        for label, score in ours[:TOP_K]:
            assert label in their_scores, f"{label!r} is in the {side} top {TOP_K} but not in the other's top {REPORTED_K}{report}"
            assert _close(score, their_scores[label]), f"{label!r} scores differ{report}"
