"""The fine-tuning loop: compiled steps, per-epoch progress, best-epoch selection.

Kept apart from the orchestration (finetune.py) because it is the part that
runs TensorFlow step by step: it takes a built model, a clip pipeline and
plain training settings, and leaves the best epoch's weights in the model.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import ExportError
from .evaluation import Evaluation, evaluate
from .video_dataset import VideoDataset, VideoItem


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int
    batch_size: int
    learning_rate: float
    progress: bool = True


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


class Trainer:
    """The training loop: compiled steps, per-epoch progress, best-epoch selection.

    ``train_step`` updates exactly the variables that were trainable when the
    trainer was made (``set_trainable_blocks`` first): the tests run one step
    through it to show that frozen blocks stay bit-identical.
    """

    def __init__(self, model, pipeline, data: VideoDataset, settings: TrainingSettings,  # noqa: ANN001
                 log: Callable[[str], None]) -> None:
        import tensorflow as tf
        import tf_keras

        self.model = model
        self.pipeline = pipeline
        self.data = data
        self.settings = settings
        self.log = log
        self.decode_failures: dict[str, str] = {}
        self._predictions: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        spec = pipeline.spec
        clip = tf.TensorSpec([None, spec.frames, spec.resolution, spec.resolution, 3], tf.float32)
        drop = len(data.train) >= settings.batch_size
        self.steps_per_epoch = pipeline.steps(len(data.train), drop)
        schedule = tf_keras.optimizers.schedules.CosineDecay(
            settings.learning_rate, decay_steps=max(1, settings.epochs * self.steps_per_epoch), alpha=0.05)
        # The legacy Adam applies each variable with one fused op; the new one
        # builds a dozen ops per variable, which makes tracing the step for
        # MoViNet's hundreds of variables take minutes on a small CPU.
        optimizer = tf_keras.optimizers.legacy.Adam(schedule)
        self.bn_momentum = set_batch_norm_momentum(model, settings.epochs * self.steps_per_epoch)
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

        settings = self.settings
        selection = self.data.selection_split
        history: list[EpochRecord] = []
        best_weights: list[np.ndarray] | None = None
        best_key: tuple[float, float] | None = None
        best_predictions: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        try:
            for epoch in range(1, settings.epochs + 1):
                started = time.monotonic()
                losses, correct, seen = [], 0, 0
                with Progress(self.steps_per_epoch, f"epoch {epoch}/{settings.epochs}", unit="batches",
                              quiet=not settings.progress) as bar:
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
                self.log(f"epoch {epoch}/{settings.epochs}: loss {record.loss:.3f}, "
                         f"train acc {record.train_accuracy:.1%}, "
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
