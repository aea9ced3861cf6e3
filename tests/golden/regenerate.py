#!/usr/bin/env python3
"""Regenerate the golden model the edge tests run on, and its expected result on a real clip.

Run from the export environment (it needs TensorFlow)::

    python tests/golden/regenerate.py              # rewrites tests/golden/tiny_a0_int8/ and its top-5
    python tests/golden/regenerate.py --output DIR --expected FILE   # elsewhere (the export test does)

Why a committed model: the device runtime never imports TensorFlow, so its
tests must run where TensorFlow is not installed (``pip install . pytest``),
and in seconds rather than after minutes of exporting. The model is still one
our own exporter wrote: a randomly initialised MoViNet-A0 stream checkpoint
(fixed seed) in the official layout, exported by ``movinet_export``'s
``Exporter`` to our selective int8 recipe, calibrated and parity-checked on
the shared real clips. It is small on purpose: few classes (the head is most
of A0's weights: 8 classes make it 3 MB) and a low resolution (64 px: a
step takes about 2 ms on one x86 core), with A0's 43 states at their real
names, kinds and dtypes. Regenerating takes a few minutes and is
deterministic: two runs wrote byte-identical model.tflite files.

Its predictions mean nothing (random weights), but they are fixed:
``expected_top5.json`` is what the edge runtime computes for carving_ice.mp4,
and tests/edge/test_golden_clip.py checks that every later runtime still
computes it. tests/export/test_golden.py runs this script into a temporary
folder and checks the exporter still writes an equivalent model.

The exporter runs in a scratch folder with the inputs named relative to it
(``checkpoint``, ``labels.txt``, ``clips/...``), so the manifest records those
names rather than the paths of the machine that made it (the resolved
checkpoint prefix and the package versions aside).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODEL_DIR = HERE / "tiny_a0_int8"
EXPECTED = HERE / "expected_top5.json"

MODEL_ID = "a0"
RESOLUTION = 64
SEED = 0
LABELS = [f"action {i}" for i in range(8)]
PRECISION = "int8"
CALIBRATION_FRAMES = 48  # per calibration stream: the shared clips, the short ones joined
PARITY_CLIP = "carving_ice.mp4"
GOLDEN_CLIP = "carving_ice.mp4"
TOP_K = 5
# How far a later runtime's scores may move before the golden result fails (probabilities):
# one quantization step of the int8 logits (~0.01) moves a score near 0.2 by ~0.002.
SCORE_TOLERANCE = 2e-3


def default_data() -> Path:
    return Path(os.environ.get("MOVINET_TEST_DATA", REPO.parent / "shared" / "data"))


def export_golden(output: Path, data: Path, progress: bool = False) -> None:
    """A random-init A0 checkpoint (seed ``SEED``), exported to ``output`` by our exporter."""
    from movinet_export.exporter import ExportOptions, Exporter
    from movinet_export.random_checkpoint import save_random_checkpoint

    output = output.resolve()
    with tempfile.TemporaryDirectory(prefix="golden-") as scratch:
        work = Path(scratch)
        (work / "clips").symlink_to((data / "clips").resolve(), target_is_directory=True)
        (work / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
        save_random_checkpoint(work / "checkpoint", MODEL_ID, RESOLUTION, seed=SEED, num_classes=len(LABELS))
        cwd = Path.cwd()
        os.chdir(work)  # relative inputs: the manifest records "checkpoint" and "clips/...", not /tmp/...
        try:
            options = ExportOptions(
                model_id=MODEL_ID,
                checkpoint="checkpoint",
                labels="labels.txt",
                resolution=RESOLUTION,
                cache_dir=work / "cache",
                parity_video=Path("clips") / PARITY_CLIP,
                calibration_videos=["clips"],
                calibration_frames=CALIBRATION_FRAMES,
                progress=progress,
            )
            with Exporter(options) as exporter:
                exporter.export(PRECISION, output, force=True)
        finally:
            os.chdir(cwd)


def golden_result(model_dir: Path, clip: Path) -> dict[str, Any]:
    """What the edge runtime gives for ``clip`` after the whole clip: the top-5 labels and scores,
    and every class's probability (near ties in the top-5 may swap; the probabilities say which)."""
    from movinet_edge.model import StreamingClassifier
    from movinet_edge.pipeline import classify_clip

    classifier = StreamingClassifier.open(model_dir, num_threads=1)
    result = classify_clip(clip, classifier, top_k=TOP_K)
    return {
        "clip": clip.name,
        "steps": result.steps,
        "top_k": [{"label": label, "score": round(float(score), 6)} for label, score in result.top_k],
        "probabilities": {label: round(float(p), 6) for label, p in zip(result.labels, result.final)},
        "score_tolerance": SCORE_TOLERANCE,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=MODEL_DIR, help=f"model folder (default: {MODEL_DIR})")
    parser.add_argument("--expected", type=Path, default=EXPECTED, help=f"top-5 JSON (default: {EXPECTED})")
    parser.add_argument("--data", type=Path, default=default_data(),
                        help="the shared test data (default: $MOVINET_TEST_DATA or ../shared/data)")
    parser.add_argument("--quiet", action="store_true", help="no exporter stage lines")
    args = parser.parse_args(argv)
    if not (args.data / "clips" / GOLDEN_CLIP).is_file():
        print(f"error: {args.data / 'clips' / GOLDEN_CLIP} not found; pass --data with the shared test data folder",
              file=sys.stderr)
        return 2
    from movinet_export.native_logs import converter_logs_silenced

    with converter_logs_silenced():
        export_golden(args.output, args.data, progress=not args.quiet)
    expected = golden_result(args.output, args.data / "clips" / GOLDEN_CLIP)
    args.expected.parent.mkdir(parents=True, exist_ok=True)
    args.expected.write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.3f} MB" for p in sorted(args.output.iterdir()))
    print(f"wrote {args.output} ({sizes}) and {args.expected}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
