"""A real HTTP camera for tests: MJPEG (multipart/x-mixed-replace) on 127.0.0.1.

Network cameras stream JPEGs this way; OpenCV's FFmpeg backend reads it like
any other stream URL, so a source under test takes the same code path as with
a camera on the network. The server follows a script, one entry per
connection, so tests can make it drop out, stall or refuse, and it can be
stopped and started again on the same port to play a camera that goes away
and comes back.
"""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import cv2

#: Plenty of frames for one connection: "stream until stopped".
FOREVER = 10**9


def clip_jpegs(path: Path, count: int | None = None, quality: int = 95) -> list[bytes]:
    """The first ``count`` frames of a real clip (all of them for None), each JPEG-encoded."""
    cap = cv2.VideoCapture(str(path))
    jpegs: list[bytes] = []
    try:
        while count is None or len(jpegs) < count:
            ok, bgr = cap.read()
            if not ok:
                break
            jpegs.append(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
    finally:
        cap.release()
    if not jpegs:
        raise RuntimeError(f"no frames decoded from {path}")
    return jpegs


class MjpegServer:
    """An HTTP camera on 127.0.0.1 that follows a script, one entry per connection:
    ``("frames", n)`` sends n JPEGs (cycling through ``jpegs``) then hangs up,
    ``("stall", n)`` sends n and then keeps the connection open without sending,
    ``("error", code)`` answers with that HTTP status. After the script: 503.

    ``stop()`` (also on leaving ``with``) ends every connection and closes the
    port, as a camera that is switched off; ``port=`` lets a new server take
    the same address, as the camera coming back.
    """

    def __init__(
        self, jpegs: list[bytes], script: list[tuple[str, int]], frame_interval: float = 0.02, port: int = 0
    ) -> None:
        self.jpegs = jpegs
        self.script = list(script)
        self.frame_interval = frame_interval
        self.connections: list[str] = []
        self.frames_sent = 0
        self.release = threading.Event()  # ends a stalled connection
        self.closing = threading.Event()  # ends every connection
        self._started = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                what, n = server.script.pop(0) if server.script else ("error", 503)
                server.connections.append(f"{what}:{n}")
                if what == "error":
                    self.send_error(n)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                try:
                    for i in range(n):
                        if server.closing.is_set():
                            break
                        jpeg = server.jpegs[i % len(server.jpegs)]
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                            + jpeg
                            + b"\r\n"
                        )
                        self.wfile.flush()
                        server.frames_sent += 1
                        time.sleep(server.frame_interval)
                    if what == "stall":
                        while not (server.release.is_set() or server.closing.is_set()):
                            server.release.wait(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegServer:
        self.thread.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Hang up on every client and close the port. Safe to call twice."""
        self.closing.set()
        self.release.set()
        if self._started:
            self._started = False
            self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
