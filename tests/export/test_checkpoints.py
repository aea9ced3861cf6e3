"""resolve_checkpoint() on real archives, folders and prefixes.

The checkpoints are small fake files in TensorFlow's on-disk layout (an
``.index``, data shards, a ``checkpoint`` state file): resolution never reads
their contents as tensors, so real weights would only slow the tests down.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from movinet_export.checkpoints import CheckpointRef, resolve_checkpoint
from movinet_export.errors import ExportError


def make_checkpoint(folder: Path, name: str = "ckpt-1", *, shards: int = 1,
                    state: bool = True) -> Path:
    """Write a checkpoint in TF's layout and return its prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.index").write_bytes(b"index of " + name.encode())
    for i in range(shards):
        (folder / f"{name}.data-{i:05d}-of-{shards:05d}").write_bytes(os.urandom(4096))
    if state:
        (folder / "checkpoint").write_text(
            f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    return folder / name


def files_sha256(prefix: Path) -> str:
    files = sorted(p for p in prefix.parent.iterdir() if p.name.startswith(prefix.name + "."))
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()


def official_tarball(tmp_path: Path) -> Path:
    """The layout of movinet_a0_stream.tar.gz: one folder with checkpoint, ckpt-1.*."""
    make_checkpoint(tmp_path / "src" / "movinet_a0_stream")
    archive = tmp_path / "movinet_a0_stream.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "movinet_a0_stream", arcname="movinet_a0_stream")
    return archive


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line(error: pytest.ExceptionInfo[ExportError]) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


def test_local_tarball_is_extracted_once_into_cache(tmp_path):
    archive = official_tarball(tmp_path)
    cache = tmp_path / "cache"
    digest = sha256_of(archive)

    ref = resolve_checkpoint(str(archive), cache, progress=False)

    expected = cache / "checkpoints" / digest / "movinet_a0_stream" / "ckpt-1"
    assert ref == CheckpointRef(str(expected.resolve()), str(archive), digest)
    assert Path(ref.prefix + ".index").read_bytes() == b"index of ckpt-1"
    marker = Path(ref.prefix + ".index").stat().st_mtime_ns

    again = resolve_checkpoint(str(archive), cache, progress=False)

    assert again == ref
    assert Path(ref.prefix + ".index").stat().st_mtime_ns == marker  # not extracted twice
    assert [p.name for p in (cache / "checkpoints").iterdir()] == [digest]  # no temp folders


def test_damaged_extraction_in_cache_is_redone(tmp_path):
    archive = official_tarball(tmp_path)
    cache = tmp_path / "cache"
    ref = resolve_checkpoint(str(archive), cache, progress=False)
    os.remove(ref.prefix + ".data-00000-of-00001")

    again = resolve_checkpoint(str(archive), cache, progress=False)

    assert again == ref
    assert Path(ref.prefix + ".data-00000-of-00001").is_file()


def test_file_url_tarball_is_fetched_then_extracted(tmp_path):
    archive = official_tarball(tmp_path)
    cache = tmp_path / "cache"

    ref = resolve_checkpoint(archive.as_uri(), cache, progress=False)

    assert (cache / "downloads" / "movinet_a0_stream.tar.gz").read_bytes() == archive.read_bytes()
    assert ref.source == archive.as_uri()
    assert ref.sha256 == sha256_of(archive)
    assert ref.prefix.endswith(f"/checkpoints/{ref.sha256}/movinet_a0_stream/ckpt-1")


def test_pinned_sha256_is_checked_for_urls_and_archives(tmp_path):
    archive = official_tarball(tmp_path)
    digest = sha256_of(archive)
    cache = tmp_path / "cache"

    ref = resolve_checkpoint(archive.as_uri(), cache, sha256=digest, progress=False)
    assert ref.sha256 == digest

    for spec in (archive.as_uri(), str(archive)):
        with pytest.raises(ExportError) as error:
            resolve_checkpoint(spec, tmp_path / "other-cache", sha256="f" * 64, progress=False)
        assert assert_one_line(error).startswith(f"checksum mismatch for {spec}: expected ")
        assert not (tmp_path / "other-cache" / "checkpoints").exists()


def test_http_url_tarball_is_fetched_then_extracted(tmp_path):
    archive = official_tarball(tmp_path)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{archive.name}"
        ref = resolve_checkpoint(url, tmp_path / "cache", progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()

    assert ref.sha256 == sha256_of(archive)
    assert Path(ref.prefix + ".index").read_bytes() == b"index of ckpt-1"


def tar_with(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("movinet_a0_stream/ckpt-1.index")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"index"))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return archive


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize("member", [
    tarfile.TarInfo("../escaped.txt"),
    tarfile.TarInfo("movinet_a0_stream/../../escaped.txt"),
    tarfile.TarInfo("/tmp/movinet-edge-test-escaped.txt"),
    symlink("movinet_a0_stream/link", "/etc/passwd"),
    symlink("movinet_a0_stream/link", "../../../escaped.txt"),
], ids=["dotdot", "nested-dotdot", "absolute", "absolute-link", "link-out"])
def test_archive_escaping_its_folder_is_refused(tmp_path, member):
    archive = tar_with(tmp_path, member, b"owned")
    cache = tmp_path / "cache"

    with pytest.raises(ExportError) as error:
        resolve_checkpoint(str(archive), cache, progress=False)

    assert "refusing to extract" in assert_one_line(error)
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/movinet-edge-test-escaped.txt").exists()
    assert list((cache / "checkpoints").iterdir()) == []  # no half extraction left


def test_corrupt_archive_is_one_line_error(tmp_path):
    archive = official_tarball(tmp_path)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    cache = tmp_path / "cache"

    with pytest.raises(ExportError) as error:
        resolve_checkpoint(str(archive), cache, progress=False)

    assert "download it again" in assert_one_line(error)
    assert list((cache / "checkpoints").iterdir()) == []


def test_directory_uses_its_checkpoint_state_file(tmp_path):
    folder = tmp_path / "train"
    make_checkpoint(folder, "ckpt-1")
    latest = make_checkpoint(folder, "ckpt-2")  # rewrites the state file to ckpt-2

    ref = resolve_checkpoint(str(folder), tmp_path / "cache", progress=False)

    assert ref == CheckpointRef(str(latest.resolve()), str(folder), files_sha256(latest))
    assert not (tmp_path / "cache").exists()  # local checkpoints are used in place


def test_state_file_in_a_subfolder_is_found(tmp_path):
    prefix = make_checkpoint(tmp_path / "unpacked" / "movinet_a0_stream")
    ref = resolve_checkpoint(str(tmp_path / "unpacked"), tmp_path / "cache", progress=False)
    assert ref.prefix == str(prefix.resolve())


def test_directory_without_state_file_uses_its_single_index(tmp_path):
    prefix = make_checkpoint(tmp_path / "a" / "b", "model", shards=3, state=False)
    ref = resolve_checkpoint(str(tmp_path / "a"), tmp_path / "cache", progress=False)
    assert (ref.prefix, ref.sha256) == (str(prefix.resolve()), files_sha256(prefix))


def test_ambiguous_directory_lists_the_candidates(tmp_path):
    make_checkpoint(tmp_path / "runs" / "one", state=False)
    make_checkpoint(tmp_path / "runs" / "two", state=False)

    with pytest.raises(ExportError) as error:
        resolve_checkpoint(str(tmp_path / "runs"), tmp_path / "cache", progress=False)

    message = assert_one_line(error)
    assert "several checkpoints" in message
    assert str(Path("runs") / "one" / "ckpt-1.index") in message
    assert str(Path("runs") / "two" / "ckpt-1.index") in message


def test_prefix_and_its_index_file_resolve_the_same(tmp_path):
    prefix = make_checkpoint(tmp_path / "ckpts", "ckpt-7", shards=2, state=False)

    by_prefix = resolve_checkpoint(str(prefix), tmp_path / "cache", progress=False)
    by_index = resolve_checkpoint(str(prefix) + ".index", tmp_path / "cache", progress=False)
    by_folder = resolve_checkpoint(str(prefix.parent), tmp_path / "cache", progress=False)

    assert by_prefix.prefix == by_index.prefix == by_folder.prefix == str(prefix.resolve())
    assert by_prefix.sha256 == by_index.sha256 == by_folder.sha256 == files_sha256(prefix)


def test_missing_data_shard_is_reported(tmp_path):
    prefix = make_checkpoint(tmp_path / "ckpts", shards=3)
    os.remove(f"{prefix}.data-00001-of-00003")

    with pytest.raises(ExportError) as error:
        resolve_checkpoint(str(prefix), tmp_path / "cache", progress=False)

    assert "data shard(s) 1 of 3 missing" in assert_one_line(error)


def test_state_file_naming_a_missing_checkpoint(tmp_path):
    folder = tmp_path / "train"
    make_checkpoint(folder)
    (folder / "checkpoint").write_text('model_checkpoint_path: "ckpt-9"\n')

    with pytest.raises(ExportError) as error:
        resolve_checkpoint(str(folder), tmp_path / "cache", progress=False)

    assert "ckpt-9" in assert_one_line(error)


def test_state_file_with_absolute_path_of_a_moved_folder(tmp_path):
    prefix = make_checkpoint(tmp_path / "moved")
    (tmp_path / "moved" / "checkpoint").write_text(
        'model_checkpoint_path: "/home/someone/else/ckpt-1"\n')
    ref = resolve_checkpoint(str(tmp_path / "moved"), tmp_path / "cache", progress=False)
    assert ref.prefix == str(prefix.resolve())


def test_state_file_with_escaped_non_ascii_name(tmp_path):
    prefix = make_checkpoint(tmp_path / "ckpts", "poids-\u00e9t\u00e9")
    # TF's text format writes non-ASCII bytes as octal escapes.
    (tmp_path / "ckpts" / "checkpoint").write_text(
        'model_checkpoint_path: "poids-\\303\\251t\\303\\251"\n')
    ref = resolve_checkpoint(str(tmp_path / "ckpts"), tmp_path / "cache", progress=False)
    assert ref.prefix == str(prefix.resolve())


@pytest.mark.parametrize("spec, expected", [
    ("does/not/exist", "not found"),
    ("gs://bucket/movinet_a0_stream.tar.gz", "unsupported URL scheme"),
    ("", "no checkpoint given"),
])
def test_unusable_specs_are_one_line_errors(tmp_path, spec, expected):
    with pytest.raises(ExportError) as error:
        resolve_checkpoint(spec, tmp_path / "cache", progress=False)
    assert expected in assert_one_line(error)


def test_empty_directory_and_stray_file(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(ExportError, match="no checkpoint in"):
        resolve_checkpoint(str(tmp_path / "empty"), tmp_path / "cache", progress=False)
    with pytest.raises(ExportError, match="neither an archive"):
        resolve_checkpoint(str(tmp_path / "notes.txt"), tmp_path / "cache", progress=False)


def test_resolving_does_not_import_tensorflow():
    code = ("import sys, movinet_export.checkpoints; "
            "sys.exit(any(m.split('.')[0] in {'tensorflow', 'keras', 'official'} "
            "for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
