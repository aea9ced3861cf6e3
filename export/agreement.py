"""How closely a quantized model follows its float model on the trained motion task.

Shared by the int8 test (tests/export/test_int8_quality.py) and the benchmark
(bench/int8_quality.py), so both measure the same thing. The models run in
the edge runtime (no TensorFlow here); the data is the synthetic motion task
(:mod:`movinet_export.motion_task`).

- held-out clips, each streamed from a reset: accuracy, and top-1 agreement
  with float after the last frame (clip-level agreement);
- long streams of held-out clips back to back (the direction changes every
  ``segment`` frames, nothing is reset): per-frame top-1 agreement with float
  after the first ``SKIP_FRAMES``, raw and under the edge's rescale window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .motion_task import task_dataset, task_stream

SKIP_FRAMES = 10  # per-frame agreement counts the frames after the first 10 of every stream


@dataclass
class HeldOut:
    clips: np.ndarray  # uint8 [N, T, H, W, 3]
    labels: np.ndarray
    streams: list[np.ndarray]
    stream_labels: list[np.ndarray]
    segment: int


def held_out(params: dict[str, Any], clips: int, streams: int, stream_frames: int, segment: int) -> HeldOut:
    """Clips and streams from seeds the training never used."""
    res, frames, stride, plain = params["resolution"], params["frames"], params["stride"], params["plain"]
    x, y = task_dataset(clips, res, frames, stride, seed=4242, plain=plain)
    out, out_labels = [], []
    for s in range(streams):
        rng = np.random.default_rng(900 + s)
        seq = [int(rng.integers(0, 8))]
        while len(seq) * segment < stream_frames:
            seq.append(int((seq[-1] + rng.integers(1, 8)) % 8))  # always a different direction
        out.append(task_stream(seq, segment, res, stride, seed=800 + s, plain=plain)[:stream_frames])
        out_labels.append(np.repeat(seq, segment)[:stream_frames])
    return HeldOut(x, y, out, out_labels, segment)


def open_model(path: Path, threads: int | None = None) -> Any:
    from movinet_edge.model import StreamingClassifier

    return StreamingClassifier.open(path, num_threads=threads)


def clip_predictions(clf: Any, clips: np.ndarray) -> np.ndarray:
    """Top-1 after the last frame of each clip, every clip streamed from a reset."""
    out = np.empty(len(clips), np.int64)
    for i, clip in enumerate(clips):
        clf.reset()
        for frame in clip:
            logits = clf.step_logits(frame)
        out[i] = int(np.argmax(logits))
    return out


def stream_predictions(clf: Any, stream: np.ndarray, window_seconds: float | None) -> np.ndarray:
    """Per-frame top-1 over one stream, never reset; ``window_seconds``: the edge's rescale policy."""
    from movinet_edge.windowing import WindowedClassifier

    model = WindowedClassifier(clf, window_seconds, "rescale") if window_seconds else clf
    model.reset()
    return np.array([int(np.argmax(model.step_logits(frame))) for frame in stream])


def stream_metrics(preds: list[np.ndarray], float_preds: list[np.ndarray], labels: list[np.ndarray],
                   length: int) -> dict[str, Any]:
    def by_window(x: list[np.ndarray], y: list[np.ndarray]) -> list[float]:
        return [round(float(np.mean(np.concatenate([a[i : i + 50] == b[i : i + 50] for a, b in zip(x, y)]))), 4)
                for i in range(0, length, 50)]

    agree = [a[SKIP_FRAMES:] == b[SKIP_FRAMES:] for a, b in zip(preds, float_preds)]
    return {
        "frame_agreement": float(np.mean(np.concatenate(agree))),
        "frame_agreement_per_stream": [round(float(np.mean(a)), 4) for a in agree],
        "frame_agreement_by_50_frames": by_window(preds, float_preds),
        # How meaningful the stream is: top-1 against the direction shown now, and how often the
        # prediction changes (a model stuck on its history agrees with any other stuck model).
        "accuracy": float(np.mean(np.concatenate([a[SKIP_FRAMES:] == t[SKIP_FRAMES:] for a, t in zip(preds, labels)]))),
        "accuracy_by_50_frames": by_window(preds, labels),
        "prediction_changes_per_stream": [int(np.sum(a[1:] != a[:-1])) for a in preds],
    }


def compare(dirs: dict[str, Path], data: HeldOut, window_seconds: float, reference: str = "float32",
            log: Any = lambda _: None) -> dict[str, dict[str, Any]]:
    """Accuracy, clip agreement and stream agreement (raw and windowed) of every model in ``dirs``."""
    modes = {"raw": None, "windowed": window_seconds}
    length = max(len(s) for s in data.streams)
    results: dict[str, dict[str, Any]] = {}
    preds: dict[str, np.ndarray] = {}
    streamed: dict[str, dict[str, list[np.ndarray]]] = {}
    for name, path in dirs.items():
        clf = open_model(path)
        preds[name] = clip_predictions(clf, data.clips)
        streamed[name] = {m: [stream_predictions(clf, x, w) for x in data.streams] for m, w in modes.items()}
        results[name] = {"accuracy": float(np.mean(preds[name] == data.labels)),
                         "size_mb": round((path / "model.tflite").stat().st_size / 1e6, 3)}
        log(f"{name}: accuracy {results[name]['accuracy']:.3f}")
    for name in dirs:
        results[name]["clip_agreement"] = float(np.mean(preds[name] == preds[reference]))
        results[name]["streams"] = {m: stream_metrics(streamed[name][m], streamed[reference][m], data.stream_labels,
                                                      length) for m in modes}
    return results
