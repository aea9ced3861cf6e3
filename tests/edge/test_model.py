"""StreamingClassifier against models written by our own exporter."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers.signatures import edit_signature
from movinet_edge.clip import load_clip
from movinet_edge.errors import EdgeError
from movinet_edge.manifest import Quantization, load_manifest
from movinet_edge.model import StateSlot, StreamingClassifier, dequantize
from movinet_edge.runtime import make_interpreter, release_model_pages


@pytest.fixture(scope="module")
def frames(clips: Path) -> np.ndarray:
    return load_clip(clips / "carving_ice.mp4", 5.0, 172)


def test_states_follow_the_manifest_and_advance(golden_model_dir: Path, frames: np.ndarray) -> None:
    clf = StreamingClassifier.open(golden_model_dir, num_threads=1)
    manifest = load_manifest(golden_model_dir / "manifest.json")
    assert [s.name for s in clf.states] == [s.name for s in manifest.states]
    assert len(clf.states) == 43
    assert clf.fps == 5.0 and clf.resolution == 64 and len(clf.labels) == 8  # the golden model: A0 at 64 px
    for i in range(3):
        probs = clf.step(frames[i])
        assert probs.shape == (8,) and abs(float(probs.sum()) - 1.0) < 1e-4
    assert clf.history_frames == 3
    counts = [s.input_view().item() for s in clf.states if s.kind == "pool_frame_count"]
    assert counts == [3] * 16
    clf.reset()
    assert clf.history_frames == 0
    assert all(not s.input_view().any() for s in clf.states)


def test_runs_without_manifest_from_the_signature(golden_model_dir: Path, tmp_path: Path,
                                                 frames: np.ndarray) -> None:
    """A bare .tflite from another tool: everything comes from the signature."""
    bare = tmp_path / "other_tool.tflite"
    shutil.copy(golden_model_dir / "model.tflite", bare)
    clf = StreamingClassifier.open(bare)
    assert clf.manifest is None
    assert clf.fps == 5.0 and clf.resolution == 64
    assert clf.labels[0] == "class_0" and len(clf.labels) == 8
    with_manifest = StreamingClassifier.open(golden_model_dir)
    for frame in frames[:4]:
        np.testing.assert_allclose(clf.step_logits(frame), with_manifest.step_logits(frame), atol=1e-6)


def test_resize_policy_comes_from_the_manifest(golden_model_dir: Path, tmp_path: Path) -> None:
    """A model fine-tuned on padded frames must be fed padded frames; the caller may still override."""
    import json

    folder = tmp_path / "padded"
    shutil.copytree(golden_model_dir, folder)
    data = json.loads((folder / "manifest.json").read_text())
    data["resize_policy"] = "pad"
    (folder / "manifest.json").write_text(json.dumps(data))
    assert StreamingClassifier.open(folder).resize_policy.value == "pad"
    assert StreamingClassifier.open(folder, resize_policy="stretch").resize_policy.value == "stretch"
    assert StreamingClassifier.open(golden_model_dir).resize_policy.value == "crop"
    del data["resize_policy"]  # manifests written before the field existed
    (folder / "manifest.json").write_text(json.dumps(data))
    assert StreamingClassifier.open(folder).resize_policy.value == "crop"


def test_label_count_mismatch_is_one_line(golden_model_dir: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    with pytest.raises(EdgeError, match="labels have 3 entries but the model has 8 classes"):
        StreamingClassifier.open(golden_model_dir, labels=labels)


def test_rejects_a_file_that_is_not_tflite(tmp_path: Path) -> None:
    fake = tmp_path / "model.tflite"
    fake.write_bytes(b"this is not a flatbuffer at all")
    with pytest.raises(EdgeError, match="is not a TFLite model"):
        StreamingClassifier.open(fake)


def test_rejects_a_model_that_is_not_a_streaming_movinet(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
    def classify(x):
        return {"logits": tf.nn.relu(x) * 2.0}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([classify.get_concrete_function()])
    path = tmp_path / "image_classifier.tflite"
    path.write_bytes(converter.convert())
    with pytest.raises(EdgeError, match="not a streaming MoViNet"):
        StreamingClassifier.open(path)


def test_naive_int8_states_start_at_zero_point_and_are_requantized(int8_naive_model_dir: Path, frames: np.ndarray) -> None:
    clf = StreamingClassifier.open(int8_naive_model_dir, num_threads=1)
    quantized = [s for s in clf.states if s.input_quantization is not None]
    assert quantized, "the naive recipe makes int8 states"
    # 'Nothing seen' is the real value 0, i.e. the zero point, not the integer 0.
    for s in quantized:
        assert np.all(s.input_view() == s.input_quantization.zero_point)
    differing = [s for s in quantized if s.needs_requantization]
    assert differing, "expected states whose output and input scales differ"
    clf.step_logits(frames[0])
    # The carried state must mean the same real value as the output it came from.
    for s in differing:
        out_real = dequantize(s.output_view(), s.output_quantization)
        in_real = dequantize(s.input_view(), s.input_quantization)
        step = s.input_quantization.scale
        inside = (out_real >= dequantize(np.array([-128]), s.input_quantization)[0]) & (
            out_real <= dequantize(np.array([127]), s.input_quantization)[0]
        )
        np.testing.assert_array_less(np.abs(in_real - out_real)[inside], step * 0.5 + 1e-6)
        # A plain byte copy would have carried a different value.
        wrong = dequantize(s.output_view().copy(), s.input_quantization)
        if np.abs(out_real).max() > 2 * step:
            assert np.abs(wrong - out_real).max() > step


# --- models from other tools --------------------------------------------------------------


def rewrite_signature_key(source: Path, target: Path, key: str) -> None:
    """Our exported model with its signature renamed, as other exporters name it ('call')."""
    edit_signature(source, target, lambda signature: setattr(signature, "signatureKey", key))


def test_a_model_whose_signature_key_is_call(golden_model_dir: Path, tmp_path: Path, frames: np.ndarray) -> None:
    """The official export tool names the signature 'call'; with or without a manifest
    (ours says serving_default) the classifier finds it and computes the same."""
    bare = tmp_path / "call.tflite"
    rewrite_signature_key(golden_model_dir / "model.tflite", bare, "call")
    folder = tmp_path / "with_manifest"
    shutil.copytree(golden_model_dir, folder)
    rewrite_signature_key(golden_model_dir / "model.tflite", folder / "model.tflite", "call")
    reference = StreamingClassifier.open(golden_model_dir, num_threads=1)
    assert reference.signature_key == "serving_default"
    for path in (bare, folder):
        clf = StreamingClassifier.open(path, num_threads=1)
        assert clf.signature_key == "call"
        assert list(clf.interpreter.get_signature_list()) == ["call"]
        assert len(clf.states) == 43
        reference.reset()
        for frame in frames[:4]:
            np.testing.assert_allclose(clf.step_logits(frame), reference.step_logits(frame), atol=1e-6)


def test_a_base_model_with_an_image_input_but_no_states_is_one_line(
    tmp_path: Path, clips: Path, golden_model_dir: Path
) -> None:
    """A non-streaming (base) MoViNet takes a whole clip as `image` and has no states: it cannot
    run frame by frame, and says so in one line, in the library and through the CLI."""
    tf = pytest.importorskip("tensorflow")
    import subprocess
    import sys

    module = tf.Module()
    module.weights = tf.Variable(np.random.default_rng(0).normal(size=(3, 600)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 172, 172, 3], tf.float32, name="image")])
    def classify(image):
        return {"logits": tf.matmul(tf.reduce_mean(image, axis=[1, 2, 3]), module.weights)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([classify.get_concrete_function()], module)
    path = tmp_path / "movinet_a0_base.tflite"
    path.write_bytes(converter.convert())
    with pytest.raises(EdgeError) as info:
        StreamingClassifier.open(path)
    message = str(info.value)
    assert message == (
        f"{path} is not a streaming MoViNet: it has no state inputs "
        "(a base, non-streaming model cannot run frame by frame)"
    )
    result = subprocess.run(
        [sys.executable, "-m", "movinet_edge.cli", "classify", str(clips / "carving_ice.mp4"), "--model", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {message}"]


# --- an int8 model that takes camera bytes ------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_quantized_input_model_is_fed_bytes_and_matches_the_float_input_int8(
    dtype: str, request: pytest.FixtureRequest, int8_model_dir: Path, frames: np.ndarray
) -> None:
    """`movinet-export --quantize --input-dtype uint8|int8`: the image input has scale 1/255 and
    zero point 0 (uint8) or -128 (int8), so the classifier copies the frame's bytes into it (less
    128 for int8), and the model computes what the float-input int8 model (same calibration)
    computes from bytes / 255."""
    model_dir = request.getfixturevalue(f"int8_{dtype}_input_model_dir")
    manifest = load_manifest(model_dir / "manifest.json")
    assert manifest.precision == "int8"
    clf = StreamingClassifier.open(model_dir, num_threads=1)
    ref = StreamingClassifier.open(int8_model_dir, num_threads=1)
    assert clf.image_dtype == np.dtype(dtype) and ref.image_dtype == np.float32
    assert clf.image_quantization is not None
    assert clf.image_quantization.scale == pytest.approx(1 / 255, rel=1e-6)
    assert clf.image_quantization.zero_point == (0 if dtype == "uint8" else -128)
    image_index = clf.input_details["image"]["index"]
    diffs, agree = [], []
    for frame in frames:  # the whole clip: 22 steps at 5 fps, states carried
        logits = clf.step_logits(frame)
        fed = clf.interpreter.get_tensor(image_index)
        assert fed.dtype == np.dtype(dtype)
        expected_bytes = frame if dtype == "uint8" else (frame.astype(np.int16) - 128).astype(np.int8)
        np.testing.assert_array_equal(fed.reshape(frame.shape), expected_bytes)  # the bytes, as they came
        expected = ref.step_logits(frame)
        diffs.append(float(np.abs(logits - expected).max()))
        agree.append(int(np.argmax(logits)) == int(np.argmax(expected)))
    print(f"{dtype}-input vs float-input int8 on carving_ice: max |logit diff| {max(diffs):.3g}")
    assert max(diffs) < 1e-3, diffs
    assert all(agree)


# --- carrying one state across types, as other tools' models may need -------------------------------


def _slot(out_values: np.ndarray, in_dtype: str, iq: Quantization | None, oq: Quantization | None) -> tuple:
    out_buf = out_values.copy()
    in_buf = np.zeros(out_values.shape, np.dtype(in_dtype))
    slot = StateSlot(
        name="state_block1_layer0_stream_buffer", kind="stream_buffer", shape=out_values.shape,
        dtype=np.dtype(in_dtype), input_index=0, output_index=1, input_quantization=iq, output_quantization=oq,
        initial=np.zeros(out_values.shape, np.dtype(in_dtype)), input_view=lambda: in_buf, output_view=lambda: out_buf,
        output_dtype=out_values.dtype,
    )
    return slot, in_buf


def test_a_state_carried_across_dtypes_keeps_its_real_value() -> None:
    """int8 out -> float in (dequantized), float out -> int8 in (quantized, saturated), int8 -> int8 at
    another scale (requantized), and the plain copy when nothing differs."""
    q_out, q_in = Quantization(0.1, 3), Quantization(0.05, -2)
    raw = np.array([[-128, 3, 13, 127]], np.int8)  # real: -13.1, 0, 1.0, 12.4

    slot, carried = _slot(raw, "float32", None, q_out)
    slot.carry()
    assert slot.needs_requantization
    np.testing.assert_allclose(carried, [[-13.1, 0.0, 1.0, 12.4]], rtol=1e-6)

    slot, carried = _slot(np.array([[-13.1, 0.0, 1.0, 12.4]], np.float32), "int8", q_in, None)
    slot.carry()
    # -13.1 and 12.4 saturate: int8 at scale 0.05, zero point -2 holds -6.3..6.45
    np.testing.assert_array_equal(carried, [[-128, -2, 18, 127]])

    slot, carried = _slot(raw, "int8", q_in, q_out)
    slot.carry()
    np.testing.assert_array_equal(carried, [[-128, -2, 18, 127]])

    slot, carried = _slot(raw, "int8", q_out, Quantization(0.1, 3))
    slot.carry()
    assert not slot.needs_requantization
    np.testing.assert_array_equal(carried, raw)


def _resident_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (/proc/self/smaps)."""
    target, total, inside = str(path.resolve()), 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
                inside = len(fields) >= 6 and fields[5] == target
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total


