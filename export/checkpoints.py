"""Turn what the user passed as ``--checkpoint`` into a TensorFlow checkpoint prefix.

Users hold checkpoints in four shapes: the official tarball's URL, that
tarball downloaded by hand (air-gapped machines), the folder it or a
fine-tuning run left, or the prefix itself (``.../ckpt-1``). All of them end
here as one :class:`CheckpointRef` whose ``prefix`` is what
``tf.train.Checkpoint.restore`` takes and whose ``sha256`` identifies the
weights in the manifest and in cache keys.

This module does not import TensorFlow: resolving a checkpoint must fail fast
and clearly (a typo in a path, a corrupt download) before the seconds that
importing TensorFlow costs, and the ``checkpoint`` state file is simple text.

Archives are extracted under ``<cache>/checkpoints/<archive sha256>/``, into a
temporary folder renamed into place when complete, so an interrupted or
concurrent extraction never leaves a half-filled folder that a later run
would trust. Members with absolute paths or ``..`` are refused outright, and
extraction runs with tarfile's ``"data"`` filter (no devices, no links out).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from movinet_export.download import SCHEMES, fetch, sha256_file
from movinet_export.errors import ExportError

__all__ = ["CheckpointRef", "resolve_checkpoint"]

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_STATE_LINE_RE = re.compile(
    r"""^\s*model_checkpoint_path\s*:\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*$"""
)
_ESCAPE_RE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"a": b"\a", b"b": b"\b",
                   b"f": b"\f", b"v": b"\v"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CheckpointRef:
    """A resolved checkpoint.

    ``prefix``: absolute checkpoint prefix (``PREFIX.index`` exists), ready for
    ``tf.train.Checkpoint.restore``. ``source``: the spec as the user gave it
    (URL or path), recorded for provenance. ``sha256``: the archive's sha256
    for URLs and archives, else the sha256 over the ``.index`` file and the
    data shards' bytes in name order - so the same weights give the same digest
    wherever they sit.
    """

    prefix: str
    source: str
    sha256: str


def resolve_checkpoint(spec: str, cache_dir: Path, *, progress: bool = True,
                       sha256: str | None = None) -> CheckpointRef:
    """Resolve a URL, archive, directory or prefix to a checkpoint prefix.

    URLs (http, https, file) must point at a ``.tar.gz``/``.tar`` archive;
    they are downloaded into ``<cache_dir>/downloads`` (resumable, verified)
    and extracted like a local archive. ``sha256`` pins an archive's content
    (the model zoo knows the official tarballs'); it does not apply to
    directories and prefixes, whose digest is computed, not published.
    """
    if not spec or not spec.strip():
        raise ExportError("no checkpoint given; pass a URL, a .tar.gz, a directory or a prefix")
    cache_dir = Path(cache_dir)
    url = _URL_RE.match(spec)
    if url:
        if url.group(1).lower() not in SCHEMES:
            raise ExportError(
                f"cannot fetch checkpoint {spec}: unsupported URL scheme {url.group(1)!r}; "
                "use http(s):// or file://, or download it yourself and pass the local file"
            )
        archive = fetch(spec, cache_dir / "downloads", sha256=sha256, progress=progress,
                        local="the local path (e.g. --checkpoint PATH)")
        return _from_archive(archive, spec, cache_dir)

    path = Path(spec).expanduser()
    if path.is_file() and path.name.lower().endswith(_ARCHIVE_SUFFIXES):
        return _from_archive(path, spec, cache_dir, expected=sha256)
    if path.is_dir():
        prefix = _prefix_in_directory(path)
        return CheckpointRef(str(prefix), spec, _prefix_sha256(prefix))
    if path.is_file() and path.suffix == ".index":  # ckpt-1.index means ckpt-1
        path = path.with_suffix("")
    if _index(path).is_file():
        prefix = path.resolve()
        return CheckpointRef(str(prefix), spec, _prefix_sha256(prefix))
    if path.is_file():
        raise ExportError(
            f"checkpoint {spec} is neither an archive (.tar.gz, .tgz, .tar) nor a checkpoint "
            "prefix; pass the archive, the folder holding the checkpoint, or its prefix "
            "(PREFIX.index must exist)"
        )
    raise ExportError(
        f"checkpoint {spec} not found: no such file, directory or prefix (PREFIX.index); "
        "pass a URL, a .tar.gz, a checkpoint directory or a prefix"
    )


def _from_archive(archive: Path, source: str, cache_dir: Path,
                  expected: str | None = None) -> CheckpointRef:
    """Extract ``archive`` once per content into the cache and resolve the prefix in it."""
    try:
        digest = sha256_file(archive)
    except OSError as exc:
        raise ExportError(
            f"cannot read checkpoint archive {archive}: {exc.strerror or exc}"
        ) from exc
    if expected is not None and digest != expected.strip().lower():
        raise ExportError(
            f"checksum mismatch for {archive}: expected {expected}, got {digest}; "
            "the archive is damaged or another model's - download it again"
        )
    root = cache_dir / "checkpoints" / digest
    if root.is_dir():
        try:
            return CheckpointRef(str(_prefix_in_extraction(root)), source, digest)
        except ExportError:
            # Someone edited the cache by hand; the archive is the truth.
            shutil.rmtree(root, ignore_errors=True)
    _extract(archive, root)
    return CheckpointRef(str(_prefix_in_extraction(root)), source, digest)


def _extract(archive: Path, root: Path) -> None:
    if not hasattr(tarfile, "data_filter"):
        raise ExportError("extracting checkpoint archives safely needs Python 3.11.4 or newer; "
                          "upgrade Python, or extract the archive yourself and pass the folder")
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    except OSError as exc:
        raise ExportError(
            f"cannot write to cache {root.parent}: {exc.strerror or exc}; "
            "choose another cache with MOVINET_CACHE_DIR"
        ) from exc
    try:
        try:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                for member in members:
                    _refuse_unsafe(member, archive)
                tar.extractall(tmp, members=members, filter="data")
        except tarfile.FilterError as exc:
            raise ExportError(
                f"refusing to extract {archive}: {_one_line(exc)}; the archive is unsafe, "
                "get the checkpoint from a trusted source"
            ) from exc
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise ExportError(
                f"cannot read checkpoint archive {archive}: {_one_line(exc)}; "
                "the file is corrupt or not a .tar.gz - download it again"
            ) from exc
        except OSError as exc:
            raise ExportError(
                f"cannot extract {archive} into {root.parent}: {_one_line(exc)}; "
                "check free space or choose another cache with MOVINET_CACHE_DIR"
            ) from exc
        try:
            tmp.rename(root)
        except OSError:
            if not root.is_dir():
                raise
            # Another process extracted the same archive first; use its copy.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _refuse_unsafe(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse what the "data" filter would silently rewrite (it strips leading slashes)."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")) or ".." in name.parts:
        raise ExportError(
            f"refusing to extract {archive}: member {member.name!r} escapes the extraction "
            "folder; the archive is unsafe, get the checkpoint from a trusted source"
        )


def _prefix_in_extraction(root: Path) -> Path:
    prefix = _prefix_in_directory(root)
    if not prefix.resolve().is_relative_to(root.resolve()):
        raise ExportError(
            f"the checkpoint state file in {root} points outside the archive ({prefix}); "
            "the archive is unusable, get the checkpoint from a trusted source"
        )
    _checkpoint_files(prefix)
    return prefix


def _prefix_in_directory(directory: Path) -> Path:
    """The checkpoint a directory means: its state file's, else its only ``*.index``.

    A state file may sit in a subfolder (the official tarballs hold one folder
    with ``checkpoint`` in it); several state files or several ``*.index``
    files without one are ambiguous, and guessing would load the wrong weights.
    """
    states = [directory / "checkpoint"] if (directory / "checkpoint").is_file() else sorted(
        p for p in directory.rglob("checkpoint") if p.is_file()
    )
    if len(states) == 1:
        return _prefix_from_state(states[0])
    if len(states) > 1:
        raise ExportError(
            f"{directory} holds several checkpoints ({_listing(p.parent for p in states)}); "
            "pass one of those folders or a prefix"
        )
    indexes = sorted(p for p in directory.rglob("*.index") if p.is_file())
    if not indexes:
        raise ExportError(
            f"no checkpoint in {directory}: no 'checkpoint' state file and no *.index file; "
            "pass the folder holding the checkpoint, its prefix, or the official .tar.gz"
        )
    if len(indexes) > 1:
        raise ExportError(
            f"{directory} holds several checkpoints ({_listing(indexes)}); "
            f"pass one prefix, e.g. {indexes[0].with_suffix('')}"
        )
    return indexes[0].with_suffix("").resolve()


def _prefix_from_state(state: Path) -> Path:
    """Read ``model_checkpoint_path`` from a ``checkpoint`` file (protobuf text format)."""
    try:
        lines = state.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read checkpoint state file {state}: {_one_line(exc)}") from exc
    for line in lines:
        match = _STATE_LINE_RE.match(line)
        if match:
            raw = match.group(1) if match.group(1) is not None else match.group(2)
            value = _unescape(raw)
            break
    else:
        raise ExportError(
            f"checkpoint state file {state} names no model_checkpoint_path; "
            "pass the checkpoint prefix instead"
        )
    directory = state.parent
    named = Path(value)
    prefix = named if named.is_absolute() else directory / named
    if not _index(prefix).is_file() and named.is_absolute():
        # TF1 savers wrote absolute paths; the folder may have moved since.
        prefix = directory / named.name
    if not _index(prefix).is_file():
        raise ExportError(
            f"checkpoint state file {state} names {value!r} but {_index(prefix)} does not exist; "
            "pass an existing checkpoint prefix instead"
        )
    return prefix.resolve()


def _unescape(raw: str) -> str:
    """Undo protobuf text-format escapes; TF writes non-ASCII paths as octal bytes."""
    def one(match: re.Match[bytes]) -> bytes:
        octal, hexa, char = match.groups()
        if octal is not None:
            return bytes([int(octal, 8) & 0xFF])
        if hexa is not None:
            return bytes([int(hexa, 16)])
        return _SIMPLE_ESCAPES.get(char, char)

    data = _ESCAPE_RE.sub(one, raw.encode("utf-8"))
    return data.decode("utf-8", errors="surrogateescape")


def _prefix_sha256(prefix: Path) -> str:
    """sha256 over PREFIX.index and every data shard, in name order."""
    digest = hashlib.sha256()
    try:
        for file in _checkpoint_files(prefix):
            with open(file, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
    except OSError as exc:
        raise ExportError(f"cannot read checkpoint {prefix}: {_one_line(exc)}") from exc
    return digest.hexdigest()


def _checkpoint_files(prefix: Path) -> list[Path]:
    """PREFIX.index and its data shards sorted by name; a missing shard is an error.

    Checked here rather than left to TensorFlow, whose error for a missing
    shard comes minutes later and reads like a bug.
    """
    shard_re = re.compile(re.escape(prefix.name) + r"\.data-(\d{5})-of-(\d{5})")
    shards: dict[int, Path] = {}
    counts: set[int] = set()
    try:
        candidates = list(prefix.parent.iterdir())
    except OSError as exc:
        raise ExportError(
            f"cannot read checkpoint folder {prefix.parent}: {_one_line(exc)}"
        ) from exc
    for candidate in candidates:
        match = shard_re.fullmatch(candidate.name)
        if match:
            shards[int(match.group(1))] = candidate
            counts.add(int(match.group(2)))
    if not shards:
        raise ExportError(
            f"checkpoint {prefix} has no data shards ({prefix.name}.data-00000-of-NNNNN); "
            "copy the whole checkpoint, not only its .index"
        )
    if len(counts) > 1:
        raise ExportError(
            f"checkpoint {prefix} mixes data shards of different saves "
            f"(of {', '.join(str(c) for c in sorted(counts))}); copy the checkpoint again"
        )
    expected = counts.pop()
    missing = [i for i in range(expected) if i not in shards]
    if missing:
        raise ExportError(
            f"checkpoint {prefix} is incomplete: data shard(s) {', '.join(map(str, missing))} "
            f"of {expected} missing; copy the whole checkpoint again"
        )
    return sorted([_index(prefix), *shards.values()], key=lambda p: p.name)


def _index(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".index")


def _listing(paths: Iterable[Path], limit: int = 5) -> str:
    items = [str(p) for p in paths]
    more = f", and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
