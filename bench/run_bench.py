#!/usr/bin/env python3
"""The full benchmark: export what it needs, bench it in edge-only environments, one table.

Run from the export environment (it needs TensorFlow to export)::

    . .venv/bin/activate
    python bench/run_bench.py                 # A0, every precision, both runtimes
    python bench/run_bench.py --quick         # few iterations: proves it works, numbers are rough
    python bench/run_bench.py --models a0,a1,a2

What it does, reusing everything under ``--cache`` (default ``bench/.cache``):

1. a random-init checkpoint per model (no pretrained weights are needed to
   time a model: the graph and the tensor sizes are the same) and its exports:
   float32, float16, dynamic-range, int8 (our selective recipe) and int8
   (naive, the official tool's style), timing the build and each precision;
2. an edge-only environment (``python -m venv`` + ``pip install <repo>``, the
   base install a device gets) and one with tflite-runtime 2.14 + numpy<2 +
   opencv-python-headless<4.12, if a tflite-runtime wheel exists for this
   Python (else the report says so);
3. ``movinet-edge bench`` in each environment (a process without TensorFlow,
   as on a device): step latency at 1 and 2 threads, pipeline fps and its
   overhead, the reference loop and the ratio, cold start, peak RSS, delegate
   coverage;
4. installed sizes: the edge environment against this export environment.

Prints markdown (tables, the machine, the targets met or missed) and writes
``bench/results.json``. Timings on a shared or busy machine are noisy; the
load average before and after each run is in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MOVINET_TEST_DATA", REPO.parent / "shared" / "data"))
DEFAULT_CACHE = REPO / "bench" / ".cache"
DEFAULT_OUT = REPO / "bench" / "results.json"

TFLITE_RUNTIME = "tflite-runtime==2.14.0"
# tflite-runtime 2.14 is built against numpy 1.x; OpenCV 4.12+ wheels need numpy 2.
TFLITE_RUNTIME_DEPS = [TFLITE_RUNTIME, "numpy<2", "opencv-python-headless<4.12", "typer>=0.12,<0.20", "click>=8.1,<9"]


@dataclass(frozen=True)
class Variant:
    """One export: a precision and, for int8, the recipe."""

    precision: str
    recipe: str | None = None

    def folder(self, model_id: str) -> str:
        return f"{model_id}_{self.precision}" + (f"_{self.recipe}" if self.recipe == "naive" else "")

    @property
    def key(self) -> str:
        return self.precision + (f"_{self.recipe}" if self.recipe else "")


VARIANTS = (
    Variant("float32"),
    Variant("float16"),
    Variant("dynamic"),
    Variant("int8", "selective"),
    Variant("int8", "naive"),
)

# The issue's targets, for A0 on a 2-core x86 machine.
TARGET_RATIO = 1.2
TARGET_OVERHEAD_PCT = 10.0
TARGET_COLD_START_S = 1.5
TARGET_RSS_MB = 100.0

_START = time.monotonic()


def log(text: str) -> None:
    print(f"[{time.monotonic() - _START:7.1f}s] {text}", file=sys.stderr, flush=True)


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    log("$ " + " ".join(command))
    return subprocess.run(command, check=True, **kwargs)


# --- 1. models -----------------------------------------------------------------------------


def ensure_checkpoint(cache: Path, model_id: str) -> Path:
    folder = cache / f"{model_id}_checkpoint"
    if (folder / "checkpoint").is_file():
        return folder
    from movinet_export.random_checkpoint import save_random_checkpoint

    log(f"saving a random-init {model_id} checkpoint to {folder}")
    shutil.rmtree(folder, ignore_errors=True)
    save_random_checkpoint(folder, model_id, resolution=None, seed=0)
    return folder


def ensure_exports(cache: Path, model_id: str, fresh: bool) -> tuple[list[Path], dict[str, Any]]:
    """Export every variant that is missing (or all, if ``fresh``); returns the dirs and the export times."""
    times_file = cache / "export_times.json"
    all_times: dict[str, Any] = json.loads(times_file.read_text()) if times_file.is_file() else {}
    times: dict[str, Any] = all_times.get(model_id, {})
    dirs = [cache / v.folder(model_id) for v in VARIANTS]
    missing = [v for v, d in zip(VARIANTS, dirs) if fresh or not (d / "model.tflite").is_file()]
    if missing:
        from movinet_export.exporter import ExportOptions, Exporter

        checkpoint = ensure_checkpoint(cache, model_id)
        clips = sorted((DATA / "clips").iterdir())
        options = ExportOptions(
            model_id=model_id,
            checkpoint=str(checkpoint),
            labels=str(DATA / "kinetics_600_labels.txt"),
            parity_video=DATA / "clips" / "carving_ice.mp4",
            calibration_videos=[str(c) for c in clips],
        )
        with Exporter(options) as exporter:
            log(f"building {model_id} (TensorFlow graph, restore, streaming SavedModel)")
            t0 = time.monotonic()
            exporter.prepare()
            times["build_s"] = round(time.monotonic() - t0, 2)
            calibrated = False
            for variant in missing:
                exporter.options.int8_recipe = variant.recipe or "selective"
                log(f"exporting {model_id} {variant.key}")
                t0 = time.monotonic()
                exporter.export(variant.precision, cache / variant.folder(model_id), force=True)
                entry: dict[str, Any] = {"seconds": round(time.monotonic() - t0, 2)}
                if variant.precision == "int8" and not calibrated:
                    entry["includes_calibration"] = True  # calibrated once, reused by the other int8 recipe
                    calibrated = True
                times[variant.key] = entry
        all_times[model_id] = times
        times_file.write_text(json.dumps(all_times, indent=2) + "\n")
    return dirs, times


# --- 2. environments --------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def tflite_runtime_available() -> tuple[bool, str]:
    """Is there a tflite-runtime 2.14 wheel for this Python and platform on the index?"""
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", TFLITE_RUNTIME, "-d", tmp],
            capture_output=True,
            text=True,
        )
    if result.returncode == 0:
        return True, ""
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    why = lines[-1] if lines else f"pip exit status {result.returncode}"
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return False, f"no {TFLITE_RUNTIME} wheel for Python {py} on this platform ({why})"


def ensure_venv(venv: Path, requirements: list[str], project_deps: bool) -> Path:
    """Create the venv once; refresh this checkout's code in it every run (the bench must time this code)."""
    python = venv_python(venv)
    if not python.is_file():
        log(f"creating {venv}")
        shutil.rmtree(venv, ignore_errors=True)
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        if requirements:
            run([str(python), "-m", "pip", "install", "--quiet", *requirements])
        if project_deps:
            run([str(python), "-m", "pip", "install", "--quiet", str(REPO)])
    log(f"installing this checkout into {venv.name}")
    run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(REPO)])
    return python