def test_the_packed_model_file_leaves_the_resident_set_and_results_do_not_change(
    golden_model_dir: Path, golden_frames: np.ndarray
) -> None:
    model = golden_model_dir / "model.tflite"
    size_kb = model.stat().st_size // 1024
    # A plain interpreter keeps the whole file resident once XNNPACK has read it to pack its weights.
    plain = make_interpreter(model, num_threads=1)
    plain.allocate_tensors()
    runner = plain.get_signature_runner(list(plain.get_signature_list())[0])
    assert _resident_kb(model) > size_kb * 0.9
    clf = StreamingClassifier.open(golden_model_dir, num_threads=1)
    assert release_model_pages(model) > 0 and _resident_kb(model) < size_kb * 0.05
    # Pages a kernel still reads come back from the page cache: the same logits as the plain interpreter's.
    states = {s.name: np.zeros(s.input_view().shape, s.input_view().dtype) for s in clf.states}
    for frame in golden_frames[:4]:
        ours = clf.step_logits(frame)
        out = runner(image=(frame[None, None].astype(np.float32) / 255.0), **states)
        states = {name: out[name] for name in states}
        np.testing.assert_allclose(ours, out["logits"].reshape(-1), rtol=1e-5, atol=1e-5)
    # Built-in kernels' constants and the kernel's read-around fault some back (4 MB of 15 seen in CI).
    assert _resident_kb(model) < size_kb * 0.5
    assert release_model_pages(golden_model_dir / "labels.txt") == 0  # not mapped: nothing to do


