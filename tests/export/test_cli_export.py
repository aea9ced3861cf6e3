"""``movinet-export`` as a user runs it: a real subprocess, real files, real HTTP.

Each CLI run costs a TensorFlow import (~10 s on CI), and a full export one
to two minutes, so full exports happen only where the test is about the
whole path (the official download, ``--saved-model``); every refusal is
checked to happen before the conversion starts (no "converting" stage line)
and to leave nothing behind: one ``error:`` line, no traceback, no output
folder, no staging folder, an existing model byte-for-byte as it was.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from movinet_edge.clip import load_clip
from movinet_edge.manifest import load_manifest, read_labels
from movinet_edge.model import StreamingClassifier

CLI = "movinet_export.cli"
STAGE_LINE = re.compile(r"^\[\s*\d+\.\d+s\] ")


# ---- helpers ----------------------------------------------------------------
def assert_failed_cleanly(result, expected: str) -> str:
    """Non-zero exit, no traceback, exactly one error line (the last), containing ``expected``."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert result.stderr.rstrip("\n").splitlines()[-1] == errors[0]
    assert expected in errors[0], errors[0]
    assert result.stdout == ""
    return errors[0]


def assert_no_work_done(result) -> None:
    """The refusal came before building or converting anything."""
    assert "building streaming" not in result.stderr
    assert "converting to TFLite" not in result.stderr


IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|(\s*)(\S+)$")


@dataclass
class Watched:
    """A CLI run under PYTHONPROFILEIMPORTTIME (what `python -X importtime` prints): its result with
    the import lines taken out of stderr, and the top-level packages it imported.

    The import lines go to descriptor 2, which movinet-export sends to /dev/null while it runs (the
    converter's C++ logs); MOVINET_EXPORT_NATIVE_LOGS=1, its debugging switch, keeps it open.
    test_labels_that_do_not_fit_fail_before_the_build checks that the watch does see TensorFlow."""

    returncode: int
    stdout: str
    stderr: str
    imported: set[str]


@pytest.fixture
def run_watched(run_cli):
    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Watched:
        result = run_cli(*args, cwd=cwd, env={**(env or {}), "PYTHONPROFILEIMPORTTIME": "1",
                                              "MOVINET_EXPORT_NATIVE_LOGS": "1"})
        lines, imported = [], set()
        for line in result.stderr.splitlines(keepends=True):
            if match := IMPORT_LINE.match(line.rstrip("\n")):
                imported.add(match.group(2).split(".")[0])
            elif not line.startswith("import time: self [us]"):
                lines.append(line)
        assert "numpy" in imported or "typer" in imported, "no import lines: the watch did not work"
        return Watched(result.returncode, result.stdout, "".join(lines), imported)

    return run


def assert_refused_before_tensorflow(result: Watched, expected: str) -> str:
    """One clean error line, and TensorFlow never imported (nor anything of the export extra)."""
    line = assert_failed_cleanly(result, expected)
    assert not result.imported & {"tensorflow", "tf_keras", "official", "keras"}, sorted(result.imported)
    assert "loading TensorFlow" not in result.stderr
    return line


def leftovers(parent: Path) -> list[str]:
    """Staging folders, backups and probes that a failed export must not leave."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def old_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.tflite").write_bytes(b"\x00\x00\x00\x00TFL3 an older export")
    (folder / "labels.txt").write_text("old label\n")
    (folder / "manifest.json").write_text('{"model_id": "a0"}\n')
    (folder / "notes.txt").write_text("a file the new export does not have\n")
    return folder


def edge_logits(folder: Path, frames: np.ndarray) -> np.ndarray:
    """The edge runtime over the frames, one step each, states carried."""
    classifier = StreamingClassifier.open(folder)
    return np.stack([classifier.step_logits(frame) for frame in frames])


@pytest.fixture(scope="module")
def carving_ice(clips: Path) -> np.ndarray:
    return load_clip(clips / "carving_ice.mp4", 5.0, 172)


# ---- a mirror on 127.0.0.1 ------------------------------------------------------
@dataclass
class Request:
    path: str
    range: str | None
    status: int = 0


@dataclass
class Mirror:
    """What the server serves, what it was asked, and whether to cut the next body short."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    drop_after: int | None = None


class MirrorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        mirror: Mirror = self.server.mirror  # type: ignore[attr-defined]
        request = Request(self.path, self.headers.get("Range"))
        mirror.requests.append(request)
        body = mirror.files.get(self.path)
        if body is None:
            request.status = 404
            self.send_error(404)
            return
        start, request.status = 0, 200
        if match := re.fullmatch(r"bytes=(\d+)-", request.range or ""):
            start, request.status = int(match.group(1)), 206
        self.send_response(request.status)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
        if request.status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if mirror.drop_after is not None:  # the link dies halfway through
            cut, mirror.drop_after = mirror.drop_after, None
            self.wfile.write(body[start:start + cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body[start:])

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), MirrorHandler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda *args: None  # the cut connection is on purpose
    httpd.mirror = Mirror(base=f"http://127.0.0.1:{httpd.server_address[1]}")  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield httpd.mirror  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


# ---- the official download path ---------------------------------------------------
@pytest.mark.slow
def test_official_download_interrupted_resumed_then_cached(
    mirror, tmp_path, run_cli, a0_checkpoint, kinetics_labels, clips, carving_ice, float_model_dir
):
    """No --checkpoint: the weights and labels come from the mirror, survive a cut link, are cached."""
    from helpers.checkpoints import official_tarball

    tarball = official_tarball(a0_checkpoint, "a0", tmp_path).read_bytes()
    sha = hashlib.sha256(tarball).hexdigest()
    weights_url = f"{mirror.base}/weights/movinet_a0_stream.tar.gz"
    labels_url = f"{mirror.base}/labels/kinetics_600_labels.txt"
    mirror.files = {"/weights/movinet_a0_stream.tar.gz": tarball,
                    "/labels/kinetics_600_labels.txt": kinetics_labels.read_bytes()}
    env = {"MOVINET_WEIGHTS_URL": f"{mirror.base}/weights/", "MOVINET_LABELS_URL": labels_url}
    cache, out = tmp_path / "cache", tmp_path / "models" / "a0"
    args = [CLI, "--model", "a0", "--cache-dir", str(cache), "--output", str(out),
            "--parity-video", str(clips / "carving_ice.mp4")]

    # 1. The link dies a third of the way in: one line, the partial download kept for later.
    mirror.drop_after = len(tarball) // 3
    cut = run_cli(*args, env=env)

    assert_failed_cleanly(cut, f"download of {weights_url} stopped at ")
    assert "run the command again to resume it" in cut.stderr
    assert_no_work_done(cut)
    part = cache / "downloads" / "movinet_a0_stream.tar.gz.part"
    have = part.stat().st_size
    assert 0 < have < len(tarball)
    assert not (cache / "downloads" / "movinet_a0_stream.tar.gz").exists()
    assert not out.parent.exists()  # not even the models folder

    # 2. Run again (over an older export, --force): resumes where it stopped, exports.
    old_model(out)
    done = run_cli(*args, "--force", env=env)

    assert done.returncode == 0, done.stderr[-3000:]
    assert [(r.path, r.range, r.status) for r in mirror.requests] == [
        ("/weights/movinet_a0_stream.tar.gz", None, 200),
        ("/weights/movinet_a0_stream.tar.gz", f"bytes={have}-", 206),
        ("/labels/kinetics_600_labels.txt", None, 200),
    ]
    size = (out / "model.tflite").stat().st_size
    assert done.stdout.splitlines() == [f"{out}  (float32, {size / 1e6:.2f} MB, 43 states)"]
    # Progress: stage lines in order on stderr, the download's bar reaching 100%.
    stages = [line for line in done.stderr.splitlines() if STAGE_LINE.match(line)]
    # The labels come before the build, so a wrong label file fails before minutes of work.
    expected = [f"using the official a0 stream checkpoint {weights_url}", "resolving weights",
                f"using the Kinetics-600 labels {labels_url}", "building streaming a0 at 172 px, 600 classes",
                "converting to TFLite (float32)", "checking parity against TensorFlow", f"wrote {out}"]
    positions = [next((i for i, line in enumerate(stages) if text in line), -1) for text in expected]
    assert -1 not in positions and positions == sorted(positions), stages
    assert re.search(r"downloading movinet_a0_stream\.tar\.gz.*100%", done.stderr)
    assert "parity on carving_ice.mp4 (22 frames, float32)" in done.stderr
    # Our lines only: the converter's, absl's and LiteRT's C++ logging stays off the terminal.
    assert not re.search(r"^[WIE]0000 |XNNPACK delegate for CPU|fully_quantize|tf\.lite\.Interpreter is deprecated",
                         done.stderr, re.M), done.stderr[-3000:]
    # The output replaced the old folder whole (no stale notes.txt), and nothing is left beside it.
    assert sorted(p.name for p in out.iterdir()) == ["labels.txt", "manifest.json", "model.tflite"]
    assert leftovers(out.parent) == []
    manifest = load_manifest(out / "manifest.json")
    assert manifest.source["location"] == weights_url and manifest.source["sha256"] == sha
    assert read_labels(out / "labels.txt") == read_labels(kinetics_labels)
    # The cache: the verified tarball, its extraction, the labels; no partial files.
    downloads = cache / "downloads"
    assert (downloads / "movinet_a0_stream.tar.gz").read_bytes() == tarball
    assert (downloads / "movinet_a0_stream.tar.gz.sha256").read_text().split()[0] == sha
    assert not list(downloads.glob("*.part*"))
    assert Path(manifest.source["prefix"]).parent == (cache / "checkpoints" / sha / "movinet_a0_stream").resolve()
    assert (cache / "kinetics_600_labels.txt").read_bytes() == kinetics_labels.read_bytes()
    # Same weights as the fixture's local checkpoint: same model.
    np.testing.assert_allclose(edge_logits(out, carving_ice), edge_logits(float_model_dir, carving_ice),
                               rtol=0, atol=1e-5)

    # 3. A third run is served by the cache: no request at all. (Its 7 labels do
    # not fit the cached checkpoint's 600 classes, so it stops right after the
    # weights are resolved, before any model is built.)
    asked = len(mirror.requests)
    seven = tmp_path / "seven.txt"
    seven.write_text("".join(f"class {i}\n" for i in range(7)))
    again = run_cli(CLI, "--model", "a0", "--cache-dir", str(cache), "--output", str(tmp_path / "other"),
                    "--labels", str(seven), "--quiet", env=env)

    assert len(mirror.requests) == asked
    line = assert_failed_cleanly(again, "labels have 7 entries but the model has 600 classes")
    assert again.stderr.splitlines() == [line]  # --quiet: the error line and nothing else
    assert not (tmp_path / "other").exists()


