"""Seconds per part of the arm64 step (issue 8: under 12 minutes on every CI run).

Shared by conftest.py (the session fixture and the end-of-run line) and test_arm64.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

STEP_LIMIT_S = 12 * 60


@dataclass
class StepClock:
    """Seconds per part of the arm64 step, in the order the parts ran."""

    parts: dict[str, float] = field(default_factory=dict)
    limit_s: float = STEP_LIMIT_S

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.parts[part] = self.parts.get(part, 0.0) + time.monotonic() - started

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def report(self) -> str:
        parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.parts.items())
        return (f"arm64 step: {self.total:.0f} s ({self.total / 60:.1f} min) of the {self.limit_s / 60:g} min limit"
                f" [{parts}]")
