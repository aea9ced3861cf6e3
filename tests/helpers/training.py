"""The small trained motion model, as the tests use it.

The training and the task's data live in the package
(:mod:`movinet_export.motion_training`, :mod:`movinet_export.motion_task`),
where the benchmark (bench/int8_quality.py) takes them from too; this module
adds only the tests' own, smaller parameters.
"""

from __future__ import annotations

from typing import Any

from movinet_export.motion_task import task_clip, task_dataset, task_stream, task_videos, write_video
from movinet_export.motion_training import (
    DEFAULTS,
    RECIPE_VERSION,
    TrainedModel,
    open_residual_branches,
    train_motion_model,
    trained_motion_model,
)

# The test suite's model: small enough to train in CI (~2 minutes on 2 cores).
TEST_PARAMS: dict[str, Any] = {"resolution": 32, "stride": 2, "epochs": 7}

__all__ = [
    "DEFAULTS", "RECIPE_VERSION", "TEST_PARAMS", "TrainedModel", "open_residual_branches", "task_clip",
    "task_dataset", "task_stream", "task_videos", "train_motion_model", "trained_motion_model", "write_video",
]
