"""Download files into a local cache, resumably and verified.

Official MoViNet checkpoints are tarballs of tens to hundreds of MiB fetched
from Google Cloud Storage by workstations behind flaky links, so a download
must survive being cut off (the ``.part`` is kept and resumed with an HTTP
``Range`` request), must never leave a file that looks complete but is not
(the final name appears only by an atomic rename after the size and sha256
are checked), and must not be trusted blindly on the next run (every cache
hit is re-hashed against the ``<name>.sha256`` sidecar written with it).
Two processes asking for the same file (two exports started by a script)
serialise on an ``fcntl`` lock, so the second one finds a cache hit instead of
writing into the same ``.part``.

Only the standard library is used (``urllib``): the export half should not
grow a ``requests`` dependency for one GET. Every failure the user can act on
(no network, a 404, a wrong checksum) is one :class:`ExportError` line saying
what to do, e.g. pass a local file on an air-gapped machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from movinet_edge.files import write_text_atomic
from movinet_edge.progress import Progress

from movinet_export import __version__
from movinet_export.errors import ExportError

__all__ = ["default_cache_dir", "fetch", "sha256_file"]

log = logging.getLogger(__name__)

SCHEMES = ("http", "https", "file")
_CHUNK = 1 << 20
_USER_AGENT = f"movinet-edge/{__version__} (+urllib)"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE_RE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)
# What to do without a network; ``{local}`` names where the local path goes, given by the caller
# (a checkpoint and a labels file come in through different options).
_OFFLINE_HINT = "on a machine without network access, download the file elsewhere and pass {local}"


def default_cache_dir() -> Path:
    """Where downloads and extracted checkpoints live between runs.

    ``$MOVINET_CACHE_DIR`` wins (CI and shared machines point it at a big
    disk), then the XDG base-directory convention, then ``~/.cache``.
    """
    explicit = os.environ.get("MOVINET_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "movinet-edge"
    return Path.home() / ".cache" / "movinet-edge"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so big checkpoints do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    url: str,
    cache_dir: Path,
    *,
    sha256: str | None = None,
    filename: str | None = None,
    progress: bool = True,
    timeout: float = 60,
    local: str = "its local path instead",
) -> Path:
    """Return the path of ``url``'s content in ``cache_dir``, downloading it if needed.

    ``sha256`` pins the expected content: a cached or downloaded file that
    differs is rejected. Without it the digest of the first download is
    recorded and later cache hits are checked against that. ``filename``
    names the cached file when the URL's last path segment does not.
    ``timeout`` bounds each connect and each read, not the whole download.
    ``local``: where the errors tell an offline user to pass the file instead.
    """
    hint = _OFFLINE_HINT.format(local=local)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise ExportError(
            f"cannot download {url}: unsupported URL scheme {scheme or '(none)'!r}; "
            f"use http://, https:// or file://, or {hint}"
        )
    expected = _normalise_sha256(sha256)
    name = _cache_name(url, filename)
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(
            f"cannot create cache directory {cache_dir}: {exc.strerror or exc}; "
            "choose another one with MOVINET_CACHE_DIR"
        ) from exc

    final = cache_dir / name
    sidecar = cache_dir / f"{name}.sha256"
    with _locked(cache_dir / f"{name}.lock", name, announce=progress):
        if _cache_hit(final, sidecar, expected):
            return final
        part = cache_dir / f"{name}.part"
        state = cache_dir / f"{name}.part.json"
        digest = _download(url, part, state, name=name, progress=progress, timeout=timeout, hint=hint)
        if expected is not None and digest != expected:
            _remove(part, state)
            raise ExportError(
                f"checksum mismatch for {url}: expected {expected}, got {digest}; "
                "the download was deleted - run again, and if it persists the file on the "
                "server changed or the expected checksum is wrong"
            )
        try:
            _write_sidecar(sidecar, digest, name)
            os.replace(part, final)
        except OSError as exc:
            raise ExportError(
                f"cannot store {name} in {cache_dir}: {exc.strerror or exc}; "
                "check the disk, or choose another cache with MOVINET_CACHE_DIR"
            ) from exc
        _remove(state)
    return final


def _normalise_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not _SHA256_RE.match(value):
        raise ExportError(f"{sha256!r} is not a sha256 checksum; expected 64 hex digits")
    return value


def _cache_name(url: str, filename: str | None) -> str:
    name = filename if filename is not None else urllib.parse.unquote(
        urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    )
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise ExportError(
            f"cannot name the cached copy of {url}: {name!r} is not a file name; pass filename="
        )
    return name


@contextlib.contextmanager
def _locked(lock_path: Path, name: str, *, announce: bool) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` for the duration.

    ``flock`` is released by the kernel when a process dies, so a killed
    download never leaves the cache locked. The lock file itself stays: removing
    it would race with a process that has just opened it.
    """
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ExportError(
            f"cannot lock {lock_path}: {exc.strerror or exc}; "
            "make the cache writable or choose another with MOVINET_CACHE_DIR"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if announce:
                print(f"waiting for another process downloading {name} ({lock_path})",
                      file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the lock


def _cache_hit(final: Path, sidecar: Path, expected: str | None) -> bool:
    """True when ``final`` is present and matches its recorded (and expected) sha256.

    Anything else that is there is deleted, so the caller downloads afresh: a
    cache entry that cannot be verified is worth less than a re-download.
    """
    if not final.exists():
        return False
    if final.is_dir():
        raise ExportError(f"{final} is a directory, not a cached download; remove it and run again")
    recorded = _read_sidecar(sidecar)
    try:
        actual = sha256_file(final)
    except OSError:
        actual = None
    if actual is not None and expected is not None and actual == expected:
        if recorded != actual:  # the pinned checksum outranks a missing or stale sidecar
            with contextlib.suppress(OSError):
                _write_sidecar(sidecar, actual, final.name)
        return True
    if actual is not None and expected is None and actual == recorded:
        return True
    log.warning("cached %s does not match its checksum; downloading it again", final)
    _remove(final, sidecar)
    return False


def _download(url: str, part: Path, state: Path, *, name: str, progress: bool, hint: str,
              timeout: float) -> str:
    """Bring ``part`` to the full content of ``url`` and return its sha256.

    Resumes an existing ``part`` with ``Range`` (and ``If-Range``, so a file
    that changed on the server since is fetched whole instead of spliced).
    Raises ExportError with the ``.part`` kept when the transfer is cut short.
    """
    # At most two rounds: the second only after the server refused to resume.
    for _ in range(2):
        offset = _resumable_offset(part, state, url)
        headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            validator = _if_range(state)
            if validator:
                headers["If-Range"] = validator
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                              timeout=timeout)
        except urllib.error.HTTPError as exc:
            with contextlib.closing(exc):
                if exc.code == 416 and offset:
                    match = _UNSATISFIED_RANGE_RE.match(exc.headers.get("Content-Range", ""))
                    if match and int(match.group(1)) == offset:
                        return sha256_file(part)  # the part was complete already
                    _remove(part, state)
                    continue
                raise ExportError(
                    f"cannot download {url}: HTTP {exc.code} {_one_line(exc.reason)}; "
                    f"check the URL, or {hint}"
                ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise _network_error(url, exc, timeout, hint) from exc

        with response:
            status = response.getcode() or 200  # file:// answers without a status
            digest = hashlib.sha256()
            if status == 206:
                match = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != offset:
                    _remove(part, state)  # a range we did not ask for: start over
                    continue
                total = None if match.group(3) == "*" else int(match.group(3))
                with open(part, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                mode = "ab"
            else:
                # 200: the server ignored Range, or If-Range found the file changed.
                offset = 0
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                _write_state(state, url, response.headers)
                mode = "wb"
            received = _copy(response, part, mode, digest, url=url, offset=offset,
                             total=total, name=name, progress=progress)
        if total is not None and received != total:
            if received > total:
                _remove(part, state)
                raise ExportError(
                    f"download of {url} sent {received} bytes where {total} were announced; "
                    "it was deleted, run again"
                )
            raise ExportError(
                f"download of {url} stopped at {received} of {total} bytes; "
                "run the command again to resume it"
            )
        return digest.hexdigest()
    raise ExportError(f"cannot download {url}: the server keeps refusing to resume; run again")


def _copy(response: http.client.HTTPResponse, part: Path, mode: str, digest: "hashlib._Hash",
          *, url: str, offset: int, total: int | None, name: str, progress: bool) -> int:
    """Stream the response body into ``part``; return the size ``part`` reached."""
    received = offset
    try:
        out = open(part, mode)
    except OSError as exc:
        raise ExportError(
            f"cannot write {part}: {exc.strerror or exc}; check the cache directory"
        ) from exc
    with out, Progress(total, f"downloading {name}", unit="B", initial=offset,
                       quiet=not progress) as bar:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                of_total = f" of {total}" if total is not None else ""
                raise ExportError(
                    f"download of {url} stopped at {received}{of_total} bytes "
                    f"({_one_line(exc) or type(exc).__name__}); run the command again to resume it"
                ) from exc
            if not chunk:
                break
            try:
                out.write(chunk)
            except OSError as exc:
                raise ExportError(
                    f"cannot write {part}: {exc.strerror or exc}; free some space or choose "
                    "another cache with MOVINET_CACHE_DIR, then run again to resume"
                ) from exc
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())  # the rename that follows must not outrun the data
    return received


def _resumable_offset(part: Path, state: Path, url: str) -> int:
    """Size of a ``.part`` left by an earlier download of this same URL, else 0."""
    try:
        size = part.stat().st_size
    except FileNotFoundError:
        return 0
    recorded = _read_state(state)
    if recorded is not None and recorded.get("url") != url:
        _remove(part, state)  # another URL with the same file name: not ours to extend
        return 0
    return size


def _if_range(state: Path) -> str | None:
    recorded = _read_state(state) or {}
    etag = recorded.get("etag")
    if etag and not etag.startswith("W/"):  # If-Range needs a strong validator
        return etag
    return recorded.get("last_modified") or None


def _read_state(state: Path) -> dict[str, str] | None:
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(state: Path, url: str, headers: http.client.HTTPMessage) -> None:
    """Remember what the ``.part`` is a prefix of, for a later resume."""
    data = {"url": url, "etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
    with contextlib.suppress(OSError):
        write_text_atomic(state, json.dumps(data))


def _read_sidecar(sidecar: Path) -> str | None:
    try:
        text = sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    fields = text.split()
    if fields and _SHA256_RE.match(fields[0].lower()):
        return fields[0].lower()
    return None


def _write_sidecar(sidecar: Path, digest: str, name: str) -> None:
    """Write ``sha256sum``'s format, so ``sha256sum -c`` can check the cache too."""
    write_text_atomic(sidecar, f"{digest}  {name}\n")


def _network_error(url: str, exc: BaseException, timeout: float, hint: str) -> ExportError:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return ExportError(
            f"cannot download {url}: no answer within {timeout:g} s; check the network and "
            f"run again (a partial download resumes), or {hint}"
        )
    text = _one_line(reason) or type(reason).__name__
    if urllib.parse.urlsplit(url).scheme.lower() == "file":
        return ExportError(f"cannot read {url}: {text}; check the path")
    return ExportError(
        f"cannot download {url}: {text}; "
        f"check the network or proxy settings (HTTPS_PROXY), or {hint}"
    )


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
