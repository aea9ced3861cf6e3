"""The export pipeline as a library: weights -> streaming model -> TFLite dir.

``Exporter`` does the expensive part once (resolve weights, build and restore
the Keras models, save the streaming SavedModel) and can then write any number
of precisions, which the CLI does once and tests and benchmarks do several
times. Stages report progress on stderr.

Order matters for the user: every check that needs no TensorFlow (the options,
the output folder, the input files, the labels, the weights on disk or in the
cache) runs before TensorFlow loads, so a wrong value is refused in a second
instead of after ~6 s of import or minutes of build and calibration.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from movinet_edge.files import write_json_atomic
from movinet_edge.manifest import LABELS_NAME, MANIFEST_NAME, MODEL_NAME, Manifest

from .errors import ExportError
from .labels import Labels, check_label_count, load_labels
from .options import ExportOptions, check_options, default_output
from .stages import Stages
from .streaming_model import StreamingModel, from_checkpoint, from_savedmodel
from .zoo import ZooEntry, lookup

# Frames of the calibration streams the int8 plan is measured on: every candidate
# model runs them all (A0 at 172 px: ~2 s a candidate on 2 cores).
EVALUATION_FRAMES = 320


# Top-level modules of the [export] extra (tensorflow, tf-keras, tf-models-official).
EXPORT_EXTRA_MODULES = ("tensorflow", "tf_keras", "official")


def require_export_extra() -> None:
    """ModuleNotFoundError (the CLI says what to install) when the [export] extra is missing.

    Found without importing anything: a device install (no TensorFlow) learns it at once,
    not after downloading a checkpoint it cannot use.
    """
    for name in EXPORT_EXTRA_MODULES:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


class Exporter:
    """Build once, write several precisions."""

    def __init__(self, options: ExportOptions) -> None:
        self.options = options
        self.log = Stages(options.progress)
        self.entry: ZooEntry = lookup(options.model_id)
        from .download import default_cache_dir

        self.cache_dir = Path(options.cache_dir) if options.cache_dir else default_cache_dir()
        self._workdir = tempfile.TemporaryDirectory(prefix="movinet-export-")
        self._model: StreamingModel | None = None
        self._labels: Labels | None = None
        self._calibrated: bytes | None = None
        self._calibration_streams: list[np.ndarray] = []
        self.calibration_summary: dict[str, Any] = {}

    def close(self) -> None:
        self._workdir.cleanup()

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model(self) -> StreamingModel:
        """The streaming model (built on first use): its TF step, initial states and clip model."""
        self.prepare()
        assert self._model is not None
        return self._model

    @property
    def labels(self) -> list[str]:
        return self._read_labels().names

    # ---- preparation ------------------------------------------------------
    def prepare(self) -> None:
        """Resolve weights and labels (no TensorFlow yet), then build the models and save the SavedModel."""
        if self._model is not None:
            return
        require_export_extra()  # before a download that a device install could not use anyway
        opts = self.options
        weights = None if opts.saved_model is not None else self._resolve_weights()
        labels = self._read_labels()
        self.log("loading TensorFlow")
        import tensorflow  # noqa: F401 - ~6 s: announced, and only after every cheap check

        savedmodel = Path(self._workdir.name) / "savedmodel"

        def check_classes(num_classes: int) -> None:  # before minutes of building
            check_label_count(labels, num_classes)

        if opts.saved_model is not None:
            self._model = from_savedmodel(Path(opts.saved_model), self.entry, opts.resolution, savedmodel,
                                          check_classes, self.log)
        else:
            assert weights is not None
            prefix, source = weights
            self._model = from_checkpoint(prefix, source, self.entry, opts.resolution, opts.num_classes,
                                          savedmodel, check_classes, self.log)

    def _read_labels(self) -> Labels:
        """Read once: a file as soon as the inputs are checked, a URL (or the packaged ones) at prepare()."""
        if self._labels is None:
            self._labels = load_labels(self.options.labels, self.cache_dir, self.options.progress, self.log)
        return self._labels

    def _resolve_weights(self) -> tuple[str, dict[str, Any]]:
        """The checkpoint prefix on disk (downloaded and extracted when it is a URL), and its record."""
        from .checkpoints import resolve_checkpoint

        spec, sha = self.options.checkpoint, None
        if spec is None:
            spec, sha = self.entry.official_checkpoint(), self.entry.checkpoint_sha256
            self.log(f"no --checkpoint: using the official {self.entry.model_id} stream checkpoint {spec}")
        self.log(f"resolving weights {spec}")
        ref = resolve_checkpoint(spec, self.cache_dir, progress=self.options.progress, sha256=sha)
        return ref.prefix, {"location": spec, "prefix": ref.prefix, "sha256": ref.sha256}

    def check_inputs(self, precision: str) -> None:
        """Fail on a missing input file before minutes of building and converting."""
        opts = self.options
        video = opts.parity_video
        if video is not None and not Path(video).is_file():
            raise ExportError(f"parity video {video} does not exist; pass a video file to --parity-video")
        if opts.saved_model is not None and not Path(opts.saved_model).is_dir():
            raise ExportError(f"SavedModel {opts.saved_model} is not a directory")
        if precision == "int8" and opts.calibration_videos:
            from .calibration import expand_videos

            expand_videos(opts.calibration_videos)
        if opts.labels is not None and "://" not in opts.labels:
            self._read_labels()  # a file: now (a download waits until the weights are resolved)

    # ---- writing -----------------------------------------------------------
    def export(self, precision: str, output: Path | None = None, force: bool = False) -> Manifest:
        """Convert to one precision, check parity and write the directory atomically."""
        from .output import StagedOutput, check_target

        opts = self.options
        target = Path(output) if output else default_output(self.entry.model_id, precision, opts.int8_recipe)
        check_options(opts, precision)
        check_target(target, force)
        self.check_inputs(precision)
        model = self.model
        from .convert import Recipe, convert

        recipe = Recipe(precision=precision)
        if precision == "int8":
            recipe.input_dtype = opts.input_dtype
            recipe.int8_recipe = opts.int8_recipe
            recipe.calibrated = self.calibrated_model()
            recipe.streams = self.evaluation_streams()
            recipe.tolerance = opts.int8_tolerance
            recipe.log = self.log
            recipe.details["calibration"] = self.calibration_summary
        self.log(f"converting to TFLite ({precision})")
        conversion = convert(model.savedmodel, model.signature_key, recipe)
        self.log(f"converted in {conversion.seconds:.1f}s: {len(conversion.tflite) / 1e6:.2f} MB, "
                 f"{sum(conversion.op_counts.values())} ops")
        from .export_manifest import build_manifest

        with StagedOutput(target, force) as staging:
            (staging / MODEL_NAME).write_bytes(conversion.tflite)
            (staging / LABELS_NAME).write_text("\n".join(self.labels) + "\n", encoding="utf-8")
            manifest = build_manifest(staging / MODEL_NAME, self.entry, model, precision, conversion,
                                      opts.resize_policy, self.log)
            self.log("checking parity against TensorFlow")
            report = self.parity(staging / MODEL_NAME, precision)
            manifest.parity = report.to_dict()
            write_json_atomic(staging / MANIFEST_NAME, manifest.to_dict())
            if opts.progress:
                print(report.summary(), file=sys.stderr)
            if not report.passed:
                raise ExportError(
                    f"parity check failed: TFLite differs from TensorFlow by "
                    f"{report.tflite_vs_tf_max_abs_logit_diff:.3g} (bound {report.tolerance}); nothing was written"
                )
        self.log(f"wrote {target}")
        return manifest

    # ---- int8 --------------------------------------------------------------
    def calibrated_model(self) -> bytes:
        """Calibrate once per exporter (every int8 recipe reuses it)."""
        if self._calibrated is None:
            from .calibration import calibration_streams, stream_dataset
            from .quantize import calibrate

            model, opts = self.model, self.options
            streams = calibration_streams(opts.calibration_videos, opts.calibration_frames, fps=self.entry.fps,
                                          resolution=model.resolution, resize_policy=opts.resize_policy)
            self._calibration_streams = streams
            self.calibration_summary = {
                "videos": [str(v) for v in opts.calibration_videos] or "synthetic",
                "streams": len(streams),
                "frames": int(sum(len(s) for s in streams)),
                "frames_per_stream": [int(len(s)) for s in streams],
            }
            self.log(f"calibrating on {len(streams)} streams, {self.calibration_summary['frames']} frames, "
                     "states carried")
            self._calibrated = calibrate(model.savedmodel, model.signature_key,
                                         lambda: stream_dataset(model.step, model.initial_states, streams,
                                                                opts.progress))
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

        video, resolution = self.options.parity_video, self.model.resolution
        if video is None:
            from .synthetic import synthetic_clip

            return "synthetic-motion", synthetic_clip(resolution, frames=min(self.options.parity_frames, 24))
        try:
            frames = load_clip(video, self.entry.fps, resolution, max_frames=self.options.parity_frames,
                               policy=ResizePolicy(self.options.resize_policy))
        except Exception as exc:  # EdgeError from the edge reader: same one line
            raise ExportError(f"parity video: {exc}") from None
        return str(video), frames

    def parity(self, model_path: Path, precision: str) -> Any:
        from .parity import TFStreamRunner, compare, tflite_logits

        model = self.model
        name, frames = self.parity_frames()
        tf_logits = TFStreamRunner(model.step, model.initial_states).run(frames)
        lite = tflite_logits(model_path, frames)
        clip_logits = None
        if model.clip_model is not None:
            import tensorflow as tf

            clip_logits = model.clip_model(tf.constant(frames[None].astype(np.float32) / 255.0),
                                           training=False).numpy()
        return compare(name, precision, tf_logits, lite, clip_logits)


__all__ = ["ExportOptions", "Exporter", "default_output"]
