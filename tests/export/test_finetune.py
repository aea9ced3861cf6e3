"""Fine-tuning on labelled videos: data discovery, clips, metrics, training, export, streaming.

The dataset is written to disk as real .mp4 files (OpenCV's writer, 10 fps,
non-square, so the reader's fps sampling and the resize policy are exercised)
with one unreadable file and one non-video file mixed in. Its classes are motion
*speeds* built from :func:`movinet_export.synthetic.motion_clip`: "still",
"slow" and "fast". Every single frame comes from the same distribution
(random shape, colours, noise, position), so only temporal change tells the
classes apart: a model that ignores time stays at chance (33 %).

Why speeds and not the synthetic module's 8 directions: with no pretrained
weights to download here, the start is random, and a randomly initialised A0
did not learn direction within CI's budget (measured: still at chance after
800 steps at 32 px). Speed needs temporal filters too, but not their sign.

Why the start checkpoint opens the residual branches: MoViNet's blocks scale
their bottleneck by a ReZero weight initialised to 0, so a *fresh* model has
no temporal processing at all (its output is invariant to frame order).
Every trained checkpoint has those weights away from zero; the test's start
sets them to 1 and keeps everything else random, which is what a backbone
that computes something over time looks like before it is any good.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from movinet_edge.clip import load_clip
from movinet_edge.preprocess import ResizePolicy
from movinet_export.errors import ExportError
from movinet_export.synthetic import DIRECTIONS, motion_clip

SPEEDS = {"still": 0, "slow": 1, "fast": 6}  # video frames the object skips per written frame
VIDEO_FPS = 10.0  # written rate; A0 samples 5 fps, every other frame
RESOLUTION = 64
FRAMES = 8
TRAIN_PER_CLASS = 32
VAL_PER_CLASS = 8  # picks the best epoch, so that the test accuracy is not picked
TEST_PER_CLASS = 16
EPOCHS = 16  # 12 steps an epoch
# The whole run trains with letterboxing, not the default crop: a policy that got
# lost between training, the manifest and the device would show as "crop".
RESIZE = ResizePolicy.PAD
REPO = Path(__file__).resolve().parents[2]


# ---- the synthetic dataset ------------------------------------------------------
def speed_clip(speed: int, rng: np.random.Generator, frames: int = 24, size: int = 96) -> np.ndarray:
    """uint8 [frames, 72, 96, 3]: a shape moving at ``speed`` (0: standing still), any direction."""
    direction = int(rng.integers(0, len(DIRECTIONS)))
    if speed == 0:
        clip = np.repeat(motion_clip(direction, size, 1, rng), frames, axis=0)
    else:
        clip = motion_clip(direction, size, frames * speed, rng)[::speed]
    return clip[:, size // 8 : size - size // 8]  # 4:3, so the reader must crop


def write_video(path: Path, frames: np.ndarray, fps: float = VIDEO_FPS) -> None:
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def write_dataset(root: Path, per_class: dict[str, int], seed: int = 0, split: str | None = None) -> Path:
    """root[/split]/<class>/<nnn>.mp4 for every speed class."""
    rng = np.random.default_rng(seed)
    base = root / split if split else root
    for name, count in per_class.items():
        folder = base / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_video(folder / f"{name}_{i:03d}.mp4", speed_clip(SPEEDS[name], rng))
    return root


def save_active_start_checkpoint(folder: Path, resolution: int = RESOLUTION, seed: int = 0) -> str:
    """A random A0 stream checkpoint (600 classes, official layout) with its residual branches open."""
    import tensorflow as tf

    from movinet_export.build import ModelConfig, build_clip_model
    from movinet_export.zoo import lookup

    tf.keras.utils.set_random_seed(seed)
    model = build_clip_model(ModelConfig.from_zoo(lookup("a0"), resolution, 600))
    from helpers.training import open_residual_branches
    from movinet_export.synthetic import motion_dataset

    clips, _ = motion_dataset(32, resolution, FRAMES, seed=seed + 100)
    open_residual_branches(model, clips)  # ReZero scales -> 1, batch-norm statistics from motion clips
    folder.mkdir(parents=True, exist_ok=True)
    return tf.train.Checkpoint(model=model).save(str(folder / "ckpt"))


def run_export_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "movinet_export.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class-folder layout, 4 videos a class, one unreadable .mp4 and a README."""
    root = write_dataset(tmp_path_factory.mktemp("small"), {name: 4 for name in SPEEDS})
    (root / "slow" / "truncated.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    (root / "README.txt").write_text("not a class\n")
    (root / "fast" / "notes.txt").write_text("not a video\n")
    return root


# ---- discovery ---------------------------------------------------------------------
def test_class_folders_are_split_stratified_and_unreadable_videos_reported(small_dataset: Path, capsys) -> None:
    from movinet_export.video_dataset import discover

    data = discover(small_dataset, test_fraction=0.25, seed=0, progress=True)
    assert data.layout == "class-folders"
    assert data.classes == sorted(SPEEDS)  # fast, slow, still
    assert [s.path.name for s in data.skipped] == ["truncated.mp4"]
    assert "skipping unreadable video" in capsys.readouterr().err
    assert data.ignored_files == 1  # notes.txt; README.txt is not in a class folder
    counts = data.counts()
    assert counts["test"] == [1, 1, 1] and counts["train"] == [3, 3, 3]
    assert not {v.path for v in data.train} & {v.path for v in data.test}
    assert all(v.duration and 2.0 < v.duration < 3.0 for v in data.train)  # 24 frames at 10 fps
    assert data.selection_split == "test" and data.test_held_out
    again = discover(small_dataset, test_fraction=0.25, seed=0, progress=False)
    assert [v.path for v in again.test] == [v.path for v in data.test]


def test_split_folders_with_val(tmp_path: Path) -> None:
    from movinet_export.video_dataset import discover

    write_dataset(tmp_path, {"still": 2, "fast": 2}, split="train")
    write_dataset(tmp_path, {"still": 1, "fast": 1}, split="validation", seed=1)
    write_dataset(tmp_path, {"fast": 1}, split="test", seed=2)
    data = discover(tmp_path, progress=False)
    assert data.layout == "split-folders"
    assert data.classes == ["fast", "still"]
    assert (len(data.train), len(data.val), len(data.test)) == (4, 2, 1)
    assert data.selection_split == "val" and not data.test_held_out


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "no class folders"),
        ({"still": 2}, "only one class (still)"),
        ({"still": 2, "fast": 0}, "class fast has no readable training videos"),
    ],
)
def test_unusable_data_dirs_fail_with_one_line(tmp_path: Path, layout: dict[str, int], message: str) -> None:
    from movinet_export.video_dataset import discover

    write_dataset(tmp_path, layout)
    with pytest.raises(ExportError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        discover(tmp_path, progress=False)
    assert "\n" not in str(info.value)


def test_all_videos_unreadable_fails(tmp_path: Path) -> None:
    from movinet_export.video_dataset import discover

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.mp4").write_bytes(b"garbage" * 50)
    with pytest.raises(ExportError, match="none of the 2 videos"):
        discover(tmp_path, progress=False)


def test_test_class_unknown_to_train_fails(tmp_path: Path) -> None:
    from movinet_export.video_dataset import discover

    write_dataset(tmp_path, {"still": 1, "fast": 1}, split="train")
    write_dataset(tmp_path, {"slow": 1}, split="test")
    with pytest.raises(ExportError, match="every test/val class needs training videos"):
        discover(tmp_path, progress=False)


def test_cli_errors_are_one_line_and_fast(tmp_path: Path, small_dataset: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_export_cli("finetune", empty, "--output", tmp_path / "out")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: no class folders in {empty}; "
                                                  "put the videos of each class in a folder named after it"]
    existing = tmp_path / "exists"
    existing.mkdir()
    result = run_export_cli("finetune", small_dataset, "--output", existing)
    assert result.returncode == 2
    assert "already exists; pass --force" in result.stderr and "Traceback" not in result.stderr
    result = run_export_cli("finetune", small_dataset, "--unfreeze", "some", "--output", tmp_path / "o2")
    assert result.returncode == 2 and "--unfreeze 'some'" in result.stderr
    # A precision is a choice the parser checks (it needed TensorFlow's converter before).
    result = run_export_cli("finetune", small_dataset, "--export", "--precision", "int4", "--output", tmp_path / "o2")
    assert result.returncode == 2 and result.stderr.startswith(
        "error: Invalid value for '--precision': 'int4' is not one of 'float32', 'float16', 'dynamic', 'int8'")
    assert not (tmp_path / "out").exists() and not (tmp_path / "o2").exists()


def test_export_cli_refuses_an_unknown_resize_policy(tmp_path: Path) -> None:
    """The main command's --resize (the two-step route passes the fine-tune's policy) fails in one line."""
    result = run_export_cli("--resize", "diagonal", "--output", tmp_path / "o")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: Invalid value for '--resize': 'diagonal' is not one of 'crop', 'pad', 'stretch'; "
        "see 'movinet-export --help'"]
    assert not (tmp_path / "o").exists()


