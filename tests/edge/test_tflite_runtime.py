"""tflite-runtime 2.14, installed the way pip installs it: what runs on it, what it refuses, and why.

The only runtime of 32-bit Raspberry Pi OS, and an extra elsewhere. It is
tested here in fresh venvs made from the wheel, never with ``--no-deps``:

- ``pip install 'movinet-edge[tflite-runtime]'``: resolves to tflite-runtime
  2.14 with numpy 1.x and opencv-python-headless < 4.12 beside ai-edge-litert,
  which stays the default; ``MOVINET_EDGE_RUNTIME=tflite_runtime`` picks it.
- Which exports it runs: each is classified twice in that venv, once per
  runtime (same numpy, same OpenCV, so the same frames), and the top-5 must
  agree. float32, float16, dynamic range and our selective int8 (float, uint8
  input) run; the naive int8 recipe (int8 DIV) is refused at load, one line.
- ``pip install movinet-edge 'tflite-runtime==2.14.*'`` without the extra
  resolves too, to numpy 2, beside which tflite-runtime cannot run: one line
  that says which pins fix it.

tflite-runtime has wheels for Python <= 3.11 on Linux x86_64, aarch64 and
armv7l only; elsewhere these tests skip saying so. The 32-bit ARM install
itself (Debian's numpy and OpenCV) is tested in tests/armhf/.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from arm64.top_k_agreement import REPORTED_K, assert_same_top_k, classify_top_k

REPO = Path(__file__).resolve().parents[2]
TFLITE_RUNTIME_VERSION = "2.14.0"
NAIVE_REFUSAL = re.compile(
    r"error: (?P<path>\S+) needs ai-edge-litert: tflite-runtime 2\.14\.0 has no kernel for DIV on int8 "
    r"\((?P<count>\d+) ops: the naive int8 recipe's pools\); on a 64-bit OS pip install ai-edge-litert, "
    r"or run a float32, float16, dynamic or selective int8 export"
)


def _run(args: list[object], timeout: float = 300, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    return subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def _env(**extra: str) -> dict[str, str]:
    """The test run's environment without what would steer the venv's Python or the runtime choice."""
    drop = {"PYTHONPATH", "MOVINET_EDGE_MODEL", "MOVINET_EDGE_RUNTIME", "VIRTUAL_ENV"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if sys.version_info[:2] > (3, 11) or sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip(f"tflite-runtime {TFLITE_RUNTIME_VERSION} has no wheel for Python "
                    f"{sys.version_info[0]}.{sys.version_info[1]} on {sys.platform} {platform.machine()}")  # fmt: skip
    out = tmp_path_factory.mktemp("tflite-wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, REPO], timeout=600)
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("movinet_edge-*.whl")
    return found


def _venv(root: Path, *requirements: str) -> Path:
    created = _run([sys.executable, "-m", "venv", root], timeout=300)
    assert created.returncode == 0, created.stderr
    installed = _run([root / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
                      *requirements], timeout=900)  # fmt: skip
    assert installed.returncode == 0, f"pip install {' '.join(requirements)} failed:\n{installed.stderr[-3000:]}"
    return root


@pytest.fixture(scope="module")
def tflite_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip install 'movinet-edge[tflite-runtime]' (from the wheel), as the guide says."""
    return _venv(tmp_path_factory.mktemp("tflite-extra") / "venv", f"{wheel}[tflite-runtime]")


def _versions(venv: Path) -> dict[str, str]:
    listed = _run([venv / "bin" / "python", "-m", "pip", "list", "--format=json"], timeout=120, env=_env())
    return {d["name"].lower().replace("_", "-"): d["version"] for d in json.loads(listed.stdout)}


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def test_the_extra_resolves_to_numpy_1_beside_ai_edge_litert(tflite_venv: Path) -> None:
    versions = _versions(tflite_venv)
    assert versions["tflite-runtime"] == TFLITE_RUNTIME_VERSION
    assert _major_minor(versions["numpy"])[0] == 1, versions["numpy"]
    assert _major_minor(versions["opencv-python-headless"]) < (4, 12), versions["opencv-python-headless"]
    assert "ai-edge-litert" in versions
    checked = _run([tflite_venv / "bin" / "python", "-m", "pip", "check"], timeout=120, env=_env())
    assert checked.returncode == 0, checked.stdout + checked.stderr


WHICH = "from movinet_edge.runtime import find_runtime\nr = find_runtime()\nprint(r.name, r.version)\n"


