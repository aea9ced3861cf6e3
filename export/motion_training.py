"""Train a small MoViNet-A0 stream model on a synthetic task that needs temporal order.

Pretrained weights cannot be fetched here, so tests and benchmarks that need a
model whose predictions *mean* something (int8 accuracy, long-stream label
switches) train one. The task is the synthetic module's 8 directions of
motion, sampled by :mod:`movinet_export.motion_task`: every single frame is
uninformative (random position, noise), so only the order of frames tells the
classes apart. The clip model (causal, internal states) is trained and saved
in the official checkpoint layout, so the exporter takes it like any
downloaded checkpoint.

What makes a random start learnable in minutes on a CPU:

- :func:`open_residual_branches`: MoViNet's blocks scale their bottleneck by
  a ReZero weight initialised to 0, so a *fresh* model has no temporal
  processing at all (its output is invariant to frame order) and training
  barely gets it going (measured: 8 directions stayed at chance). Setting
  those weights to 1 and the batch-norm statistics to those of motion clips
  gives a start that computes something over time.
- ``stride``: the clips are sampled every ``stride``-th frame of a slower
  motion, so the shape moves 6-12 px a frame at 64 px and the direction is
  visible at the coarse feature maps.
- batch-norm momentum 0.9 (not 0.99): the moving statistics must follow the
  fast-changing weights, or inference-mode accuracy trails far behind.
- ``plain`` clips (a light disc on grey, ``motion_clip``'s plain look):
  with random shapes and colours most of what varies between clips is
  appearance, and the loss sits at chance for ~10 epochs before motion wins.

Measured on the shared 2-core machine (1024 fresh clips an epoch, batch 16):
random look, 64 px, stride 3 (~60-90 s an epoch): chance for 10 epochs, then
28%, 56%, 81%, 96%, 96%, 99.2% validation accuracy (epochs 11-16, 907 s);
BN momentum 0.99 instead: 22% in inference mode after 10 epochs (61% with
batch statistics). Plain look, 32 px, stride 1 of a 2-3x faster motion,
lr 2e-3 (~20 s an epoch): 31%, 56%, 86%, 86%, 93%, 98.4% (epochs 1-6), 99.6%
by epoch 10 (258 s).

Trained checkpoints are cached by their parameters (:func:`trained_motion_model`).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .motion_task import task_dataset

RECIPE_VERSION = 3  # bump when the training code changes what a set of parameters produces


@dataclass
class TrainedModel:
    checkpoint: str  # prefix
    labels_file: Path
    resolution: int
    val_accuracy: float
    seconds: float
    params: dict[str, Any]
    history: list[dict[str, float]]


def open_residual_branches(model: Any, clips: np.ndarray) -> int:
    """Open every ReZero / residual scale (weights -> 1) and set batch-norm statistics from ``clips``.

    ``clips``: uint8 [N, T, H, W, 3], one batch of what the model will see.
    Returns how many scale weights were opened.
    """
    import tensorflow as tf
    import tf_keras

    opened = 0
    for weight in model.weights:
        if "/rezero/" in weight.name or weight.name.split("/")[-1].startswith("scale"):
            weight.assign(tf.ones_like(weight))
            opened += 1
    assert opened > 0, "found no ReZero weights to open; has the MoViNet block changed?"
    # Batch-norm statistics measured on motion clips, as a trained checkpoint has them.
    norms = [layer for layer in model.submodules if isinstance(layer, tf_keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0  # one batch sets the moving statistics outright
    model(tf.constant(clips, tf.float32) / 255.0, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum
    return opened


# The benchmark's model (bench/int8_quality.py); see the module docstring for what was measured.
DEFAULTS: dict[str, Any] = {
    "resolution": 64,
    "frames": 8,
    "stride": 3,
    "plain": True,
    "train_clips": 1024,  # fresh clips every epoch
    "val_clips": 256,
    "epochs": 12,
    "batch_size": 16,
    "learning_rate": 2e-3,
    "bn_momentum": 0.9,
    "seed": 0,
}


def train_motion_model(folder: Path, verbose: bool = True, **overrides: Any) -> TrainedModel:
    """Train from an opened random start; keeps the best epoch on the validation clips."""
    import tensorflow as tf
    import tf_keras

    from .build import ModelConfig, build_clip_model
    from .synthetic import CLASSES
    from .zoo import lookup

    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown training parameters: {', '.join(sorted(unknown))}")
    p = {**DEFAULTS, **overrides}
    res, frames, stride, seed, plain = p["resolution"], p["frames"], p["stride"], p["seed"], p["plain"]
    start = time.monotonic()
    tf_keras.utils.set_random_seed(seed)
    model = build_clip_model(ModelConfig.from_zoo(lookup("a0"), res, num_classes=len(CLASSES)))
    bn_clips, _ = task_dataset(32, res, frames, stride, seed=seed + 100, plain=plain)
    open_residual_branches(model, bn_clips)
    xv, yv = task_dataset(p["val_clips"], res, frames, stride, seed=seed + 1, plain=plain)
    xv = xv.astype(np.float32) / 255.0
    # Batch norm tracks the fast-changing weights closely: at the usual 0.99 the
    # moving statistics lagged so far behind that a model at 61% with batch
    # statistics scored 22% in inference mode (measured); 0.9 closed the gap.
    for layer in model.submodules:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.momentum = p["bn_momentum"]
    # The legacy Adam applies each variable with one fused op (fast to trace on a small CPU).
    optimizer = tf_keras.optimizers.legacy.Adam(p["learning_rate"])
    loss_fn = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = model.trainable_variables

    @tf.function
    def train_step(x, y):  # noqa: ANN001, ANN202
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, logits

    @tf.function
    def predict(x):  # noqa: ANN001, ANN202
        return model(x, training=False)

    def accuracy_on(x: np.ndarray, y: np.ndarray) -> float:
        logits = np.concatenate([predict(tf.constant(x[i : i + 32])).numpy() for i in range(0, len(x), 32)])
        return float(np.mean(logits.argmax(-1) == y))

    history: list[dict[str, float]] = []
    best, best_weights = -1.0, None
    batch = p["batch_size"]
    for epoch in range(p["epochs"]):
        x, y = task_dataset(p["train_clips"], res, frames, stride, seed=seed + 1000 + epoch, plain=plain)
        x = x.astype(np.float32) / 255.0
        order = np.random.default_rng(seed + epoch).permutation(len(x))
        losses, correct = [], 0
        for i in range(0, len(x) - batch + 1, batch):
            b = order[i : i + batch]
            loss, logits = train_step(tf.constant(x[b]), tf.constant(y[b], tf.int32))
            losses.append(float(loss))
            correct += int(np.sum(logits.numpy().argmax(-1) == y[b]))
        accuracy = accuracy_on(xv, yv)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                        "train_accuracy": correct / (len(losses) * batch), "val_accuracy": accuracy})
        if verbose:
            print(f"[train {time.monotonic() - start:6.0f}s] epoch {epoch + 1}/{p['epochs']}: "
                  f"loss {history[-1]['loss']:.3f}, train {history[-1]['train_accuracy']:.3f}, "
                  f"val {accuracy:.3f}", file=sys.stderr, flush=True)
        if accuracy > best:
            best, best_weights = accuracy, model.get_weights()
    model.set_weights(best_weights)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = tf.train.Checkpoint(model=model).save(str(folder / "ckpt"))
    labels = folder / "labels.txt"
    labels.write_text("\n".join(CLASSES) + "\n")
    return TrainedModel(prefix, labels, res, best, time.monotonic() - start, p, history)


def trained_motion_model(cache: Path, verbose: bool = True, **overrides: Any) -> TrainedModel:
    """:func:`train_motion_model` once per set of parameters: reuses ``cache/motion-<hash>/``."""
    import tensorflow as tf

    p = {**DEFAULTS, **overrides}
    key = hashlib.sha256(json.dumps({"v": RECIPE_VERSION, **p}, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(cache) / f"motion-{key}"
    done = folder / "trained.json"
    if done.is_file():
        info = json.loads(done.read_text())
        prefix = tf.train.latest_checkpoint(str(folder))
        if prefix:
            return TrainedModel(prefix, folder / "labels.txt", p["resolution"], info["val_accuracy"],
                                info["seconds"], p, info["history"])
    result = train_motion_model(folder, verbose=verbose, **overrides)
    info = {**asdict(result), "labels_file": str(result.labels_file)}
    done.write_text(json.dumps(info, indent=2) + "\n")
    return result
