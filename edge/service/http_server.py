"""An HTTP/1.1 server with bounded threads, bounded connections and timeouts.

The standard library's ``ThreadingHTTPServer`` starts a thread per
connection, keeps it while the client stays connected (a keep-alive client
that never sends another request keeps it forever) and listens with a
backlog of 5: 500 idle connections held 505 threads, and a probe behind them
waited. A device runs for months next to whatever scans its network, so here:

- One thread watches every connection (a selector) and reads requests as
  they come in, without blocking; a connection costs a file descriptor, not a
  thread, until a complete request head is there.
- ``workers`` threads answer complete requests, one at a time each: the
  thread count is fixed whatever the clients do.
- At most ``max_connections`` open connections: when a new one would exceed
  it, the connection idle the longest is closed (a scanner's forgotten
  sockets go first, the probe that just connected is kept).
- A connection with no request for ``idle_timeout`` seconds is closed; a
  request head must arrive whole within ``read_timeout`` seconds of its first
  byte (a client trickling bytes holds no thread anyway); a response that
  the client does not read within ``write_timeout`` seconds is abandoned.

Request bodies are not read (the endpoints only answer GET and HEAD).
"""

from __future__ import annotations

import io
import logging
import queue
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from ..options import at_least, option, positive

log = logging.getLogger(__name__)

_HEAD_END = (b"\r\n\r\n", b"\n\n")
_MAX_HEAD = 65536  # bytes; a longer request head is refused (the stdlib's line limit)


@dataclass
class HttpLimits:
    """How much the HTTP endpoints may take from the device, whatever the clients do."""

    max_connections: int = field(default=64, metadata=option(
        "Open connections at most; beyond it the longest-idle one is closed.", check=at_least(2), cli=False))
    workers: int = field(default=4, metadata=option(
        "Threads that answer requests.", check=at_least(1), cli=False))
    idle_timeout: float = field(default=15.0, metadata=option(
        "Seconds a connection may wait without a request before it is closed.", check=positive, cli=False))
    read_timeout: float = field(default=5.0, metadata=option(
        "Seconds a request may take to arrive once it started.", check=positive, cli=False))
    write_timeout: float = field(default=5.0, metadata=option(
        "Seconds a client may take to read a response.", check=positive, cli=False))
    backlog: int = field(default=128, metadata=option(
        "Connections the kernel queues before they are accepted.", check=at_least(1), cli=False))


class _Connection:
    __slots__ = ("sock", "address", "buffer", "last_active", "request_started")

    def __init__(self, sock: socket.socket, address: Any, now: float) -> None:
        self.sock = sock
        self.address = address
        self.buffer = b""
        self.last_active = now
        self.request_started: float | None = None

    def has_request(self) -> bool:
        return any(end in self.buffer for end in _HEAD_END)


