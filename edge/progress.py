"""A small progress reporter for long work, shared by both halves.

Downloads, calibration and fine-tuning on the workstation, and long runs on
the device, must show that they are alive (the guide: "Long work shows
progress"). tqdm would do, but the device half keeps its dependencies to
numpy, OpenCV, typer and a TFLite interpreter, so this is the few dozen lines
we need: on a terminal one line redrawn with ``\\r`` (bar, percent, rate, ETA);
in a log (stderr not a TTY, as in CI or under systemd) a plain line at most
every couple of seconds and one at the end, so logs stay short and readable.

It imports nothing but the standard library, so ``movinet_export`` can use it
without pulling anything of the runtime in.
"""

from __future__ import annotations

import shutil
import sys
import time
from types import TracebackType
from typing import TextIO

_TTY_INTERVAL_S = 0.1  # redraws per second a terminal can take without flicker
_LOG_INTERVAL_S = 2.0  # a log line every ~2 s keeps CI logs short
_BAR_WIDTH = 20


class Progress:
    """Report progress of ``total`` units of work (``None``: unknown total).

    Use as a context manager so the final line is always written::

        with Progress(size, "downloading movinet_a0_stream.tar.gz", unit="B") as bar:
            for chunk in chunks:
                bar.update(len(chunk))

    ``unit="B"`` formats counts as bytes (KiB, MiB, ...); any other unit is
    printed after plain counts. ``initial`` is work already done before this
    reporter started (a resumed download): it counts toward the percent but
    not toward the rate. ``stream`` defaults to ``sys.stderr`` looked up when
    the reporter is made, so redirected or captured stderr is honoured.
    ``quiet=True`` turns every call into a no-op, so callers need no ``if``.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "",
        stream: TextIO | None = None,
        *,
        quiet: bool = False,
        initial: int = 0,
        interval: float | None = None,
    ) -> None:
        self.total = total if total is not None and total >= 0 else None
        self.desc = desc
        self.unit = unit
        self.n = initial
        self._initial = initial
        self._stream: TextIO = stream if stream is not None else sys.stderr
        self._quiet = quiet
        self._tty = _is_tty(self._stream)
        self._interval = interval if interval is not None else (
            _TTY_INTERVAL_S if self._tty else _LOG_INTERVAL_S
        )
        self._start = time.monotonic()
        # A terminal shows the bar at once; a log waits one interval, so
        # short work writes only its final line.
        self._last_draw: float | None = None if self._tty else self._start
        self._drawn_width = 0
        self._postfix = ""
        self._closed = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done and redraw if it is time to."""
        self.n += n
        self._maybe_draw()

    def set_postfix(self, text: str) -> None:
        """Show ``text`` after the counts (e.g. ``"loss 0.41"``) from the next redraw on."""
        self._postfix = text
        self._maybe_draw()

    def close(self) -> None:
        """Write the final line; later calls of any method do nothing."""
        if self._closed:
            return
        self._closed = True
        if self._quiet:
            return
        self._draw(final=True)

    def _maybe_draw(self) -> None:
        if self._quiet or self._closed:
            return
        now = time.monotonic()
        if self._last_draw is None or now - self._last_draw >= self._interval:
            self._draw(final=False, now=now)

    def _draw(self, *, final: bool, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._last_draw = now
        try:
            if self._tty:
                width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
                line = self._line(now - self._start, final=final, width=width)[:width]
                pad = " " * max(0, self._drawn_width - len(line))
                self._stream.write("\r" + line + pad + ("\n" if final else ""))
                self._drawn_width = len(line)
            else:
                self._stream.write(self._line(now - self._start, final=final) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            # A closed or broken stderr must not break the work it reports on.
            self._quiet = True

    def _line(self, elapsed: float, *, final: bool, width: int | None = None) -> str:
        """The status line; with ``width`` (a terminal) it gets a bar that fits."""
        head = f"{self.desc}:"
        parts = []
        fraction = None
        if self.total is not None:
            fraction = 1.0 if self.total == 0 else min(1.0, self.n / self.total)
            parts.append(f"{fraction * 100:3.0f}%")
            parts.append(f"{self._count(self.n)}/{self._count(self.total)}{self._suffix()}")
        else:
            parts.append(f"{self._count(self.n)}{self._suffix()}")
        rate = (self.n - self._initial) / elapsed if elapsed > 0 else 0.0
        if rate > 0:
            parts.append(f"{self._count(rate, rate=True)}{self._suffix()}/s")
        if final:
            parts.append(f"in {_clock(elapsed)}")
        elif self.total is not None and rate > 0 and self.n < self.total:
            parts.append(f"ETA {_clock((self.total - self.n) / rate)}")
        if self._postfix:
            parts.append(self._postfix)
        tail = " ".join(parts)
        if width is not None and fraction is not None:
            # The bar takes what the text leaves, so percent and ETA stay visible.
            room = min(_BAR_WIDTH, width - len(head) - len(tail) - 4)
            if room >= 5:
                filled = int(fraction * room)
                head += " |" + "#" * filled + " " * (room - filled) + "|"
        return f"{head} {tail}"

    def _count(self, value: float, *, rate: bool = False) -> str:
        if self.unit == "B":
            return _format_bytes(value)
        if rate and value < 100:
            return f"{value:.1f}"
        return f"{int(value)}"

    def _suffix(self) -> str:
        # Bytes carry their unit in the number ("3.2 MiB"); other units follow it.
        return "" if self.unit in ("", "B") else f" {self.unit}"


def _format_bytes(value: float) -> str:
    if value < 1024:
        return f"{int(value)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False
