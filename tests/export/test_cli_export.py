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
     (["-q", "dynamic"], "a0_stream_dynamic"), (["--model", "a2", "--quantize", "int8"], "a2_stream_int8")],
)
def test_quantize_flag_picks_the_precision_and_its_default_folder(
    tmp_path, run_cli, a0_checkpoint, kinetics_labels, flags, folder
):
    """`--quantize` alone means int8 (the README's quick start); the precision names the default folder,
    which is checked first: an existing one is refused before any work."""
    target = old_model(tmp_path / "models" / folder)
    before = snapshot(target)

    result = run_cli(CLI, *flags, "--checkpoint", str(a0_checkpoint), "--labels", str(kinetics_labels),
                     cwd=tmp_path)

    assert_failed_cleanly(result, f"models/{folder} already exists; pass --force")
    assert_no_work_done(result)
    assert snapshot(target) == before


def test_unknown_precision_and_inputs_missing_are_refused_before_any_work(
    tmp_path, run_cli, a0_checkpoint, kinetics_labels
):
    """A bad --quantize value, a --parity-video or --calibration-videos path that is not there, labels
    that are not text: one line each, before minutes of building and converting."""
    common = ["--checkpoint", str(a0_checkpoint), "--output", str(tmp_path / "out")]
    labels = ["--labels", str(kinetics_labels)]

    result = run_cli(CLI, "--quantize", "int4", *common, *labels)
    assert_failed_cleanly(result, "unknown --quantize 'int4'; choose int8, float16 or dynamic")

    result = run_cli(CLI, *common, *labels, "--parity-video", str(tmp_path / "missing.mp4"))
    assert_failed_cleanly(result, f"parity video {tmp_path / 'missing.mp4'} does not exist")
    assert_no_work_done(result)

    result = run_cli(CLI, "--quantize", *common, *labels, "--calibration-videos", str(tmp_path / "none"))
    assert_failed_cleanly(result, f"calibration video {tmp_path / 'none'} does not exist")
    assert_no_work_done(result)

    binary = tmp_path / "labels.bin"
    binary.write_bytes(bytes(range(128, 256)) * 8)
    result = run_cli(CLI, *common, "--labels", str(binary))
    assert_failed_cleanly(result, f"labels {binary} is not UTF-8 text")
    assert_no_work_done(result)
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


def test_unknown_model_id_is_one_line_error(tmp_path, run_cli):
    result = run_cli(CLI, "--model", "a9", "--output", str(tmp_path / "out"))

    assert_failed_cleanly(result, "unknown model 'a9'; choose one of a0, a1, a2, a3, a4, a5")
    assert not (tmp_path / "out").exists()


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


def test_labels_that_do_not_fit_fail_before_the_build(tmp_path, run_cli, a0_checkpoint):
    labels = tmp_path / "labels.txt"
    labels.write_text("walking\nrunning\njumping\n")

    result = run_cli(CLI, "--checkpoint", str(a0_checkpoint), "--labels", str(labels), "--output", str(tmp_path / "out"))

    assert_failed_cleanly(result, "labels have 3 entries but the model has 600 classes; pass --labels with one label")
    assert "building streaming" not in result.stderr  # no minute spent on a model that cannot be labelled
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


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