# ---- clips: train == inference -------------------------------------------------------
@pytest.mark.parametrize("policy", [ResizePolicy.CROP, ResizePolicy.PAD])
def test_evaluation_clip_is_the_device_clip(clips: Path, policy: ResizePolicy) -> None:
    from movinet_export.clip_pipeline import ClipSpec, augment, read_window

    video = clips / "carving_ice.mp4"  # 29.6 fps: the sampler keeps about every 6th frame
    spec = ClipSpec(fps=5.0, resolution=96, frames=8, policy=policy)
    window = read_window(video, spec)
    np.testing.assert_array_equal(window, load_clip(video, 5.0, 96, policy, max_frames=8))
    values = augment(window, np.array([1.0, 0.5, 0.5, 0.0, 1.0, 0.0], np.float32))
    assert values.dtype == np.float32 and values.min() >= 0.0 and values.max() <= 1.0
    np.testing.assert_allclose(values * 255.0, window, atol=1e-3)  # identity augmentation: just /255
    later = read_window(video, spec, start=1.0)
    whole = load_clip(video, 5.0, 96, policy)
    assert any(np.array_equal(later[0], frame) for frame in whole[4:7])  # starts about 1 s in


def test_short_video_is_padded_with_its_last_frame(tmp_path: Path) -> None:
    from movinet_export.clip_pipeline import ClipSpec, read_window

    path = tmp_path / "short.mp4"
    write_video(path, speed_clip(1, np.random.default_rng(0), frames=6))  # 3 frames at 5 fps
    clip = read_window(path, ClipSpec(5.0, 64, 8))
    assert clip.shape == (8, 64, 64, 3)
    assert all(np.array_equal(clip[i], clip[2]) for i in range(3, 8))
    assert not np.array_equal(clip[0], clip[2])


