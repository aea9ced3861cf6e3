"""The armhf (32-bit Raspberry Pi OS) tests: their marker, and the step's timings in the run's summary."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "armhf: runs the Pi guide in an emulated 32-bit Raspberry Pi OS (slow)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    # Carried as a user property of the timing test, so that it also reaches the controller under pytest-xdist.
    lines = [value for reports in terminalreporter.stats.values() for report in reports
             for key, value in getattr(report, "user_properties", []) if key == "armhf_step"]  # fmt: skip
    if lines:
        terminalreporter.write_sep("-", "armhf (32-bit Raspberry Pi OS)")
        terminalreporter.write_line(lines[-1])
