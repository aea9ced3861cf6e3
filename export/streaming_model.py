"""Weights -> the streaming model that every precision is converted from.

Two routes end in the same :class:`StreamingModel`: a checkpoint (built and
restored here, with the clip model beside it for the parity check) or a
streaming SavedModel (its signature re-saved light). What comes out is plain
values: the light SavedModel the converter reads, the float TF step the
calibration and the parity check run, the states a stream starts from, and
what the manifest records about the source. Both routes import TensorFlow;
the exporter calls them only after every cheap check has passed.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ExportError
from .zoo import ZOO, ZooEntry

# Called with the model's class count as soon as it is known, before the slow build:
# the exporter checks its labels there.
ClassCheck = Callable[[int], None]
Log = Callable[[str], None]


@dataclass
class StreamingModel:
    savedmodel: Path  # light SavedModel with one signature: image + states -> logits + states
    signature_key: str
    resolution: int
    num_classes: int
    step: Callable[[dict[str, Any]], dict[str, Any]]  # the float TF streaming step (tensors)
    initial_states: dict[str, Any]  # the states a stream starts from (tensors)
    clip_model: Any | None  # the same network over a whole clip (checkpoint route only)
    source: dict[str, Any]  # for the manifest: kind, location, sha256
    arch: dict[str, Any]  # for the manifest: the architecture settings
    keep: list[Any] = field(default_factory=list)  # objects whose variables the step uses


def from_checkpoint(prefix: str, source: dict[str, Any], entry: ZooEntry, resolution: int | None,
                    num_classes: int | None, savedmodel: Path, check_classes: ClassCheck,
                    log: Log) -> StreamingModel:
    """Build the streaming model of ``entry`` and restore ``prefix`` into it (every variable must match)."""
    import tensorflow as tf

    from .build import ModelConfig, build_clip_model, build_stream_model, checkpoint_num_classes, copy_weights
    from .build import init_states, restore, state_specs
    from .convert import SIGNATURE_KEY, save_stream_savedmodel

    num_classes = num_classes or checkpoint_num_classes(prefix) or entry.num_classes
    config = ModelConfig.from_zoo(entry, resolution, num_classes)
    check_classes(num_classes)
    log(f"building streaming {config.model_id} at {config.resolution} px, {num_classes} classes")
    stream_model = build_stream_model(config)
    restore(stream_model, prefix, f"MoViNet-{config.model_id.upper()} stream")
    log("building the clip model for parity and copying weights")
    clip_model = build_clip_model(config)
    copy_weights(stream_model, clip_model)
    specs = state_specs(stream_model, config)
    image = tf.TensorSpec(config.stream_input_shape, tf.float32, name="image")
    log("saving the streaming SavedModel")
    save_stream_savedmodel(stream_model, specs, image, savedmodel)

    @tf.function(input_signature=[{**specs, "image": image}])
    def step(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        logits, states = stream_model(inputs, training=False)
        return {**states, "logits": logits}

    return StreamingModel(
        savedmodel=savedmodel,
        signature_key=SIGNATURE_KEY,
        resolution=config.resolution,
        num_classes=num_classes,
        step=step,
        initial_states=init_states(stream_model, config),
        clip_model=clip_model,
        source={"kind": "checkpoint", **source},
        arch={k: getattr(config, k) for k in ("conv_type", "se_type", "activation", "gating_activation",
                                              "classifier_activation", "use_positional_encoding")},
        keep=[stream_model],
    )


def from_savedmodel(path: Path, entry: ZooEntry, resolution: int | None, savedmodel: Path,
                    check_classes: ClassCheck, log: Log) -> StreamingModel:
    """Read a streaming SavedModel (image + states in, logits + states out) and re-save its signature light."""
    import tensorflow as tf

    from .convert import SIGNATURE_KEY, inspect_savedmodel, save_signature_savedmodel

    log(f"loading SavedModel {path}")
    key, inputs, outputs, loaded = inspect_savedmodel(path)
    shape = inputs["image"].shape.as_list()
    if None in shape or shape[0] != 1 or shape[1] != 1:
        raise ExportError(
            f"SavedModel {path} takes image of shape {shape}; export it for TFLite with batch 1, 1 frame "
            "and a fixed resolution (export_saved_model.py --batch_size=1 --num_frames=1 --image_size=N)"
        )
    if any(None in spec.shape.as_list() for spec in inputs.values()):
        raise ExportError(f"SavedModel {path} has state inputs of unknown shape; export it with fixed shapes")
    size = int(shape[2])
    if resolution and resolution != size:
        raise ExportError(f"--resolution {resolution} differs from the SavedModel's {size}")
    _warn_if_another_model(path, size, entry)
    num_classes = int(outputs["logits"].shape[-1])
    check_classes(num_classes)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file.read_bytes())
    fn = loaded.signatures[key]
    log(f"saving its streaming signature ({key}) as a light SavedModel")
    save_signature_savedmodel(fn, inputs, savedmodel)
    return StreamingModel(
        savedmodel=savedmodel,
        signature_key=SIGNATURE_KEY,
        resolution=size,
        num_classes=num_classes,
        step=lambda feed: fn(**feed),
        initial_states={name: tf.zeros(spec.shape, spec.dtype) for name, spec in inputs.items() if name != "image"},
        clip_model=None,
        source={"kind": "saved_model", "location": str(path), "sha256": digest.hexdigest()},
        arch={"source": "saved_model"},
        keep=[loaded],  # keeps the variables alive
    )


def _warn_if_another_model(path: Path, resolution: int, entry: ZooEntry) -> None:
    """A SavedModel does not say which model id it is; its resolution may, and the fps follows from it.

    The manifest's fps (the rate the device feeds frames at) comes from
    ``--model``; converting an A5 SavedModel under the default a0 would make
    the device feed 5 frames a second to a model trained on 12.
    """
    if resolution == entry.resolution:
        return
    others = [e.model_id for e in ZOO.values() if e.resolution == resolution]
    if others:
        print(
            f"warning: SavedModel {path} takes {resolution} px images, the resolution of "
            f"{' and '.join(others)}, but --model is {entry.model_id}: its fps ({entry.fps:g}) goes "
            f"into the manifest; pass --model {others[0]} if it is that model",
            file=sys.stderr,
        )