# ---- refusals that must come before any work ----------------------------------------
def test_existing_output_is_refused_and_left_untouched(tmp_path, run_cli, a0_checkpoint, kinetics_labels):
    """Without --output the model goes to models/a0_stream_float32; an existing one stays as it was."""
    target = old_model(tmp_path / "models" / "a0_stream_float32")
    before = snapshot(target)

    result = run_cli(CLI, "--checkpoint", str(a0_checkpoint), "--labels", str(kinetics_labels), cwd=tmp_path)

    assert_failed_cleanly(result, "models/a0_stream_float32 already exists; pass --force")
    assert_no_work_done(result)
    assert snapshot(target) == before
    assert leftovers(target.parent) == []


@pytest.mark.parametrize(
    ("flags", "folder"),
    [(["--quantize"], "a0_stream_int8"), (["--quantize", "float16"], "a0_stream_float16"),
     (["--quantize", "dynamic", "-q"], "a0_stream_dynamic"),
     (["--model", "a2", "--quantize", "int8"], "a2_stream_int8"),
     (["--quantize", "-q"], "a0_stream_int8"),  # -q is --quiet, as in movinet-edge: --quantize alone is int8
     (["--quantize", "--int8-recipe", "selective"], "a0_stream_int8"),
     (["--quantize", "--int8-recipe", "naive"], "a0_stream_int8_naive"),
     (["--quantize", "int8", "--int8-recipe", "NAIVE"], "a0_stream_int8_naive")],
)
def test_quantize_flag_picks_the_precision_and_its_default_folder(
    tmp_path, run_watched, a0_checkpoint, kinetics_labels, flags, folder
):
    """`--quantize` alone means int8 (the README's quick start); the precision, and an int8 recipe other
    than the default, name the default folder, which is checked first: an existing one is refused before
    TensorFlow loads."""
    target = old_model(tmp_path / "models" / folder)
    before = snapshot(target)

    result = run_watched(CLI, *flags, "--checkpoint", str(a0_checkpoint), "--labels", str(kinetics_labels),
                         cwd=tmp_path)

    assert_refused_before_tensorflow(result, f"models/{folder} already exists; pass --force")
    assert snapshot(target) == before


