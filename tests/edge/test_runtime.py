"""Which TFLite runtime runs a model: ai_edge_litert first, then tflite_runtime, or the one
$MOVINET_EDGE_RUNTIME names; and one line when the one needed is not there.

The fallback is shown with a real tflite-runtime 2.14 (it needs numpy<2, so it is
installed into its own folder and used by a subprocess whose PYTHONPATH puts it
first). A runtime that "is not installed" is made so in a subprocess by blocking
its import (``sys.modules[name] = None``), the way Python itself reports a
missing package; nothing of ours is replaced.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from movinet_edge.errors import EdgeError
from movinet_edge.runtime import RUNTIMES, find_runtime, make_interpreter

TFLITE_RUNTIME = "tflite-runtime==2.14.0"


def _installed(module: str) -> bool:
    try:
        __import__(f"{module}.interpreter")
    except ImportError:
        return False
    return True


@pytest.fixture
def no_runtime_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOVINET_EDGE_RUNTIME", raising=False)


def python(
    code: str, *args: object, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """A fresh interpreter of this venv, without runtime or model settings from the test run."""
    base = {k: v for k, v in os.environ.items() if k not in ("MOVINET_EDGE_RUNTIME", "MOVINET_EDGE_MODEL")}
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env={**base, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def assert_one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode != 0
    assert result.stderr.splitlines() == [expected], result.stderr
    assert result.stdout == ""


def block(*modules: str) -> str:
    """Python that makes these packages impossible to import, as if they were not installed."""
    return "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)


def test_the_order() -> None:
    assert RUNTIMES == ("ai_edge_litert", "tflite_runtime")


def test_ai_edge_litert_comes_first(no_runtime_env: None) -> None:
    runtime = find_runtime()
    assert runtime.name == "ai_edge_litert"
    assert runtime.version == importlib.metadata.version("ai-edge-litert")
    assert runtime.interpreter_class.__module__.startswith("ai_edge_litert")


def test_the_environment_variable_picks_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVINET_EDGE_RUNTIME", "ai_edge_litert")
    assert find_runtime().name == "ai_edge_litert"
    monkeypatch.setenv("MOVINET_EDGE_RUNTIME", "tensorflow")
    with pytest.raises(EdgeError) as info:
        find_runtime()
    assert str(info.value) == (
        "unknown runtime 'tensorflow' in MOVINET_EDGE_RUNTIME; choose one of ai_edge_litert, tflite_runtime"
    )
    # An argument wins over the variable.
    assert find_runtime("ai_edge_litert").name == "ai_edge_litert"


def test_a_requested_runtime_that_is_not_installed_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    if _installed("tflite_runtime"):
        pytest.skip("tflite_runtime is installed in this environment")
    monkeypatch.setenv("MOVINET_EDGE_RUNTIME", "tflite_runtime")
    with pytest.raises(EdgeError) as info:
        find_runtime()
    assert str(info.value) == (
        "MOVINET_EDGE_RUNTIME asks for tflite_runtime, which is not installed; "
        "pip install tflite-runtime, or unset MOVINET_EDGE_RUNTIME"
    )
    monkeypatch.delenv("MOVINET_EDGE_RUNTIME")
    with pytest.raises(EdgeError, match="^runtime tflite_runtime is not installed; pip install tflite-runtime$"):
        find_runtime("tflite_runtime")


CLI = "from movinet_edge.cli import main\nsys.argv[0] = 'movinet-edge'\nmain()\n"


def test_requested_runtime_missing_through_the_cli(tmp_path: Path, float_model_dir: Path, clips: Path) -> None:
    """No silent fallback: who sets the variable wants to know which runtime ran."""
    if _installed("tflite_runtime"):
        pytest.skip("tflite_runtime is installed in this environment")
    env = {"MOVINET_EDGE_RUNTIME": "tflite_runtime"}
    for args in (["classify", clips / "carving_ice.mp4"], ["--video", clips / "rope_pushdown.mp4", "--max-steps", "2"]):
        result = python("import sys\n" + CLI, *args, "--model", float_model_dir, env=env, cwd=tmp_path)
        assert_one_line_error(
            result,
            "error: MOVINET_EDGE_RUNTIME asks for tflite_runtime, which is not installed; "
            "pip install tflite-runtime, or unset MOVINET_EDGE_RUNTIME",
        )


def test_no_runtime_at_all_through_the_cli(tmp_path: Path, float_model_dir: Path, clips: Path) -> None:
    """Both runtimes tried, in order, and one line that says what to install."""
    result = python(block("ai_edge_litert", "tflite_runtime") + CLI, "classify", clips / "carving_ice.mp4",
                    "--model", float_model_dir, cwd=tmp_path)
    assert_one_line_error(
        result,
        "error: no TFLite runtime found (ai-edge-litert or tflite-runtime); install one: pip install ai-edge-litert",
    )


# --- a real tflite-runtime -------------------------------------------------------------------


@pytest.fixture(scope="session")
def tflite_runtime_dir(model_cache: Path) -> Path:
    """tflite-runtime 2.14 and numpy<2 in a folder of their own (the venv has numpy 2)."""
    target = model_cache / "tflite_runtime_2.14"
    if (target / "tflite_runtime" / "interpreter.py").is_file():
        return target
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-warn-conflicts",
         "--target", str(target), TFLITE_RUNTIME, "numpy<2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if installed.returncode != 0:
        last = (installed.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"cannot install {TFLITE_RUNTIME} for Python {sys.version_info[0]}.{sys.version_info[1]}: {last}")
    return target


PROBE = """
import json, sys
from movinet_edge.runtime import find_runtime, make_interpreter
runtime = find_runtime()
interpreter = make_interpreter(sys.argv[1], 1, runtime)
interpreter.allocate_tensors()
runner = interpreter.get_signature_runner("serving_default")
import numpy as np
feed = {name: np.zeros(d["shape"], d["dtype"]) for name, d in runner.get_input_details().items()}
logits = runner(**feed)["logits"].reshape(-1)
print(json.dumps({"name": runtime.name, "version": runtime.version, "numpy": np.__version__,
                  "logits": [float(x) for x in logits[:8]]}))
