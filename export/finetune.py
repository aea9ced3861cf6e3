"""Fine-tune a streaming MoViNet on a user's labelled videos.

Transfer learning that keeps the model streamable. The network trained is the
*clip* model of :mod:`movinet_export.build`: the causal architecture exactly
as exported (2plus1d convolutions, 2plus3d squeeze-excitation, hard
activations) with its states kept internal, over whole clips. Its weights
are, variable for variable, those of the streaming model with external
states, so the checkpoint this writes exports like an official one and the
streamed logits after a clip's last frame equal the clip logits.

Starting point: a stream checkpoint (the official download by default) is
restored into the clip model, then every weight except the final classifier
projection is copied into a model with the user's class count. The pretrained
2048-wide head projection is kept: only the last layer starts from scratch.
The backbone is frozen by default; ``unfreeze=K`` trains its last K blocks
(the backbone's final 1x1 projection goes with the last block), ``None``
trains everything, which a randomly initialised start needs.

Output (written atomically, see :class:`~movinet_export.output.StagedOutput`)::

    OUTPUT/checkpoint, OUTPUT/ckpt-1.*   best epoch, tf.train.Checkpoint(model=clip_model)
    OUTPUT/labels.txt                    the class folder names, in label order
    OUTPUT/metrics.json                  settings, history, test (and val) metrics, skipped videos
    OUTPUT/confusion_matrix.json|png     on the test split

so ``movinet-export --checkpoint OUTPUT --labels OUTPUT/labels.txt`` exports
it; :func:`export_finetuned` does that for float32 and int8 (calibrated on
training videos) into ``OUTPUT/<model>_stream_<precision>/``, and
:func:`export_commands` spells out the same as ``movinet-export`` command
lines (with the resolution, resize policy, parity and calibration videos that
a bare ``--checkpoint`` export would get wrong).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from movinet_edge.manifest import LABELS_NAME
from movinet_edge.preprocess import ResizePolicy

from .errors import ExportError
from .evaluation import Evaluation, evaluate, plot_confusion
from .exporter import Stages
from .output import StagedOutput, check_target
from .video_dataset import VideoDataset, VideoItem, discover
from .zoo import ZooEntry, lookup

METRICS_NAME = "metrics.json"
CONFUSION_JSON = "confusion_matrix.json"
CONFUSION_PNG = "confusion_matrix.png"
CHECKPOINT_NAME = "ckpt"
DEFAULT_PRECISIONS = ("float32", "int8")
CALIBRATION_VIDEOS = 32  # class-balanced sample of training videos for int8


@dataclass
class FinetuneOptions:
    data_dir: Path
    model_id: str = "a0"
    checkpoint: str | None = None  # start weights: None = the official stream checkpoint
    output: Path | None = None  # default: models/<data dir name>_<model>_finetuned
    epochs: int = 10
    batch_size: int = 8
    frames: int = 8  # per training clip, at the model's fps
    resolution: int | None = None  # default: the model's
    unfreeze: int | None = 0  # trainable backbone blocks from the end; None = all
    learning_rate: float = 1e-3
    resize: ResizePolicy = ResizePolicy.CROP  # as the device will square its frames
    augment: bool = True
    flip: bool = False  # horizontal flip: only for classes that do not depend on left/right
    test_fraction: float = 0.2  # held out of train when there is no test/ folder
    seed: int = 0
    workers: int | None = None  # parallel video decoders; default: CPU count (at most 8)
    cache_dir: Path | None = None
    force: bool = False
    progress: bool = True

    def validate(self) -> None:
        if self.epochs < 1:
            raise ExportError(f"--epochs {self.epochs}: train at least one epoch")
        if self.batch_size < 1:
            raise ExportError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.frames < 1:
            raise ExportError(f"--frames {self.frames}: a clip needs at least one frame")
        if self.unfreeze is not None and self.unfreeze < 0:
            raise ExportError(f"--unfreeze {self.unfreeze}: pass a number of blocks (0 or more) or 'all'")
        if not self.learning_rate > 0:
            raise ExportError(f"--learning-rate {self.learning_rate}: must be positive")
        if self.resolution is not None and self.resolution < 32:
            raise ExportError(f"--resolution {self.resolution}: MoViNet needs at least 32 pixels")


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    train_accuracy: float
    selection_accuracy: float  # on the split that picks the best epoch
    selection_loss: float
    seconds: float
    best: bool = False
    decode_failures: int = 0


@dataclass
class FinetuneResult:
    output: Path
    checkpoint_prefix: Path
    classes: list[str]
    best_epoch: int
    selected_on: str
    test: Evaluation
    val: Evaluation | None
    history: list[EpochRecord]
    seconds: float
    resolution: int
    dataset: VideoDataset
    exported: dict[str, Path] = field(default_factory=dict)

    @property
    def labels_path(self) -> Path:
        return self.output / LABELS_NAME


def default_finetune_output(data_dir: Path, model_id: str, base: Path = Path("models")) -> Path:
    name = Path(data_dir).resolve().name or "videos"
    return base / f"{name}_{model_id}_finetuned"


def finetune(options: FinetuneOptions) -> FinetuneResult:
    """Train, pick the best epoch, evaluate, write OUTPUT; see the module docstring."""
    return Finetuner(options).run()


class Finetuner:
    def __init__(self, options: FinetuneOptions) -> None:
        options.validate()
        self.options = options
        self.entry: ZooEntry = lookup(options.model_id)
        self.resolution = options.resolution or self.entry.resolution
        self.output = Path(options.output) if options.output else default_finetune_output(
            options.data_dir, self.entry.model_id)
        self.log = Stages(options.progress)
        self.workers = options.workers or min(8, os.cpu_count() or 1)

    # ---- the whole run ------------------------------------------------------
    def run(self) -> FinetuneResult:
        started = time.monotonic()
        opts = self.options
        check_target(self.output, opts.force)  # before minutes of work
        data = discover(opts.data_dir, test_fraction=opts.test_fraction, seed=opts.seed,
                        workers=self.workers, progress=opts.progress)
        self.log(data.summary())
        self.log(f"best epoch picked on the {data.selection_split} split"
                 + ("" if data.val else " (no val/ folder: the test accuracy is then optimistic)"))
        import tensorflow as tf

        tf.keras.utils.set_random_seed(opts.seed)
        self.source = self._resolve_start()
        model = self._build(len(data.classes))
        trainable = self._freeze(model)
        from .clip_pipeline import Augmentation, ClipPipeline, ClipSpec

        spec = ClipSpec(self.entry.fps, self.resolution, opts.frames, ResizePolicy(opts.resize))
        pipeline = ClipPipeline(spec, Augmentation(enabled=opts.augment, flip=opts.flip), opts.batch_size,
                                self.workers, opts.seed)
        self.log(f"training {trainable} for {opts.epochs} epochs: clips of {opts.frames} frames "
                 f"({spec.seconds:.1f} s at {self.entry.fps:g} fps), {self.resolution} px ({spec.policy.value}), "
                 f"batch {opts.batch_size}")
        with StagedOutput(self.output, opts.force) as staging:
            trainer = Trainer(model, pipeline, data, opts, self.log)
            history, best = trainer.fit()
            test = trainer.evaluation("test", data.test, reuse=best if data.selection_split == "test" else None)
            val = trainer.evaluation("val", data.val, reuse=best) if data.val else None
            prefix = Path(tf.train.Checkpoint(model=model).save(str(staging / CHECKPOINT_NAME)))
            (staging / LABELS_NAME).write_text("\n".join(data.classes) + "\n", encoding="utf-8")
            best_epoch = next(r.epoch for r in history if r.best)
            seconds = time.monotonic() - started
            metrics = self._metrics(data, spec, history, best_epoch, test, val, trainer.decode_failures, seconds)
            (staging / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
            (staging / CONFUSION_JSON).write_text(json.dumps(test.confusion_dict(), indent=2) + "\n",
                                                  encoding="utf-8")
            plot_confusion(test, staging / CONFUSION_PNG,
                           title=f"{data.root.name} test: {test.accuracy:.1%} ({test.count} videos), "
                                 f"epoch {best_epoch}")
        self.log(test.summary())
        if val is not None:
            self.log(val.summary())
        self.log(f"wrote {self.output} (best epoch {best_epoch})")
        return FinetuneResult(
            output=self.output,
            checkpoint_prefix=self.output / prefix.name,
            classes=list(data.classes),
            best_epoch=best_epoch,
            selected_on=data.selection_split,
            test=test,
            val=val,
            history=history,
            seconds=seconds,
            resolution=self.resolution,
            dataset=data,
        )

    # ---- model --------------------------------------------------------------
    def _resolve_start(self) -> dict[str, Any]:
        from .checkpoints import resolve_checkpoint
        from .download import default_cache_dir
        from .exporter import checkpoint_url

        spec, sha = self.options.checkpoint, None
        if spec is None:
            spec, sha = checkpoint_url(self.entry), self.entry.checkpoint_sha256
            self.log(f"no --checkpoint: starting from the official {self.entry.model_id} stream checkpoint {spec}")
        cache = Path(self.options.cache_dir) if self.options.cache_dir else default_cache_dir()
        ref = resolve_checkpoint(spec, cache, progress=self.options.progress, sha256=sha)
        return {"location": spec, "prefix": ref.prefix, "sha256": ref.sha256}

    def _build(self, num_classes: int):  # noqa: ANN202 - a tf_keras.Model
        from .build import ModelConfig, build_clip_model, checkpoint_num_classes, restore

        prefix = self.source["prefix"]
        start_classes = checkpoint_num_classes(prefix) or self.entry.num_classes
        what = f"MoViNet-{self.entry.model_id.upper()} stream"
        self.log(f"restoring {what} ({start_classes} classes) from {prefix}")
        start = build_clip_model(ModelConfig.from_zoo(self.entry, self.resolution, start_classes))
        restore(start, prefix, what)
        self.log(f"new classifier for {num_classes} classes on the pretrained backbone and head projection")
        model = build_clip_model(ModelConfig.from_zoo(self.entry, self.resolution, num_classes))
        transfer_weights(start, model)
        return model

    def _freeze(self, model) -> str:  # noqa: ANN001 - a tf_keras.Model
        blocks = set_trainable_blocks(model, self.options.unfreeze)
        count = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
        total = sum(int(np.prod(v.shape)) for v in model.variables)
        what = "the classifier head" if not blocks else f"the classifier head and {', '.join(blocks)}"
        return f"{count / 1e6:.2f}M of {total / 1e6:.2f}M parameters ({what})"

    # ---- report ---------------------------------------------------------------
    def _metrics(self, data: VideoDataset, spec, history: list[EpochRecord], best_epoch: int,  # noqa: ANN001
                 test: Evaluation, val: Evaluation | None, failures: dict[str, str], seconds: float) -> dict:
        opts = self.options
        return {
            "model_id": self.entry.model_id,
            "resolution": self.resolution,
            "fps": self.entry.fps,
            "frames": opts.frames,
            "resize": spec.policy.value,
            "classes": data.classes,
            "start_checkpoint": {k: v for k, v in self.source.items()},
            "settings": {
                "epochs": opts.epochs,
                "batch_size": opts.batch_size,
                "unfreeze": "all" if opts.unfreeze is None else opts.unfreeze,
                "learning_rate": opts.learning_rate,
                "augment": opts.augment,
                "flip": opts.flip,
                "seed": opts.seed,
            },
            "data": {
                "root": str(data.root),
                "train_root": str(data.train_root or data.root),
                "layout": data.layout,
                "test_held_out_fraction": opts.test_fraction if data.test_held_out else None,
                "videos_per_class": data.counts(),
                "ignored_non_video_files": data.ignored_files,
                "skipped_unreadable": [{"path": str(s.path), "reason": s.reason} for s in data.skipped],
                "failed_during_training": [{"path": p, "reason": r} for p, r in sorted(failures.items())],
                "test_videos": [str(v.path) for v in data.test],
            },
            "selected_on": data.selection_split,
            "best_epoch": best_epoch,
            "epochs_run": len(history),
            "history": [asdict(r) for r in history],
            "test": test.to_dict(),
            "val": val.to_dict() if val else None,
            "seconds": round(seconds, 1),
        }


class Trainer:
    """The training loop: compiled steps, per-epoch progress, best-epoch selection.

    ``train_step`` updates exactly the variables that were trainable when the
    trainer was made (``set_trainable_blocks`` first): the tests run one step
    through it to show that frozen blocks stay bit-identical.
    """

    def __init__(self, model, pipeline, data: VideoDataset, options: FinetuneOptions, log: Stages) -> None:  # noqa: ANN001
        import tensorflow as tf
        import tf_keras

        self.model = model
        self.pipeline = pipeline
        self.data = data
        self.options = options
        self.log = log
        self.decode_failures: dict[str, str] = {}
        self._predictions: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        spec = pipeline.spec
        clip = tf.TensorSpec([None, spec.frames, spec.resolution, spec.resolution, 3], tf.float32)
        drop = len(data.train) >= options.batch_size
        self.steps_per_epoch = pipeline.steps(len(data.train), drop)
        schedule = tf_keras.optimizers.schedules.CosineDecay(
            options.learning_rate, decay_steps=max(1, options.epochs * self.steps_per_epoch), alpha=0.05)
        # The legacy Adam applies each variable with one fused op; the new one
        # builds a dozen ops per variable, which makes tracing the step for
        # MoViNet's hundreds of variables take minutes on a small CPU.
        optimizer = tf_keras.optimizers.legacy.Adam(schedule)
        self.bn_momentum = set_batch_norm_momentum(model, options.epochs * self.steps_per_epoch)
        loss_fn = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        variables = model.trainable_variables

        @tf.function(input_signature=[clip, tf.TensorSpec([None], tf.int32)])
        def train_step(x, y):  # noqa: ANN001, ANN202
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = loss_fn(y, logits)
                total = loss + tf.add_n(model.losses) if model.losses else loss
            grads = tape.gradient(total, variables)
            optimizer.apply_gradients(zip(grads, variables))
            return loss, logits

        @tf.function(input_signature=[clip])
        def predict(x):  # noqa: ANN001, ANN202
            return model(x, training=False)

        self.train_step = train_step
        self.predict = predict
        log(f"compiling the training step ({self.steps_per_epoch} steps an epoch, "
            f"batch-norm momentum {self.bn_momentum:.3f})")
        train_step.get_concrete_function()
        predict.get_concrete_function()

    def fit(self) -> tuple[list[EpochRecord], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Train every epoch; leave the best epoch's weights in the model.

        Ctrl-C after the first epoch stops early and keeps the best epoch so far.
        """
        from movinet_edge.progress import Progress

        opts = self.options
        selection = self.data.selection_split
        history: list[EpochRecord] = []
        best_weights: list[np.ndarray] | None = None
        best_key: tuple[float, float] | None = None
        best_predictions: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        try:
            for epoch in range(1, opts.epochs + 1):
                started = time.monotonic()
                losses, correct, seen = [], 0, 0
                with Progress(self.steps_per_epoch, f"epoch {epoch}/{opts.epochs}", unit="batches",
                              quiet=not opts.progress) as bar:
                    for x, y in self.pipeline.training(self.data.train, epoch):
                        loss, logits = self.train_step(x, y)
                        losses.append(float(loss) * int(y.shape[0]))
                        correct += int(np.sum(np.argmax(logits.numpy(), -1) == y.numpy()))
                        seen += int(y.shape[0])
                        bar.update()
                        bar.set_postfix(f"loss {sum(losses) / seen:.3f}")
                failed = self._collect_failures()
                if not seen:
                    raise ExportError("no training clip could be read in this epoch; check the videos listed above")
                true, predicted, logits = self._predict(self.data.split(selection))
                sel_acc = float(np.mean(true == predicted)) if len(true) else 0.0
                sel_loss = _cross_entropy(logits, true)
                key = (sel_acc, -sel_loss)
                improved = best_key is None or key > best_key
                if improved:
                    best_key = key
                    best_weights = [v.numpy() for v in self.model.weights]
                    best_predictions = (true, predicted, logits)
                record = EpochRecord(
                    epoch=epoch,
                    loss=sum(losses) / seen,
                    train_accuracy=correct / seen,
                    selection_accuracy=sel_acc,
                    selection_loss=sel_loss,
                    seconds=round(time.monotonic() - started, 1),
                    best=False,
                    decode_failures=failed,
                )
                history.append(record)
                self.log(f"epoch {epoch}/{opts.epochs}: loss {record.loss:.3f}, train acc {record.train_accuracy:.1%}, "
                         f"{selection} acc {sel_acc:.1%}, {selection} loss {sel_loss:.3f} ({record.seconds:.0f} s)"
                         + ("  * best" if improved else ""))
        except KeyboardInterrupt:
            if best_weights is None:
                raise
            self.log(f"interrupted: keeping the best of {len(history)} finished epochs")
        assert best_weights is not None and best_key is not None and best_predictions is not None
        for variable, value in zip(self.model.weights, best_weights):
            variable.assign(value)
        best_index = max(range(len(history)),
                         key=lambda i: (history[i].selection_accuracy, -history[i].selection_loss, -i))
        history[best_index].best = True
        return history, best_predictions

    def evaluation(self, split: str, items: list[VideoItem],
                   reuse: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Evaluation:
        """Metrics of the best weights on a split (the selection pass is reused, not repeated)."""
        true, predicted, _ = reuse if reuse is not None else self._predict(items)
        self._collect_failures()
        return evaluate(split, self.data.classes, true, predicted)

    def _predict(self, items: list[VideoItem]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        trues, logits_all = [], []
        for x, y in self.pipeline.evaluation(items):
            logits_all.append(self.predict(x).numpy())
            trues.append(y.numpy())
        if not trues:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, len(self.data.classes)), np.float32)
        true = np.concatenate(trues).astype(np.int64)
        logits = np.concatenate(logits_all)
        return true, logits.argmax(-1), logits

    def _collect_failures(self) -> int:
        failed = self.pipeline.failures.take()
        for path, reason in failed.items():
            if path not in self.decode_failures:
                print(f"skipping video that failed to decode: {path}: {reason}", file=sys.stderr)
            self.decode_failures[path] = reason
        return len(failed)


