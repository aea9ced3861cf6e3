"""The console: one line per prediction and per event, or only the events, or JSON lines.

``[output] console`` (``serve --console``) picks what goes to stdout:
``events`` (one line per action event: what an operator wants in the
journal), ``predictions`` (a line per model step as well), ``json`` (both, as
JSON lines; see :mod:`.json_lines`) or ``none``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from ..options import option
from ..results import BaseSink
from .formats import format_event
from .registry import SinkContext, SinkKind, register

if TYPE_CHECKING:
    from ..frames import Frame
    from ..results import Event, Prediction

CONSOLE_MODES = ("none", "events", "predictions", "json")


@dataclass
class ConsoleOptions:
    """What goes to stdout."""

    console: str = field(
        default="events",
        metadata=option(
            "What goes to stdout: events (a line each), predictions (a line per step too), json (JSON lines) "
            "or none.",
            choices=CONSOLE_MODES,
        ),
    )


class ConsoleSink(BaseSink):
    """One human-readable line per prediction, and one per event.

    ``  12.40s  step   62  carving ice 0.873 | ice skating 0.051 | ...  (14.2 ms)``

    Times are seconds since the first frame: a file's own times, and for a
    live source (whose timestamps are a monotonic clock) time since start.
    """

    def __init__(self, stream: TextIO | None = None, events: bool = True) -> None:
        self.stream = stream
        self.events = events
        self.origin: float | None = None

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def on_frame(self, frame: Frame) -> None:
        if self.origin is None:
            self.origin = frame.timestamp

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        if self.origin is None:
            self.origin = prediction.timestamp
        labels = " | ".join(f"{label} {score:.3f}" for label, score in prediction.top_k)
        t = prediction.timestamp - self.origin
        print(
            f"{t:8.2f}s  step {prediction.step:5d}  {labels}  ({prediction.latency_ms:.1f} ms)",
            file=self._out(),
            flush=True,
        )

    def on_event(self, event: Event) -> None:
        if not self.events:
            return
        print(format_event(event, self.origin or 0.0), file=self._out(), flush=True)


class EventLinesSink(BaseSink):
    """Only the events, one line each, on the source's own clock: what an operator wants in the journal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def on_event(self, event: Event) -> None:
        print(format_event(event), file=self.stream if self.stream is not None else sys.stdout, flush=True)


def open_console(options: ConsoleOptions, context: SinkContext) -> Any:
    from .json_lines import JsonLinesSink

    if options.console == "predictions":
        return ConsoleSink(context.stdout)
    if options.console == "json":
        return JsonLinesSink(context.stdout)
    return EventLinesSink(context.stdout)


KIND = register(
    SinkKind(
        key="console",
        section="output",
        options=ConsoleOptions,
        open=open_console,
        enabled=lambda o: o.console != "none",
        # The live command prints predictions (or JSON with --json) itself.
        live=False,
        help="Lines on stdout: events, predictions or JSON.",
    )
)