def test_training_pipeline_is_seeded_and_in_range(small_dataset: Path) -> None:
    from movinet_export.clip_pipeline import Augmentation, ClipPipeline, ClipSpec
    from movinet_export.video_dataset import discover

    data = discover(small_dataset, progress=False)
    pipeline = ClipPipeline(ClipSpec(5.0, 64, 4), Augmentation(), batch_size=4, workers=2, seed=3)
    first = [(x.numpy(), y.numpy()) for x, y in pipeline.training(data.train, epoch=1)]
    again = [(x.numpy(), y.numpy()) for x, y in pipeline.training(data.train, epoch=1)]
    other = [(x.numpy(), y.numpy()) for x, y in pipeline.training(data.train, epoch=2)]
    assert len(first) == len(data.train) // 4  # full batches only
    assert first[0][0].shape == (4, 4, 64, 64, 3) and first[0][0].dtype == np.float32
    assert all(0.0 <= x.min() and x.max() <= 1.0 for x, _ in first)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert not all(np.array_equal(a[1], b[1]) and np.allclose(a[0], b[0]) for a, b in zip(first, other))


# ---- metrics -----------------------------------------------------------------------------
def test_metrics_and_confusion_matrix_files(tmp_path: Path) -> None:
    from movinet_export.evaluation import evaluate, plot_confusion

    labels = ["a", "b", "c"]
    true = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 1])
    result = evaluate("test", labels, true, predicted)
    assert result.confusion == [[1, 1, 0], [1, 2, 0], [0, 1, 0]]
    assert result.accuracy == pytest.approx(3 / 6)
    a, b, c = result.per_class
    assert (a.precision, a.recall, a.support) == (pytest.approx(0.5), pytest.approx(0.5), 2)
    assert (b.precision, b.recall) == (pytest.approx(0.5), pytest.approx(2 / 3))
    assert c.precision is None and c.recall == 0.0 and c.f1 is None  # never predicted
    png = tmp_path / "cm.png"
    plot_confusion(result, png)
    image = cv2.imread(str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image is not None and image.shape[0] >= 300
    assert json.loads(json.dumps(result.to_dict()))["per_class"][2]["precision"] is None


# ---- freezing: what the default and --unfreeze K train -------------------------------------
# A0's backbone blocks, input to output, as the README counts them for --unfreeze K.
A0_BLOCKS = ("stem", "block0", "block1", "block2", "block3", "block4")
FREEZE_RESOLUTION = 32  # the variables do not depend on it; the traced step gets cheaper


def _block_of(name: str) -> str:
    """The --unfreeze block a variable name belongs to (the backbone's final projection goes with the last)."""
    first = name.split("/")[0]
    if first.startswith("classifier_head"):
        return "classifier_head"
    if first.split("_")[0] == "head":
        return A0_BLOCKS[-1]
    return first.split("_")[0]


def expected_trainable(names: list[str], unfreeze: int | None) -> set[str]:
    """Trainable variables by the documented rule, from the names alone (not from the library's grouping).

    The classifier head always; the last ``unfreeze`` blocks (None: all); batch-norm
    moving statistics never (they are updated by the forward pass, not the optimizer).
    """
    if unfreeze is None:
        open_blocks = set(A0_BLOCKS)
    else:
        open_blocks = set(A0_BLOCKS[max(0, len(A0_BLOCKS) - unfreeze):]) if unfreeze else set()
    return {n for n in names if "/moving_" not in n
            and (_block_of(n) == "classifier_head" or _block_of(n) in open_blocks)}


@pytest.fixture(scope="module")
def freeze_setup(small_dataset: Path) -> dict:
    """A fresh 3-class A0 clip model (residual branches open, so every weight gets a gradient) and a real batch."""
    import tensorflow as tf

    from helpers.training import open_residual_branches
    from movinet_export.build import ModelConfig, build_clip_model
    from movinet_export.clip_pipeline import Augmentation, ClipPipeline, ClipSpec
    from movinet_export.synthetic import motion_dataset
    from movinet_export.video_dataset import discover
    from movinet_export.zoo import lookup

    tf.keras.utils.set_random_seed(0)
    model = build_clip_model(ModelConfig.from_zoo(lookup("a0"), FREEZE_RESOLUTION, 3))
    start_clips, _ = motion_dataset(8, FREEZE_RESOLUTION, 4, seed=5)
    open_residual_branches(model, start_clips)  # with ReZero scales at 0 the bottlenecks get no gradient
    data = discover(small_dataset, test_fraction=0.25, progress=False)
    pipeline = ClipPipeline(ClipSpec(5.0, FREEZE_RESOLUTION, 4), Augmentation(), batch_size=4, workers=2, seed=0)
    batch = next(iter(pipeline.training(data.train, epoch=1)))
    return {"model": model, "data": data, "pipeline": pipeline, "batch": batch}


def test_the_start_checkpoint_is_carried_into_the_new_model(tmp_path: Path, small_dataset: Path) -> None:
    """Transfer learning starts from the checkpoint: every weight of the new 3-class model but the final
    classifier projection equals the 600-class start's (restored from the official layout), and the
    new projection has the user's class count."""
    import tensorflow as tf

    from helpers.checkpoints import save_random_checkpoint
    from movinet_export.build import ModelConfig, build_clip_model
    from movinet_export.finetune import Finetuner, FinetuneOptions
    from movinet_export.zoo import lookup

    prefix = save_random_checkpoint(tmp_path / "start", "a0", resolution=FREEZE_RESOLUTION, seed=3)
    start = build_clip_model(ModelConfig.from_zoo(lookup("a0"), FREEZE_RESOLUTION, 600))
    tf.train.Checkpoint(model=start).restore(prefix).assert_existing_objects_matched()
    finetuner = Finetuner(FinetuneOptions(data_dir=small_dataset, checkpoint=str(tmp_path / "start"),
                                          resolution=FREEZE_RESOLUTION, output=tmp_path / "out", progress=False))
    finetuner.source = finetuner._resolve_start()  # noqa: SLF001 - the run's first two steps, without training
    model = finetuner._build(3)  # noqa: SLF001

    fresh = [w for w in model.weights if "/classifier/" in w.name]
    assert sorted(tuple(w.shape)[-1] for w in fresh) == [3, 3]
    carried = [(a, b) for a, b in zip(start.weights, model.weights) if "/classifier/" not in b.name]
    assert len(carried) == len(model.weights) - 2 > 100
    for a, b in carried:
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=b.name)
    assert any(np.abs(a.numpy()).max() > 0 for a, _ in carried)  # real values, not zeros on both sides


