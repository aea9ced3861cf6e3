"""int8 on a TRAINED model: our selective recipe keeps float's predictions, naive int8 does not.

A random-init model says little about int8 (its ReZero branches are closed,
its logits nearly flat), so this module trains an A0 on the synthetic
8-direction motion task (tests/helpers/training.py: 32 px, ~2 minutes on 2
cores, ~96% validation accuracy), calibrates on lossless videos of the task
with the states carried, and exports float32, our selective int8 and the
official-tool style naive int8 through the Exporter, one calibration shared.

The bounds here leave a margin under what was measured (in the comments);
the issue's exact targets are checked and printed by bench/int8_quality.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.agreement import compare, held_out
from helpers.training import DEFAULTS, TEST_PARAMS, task_videos, trained_motion_model
from movinet_edge.manifest import load_manifest

pytestmark = pytest.mark.slow

PARAMS = {**DEFAULTS, **TEST_PARAMS}
WINDOW_SECONDS = 3.0  # the edge's rescale window in the windowed streams (15 frames at 5 fps)


@pytest.fixture(scope="module")
def int8_exports(model_cache: Path) -> dict[str, Path]:
    from movinet_export.exporter import Exporter, ExportOptions

    model = trained_motion_model(model_cache / "trained", **TEST_PARAMS)
    assert model.val_accuracy >= 0.9, f"the test model did not learn the task: {model.history}"
    folder = model_cache / f"int8_quality_{Path(model.checkpoint).parent.name}"
    dirs = {name: folder / name for name in ("float32", "int8_selective", "int8_naive")}
    if all((d / "model.tflite").is_file() for d in dirs.values()):
        return dirs
    videos = task_videos(folder / "calibration", PARAMS, videos=8, frames=64, fps=5.0)
    options = ExportOptions(model_id="a0", checkpoint=model.checkpoint, labels=str(model.labels_file),
                            resolution=PARAMS["resolution"], calibration_videos=[str(videos)],
                            calibration_frames=64, cache_dir=model_cache / "downloads")
    with Exporter(options) as exporter:
        for name, path in dirs.items():
            precision, _, recipe = name.partition("_")
            exporter.options.int8_recipe = recipe or "selective"
            exporter.export(precision, path, force=True)
    return dirs


@pytest.fixture(scope="module")
def results(int8_exports: dict[str, Path]) -> dict[str, dict]:
    data = held_out(PARAMS, clips=400, streams=4, stream_frames=320, segment=24)
    out = compare(int8_exports, data, WINDOW_SECONDS)
    print("\nint8 on the trained 32 px A0 (400 held-out clips; 4 streams of 320 frames):")
    print(f"{'model':16s} {'accuracy':>9s} {'clip agr.':>9s} {'frames raw':>10s} {'windowed':>9s} {'MB':>6s}")
    for name, r in out.items():
        print(f"{name:16s} {r['accuracy']:9.3f} {r['clip_agreement']:9.1%} "
              f"{r['streams']['raw']['frame_agreement']:10.1%} {r['streams']['windowed']['frame_agreement']:9.1%} "
              f"{r['size_mb']:6.2f}")
    return out


def test_selective_int8_predicts_what_float_predicts(results: dict[str, dict]) -> None:
    """Measured: accuracy -0.2 pt, clip agreement 99.8%, frames 98.6% raw and 99.3% windowed.

    The raw streams run hundreds of frames with no window, where float's own top-2
    are often within a tenth of a logit: the same recipe on a retrained model (CI's
    training is not bit-reproducible) measured 96.9% there, one stream 93.2%.
    """
    ours, base = results["int8_selective"], results["float32"]
    assert base["accuracy"] >= 0.9
    assert ours["accuracy"] >= base["accuracy"] - 0.02
    assert ours["clip_agreement"] >= 0.97
    for mode, bound in (("raw", 0.95), ("windowed", 0.97)):
        assert ours["streams"][mode]["frame_agreement"] >= bound, (mode, ours["streams"][mode])
        assert min(ours["streams"][mode]["frame_agreement_per_stream"]) >= bound - 0.05, (mode, ours["streams"][mode])


def test_naive_int8_is_measured_beside_it_and_is_worse(results: dict[str, dict]) -> None:
    """The official-tool recipe on the same calibration (measured: 68% accuracy, 71% stream agreement)."""
    ours, naive = results["int8_selective"], results["int8_naive"]
    assert naive["clip_agreement"] < ours["clip_agreement"]
    assert naive["streams"]["raw"]["frame_agreement"] < ours["streams"]["raw"]["frame_agreement"]


def test_int8_is_4x_smaller_and_delegated_whole(int8_exports: dict[str, Path], results: dict[str, dict]) -> None:
    """int8 weights everywhere (the float blocks and the head keep int8 weights too)."""
    assert results["int8_selective"]["size_mb"] <= 0.35 * results["float32"]["size_mb"]
    ours = load_manifest(int8_exports["int8_selective"] / "manifest.json")
    naive = load_manifest(int8_exports["int8_naive"] / "manifest.json")
    # Float islands chosen for XNNPACK: the whole graph in a couple of partitions, naive falls apart.
    assert ours.conversion["delegate"]["partitions"] <= 3
    assert "AVERAGE_POOL_2D" not in ours.conversion["delegate"]["builtin_ops"]
    assert naive.conversion["delegate"]["partitions"] > 20


def test_the_plan_is_measured_and_recorded(int8_exports: dict[str, Path]) -> None:
    """The manifest says which blocks stayed float and why: the error of every candidate tried."""
    plan = load_manifest(int8_exports["int8_selective"] / "manifest.json").quantization["plan"]
    blocks = plan["blocks"]
    assert blocks[0] == "stem" and blocks[-1] == "block4_layer3" and len(blocks) == 16
    # Measured: all blocks int8 0.066 relative logit error on the calibration stream, over the tolerance.
    assert plan["tolerance"] < plan["error_all_blocks_int8"]["relative_rmse"]
    # The float blocks are a suffix (from the classifier end), the stem never in it (an int8 first
    # convolution takes camera bytes): the shortest one measured within tolerance, if any is; else
    # the one measured closest to float.
    k = len(plan["float_blocks"])
    assert 0 < k < len(blocks) and plan["float_blocks"] == blocks[-k:]
    shorter = [int(n) for n, e in plan["tried"].items() if e["relative_rmse"] <= plan["tolerance"]]
    if plan["within_tolerance"]:
        assert plan["error"]["relative_rmse"] <= plan["tolerance"] and min(shorter) == k
    else:  # every candidate measured above the tolerance: the lowest error of them
        assert not shorter
        assert plan["error"]["relative_rmse"] == min(e["relative_rmse"] for e in plan["tried"].values())
    assert plan["evaluations"] <= 7  # a bisection, not one model per block
    assert plan["head_float_nodes"] > 0
