"""The arm64 step's clock: issue 8 wants the step under 12 minutes on every CI run.

What is timed is the step's own work: probing qemu, preparing the guest (a cold
rootfs build, the wheel, the aarch64 packages, the import check) and the
commands the tests run, emulated and native. The x86 model export that
``float_model_dir`` may do first belongs to the run, not to this step, so it
is not counted. The total is checked by the last test of test_arm64.py and
printed at the end of the pytest run, so CI logs show it on every run.
"""

from __future__ import annotations

import pytest

from arm64.step_clock import StepClock

CLOCK = pytest.StashKey[StepClock]()


@pytest.fixture(scope="session")
def arm64_clock(request: pytest.FixtureRequest) -> StepClock:
    clock = StepClock()
    request.config.stash[CLOCK] = clock
    return clock


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    clock = config.stash.get(CLOCK, None)
    if clock is not None and clock.parts:
        terminalreporter.write_sep("-", "arm64 (issue 8)")
        terminalreporter.write_line(clock.report())
