"""Build streaming MoViNet Keras models and restore weights into them.

Two models share one set of weights:
- the *stream* model (batch 1, one frame per call, states as explicit inputs
  and outputs) is what becomes the TFLite file;
- the *clip* model (same causal architecture, internal states, any number of
  frames) classifies a whole clip at once. A model built for 1-frame input
  rejects a whole clip, so parity checks build this one and copy the weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
from official.projects.movinet.modeling import movinet, movinet_model  # noqa: E402

from .errors import ExportError  # noqa: E402
from .zoo import STREAM_ARCH, ZooEntry  # noqa: E402


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the graph; the manifest records it."""

    model_id: str
    resolution: int
    num_classes: int
    use_positional_encoding: bool
    conv_type: str = STREAM_ARCH["conv_type"]
    se_type: str = STREAM_ARCH["se_type"]
    activation: str = STREAM_ARCH["activation"]
    gating_activation: str = STREAM_ARCH["gating_activation"]
    classifier_activation: str = STREAM_ARCH["classifier_activation"]

    @classmethod
    def from_zoo(cls, entry: ZooEntry, resolution: int | None = None, num_classes: int | None = None) -> ModelConfig:
        return cls(
            model_id=entry.model_id,
            resolution=resolution or entry.resolution,
            num_classes=num_classes or entry.num_classes,
            use_positional_encoding=entry.use_positional_encoding,
        )

    @property
    def stream_input_shape(self) -> list[int]:
        return [1, 1, self.resolution, self.resolution, 3]


def _backbone(config: ModelConfig, input_shape: list[int | None], external_states: bool) -> tf_keras.Model:
    return movinet.Movinet(
        model_id=config.model_id,
        causal=True,
        use_positional_encoding=config.use_positional_encoding,
        conv_type=config.conv_type,
        se_type=config.se_type,
        input_specs=tf_keras.layers.InputSpec(shape=input_shape),
        activation=config.activation,
        gating_activation=config.gating_activation,
        use_sync_bn=False,
        use_external_states=external_states,
    )


def build_stream_model(config: ModelConfig) -> tf_keras.Model:
    """The streaming classifier: ``{image, **states} -> (logits, states)``."""
    shape = config.stream_input_shape
    backbone = _backbone(config, shape, external_states=True)
    model = movinet_model.MovinetClassifier(
        backbone,
        num_classes=config.num_classes,
        output_states=True,
        input_specs={"image": tf_keras.layers.InputSpec(shape=shape)},
        activation=config.classifier_activation,
    )
    return model


def build_clip_model(config: ModelConfig, training: bool = False) -> tf_keras.Model:
    """The same causal network over a whole clip ``[1, T, H, W, 3] -> logits``."""
    shape: list[int | None] = [None, None, config.resolution, config.resolution, 3]
    backbone = _backbone(config, shape, external_states=False)
    model = movinet_model.MovinetClassifier(
        backbone,
        num_classes=config.num_classes,
        output_states=False,
        input_specs={"image": tf_keras.layers.InputSpec(shape=shape)},
        activation=config.classifier_activation,
    )
    model.build([1, 1, config.resolution, config.resolution, 3])
    return model


def state_specs(model: tf_keras.Model, config: ModelConfig) -> dict[str, tf.TensorSpec]:
    """Every state the stream model carries, by official name, sorted."""
    specs = model.initial_state_specs(config.stream_input_shape)
    return {
        name: tf.TensorSpec(specs[name].shape, specs[name].dtype, name=name) for name in sorted(specs)
    }


def init_states(model: tf_keras.Model, config: ModelConfig) -> dict[str, tf.Tensor]:
    return {k: tf.zeros(s.shape, s.dtype) for k, s in state_specs(model, config).items()}


def checkpoint_num_classes(prefix: str) -> int | None:
    """Read the classifier head's width from a checkpoint without building a model.

    Lets a fine-tuned checkpoint with its own classes export without the user
    repeating the class count.
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as exc:
        raise ExportError(f"cannot read checkpoint {prefix}: {_first_line(exc)}") from None
    for key, shape in reader.get_variable_to_shape_map().items():
        if "classifier" in key and key.endswith("bias/.ATTRIBUTES/VARIABLE_VALUE") and len(shape) == 1:
            return int(shape[0])
    return None


def restore(model: tf_keras.Model, prefix: str, what: str) -> None:
    """Restore every variable of ``model`` from ``prefix`` or fail with one line.

    ``assert_existing_objects_matched`` fails when a model variable has no
    value in the checkpoint; a value of the wrong shape (another model id, a
    base checkpoint with 3D kernels) fails during the assignment itself.
    """
    checkpoint = tf.train.Checkpoint(model=model)
    try:
        status = checkpoint.restore(prefix)
        status.assert_existing_objects_matched()
        status.expect_partial()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise ExportError(
            f"checkpoint {prefix} does not fit {what}: {_first_line(exc)} "
            "(is it a stream checkpoint of this model id? base checkpoints cannot stream)"
        ) from None


def copy_weights(source: tf_keras.Model, target: tf_keras.Model) -> None:
    """Copy weights between two models of one architecture, checking every shape."""
    src, dst = source.weights, target.weights
    if len(src) != len(dst):
        raise ExportError(f"internal: models differ ({len(src)} vs {len(dst)} weights)")
    for a, b in zip(src, dst):
        if a.shape != b.shape:
            raise ExportError(f"internal: weight {a.name} {a.shape} does not fit {b.name} {b.shape}")
        b.assign(a)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
