"""Write an export directory atomically: all of it appears, or none of it.

Files are written into a hidden staging folder beside the target; only when
everything is written is the staging folder renamed into place. An existing
output is replaced only with ``force`` (and then swapped, not deleted first,
so a failure in between keeps the old model).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import ExportError


def check_target(target: Path, force: bool) -> None:
    """Fail before any work when the output cannot or must not be written."""
    if target.exists() and not force:
        raise ExportError(f"{target} already exists; pass --force to replace it or choose another --output")
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target} exists and is not a directory; choose another --output")
    parent = target.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ExportError(f"cannot write to {parent}: {probe} is not a directory; choose another --output")
    # Try it: os.access says yes to root everywhere, and /proc, read-only
    # mounts or ACLs refuse anyway - found out only after minutes of work.
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".movinet-write-probe-", dir=probe))
    except OSError as exc:
        raise ExportError(f"cannot write to {parent}: {exc.strerror or exc}; choose another --output") from None


class StagedOutput:
    """A context manager that yields a staging dir and commits it on success."""

    def __init__(self, target: Path, force: bool) -> None:
        self.target = Path(target)
        self.force = force
        self.staging: Path | None = None

    def __enter__(self) -> Path:
        check_target(self.target, self.force)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.staging-", dir=self.target.parent))
        except OSError as exc:
            raise ExportError(
                f"cannot write to {self.target.parent}: {exc.strerror or exc}; choose another --output"
            ) from None
        return self.staging

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self.staging is not None
        if exc_type is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        try:
            self._commit()
        except BaseException:
            shutil.rmtree(self.staging, ignore_errors=True)
            raise

    def _commit(self) -> None:
        assert self.staging is not None
        os.chmod(self.staging, 0o755)
        if not self.target.exists():
            os.rename(self.staging, self.target)
            return
        if not self.force:  # appeared while we were working
            raise ExportError(f"{self.target} appeared during the export; pass --force to replace it")
        backup = self.target.parent / f".{self.target.name}.old-{os.getpid()}"
        os.rename(self.target, backup)
        try:
            os.rename(self.staging, self.target)
        except BaseException:
            os.rename(backup, self.target)
            raise
        shutil.rmtree(backup, ignore_errors=True)
