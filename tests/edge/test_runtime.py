"""Which TFLite runtime runs a model: the one named, else $MOVINET_EDGE_RUNTIME, else ai_edge_litert,
then tflite_runtime; one line when the one needed is missing or cannot run here.

A runtime that "is not installed" is made so in a subprocess by blocking its
import (``sys.modules[name] = None``), the way Python itself reports a missing
package; nothing of ours is replaced. The real tflite-runtime 2.14 (in a venv
of its own: it needs numpy<2) is tested in test_base_install.py: what it runs,
what it refuses and why, and how pip installs it.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from movinet_edge.errors import EdgeError
from movinet_edge.runtime import RUNTIMES, find_runtime

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
        "MOVINET_EDGE_RUNTIME asks for tflite_runtime, but tflite-runtime is not installed; "
        "pip install 'movinet-edge[tflite-runtime]', or unset MOVINET_EDGE_RUNTIME"
    )
    monkeypatch.delenv("MOVINET_EDGE_RUNTIME")
    with pytest.raises(EdgeError) as info:
        find_runtime("tflite_runtime")
    assert str(info.value) == "tflite-runtime is not installed; pip install 'movinet-edge[tflite-runtime]'"
    # The pip name is understood too (what a person types after reading the message).
    with pytest.raises(EdgeError, match="^tflite-runtime is not installed"):
        find_runtime("tflite-runtime")


CLI = "from movinet_edge.cli import main\nsys.argv[0] = 'movinet-edge'\nmain()\n"


def test_requested_runtime_missing_through_the_cli(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    """No silent fallback: who sets the variable wants to know which runtime ran."""
    if _installed("tflite_runtime"):
        pytest.skip("tflite_runtime is installed in this environment")
    env = {"MOVINET_EDGE_RUNTIME": "tflite_runtime"}
    for args in (["classify", clips / "carving_ice.mp4"], ["--video", clips / "rope_pushdown.mp4", "--max-steps", "2"]):
        result = python("import sys\n" + CLI, *args, "--model", golden_model_dir, env=env, cwd=tmp_path)
        assert_one_line_error(
            result,
            "error: MOVINET_EDGE_RUNTIME asks for tflite_runtime, but tflite-runtime is not installed; "
            "pip install 'movinet-edge[tflite-runtime]', or unset MOVINET_EDGE_RUNTIME",
        )


def test_no_runtime_at_all_through_the_cli(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    """Both runtimes tried, in order, and one line that says what to install."""
    result = python(block("ai_edge_litert", "tflite_runtime") + CLI, "classify", clips / "carving_ice.mp4",
                    "--model", golden_model_dir, cwd=tmp_path)
    assert_one_line_error(
        result,
        "error: no TFLite runtime found (ai-edge-litert or tflite-runtime); install one: pip install ai-edge-litert",
    )


def test_an_unknown_name_is_one_line() -> None:
    with pytest.raises(EdgeError) as info:
        find_runtime("tensorflow")
    assert str(info.value) == "unknown runtime 'tensorflow'; choose one of ai_edge_litert, tflite_runtime"


def test_a_named_runtime_is_never_replaced(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    """ai_edge_litert asked for by name while only tflite_runtime could run: an error, not the other one."""
    code = block("ai_edge_litert") + (
        "from movinet_edge.runtime import find_runtime\n"
        "from movinet_edge.errors import EdgeError\n"
        "try:\n    find_runtime('ai_edge_litert')\nexcept EdgeError as e:\n    print(e)\n"
    )
    result = python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ai-edge-litert is not installed; pip install ai-edge-litert"]


def test_a_missing_runtime_through_the_live_command(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    """The live command stops before its first prediction (stdout stays empty), with the same one line."""
    result = python(block("ai_edge_litert") + "import sys\n" + CLI, "--video", clips / "carving_ice.mp4",
                    "--max-steps", "2", "--json", "--model", golden_model_dir,
                    env={"MOVINET_EDGE_RUNTIME": "ai_edge_litert"}, cwd=tmp_path)  # fmt: skip
    assert_one_line_error(
        result,
        "error: MOVINET_EDGE_RUNTIME asks for ai_edge_litert, but ai-edge-litert is not installed; "
        "pip install ai-edge-litert, or unset MOVINET_EDGE_RUNTIME",
    )