def test_the_two_int8_recipes_default_to_two_folders(tmp_path, run_watched, a0_checkpoint, kinetics_labels):
    """Exporting naive beside selective keeps both: naive's default folder is not the selective model's."""
    selective = old_model(tmp_path / "models" / "a0_stream_int8")
    before = snapshot(selective)

    result = run_watched(CLI, "--quantize", "--int8-recipe", "naive", "--checkpoint", str(a0_checkpoint),
                         "--labels", str(kinetics_labels), "--parity-video", str(tmp_path / "missing.mp4"),
                         cwd=tmp_path)

    # Refused for the parity video, not for the folder: naive's would go to a0_stream_int8_naive.
    assert_refused_before_tensorflow(result, "parity video")
    assert snapshot(selective) == before
    assert leftovers(tmp_path / "models") == []


def test_the_quick_start_command_makes_the_model_movinet_edge_looks_for(tmp_path, run_watched):
    """QUICK_START (the command movinet-edge's hints tell a user to run) writes the first folder the
    device side looks in, and its 'no model found' hint names it in the same words."""
    import shlex

    from movinet_edge.model_path import DEFAULT_MODEL_DIRS, MAKE_MODEL_HINT
    from movinet_export.cli import MAKE_A_MODEL_HINT, QUICK_START

    old_model(tmp_path / DEFAULT_MODEL_DIRS[0])
    program, *args = shlex.split(QUICK_START)

    result = run_watched(CLI, *args, cwd=tmp_path)

    assert program == "movinet-export"
    assert_refused_before_tensorflow(result, f"{DEFAULT_MODEL_DIRS[0]} already exists; pass --force")
    assert MAKE_MODEL_HINT.startswith(MAKE_A_MODEL_HINT)


def test_unknown_precision_and_inputs_missing_are_refused_before_any_work(
    tmp_path, run_watched, a0_checkpoint, kinetics_labels
):
    """A bad --quantize value, a --parity-video or --calibration-videos path that is not there, labels
    that are not text: one line each, before TensorFlow loads (let alone building and converting)."""
    common = ["--checkpoint", str(a0_checkpoint), "--output", str(tmp_path / "out")]
    labels = ["--labels", str(kinetics_labels)]

    result = run_watched(CLI, "--quantize", "int4", *common, *labels)
    line = assert_refused_before_tensorflow(result, "Invalid value for '--quantize': 'int4' is not one of 'int8', ")
    assert line.endswith("; see 'movinet-export --help'")

    result = run_watched(CLI, *common, *labels, "--parity-video", str(tmp_path / "missing.mp4"))
    assert_refused_before_tensorflow(result, f"parity video {tmp_path / 'missing.mp4'} does not exist")

    result = run_watched(CLI, "--quantize", *common, *labels, "--calibration-videos", str(tmp_path / "none"))
    assert_refused_before_tensorflow(result, f"calibration video {tmp_path / 'none'} does not exist")

    binary = tmp_path / "labels.bin"
    binary.write_bytes(bytes(range(128, 256)) * 8)
    result = run_watched(CLI, *common, "--labels", str(binary))
    assert_refused_before_tensorflow(result, f"labels {binary} is not UTF-8 text")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "a9"],
         "Invalid value for '--model' / '-m': 'a9' is not one of 'a0', 'a1', 'a2', 'a3', 'a4', 'a5'"),
        (["--int8-recipe", "fancy", "--quantize"], "Invalid value for '--int8-recipe': 'fancy' is not one of "
                                                   "'selective', 'naive'"),
        (["--resize", "diagonal"], "Invalid value for '--resize': 'diagonal' is not one of 'crop', 'pad', 'stretch'"),
        (["--input-dtype", "uint8"], "--input-dtype uint8/int8 needs --quantize int8"),
        (["--quantize", "--int8-recipe", "naive", "--input-dtype", "uint8"],
         "--input-dtype uint8 does not apply to the naive int8 recipe"),
        (["--saved-model", "{tmp}", "--checkpoint", "{tmp}"], "pass either --checkpoint or --saved-model, not both"),
        (["--saved-model", "{tmp}/none"], "SavedModel {tmp}/none is not a directory"),
        (["--checkpoint", "{tmp}/none"], "{tmp}/none"),
        (["--labels", "{tmp}/none.txt"], "labels file {tmp}/none.txt does not exist"),
    ],
)
def test_bad_values_are_refused_before_tensorflow_loads(tmp_path, run_watched, args, expected):
    """Every value that can be checked without TensorFlow is (measured: under a second where the
    ~6 s import came first). The int8 options too: before this, an unknown recipe or an input type the
    recipe cannot take was refused only after minutes of build and calibration."""
    args = [a.format(tmp=tmp_path) for a in args]

    result = run_watched(CLI, *args, "--output", str(tmp_path / "out"))

    assert_refused_before_tensorflow(result, expected.format(tmp=tmp_path))
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_unwritable_output_is_refused_before_any_work(tmp_path, run_cli, a0_checkpoint, kinetics_labels, where):
    """A parent that is a file, and /proc (refused to root as well: checked by trying, not by mode bits)."""
    if where == "under-a-file":
        (tmp_path / "models").write_text("a file where the models folder should be")
        output, expected = tmp_path / "models" / "a0", f"cannot write to {tmp_path / 'models'}: "
    else:
        output, expected = Path("/proc/movinet-test-export/a0"), "cannot write to /proc/movinet-test-export: "

    result = run_cli(CLI, "--checkpoint", str(a0_checkpoint), "--labels", str(kinetics_labels),
                     "--output", str(output))

    assert_failed_cleanly(result, expected)
    assert "choose another --output" in result.stderr
    assert_no_work_done(result)
    assert leftovers(tmp_path) == [] and not output.exists()


