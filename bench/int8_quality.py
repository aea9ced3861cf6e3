#!/usr/bin/env python3
"""int8 quality on a TRAINED model: float32 vs naive int8 vs our selective int8 (issue 3).

Run from the export environment (it trains and exports with TensorFlow)::

    . .venv/bin/activate
    python bench/int8_quality.py              # train (or reuse), export, evaluate, time
    python bench/int8_quality.py --quick      # a short training and fewer clips: proves it works
    python bench/int8_quality.py --checkpoint PREFIX   # evaluate an existing 8-direction A0 checkpoint

What it does, reusing everything under ``--cache`` (default ``bench/.cache``):

1. trains a MoViNet-A0 on the synthetic 8-direction motion task
   (movinet_export.motion_training; cached by its parameters), unless
   ``--checkpoint`` is given;
2. writes calibration videos from the training distribution (lossless FFV1
   .mkv at the model fps, so the exporter reads back exactly these frames;
   several direction changes per video) and exports float32, int8 naive
   (official-tool style) and int8 selective (ours) through the Exporter, one
   calibration shared by both int8 recipes, states carried;
3. evaluates every export with the edge runtime (``StreamingClassifier``):
   held-out clip accuracy (each clip streamed from a reset, last step's
   top-1), clip-level top-1 agreement with float32, per-frame top-1
   agreement with float32 over long streams (held-out clips of changing
   direction back to back, never reset; frames after the first 10), size,
   and ms/frame at 1 thread (``step_logits`` on a uint8 frame: preprocessing,
   invoke, state carry), the models interleaved over several passes.

Prints a markdown table with the issue's targets and writes
``bench/int8_quality.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = REPO / "bench" / ".cache"
DEFAULT_OUT = REPO / "bench" / "int8_quality.json"

VARIANTS = ("float32", "int8_naive", "int8_selective")

# The targets for ours (int8 selective) against float32.
TARGET_ACCURACY_DROP = 0.01
TARGET_CLIP_AGREEMENT = 0.97
TARGET_FRAME_AGREEMENT = 0.98
TARGET_SPEEDUP = 2.0

_START = time.monotonic()


def log(text: str) -> None:
    print(f"[{time.monotonic() - _START:7.1f}s] {text}", file=sys.stderr, flush=True)


# --- 1. the trained model -----------------------------------------------------------------


def training_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"resolution": args.resolution, "stride": args.stride}
    if args.quick:
        params.update(epochs=2, train_clips=256, val_clips=64)
    return params


def ensure_model(args: argparse.Namespace) -> dict[str, Any]:
    from movinet_export.motion_training import DEFAULTS, trained_motion_model

    params = {**DEFAULTS, **training_params(args)}
    if args.checkpoint:
        import tensorflow as tf

        prefix = tf.train.latest_checkpoint(args.checkpoint) if Path(args.checkpoint).is_dir() else args.checkpoint
        labels = args.cache / "labels.txt"
        from movinet_export.synthetic import CLASSES

        labels.write_text("\n".join(CLASSES) + "\n")
        log(f"using the trained checkpoint {prefix}")
        return {"checkpoint": prefix, "labels": str(labels), "params": params, "trained_here": False}
    log(f"training (or reusing) an A0 on 8 motion directions: {training_params(args)}")
    model = trained_motion_model(args.cache / "trained", **training_params(args))
    log(f"model: validation accuracy {model.val_accuracy:.3f}, trained in {model.seconds:.0f}s")
    return {"checkpoint": model.checkpoint, "labels": str(model.labels_file), "params": params,
            "trained_here": True, "val_accuracy": model.val_accuracy, "train_seconds": model.seconds,
            "history": model.history}


# --- 2. calibration videos and exports ---------------------------------------------------------


def ensure_exports(args: argparse.Namespace, model: dict[str, Any], resolution: int | None = None,
                   variants: tuple[str, ...] = VARIANTS) -> tuple[dict[str, Path], dict[str, Any]]:
    """The trained model exported per variant, calibrated on task videos at ``resolution`` (default: trained)."""
    from movinet_export.exporter import Exporter, ExportOptions
    from movinet_export.motion_task import task_videos
    from movinet_export.zoo import lookup

    params = {**model["params"], "resolution": resolution or model["params"]["resolution"]}
    tag = Path(model["checkpoint"]).parent.name + f"_{params['resolution']}px_cal{args.calibration_videos}x{args.calibration_frames}"
    folder = args.cache / "int8_quality" / tag
    dirs = {v: folder / v for v in variants}
    info_file = folder / "exports.json"
    if not args.fresh_export and info_file.is_file() and all((d / "model.tflite").is_file() for d in dirs.values()):
        log(f"reusing the exports in {folder}")
        return dirs, json.loads(info_file.read_text())
    fps = lookup("a0").fps
    videos = task_videos(folder / "calibration", params, args.calibration_videos, args.calibration_frames, fps)
    options = ExportOptions(
        model_id="a0",
        checkpoint=model["checkpoint"],
        labels=model["labels"],
        resolution=params["resolution"],
        cache_dir=args.cache / "downloads",
        calibration_videos=[str(videos)],
        calibration_frames=args.calibration_frames,
        progress=True,
    )
    times: dict[str, float] = {}
    with Exporter(options) as exporter:
        for variant in variants:
            precision, _, recipe = variant.partition("_")
            if recipe:
                exporter.options.int8_recipe = recipe
            log(f"exporting {variant}")
            t0 = time.monotonic()
            exporter.export(precision, dirs[variant], force=True)
            times[variant] = round(time.monotonic() - t0, 1)
        info = {"export_seconds": times, "calibration": exporter.calibration_summary, "resolution": params["resolution"]}
    info_file.write_text(json.dumps(info, indent=2) + "\n")
    return dirs, info


# --- 3. evaluation --------------------------------------------------------------------------------


def time_steps(models: dict[str, Any], frames: np.ndarray, iterations: int, passes: int) -> dict[str, dict[str, float]]:
    """ms per ``step_logits`` at 1 thread; the models take turns so load changes hit all alike."""
    per_pass: dict[str, list[float]] = {name: [] for name in models}
    per_invoke: dict[str, list[float]] = {name: [] for name in models}  # invoke alone (no Python around it)
    for p in range(passes):
        for name, clf in models.items():
            clf.reset()
            for frame in frames[:10]:
                clf.step_logits(frame)
            times = []
            for i in range(iterations):
                t0 = time.perf_counter()
                clf.step_logits(frames[i % len(frames)])
                times.append((time.perf_counter() - t0) * 1000.0)
            per_pass[name].append(statistics.median(times))
            invokes = []
            for _ in range(iterations // 2):
                t0 = time.perf_counter()
                clf.interpreter.invoke()
                invokes.append((time.perf_counter() - t0) * 1000.0)
            per_invoke[name].append(statistics.median(invokes))
        log(f"timing pass {p + 1}/{passes}: " + ", ".join(f"{n} {v[-1]:.2f} ms" for n, v in per_pass.items()))
    return {name: {"median_ms": statistics.median(v), "min_pass_ms": min(v), "passes_ms": [round(x, 3) for x in v],
                   "invoke_median_ms": round(statistics.median(per_invoke[name]), 3)}
            for name, v in per_pass.items()}


def evaluate(args: argparse.Namespace, dirs: dict[str, Path], params: dict[str, Any]) -> dict[str, Any]:
    from movinet_export.agreement import compare, held_out, open_model

    data = held_out(params, args.test_clips, args.streams, args.stream_frames, args.segment_frames)
    log(f"held-out: {len(data.clips)} clips of {params['frames']} frames, {len(data.streams)} streams of "
        f"{args.stream_frames} frames (direction changes every {data.segment})")
    results = compare(dirs, data, args.window_seconds, log=log)
    models = {v: open_model(p, threads=1) for v, p in dirs.items()}
    timing = time_steps(models, np.concatenate(data.streams)[:64], args.iterations, args.passes)
    for variant in dirs:
        results[variant]["ms_per_frame"] = round(timing[variant]["median_ms"], 3)
        results[variant]["invoke_ms"] = timing[variant]["invoke_median_ms"]
        results[variant]["timing"] = timing[variant]
        results[variant]["speedup_vs_float32"] = round(timing["float32"]["median_ms"] / timing[variant]["median_ms"], 3)
    return {"variants": results, "test_clips": len(data.clips), "streams": len(data.streams),
            "stream_frames": args.stream_frames, "segment_frames": data.segment, "window_seconds": args.window_seconds}


def speed_at(args: argparse.Namespace, model: dict[str, Any]) -> dict[str, Any] | None:
    """float32 vs our int8 of the same trained weights at a device resolution (A0: 172 px), 1 thread.

    The weights do not depend on the resolution, so the 64 px model runs at 172 px
    as it would on a device; calibration and the int8 plan use task videos at 172 px.
    Its accuracy there is not the point (it was trained at 64 px), its speed is.
    """
    if not args.speed_resolution:
        return None
    from movinet_export.agreement import open_model
    from movinet_export.motion_task import task_stream

    log(f"speed at {args.speed_resolution} px: exporting float32 and int8 selective")
    dirs, info = ensure_exports(args, model, args.speed_resolution, ("float32", "int8_selective"))
    p = model["params"]
    frames = task_stream([0, 3, 5, 6], 16, args.speed_resolution, p["stride"], seed=77, plain=p["plain"])
    timing = time_steps({v: open_model(d, threads=1) for v, d in dirs.items()}, frames, args.iterations, args.passes)
    from movinet_edge.manifest import load_manifest

    plan = load_manifest(dirs["int8_selective"] / "manifest.json").quantization["plan"]
    delegate = {v: load_manifest(d / "manifest.json").conversion["delegate"] for v, d in dirs.items()}
    out = {v: {"ms_per_frame": round(t["median_ms"], 3), "invoke_ms": t["invoke_median_ms"], "timing": t,
               "size_mb": round((dirs[v] / "model.tflite").stat().st_size / 1e6, 3), "delegate": delegate[v]}
           for v, t in timing.items()}
    out["int8_selective"]["speedup_vs_float32"] = round(timing["float32"]["median_ms"]
                                                        / timing["int8_selective"]["median_ms"], 3)
    return {"resolution": args.speed_resolution, "variants": out, "float_blocks": plan["float_blocks"],
            "exports": info}


# --- 4. the report ------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    from movinet_export.agreement import SKIP_FRAMES

    ev = report["evaluation"]
    v = ev["variants"]
    w = ev["window_seconds"]
    lines = [
        f"# int8 quality on a trained A0 (8 motion directions, {report['model']['params']['resolution']} px)",
        "",
        f"{ev['test_clips']} held-out clips; per-frame agreement over {ev['streams']} streams of "
        f"{ev['stream_frames']} frames, direction changing every {ev['segment_frames']} frames, never reset "
        f"(frames after the first {SKIP_FRAMES}): raw, and with the edge's rescale window of {w:g} s; "
        "ms/frame: 1 thread, whole step.",
        "",
        "| model | accuracy | vs float | clip agreement | frame agr. raw | frame agr. windowed | size MB "
        "| ms/frame | x float32 | invoke ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = v["float32"]["accuracy"]
    for name, r in v.items():
        lines.append(
            f"| {name} | {r['accuracy']:.3f} | {100 * (r['accuracy'] - base):+.1f} pt | {100 * r['clip_agreement']:.1f}% "
            f"| {100 * r['streams']['raw']['frame_agreement']:.1f}% "
            f"| {100 * r['streams']['windowed']['frame_agreement']:.1f}% | {r['size_mb']:.2f} "
            f"| {r['ms_per_frame']:.2f} | {r['speedup_vs_float32']:.2f}x | {r['invoke_ms']:.2f} |"
        )
    ours = v["int8_selective"]
    frame = min(ours["streams"]["raw"]["frame_agreement"], ours["streams"]["windowed"]["frame_agreement"])
    checks = [
        ("accuracy within 1 point of float", base - ours["accuracy"] <= TARGET_ACCURACY_DROP + 1e-9,
         f"{100 * (ours['accuracy'] - base):+.1f} pt"),
        (f"clip agreement >= {TARGET_CLIP_AGREEMENT:.0%}", ours["clip_agreement"] >= TARGET_CLIP_AGREEMENT,
         f"{100 * ours['clip_agreement']:.1f}%"),
        (f"per-frame agreement >= {TARGET_FRAME_AGREEMENT:.0%} (raw and windowed)",
         frame >= TARGET_FRAME_AGREEMENT, f"{100 * frame:.1f}%"),
    ]
    speed = report.get("speed")
    if speed:
        ratio = speed["variants"]["int8_selective"]["speedup_vs_float32"]
        checks.append((f"int8 >= {TARGET_SPEEDUP:g}x float32 at {speed['resolution']} px, 1 thread, whole step",
                       ratio >= TARGET_SPEEDUP, f"{ratio:.2f}x"))
    lines += ["", "Targets (int8 selective):"]
    lines += [f"- {name}: {value} {'ok' if ok else 'MISSED'}" for name, ok, value in checks]
    if speed:
        sv = speed["variants"]
        lines += ["", f"Speed at {speed['resolution']} px (the same trained weights; int8 plan made at this "
                  f"resolution, float blocks: {', '.join(speed['float_blocks']) or 'none'}):", "",
                  "| model | ms/frame (1 thread, whole step) | invoke ms | x float32 | size MB | XNNPACK partitions |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, r in sv.items():
            lines.append(f"| {name} | {r['ms_per_frame']:.2f} | {r['invoke_ms']:.2f} "
                         f"| {sv['float32']['ms_per_frame'] / r['ms_per_frame']:.2f}x | {r['size_mb']:.2f} "
                         f"| {r['delegate']['partitions']} |")
    for mode in ("raw", "windowed"):
        lines += ["", f"Streams, {mode}: per 50-frame window, agreement with float32 | top-1 vs the direction shown "
                  "now; prediction changes a stream:"]
        for name, r in v.items():
            m = r["streams"][mode]
            lines.append(f"- {name}: " + " ".join(f"{100 * x:.0f}" for x in m["frame_agreement_by_50_frames"])
                         + " | " + " ".join(f"{100 * x:.0f}" for x in m["accuracy_by_50_frames"])
                         + f"; changes {m['prediction_changes_per_stream']}")
    if report.get("quick"):
        lines += ["", "(--quick: short training and few clips; the numbers only prove the pipeline works)"]
    return "\n".join(lines)


def write_json(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="models and exports (default: bench/.cache)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results (default: bench/int8_quality.json)")
    parser.add_argument("--checkpoint", help="evaluate this trained 8-direction A0 checkpoint instead of training")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--stride", type=int, default=3, help="frame skip of the motion clips (bigger: faster motion)")
    parser.add_argument("--calibration-videos", type=int, default=8)
    parser.add_argument("--calibration-frames", type=int, default=64,
                        help="frames per calibration stream (the exporter takes at most 8 streams)")
    parser.add_argument("--test-clips", type=int, default=400)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--stream-frames", type=int, default=320)
    parser.add_argument("--segment-frames", type=int, default=24, help="frames between direction changes in streams")
    parser.add_argument("--window-seconds", type=float, default=3.0,
                        help="the edge's rescale window for the windowed streams (default: 3 s = 15 frames)")
    parser.add_argument("--speed-resolution", type=int, default=172,
                        help="also time float32 and our int8 of the same weights at this resolution (0: skip)")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--fresh-export", action="store_true", help="export again even if the cache has the models")
    parser.add_argument("--quick", action="store_true",
                        help="2 training epochs, 64 held-out clips, 1 stream, fewer timing iterations")
    args = parser.parse_args(argv)
    if args.quick:
        args.test_clips, args.streams, args.iterations, args.passes = 64, 1, 50, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.out.parent.is_dir():
        print(f"error: cannot write {args.out}: directory {args.out.parent} does not exist", file=sys.stderr)
        return 2
    args.cache.mkdir(parents=True, exist_ok=True)
    model = ensure_model(args)
    dirs, exports = ensure_exports(args, model)
    evaluation = evaluate(args, dirs, model["params"])
    speed = speed_at(args, model)
    report = {
        "quick": args.quick,
        "model": model,
        "exports": exports,
        "evaluation": evaluation,
        "speed": speed,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "load_average": os.getloadavg(),
        "seconds": round(time.monotonic() - _START, 1),
    }
    write_json(args.out, report)
    print(markdown(report))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    from movinet_export.native_logs import converter_logs_silenced  # the converter's C++ log lines

    with converter_logs_silenced():
        code = main()
    sys.exit(code)
