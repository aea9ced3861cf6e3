"""Where predictions and events go: one module per kind of sink, found through :mod:`.registry`.

Pipeline sinks implement the :class:`~movinet_edge.results.Sink` protocol
(through :class:`~movinet_edge.results.BaseSink`): the console
(:mod:`.console`, :mod:`.json_lines`), an annotated video
(:mod:`.annotated_video`) and a window (:mod:`.display`). Sinks that write
files also have ``abort()``: the pipeline calls it instead of ``close()`` when
the run failed, so a failed run leaves no half-written output behind.

Network sinks (:mod:`.mqtt`, :mod:`.webhook`) take the service's stamped event
records through ``publish_event(record)``, which never blocks the frame loop:
records wait in the bounded queue of :mod:`.delivery` while the server is away.

A new sink is one new module here that declares its options and calls
:func:`.registry.register`. Names are imported on first use, so importing the
registry (``--help`` lists the kinds' options) loads neither numpy, OpenCV nor
paho-mqtt.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .annotated_video import AnnotatedVideoSink
    from .console import ConsoleSink, EventLinesSink
    from .display import DISPLAY_NEEDS_GUI, DisplaySink, opencv_has_gui
    from .formats import event_record, format_event, prediction_record
    from .json_lines import JsonLinesSink

_WHERE = {
    "AnnotatedVideoSink": "annotated_video",
    "ConsoleSink": "console",
    "EventLinesSink": "console",
    "DisplaySink": "display",
    "DISPLAY_NEEDS_GUI": "display",
    "opencv_has_gui": "display",
    "JsonLinesSink": "json_lines",
    "event_record": "formats",
    "format_event": "formats",
    "prediction_record": "formats",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