def du_mb(path: Path) -> float:
    """Disk usage like ``du -s`` (allocated blocks, hard links once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return round(total / 2**20, 1)


# --- 3. benches --------------------------------------------------------------------------------


def bench_in(python: Path, runtime: str, models: list[Path], args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    """``movinet-edge bench`` in another environment; its progress shows on our stderr."""
    out = cache / f"bench_{runtime}.json"
    out.unlink(missing_ok=True)
    script = python.with_name("movinet-edge")
    command = [str(script)] if script.is_file() else [str(python), "-m", "movinet_edge.cli"]
    command += ["bench", *map(str, models), "--clip", str(args.clip), "--runtime", runtime, "--json", str(out),
                "--iterations", str(args.iterations), "--warmup", str(args.warmup), "--passes", str(args.passes),
                "--cold-starts", str(args.cold_starts)]  # fmt: skip
    for t in args.threads:
        command += ["--threads", str(t)]
    env = {k: v for k, v in os.environ.items() if k not in ("MOVINET_EDGE_MODEL", "PYTHONPATH")}
    env["MOVINET_EDGE_RUNTIME"] = runtime
    log(f"benching {len(models)} models with {runtime}")
    try:
        run(command, env=env, cwd=cache, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError as exc:
        log(f"movinet-edge bench failed with exit status {exc.returncode}")
        return {"failed": f"movinet-edge bench exited with status {exc.returncode} (its log is above)"}
    return json.loads(out.read_text())


# --- 4. the report ---------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _rss(cs: dict[str, Any]) -> str:
    if cs.get("peak_rss_mb") is None:
        return "-"
    split = (f" ({cs['peak_private_mb']:.0f} + {cs['peak_file_backed_mb']:.0f})"
             if cs.get("peak_private_mb") is not None else "")
    return f"{cs['peak_rss_mb']:.0f}{split}"


def bench_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| model | precision | threads | step median ms | p90 ms | pipeline fps | overhead | excl. decode "
        "| reference fps | x reference | XNNPACK ops | cold start s | peak RSS MB (private + files) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for m in report["models"]:
        precision = m["precision"] + (f" ({m['int8_recipe']})" if m.get("int8_recipe") else "")
        cov = {"delegated_ops": 0, "total_ops": 0, "partitions": 0, **m["coverage"]}
        cs = m.get("cold_start") or {}
        if m.get("error") and not m["threads"]:
            lines.append(f"| {m['model_id']} | {precision} | - | failed: {m['error']} ||||||||||")
            continue
        for i, t in enumerate(m["threads"]):
            first = i == 0
            lines.append(
                f"| {m['model_id']} | {precision} | {t['threads']} | {t['step']['median_ms']:.1f} "
                f"| {t['step']['p90_ms']:.1f} | {_fmt((t['pipeline'] or {}).get('fps'), '.1f')} "
                f"| {_fmt(t['pipeline_overhead_pct'], '+.0f', '%')} "
                f"| {_fmt(t.get('pipeline_overhead_excl_decode_pct'), '+.0f', '%')} "
                f"| {_fmt((t['reference'] or {}).get('fps'), '.1f')} | {_fmt(t['reference_ratio'], '.2f', 'x')} "
                f"| {cov['delegated_ops']}/{cov['total_ops']} in {cov['partitions']} "
                f"| {_fmt(cs.get('median_s') if first else None, '.2f')} "
                f"| {_rss(cs) if first else '-'} |"
            )
    left = {m["model"]: m["coverage"]["builtin_ops"] for m in report["models"] if m["coverage"].get("builtin_ops")}
    errors = [f"- {Path(m['model']).name}: failed: {m['error']}" for m in report["models"] if m.get("error")]
    if left or errors:
        lines += ["", *errors]
        for model, ops in left.items():
            kernels = ", ".join(f"{k} x{v}" for k, v in ops.items())
            lines.append(f"- {Path(model).name}: on built-in kernels: {kernels}")
    return lines


def targets(report: dict[str, Any]) -> list[str]:
    """The issue's targets for A0, met or missed, per precision (best thread count)."""
    lines = []
    for m in report["models"]:
        if m["model_id"] != "a0":
            continue
        precision = m["precision"] + (f" ({m['int8_recipe']})" if m.get("int8_recipe") else "")
        if m.get("error") and not m["threads"]:
            lines.append(f"- a0 {precision}: failed ({m['error']})")
            continue
        ratios = [t["reference_ratio"] for t in m["threads"] if t["reference_ratio"] is not None]
        overheads = [t["pipeline_overhead_pct"] for t in m["threads"] if t["pipeline_overhead_pct"] is not None]
        cs = m.get("cold_start") or {}
        checks = []
        if ratios:
            best = max(ratios)
            checks.append(f"x reference {best:.2f} {'ok' if best >= TARGET_RATIO else 'MISSED'} (>= {TARGET_RATIO})")
        if overheads:
            best = min(overheads)
            ok = "ok" if best <= TARGET_OVERHEAD_PCT else "MISSED"
            checks.append(f"overhead {best:+.0f}% {ok} (<= {TARGET_OVERHEAD_PCT:.0f}%)")
        if cs.get("median_s") is not None:
            ok = "ok" if cs["median_s"] <= TARGET_COLD_START_S else "MISSED"
            checks.append(f"cold start {cs['median_s']:.2f} s {ok} (<= {TARGET_COLD_START_S} s)")
        if cs.get("peak_rss_mb") is not None:
            ok = "ok" if cs["peak_rss_mb"] <= TARGET_RSS_MB else "MISSED"
            private = f", {cs['peak_private_mb']:.0f} MB private" if cs.get("peak_private_mb") is not None else ""
            checks.append(f"RSS {cs['peak_rss_mb']:.0f} MB{private} {ok} (<= {TARGET_RSS_MB:.0f} MB)")
        lines.append(f"- a0 {precision}: " + "; ".join(checks))
    return lines


