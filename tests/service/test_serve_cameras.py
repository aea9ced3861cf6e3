"""Several cameras in one `movinet-edge serve`: one model, a file and a real MJPEG camera, a real broker.

Each camera's events go to its own topic with its id; the MJPEG camera is switched off and on again
while the file camera goes on, and the whole service still stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from helpers.mjpeg import FOREVER, MjpegServer, clip_jpegs
from service.support import Broker, ServiceProcess, Subscriber, wait_until, write_config


def _config(path: Path, model: Path, clip: Path, stream_url: str, broker_port: int) -> Path:
    return write_config(
        path,
        'device_id = "dev-c"\n'
        f'[model]\npath = "{model}"\nthreads = 1\n'
        "[source]\nreconnect_initial_delay = 0.2\nreconnect_max_delay = 0.5\n"
        "[events]\n"
        'start_threshold = 0.0\nend_threshold = 0.0\nallow = ["brush painting"]\nupdate_every = 0.5\n'
        '[output]\nconsole = "events"\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nreconnect_max_delay = 1.0\n'
        "[[cameras]]\n"
        'id = "door"\n'
        f'video = "{clip}"\nrealtime = true\nloop = true\n'
        "[[cameras]]\n"
        'id = "yard"\n'
        f'url = "{stream_url}"\n'
        "[cameras.events]\n"
        "update_every = 1.0\n",
    )


def test_two_cameras_one_service(
    tmp_path: Path,
    float_model_dir: Path,
    clips: Path,
    broker: Broker,
    subscribe: Callable[..., Subscriber],
    start_service: Callable[..., ServiceProcess],
) -> None:
    jpegs = clip_jpegs(clips / "rope_pushdown.mp4", count=40)
    camera = MjpegServer(jpegs, [("frames", FOREVER)] * 4, frame_interval=0.04).start()
    port = camera.port
    sub = subscribe(broker.port, "movinet-edge/dev-c/#")
    config = _config(tmp_path / "cameras.toml", float_model_dir, clips / "carving_ice.mp4", camera.url, broker.port)
    service = start_service("--config", config)
    try:
        door, yard = "movinet-edge/dev-c/door/events", "movinet-edge/dev-c/yard/events"
        wait_until(lambda: sub.on(door) and sub.on(yard), what="events from both cameras")
        assert all(e["camera"] == "door" for e in sub.events(door))
        assert all(e["camera"] == "yard" for e in sub.events(yard))
        assert not sub.on("movinet-edge/dev-c/events"), "several cameras publish on per-camera topics only"
        # One model for both: the info message names it once, with both sources.
        info = wait_until(lambda: sub.on("movinet-edge/dev-c/info"), what="info")[-1].json()
        assert info["model"].startswith(str(float_model_dir)) and "video" in info["source"] and "stream" in info["source"]
        wait_until(lambda: [m.payload for m in sub.on("movinet-edge/dev-c/yard/availability")][-1:] == ["online"],
                   what="yard online")  # fmt: skip

        # The yard camera goes away: the door camera's events keep coming, the yard's stop.
        camera.stop()
        wait_until(lambda: [m.payload for m in sub.on("movinet-edge/dev-c/yard/availability")][-1:] == ["offline"],
                   what="yard offline")  # fmt: skip
        wait_until(lambda: any("yard: stream" in line and "reconnecting" in line for line in service.stderr),
                   what="the lost stream logged")  # fmt: skip
        before = len(sub.on(door))
        wait_until(lambda: len(sub.on(door)) >= before + 3, what="door events while the yard is down")
        assert service.alive()

        # It comes back on the same port: the yard reports again, said so in the log.
        yard_before = len(sub.on(yard))
        camera = MjpegServer(jpegs, [("frames", FOREVER)] * 4, frame_interval=0.04, port=port).start()
        wait_until(lambda: any("yard: stream" in line and "frames are back after" in line for line in service.stderr),
                   what="the recovery logged")  # fmt: skip
        wait_until(lambda: len(sub.on(yard)) > yard_before, what="yard events after it came back")

        status, body = service.get("/healthz")
        health = json.loads(body)
        assert set(health.get("cameras", {})) == {"door", "yard"}, body
        metrics = service.metrics()
        assert any('camera="yard"' in name for name in metrics), sorted(metrics)[:20]
        assert service.stop() == 0, service.log()
    finally:
        camera.stop()
        if service.proc.poll() is None:
            service.kill()
    ends = [e for e in sub.events(door) if e["kind"] == "end"]
    assert ends, "the door camera's action ended at shutdown"


def test_four_cameras_one_service(
    tmp_path: Path,
    float_model_dir: Path,
    clips: Path,
    broker: Broker,
    subscribe: Callable[..., Subscriber],
    start_service: Callable[..., ServiceProcess],
) -> None:
    """Two files and two MJPEG cameras: every camera's events on its own topic, each camera in /healthz."""
    servers = [MjpegServer(clip_jpegs(clips / name, count=30), [("frames", FOREVER)], frame_interval=0.04).start()
               for name in ("rope_pushdown.mp4", "carving_ice.mp4")]  # fmt: skip
    cameras = {
        "hall": f'video = "{clips / "carving_ice.mp4"}"\nrealtime = true\nloop = true\n',
        "shed": f'video = "{clips / "rope_pushdown.mp4"}"\nrealtime = true\nloop = true\n',
        "gate": f'url = "{servers[0].url}"\n',
        "yard": f'url = "{servers[1].url}"\n',
    }
    tables = "".join(f'[[cameras]]\nid = "{cid}"\n{source}' for cid, source in cameras.items())
    config = write_config(
        tmp_path / "four.toml",
        'device_id = "dev-4"\n'
        f'[model]\npath = "{float_model_dir}"\nthreads = 1\n'
        '[events]\nstart_threshold = 0.0\nend_threshold = 0.0\nallow = ["brush painting"]\nupdate_every = 0.5\n'
        '[output]\nconsole = "none"\n[http]\nlisten = "127.0.0.1:0"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n' + tables,
    )
    sub = subscribe(broker.port, "movinet-edge/dev-4/#")
    service = start_service("--config", config)
    try:
        for cid in cameras:
            topic = f"movinet-edge/dev-4/{cid}/events"
            wait_until(lambda t=topic: len(sub.on(t)) >= 2, what=f"events from {cid}")
            assert {e["camera"] for e in sub.events(topic)} == {cid}
        health = json.loads(service.get("/healthz")[1])
        assert set(health.get("cameras", {})) == set(cameras), health
        assert service.stop() == 0, service.log()
    finally:
        for server in servers:
            server.stop()
        if service.proc.poll() is None:
            service.kill()
