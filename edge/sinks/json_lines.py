"""JSON lines: one object a line, ``{"type": "prediction", ...}`` and ``{"type": "event", ...}``.

The records are :func:`.formats.prediction_record` and
:func:`.formats.event_record`, so a program reading stdout sees the same
fields as one reading the service's ``/events`` or the MQTT topics. It is the
console kind's ``json`` mode (see :mod:`.console`), not a kind of its own.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from ..results import BaseSink
from .formats import event_record, prediction_record

if TYPE_CHECKING:
    from ..frames import Frame
    from ..results import Event, Prediction


class JsonLinesSink(BaseSink):
    """One JSON object a line: ``{"type": "prediction", ...}`` and ``{"type": "event", ...}``.

    Lines are flushed as they are written, so a reader at the other end of a
    pipe sees each step when it happens.
    """

    def __init__(self, stream: TextIO | None = None, close_stream: bool = False) -> None:
        self.stream = stream
        self.close_stream = close_stream

    def _write(self, record: dict[str, Any]) -> None:
        out = self.stream if self.stream is not None else sys.stdout
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        out.flush()

    def on_prediction(self, prediction: Prediction, frame: Frame) -> None:
        self._write(prediction_record(prediction))

    def on_event(self, event: Event) -> None:
        self._write(event_record(event))

    def close(self) -> None:
        if self.stream is not None:
            if self.close_stream:
                self.stream.close()
            else:
                self.stream.flush()
