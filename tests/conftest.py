"""Session fixtures: models exported by our own exporter, built once per test run.

No pretrained weights can be fetched here, so the tests save a randomly
initialised A0 in the official checkpoint layout (tf.train.Checkpoint(model=
classifier)) and export it like a user would export a downloaded one.

``MOVINET_TEST_CACHE=DIR`` keeps the exported models between runs (for
development; CI starts empty). Set ``MOVINET_TEST_FRESH=1`` to ignore it.
Under pytest-xdist the workers share one cache; a file lock per model makes
sure each is exported once.

Exporting needs TensorFlow, which the base install (the device runtime) leaves
out: there these fixtures skip the tests that ask for them, saying why, unless
the cache already holds the model. Tests that only need *a* streaming model
take the committed golden one instead (tests/edge/conftest.py), which needs
no TensorFlow. Nothing here imports TensorFlow until a fixture exports.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NO_TENSORFLOW = "exporting a model needs TensorFlow (pip install '.[export]'); this is the base install"


def require_tensorflow() -> None:
    """Skip the asking test where TensorFlow is not installed (the base install), before any export."""
    pytest.importorskip("tensorflow", reason=NO_TENSORFLOW)


# The modules that take minutes (training, the official export tool, qemu), in the
# order the run starts them: with pytest-xdist (-n 2 --dist loadfile) they then run
# side by side from the start instead of leaving one core idle at the end.
LONGEST_FIRST = (
    "export/test_finetune.py",
    "export/test_cli_export.py",
    "export/test_int8_quality.py",
    "arm64/test_arm64.py",
    "armhf/test_armhf.py",
    "export/test_export.py",
    "export/test_golden.py",
    "export/test_zoo.py",
)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = Path(str(item.fspath)).as_posix()
        return next((i for i, name in enumerate(LONGEST_FIRST) if path.endswith(name)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the order inside a module stays


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "arm64: runs the edge package under qemu-aarch64 (slow)")
    config.addinivalue_line("markers", "slow: trains or exports models; minutes")


@pytest.fixture(scope="session")
def test_data() -> Path:
    path = Path(os.environ.get("MOVINET_TEST_DATA", REPO.parent / "shared" / "data"))
    if not (path / "clips").is_dir():
        pytest.fail(f"test data not found at {path}; set MOVINET_TEST_DATA to the shared data folder")
    return path


@pytest.fixture(scope="session")
def clips(test_data: Path) -> Path:
    return test_data / "clips"


@pytest.fixture(scope="session")
def kinetics_labels(test_data: Path) -> Path:
    return test_data / "kinetics_600_labels.txt"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's models go: shared by every pytest-xdist worker of the run."""
    cache = os.environ.get("MOVINET_TEST_CACHE")
    if cache and not os.environ.get("MOVINET_TEST_FRESH"):
        path = Path(cache)
    elif os.environ.get("PYTEST_XDIST_WORKER"):
        # Each worker has basetemp/popen-gwN; their parent is the run's own folder.
        path = tmp_path_factory.getbasetemp().parent / "models"
    else:
        path = tmp_path_factory.getbasetemp() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def cache_lock(cache: Path, name: str) -> Iterator[None]:
    """One writer per cached model: a second worker waits, then finds it made."""
    with open(cache / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached(cache: Path, name: str) -> Path | None:
    path = cache / name
    return path if (path / "model.tflite").is_file() or (path / "checkpoint").is_file() else None


@pytest.fixture(scope="session")
def a0_checkpoint(model_cache: Path) -> Path:
    """A random-init A0 stream checkpoint at 172 px in the official object layout."""
    folder = model_cache / "a0_checkpoint"
    with cache_lock(model_cache, "a0_checkpoint"):
        if _cached(model_cache, "a0_checkpoint"):
            return folder
        require_tensorflow()
        from movinet_export.random_checkpoint import save_random_checkpoint

        shutil.rmtree(folder, ignore_errors=True)
        save_random_checkpoint(folder, "a0", resolution=None, seed=0)
    return folder


@pytest.fixture(scope="session")
def a0_exporter(a0_checkpoint: Path, kinetics_labels: Path, clips: Path):
    require_tensorflow()
    from movinet_export.exporter import ExportOptions, Exporter

    options = ExportOptions(
        model_id="a0",
        checkpoint=str(a0_checkpoint),
        labels=str(kinetics_labels),
        parity_video=clips / "carving_ice.mp4",
        calibration_videos=[str(clips)],
        calibration_frames=48,
        progress=True,
    )
    with Exporter(options) as exporter:
        yield exporter


def _export(model_cache: Path, request: pytest.FixtureRequest, precision: str, recipe: str = "selective",
            input_dtype: str = "float32") -> Path:
    """The A0 export of this precision, recipe and input type: made once per run, whichever worker asks first."""
    name = f"a0_{precision}" + ("" if recipe == "selective" else f"_{recipe}")
    name += "" if input_dtype == "float32" else f"_{input_dtype}_input"
    with cache_lock(model_cache, name):
        if cached := _cached(model_cache, name):
            return cached
        require_tensorflow()
        exporter = request.getfixturevalue("a0_exporter")
        exporter.options.int8_recipe, exporter.options.input_dtype = recipe, input_dtype
        try:
            exporter.export(precision, model_cache / name, force=True)
        finally:
            exporter.options.int8_recipe, exporter.options.input_dtype = "selective", "float32"
    return model_cache / name


@pytest.fixture(scope="session")
def float_model_dir(model_cache: Path, request: pytest.FixtureRequest) -> Path:
    """A0 (random init, 172 px, Kinetics-600 labels) exported to float32 by our exporter."""
    return _export(model_cache, request, "float32")


@pytest.fixture(scope="session")
def float16_model_dir(model_cache: Path, request: pytest.FixtureRequest) -> Path:
    return _export(model_cache, request, "float16")


@pytest.fixture(scope="session")
def dynamic_model_dir(model_cache: Path, request: pytest.FixtureRequest) -> Path:
    return _export(model_cache, request, "dynamic")


@pytest.fixture(scope="session")
def int8_model_dir(model_cache: Path, request: pytest.FixtureRequest) -> Path:
    """Our selective int8 recipe, calibrated on the shared clips with states carried."""
    return _export(model_cache, request, "int8")


@pytest.fixture(scope="session")
def int8_naive_model_dir(model_cache: Path, request: pytest.FixtureRequest) -> Path:
    """Official-tool style full int8: int8 states whose input and output scales differ."""
    return _export(model_cache, request, "int8", recipe="naive")


@pytest.fixture
def run_cli():
    """Run a console command as a real subprocess, returning CompletedProcess."""
    import subprocess

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 900):
        full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def int8_uint8_input_model_dir(model_cache: Path, request: pytest.FixtureRequest) -> Path:
    """Selective int8 exported with ``input_dtype="uint8"`` (``--input-dtype uint8``): the
    image input takes camera bytes directly. Shares the exporter's calibration with int8."""
    return _export(model_cache, request, "int8", input_dtype="uint8")


@pytest.fixture(scope="session")
def int8_int8_input_model_dir(model_cache: Path, request: pytest.FixtureRequest) -> Path:
    """Selective int8 with ``--input-dtype int8``: camera bytes minus 128 (zero point -128)."""
    return _export(model_cache, request, "int8", input_dtype="int8")
