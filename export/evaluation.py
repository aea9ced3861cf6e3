"""How good a fine-tuned classifier is: accuracy, per-class precision and recall, confusion matrix.

Accuracy alone hides what users need to know about their own classes (which
two actions the model mixes up, which class it never predicts), so the
report keeps the whole confusion matrix, as JSON for tools and as a PNG for
people. Pure numpy; matplotlib is imported only to draw, on its Agg canvas
directly, so nothing here changes a caller's pyplot backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class ClassMetrics:
    name: str
    precision: float | None  # None: the class was never predicted
    recall: float | None  # None: the split has no video of the class
    f1: float | None
    support: int  # videos of the class in the split


@dataclass
class Evaluation:
    split: str
    labels: list[str]
    accuracy: float
    count: int
    per_class: list[ClassMetrics]
    confusion: list[list[int]]  # rows: true class, columns: predicted class

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def confusion_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "labels": self.labels,
            "rows": "true class",
            "columns": "predicted class",
            "matrix": self.confusion,
        }

    def summary(self) -> str:
        worst = sorted((c for c in self.per_class if c.recall is not None), key=lambda c: c.recall)[:3]
        text = f"{self.split} accuracy {self.accuracy:.1%} on {self.count} videos"
        if worst and worst[0].recall is not None and worst[0].recall < 1.0:
            text += "; lowest recall: " + ", ".join(f"{c.name} {c.recall:.0%}" for c in worst)
        return text


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [num_classes, num_classes]; rows true, columns predicted."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(true, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def evaluate(split: str, labels: list[str], true: np.ndarray, predicted: np.ndarray) -> Evaluation:
    matrix = confusion_matrix(true, predicted, len(labels))
    count = int(matrix.sum())
    correct = int(np.trace(matrix))
    per_class = []
    for i, name in enumerate(labels):
        tp = int(matrix[i, i])
        predicted_i = int(matrix[:, i].sum())
        support = int(matrix[i, :].sum())
        precision = tp / predicted_i if predicted_i else None
        recall = tp / support if support else None
        f1 = None
        if precision is not None and recall is not None:
            f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        per_class.append(ClassMetrics(name, precision, recall, f1, support))
    return Evaluation(
        split=split,
        labels=list(labels),
        accuracy=correct / count if count else 0.0,
        count=count,
        per_class=per_class,
        confusion=matrix.tolist(),
    )


def plot_confusion(evaluation: Evaluation, path: Path, title: str | None = None) -> None:
    """Draw the confusion matrix (counts, row-normalised colour) as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.array(evaluation.confusion, dtype=np.float64)
    n = len(evaluation.labels)
    rows = matrix.sum(axis=1, keepdims=True)
    shade = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    side = min(40.0, max(5.0, 0.45 * n + 3.0))  # 101 classes stay legible, 2 classes stay small
    fig = Figure(figsize=(side, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(shade, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    font = max(5, min(10, int(400 / max(n, 1))))
    ax.set_xticklabels(evaluation.labels, rotation=90, fontsize=font)
    ax.set_yticklabels(evaluation.labels, fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 40:  # counts in the cells while they fit
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=font,
                            color="white" if shade[i, j] > 0.5 else "black")
    ax.set_title(title or f"{evaluation.split}: accuracy {evaluation.accuracy:.1%} ({evaluation.count} videos)")
    fig.tight_layout()
    fig.savefig(str(path), format="png")
