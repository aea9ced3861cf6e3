"""Train a small MoViNet-A0 stream model on the synthetic motion task.

Pretrained weights cannot be fetched here, so tests and benchmarks that need a
model whose predictions *mean* something (int8 accuracy, long-stream label
switches) train one: 8 direction-of-motion classes, where a single frame says
nothing and temporal order is everything. The clip model (causal, internal
states) is trained and saved in the official checkpoint layout, so the
exporter takes it like any downloaded checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrainedModel:
    checkpoint: str  # prefix
    labels_file: Path
    resolution: int
    val_accuracy: float
    seconds: float


def train_motion_model(
    folder: Path,
    resolution: int = 64,
    frames: int = 8,
    train_clips: int = 640,
    val_clips: int = 160,
    epochs: int = 4,
    batch_size: int = 16,
    seed: int = 0,
    verbose: int = 2,
) -> TrainedModel:
    import numpy as np
    import tensorflow as tf
    import tf_keras

    from movinet_export.build import ModelConfig, build_clip_model
    from movinet_export.synthetic import CLASSES, motion_dataset
    from movinet_export.zoo import lookup

    start = time.monotonic()
    tf_keras.utils.set_random_seed(seed)
    config = ModelConfig.from_zoo(lookup("a0"), resolution, num_classes=len(CLASSES))
    model = build_clip_model(config)
    x, y = motion_dataset(train_clips, resolution, frames, seed=seed)
    xv, yv = motion_dataset(val_clips, resolution, frames, seed=seed + 1)
    x = x.astype(np.float32) / 255.0
    xv = xv.astype(np.float32) / 255.0
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate=2e-3),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=(xv, yv), verbose=verbose, shuffle=True)
    _, accuracy = model.evaluate(xv, yv, batch_size=batch_size, verbose=0)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = tf.train.Checkpoint(model=model).save(str(folder / "ckpt"))
    labels = folder / "labels.txt"
    labels.write_text("\n".join(CLASSES) + "\n")
    return TrainedModel(prefix, labels, resolution, float(accuracy), time.monotonic() - start)
