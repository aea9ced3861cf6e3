"""What a lower capture rate saves: the same scene at 30 fps and at 10 fps through `movinet-edge`, in real time.

A camera asked for `--capture-fps 10` hands the pipeline a third of the frames to read and decode,
while the frame sampler still feeds the model its 5 fps. No camera is attached here, so a clip
resized to 320x240 and written at its own rate and at a third of it stands in for the two capture
settings; each is played in real time (`--realtime --loop`) for a fixed number of model steps, three
times, and the median CPU time of the whole process is reported (a table on stdout, JSON with
``--json``).

    python bench/capture_rate.py --model tests/golden/tiny_a0_int8 [--clip CLIP] [--steps 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, frames: list, every: int, fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps / every, (320, 240))
    for frame in frames[::every]:
        writer.write(frame)
    writer.release()


def _run(clip: Path, model: Path, steps: int) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    edge = Path(sys.executable).with_name("movinet-edge")
    result = subprocess.run([str(edge), "--video", str(clip), "--realtime", "--loop", "--model", str(model),
                             "--max-steps", str(steps), "--threads", "1"], capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "tests" / "golden" / "tiny_a0_int8")
    parser.add_argument("--clip", type=Path, default=REPO.parent / "shared" / "data" / "clips" / "carving_ice.mp4")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cap = cv2.VideoCapture(str(args.clip))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, (320, 240)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for every in (1, 3):
            clip = Path(tmp) / f"capture_{every}.mp4"
            _write(clip, frames, every, fps)
            runs = []
            for i in range(args.runs):
                print(f"{fps / every:.0f} fps: run {i + 1} of {args.runs}", file=sys.stderr, flush=True)
                runs.append(_run(clip, args.model, args.steps))
            cpu = statistics.median(r[0] for r in runs)
            wall = statistics.median(r[1] for r in runs)
            rows.append({"capture_fps": round(fps / every, 2), "steps": args.steps, "cpu_s": round(cpu, 3),
                         "wall_s": round(wall, 2), "cpu_pct": round(100 * cpu / wall, 2)})  # fmt: skip
    print("| capture fps | model steps | CPU s | wall s | CPU (100% = 1 core) |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['capture_fps']:g} | {r['steps']} | {r['cpu_s']:.2f} | {r['wall_s']:.1f} | {r['cpu_pct']:.1f}% |")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "clip": str(args.clip), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
