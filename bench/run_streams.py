#!/usr/bin/env python3
"""Many cameras, one device: ``movinet-edge bench --streams N`` for N = 1, 2, 4, 8, one table.

    python bench/run_streams.py --model models/a0_stream_int8
    python bench/run_streams.py --model DIR --counts 1,2,4,8 --duration 20 --fault

The camera clip is made once with OpenCV from a real clip of the shared data
(``flipping_pancake.mkv``, resized to 320x240 and resampled to 5 fps, what a
small IP camera set to the model's rate sends) into ``--cache``. Each count
runs in a fresh ``movinet-edge bench`` process (so its peak RSS is its own),
which also runs the same N streams as N separate processes beside it. With
``--fault`` the largest count is run again with one stream's source stopped
halfway, to show the others' steps/s do not fall.

Targets this reports on (not asserted anywhere, the machine is shared): on a
2-core machine, int8 A0 at 5 fps per 320x240 stream, 8 streams with every
stream >= 98% of the model rate and < 1% frames dropped, and peak RSS of the
8-stream process <= 1.3x a one-stream process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MOVINET_TEST_DATA", REPO.parent / "shared" / "data"))
DEFAULT_CACHE = REPO / "bench" / ".cache"
DEFAULT_OUT = REPO / "bench" / "streams.json"
SOURCE_CLIP = "flipping_pancake.mkv"
CAMERA_SIZE = (320, 240)
CAMERA_FPS = 5.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def camera_clip(cache: Path) -> Path:
    """The shared clip as a 320x240, 5 fps camera would send it (made once)."""
    import cv2

    target = cache / f"camera_{CAMERA_SIZE[0]}x{CAMERA_SIZE[1]}_{CAMERA_FPS:g}fps.mp4"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(DATA / "clips" / SOURCE_CLIP))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    with tempfile.NamedTemporaryFile(suffix=".mp4", dir=cache, delete=False) as tmp:
        partial = Path(tmp.name)
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), CAMERA_FPS, CAMERA_SIZE)
    index, written, next_at = 0, 0, 0.0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if index >= next_at - 1e-6:  # every (fps / 5)th frame: the frames a 5 fps camera would take
            writer.write(cv2.resize(bgr, CAMERA_SIZE, interpolation=cv2.INTER_AREA))
            written += 1
            next_at += fps / CAMERA_FPS
        index += 1
    writer.release()
    cap.release()
    if written == 0:
        partial.unlink()
        raise SystemExit(f"no frames decoded from {DATA / 'clips' / SOURCE_CLIP}")
    partial.replace(target)
    log(f"camera clip: {target} ({written} frames)")
    return target


def bench(model: Path, clip: Path, count: int, args: argparse.Namespace, fault: bool = False) -> dict[str, Any]:
    script = Path(sys.executable).with_name("movinet-edge")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "movinet_edge.cli"]
    with tempfile.TemporaryDirectory(prefix="movinet-streams-") as tmp:
        out = Path(tmp) / "streams.json"
        command += ["bench", str(model), "--clip", str(clip), "--streams", str(count), "--duration",
                    f"{args.duration:g}", "--threads", str(args.threads), "--pool", str(args.pool), "--json", str(out)]
        if fault:
            command += ["--fault", "--no-separate"]
        elif count == 1:
            command += ["--no-separate"]
        log(f"--- {count} stream(s){' with a fault' if fault else ''}: {' '.join(command)}")
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def table(runs: list[dict[str, Any]], one_rss: float) -> list[str]:
    lines = [
        "| streams | steps/s per stream (min-max) | of model rate (min) | dropped (max) | latency p50 / p95 ms (max) "
        "| CPU | peak RSS MB, 1 process | x 1 stream | peak RSS MB, N processes (sum) |",
        "|---:|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        s = r["streams"]
        rates = [x["steps_per_s"] for x in s]
        separate = r["separate"]["rss_mb_total"] if r.get("separate") else r["rss_mb"]  # 1 stream: itself
        lines.append(
            f"| {len(s)} | {min(rates):.2f}-{max(rates):.2f} | {r['min_rate_pct']:.1f}% | {r['max_dropped_pct']:.2f}% "
            f"| {max(x['latency_p50_ms'] for x in s):.1f} / {max(x['latency_p95_ms'] for x in s):.1f} "
            f"| {r['cpu_pct']:.0f}% | {r['rss_mb']:.0f} | {r['rss_mb'] / one_rss:.2f}x | {separate:.0f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder (int8 A0 for the targets)")
    parser.add_argument("--counts", default="1,2,4,8", help="stream counts to measure")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per count")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pool", type=int, default=1)
    parser.add_argument("--fault", action="store_true", help="also the largest count with one stream stopped halfway")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    clip = camera_clip(args.cache)
    runs = [bench(args.model, clip, n, args) for n in counts]
    fault = bench(args.model, clip, max(counts), args, fault=True) if args.fault else None
    one = next((r for r in runs if r["streams_count"] == 1), runs[0])
    lines = [f"# {len(counts)} stream counts, {Path(args.model).name}, {one['runtime']}, "
             f"{one['clip_size'][0]}x{one['clip_size'][1]} at {one['clip_fps']:g} fps, {args.duration:g} s each", ""]
    lines += table(runs, one["rss_mb"])
    if fault is not None:
        f = fault["fault"]
        lines += ["", f"Fault ({fault['streams_count']} streams): {f['stream']} stopped at {f['at_s']:.1f} s; "
                      f"the others' steps/s before {min(f['others_steps_per_s_before']):.2f}-"
                      f"{max(f['others_steps_per_s_before']):.2f}, during {min(f['others_steps_per_s_during']):.2f}-"
                      f"{max(f['others_steps_per_s_during']):.2f}"]  # fmt: skip
    machine = one["machine"]
    lines += ["", f"Machine: {machine['cpu']}, {machine['usable_cores']} cores, load average "
                  f"{[r['machine']['load_before'][0] for r in runs]} at the end of each run"]  # fmt: skip
    print("\n".join(lines))
    args.out.write_text(json.dumps({"runs": runs, "fault": fault, "table": lines}, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
