"""Output files: check that a path can be written before the work, and write it atomically after.

Two promises every command keeps: bad output paths are refused in one line
*before* minutes of work, and a run that fails or is interrupted leaves no
half-written file (an existing one stays as it was). Both live here once, for
every writer on either side of the project (annotated videos, plots,
probabilities, manifests, units, benchmark JSON).

The writability check *tries* the write (a probe file in the folder) instead
of asking ``os.access``: root is allowed everything by ``os.access``, and
``/proc``, ``/sys``, read-only mounts or ACLs refuse anyway.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import EdgeError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike[str], suffixes: tuple[str, ...] = (), what: str = "") -> Path:
    """``path`` can be created or replaced as a file; else EdgeError with what is wrong.

    ``suffixes``: the accepted file name endings (lower case, with the dot);
    ``what``: how the error names the path (e.g. ``--save``), default the path itself.
    """
    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise EdgeError(f"{name}: use a {' or '.join(suffixes)} file name")
    parent = path.parent
    if not parent.exists():
        raise EdgeError(f"cannot write {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise EdgeError(f"cannot write {path}: {parent} is not a directory")
    if path.is_dir():
        raise EdgeError(f"cannot write {path}: it is a directory")
    if path.exists() and not path.is_file():
        raise EdgeError(f"cannot write {path}: it is not a regular file")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.probe-", dir=parent)
    except OSError as exc:
        raise EdgeError(f"cannot write {path}: {exc.strerror or exc} in {parent}") from None
    os.close(fd)
    os.unlink(probe)
    return path


@contextmanager
def atomic_path(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[Path]:
    """A hidden temporary path beside ``path``; renamed onto it when the block succeeds.

    The block writes the file under the yielded name (any writer: open(),
    OpenCV, matplotlib). On an exception the temporary file is removed and
    ``path`` is untouched. ``mode``: the file mode (default: what a plain
    ``open()`` would give under the current umask).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, mode if mode is not None else 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


class AtomicFile:
    """The two halves of :func:`atomic_path` for writers that live across calls (a video sink).

    ``path``: where to write now; :meth:`commit` moves it into place, :meth:`discard` drops it.
    """

    def __init__(self, target: str | os.PathLike[str], mode: int | None = None) -> None:
        self.target = Path(target)
        self.mode = mode
        fd, tmp = tempfile.mkstemp(prefix=f".{self.target.stem}.", suffix=self.target.suffix, dir=self.target.parent)
        os.close(fd)
        self.path: Path | None = Path(tmp)

    def commit(self) -> None:
        if self.path is None:
            return
        tmp, self.path = self.path, None
        try:
            os.chmod(tmp, self.mode if self.mode is not None else 0o666 & ~_umask())
            os.replace(tmp, self.target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


def write_text_atomic(path: str | os.PathLike[str], text: str, mode: int | None = None) -> None:
    """Write a text file so that a reader never sees half of it."""
    with atomic_path(path, mode) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> None:
    """Write a binary file so that a reader never sees half of it."""
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike[str], data: Any, mode: int | None = 0o644) -> None:
    """Write JSON (indented, one trailing newline) so that a reader never sees half a file."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n", mode)
