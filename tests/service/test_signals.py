"""`movinet-edge serve` stopped by a signal at chosen moments of its start-up and run: always a clean
exit 0 and no traceback, whether the signal came during the imports, the model load or the loop."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.signals import wait_for_handler
from service.support import serve_command


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2, 1.0, 3.0])
def test_a_signal_at_any_moment_is_a_clean_exit(looped_clip_config: Callable[..., Path], sig: int,
                                                delay: float) -> None:  # fmt: skip
    config = looped_clip_config()
    proc = subprocess.Popen([*serve_command(), "serve", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    started = time.monotonic()
    installed = wait_for_handler(proc.pid)  # the entry point's first act: ~30-100 ms of interpreter start
    time.sleep(max(0.0, delay - (time.monotonic() - started)))
    sent = time.monotonic()
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    print(f"serve: handler at {installed * 1000:.0f} ms; {signal.Signals(sig).name} at t={delay:g} s "
          f"-> exit 0 after {took:.2f} s")
