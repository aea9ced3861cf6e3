"""The bench library and command on a real exported model and clip, with few iterations.

No assert here is about speed (that is what the benchmark reports, not what a
test can promise on a shared 2-core CI machine): only that every measurement
is there, consistent and written.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from movinet_edge.bench import BenchOptions, bench_models, cold_start_once, format_table
from movinet_edge.errors import EdgeError
from movinet_edge.reference_loop import ReferenceOptions, ReferenceVideoClassifier, run_reference_loop


def test_bench_library_returns_every_measurement(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    clip = clips / "carving_ice.mp4"
    options = BenchOptions(threads=(1, 2), iterations=3, warmup=1, clip=clip, passes=1, cold_starts=1, progress=False)
    report = bench_models([golden_model_dir], options)

    assert len(report.models) == 1
    m = report.models[0]
    assert (m.model_id, m.precision, m.resolution) == ("a0", "int8", 64)  # the golden model
    assert m.runtime in ("ai_edge_litert", "tflite_runtime")
    assert m.coverage["total_ops"] > 0 and 0 <= m.coverage["delegated_ops"] <= m.coverage["total_ops"]
    assert [t.threads for t in m.threads] == [1, 2]
    for t in m.threads:
        assert t.step.iterations == 3
        assert 0 < t.step.min_ms <= t.step.median_ms <= t.step.p90_ms
        ours, ref = t.pipeline, t.reference
        assert ours is not None and ref is not None
        # Both loops read every frame of the same clip and feed about 5 of them a second.
        assert ours.frames == ref.frames == 131
        assert abs(ours.steps - ref.steps) <= 2 and ours.steps >= 20
        assert ours.wall_s > 0 and ref.wall_s > 0 and ours.decode_s is not None
        assert t.overhead_pct is not None and t.reference_ratio is not None and t.reference_ratio > 0
        assert ref.adapted == []  # a float model runs the reference as published
    cs = m.cold_start
    assert cs is not None and cs.threads == 2 and len(cs.runs) == 1
    assert cs.runs[0] > 0 and cs.peak_rss_mb > 20  # a process with numpy, OpenCV and a model loaded
    assert cs.peak_rss_mb < 400
    # The sampled split: private memory (a float A0 holds its packed weights there) and mapped files.
    assert 10 < cs.peak_private_mb < cs.peak_rss_mb and 10 < cs.peak_file_backed_mb < cs.peak_rss_mb

    out = tmp_path / "bench.json"
    report.write_json(out)
    data = json.loads(out.read_text())
    assert data["machine"]["cores"] >= 1
    row = data["models"][0]["threads"][0]
    assert set(row) >= {"step", "pipeline", "reference", "pipeline_overhead_pct", "reference_ratio"}
    assert math.isclose(row["step"]["fps"], 1000 / row["step"]["median_ms"], rel_tol=1e-3)
    assert data["models"][0]["cold_start"]["median_s"] > 0

    table = format_table(report)
    assert table.count("| a0 | int8 (selective) |") == 3  # two thread rows and the cold start row
    assert "Machine: " in table


def test_bare_step_without_a_clip(golden_model_dir: Path) -> None:
    report = bench_models([golden_model_dir], BenchOptions(threads=(1,), iterations=2, warmup=0, progress=False))
    (t,) = report.models[0].threads
    assert t.pipeline is None and t.reference is None and t.overhead_pct is None
    assert report.models[0].cold_start is None
    assert "| - |" in format_table(report)


def test_a_model_that_cannot_load_is_a_result_not_a_crash(tmp_path: Path, golden_model_dir: Path) -> None:
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer at all")
    report = bench_models([broken, golden_model_dir],
                          BenchOptions(threads=(1,), iterations=1, warmup=0, progress=False))
    failed, ok = report.models
    assert failed.error is not None and "not a TFLite model" in failed.error and failed.threads == []
    assert ok.error is None and len(ok.threads) == 1
    assert "failed: " in format_table(report)


def test_bad_options_are_edge_errors(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match="thread counts must be at least 1"):
        BenchOptions(threads=(0,))
    with pytest.raises(EdgeError, match="clip .* does not exist"):
        BenchOptions(clip=tmp_path / "missing.mp4")


def test_reference_loop_classifies_like_the_example(golden_model_dir: Path, clips: Path) -> None:
    reference = ReferenceVideoClassifier(
        golden_model_dir / "model.tflite", golden_model_dir / "labels.txt", ReferenceOptions(max_results=3)
    )
    run = run_reference_loop(reference, clips / "rope_pushdown.mp4")
    assert run.frames_read == 50 and run.steps == 50  # a 5 fps clip: every frame is fed
    assert len(run.last) == 3
    scores = [c.score for c in run.last]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert len(run.classify_ms) == run.steps


def test_bench_command_prints_the_table_and_writes_json(tmp_path: Path, golden_model_dir: Path) -> None:
    script = Path(sys.executable).with_name("movinet-edge")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "movinet_edge.cli"]
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "MOVINET_EDGE_MODEL"}
    result = subprocess.run(
        [*command, "bench", str(golden_model_dir), "--threads", "1", "--iterations", "2", "--warmup", "0",
         "--json", str(out), "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("| model | precision | runtime | threads |")
    data = json.loads(out.read_text())
    assert np.isfinite(data["models"][0]["threads"][0]["step"]["median_ms"])

    bad = subprocess.run([*command, "bench", str(golden_model_dir), "--json", str(tmp_path / "x.txt")],
                         capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"error: --json {tmp_path / 'x.txt'}: use a .json file name"


def test_peak_rss_is_the_childs_own(golden_model_dir: Path, clips: Path) -> None:
    """Linux hands a forked child the parent's high-water RSS across exec; a bench
    holding models reported 225 MB for every run that way. A parent with 600 MB
    touched must not change the measured peak of a movinet-edge run."""
    ballast = np.ones(600 * 2**20, np.uint8)
    _, (peak_mb, private_mb, _), _ = cold_start_once(golden_model_dir, clips / "carving_ice.mp4", threads=1)
    assert ballast.sum() > 0 and 20 < peak_mb < 400 and private_mb < peak_mb


def test_bench_streams_runs_n_cameras_in_one_process_and_writes_json(tmp_path: Path, golden_model_dir: Path,
                                                                     clips: Path) -> None:  # fmt: skip
    """``bench --streams 2``: two real-time copies of a real clip through one process, the same two as
    separate processes beside it, and one stream's source stopped halfway (``--fault``)."""
    script = Path(sys.executable).with_name("movinet-edge")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "movinet_edge.cli"]
    out = tmp_path / "streams.json"
    env = {k: v for k, v in os.environ.items() if k != "MOVINET_EDGE_MODEL"}
    result = subprocess.run(
        [*command, "bench", str(golden_model_dir), "--clip", str(clips / "rope_pushdown.mp4"), "--streams", "2",
         "--duration", "3", "--fault", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| stream | steps/s | of model rate |" in result.stdout and "| cam2 |" in result.stdout
    assert "bench 2 stream(s)" in result.stderr  # progress
    data = json.loads(out.read_text())
    assert data["streams_count"] == 2 and data["model_rate"] == 5.0 and data["clip_size"] == [400, 400]
    for stream in data["streams"]:
        assert set(stream) >= {"name", "steps_per_s", "rate_pct", "dropped", "dropped_pct", "latency_p50_ms",
                               "latency_p95_ms"}  # fmt: skip
        assert stream["steps"] >= 1 and stream["steps_per_s"] > 0 and stream["dropped"] >= 0
    assert data["rss_mb"] > 20 and 0 < data["private_mb"] <= data["rss_mb"] and data["cpu_pct"] > 0
    assert data["state_mb_per_stream"] > 0
    fault = data["fault"]
    assert fault["stream"] == "cam1" and len(fault["others_steps_per_s_during"]) == 1
    assert fault["others_steps_per_s_during"][0] > 0  # cam2 kept stepping after cam1's source stopped
    separate = data["separate"]
    assert separate["processes"] == 2 and len(separate["rss_mb"]) == 2
    assert separate["rss_mb_total"] == pytest.approx(sum(separate["rss_mb"]), abs=0.2)
    assert data["rss_ratio_vs_one_process"] > 0


def test_bench_streams_usage_errors_are_one_line(tmp_path: Path, golden_model_dir: Path, clips: Path) -> None:
    script = Path(sys.executable).with_name("movinet-edge")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "movinet_edge.cli"]
    env = {k: v for k, v in os.environ.items() if k != "MOVINET_EDGE_MODEL"}
    clip = str(clips / "rope_pushdown.mp4")
    cases = [
        (["--streams", "2"], "error: --streams needs --clip VIDEO: the clip every stream plays in real time, "
                             "like a camera"),
        (["--streams", "0", "--clip", clip], "error: --streams must be at least 1, got 0"),
        (["--streams", "1", "--clip", clip, "--fault"],
         "error: --fault needs --streams 2 or more: one stream to stop, others to watch"),
        (["--streams", "2", "--clip", clip, "--json", str(tmp_path / "missing" / "x.json")],
         f"error: cannot write {tmp_path / 'missing' / 'x.json'}: directory {tmp_path / 'missing'} does not exist"),
    ]  # fmt: skip
    for args, expected in cases:
        bad = subprocess.run([*command, "bench", str(golden_model_dir), *args], capture_output=True, text=True,
                             env=env, timeout=60)  # fmt: skip
        assert bad.returncode == 2, (args, bad.stderr)
        assert bad.stderr.strip() == expected
