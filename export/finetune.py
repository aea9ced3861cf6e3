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
it; finetune_export.py does that for float32 and int8, or spells it out as
``movinet-export`` command lines. This module wires the run together; the
training loop is trainer.py, the Keras surgery (new classifier, frozen
blocks) transfer.py.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from movinet_edge.manifest import LABELS_NAME
from movinet_edge.preprocess import ResizePolicy

from .errors import ExportError
from .evaluation import Evaluation, plot_confusion
from .exporter import require_export_extra
from .output import StagedOutput, check_target
from .stages import Stages
from .trainer import EpochRecord, Trainer, TrainingSettings
from .transfer import set_trainable_blocks, transfer_weights
from .video_dataset import VideoDataset, discover
from .zoo import ZooEntry, lookup

METRICS_NAME = "metrics.json"
CONFUSION_JSON = "confusion_matrix.json"
CONFUSION_PNG = "confusion_matrix.png"
CHECKPOINT_NAME = "ckpt"
DEFAULT_PRECISIONS = ("float32", "int8")


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
        require_export_extra()  # a device install: before reading every video
        data = discover(opts.data_dir, test_fraction=opts.test_fraction, seed=opts.seed,
                        workers=self.workers, progress=opts.progress)
        self.log(data.summary())
        self.log(f"best epoch picked on the {data.selection_split} split"
                 + ("" if data.val else " (no val/ folder: the test accuracy is then optimistic)"))
        self.source = self._resolve_start()  # a download, if any, before TensorFlow
        self.log("loading TensorFlow")
        import tensorflow as tf

        tf.keras.utils.set_random_seed(opts.seed)
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
            settings = TrainingSettings(opts.epochs, opts.batch_size, opts.learning_rate, opts.progress)
            trainer = Trainer(model, pipeline, data, settings, self.log)
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

        spec, sha = self.options.checkpoint, None
        if spec is None:
            spec, sha = self.entry.official_checkpoint(), self.entry.checkpoint_sha256
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