def test_ai_edge_litert_stays_the_default_and_the_variable_picks(tflite_venv: Path, tmp_path: Path) -> None:
    python = tflite_venv / "bin" / "python"
    default = _run([python, "-c", WHICH], env=_env(), cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    assert default.stdout.split()[0] == "ai_edge_litert"
    chosen = _run([python, "-c", WHICH], env=_env(MOVINET_EDGE_RUNTIME="tflite_runtime"), cwd=tmp_path)
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.split() == ["tflite_runtime", TFLITE_RUNTIME_VERSION]
    # Without ai-edge-litert (blocked as if uninstalled) the same install falls back to tflite-runtime.
    fallback = _run([python, "-c", "import sys\nsys.modules['ai_edge_litert'] = None\n" + WHICH], env=_env(),
                    cwd=tmp_path)  # fmt: skip
    assert fallback.returncode == 0, fallback.stderr
    assert fallback.stdout.split()[0] == "tflite_runtime"


# The exports tflite-runtime 2.14 runs: (fixture, what it is). The golden model is a
# selective int8 export committed to the repository (no TensorFlow needed); the others
# are exported by the session fixtures and skip where TensorFlow is not installed.
RUNS_ON_TFLITE_RUNTIME = [
    ("golden_model_dir", "selective int8 (golden, 64 px)"),
    ("float_model_dir", "float32"),
    ("float16_model_dir", "float16"),
    ("dynamic_model_dir", "dynamic range"),
    ("int8_model_dir", "selective int8"),
    ("int8_uint8_input_model_dir", "selective int8, uint8 input"),
]


@pytest.mark.parametrize("fixture", [f for f, _ in RUNS_ON_TFLITE_RUNTIME],
                         ids=[what for _, what in RUNS_ON_TFLITE_RUNTIME])  # fmt: skip
def test_what_tflite_runtime_runs(
    fixture: str, tflite_venv: Path, clips: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(fixture)
    args = [tflite_venv / "bin" / "movinet-edge", "classify", clips / "carving_ice.mp4", "--model", model,
            "--json", "--top-k", str(REPORTED_K)]  # fmt: skip
    runs = {}
    for runtime in ("ai_edge_litert", "tflite_runtime"):
        result = _run(args, env=_env(MOVINET_EDGE_RUNTIME=runtime), cwd=tmp_path)
        assert result.returncode == 0, f"{runtime}: {result.stderr}"
        assert "Traceback" not in result.stderr
        runs[runtime] = result.stdout
    assert json.loads(runs["ai_edge_litert"])["steps"] == json.loads(runs["tflite_runtime"])["steps"] > 0
    assert_same_top_k(classify_top_k(runs["ai_edge_litert"]), classify_top_k(runs["tflite_runtime"]),
                      names=("ai_edge_litert", "tflite_runtime"))  # fmt: skip


def test_the_naive_int8_recipe_is_refused_at_load(
    tflite_venv: Path, int8_naive_model_dir: Path, clips: Path, tmp_path: Path
) -> None:
    """No int8 DIV kernel in tflite-runtime 2.14: one line before any frame, not a failure at the first step."""
    env = _env(MOVINET_EDGE_RUNTIME="tflite_runtime")
    script = tflite_venv / "bin" / "movinet-edge"
    for args in (["classify", clips / "carving_ice.mp4"], ["--video", clips / "carving_ice.mp4", "--max-steps", "2"]):
        result = _run([script, *args, "--model", int8_naive_model_dir], env=env, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        match = NAIVE_REFUSAL.fullmatch(lines[0])
        assert match, lines[0]
        assert Path(match["path"]) == int8_naive_model_dir / "model.tflite" and int(match["count"]) > 0
    # ai-edge-litert runs it (the same install, the default runtime).
    runs = _run([script, "classify", clips / "carving_ice.mp4", "--model", int8_naive_model_dir], env=_env(),
                cwd=tmp_path)  # fmt: skip
    assert runs.returncode == 0, runs.stderr


@pytest.fixture(scope="module")
def numpy2_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip install movinet-edge 'tflite-runtime==2.14.*' without the extra: pip is content with numpy 2."""
    return _venv(tmp_path_factory.mktemp("tflite-numpy2") / "venv", str(wheel), "tflite-runtime==2.14.*")


def test_tflite_runtime_beside_numpy_2_says_which_pins_fix_it(
    numpy2_venv: Path, golden_model_dir: Path, clips: Path, tmp_path: Path
) -> None:
    versions = _versions(numpy2_venv)
    assert versions["tflite-runtime"] == TFLITE_RUNTIME_VERSION and _major_minor(versions["numpy"])[0] >= 2
    script = numpy2_venv / "bin" / "movinet-edge"
    args = ["classify", clips / "carving_ice.mp4", "--model", golden_model_dir]
    result = _run([script, *args], env=_env(MOVINET_EDGE_RUNTIME="tflite_runtime"), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: MOVINET_EDGE_RUNTIME asks for tflite_runtime, but tflite-runtime {TFLITE_RUNTIME_VERSION} is built "
        f"for numpy 1.x and cannot run beside numpy {versions['numpy']}; pip install 'numpy<2' "
        "'opencv-python-headless<4.12' (what 'movinet-edge[tflite-runtime]' installs), or unset MOVINET_EDGE_RUNTIME"
    ]
    # Nothing asks for it: ai-edge-litert runs, and the broken neighbour is never loaded.
    default = _run([script, *args], env=_env(), cwd=tmp_path)
    assert default.returncode == 0, default.stderr