def test_usage_errors_are_one_line(tmp_path, run_cli):
    """An unknown option or a value Typer itself rejects: the same one line as our own errors."""
    result = run_cli(CLI, "--model", "a0", "--calibration-frames", "many", "--output", str(tmp_path / "out"))

    line = assert_failed_cleanly(result, "Invalid value for '--calibration-frames'")
    assert line.endswith("; see 'movinet-export --help'")
    assert result.stderr.splitlines() == [line]
    result = run_cli(CLI, "finetune", str(tmp_path), "--epochz", "3")
    assert re.fullmatch(r"error: No such option:? '?--epochz'?.*; see 'movinet-export finetune --help'\n",
                        result.stderr), result.stderr
    assert result.returncode == 2 and not (tmp_path / "out").exists()


def test_labels_that_do_not_fit_fail_before_the_build(tmp_path, run_watched, a0_checkpoint):
    labels = tmp_path / "labels.txt"
    labels.write_text("walking\nrunning\njumping\n")

    result = run_watched(CLI, "--checkpoint", str(a0_checkpoint), "--labels", str(labels),
                         "--output", str(tmp_path / "out"))

    assert_failed_cleanly(result, "labels have 3 entries but the model has 600 classes; pass --labels with one label")
    assert "building streaming" not in result.stderr  # no minute spent on a model that cannot be labelled
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    # Progress from the first line: what is happening during the seconds before the refusal.
    lines = result.stderr.splitlines()
    assert STAGE_LINE.match(lines[0]) and f"resolving weights {a0_checkpoint}" in lines[0], lines
    assert STAGE_LINE.match(lines[1]) and lines[1].endswith("] loading TensorFlow"), lines
    # The class count comes from the checkpoint, read by TensorFlow: the watch of the refusals sees it.
    assert "tensorflow" in result.imported


@pytest.fixture(scope="module")
def base_a0():
    """A base A0 (3D convolutions, not causal: it cannot stream), built once for two refusals."""
    import tf_keras
    from official.projects.movinet.modeling import movinet, movinet_model

    spec = tf_keras.layers.InputSpec(shape=[None, None, 172, 172, 3])
    backbone = movinet.Movinet(model_id="a0", causal=False, conv_type="3d", se_type="3d", input_specs=spec,
                               use_sync_bn=False)
    model = movinet_model.MovinetClassifier(backbone, num_classes=600, input_specs={"image": spec})
    model.build([1, 1, 172, 172, 3])
    return model


@pytest.mark.parametrize("kind", ["a1-stream", "a0-base"])
def test_checkpoint_that_does_not_fit_fails_at_restore(tmp_path, run_cli, kinetics_labels, request, kind):
    """An A1 checkpoint, or a base (non-streaming) one, given to --model a0: refused before the conversion."""
    import tensorflow as tf

    from helpers.checkpoints import save_random_checkpoint

    folder, output = tmp_path / kind, tmp_path / "out"
    if kind == "a1-stream":
        save_random_checkpoint(folder, "a1")
    else:  # in the official object layout, as the model garden's base tarballs
        tf.train.Checkpoint(model=request.getfixturevalue("base_a0")).save(str(folder / "ckpt"))

    result = run_cli(CLI, "--model", "a0", "--checkpoint", str(folder), "--labels", str(kinetics_labels),
                     "--output", str(output))

    message = assert_failed_cleanly(result, f"checkpoint {(folder / 'ckpt-1').resolve()} does not fit "
                                            "MoViNet-A0 stream: ")
    assert "is it a stream checkpoint of this model id?" in message
    assert "converting to TFLite" not in result.stderr
    assert not output.exists() and leftovers(tmp_path) == []


