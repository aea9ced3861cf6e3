"""fetch() against a real HTTP server on 127.0.0.1.

The server is http.server in a thread, with knobs the tests turn: cut the
connection halfway through a body (an interrupted download), ignore Range
(servers that always answer 200), change a file between requests (If-Range),
or hold a request (timeouts, two processes racing for one file). Every request
is logged, so "served from the cache" is checked by the server not being
asked, not by timing.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from movinet_export.checkpoints import resolve_checkpoint
from movinet_export.download import default_cache_dir, fetch
from movinet_export.errors import ExportError

DATA = os.urandom(3 * (1 << 20) + 12345)  # a few read chunks, not a multiple of them
SHA = hashlib.sha256(DATA).hexdigest()


@dataclass
class Request:
    path: str
    range: str | None
    if_range: str | None
    status: int | None = None


@dataclass
class ServerState:
    """What the handler serves and how; what it was asked."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    drop_after: int | None = None  # cut the next body after this many bytes
    ignore_range: bool = False
    hold: set[str] = field(default_factory=set)  # paths that wait for `release`
    release: threading.Event = field(default_factory=threading.Event)
    asked: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str) -> str:
        return self.base + path

    def wait_for_requests(self, count: int) -> None:
        with self.asked:
            self.asked.wait_for(lambda: len(self.requests) >= count, timeout=30)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "Server"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server.state
        path = urlsplit(self.path).path
        request = Request(path, self.headers.get("Range"), self.headers.get("If-Range"))
        with state.asked:
            state.requests.append(request)
            state.asked.notify_all()
        if path in state.hold:
            state.release.wait(timeout=10)
        body = state.files.get(path)
        if body is None:
            request.status = 404
            self.send_error(404, "Not Found")
            return
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        start, status = 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", request.range or "")
        if match and not state.ignore_range and request.if_range in (None, etag):
            start = int(match.group(1))
            if start >= len(body):
                request.status = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        payload = body[start:]
        request.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("ETag", etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if state.drop_after is not None:
            cut, state.drop_after = state.drop_after, None
            self.wfile.write(payload[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the dropped connections are on purpose


@pytest.fixture
def server() -> ServerState:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.state = ServerState(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield httpd.state
    httpd.state.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def leftovers(cache: Path) -> set[str]:
    """Files in the cache other than the lock files, which stay by design."""
    return {p.name for p in cache.iterdir() if not p.name.endswith(".lock")}


def assert_one_line(error: pytest.ExceptionInfo[ExportError]) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


def test_fresh_download_shows_progress_and_records_sha256(server, cache, capsys):
    server.files["/blob.bin"] = DATA

    path = fetch(server.url("/blob.bin"), cache)

    assert path == cache / "blob.bin"
    assert path.read_bytes() == DATA
    assert (cache / "blob.bin.sha256").read_text() == f"{SHA}  blob.bin\n"
    assert leftovers(cache) == {"blob.bin", "blob.bin.sha256"}
    err = capsys.readouterr().err
    assert "downloading blob.bin" in err and "100%" in err and "MiB" in err


def test_cache_hit_does_not_contact_the_server(server, cache):
    server.files["/blob.bin"] = DATA
    first = fetch(server.url("/blob.bin"), cache, progress=False)

    second = fetch(server.url("/blob.bin"), cache, progress=False)
    pinned = fetch(server.url("/blob.bin"), cache, sha256=SHA.upper(), progress=False)

    assert first == second == pinned
    assert len(server.requests) == 1


def test_interrupted_download_keeps_part_and_resumes_with_range(server, cache):
    server.files["/blob.bin"] = DATA
    server.drop_after = len(DATA) // 2

    with pytest.raises(ExportError) as error:
        fetch(server.url("/blob.bin"), cache, progress=False)

    assert "run the command again to resume" in assert_one_line(error)
    part = cache / "blob.bin.part"
    have = part.stat().st_size
    assert 0 < have < len(DATA)
    assert not (cache / "blob.bin").exists()

    path = fetch(server.url("/blob.bin"), cache, sha256=SHA, progress=False)

    assert path.read_bytes() == DATA
    resumed = server.requests[-1]
    assert (resumed.range, resumed.status) == (f"bytes={have}-", 206)
    assert resumed.if_range is not None  # the ETag of the first answer
    assert leftovers(cache) == {"blob.bin", "blob.bin.sha256"}


def test_resume_from_server_that_ignores_range_restarts_from_zero(server, cache):
    server.files["/blob.bin"] = DATA
    server.drop_after = len(DATA) // 3
    with pytest.raises(ExportError):
        fetch(server.url("/blob.bin"), cache, progress=False)
    server.ignore_range = True

    path = fetch(server.url("/blob.bin"), cache, progress=False)

    assert path.read_bytes() == DATA
    assert server.requests[-1].range is not None and server.requests[-1].status == 200
    assert (cache / "blob.bin.sha256").read_text().split()[0] == SHA


def test_file_changed_on_server_since_part_is_fetched_whole(server, cache):
    server.files["/blob.bin"] = DATA
    server.drop_after = len(DATA) // 2
    with pytest.raises(ExportError):
        fetch(server.url("/blob.bin"), cache, progress=False)
    newer = os.urandom(len(DATA))
    server.files["/blob.bin"] = newer

    path = fetch(server.url("/blob.bin"), cache, progress=False)

    assert path.read_bytes() == newer  # not the old half spliced onto the new tail
    assert server.requests[-1].status == 200


def test_complete_part_is_finished_without_downloading_again(server, cache):
    server.files["/blob.bin"] = DATA
    cache.mkdir()
    (cache / "blob.bin.part").write_bytes(DATA)  # killed between last write and rename

    path = fetch(server.url("/blob.bin"), cache, sha256=SHA, progress=False)

    assert path.read_bytes() == DATA
    assert [r.status for r in server.requests] == [416]


def test_stale_part_longer_than_file_restarts(server, cache):
    server.files["/blob.bin"] = DATA
    cache.mkdir()
    (cache / "blob.bin.part").write_bytes(DATA + b"stale tail")

    path = fetch(server.url("/blob.bin"), cache, progress=False)

    assert path.read_bytes() == DATA
    assert [r.status for r in server.requests] == [416, 200]


def test_wrong_sha256_raises_and_leaves_nothing(server, cache):
    server.files["/blob.bin"] = DATA
    url = server.url("/blob.bin")
    wrong = "0" * 64

    with pytest.raises(ExportError) as error:
        fetch(url, cache, sha256=wrong, progress=False)

    assert assert_one_line(error).startswith(
        f"checksum mismatch for {url}: expected {wrong}, got {SHA}; ")
    assert leftovers(cache) == set()


def test_corrupt_cached_file_is_fetched_again(server, cache):
    server.files["/blob.bin"] = DATA
    path = fetch(server.url("/blob.bin"), cache, progress=False)
    damaged = bytearray(DATA)
    damaged[1000] ^= 0xFF
    path.write_bytes(bytes(damaged))

    again = fetch(server.url("/blob.bin"), cache, progress=False)

    assert again.read_bytes() == DATA
    assert len(server.requests) == 2


def test_cached_file_not_matching_pinned_sha256_is_replaced_then_rejected(server, cache):
    server.files["/blob.bin"] = DATA
    fetch(server.url("/blob.bin"), cache, progress=False)

    with pytest.raises(ExportError, match="checksum mismatch"):
        fetch(server.url("/blob.bin"), cache, sha256="1" * 64, progress=False)

    assert len(server.requests) == 2
    assert leftovers(cache) == set()


def test_file_url_is_copied_into_cache(tmp_path, cache):
    source = tmp_path / "local model.bin"
    source.write_bytes(DATA)

    path = fetch(source.as_uri(), cache, progress=False)

    assert path == cache / "local model.bin"
    assert path.read_bytes() == DATA
    assert (cache / "local model.bin.sha256").read_text().split()[0] == SHA


def test_missing_file_url_is_one_line_error(tmp_path, cache):
    with pytest.raises(ExportError) as error:
        fetch((tmp_path / "absent.tar.gz").as_uri(), cache, progress=False)
    assert "absent.tar.gz" in assert_one_line(error)


def test_http_404_is_one_line_error_that_says_what_to_do(server, cache):
    """The offline hint names where the caller takes a local file instead (a checkpoint and a labels
    file come in through different options); the downloader itself names no option."""
    with pytest.raises(ExportError) as error:
        fetch(server.url("/missing.tar.gz"), cache, progress=False, local="the local file with --labels FILE")

    message = assert_one_line(error)
    assert "HTTP 404" in message and message.endswith("pass the local file with --labels FILE")
    with pytest.raises(ExportError) as error:
        fetch(server.url("/missing.tar.gz"), cache, progress=False)
    assert "--" not in assert_one_line(error).split("HTTP 404")[1]
    assert leftovers(cache) == set()


def test_unreachable_server_is_one_line_error(cache):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there

    with pytest.raises(ExportError) as error:  # a checkpoint URL: the hint says where a local one goes
        resolve_checkpoint(f"http://127.0.0.1:{port}/x.tar.gz", cache, progress=False)

    message = assert_one_line(error)
    assert message.endswith("download the file elsewhere and pass the local path (e.g. --checkpoint PATH)")


def test_server_that_does_not_answer_times_out(server, cache):
    server.files["/slow.bin"] = DATA
    server.hold.add("/slow.bin")

    with pytest.raises(ExportError) as error:
        fetch(server.url("/slow.bin"), cache, timeout=0.3, progress=False)

    assert "no answer within 0.3 s" in assert_one_line(error)


@pytest.mark.parametrize("url", ["ftp://example.com/x.tar.gz", "gs://bucket/x.tar.gz"])
def test_unsupported_scheme(url, cache):
    with pytest.raises(ExportError, match="unsupported URL scheme"):
        fetch(url, cache, progress=False)


def test_malformed_sha256_is_refused(server, cache):
    with pytest.raises(ExportError, match="not a sha256"):
        fetch(server.url("/blob.bin"), cache, sha256="abc", progress=False)
    assert server.requests == []


def test_filename_names_the_cached_copy(server, cache):
    server.files["/download"] = DATA
    path = fetch(server.url("/download?token=1"), cache, filename="weights.bin", progress=False)
    assert path == cache / "weights.bin" and path.read_bytes() == DATA


FETCH_IN_CHILD = (
    "import sys; from pathlib import Path; from movinet_export.download import fetch; "
    "print(fetch(sys.argv[1], Path(sys.argv[2])))"
)


def test_two_processes_download_once(server, cache):
    server.files["/blob.bin"] = DATA
    server.hold.add("/blob.bin")  # keep the first download in flight
    command = [sys.executable, "-c", FETCH_IN_CHILD, server.url("/blob.bin"), str(cache)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server.wait_for_requests(1)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    waiting = second.stderr.readline()  # printed when it finds the lock taken
    server.release.set()
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)

    assert "waiting for another process downloading blob.bin" in waiting
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert out1.strip() == out2.strip() == str(cache / "blob.bin")
    assert len(server.requests) == 1
    assert (cache / "blob.bin").read_bytes() == DATA


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MOVINET_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"

    monkeypatch.delenv("MOVINET_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "movinet-edge"

    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/invalid")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "movinet-edge"
