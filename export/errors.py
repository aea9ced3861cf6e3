"""The one domain error of the export half.

Raised for everything a user can fix (a checkpoint of another model, an
unreachable URL, an output that exists); the CLI prints its one line and
exits with ``exit_code``. Anything else is a bug and keeps its traceback.
"""


class ExportError(Exception):
    """A problem the user can fix, reported as one line and a non-zero exit code."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
