"""Random-init checkpoints in the official layout, as the model garden's tarballs hold them.

Pretrained weights cannot be fetched everywhere (CI, air-gapped machines), yet
timing a model, testing the exporter or building the tests' golden model only
needs the right graph and tensor sizes: a random-init checkpoint saved as
``tf.train.Checkpoint(model=classifier)`` is exported exactly like a
downloaded one. Its predictions mean nothing.
"""

from __future__ import annotations

from pathlib import Path


def save_random_checkpoint(folder: Path, model_id: str, resolution: int | None = None, seed: int = 0,
                           num_classes: int | None = None) -> str:
    """Save tf.train.Checkpoint(model=classifier) with random weights; returns the prefix.

    The same ``seed`` gives the same weights (Keras' initialisers draw from it).
    """
    import tensorflow as tf

    from .build import ModelConfig, build_clip_model
    from .zoo import lookup

    tf.keras.utils.set_random_seed(seed)
    config = ModelConfig.from_zoo(lookup(model_id), resolution, num_classes)
    model = build_clip_model(config)
    folder.mkdir(parents=True, exist_ok=True)
    return tf.train.Checkpoint(model=model).save(str(folder / "ckpt"))