def test_unfreeze_values_from_the_cli() -> None:
    from movinet_export.finetune import FinetuneOptions
    from movinet_export.finetune_cli import parse_unfreeze

    assert FinetuneOptions(data_dir=Path(".")).unfreeze == 0  # the default: backbone frozen
    assert (parse_unfreeze("0"), parse_unfreeze("2"), parse_unfreeze(" ALL ")) == (0, 2, None)
    for bad in ("-1", "two", ""):
        with pytest.raises(ExportError, match="--unfreeze"):
            parse_unfreeze(bad)


@pytest.mark.parametrize(("unfreeze", "blocks"), [
    (0, []),
    (1, ["block4"]),
    (2, ["block3", "block4"]),
    (6, ["stem", "block0", "block1", "block2", "block3", "block4"]),
    (10, ["stem", "block0", "block1", "block2", "block3", "block4"]),  # more than there are: all of them
    (None, ["the whole backbone"]),
])
def test_exactly_the_chosen_blocks_are_trainable(freeze_setup: dict, unfreeze: int | None,
                                                 blocks: list[str]) -> None:
    from movinet_export.transfer import set_trainable_blocks

    model = freeze_setup["model"]
    assert set_trainable_blocks(model, unfreeze) == blocks
    names = [v.name for v in model.variables]
    trainable = [v.name for v in model.trainable_variables]
    assert len(trainable) == len(set(trainable))
    assert set(trainable) == expected_trainable(names, unfreeze)
    if unfreeze == 0:  # the default: only the classifier head's two 1x1 convolutions (kernel, bias)
        assert len(trainable) == 4 and all(n.startswith("classifier_head") for n in trainable)