def _cross_entropy(logits: np.ndarray, true: np.ndarray) -> float:
    if len(true) == 0:
        return float("inf")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(-np.mean(log_probs[np.arange(len(true)), true]))


# ---- weights and freezing ------------------------------------------------------
def batch_norm_momentum(total_steps: int) -> float:
    """The moving-average momentum that lets batch norm forget its start within the run.

    After n steps the starting statistics keep a weight of momentum**n. At the
    usual 0.99 a short fine-tune (a few hundred steps) leaves a large part of
    them in the moving averages that inference uses, so the exported model
    would not compute what training measured. 1 - 20/n leaves e**-20; long runs
    keep 0.99, short ones go down to 0.9.
    """
    return float(min(0.99, max(0.9, 1.0 - 20.0 / max(1, total_steps))))


def set_batch_norm_momentum(model, total_steps: int) -> float:  # noqa: ANN001
    import tf_keras

    momentum = batch_norm_momentum(total_steps)
    for layer in model.submodules:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.momentum = momentum
    return momentum


def _classifier_head(model):  # noqa: ANN001, ANN202
    from official.projects.movinet.modeling.movinet_layers import ClassifierHead

    heads = [layer for layer in model.layers if isinstance(layer, ClassifierHead)]
    if len(heads) != 1:
        raise ExportError(f"internal: expected one classifier head, found {len(heads)}")
    return heads[0]


