"""The export pipeline as a library: weights -> streaming model -> TFLite dir.

``Exporter`` does the expensive part once (resolve weights, build and restore
the Keras models, save the streaming SavedModel) and can then write any number
of precisions, which the CLI does once and tests and benchmarks do several
times. Stages report progress on stderr.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from movinet_edge.manifest import (
    LABELS_NAME,
    MANIFEST_NAME,
    MODEL_NAME,
    Manifest,
    Quantization,
    StateInfo,
    TensorInfo,
    read_labels,
    state_kind,
    write_json_atomic,
)

from .errors import ExportError
from .zoo import ZOO, ZooEntry, lookup

DEFAULT_MODELS_DIR = Path("models")
# Frames of the calibration streams the int8 plan is measured on: every candidate
# model runs them all (A0 at 172 px: ~2 s a candidate on 2 cores).
EVALUATION_FRAMES = 320


def default_output(model_id: str, precision: str, base: Path = DEFAULT_MODELS_DIR) -> Path:
    """models/<id>_stream_<precision>/, where movinet-edge looks by default."""
    return base / f"{model_id}_stream_{precision}"


@dataclass
class ExportOptions:
    model_id: str = "a0"
    checkpoint: str | None = None  # path, directory, prefix, .tar.gz or URL
    saved_model: Path | None = None
    labels: str | None = None  # path or URL
    resolution: int | None = None
    num_classes: int | None = None  # default: from the checkpoint's head
    cache_dir: Path | None = None
    parity_video: Path | None = None
    parity_frames: int = 50
    calibration_videos: list[str] = field(default_factory=list)
    calibration_frames: int = 0  # 0: the recipe's default
    input_dtype: str = "float32"
    int8_recipe: str = "selective"
    int8_tolerance: float | None = None  # selective: accepted relative logit error (None: int8_plan's default)
    # How frames are made square (crop, pad, stretch): recorded in the manifest for
    # the device, and used for the parity and calibration clips. A fine-tuned model
    # keeps the policy it was trained with.
    resize_policy: str = "crop"
    progress: bool = True


class Stages:
    """Numbered stage lines on stderr with elapsed time."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        if self.enabled:
            print(f"[{time.monotonic() - self.started:6.1f}s] {text}", file=sys.stderr, flush=True)


def package_versions() -> dict[str, str]:
    names = ["movinet-edge", "tensorflow", "tf-keras", "tf-models-official", "ai-edge-litert", "numpy"]
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