class _SocketWriter(io.BufferedIOBase):
    """A write-only file over a socket that sends everything (``socket.makefile`` may send part)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes


class OneRequestHandler(BaseHTTPRequestHandler):
    """Answers the one request the server read; what is left of the input stays with the connection."""

    def setup(self) -> None:
        connection: _Connection = self.request
        self.connection = connection.sock
        self.rfile = io.BytesIO(connection.buffer)
        self.wfile = _SocketWriter(connection.sock)

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def finish(self) -> None:
        # Pipelined requests behind this one stay for the next round.
        self.request.buffer = self.rfile.read()


class BoundedHTTPServer:
    """Serves ``handler_class`` (a :class:`OneRequestHandler`) on ``address`` within ``limits``.

    Handlers see this object as ``self.server``; attributes set on it (the
    health, the registry) are theirs to read.
    """

    def __init__(self, address: tuple[str, int], handler_class: type[OneRequestHandler],
                 limits: HttpLimits | None = None) -> None:
        self.handler_class = handler_class
        self.limits = limits or HttpLimits()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            # An operator restarting the service must get the port back at once.
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(address)
            self._listener.listen(self.limits.backlog)
        except OSError:
            self._listener.close()
            raise
        self._listener.setblocking(False)
        self.server_address = self._listener.getsockname()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._idle: dict[socket.socket, _Connection] = {}
        self._busy = 0
        self._jobs: queue.SimpleQueue[_Connection | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[_Connection, bool]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def connections(self) -> int:
        """Connections open now (waiting for a request or being answered); for tests and metrics."""
        return len(self._idle) + self._busy

    def start(self) -> None:
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._threads = [threading.Thread(target=self._loop, name="movinet-edge http", daemon=True)]
        self._threads += [
            threading.Thread(target=self._work, name=f"movinet-edge http {i}", daemon=True)
            for i in range(self.limits.workers)
        ]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Stop serving, close every connection and free the port (within a second)."""
        self._stopping.set()
        self._wake()
        for _ in range(self.limits.workers):
            self._jobs.put(None)
        deadline = time.monotonic() + 1.0
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        for conn in list(self._idle.values()):
            self._drop(conn)
        self._listener.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # ---- the selector thread ----------------------------------------------------------------
    def _loop(self) -> None:
        tick = min(0.25, self.limits.idle_timeout / 4, self.limits.read_timeout / 4)
        while not self._stopping.is_set():
            try:
                events = self._selector.select(tick)
            except OSError:
                if self._stopping.is_set():
                    return
                raise
            now = time.monotonic()
            try:
                for key, _ in events:
                    if key.fileobj is self._listener:
                        self._accept(now)
                    elif key.fileobj is self._wake_r:
                        self._take_back(now)
                    elif (conn := self._idle.get(key.fileobj)) is not None:  # type: ignore[call-overload]
                        self._read(conn, now)  # (unless evicted by an accept in this round)
                self._take_back(now)
                self._expire(now)
            except Exception:  # a bug here must not silence /healthz for good
                log.exception("HTTP: error in the connection loop; carrying on")

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # closing, or the pipe is full: the loop wakes anyway

    def _accept(self, now: float) -> None:
        while True:
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, say: try again at the next event
                log.warning("HTTP: cannot accept a connection: %s", exc)
                return
            if self.connections >= self.limits.max_connections and not self._evict():
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Connection(sock, address, now)
            self._idle[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ)

    def _evict(self) -> bool:
        """Close the connection idle the longest; False if none is idle."""
        if not self._idle:
            return False
        oldest = min(self._idle.values(), key=lambda c: c.last_active)
        self._drop(oldest)
        return True

    def _read(self, conn: _Connection, now: float) -> None:
        try:
            data = conn.sock.recv(8192)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client closed it
            self._drop(conn)
            return
        if conn.request_started is None:
            conn.request_started = now
        conn.buffer += data
        conn.last_active = now
        if conn.has_request() or len(conn.buffer) > _MAX_HEAD:
            self._dispatch(conn)

    def _dispatch(self, conn: _Connection) -> None:
        self._selector.unregister(conn.sock)
        del self._idle[conn.sock]
        self._busy += 1
        self._jobs.put(conn)

    def _take_back(self, now: float) -> None:
        try:
            while True:
                self._wake_r.recv(4096)
        except (BlockingIOError, InterruptedError, OSError):
            pass
        while True:
            try:
                conn, keep = self._done.get_nowait()
            except queue.Empty:
                return
            self._busy -= 1
            if not keep:
                _close(conn.sock)
                continue
            conn.last_active = now
            conn.request_started = now if conn.buffer else None
            self._idle[conn.sock] = conn
            self._selector.register(conn.sock, selectors.EVENT_READ)
            if conn.has_request():  # a pipelined request, already read
                self._dispatch(conn)

    def _expire(self, now: float) -> None:
        limits = self.limits
        for conn in list(self._idle.values()):
            if conn.request_started is not None:
                if now - conn.request_started > limits.read_timeout:
                    self._drop(conn)
            elif now - conn.last_active > limits.idle_timeout:
                self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        self._idle.pop(conn.sock, None)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        _close(conn.sock)

    # ---- the workers -------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            conn = self._jobs.get()
            if conn is None:
                return
            keep = False
            try:
                conn.sock.settimeout(self.limits.write_timeout)
                if len(conn.buffer) > _MAX_HEAD and not conn.has_request():
                    raise ConnectionError("request head too long")
                handler = self.handler_class(conn, conn.address, self)  # type: ignore[arg-type]
                keep = not handler.close_connection and not self._stopping.is_set()
                conn.sock.setblocking(False)
            except Exception as exc:  # a client that went away mid-response, a handler bug
                log.debug("HTTP: connection from %s ended: %s", conn.address, exc)
            if self._stopping.is_set():
                _close(conn.sock)
                continue
            self._done.put((conn, keep))
            self._wake()


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
