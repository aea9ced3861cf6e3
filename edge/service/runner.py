"""``movinet-edge serve``: a validated configuration, built by :func:`movinet_edge.app.build`, run until told to stop.

The order of things is what an operator relies on:

1. Signals first (the console entry point installs them before any import):
   a SIGTERM or SIGINT at any moment ends in a clean exit 0.
2. What can be checked without the model is checked first: the HTTP port is
   bound and network sinks (MQTT TLS material) are set up before the model
   loads, so a configuration error exits 78 in a second, not after it.
3. Sources, then model: a camera that is not there fails in a second. Labels
   named in allow/deny are checked against the model before anything is reported.
4. HTTP and MQTT start before the loop: /healthz answers "starting" and the
   broker hears "online" while the first frame is awaited.
5. READY=1 goes out with the first frame (see notify.py); WATCHDOG=1 and
   STATUS= follow from the loop.
6. SIGTERM / SIGINT: the loops finish the frame in hand, the event detectors
   end the actions in progress (``end`` events reach MQTT), the publisher
   sends ``offline`` and waits at most a second for acknowledgements, the HTTP
   server stops; exit 0, in well under 2 s. A second signal is not caught.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..app import DEFAULT_CAMERA, BuildHooks, build, run
from ..postprocess import EventDetector
from ..signals import STOP, StopRequest
from .config import ConfigError, ServiceConfig
from .monitor import EventStamper, ServiceMonitor, WallClock, iso_utc
from .notify import Notifier, SystemdSink
from .service_health import ServiceHealth

log = logging.getLogger("movinet_edge.service")


@dataclass
class ServeResult:
    stats: list[Any] | None  # PipelineStats per camera; None: stopped before the loop started
    signal: int | None
    http_url: str | None


def check_http_port(config: ServiceConfig) -> None:
    """Bind the HTTP address now: a port in use is a configuration error found before the model loads."""
    if not config.http.enabled:
        return
    host, port = config.http_address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            where = f"{config.path}: " if config.path else ""
            raise ConfigError([f"{where}[http] listen = {config.http.listen!r}: cannot listen there "
                               f"({exc.strerror or exc}); choose another port or stop what uses it"]) from None


def serve(config: ServiceConfig, stop: StopRequest | None = None) -> ServeResult:
    """Run the service until the sources end, ``stop`` is requested, SIGTERM or SIGINT.

    Raises EdgeError (ConfigError for configuration problems) when it cannot
    start or a source fails for good; returns normally on a requested stop.
    """
    stop = stop or STOP
    stop.install()
    notifier = Notifier()
    http_url: str | None = None
    check_http_port(config)
    if stop.requested:
        return ServeResult(None, stop.signum, None)
    notifier.status("starting: opening the sources")
    _check_watchdog_budget(notifier, config)
    clock = WallClock()
    stamper = EventStamper(config.device_id, clock)
    info: dict[str, str] = {"version": __version__, "device_id": config.device_id, "session": stamper.session,
                            "started": iso_utc(time.time())}  # fmt: skip
    monitors: dict[str, ServiceMonitor] = {}
    health = config.health

    def camera_sinks(camera: str, source: Any, classifier: Any) -> list[Any]:
        monitor = ServiceMonitor(classifier.fps, health, stamper=_camera_stamper(stamper, camera, config),
                                 source_stats=source.stats, recent_events=config.http.recent_events,
                                 camera=None if camera == DEFAULT_CAMERA else camera,
                                 classifier=classifier)  # fmt: skip
        monitors[camera] = monitor
        return [monitor]

    network: list[Any] = []  # filled once built: a camera's state goes to the sinks that publish it

    def on_reconnect(camera: str, attempt: int, delay: float, reason: str) -> None:
        # The loop is alive while a stream reconnects: keep the watchdog fed. The source logs it itself.
        notifier.ping()
        where = "" if camera == DEFAULT_CAMERA else f"{camera}: "
        notifier.status(f"{where}reconnecting ({reason}), attempt {attempt}", force=True)
        if attempt == 1:
            _camera_state(network, camera, False)

    def on_recovered(camera: str, outage_s: float) -> None:
        _camera_state(network, camera, True)

    run_config = config.run_config()
    hooks = BuildHooks(stop=stop.event, on_sources=stop.watch, on_reconnect=on_reconnect, on_recovered=on_recovered,
                       camera_sinks=camera_sinks, info=info)  # fmt: skip
    with build(run_config, hooks) as assembly:
        if stop.requested:
            return ServeResult(None, stop.signum, None)
        model = assembly.model
        network += assembly.network_sinks if len(assembly.streams) > 1 else []
        _check_labels(config, model.labels)
        info.update(model=str(assembly.model_path), model_fps=f"{model.fps:g}", classes=str(len(model.labels)),
                    source=", ".join(s.source.name for s in assembly.streams))  # fmt: skip
        log.info("model %s: %d classes at %g fps", assembly.model_path, len(model.labels), model.fps)
        for sink in assembly.network_sinks:
            for monitor in monitors.values():
                monitor.listeners.append(sink.publish_event)  # records carry the camera's id (several cameras)
        mqtt = assembly.network.get("mqtt")
        service_health = ServiceHealth(list(monitors.values()), mqtt=mqtt, options=health)
        if config.http.enabled:
            from .health import HealthServer
            from .metrics import ServiceMetrics

            metrics = ServiceMetrics(service_health, info=info)
            for stream in assembly.streams:
                stream.sinks.append(metrics.sink(None if stream.camera == DEFAULT_CAMERA else stream.camera))
            host, port = config.http_address
            server = HealthServer(service_health, metrics.registry, host, port, limits=config.http_limits).start()
            assembly.stack.callback(server.close)
            http_url = server.url
            log.info("HTTP on %s (/healthz, /metrics, /events)", http_url)
        for stream in assembly.streams:
            stream.sinks.append(SystemdSink(notifier, service_health.status_line))
        for sink in assembly.network_sinks:
            sink.start()
        # After the pipelines (which end the actions in progress): each says "offline" and waits
        # for its acknowledgements, all at once, so two sinks do not double the shutdown time.
        assembly.stack.callback(_close_all, assembly.network_sinks)
        if len(assembly.streams) > 1:
            for sink in assembly.network_sinks:
                if hasattr(sink, "publish_camera_state"):
                    for stream in assembly.streams:
                        sink.publish_camera_state(stream.camera, True)
        notifier.status("starting: waiting for the first frame")
        log.info("serving %s as device %s", info["source"], config.device_id)
        try:
            stats = run(assembly, stop.event)
        finally:
            service_health.mark_stopping()
            notifier.stopping()
        for stream, stat in zip(assembly.streams, stats):
            where = "" if stream.camera == DEFAULT_CAMERA else f"{stream.camera}: "
            log.info("%sstopped (%s): %s", where, _reason(stat, stop.signum), stat.summary())
        return ServeResult(stats, stop.signum, http_url)


def _close_all(sinks: list[Any]) -> None:
    threads = [threading.Thread(target=sink.close, name=f"close {type(sink).__name__}") for sink in sinks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _camera_state(sinks: list[Any], camera: str, online: bool) -> None:
    """Per-camera availability (several cameras): offline while its stream is lost."""
    for sink in sinks:
        if hasattr(sink, "publish_camera_state"):
            sink.publish_camera_state(camera, online)


def _camera_stamper(stamper: EventStamper, camera: str, config: ServiceConfig) -> EventStamper:
    """One stamper per camera (its own action ids), sharing the session and wall clock."""
    if len(config.cameras) == 1:
        return stamper
    return EventStamper(config.device_id, stamper.clock, session=stamper.session)


def _reason(stats: Any, signum: int | None) -> str:
    if signum is not None:
        return signal.Signals(signum).name
    return stats.ended_by


def _check_labels(config: ServiceConfig, labels: list[str]) -> None:
    """Labels in allow/deny must be the model's: found now, not as silence for months."""
    known = set(labels)
    problems = []
    for camera in config.cameras:
        where = "[events]" if camera.id == DEFAULT_CAMERA else f"[[cameras]] {camera.id} events"
        for name in (*camera.events.allow, *camera.events.deny):
            if name not in known:
                problems.append(f"{config.path or 'the flags'}: {where} allow/deny (or --allow/--deny): {name!r} is "
                                "not a label of the model; labels are the lines of its labels.txt")  # fmt: skip
    if problems:
        raise ConfigError(problems)
    for camera in config.cameras:
        EventDetector(labels, camera.events)  # the detector's own rules, if it has more


def _check_watchdog_budget(notifier: Any, config: ServiceConfig) -> None:
    """Warn when a reconnect backoff could outlast the watchdog: systemd would restart a healthy wait."""
    seconds = notifier.watchdog_seconds
    if seconds is None:
        return
    for camera in config.cameras:
        delay = getattr(camera.source.options, "reconnect_max_delay", None)
        if delay is not None and delay >= seconds / 2:
            log.warning(
                "[source] reconnect_max_delay (%g s) is not well below WatchdogSec (%g s): a long reconnect "
                "backoff may get the service restarted", delay, seconds,
            )