def _backbone(model):  # noqa: ANN001, ANN202
    from official.projects.movinet.modeling.movinet import Movinet

    backbones = [layer for layer in model.layers if isinstance(layer, Movinet)]
    if len(backbones) != 1:
        raise ExportError(f"internal: expected one MoViNet backbone, found {len(backbones)}")
    return backbones[0]


def transfer_weights(source, target) -> None:  # noqa: ANN001 - tf_keras.Model
    """Copy every weight but the final classifier projection (kept at its fresh init).

    Both models are the same architecture but for the class count, so the
    weights pair up in order; a shape that differs anywhere else is a bug.
    """
    fresh = {id(w) for w in _classifier_head(target).weights if "/classifier/" in w.name}
    if len(fresh) != 2:
        raise ExportError(f"internal: expected the classifier kernel and bias, found {len(fresh)} weights")
    src, dst = source.weights, target.weights
    if len(src) != len(dst):
        raise ExportError(f"internal: models differ ({len(src)} vs {len(dst)} weights)")
    for a, b in zip(src, dst):
        if id(b) in fresh:
            continue
        if a.shape != b.shape:
            raise ExportError(f"internal: weight {a.name} {a.shape} does not fit {b.name} {b.shape}")
        b.assign(a)


def backbone_blocks(model) -> list[list[Any]]:  # noqa: ANN001
    """The backbone's layers grouped into blocks, input to output: stem, block0..blockN (+ final projection)."""
    groups: dict[str, list[Any]] = {}
    for layer in _backbone(model).layers:
        if not layer.weights:
            continue
        name = layer.name
        if name.startswith("block"):
            key = name.split("_")[0]
        elif name == "head":  # the backbone's last 1x1 projection belongs to the last block
            key = max((k for k in groups if k.startswith("block")), key=lambda k: int(k[5:]), default="head")
        else:
            key = name
        groups.setdefault(key, []).append(layer)
    return list(groups.values())