class Exporter:
    """Build once, write several precisions."""

    def __init__(self, options: ExportOptions) -> None:
        self.options = options
        self.log = Stages(options.progress)
        self.entry: ZooEntry = lookup(options.model_id)
        from .download import default_cache_dir

        self.cache_dir = Path(options.cache_dir) if options.cache_dir else default_cache_dir()
        self._workdir = tempfile.TemporaryDirectory(prefix="movinet-export-")
        self.savedmodel = Path(self._workdir.name) / "savedmodel"
        self.source: dict[str, Any] = {}
        self.labels: list[str] = []
        self._prepared = False
        self._calibrated: bytes | None = None
        self._calibration_streams: list[np.ndarray] = []
        self.calibration_summary: dict[str, Any] = {}

    def close(self) -> None:
        self._workdir.cleanup()

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- preparation ------------------------------------------------------
    def prepare(self) -> None:
        """Resolve weights and labels, build the models, save the streaming SavedModel."""
        if self._prepared:
            return
        if self.options.saved_model is not None and self.options.checkpoint is not None:
            raise ExportError("pass either --checkpoint or --saved-model, not both")
        import tensorflow as tf  # noqa: F401 - heavy import, after cheap validation

        if self.options.saved_model is not None:
            self._prepare_from_savedmodel(Path(self.options.saved_model))
        else:
            self._prepare_from_checkpoint()
        self._prepared = True

    def _load_labels(self) -> None:
        """Read the labels as soon as the class count is known: a wrong file fails before the build."""
        self.labels = self._resolve_labels()
        if len(self.labels) != self.num_classes:
            raise ExportError(
                f"labels have {len(self.labels)} entries but the model has {self.num_classes} classes; "
                "pass --labels with one label per class"
            )

    def _prepare_from_checkpoint(self) -> None:
        from .build import ModelConfig, build_clip_model, build_stream_model, checkpoint_num_classes, copy_weights
        from .build import init_states, restore, state_specs
        from .checkpoints import resolve_checkpoint

        spec = self.options.checkpoint
        sha = None
        if spec is None:
            spec = checkpoint_url(self.entry)
            sha = self.entry.checkpoint_sha256
            self.log(f"no --checkpoint: using the official {self.entry.model_id} stream checkpoint {spec}")
        self.log(f"resolving weights {spec}")
        ref = resolve_checkpoint(spec, self.cache_dir, progress=self.options.progress, sha256=sha)
        self.source = {"kind": "checkpoint", "location": spec, "prefix": ref.prefix, "sha256": ref.sha256}
        num_classes = self.options.num_classes or checkpoint_num_classes(ref.prefix) or self.entry.num_classes
        self.config = ModelConfig.from_zoo(self.entry, self.options.resolution, num_classes)
        self.num_classes = num_classes
        self.resolution = self.config.resolution
        self._load_labels()
        self.log(f"building streaming {self.config.model_id} at {self.resolution} px, {num_classes} classes")
        import tensorflow as tf

        self.stream_model = build_stream_model(self.config)
        restore(self.stream_model, ref.prefix, f"MoViNet-{self.config.model_id.upper()} stream")
        self.log("building the clip model for parity and copying weights")
        self.clip_model = build_clip_model(self.config)
        copy_weights(self.stream_model, self.clip_model)
        specs = state_specs(self.stream_model, self.config)
        image = tf.TensorSpec(self.config.stream_input_shape, tf.float32, name="image")
        self.log("saving the streaming SavedModel")
        from .convert import SIGNATURE_KEY, save_stream_savedmodel

        save_stream_savedmodel(self.stream_model, specs, image, self.savedmodel)
        self.signature_key = SIGNATURE_KEY
        self.initial_states = init_states(self.stream_model, self.config)
        model = self.stream_model

        @tf.function(input_signature=[{**specs, "image": image}])
        def step(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            logits, states = model(inputs, training=False)
            return {**states, "logits": logits}

        self.tf_step = step
        self.arch = {k: getattr(self.config, k) for k in (
            "conv_type", "se_type", "activation", "gating_activation", "classifier_activation",
            "use_positional_encoding")}

    def _prepare_from_savedmodel(self, path: Path) -> None:
        import tensorflow as tf

        from .convert import SIGNATURE_KEY, inspect_savedmodel, save_signature_savedmodel

        if not path.is_dir():
            raise ExportError(f"SavedModel {path} is not a directory")
        self.log(f"loading SavedModel {path}")
        key, inputs, outputs, loaded = inspect_savedmodel(path)
        image = inputs["image"]
        shape = image.shape.as_list()
        if None in shape or shape[0] != 1 or shape[1] != 1:
            raise ExportError(
                f"SavedModel {path} takes image of shape {shape}; export it for TFLite with batch 1, 1 frame "
                "and a fixed resolution (export_saved_model.py --batch_size=1 --num_frames=1 --image_size=N)"
            )
        if any(None in spec.shape.as_list() for spec in inputs.values()):
            raise ExportError(f"SavedModel {path} has state inputs of unknown shape; export it with fixed shapes")
        self.resolution = int(shape[2])
        if self.options.resolution and self.options.resolution != self.resolution:
            raise ExportError(f"--resolution {self.options.resolution} differs from the SavedModel's {self.resolution}")
        self._warn_if_another_model(path)
        self.num_classes = int(outputs["logits"].shape[-1])
        self._load_labels()
        self.config = None
        self.clip_model = None
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.relative_to(path).as_posix().encode())
            digest.update(file.read_bytes())
        self.source = {"kind": "saved_model", "location": str(path), "sha256": digest.hexdigest()}
        fn = loaded.signatures[key]
        self._loaded = loaded  # keep the variables alive
        self.log(f"saving its streaming signature ({key}) as a light SavedModel")
        save_signature_savedmodel(fn, inputs, self.savedmodel)
        self.signature_key = SIGNATURE_KEY
        self.initial_states = {
            name: tf.zeros(spec.shape, spec.dtype) for name, spec in inputs.items() if name != "image"
        }
        self.tf_step = lambda feed: fn(**feed)
        self.arch = {"source": "saved_model"}

    def _warn_if_another_model(self, path: Path) -> None:
        """A SavedModel does not say which model id it is; its resolution may, and the fps follows from it.

        The manifest's fps (the rate the device feeds frames at) comes from
        ``--model``; converting an A5 SavedModel under the default a0 would make
        the device feed 5 frames a second to a model trained on 12.
        """
        if self.resolution == self.entry.resolution:
            return
        others = [e.model_id for e in ZOO.values() if e.resolution == self.resolution]
        if others:
            print(
                f"warning: SavedModel {path} takes {self.resolution} px images, the resolution of "
                f"{' and '.join(others)}, but --model is {self.entry.model_id}: its fps ({self.entry.fps:g}) goes "
                f"into the manifest; pass --model {others[0]} if it is that model",
                file=sys.stderr,
            )

    def _resolve_labels(self) -> list[str]:
        spec = self.options.labels
        if spec is None:
            if self.num_classes != 600:
                raise ExportError(f"the model has {self.num_classes} classes; pass --labels FILE with one label a line")
            spec = labels_url(self.entry)
            self.log(f"no --labels: using the Kinetics-600 labels {spec}")
        if "://" in spec:
            from .download import fetch

            path = fetch(spec, self.cache_dir, progress=self.options.progress)
        else:
            path = Path(spec)
            if not path.is_file():
                raise ExportError(f"labels file {path} does not exist")
        labels = read_labels(path)
        if any(not label for label in labels):
            raise ExportError(f"labels file {spec} has empty lines inside it")
        return labels

    def check_inputs(self, precision: str) -> None:
        """Fail on a missing parity or calibration video before minutes of building and converting."""
        video = self.options.parity_video
        if video is not None and not Path(video).is_file():
            raise ExportError(f"parity video {video} does not exist; pass a video file to --parity-video")
        if precision == "int8" and self.options.calibration_videos:
            from .calibration import expand_videos

            expand_videos(self.options.calibration_videos)

    # ---- writing -----------------------------------------------------------
    def export(self, precision: str, output: Path | None = None, force: bool = False) -> Manifest:
        """Convert to one precision, check parity and write the directory atomically."""
        from .convert import Recipe, convert
        from .output import StagedOutput, check_target

        target = Path(output) if output else default_output(self.entry.model_id, precision)
        check_target(target, force)
        self.check_inputs(precision)
        self.prepare()
        recipe = Recipe(precision=precision)
        if precision == "int8":
            recipe.input_dtype = self.options.input_dtype
            recipe.int8_recipe = self.options.int8_recipe
            recipe.calibrated = self.calibrated_model()
            recipe.streams = self.evaluation_streams()
            recipe.tolerance = self.options.int8_tolerance
            recipe.log = self.log
            recipe.details["calibration"] = self.calibration_summary
        self.log(f"converting to TFLite ({precision})")
        conversion = convert(self.savedmodel, self.signature_key, recipe)
        self.log(f"converted in {conversion.seconds:.1f}s: {len(conversion.tflite) / 1e6:.2f} MB, "
                 f"{sum(conversion.op_counts.values())} ops")
        with StagedOutput(target, force) as staging:
            (staging / MODEL_NAME).write_bytes(conversion.tflite)
            (staging / LABELS_NAME).write_text("\n".join(self.labels) + "\n", encoding="utf-8")
            manifest = self._manifest(staging / MODEL_NAME, precision, conversion)
            self.log("checking parity against TensorFlow")
            report = self.parity(staging / MODEL_NAME, precision)
            manifest.parity = report.to_dict()
            write_json_atomic(staging / MANIFEST_NAME, manifest.to_dict())
            if self.options.progress:
                print(report.summary(), file=sys.stderr)
            if not report.passed:
                raise ExportError(
                    f"parity check failed: TFLite differs from TensorFlow by "
                    f"{report.tflite_vs_tf_max_abs_logit_diff:.3g} (bound {report.tolerance}); nothing was written"
                )
        self.log(f"wrote {target}")
        return manifest

    def _manifest(self, model_path: Path, precision: str, conversion: Any) -> Manifest:
        from movinet_edge.model import StreamingClassifier

        from movinet_edge.delegation import delegate_coverage

        clf = StreamingClassifier(model_path, num_threads=1)
        ins, outs = clf.input_details, clf.output_details
        coverage = delegate_coverage(clf.interpreter)
        self.log(coverage.summary())

        def tensor_info(name: str, detail: dict[str, Any]) -> TensorInfo:
            q = _quant(detail)
            return TensorInfo(name=name, shape=[int(x) for x in detail["shape"]],
                              dtype=np.dtype(detail["dtype"]).name, quantization=q)

        states = [
            StateInfo(
                name=s.name,
                shape=list(s.shape),
                dtype=s.dtype.name,
                kind=state_kind(s.name),
                input_quantization=_quant(ins[s.name]),
                output_quantization=_quant(outs[s.name]),
            )
            for s in clf.states
        ]
        return Manifest(
            model_id=self.entry.model_id,
            resolution=self.resolution,
            fps=self.entry.fps,
            num_classes=self.num_classes,
            precision=precision,
            signature_key=clf.signature_key,
            image=tensor_info("image", ins["image"]),
            logits=tensor_info("logits", outs["logits"]),
            states=states,
            resize_policy=self.options.resize_policy,
            source=self.source,
            versions=package_versions(),
            quantization=conversion.details.get("quantization"),
            conversion={
                "seconds": conversion.seconds,
                "bytes": len(conversion.tflite),
                "op_counts": conversion.op_counts,
                "architecture": self.arch,
                "delegate": coverage.to_dict(),
                **{k: v for k, v in conversion.details.items() if k != "quantization"},
            },
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )

    def calibrated_model(self) -> bytes:
        """Calibrate once per exporter (every int8 recipe reuses it)."""
        if self._calibrated is None:
            from .calibration import calibration_streams, stream_dataset
            from .quantize import calibrate

            self.prepare()
            streams = calibration_streams(self, self.options.calibration_videos, self.options.calibration_frames)
            self._calibration_streams = streams
            self.calibration_summary = {
                "videos": [str(v) for v in self.options.calibration_videos] or "synthetic",
                "streams": len(streams),
                "frames": int(sum(len(s) for s in streams)),
                "frames_per_stream": [int(len(s)) for s in streams],
            }
            self.log(f"calibrating on {len(streams)} streams, {self.calibration_summary['frames']} frames, states carried")
            self._calibrated = calibrate(self.savedmodel, self.signature_key,
                                         lambda: stream_dataset(self, streams, self.options.progress))
        return self._calibrated

    def evaluation_streams(self) -> list[np.ndarray]:
        """What the int8 plan is measured on: the calibration streams back to back, one long stream.

        One stream, never reset, because long histories are where int8 drifts from
        float (the pools average every frame's error); cut to ``EVALUATION_FRAMES``.
        """
        self.calibrated_model()
        return [np.concatenate(self._calibration_streams)[:EVALUATION_FRAMES]]

    # ---- parity --------------------------------------------------------------
    def parity_frames(self) -> tuple[str, np.ndarray]:
        """Frames of the parity clip, sampled at the model fps, square uint8."""
        from movinet_edge.clip import load_clip
        from movinet_edge.preprocess import ResizePolicy

        video = self.options.parity_video
        if video is None:
            from .synthetic import synthetic_clip

            return "synthetic-motion", synthetic_clip(self.resolution, frames=min(self.options.parity_frames, 24))
        try:
            frames = load_clip(video, self.entry.fps, self.resolution, max_frames=self.options.parity_frames,
                               policy=ResizePolicy(self.options.resize_policy))
        except Exception as exc:  # EdgeError from the edge reader: same one line
            raise ExportError(f"parity video: {exc}") from None
        return str(video), frames

    def parity(self, model_path: Path, precision: str) -> Any:
        from .parity import TFStreamRunner, compare, tflite_logits

        name, frames = self.parity_frames()
        tf_logits = TFStreamRunner(self.tf_step, self.initial_states).run(frames)
        lite = tflite_logits(model_path, frames)
        clip_logits = None
        if self.clip_model is not None:
            import tensorflow as tf

            clip_logits = self.clip_model(tf.constant(frames[None].astype(np.float32) / 255.0), training=False).numpy()
        return compare(name, precision, tf_logits, lite, clip_logits)


def _quant(detail: dict[str, Any]) -> Quantization | None:
    if np.dtype(detail["dtype"]).kind not in "iu" or np.dtype(detail["dtype"]) == np.int32:
        return None
    params = detail.get("quantization_parameters") or {}
    scales = params.get("scales")
    if scales is None or len(scales) == 0:
        return None
    return Quantization(float(scales[0]), int(params["zero_points"][0]))


def checkpoint_url(entry: ZooEntry) -> str:
    """The official tarball, or the same name under $MOVINET_WEIGHTS_URL (a mirror)."""
    base = os.environ.get("MOVINET_WEIGHTS_URL")
    if base:
        return f"{base.rstrip('/')}/movinet_{entry.model_id}_stream.tar.gz"
    return entry.checkpoint_url


def labels_url(entry: ZooEntry) -> str:
    return os.environ.get("MOVINET_LABELS_URL") or entry.labels_url


__all__ = ["ExportOptions", "Exporter", "default_output", "ZOO"]
