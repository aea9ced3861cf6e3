"""``movinet-edge serve``: configuration -> source -> classifier -> pipeline -> sinks, until told to stop.

The order of things is what an operator relies on:

1. Signals first: a SIGTERM during a slow start still ends in a clean exit 0.
2. Source, then model: a camera that is not there fails in a second, not
   after the model loaded. Labels named in ``[events] allow/deny`` are checked
   against the model before anything is reported.
3. HTTP and MQTT start before the loop: /healthz answers "starting" and the
   broker hears "online" while the first frame is awaited.
4. READY=1 goes out with the first frame (see notify.py); WATCHDOG=1 and
   STATUS= follow from the loop.
5. SIGTERM / SIGINT: the loop finishes the frame in hand, the event detector
   ends the actions in progress (``end`` events reach MQTT), the publisher
   sends ``offline`` and waits at most a second for acknowledgements, the HTTP
   server stops; exit 0, in well under 2 s. A second signal is not caught.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from types import FrameType
from typing import Any

from .. import __version__
from ..errors import EdgeError
from ..pipeline import PipelineOptions, PipelineStats, run_pipeline
from ..postprocess import EventDetector
from ..results import BaseSink, Event
from ..sinks import AnnotatedVideoSink, ConsoleSink, JsonLinesSink, format_event
from ..sources import ReconnectPolicy, SourceSpec, decode_threads_for, open_source, quiet_opencv_logs
from .config import ConfigError, ServiceConfig
from .monitor import EventStamper, HealthOptions, ServiceMonitor, WallClock, iso_utc
from .notify import Notifier, SystemdSink

log = logging.getLogger("movinet_edge.service")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _EventLines(BaseSink):
    """Only the events, one line each: what an operator wants in the journal."""

    def on_event(self, event: Event) -> None:
        print(format_event(event), file=sys.stdout, flush=True)


class StopSignals:
    """SIGTERM and SIGINT set ``stop`` and wake the source; the previous handlers come back on exit.

    After the first signal the default handlers are back, so a second one
    ends a shutdown that hangs (SIGTERM kills, SIGINT raises KeyboardInterrupt).
    """

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.source: Any = None
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        self.stop.set()
        source = self.source
        if source is not None:
            source.stop()
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class ServeResult:
    stats: PipelineStats | None  # None: stopped before the loop started
    signal: int | None
    http_url: str | None


def serve(config: ServiceConfig, stop: threading.Event | None = None) -> ServeResult:
    """Run the service until the source ends, ``stop`` is set, SIGTERM or SIGINT.

    Raises EdgeError (ConfigError for configuration problems) when it cannot
    start or the source fails for good; returns normally on a requested stop.
    """
    stop = stop or threading.Event()
    quiet_opencv_logs()
    notifier = Notifier()
    http_url: str | None = None
    with StopSignals(stop) as signals, ExitStack() as stack:
        notifier.status("starting: opening the source")
        policy = ReconnectPolicy(
            initial_delay=config.source.reconnect_initial_delay, max_delay=config.source.reconnect_max_delay
        )

        def on_reconnect(attempt: int, delay: float, reason: str) -> None:
            # The loop is alive while a stream reconnects: keep the watchdog fed.
            notifier.ping()
            notifier.status(f"reconnecting ({reason}), attempt {attempt}", force=True)

        spec = SourceSpec(
            camera=config.source.camera,
            url=config.source.url,
            video=config.source.video,
            realtime=config.source.realtime,
            loop=config.source.loop,
            reconnect=policy,
            on_reconnect=on_reconnect,
            decode_threads=decode_threads_for(config.model.threads),
        )
        source = stack.enter_context(open_source(spec))
        signals.source = source
        if stop.is_set():
            return ServeResult(None, signals.received, None)
        _check_watchdog_budget(notifier, config)

        notifier.status("starting: loading the model")
        classifier = _open_classifier(config)
        _check_labels(config, classifier.labels)
        log.info("model %s: %d classes at %g fps", getattr(classifier, "model_path", "?"),
                 len(classifier.labels), classifier.fps)
        if stop.is_set():
            return ServeResult(None, signals.received, None)

        clock = WallClock()
        stamper = EventStamper(config.device_id, clock)
        info = {
            "version": __version__,
            "device_id": config.device_id,
            "model": str(getattr(classifier, "model_path", "")),
            "model_fps": f"{classifier.fps:g}",
            "classes": str(len(classifier.labels)),
            "source": source.name,
            "session": stamper.session,
            "started": iso_utc(time.time()),
        }
        mqtt_sink = _mqtt_sink(config, info) if config.mqtt.enabled else None
        monitor = ServiceMonitor(
            classifier.fps,
            HealthOptions(frame_timeout=config.http.frame_timeout, keep_up_ratio=config.http.keep_up_ratio),
            stamper=stamper,
            source_stats=source.stats,
            recent_events=config.http.recent_events,
            listeners=[mqtt_sink.publish_event] if mqtt_sink is not None else [],
        )
        sinks: list[Any] = [monitor]
        if config.http.enabled:
            from .health import HealthServer
            from .metrics import ServiceMetrics

            metrics = ServiceMetrics(monitor, source=source, classifier=classifier, mqtt=mqtt_sink, info=info)
            sinks.append(metrics)
            host, port = config.http_address
            server = HealthServer(monitor, metrics.registry, host, port).start()
            stack.callback(server.close)
            http_url = server.url
            log.info("HTTP on %s (/healthz, /metrics, /events)", http_url)
        systemd_sink = SystemdSink(notifier, monitor.status_line)
        sinks.append(systemd_sink)
        sinks += _output_sinks(config, source)
        if mqtt_sink is not None:
            # Last: the pipeline closes sinks in order, and this one says "offline".
            sinks.append(mqtt_sink.start())

        options = PipelineOptions(
            top_k=config.model.top_k,
            smoothing=config.smoothing_options(),
            events=config.event_options(),
        )
        notifier.status("starting: waiting for the first frame")
        log.info("serving %s as device %s", source.name, config.device_id)
        try:
            stats = run_pipeline(source, classifier, sinks, options, stop)
        finally:
            monitor.mark_stopping()
            notifier.stopping()
        log.info("stopped (%s): %s", _reason(stats, signals.received), stats.summary())
        return ServeResult(stats, signals.received, http_url)


def _reason(stats: PipelineStats, signum: int | None) -> str:
    if signum is not None:
        return signal.Signals(signum).name
    return stats.ended_by


def _check_labels(config: ServiceConfig, labels: list[str]) -> None:
    """Labels in allow/deny must be the model's: found now, not as silence for months."""
    known = set(labels)
    unknown = [name for name in (*config.events.allow, *config.events.deny) if name not in known]
    if unknown:
        where = f"{config.path}: " if config.path else ""
        raise ConfigError([
            f"{where}[events] allow/deny (or --allow/--deny): {name!r} is not a label of the model; "
            "labels are the lines of its labels.txt" for name in unknown
        ])
    EventDetector(labels, config.event_options())  # the detector's own rules, if it has more