def set_trainable_blocks(model, unfreeze: int | None) -> list[str]:  # noqa: ANN001
    """Freeze the backbone but its last ``unfreeze`` blocks (None: train all); returns the trainable ones.

    Frozen batch-norm layers then run in inference mode (Keras semantics for
    ``trainable=False``), so their pretrained statistics are kept too.
    """
    backbone = _backbone(model)
    _classifier_head(model).trainable = True
    if unfreeze is None:
        backbone.trainable = True
        return ["the whole backbone"]
    backbone.trainable = unfreeze > 0
    if unfreeze == 0:
        return []
    blocks = backbone_blocks(model)
    open_from = max(0, len(blocks) - unfreeze)
    names = []
    for i, layers in enumerate(blocks):
        for layer in layers:
            layer.trainable = i >= open_from
        if i >= open_from:
            names.append(layers[0].name.split("_")[0])
    return names


# ---- export --------------------------------------------------------------------
def calibration_sample(items: list[VideoItem], limit: int = CALIBRATION_VIDEOS, seed: int = 0) -> list[str]:
    """Up to ``limit`` training videos, round-robin over classes, for int8 calibration."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[VideoItem]] = {}
    for item in items:
        by_class.setdefault(item.label, []).append(item)
    queues = [list(np.array(group, dtype=object)[rng.permutation(len(group))]) for _, group in sorted(by_class.items())]
    out: list[str] = []
    while len(out) < limit and any(queues):
        for queue in queues:
            if queue and len(out) < limit:
                out.append(str(queue.pop(0).path))
    return out


def export_commands(output: Path, precisions: tuple[str, ...] = DEFAULT_PRECISIONS,
                    target: Path | None = None) -> list[list[str]]:
    """``movinet-export`` argument lists that export a fine-tune OUTPUT as ``--export`` does.

    The two-step route must give the model ``--export`` gives: the same
    resolution and resize policy (the manifest tells the device how to square
    frames, and a crop-trained model fed padded frames loses accuracy
    silently), int8 calibrated on the training videos rather than synthetic
    clips, and parity measured on one of the user's test videos. All of that
    is read back from OUTPUT/metrics.json, so the commands can be made again
    from the folder alone. ``target``: where the model folders go (default OUTPUT).
    """
    output = Path(output)
    try:
        metrics = json.loads((output / METRICS_NAME).read_text(encoding="utf-8"))
        model_id, resolution, resize = metrics["model_id"], metrics["resolution"], metrics["resize"]
        data = metrics["data"]
        train_root = data.get("train_root") or data["root"]
        test_videos = data["test_videos"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{output} is not a finetune output folder ({METRICS_NAME}: {exc})") from None
    base = ["movinet-export", "--model", model_id, "--checkpoint", str(output),
            "--labels", str(output / LABELS_NAME), "--resolution", str(resolution), "--resize", resize]
    if test_videos:
        base += ["--parity-video", test_videos[0]]
    commands = []
    for precision in precisions:
        command = list(base)
        if precision != "float32":
            command += ["--quantize", precision]
        if precision == "int8":
            command += ["--calibration-videos", train_root]
        command += ["--output", str(Path(target or output) / f"{model_id}_stream_{precision}")]
        commands.append(command)
    return commands


def export_finetuned(result: FinetuneResult, options: FinetuneOptions,
                     precisions: tuple[str, ...] = DEFAULT_PRECISIONS) -> dict[str, Path]:
    """Export the fine-tuned checkpoint to streaming TFLite, one folder per precision.

    Parity runs on a test video of the user's (stream vs clip model vs TFLite);
    int8 calibrates on a class-balanced sample of the training videos.
    """
    from .exporter import ExportOptions, Exporter

    entry = lookup(options.model_id)
    data = result.dataset
    export_options = ExportOptions(
        model_id=entry.model_id,
        checkpoint=str(result.output),
        labels=str(result.labels_path),
        resolution=result.resolution,
        cache_dir=options.cache_dir,
        parity_video=data.test[0].path,
        calibration_videos=calibration_sample(data.train, seed=options.seed) if "int8" in precisions else [],
        resize_policy=ResizePolicy(options.resize).value,
        progress=options.progress,
    )
    out: dict[str, Path] = {}
    with Exporter(export_options) as exporter:
        for precision in precisions:
            target = result.output / f"{entry.model_id}_stream_{precision}"
            try:
                exporter.export(precision, target, force=True)
            except ExportError as exc:
                raise ExportError(
                    f"the fine-tuned checkpoint is saved in {result.output}, but the {precision} export failed: {exc}"
                ) from None
            out[precision] = target
    result.exported.update(out)
    return out

