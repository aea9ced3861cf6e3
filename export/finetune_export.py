"""A fine-tuned checkpoint -> streaming TFLite, directly or as ``movinet-export`` command lines.

Both routes must give the same model: the resolution and resize policy the
model was trained with (the manifest tells the device how to square frames),
int8 calibrated on the training videos, parity measured on a test video. The
fine-tune folder's metrics.json holds all of it, so the commands can be made
again from the folder alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from movinet_edge.manifest import LABELS_NAME
from movinet_edge.preprocess import ResizePolicy

from .errors import ExportError
from .finetune import DEFAULT_PRECISIONS, METRICS_NAME, FinetuneOptions, FinetuneResult
from .options import ExportOptions, default_output
from .video_dataset import VideoItem
from .zoo import lookup

CALIBRATION_VIDEOS = 32  # class-balanced sample of training videos for int8


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
        command += ["--output", str(default_output(model_id, precision, base=Path(target or output)))]
        commands.append(command)
    return commands


def export_finetuned(result: FinetuneResult, options: FinetuneOptions,
                     precisions: tuple[str, ...] = DEFAULT_PRECISIONS) -> dict[str, Path]:
    """Export the fine-tuned checkpoint to streaming TFLite, one folder per precision.

    Parity runs on a test video of the user's (stream vs clip model vs TFLite);
    int8 calibrates on a class-balanced sample of the training videos.
    """
    from .exporter import Exporter  # its build imports TensorFlow

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
            target = default_output(entry.model_id, precision, base=result.output)
            try:
                exporter.export(precision, target, force=True)
            except ExportError as exc:
                raise ExportError(
                    f"the fine-tuned checkpoint is saved in {result.output}, but the {precision} export failed: {exc}"
                ) from None
            out[precision] = target
    result.exported.update(out)
    return out
