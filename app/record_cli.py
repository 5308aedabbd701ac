"""``crossview record``: record a take from live cameras, IP streams, video files or image folders.

The take is written as :mod:`app.recording` describes; Ctrl+C (or ``--duration``, or every source
ending) stops the recording and finalises the take.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from calibration import load_rig
from calibration.errors import CaptureError, CrossviewError

#: How long to wait for the first frameset before giving up with the cameras' states.
FIRST_FRAMESET_TIMEOUT_S = 30.0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "record",
        help="record a take (videos, timestamps, calibration snapshot) from cameras or streams",
        description=(
            "Record synchronised framesets from several sources into a take folder: take.yaml, "
            "calibration.yaml, videos/<camera>.mp4, timestamps.csv. A SPEC is a camera index (0), a device "
            "(/dev/video2), an RTSP or HTTP MJPEG URL, a video file or a folder of images. Ctrl+C stops and "
            "finalises the take; a killed recording is recovered when the take is opened."
        ),
    )
    p.add_argument("--cameras", nargs="+", required=True, metavar="SPEC", help="one source per camera")
    p.add_argument("--names", nargs="+", metavar="NAME",
                   help="camera names, one per SPEC (default: the calibration's cameras, else cam0, cam1, ...)")
    p.add_argument("--calibration", type=Path, help="calibration of the rig; snapshotted into the take")
    p.add_argument("--fps", type=float, help="frame rate to request and record (default: measured)")
    p.add_argument("--width", type=int, help="requested camera width, px")
    p.add_argument("--height", type=int, help="requested camera height, px")
    p.add_argument("--duration", type=float, help="seconds to record (default: until Ctrl+C or the sources end)")
    p.add_argument("--segment", type=float, default=2.0,
                   help="seconds per recording segment: the most a crash can lose (default 2)")
    p.add_argument("--out", type=Path, required=True, help="the new take folder")
    p.set_defaults(func=run_record)


def _names(args: argparse.Namespace, rig) -> list[str]:
    count = len(args.cameras)
    if args.names is not None:
        names = list(args.names)
    elif rig is not None and len(rig) == count:
        names = list(rig.names)
    elif rig is not None:
        raise CrossviewError(f"{args.calibration} has {len(rig)} cameras ({', '.join(rig.names)}) but "
                             f"{count} sources were given; name them with --names")
    else:
        names = [f"cam{i}" for i in range(count)]
    if len(names) != count or len(set(names)) != count:
        raise CrossviewError(f"--names needs {count} different names, one per --cameras SPEC; got {' '.join(names)}")
    return names


def run_record(args: argparse.Namespace) -> int:
    from app.live import LiveSession

    if args.duration is not None and not args.duration > 0:
        raise CrossviewError(f"--duration must be > 0 seconds, got {args.duration}")
    rig = load_rig(args.calibration) if args.calibration is not None else None
    names = _names(args, rig)

    # Camera events (connecting, reconnecting, absent, failed) reach the terminal through the log.
    session = LiveSession(dict(zip(names, args.cameras)), rig, fps=args.fps, width=args.width, height=args.height)
    folder = None
    session.start()
    try:
        # Without --fps the take's frame rate is measured on the first framesets.
        deadline = time.monotonic() + FIRST_FRAMESET_TIMEOUT_S
        while session.stats().framesets < (1 if args.fps else 5) and not session.finished.is_set():
            if time.monotonic() > deadline:
                states = ", ".join(f"{c.camera} {c.state}{' (' + c.message + ')' if c.message else ''}"
                                   for c in session.stats().cameras)
                raise CaptureError(f"no synchronised frames from the cameras within {FIRST_FRAMESET_TIMEOUT_S:g} s: "
                                   f"{states}")
            time.sleep(0.05)
        session.start_recording(args.out, segment_s=args.segment, fps=args.fps)
        print(f"recording into {args.out} (Ctrl+C to stop)", flush=True)
        end = None if args.duration is None else time.monotonic() + args.duration
        last_print = time.monotonic()
        while not session.finished.is_set() and (end is None or time.monotonic() < end):
            session.wait(0.2)
            stats = session.stats()
            if stats.recording_error:
                break
            if time.monotonic() - last_print >= 5.0:
                last_print = time.monotonic()
                print(f"  {stats.recorded_frames} framesets, {stats.frameset_rate_hz:.1f} fps, "
                      f"skew {1000 * stats.skew_mean_s:.1f} ms", flush=True)
    except KeyboardInterrupt:
        print("stopping (Ctrl+C); finalising the take", flush=True)
    finally:
        folder = session.stop()
    stats = session.stats()
    for c in stats.cameras:
        print(f"  {c.camera}: {c.used} frames in framesets, {c.missing} framesets without it, {c.reconnects} reconnections, "
              f"{c.dropped + c.skipped} frames dropped ({c.state})")
    if stats.recording_error:
        raise CaptureError(stats.recording_error)
    if folder is None:
        return 2
    print(f"wrote {folder}: {stats.recorded_frames} framesets"
          + (f" ({stats.recording_dropped} not recorded: the disk was too slow)" if stats.recording_dropped else ""))
    if rig is None:
        print("note: no --calibration: copy the rig's calibration.yaml into the take before processing it")
    return 0
