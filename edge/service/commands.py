"""The service's CLI commands: ``movinet-edge serve`` and ``movinet-edge install-service``.

A thin layer: flags become dotted overrides of the TOML file (a flag that is
not given is None and leaves the file's value alone), the library does the
rest. Configuration problems are printed one ``error:`` line each and exit
78 (EX_CONFIG). Nothing heavy is imported until a command runs, so ``--help``
stays fast and works without the ``[service]`` extra.
"""

from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

import click

from ..app import RESIZE_POLICIES, RUNTIMES, WINDOW_POLICIES
from ..errors import EdgeError
from ..flags import sink_flags, source_flags, with_options

SERVICE_EXTRA_HINT = "the service needs its extra dependencies: pip install 'movinet-edge[service]'"


class LogLevel(str, Enum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


# CLI flag -> dotted config key, for the flags this module declares itself; the source and
# sink flags are derived from their registries (movinet_edge.flags) and map the same way.
FLAGS: dict[str, tuple[str, str]] = {
    "device_id": ("device_id", "--device-id"),
    "log_level": ("log_level", "--log-level"),
    "model": ("model.path", "--model"),
    "labels": ("model.labels", "--labels"),
    "threads": ("model.threads", "--threads"),
    "top_k": ("model.top_k", "--top-k"),
    "resize": ("model.resize", "--resize"),
    "runtime": ("model.runtime", "--runtime"),
    "pool": ("model.pool", "--pool"),
    "smoothing": ("smoothing.method", "--smoothing"),
    "alpha": ("smoothing.alpha", "--alpha"),
    "start_threshold": ("events.start_threshold", "--start-threshold"),
    "end_threshold": ("events.end_threshold", "--end-threshold"),
    "allow": ("events.allow", "--allow"),
    "deny": ("events.deny", "--deny"),
    "window_seconds": ("window.seconds", "--window-seconds"),
    "window_policy": ("window.policy", "--window-policy"),
    "http_listen": ("http.listen", "--http-listen"),
}


def collect_overrides(values: dict[str, Any], derived: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Given flags -> (dotted overrides, dotted key -> flag name)."""
    from ..sinks.registry import sink_kinds

    overrides: dict[str, Any] = {}
    flags: dict[str, str] = {}
    for name, value in values.items():
        if value is None or name not in FLAGS:
            continue
        if isinstance(value, Enum):
            value = value.value
        if isinstance(value, list) and not value:
            continue
        key, flag = FLAGS[name]
        overrides[key] = value
        flags[key] = flag
    by_group = {d.group + "." + d.key: d.flag for d in SERVE_FLAGS}
    kinds = sink_kinds()
    for group, values_ in derived.items():
        section = "source" if group == "source" else kinds[group.removeprefix("sink.")].section
        for key, value in values_.items():
            overrides[f"{section}.{key}"] = value
            flags[f"{section}.{key}"] = by_group[f"{group}.{key}"]
    return overrides, flags


SERVE_FLAGS = source_flags() + sink_flags(service=True)


def _print_problems(problems: list[str]) -> None:
    for line in problems:
        print(f"error: {line}", file=sys.stderr, flush=True)


@with_options(SERVE_FLAGS)
def serve_cmd(
    *,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML configuration (see install-service for an example).")
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Validate the configuration and exit.")] = False,
    device_id: Annotated[str | None, typer.Option("--device-id", help="This device's id in MQTT and metrics.")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Model folder or .tflite file.")] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="Labels file instead of the model's.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="Interpreter threads.")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="How many classes to report.")] = None,
    resize: Annotated[
        str | None, typer.Option("--resize", click_type=click.Choice(list(RESIZE_POLICIES)),
                                 help="How a frame becomes square (default: the model's manifest).")
    ] = None,
    smoothing: Annotated[str | None, typer.Option("--smoothing", click_type=click.Choice(["ema", "mean", "none"]),
                                                  help="Smoothing over steps.")] = None,
    alpha: Annotated[float | None, typer.Option("--alpha", help="EMA weight of the newest step.")] = None,
    start_threshold: Annotated[
        float | None, typer.Option("--start-threshold", help="Score that starts an action.")
    ] = None,
    end_threshold: Annotated[float | None, typer.Option("--end-threshold", help="Score below which it ends.")] = None,
    allow: Annotated[list[str] | None, typer.Option("--allow", help="Only events for this label (repeatable).")] = None,
    deny: Annotated[list[str] | None, typer.Option("--deny", help="No events for this label (repeatable).")] = None,
    window_seconds: Annotated[float | None, typer.Option("--window-seconds", help="Long-stream window.")] = None,
    no_window: Annotated[bool, typer.Option("--no-window", help="Keep all history (no long-stream window).")] = False,
    window_policy: Annotated[str | None, typer.Option("--window-policy", click_type=click.Choice(list(WINDOW_POLICIES)),
                                                      help="Long-stream window policy.")] = None,
    http_listen: Annotated[str | None, typer.Option("--http-listen", help="HOST:PORT for /healthz, /metrics.")] = None,
    no_http: Annotated[bool, typer.Option("--no-http", help="No HTTP endpoints.")] = False,
    log_level: Annotated[LogLevel | None, typer.Option("--log-level", help="Log detail on stderr.")] = None,
    runtime: Annotated[str | None, typer.Option("--runtime", click_type=click.Choice(list(RUNTIMES)),
                                                help="TFLite runtime (default: whichever is installed).")] = None,
    pool: Annotated[int | None, typer.Option("--pool", min=1, help="Interpreters shared by the cameras.")] = None,
    derived: dict[str, dict[str, Any]],
) -> None:
    """Run as a device service: config file, systemd notify, HTTP health and metrics, MQTT events."""
    from .config import ConfigError, load_config

    overrides, flags = collect_overrides(dict(locals()), derived)
    if no_window:
        overrides["window.enabled"], flags["window.enabled"] = False, "--no-window"
    if no_http:
        overrides["http.enabled"], flags["http.enabled"] = False, "--no-http"
    try:
        cfg = load_config(config, overrides, flag_names=flags)
    except ConfigError as exc:
        _print_problems(exc.problems)
        raise typer.Exit(exc.exit_code) from None
    _require_extras(cfg)  # --check too: it reports what serve would fail on
    if check:
        cameras = ", ".join(c.id for c in cfg.cameras)
        print(f"{config or 'the flags'}: configuration OK (device {cfg.device_id}, cameras: {cameras})")
        return
    _setup_logging(cfg.log_level)
    from .runner import serve

    try:
        serve(cfg)  # it logs how the run ended
    except ConfigError as exc:
        _print_problems(exc.problems)
        raise typer.Exit(exc.exit_code) from None


def _require_extras(cfg: Any) -> None:
    """The [service] extra's packages that this configuration uses must be there: say so in one line."""
    from ..sinks.registry import missing_packages, sink_kinds

    needed = [("systemd_watchdog", "systemd-watchdog")]
    if cfg.http.enabled:
        needed.append(("prometheus_client", "prometheus-client"))
    kinds = sink_kinds()
    for key in cfg.run_config().sinks:
        needed += kinds[key].requires
    missing = missing_packages(needed)
    if missing:
        raise EdgeError(f"{SERVICE_EXTRA_HINT} ({', '.join(missing)} missing)")


def _setup_logging(level: str) -> None:
    """Log lines for the journal: it adds time and unit, so no timestamps here."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # paho-mqtt logs every packet at debug; its warnings are enough unless debugging it.
    logging.getLogger("movinet_edge.sinks.mqtt.paho").setLevel(
        logging.DEBUG if level == "debug" else logging.WARNING
    )


def install_service_cmd(
    user: Annotated[
        bool, typer.Option("--user", help="A user unit (systemctl --user) instead of a system one.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config the unit runs with (default: /etc/movinet-edge/config.toml, "
                     "or ~/.config/movinet-edge/config.toml with --user); the example is copied there if missing."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the unit here instead of systemd's folder.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing, different unit.")] = False,
    print_only: Annotated[bool, typer.Option("--print", help="Print the unit and write nothing.")] = False,
) -> None:
    """Write a systemd unit for `movinet-edge serve` and say how to enable it."""
    from .unit import default_config_path, install_service, render_unit, service_command

    if print_only:
        cfg = (config or default_config_path(user)).expanduser().absolute()
        sys.stdout.write(render_unit(service_command(), cfg, user=user))
        return
    result = install_service(user=user, config=config, output=output, force=force)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    state = "wrote" if result.unit_changed else "unchanged:"
    print(f"{state} {result.unit_path}")
    if result.config_created:
        print(f"wrote {result.config_path} (the example configuration)")
    print("next:")
    for step in result.next_steps:
        print(f"  {step}")


def register(app: typer.Typer) -> None:
    """Add the service commands to the ``movinet-edge`` app."""
    app.command("serve")(serve_cmd)
    app.command("install-service")(install_service_cmd)
