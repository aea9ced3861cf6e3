"""movinet-edge as a device service: ``movinet-edge serve`` and ``install-service``.

A device runs unattended for months, so the service adds to the pipeline what
an operator needs to trust it, each in a module of its own:

- :mod:`.config`: one TOML file with every option, checked completely at start
  (one line per problem, exit 78); CLI flags override it.
- :mod:`.notify`: systemd's notify protocol - READY once the model is loaded
  and frames arrive, WATCHDOG from the frame loop, STATUS with rates and top-1.
- :mod:`.monitor`: live rates, the health verdict, recent events, event records
  with wall-clock times and ids for a fleet.
- :mod:`.metrics` and :mod:`.health`: Prometheus metrics and the HTTP endpoints
  ``/healthz``, ``/metrics``, ``/events`` (127.0.0.1 by default).
- :mod:`.runner`: runs what :func:`movinet_edge.app.build` wires from the
  configuration (sources, model, pipelines, sinks: MQTT and webhooks are
  sinks, in :mod:`movinet_edge.sinks`), and stops cleanly on SIGTERM/SIGINT.
- :mod:`.tables`: TOML tables into the library's option dataclasses, every
  problem collected.
- :mod:`.unit`: the systemd unit (also shipped as ``movinet-edge.service``).
- :mod:`.commands`: the Typer commands registered in ``movinet_edge.cli``.

Its third-party dependencies (prometheus-client, systemd-watchdog; paho-mqtt for the MQTT sink)
are the ``[service]`` extra; nothing here is imported by the rest of the
runtime until a service command runs.
"""
