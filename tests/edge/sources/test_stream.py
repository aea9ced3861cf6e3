"""Network streams on a real MJPEG-over-HTTP server on 127.0.0.1 (tests/helpers/mjpeg.py) that
drops out, stalls, goes away and comes back: reconnects, the stall watchdog, and what the
operator is told about an outage."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.mjpeg import FOREVER, MjpegServer, clip_jpegs
from movinet_edge.errors import EdgeError
from movinet_edge.frames import Frame
from movinet_edge.sources import ReconnectPolicy, StreamSource, decode_threads_for, quiet_opencv_logs
from movinet_edge.sources.outage import OutageLog
from movinet_edge.sources.registry import SourceContext, source_kind
from movinet_edge.sources.stream import StreamOptions

quiet_opencv_logs()

LOGGER = "movinet_edge.sources"


@pytest.fixture(scope="module")
def jpegs(clips: Path) -> list[bytes]:
    return clip_jpegs(clips / "rope_pushdown.mp4", 10)


def collect(source: StreamSource) -> tuple[list[Frame], EdgeError | None]:
    frames: list[Frame] = []
    try:
        for frame in source:
            frames.append(frame)
    except EdgeError as exc:
        return frames, exc
    return frames, None


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def test_stream_reconnects_with_exponential_backoff(jpegs: list[bytes]) -> None:
    script = [("frames", 8), ("error", 503), ("error", 503), ("frames", 8)]
    calls: list[tuple[int, float, str]] = []
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.15, max_attempts=3)
    with MjpegServer(jpegs, script) as server:
        with StreamSource(
            server.url, reconnect=policy, on_reconnect=lambda *a: calls.append(a), read_timeout=5.0
        ) as source:
            frames, error = collect(source)
            stats = source.stats
    # The stream dropped, two reconnects failed (503), the third got frames again;
    # when it dropped again, three more attempts failed and the source gave up.
    assert server.connections == [
        "frames:8",
        "error:503",
        "error:503",
        "frames:8",
        "error:503",
        "error:503",
        "error:503",
    ]
    assert [(a, d) for a, d, _ in calls] == [(1, 0.05), (2, 0.1), (3, 0.15), (1, 0.05), (2, 0.1), (3, 0.15)]
    assert calls[0][2] == "the stream ended" and calls[1][2] == "could not reconnect"
    assert error is not None and "gave up after 3 reconnect attempts" in str(error)
    assert stats.reconnects == 6
    # Frames from both connections, decoded for real: the first is the clip's first frame.
    assert 2 <= len(frames) <= 16 and stats.frames == len(frames)
    assert stats.frames + stats.dropped == 16
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)) and indices[-1] >= 8  # indices keep counting across connections
    ts = [f.timestamp for f in frames]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    expected = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert frames[0].image.shape == (400, 400, 3)
    assert np.abs(frames[0].image.astype(int) - expected.astype(int)).mean() < 2.0


def test_a_stalled_stream_times_out_and_reconnects(jpegs: list[bytes]) -> None:
    # The server keeps the connection open and sends nothing: the read timeout
    # (not a hang) ends it, and the source reconnects.
    script = [("stall", 3), ("frames", 3)]
    calls: list[tuple[int, float, str]] = []
    policy = ReconnectPolicy(initial_delay=0.01, max_attempts=1)
    with MjpegServer(jpegs, script) as server:
        source = StreamSource(server.url, reconnect=policy, on_reconnect=lambda *a: calls.append(a), read_timeout=0.5)
        with source:
            frames, error = collect(source)
    assert server.connections[:2] == ["stall:3", "frames:3"]
    assert len(calls) == 2 and calls[0][:2] == (1, 0.01)
    assert error is not None and "gave up after 1 reconnect attempts" in str(error)
    assert 2 <= len(frames) <= 6


def test_a_stream_that_stalls_is_noticed_by_the_watchdog_in_one_line(jpegs: list[bytes]) -> None:
    """The camera keeps the connection open and stops sending. FFmpeg would wait its read
    timeout (30 s here); the source's own watchdog gives up on the connection after
    ``stall_timeout``, says why in one line, and reconnects; here the camera then refuses,
    so the source ends with one line instead of hanging."""
    calls: list[tuple[int, float, str]] = []
    policy = ReconnectPolicy(initial_delay=0.05, max_attempts=1)
    with MjpegServer(jpegs, [("stall", 3)]) as server:
        source = StreamSource(
            server.url, reconnect=policy, on_reconnect=lambda *a: calls.append(a), read_timeout=30.0, stall_timeout=0.5
        )
        started = time.monotonic()
        with source:
            frames, error = collect(source)
        elapsed = time.monotonic() - started
    assert 1 <= len(frames) <= 3
    assert calls == [(1, 0.05, "no frame for 0.5 s")]
    assert error is not None
    assert str(error) == f"stream {server.url} lost (could not reconnect); gave up after 1 reconnect attempts"
    assert "\n" not in str(error)
    assert server.connections == ["stall:3", "error:503"]
    # Watchdog 0.5 s + at most 1 s waiting for the stuck read + the reconnect: far from 30 s.
    assert elapsed < 5.0, elapsed
    assert source.stats.reconnects == 1


def test_stop_from_another_thread_ends_a_waiting_stream(jpegs: list[bytes]) -> None:
    with MjpegServer(jpegs, [("stall", 2)]) as server:
        with StreamSource(server.url, reconnect=ReconnectPolicy(max_attempts=0), read_timeout=30.0) as source:
            it = iter(source)
            assert next(it).image.shape == (400, 400, 3)
            stopper = threading.Timer(0.2, source.stop)
            stopper.start()
            # Without stop() this would wait 30 s for the read timeout and then fail
            # with "gave up after 0 reconnect attempts".
            rest, error = collect(source)
            stopper.join()
    assert error is None
    assert len(rest) <= 1


def test_a_stream_that_does_not_open(jpegs: list[bytes]) -> None:
    with MjpegServer(jpegs, [("error", 404)]) as server:
        url = server.url.replace("http://", "http://viewer:s3cret@")
        with pytest.raises(EdgeError) as info:
            StreamSource(url, open_timeout=2.0)
    message = str(info.value)
    assert message.startswith("cannot open stream http://viewer:***@127.0.0.1:")
    assert "s3cret" not in message


# --- what the operator is told about an outage -------------------------------------------


def test_a_lost_stream_is_logged_at_once_then_seldom_then_its_recovery(
    jpegs: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """The camera is switched off (the server closes every connection and its port) and on
    again on the same port. The source logs the loss at the first failure, then only when the
    backoff doubled (0.1 -> 0.2 -> 0.4 -> 0.8 s, then no more: the delay stays at its
    maximum and a minute does not pass), and when frames are back, how long they were
    missing. The assembly layer's callbacks hear every attempt and the recovery as well."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    calls: list[tuple[int, float, str]] = []
    recovered: list[float] = []
    stamps: list[float] = []
    policy = ReconnectPolicy(initial_delay=0.1, max_delay=0.8)
    server = MjpegServer(jpegs, [("frames", FOREVER)], frame_interval=0.02).start()
    port = server.port
    source = StreamSource(
        server.url,
        reconnect=policy,
        on_reconnect=lambda *a: calls.append(a),
        on_recovered=recovered.append,
        open_timeout=2.0,
        read_timeout=30.0,  # the loss must be noticed from the closed connection, not a timeout
        camera_id="door",
    )
    consumer = threading.Thread(target=lambda: stamps.extend(f.timestamp for f in source), daemon=True)
    consumer.start()
    back = None
    try:
        deadline = time.monotonic() + 20
        while len(stamps) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(stamps) >= 5, "no frames from the server"
        lost_at = time.time()
        server.stop()
        while len(calls) < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls) >= 7, calls
        before = len(stamps)
        during = list(warnings_of(caplog))
        back = MjpegServer(jpegs, [("frames", FOREVER)], frame_interval=0.02, port=port).start()
        while not recovered and time.monotonic() < deadline + 20:
            time.sleep(0.01)
    finally:
        source.stop()
        consumer.join(10)
        source.close()
        server.stop()
        if back is not None:
            back.stop()
    label = f"door: stream http://127.0.0.1:{port}/stream.mjpg"
    # The loss: the first line at the first failure, with the reason, long before the 30 s read timeout.
    first = during[0]
    assert first.getMessage() == f"{label}: the stream ended; reconnecting in 0.1 s (attempt 1)"
    assert first.created - lost_at < 5.0, first.created - lost_at
    # Then one line each time the delay doubled, and none while it stayed at its maximum.
    assert [r.getMessage().split("(attempt ")[-1] for r in during] == ["1)", "2)", "3)", "4)"]
    assert all(r.getMessage().startswith(f"{label}: still down after ") for r in during[1:])
    assert during[3].getMessage().endswith("(could not reconnect); reconnecting in 0.8 s (attempt 4)")
    assert [(a, d) for a, d, _ in calls[:5]] == [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 0.8)]
    # The recovery: once, with the outage as the frames show it, and the attempts it took.
    assert len(recovered) == 1
    gap = stamps[before] - stamps[before - 1]
    assert recovered[0] == pytest.approx(gap, abs=1e-9)
    ends = [r for r in warnings_of(caplog) if "frames are back" in r.getMessage()]
    attempts = len(calls)
    assert [r.getMessage() for r in ends] == [
        f"{label}: frames are back after {gap:.1f} s ({attempts} reconnect attempts)"
    ]
    assert len(warnings_of(caplog)) == 5