@pytest.mark.parametrize("unfreeze", [0, 2])
def test_one_training_step_changes_only_the_trainable_blocks(freeze_setup: dict, unfreeze: int | None) -> None:
    """A real step of the fine-tuning loop: frozen variables, batch-norm statistics included, stay bit-identical.

    Frozen batch-norm layers run in inference mode, so their moving statistics
    must not move either; those of trainable blocks do (training mode). Not run
    for 'all' (nothing frozen; 35 s more): the whole run below trains that way.
    """
    from movinet_export.stages import Stages
    from movinet_export.trainer import Trainer, TrainingSettings
    from movinet_export.transfer import set_trainable_blocks

    model, data = freeze_setup["model"], freeze_setup["data"]
    set_trainable_blocks(model, unfreeze)
    settings = TrainingSettings(epochs=1, batch_size=4, learning_rate=1e-3, progress=False)
    trainer = Trainer(model, freeze_setup["pipeline"], data, settings, Stages(False))
    names = [v.name for v in model.variables]
    before = [v.numpy().copy() for v in model.variables]
    x, y = freeze_setup["batch"]
    loss, _ = trainer.train_step(x, y)
    assert np.isfinite(float(loss))
    changed = {n for n, old, v in zip(names, before, model.variables) if not np.array_equal(old, v.numpy())}
    trainable = expected_trainable(names, unfreeze)
    statistics = {n for n in names if "/moving_" in n and _block_of(n) in {_block_of(t) for t in trainable}}
    frozen = set(names) - trainable - statistics
    assert not changed & frozen, f"frozen variables changed: {sorted(changed & frozen)[:5]}"
    assert trainable <= changed, f"trainable variables did not change: {sorted(trainable - changed)[:5]}"
    assert changed == trainable | statistics
    assert frozen and trainable  # both sides of the line are checked


