#!/usr/bin/python3
"""A real RTSP server for the tests: GStreamer's gst-rtsp-server serving one clip, looped, at its own speed.

    /usr/bin/python3 rtsp_server.py --port PORT [--path /test] CLIP.mp4

Runs with Debian's Python: ``python3-gi`` and ``gir1.2-gst-rtsp-server-1.0`` are
installed for it, and a venv does not see them; the pipeline needs qtdemux and
rtph264pay (gstreamer1.0-plugins-good) and h264parse (gstreamer1.0-plugins-bad). Serves the file's H.264 as it is (demuxed and
re-payloaded, not re-encoded), paced by the pipeline clock like a camera. At the
end of the file it seeks back to the start, so the stream runs on however long
a client watches. Each client gets the stream from the start (the media is not
shared).

Prints "listening on rtsp://127.0.0.1:PORT/PATH" once the port is bound, then
serves until killed. FFmpeg's ``-listen`` cannot stand in: it takes one
publishing client, it does not serve players.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def loop_forever(factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
    """At the end of the file, rewind instead of ending: the stream runs until the server stops.

    The EOS is caught where it leaves the parser and dropped (the RTSP session
    never learns the file ended), and the demuxer seeks back to the start from
    the main loop (a seek from the streaming thread that carries the EOS would
    deadlock).
    """
    element = media.get_element()
    demuxer, parser = element.get_by_name("demux"), element.get_by_name("parse")

    def rewind() -> bool:
        demuxer.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        return False  # once

    def on_event(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        if info.get_event().type == Gst.EventType.EOS:
            GLib.idle_add(rewind)
            return Gst.PadProbeReturn.DROP
        return Gst.PadProbeReturn.OK

    parser.get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", help="an MP4 file with H.264 video")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/test")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.clip.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(f'( filesrc location="{location}" ! qtdemux name=demux ! h264parse name=parse '
                       '! rtph264pay name=pay0 pt=96 config-interval=1 )')
    factory.set_shared(False)
    factory.connect("media-configure", loop_forever)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    print(f"listening on rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
