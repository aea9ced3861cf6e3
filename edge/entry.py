"""The ``movinet-edge`` console entry point: catch stop signals first, then import the rest.

Everything else (Typer, numpy, OpenCV, the TFLite runtime) takes from a
fraction of a second to seconds to import on a Pi; a SIGTERM from systemd or
a Ctrl-C in that time must still end in a clean exit (see :mod:`.signals`).
"""

from __future__ import annotations


def main() -> None:
    from .signals import STOP

    STOP.install()
    from .cli import main as cli_main

    cli_main()
