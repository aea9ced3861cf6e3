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
REPORT_PROPERTY = "arm64_step"


@pytest.fixture(scope="session")
def arm64_clock(request: pytest.FixtureRequest) -> StepClock:
    clock = StepClock()
    request.config.stash[CLOCK] = clock
    return clock


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    # The report travels as a user property of the step test, so that it also reaches
    # the controller when pytest-xdist ran the test in a worker.
    lines = [value for reports in terminalreporter.stats.values() for report in reports
             for key, value in getattr(report, "user_properties", []) if key == REPORT_PROPERTY]
    if not lines:
        clock = config.stash.get(CLOCK, None)
        lines = [clock.report()] if clock is not None and clock.parts else []
    if lines:
        terminalreporter.write_sep("-", "arm64 (issue 8)")
        terminalreporter.write_line(lines[-1])