def machine_line(report: dict[str, Any]) -> str:
    m = report["machine"]
    load = m.get("load_before")
    load_text = f", load average {load[0]:.2f} before / {m['load_after'][0]:.2f} after" if load else ""
    return (
        f"{m['cpu']} ({m['machine']}), {m['usable_cores']} of {m['cores']} cores, {m['memory_gb']:.1f} GB, "
        f"{m['system']}, Python {m['python']}, numpy {m['numpy']}, OpenCV {m['opencv']}, {m['runtime']}{load_text}"
    )


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# movinet-edge benchmark ({results['clip']})", ""]
    for runtime, report in results["runs"].items():
        lines.append(f"## {runtime}")
        lines.append("")
        if "skipped" in report or "failed" in report:
            lines += [f"Not run: {report.get('skipped') or report['failed']}", ""]
            continue
        lines += [f"Machine: {machine_line(report)}", ""]
        lines += bench_table(report)
        target_lines = targets(report)
        if target_lines:
            lines += ["", "Targets (A0, 2-core x86):", *target_lines]
        lines.append("")
    sizes = results.get("sizes") or {}
    if sizes:
        lines += ["## Installed size", "", "| environment | MB |", "|---|---:|"]
        lines += [f"| {name} | {mb:.0f} |" for name, mb in sizes.items()]
        lines.append("")
    exports = results.get("export_times") or {}
    if exports:
        lines += ["## Export time (s)", "", "| model | build | " + " | ".join(v.key for v in VARIANTS) + " |",
                  "|---|---:|" + "---:|" * len(VARIANTS)]  # fmt: skip
        for model_id, times in exports.items():
            cells = []
            for v in VARIANTS:
                entry = times.get(v.key)
                if entry is None:
                    cells.append("-")
                else:
                    cells.append(f"{entry['seconds']:.1f}" + ("*" if entry.get("includes_calibration") else ""))
            lines.append(f"| {model_id} | {_fmt(times.get('build_s'), '.1f')} | " + " | ".join(cells) + " |")
        lines += ["", "\\* includes calibration (once per model, shared by both int8 recipes)"]
    notes = results.get("notes") or []
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return "\n".join(lines)