def test_the_outage_log_rate_over_five_minutes(caplog: pytest.LogCaptureFixture) -> None:
    """The rate rules with the service's backoff (0.5 s doubling to 10 s) over 5 minutes of a
    camera that stays away: 31 attempts, 9 lines (5 while the delay doubles, then one a minute)."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    policy = ReconnectPolicy(initial_delay=0.5, max_delay=10.0)
    outage = OutageLog("stream rtsp://cam/1")
    now, logged = 0.0, []
    for attempt in range(1, 32):
        delay = policy.delay(attempt)
        if outage.attempt(attempt, delay, "could not reconnect", now, last_frame_at=-1.5):
            logged.append(attempt)
        now += delay
    assert logged == [1, 2, 3, 4, 5, 12, 18, 24, 30]
    lines = [r.getMessage() for r in warnings_of(caplog)]
    assert lines[0] == "stream rtsp://cam/1: could not reconnect; reconnecting in 0.5 s (attempt 1)"
    assert lines[5] == (
        "stream rtsp://cam/1: still down after 77.0 s (could not reconnect); reconnecting in 10.0 s (attempt 12)"
    )
    assert outage.in_outage
    assert outage.recovered(now) == (now + 1.5, 31)
    assert lines + [f"stream rtsp://cam/1: frames are back after {now + 1.5:.1f} s (31 reconnect attempts)"] == [
        r.getMessage() for r in warnings_of(caplog)
    ]
    assert outage.recovered(now + 1) is None and not outage.in_outage  # no outage: nothing to say
    # The next outage starts over: its first failure is logged at once.
    assert outage.attempt(1, 0.5, "the stream ended", now + 5, last_frame_at=now + 4)
    assert outage.recovered(now + 6) == (2.0, 1)
    assert warnings_of(caplog)[-1].getMessage().endswith("frames are back after 2.0 s (1 reconnect attempt)")


# --- the kind ---------------------------------------------------------------------------


def test_the_url_kind_reports_reconnects_to_the_context(jpegs: list[bytes], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    calls: list[tuple[int, float, str]] = []
    kind = source_kind("url")
    assert kind.live and kind.target == "url" and kind.options is StreamOptions
    with MjpegServer(jpegs, [("frames", 2)]) as server:
        options = StreamOptions(server.url, reconnect_initial_delay=0.1, reconnect_max_attempts=1, read_timeout=5.0)
        context = SourceContext(decode_threads=2, on_reconnect=lambda *a: calls.append(a), name="yard")
        with kind.open(options, context) as source:
            assert isinstance(source, StreamSource) and source.live and source.decode_threads == 2
            assert source.policy == ReconnectPolicy(initial_delay=0.1, max_delay=10.0, max_attempts=1)
            frames, error = collect(source)
    assert frames and error is not None and "gave up after 1 reconnect attempts" in str(error)
    assert [c[0] for c in calls] == [1]
    # The source's own line as well as the callback: the callback never replaces it.
    assert [r.getMessage() for r in warnings_of(caplog)] == [
        f"yard: stream {server.url}: the stream ended; reconnecting in 0.1 s (attempt 1)"
    ]


@pytest.mark.parametrize(
    "options, message",
    [
        (StreamOptions("localhost:8554"), "url 'localhost:8554': not a URL; use e.g. rtsp://host:554/stream or "
                                          "http://host/video.mjpg"),
        (StreamOptions("rtsp://x", reconnect_initial_delay=0), "url reconnect initial delay: must be positive, got 0"),
        (StreamOptions("rtsp://x", read_timeout=-1), "url read timeout: must be positive, got -1"),
        (StreamOptions("rtsp://x", reconnect_max_attempts=-1),
         "url reconnect max attempts: must be at least 0, got -1"),
        (StreamOptions("rtsp://x", reconnect_initial_delay=5, reconnect_max_delay=1),
         "url reconnect max delay must not be below the reconnect initial delay"),
    ],
)  # fmt: skip
def test_bad_url_options(options: StreamOptions, message: str) -> None:
    with pytest.raises(EdgeError) as info:
        source_kind("url").open(options, SourceContext())
    assert str(info.value) == message


def test_the_url_kind_uses_default_decoder_threads(jpegs: list[bytes]) -> None:
    with MjpegServer(jpegs, [("frames", 2)]) as server:
        with source_kind("url").open(StreamOptions(server.url), SourceContext()) as source:
            assert source.decode_threads == decode_threads_for(None)