# --- several streams on one loaded model ------------------------------------------------------------


@pytest.fixture(scope="module")
def three_clips(clips: Path) -> list[np.ndarray]:
    """Three different real clips at the model's rate and resolution (22, 50 and 52 steps)."""
    return [load_clip(clips / name, 5.0, 172) for name in ("carving_ice.mp4", "rope_pushdown.mp4",
                                                             "flipping_pancake.mkv")]  # fmt: skip


def _alone(model_dir: Path, clip: np.ndarray, wrap=None) -> np.ndarray:
    """Logits of every step of ``clip`` on a model loaded for it alone."""
    clf = StreamingClassifier.open(model_dir, num_threads=1)
    stream = wrap(clf) if wrap else clf
    return np.stack([stream.step_logits(frame) for frame in clip])


def _interleaved(streams: list, clips: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """Step each stream through its clip, the streams taking turns in a random order (some
    twice in a row, some left waiting), all in this thread."""
    rng = np.random.default_rng(seed)
    out: list[list[np.ndarray]] = [[] for _ in clips]
    while any(len(o) < len(c) for o, c in zip(out, clips)):
        i = int(rng.choice([k for k, (o, c) in enumerate(zip(out, clips)) if len(o) < len(c)]))
        out[i].append(streams[i].step_logits(clips[i][len(out[i])]))
    return [np.stack(o) for o in out]


def _assert_same(got: np.ndarray, expected: np.ndarray, exact: bool) -> None:
    assert got.shape == expected.shape
    if exact:
        np.testing.assert_array_equal(got, expected)
        return
    from movinet_edge.model import softmax

    for g, e in zip(got, expected):
        pg, pe = softmax(g), softmax(e)
        assert list(np.argsort(-pg)[:5]) == list(np.argsort(-pe)[:5])
        np.testing.assert_allclose(pg, pe, rtol=0, atol=1e-6)


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_forks_fed_different_clips_interleaved_give_what_each_gives_alone(
    precision: str, request: pytest.FixtureRequest, three_clips: list[np.ndarray]
) -> None:
    """One interpreter, three streams: a stream never sees another's states. Bit-identical to a
    model loaded for each clip alone (float32), the same top-5 and scores within 1e-6 (int8)."""
    model_dir = request.getfixturevalue(f"{precision}_model_dir" if precision == "int8" else "float_model_dir")
    alone = [_alone(model_dir, clip) for clip in three_clips]
    model = StreamingClassifier.open(model_dir, num_threads=1)
    streams = [model, model.fork(), model.fork()]
    assert all(s.interpreter is model.interpreter for s in streams) and model.pool_size == 1
    for got, expected in zip(_interleaved(streams, three_clips), alone):
        _assert_same(got, expected, exact=precision == "float32")
    # Each stream's own count and reset: resetting one leaves the others where they were.
    assert [s.steps for s in streams] == [len(c) for c in three_clips]
    streams[1].reset()
    assert streams[1].steps == 0 and streams[1].history_frames == 0
    assert streams[2].history_frames == len(three_clips[2]) and model.history_frames == len(three_clips[0])
    np.testing.assert_array_equal(streams[2].step_logits(three_clips[0][0]),
                                  _alone_then(model_dir, three_clips[2], three_clips[0][0]))  # fmt: skip
    # A snapshot of one stream, taken and restored while others step in between, is that stream's.
    snapshot = model.snapshot()
    streams[1].step_logits(three_clips[1][0])
    first = model.step_logits(three_clips[1][1])
    streams[2].step_logits(three_clips[2][0])
    model.restore(snapshot)
    assert model.history_frames == len(three_clips[0])
    np.testing.assert_array_equal(model.step_logits(three_clips[1][1]), first)


def _alone_then(model_dir: Path, clip: np.ndarray, frame: np.ndarray) -> np.ndarray:
    clf = StreamingClassifier.open(model_dir, num_threads=1)
    for f in clip:
        clf.step_logits(f)
    return clf.step_logits(frame)


@pytest.mark.parametrize("policy", ["rescale", "dual"])
def test_windowed_forks_interleaved_give_what_each_gives_alone(
    policy: str, float_model_dir: Path, three_clips: list[np.ndarray]
) -> None:
    """A 2 s window (10 steps) rescales or resets several times in each clip; the dual policy's two
    state sets are forks too, so three windowed streams hold six state sets on one interpreter."""
    from movinet_edge.windowing import WindowedClassifier

    def wrap(clf: StreamingClassifier) -> WindowedClassifier:
        return WindowedClassifier(clf, 2.0, policy)

    alone = [_alone(float_model_dir, clip, wrap) for clip in three_clips]
    first = wrap(StreamingClassifier.open(float_model_dir, num_threads=1))
    streams = [first, first.fork(), first.fork()]
    assert all(s.classifier.interpreter is first.classifier.interpreter for s in streams)
    assert all(s.policy.value == policy and s.window_frames == 10 for s in streams)
    for got, expected in zip(_interleaved(streams, three_clips, seed=1), alone):
        _assert_same(got, expected, exact=True)
    assert all(s.resets >= 2 for s in streams)


@pytest.mark.parametrize("pool", [1, 2])
def test_forks_stepping_from_threads_at_once_give_what_each_gives_alone(
    pool: int, int8_model_dir: Path, three_clips: list[np.ndarray]
) -> None:
    """Real concurrency: each stream in its own thread, as the multi-stream runner runs them, with
    one interpreter (turns on its fair lock) or a pool of two (forks spread over them)."""
    import threading

    clips = [*three_clips, three_clips[0][::-1].copy()]  # four streams, one the first clip backwards
    alone = [_alone(int8_model_dir, clip) for clip in clips]
    model = StreamingClassifier.open(int8_model_dir, num_threads=1, pool=pool)
    streams = [model] + [model.fork() for _ in clips[1:]]
    assert model.pool_size == pool
    assert sorted(s.engine_index for s in streams) == sorted(i % pool for i in range(len(streams)))
    results: list[np.ndarray | None] = [None] * len(clips)
    start = threading.Barrier(len(clips))

    def run(i: int) -> None:
        start.wait()
        results[i] = np.stack([streams[i].step_logits(frame) for frame in clips[i]])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clips))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for got, expected in zip(results, alone):
        assert got is not None
        _assert_same(got, expected, exact=False)


def test_a_fork_costs_its_states_only(int8_model_dir: Path) -> None:
    """Forks share the interpreter and its packed weights: many forks add their state arrays only."""
    import gc

    model = StreamingClassifier.open(int8_model_dir, num_threads=1)
    # A0 at 172 px: 43 states, 2.7 MB (float32 stream buffers, in our int8 recipe too).
    assert model.state_bytes == sum(s.initial.nbytes for s in model.states) < 4 * 2**20
    gc.collect()
    before = _rss_kb()
    forks = [model.fork() for _ in range(8)]
    for fork in forks:  # every state set in use, as in a run
        fork.step_square(np.zeros((172, 172, 3), np.uint8))
    grown_kb = _rss_kb() - before
    assert all(f.interpreter is model.interpreter for f in forks)
    # A second interpreter would cost its packed weights and arena again (tens of MB each).
    assert grown_kb * 1024 < 8 * model.state_bytes + 4 * 2**20, (grown_kb, model.state_bytes)


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_pool_must_hold_an_interpreter(golden_model_dir: Path) -> None:
    with pytest.raises(EdgeError, match="at least 1 interpreter"):
        StreamingClassifier.open(golden_model_dir, pool=0)