# ---- --saved-model ------------------------------------------------------------------------
@pytest.mark.slow
def test_saved_model_from_the_official_tool_round_trips(
    tmp_path, run_cli, a0_checkpoint, kinetics_labels, clips, carving_ice, float_model_dir
):
    """The model garden's export_saved_model.py output, converted by --saved-model, equals our checkpoint route."""
    from official.projects.movinet.tools.export_saved_model import build_and_export_saved_model

    saved = tmp_path / "movinet_a0_stream"
    # The model garden's "Export for TF Lite" recipe, from the test checkpoint.
    # Its objects match ours except the optimizer's, which the tool's
    # compile() adds and our checkpoint (a model, never trained) lacks.
    build_and_export_saved_model(
        export_path=str(saved), model_id="a0", causal=True, conv_type="2plus1d", se_type="2plus3d",
        activation="hard_swish", gating_activation="hard_sigmoid", classifier_activation="hard_swish",
        use_positional_encoding=False, num_classes=600, input_shape=(1, 1, 172, 172, 3),
        bundle_input_init_states_fn=False, checkpoint_path=str(a0_checkpoint / "ckpt-1"),
        assert_checkpoint_objects_matched=False,
    )
    out = tmp_path / "out"

    result = run_cli(CLI, "--saved-model", str(saved), "--labels", str(kinetics_labels), "--output", str(out),
                     "--parity-video", str(clips / "carving_ice.mp4"))

    assert result.returncode == 0, result.stderr[-3000:]
    assert f"loading SavedModel {saved}" in result.stderr
    manifest = load_manifest(out / "manifest.json")
    reference = load_manifest(float_model_dir / "manifest.json")
    assert [(s.name, s.shape, s.dtype) for s in manifest.states] == [(s.name, s.shape, s.dtype) for s in reference.states]
    assert (manifest.model_id, manifest.resolution, manifest.num_classes) == ("a0", 172, 600)
    assert manifest.source["kind"] == "saved_model" and manifest.source["location"] == str(saved)
    assert re.fullmatch(r"[0-9a-f]{64}", manifest.source["sha256"])
    assert manifest.parity["passed"] and manifest.parity["tflite_vs_tf_max_abs_logit_diff"] <= 1e-4
    np.testing.assert_allclose(edge_logits(out, carving_ice), edge_logits(float_model_dir, carving_ice),
                               rtol=0, atol=1e-4)


def test_non_streaming_saved_model_is_refused(tmp_path, run_cli, kinetics_labels, base_a0):
    """A base (non-causal, image -> logits) MoViNet SavedModel cannot stream: one line, nothing written."""
    import tensorflow as tf

    model = base_a0
    # Saved the light way (tf.saved_model.save of the call) rather than with
    # the official tool, which takes minutes for the same signature: image -> logits.
    module = tf.Module()
    module.variables_ = list(model.variables)
    module.serve = tf.function(lambda image: {"logits": model(image, training=False)},
                               input_signature=[tf.TensorSpec([1, None, 172, 172, 3], tf.float32, name="image")])
    saved, out = tmp_path / "movinet_a0_base", tmp_path / "out"
    tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve.get_concrete_function()})

    result = run_cli(CLI, "--saved-model", str(saved), "--labels", str(kinetics_labels), "--output", str(out))

    message = assert_failed_cleanly(result, f"SavedModel {saved} is not a streaming MoViNet")
    assert "a base model cannot stream" in message
    assert "converting to TFLite" not in result.stderr
    assert not out.exists() and leftovers(tmp_path) == []


# ---- labels: packaged, or where --labels says -------------------------------------------
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: nothing listens there