# ---- the whole run: train, evaluate, export, stream ---------------------------------------
@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``movinet-export finetune ... --export`` as a user runs it, once for the tests below."""
    root = tmp_path_factory.mktemp("finetune")
    data = root / "speeds"
    write_dataset(data, {name: TRAIN_PER_CLASS for name in SPEEDS}, seed=0, split="train")
    write_dataset(data, {name: VAL_PER_CLASS for name in SPEEDS}, seed=1, split="val")
    write_dataset(data, {name: TEST_PER_CLASS for name in SPEEDS}, seed=2, split="test")
    (data / "train" / "fast" / "broken.mp4").write_bytes(b"this is not a video" * 20)
    start = save_active_start_checkpoint(root / "start")
    output = root / "out"
    precisions = ["float32", "int8"]
    result = run_export_cli(
        "finetune", data, "--checkpoint", start, "--resolution", RESOLUTION, "--frames", FRAMES,
        "--epochs", EPOCHS, "--batch-size", 8, "--unfreeze", "all", "--seed", 0, "--output", output,
        "--resize", RESIZE.value, "--export", *sum((["--precision", p] for p in precisions), []),
    )
    print(result.stderr[-6000:])
    assert result.returncode == 0, result.stderr[-3000:]
    return {"output": output, "data": data, "stdout": result.stdout, "stderr": result.stderr}


@pytest.mark.slow
def test_finetune_learns_well_above_chance(finetuned: dict) -> None:
    output = finetuned["output"]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["classes"] == ["fast", "slow", "still"]
    assert (output / "labels.txt").read_text().splitlines() == ["fast", "slow", "still"]
    assert metrics["test"]["count"] == 3 * TEST_PER_CLASS
    # Chance is 33 %. Measured 62-71 % over runs of this recipe on a shared 2-core machine
    # with centre crop, 71 % with letterboxing (RESIZE = pad);
    # 50 % of 48 test videos is beyond what chance reaches (p ~ 1 %) and below what training does.
    assert metrics["test"]["accuracy"] >= 0.5, metrics["history"]
    assert metrics["selected_on"] == "val" and metrics["val"]["count"] == 3 * VAL_PER_CLASS
    assert metrics["epochs_run"] == EPOCHS and sum(h["best"] for h in metrics["history"]) == 1
    assert [s["path"].endswith("broken.mp4") for s in metrics["data"]["skipped_unreadable"]] == [True]
    assert "skipping unreadable video" in finetuned["stderr"] and "broken.mp4" in finetuned["stderr"]
    assert "epoch 1/" in finetuned["stderr"] and f"epoch {EPOCHS}/{EPOCHS}" in finetuned["stderr"]
    for per_class in metrics["test"]["per_class"]:
        assert per_class["support"] == TEST_PER_CLASS
        assert per_class["recall"] is not None and 0.0 <= per_class["recall"] <= 1.0


@pytest.mark.slow
def test_confusion_matrix_files(finetuned: dict) -> None:
    output = finetuned["output"]
    confusion = json.loads((output / "confusion_matrix.json").read_text())
    matrix = np.array(confusion["matrix"])
    metrics = json.loads((output / "metrics.json").read_text())
    assert confusion["labels"] == ["fast", "slow", "still"] and matrix.shape == (3, 3)
    assert matrix.sum() == 3 * TEST_PER_CLASS and list(matrix.sum(axis=1)) == [TEST_PER_CLASS] * 3
    assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["test"]["accuracy"])
    image = cv2.imread(str(output / "confusion_matrix.png"))
    assert image is not None and min(image.shape[:2]) >= 300


@pytest.mark.slow
def test_checkpoint_is_official_layout_and_exports(finetuned: dict) -> None:
    from movinet_export.build import checkpoint_num_classes
    from movinet_export.checkpoints import resolve_checkpoint

    output = finetuned["output"]
    ref = resolve_checkpoint(str(output), output / "cache", progress=False)
    assert checkpoint_num_classes(ref.prefix) == 3
    manifest = json.loads((output / "a0_stream_float32" / "manifest.json").read_text())
    assert manifest["num_classes"] == 3 and manifest["resolution"] == RESOLUTION
    metrics = json.loads((output / "metrics.json").read_text())
    assert manifest["resize_policy"] == metrics["resize"] == RESIZE.value  # the device squares frames as training did
    assert (output / "a0_stream_float32" / "labels.txt").read_text().splitlines() == ["fast", "slow", "still"]
    parity = manifest["parity"]
    assert parity["clip"].endswith(".mp4") and "test" in parity["clip"]  # a video of the user's test split
    assert parity["tflite_vs_tf_max_abs_logit_diff"] < 1e-4
    assert parity["clip_vs_stream_max_abs_logit_diff"] < 1e-3
    assert str(output / "a0_stream_float32") in finetuned["stdout"]


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


@pytest.mark.slow
def test_two_step_route_exports_what_the_export_flag_exported(finetuned: dict, tmp_path: Path) -> None:
    """The commands the finetune command prints without --export, run through the CLI on the trained output.

    They must give the model --export gave: the training resize policy (pad here,
    so a lost --resize shows as the default crop), int8 calibrated on the training
    videos (not the synthetic fallback), parity on one of the user's test videos.
    The float32 command runs (the int8 one differs only by ``--quantize int8
    --calibration-videos``, whose export the --export run and the exporter's own
    tests cover: running it again would add minutes of calibration to CI);
    ``target`` only moves the model folders next to the test.
    """
    from movinet_edge.model import StreamingClassifier
    from movinet_export.finetune_export import export_commands

    output, data = finetuned["output"], finetuned["data"]
    float_command, int8_command = export_commands(output, target=tmp_path)
    assert float_command[0] == int8_command[0] == "movinet-export"
    assert _flag(float_command, "--resize") == _flag(int8_command, "--resize") == RESIZE.value
    assert _flag(float_command, "--resolution") == _flag(int8_command, "--resolution") == str(RESOLUTION)
    assert _flag(int8_command, "--calibration-videos") == str(data / "train")
    assert _flag(int8_command, "--quantize") == "int8"
    assert "--calibration-videos" not in float_command and "--quantize" not in float_command
    assert int8_command[: len(float_command) - 2] == float_command[:-2]  # the same but for precision and output
    assert Path(_flag(float_command, "--parity-video")).parent.parent == data / "test"
    assert _flag(float_command, "--output") == str(tmp_path / "a0_stream_float32")

    result = run_export_cli(*float_command[1:])
    assert result.returncode == 0, result.stderr[-3000:]
    ours = json.loads((tmp_path / "a0_stream_float32" / "manifest.json").read_text())
    flagged = json.loads((output / "a0_stream_float32" / "manifest.json").read_text())
    for key in ("model_id", "resolution", "fps", "num_classes", "precision", "resize_policy"):
        assert ours[key] == flagged[key], key
    assert [(st["name"], st["dtype"]) for st in ours["states"]] == [(st["name"], st["dtype"]) for st in flagged["states"]]
    assert ours["resize_policy"] == RESIZE.value
    assert ours["parity"]["clip"] == _flag(float_command, "--parity-video") and ours["parity"]["passed"]
    assert (tmp_path / "a0_stream_float32" / "labels.txt").read_text().splitlines() == ["fast", "slow", "still"]
    # The device squares its frames as training did, from the manifest alone.
    assert StreamingClassifier.open(tmp_path / "a0_stream_float32").resize_policy is RESIZE
    # The --export int8 model was calibrated on the training videos, as the printed command asks.
    calibration = json.loads((output / "a0_stream_int8" / "manifest.json").read_text())["conversion"]["calibration"]
    assert calibration["frames"] > 0 and all(Path(v).is_relative_to(data / "train") for v in calibration["videos"])


@pytest.fixture(scope="module")
def test_clips(finetuned: dict) -> dict:
    """The test split as training evaluated it, and the fine-tuned clip model's logits on it."""
    import tensorflow as tf

    from movinet_export.build import ModelConfig, build_clip_model, restore
    from movinet_export.zoo import lookup

    output = finetuned["output"]
    classes = json.loads((output / "metrics.json").read_text())["classes"]
    videos = sorted((finetuned["data"] / "test").rglob("*.mp4"))
    frames = [load_clip(video, 5.0, RESOLUTION, RESIZE, max_frames=FRAMES) for video in videos]
    model = build_clip_model(ModelConfig.from_zoo(lookup("a0"), RESOLUTION, len(classes)))
    restore(model, tf.train.latest_checkpoint(str(output)), "fine-tuned A0")
    batch = tf.constant(np.stack(frames), tf.float32) / 255.0
    logits = np.concatenate([model(batch[i : i + 16], training=False).numpy() for i in range(0, len(frames), 16)])
    return {"frames": frames, "true": np.array([classes.index(v.parent.name) for v in videos]), "clip": logits}


