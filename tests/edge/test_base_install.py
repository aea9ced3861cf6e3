"""The base install a device gets: a fresh virtual environment with `pip install
<the wheel>` and no extras. It must hold no TensorFlow and still classify a real
clip through the `movinet-edge` command, with the same result as this (export)
environment gives for the same model.

The wheel is built from this checkout the way a release is (isolated build, no
dependencies); its dependencies come from the package index, as on a Pi.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXPORT_EXTRA = {"tensorflow", "tensorflow-cpu", "tf-keras", "tf-models-official", "keras"}
BASE_DEPS = {"ai-edge-litert", "numpy", "opencv-python-headless", "typer"}


def _run(args: list[object], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def edge_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("base-install")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist", REPO], timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("movinet_edge-*.whl")
    venv = root / "venv"
    created = _run([sys.executable, "-m", "venv", venv], timeout=300)
    assert created.returncode == 0, created.stderr
    installed = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel],
                     timeout=900)
    assert installed.returncode == 0, f"pip install of the base wheel failed:\n{installed.stderr[-3000:]}"
    return venv


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH or model default leaking in from the test run."""
    drop = {"PYTHONPATH", "MOVINET_EDGE_MODEL", "MOVINET_EDGE_RUNTIME", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_base_install_has_no_tensorflow(edge_venv: Path) -> None:
    listed = _run([edge_venv / "bin" / "python", "-m", "pip", "list", "--format=json"], timeout=120)
    names = {d["name"].lower().replace("_", "-") for d in json.loads(listed.stdout)}
    assert BASE_DEPS <= names, names
    assert not names & EXPORT_EXTRA, names & EXPORT_EXTRA
    probe = _run([edge_venv / "bin" / "python", "-c", "import tensorflow"], timeout=60, env=_clean_env())
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr


def test_export_command_without_the_extra_says_what_to_install(edge_venv: Path, tmp_path: Path) -> None:
    result = _run([edge_venv / "bin" / "movinet-export", "--model", "a0", "--output", tmp_path / "out"],
                  timeout=120, env=_clean_env())
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: movinet-export needs tensorflow, which the base install leaves out;"
        " install the workstation extra: pip install 'movinet-edge[export]'"
    ]
    assert not (tmp_path / "out").exists()


def test_base_install_classifies_a_clip_like_the_export_environment(
    edge_venv: Path, golden_model_dir: Path, clips: Path, tmp_path: Path
) -> None:
    args = ["classify", clips / "rope_pushdown.mp4", "--model", golden_model_dir, "--json", "--top-k", "5"]
    device = _run([edge_venv / "bin" / "movinet-edge", *args], timeout=300, env=_clean_env())
    assert device.returncode == 0, device.stderr
    assert "Traceback" not in device.stderr
    here = _run([sys.executable, "-m", "movinet_edge.cli", *args], timeout=300)
    assert here.returncode == 0, here.stderr

    on_device, in_export_env = json.loads(device.stdout), json.loads(here.stdout)
    assert on_device["steps"] == in_export_env["steps"] > 0
    assert [e["label"] for e in on_device["top_k"]] == [e["label"] for e in in_export_env["top_k"]]
    for a, b in zip(on_device["top_k"], in_export_env["top_k"]):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)


def test_serve_check_reports_the_missing_service_extra(edge_venv: Path, golden_model_dir: Path, clips: Path,
                                                       tmp_path: Path) -> None:  # fmt: skip
    """`serve --check` says what `serve` would fail on: here, the [service] extra (issue 15, item 14)."""
    config = tmp_path / "service.toml"
    config.write_text(f'[model]\npath = "{golden_model_dir}"\n[source]\nvideo = "{clips / "carving_ice.mp4"}"\n'
                      '[mqtt]\nhost = "127.0.0.1"\n')  # fmt: skip
    result = _run([edge_venv / "bin" / "movinet-edge", "serve", "--config", config, "--check"], timeout=120,
                  env=_clean_env())  # fmt: skip
    assert result.returncode != 0 and "configuration OK" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pip install 'movinet-edge[service]'" in lines[0]
    for package in ("systemd-watchdog", "prometheus-client", "paho-mqtt"):
        assert package in lines[0], lines[0]
