"""The one domain error of the device runtime.

Every failure a user can cause or fix (a missing model, a camera that does not
open, labels that do not fit) is raised as :class:`EdgeError` with a message of
one line saying what is wrong and what to do. The CLI turns it into that line
on stderr and ``exit_code``; anything else is a bug and keeps its traceback.
"""


class EdgeError(Exception):
    """A problem the user can fix, reported as one line and a non-zero exit code."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