def streamed_last_logits(model_dir: Path, clips: list[np.ndarray]) -> np.ndarray:
    """The exported TFLite fed each clip frame by frame through the edge runtime: logits after the last frame."""
    from movinet_edge.model import StreamingClassifier

    streamer = StreamingClassifier.open(model_dir)
    out = []
    for frames in clips:
        streamer.reset()
        for frame in frames:
            last = streamer.step_logits(frame)
        out.append(last)
    return np.stack(out)


@pytest.mark.slow
def test_streamed_float32_matches_the_finetuned_clip_model(finetuned: dict, test_clips: dict) -> None:
    output = finetuned["output"]
    clip = test_clips["clip"]
    stream = streamed_last_logits(output / "a0_stream_float32", test_clips["frames"])
    print(f"float32 stream vs clip: max |logit diff| {np.abs(clip - stream).max():.3g} over {len(clip)} videos")
    assert np.abs(clip - stream).max() < 1e-4
    assert np.array_equal(clip.argmax(-1), stream.argmax(-1))
    metrics = json.loads((output / "metrics.json").read_text())
    assert np.mean(stream.argmax(-1) == test_clips["true"]) == pytest.approx(metrics["test"]["accuracy"])


@pytest.mark.slow
def test_streamed_int8_agrees_with_the_finetuned_clip_model(finetuned: dict, test_clips: dict) -> None:
    output = finetuned["output"]
    manifest = json.loads((output / "a0_stream_int8" / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest["num_classes"] == 3
    assert (output / "a0_stream_int8" / "labels.txt").read_text().splitlines() == ["fast", "slow", "still"]
    clip, true = test_clips["clip"], test_clips["true"]
    stream = streamed_last_logits(output / "a0_stream_int8", test_clips["frames"])
    agreement = float(np.mean(clip.argmax(-1) == stream.argmax(-1)))
    accuracy = float(np.mean(stream.argmax(-1) == true))
    print(f"int8 stream vs clip: top-1 agreement {agreement:.1%}, max |logit diff| {np.abs(clip - stream).max():.3g}, "
          f"accuracy {accuracy:.1%} (float {np.mean(clip.argmax(-1) == true):.1%})")
    # Measured: 71 % agreement, 58 % accuracy (float 65 %) with centre crop; 85 %, 69 % (float 71 %)
    # with letterboxing. This weakly trained model has small
    # logit margins (median 1.7), so int8 flips close calls; chance agreement would be ~33 %.
    assert agreement >= 0.6
    assert accuracy >= 0.45