def _open_classifier(config: ServiceConfig) -> Any:
    from ..cli import open_classifier  # the CLI's way: model resolution, quiet native logs

    classifier = open_classifier(config.model.path, config.model.labels, config.model.threads, config.model.resize)
    if not config.windowed():
        return classifier
    from ..windowing import DEFAULT_WINDOW_SECONDS, WindowedClassifier

    seconds = config.window.seconds if config.window.seconds is not None else DEFAULT_WINDOW_SECONDS
    windowed = WindowedClassifier(classifier, window_seconds=seconds, policy=config.window.policy)
    if windowed.fallback:
        log.warning("%s", windowed.fallback)
    return windowed


def _output_sinks(config: ServiceConfig, source: Any) -> list[Any]:
    sinks: list[Any] = []
    mode = config.output.console
    if mode == "events":
        sinks.append(_EventLines())
    elif mode == "predictions":
        sinks.append(ConsoleSink(sys.stdout))
    elif mode == "json":
        sinks.append(JsonLinesSink(sys.stdout))
    if config.output.save is not None:
        sinks.append(AnnotatedVideoSink(config.output.save, fps=source.fps or 30.0, top_k=min(config.model.top_k, 3)))
    return sinks


def _mqtt_sink(config: ServiceConfig, info: dict[str, str]) -> Any:
    from .mqtt import MqttOptions, MqttSink

    m = config.mqtt
    assert m.host is not None
    options = MqttOptions(
        host=m.host,
        device_id=config.device_id,
        port=config.mqtt_port,
        client_id=config.mqtt_client_id,
        topic_prefix=m.topic_prefix,
        qos=m.qos,
        retain=m.retain,
        username=m.username,
        password=config.mqtt_password(),
        keepalive=m.keepalive,
        queue_size=m.queue_size,
        reconnect_max_delay=m.reconnect_max_delay,
        tls=m.tls.enabled,
        ca_file=m.tls.ca_file,
        cert_file=m.tls.cert_file,
        key_file=m.tls.key_file,
        tls_insecure=m.tls.insecure,
    )
    return MqttSink(options, info)


def _check_watchdog_budget(notifier: Any, config: ServiceConfig) -> None:
    """Warn when a reconnect backoff could outlast the watchdog: systemd would restart a healthy wait."""
    seconds = notifier.watchdog_seconds
    if seconds is None or config.source.url is None:
        return
    if config.source.reconnect_max_delay >= seconds / 2:
        log.warning(
            "[source] reconnect_max_delay (%g s) is not well below WatchdogSec (%g s): a long reconnect "
            "backoff may get the service restarted", config.source.reconnect_max_delay, seconds,
        )