def write_json(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


# --- main ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--models", default="a0", help="comma-separated model ids (default: a0; e.g. a0,a1,a2)")
    parser.add_argument("--clip", type=Path, default=DATA / "clips" / "flipping_pancake.mkv",
                        help="real clip for pipeline fps, reference loop and cold start "
                        "(default: the 426x240 30 fps one)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="models and environments (default: bench/.cache)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results (default: bench/results.json)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--cold-starts", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10 iterations, 1 pass, 1 cold start: proves it works")
    parser.add_argument("--runtimes", default="ai_edge_litert,tflite_runtime",
                        help="which runtimes to bench, each in its own environment")
    parser.add_argument("--edge-env", choices=("venv", "current"), default="venv",
                        help="ai_edge_litert in a fresh edge-only venv (default) or in this environment")
    parser.add_argument("--fresh-export", action="store_true", help="export again even if the cache has the models")
    parser.add_argument("--no-sizes", action="store_true", help="skip the installed-size comparison")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.warmup, args.passes, args.cold_starts = 10, 3, 1, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.clip.is_file():
        print(f"error: clip {args.clip} does not exist; pass --clip or set MOVINET_TEST_DATA", file=sys.stderr)
        return 2
    if not args.out.parent.is_dir():
        print(f"error: cannot write {args.out}: directory {args.out.parent} does not exist", file=sys.stderr)
        return 2
    args.cache.mkdir(parents=True, exist_ok=True)
    model_ids = [m.strip() for m in args.models.split(",") if m.strip()]
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    notes: list[str] = []

    models: list[Path] = []
    export_times: dict[str, Any] = {}
    for model_id in model_ids:
        dirs, times = ensure_exports(args.cache, model_id, args.fresh_export)
        models += dirs
        export_times[model_id] = times

    runs: dict[str, Any] = {}
    sizes: dict[str, float] = {}
    edge_venv = args.cache / "venv-edge"
    if "ai_edge_litert" in runtimes:
        if args.edge_env == "venv":
            python = ensure_venv(edge_venv, [], project_deps=True)
        else:
            python = Path(sys.executable)
            notes.append("ai_edge_litert was benched in the export environment (--edge-env current)")
        runs["ai_edge_litert"] = bench_in(python, "ai_edge_litert", models, args, args.cache)
    if "tflite_runtime" in runtimes:
        available, why = tflite_runtime_available()
        if available:
            python = ensure_venv(args.cache / "venv-tflite-runtime", TFLITE_RUNTIME_DEPS, project_deps=False)
            runs["tflite_runtime"] = bench_in(python, "tflite_runtime", models, args, args.cache)
        else:
            log(why)
            runs["tflite_runtime"] = {"skipped": why}
    if not args.no_sizes:
        if not venv_python(edge_venv).is_file():
            ensure_venv(edge_venv, [], project_deps=True)
        sizes["edge (pip install movinet-edge)"] = du_mb(edge_venv)
        if (args.cache / "venv-tflite-runtime").is_dir():
            sizes["edge with tflite-runtime 2.14"] = du_mb(args.cache / "venv-tflite-runtime")
        sizes["export (this environment)"] = du_mb(Path(sys.prefix))
        notes.append("installed sizes are whole venvs (Python's own pip included), measured like du -s")

    results = {
        "clip": str(args.clip),
        "quick": args.quick,
        "runs": runs,
        "sizes": sizes,
        "export_times": export_times,
        "notes": notes,
    }
    write_json(args.out, results)
    print(markdown(results))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