def test_a_labels_download_that_fails_names_labels(tmp_path, run_watched, a0_checkpoint):
    """The offline hint of a labels URL says where a local labels file goes (it used to say --checkpoint);
    and the labels are fetched before TensorFlow loads."""
    url = f"http://127.0.0.1:{closed_port()}/labels.txt"

    result = run_watched(CLI, "--checkpoint", str(a0_checkpoint), "--labels", url, "--cache-dir",
                         str(tmp_path / "cache"), "--output", str(tmp_path / "out"))

    line = assert_refused_before_tensorflow(result, f"cannot download {url}: ")
    assert line.endswith("pass the local file with --labels FILE") and "--checkpoint" not in line
    assert not (tmp_path / "out").exists()


def test_packaged_labels_are_the_official_kinetics_600_map(kinetics_labels, tmp_path, monkeypatch):
    """No --labels: the Kinetics-600 map shipped in the package, read without any network."""
    from movinet_export.labels import LABELS_URL_ENV, kinetics_600_labels, load_labels

    monkeypatch.delenv(LABELS_URL_ENV, raising=False)
    dead = f"http://127.0.0.1:{closed_port()}"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, dead)  # any download would fail
    labels = load_labels(None, tmp_path / "cache")
    assert labels.names == kinetics_600_labels() == read_labels(kinetics_labels)
    assert len(labels.names) == 600 and not labels.given
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_air_gapped_export_of_a_checkpoint_needs_no_labels_flag_and_no_network(
    tmp_path, run_cli, a0_checkpoint, kinetics_labels
):
    """`--checkpoint` of an official-layout A0, no `--labels`, every proxy pointing nowhere: the export
    completes with the packaged Kinetics-600 labels. (64 px: the same weights, a quicker build.)"""
    dead = f"http://127.0.0.1:{closed_port()}"
    env = {name: dead for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    env["no_proxy"] = env["NO_PROXY"] = ""
    out = tmp_path / "out"

    result = run_cli(CLI, "--checkpoint", str(a0_checkpoint), "--resolution", "64", "--output", str(out),
                     "--cache-dir", str(tmp_path / "cache"), env={**env, "MOVINET_LABELS_URL": ""})

    assert result.returncode == 0, result.stderr[-3000:]
    assert "using the Kinetics-600 labels packaged with movinet-export" in result.stderr
    assert read_labels(out / "labels.txt") == read_labels(kinetics_labels)
    assert load_manifest(out / "manifest.json").num_classes == 600


# ---- the command line itself: help, version, choices ------------------------------------
def test_help_lists_the_choices_and_keeps_option_names_whole(run_cli):
    """At 80 columns no option name is cut; every choice is listed with its values; -h is --help."""
    from movinet_export.int8_recipes import RECIPES

    result = run_cli(CLI, "-h", env={"COLUMNS": "80"})

    assert result.returncode == 0 and result.stderr == ""
    text = result.stdout
    assert "--calibration-videos" in text and "…" not in text
    for choices in ("-m, --model [a0|a1|a2|a3|a4|a5]", "--quantize [int8|float16|dynamic|float32]",
                    "--input-dtype [float32|uint8|int8]", "--int8-recipe [selective|naive]",
                    "--resize [crop|pad|stretch]", "-q, --quiet", "--version", "-h, --help"):
        assert choices in text, choices
    flat = " ".join(text.split())
    for name, recipe in RECIPES.items():  # the registry's one-line help, each recipe
        assert f"{name}: {recipe.help}" in flat
    assert "[default: a0]" in text and "\\[" not in text
    assert run_cli(CLI, "--help", env={"COLUMNS": "80"}).stdout == text


def test_finetune_help_has_the_same_style(run_cli):
    result = run_cli(CLI, "finetune", "-h", env={"COLUMNS": "80"})

    assert result.returncode == 0
    for choices in ("-m, --model [a0|a1|a2|a3|a4|a5]", "--resize [crop|pad|stretch]",
                    "--precision [float32|float16|dynamic|int8]", "-q, --quiet", "-h, --help"):
        assert choices in result.stdout, choices


def test_version(run_cli):
    from movinet_export import __version__

    result = run_cli(CLI, "--version")

    assert (result.returncode, result.stdout, result.stderr) == (0, f"movinet-export {__version__}\n", "")


def test_resize_choices_are_the_devices_policies():
    """The export side names the policies without loading OpenCV; they must be the device's own."""
    from movinet_edge.preprocess import ResizePolicy
    from movinet_export.options import RESIZE_POLICIES

    assert RESIZE_POLICIES == tuple(policy.value for policy in ResizePolicy)