"""


def zero_input_logits(model: Path) -> np.ndarray:
    runtime = find_runtime("ai_edge_litert")
    interpreter = make_interpreter(model, 1, runtime)
    interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner("serving_default")
    feed = {name: np.zeros(d["shape"], d["dtype"]) for name, d in runner.get_input_details().items()}
    return runner(**feed)["logits"].reshape(-1)[:8]


def test_falls_back_to_tflite_runtime_without_ai_edge_litert(
    tflite_runtime_dir: Path, float_model_dir: Path, no_runtime_env: None
) -> None:
    model = float_model_dir / "model.tflite"
    paths = [str(tflite_runtime_dir), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {"PYTHONPATH": os.pathsep.join(paths)}
    # Both installed: ai_edge_litert first.
    both = python(PROBE, model, env=env)
    assert both.returncode == 0, both.stderr
    assert json.loads(both.stdout.splitlines()[-1])["name"] == "ai_edge_litert"
    # Without ai_edge_litert: tflite_runtime, and it runs our model like ai_edge_litert does.
    fallback = python(block("ai_edge_litert") + PROBE, model, env=env)
    assert fallback.returncode == 0, fallback.stderr
    got = json.loads(fallback.stdout.splitlines()[-1])
    assert got["name"] == "tflite_runtime" and got["version"] == "2.14.0" and got["numpy"].startswith("1.")
    np.testing.assert_allclose(got["logits"], zero_input_logits(model), atol=1e-4)
    # Asked for by name while ai_edge_litert is there too.
    chosen = python(PROBE, model, env={**env, "MOVINET_EDGE_RUNTIME": "tflite_runtime"})
    assert chosen.returncode == 0, chosen.stderr
    assert json.loads(chosen.stdout.splitlines()[-1])["name"] == "tflite_runtime"
