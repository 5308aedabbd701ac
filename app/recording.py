"""Record framesets into a take folder that survives a killed process and a full disk.

The finished take (the layout :mod:`app.take` opens)::

    take.yaml         schema_version, state (recording | complete), cameras, fps, start time (wall
                      clock ISO 8601 + monotonic seconds), time origin, software versions, and at
                      finalise the frame counts (this file and timestamps.csv: :mod:`app.take_format`)
    calibration.yaml  a snapshot of the rig used (when one was given)
    videos/<cam>.mp4  one video per camera; frame t of every video is frameset t (lockstep)
    timestamps.csv    frame,camera,t_s: one row per frameset and camera; t_s = the frame's own
                      timestamp minus ``time_origin_s`` (seconds); ``nan`` where the camera had no
                      frame (a gap: its video holds a black frame there)

How nothing already written is lost: while recording, every camera writes short MP4 segments
under ``.recording/<cam>/`` (``segment_s`` seconds each). When a segment is complete its files are
closed (an MP4 is only readable once closed), checked, and the segment is committed: its
timestamp rows are appended to ``.recording/timestamps.csv`` and a line to
``.recording/journal.csv``, both flushed and fsynced. Finalising concatenates the committed
segments into ``videos/<cam>.mp4``, writes ``timestamps.csv`` and then ``take.yaml`` (state
``complete``, the commit point) atomically, and removes ``.recording/``. If the process dies at any
moment, :func:`recover_take` (called by ``Take.open``) finalises the committed segments; at most the
last ``segment_s`` seconds are lost.

A full disk: any ``OSError`` while writing (``ENOSPC`` included), or free space falling below what
finalising needs, stops recording with a :class:`CaptureError` that says so; the committed
segments are finalised into a take that opens.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from app.capture.synchronizer import FrameSet
from app.take_format import (
    CALIBRATION_FILE,
    TAKE_FILE,
    TIMESTAMP_HEADER,
    TIMESTAMPS_FILE,
    TakeInfo,
    read_take_info,
    read_timestamps,
    software_versions,
)
from calibration import save_rig
from calibration.errors import CaptureError, CrossviewError, InputFileError
from calibration.rig import Rig
from calibration.files.atomic import write_bytes_atomic

logger = logging.getLogger(__name__)

WORK_DIR = ".recording"
JOURNAL_FILE = "journal.csv"
VIDEO_SUFFIX = ".mp4"
FOURCC = "mp4v"  # MPEG-4 part 2: every OpenCV build writes it (H.264 needs an encoder OpenCV rarely has)
#: Free space kept beyond what finalising needs; below it recording stops instead of filling the disk.
MIN_FREE_BYTES = 64 << 20


def _write_atomic(path: Path, data: bytes) -> None:
    """Atomic write whose failure is an ``OSError`` (handled like every other write failure here)."""
    write_bytes_atomic(path, data, error=lambda message: OSError(f"{path}: {message}"))


def _append_durably(path: Path, text: str) -> None:
    """Append ``text`` to ``path``, flushed and fsynced (it survives a killed process and a power cut)."""
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())


def _segment_path(folder: Path, camera: str, segment: int) -> Path:
    return folder / WORK_DIR / camera / f"{segment:05d}{VIDEO_SUFFIX}"


def _count_frames(path: Path) -> int:
    """Frames the container of ``path`` announces (0 for a file that does not open)."""
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if capture.isOpened() else 0
    finally:
        capture.release()


def _frame_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` of a video's frames, or None when it does not decode."""
    capture = cv2.VideoCapture(str(path))
    try:
        ok, image = capture.read()
        return (image.shape[1], image.shape[0]) if ok and image is not None else None
    finally:
        capture.release()


class TakeWriter:
    """Write framesets into a new take folder (see the module docstring for the layout).

    Args:
        folder: the take folder; it must not exist or be empty.
        rig: the calibration to snapshot into ``calibration.yaml`` (its cameras must include
            ``camera_names``), or None.
        fps: nominal frame rate written into the videos and ``take.yaml``.
        camera_names: the cameras, in the order of the framesets written.
        segment_s: seconds per segment: the most a killed recording loses.
        time_origin_s: the frame timestamp ``t_s`` counts from; default: the earliest frame of the
            first frameset.

    Raises:
        CaptureError: the folder is not empty or cannot be written.
        CrossviewError: the rig lacks one of the cameras.
    """

    def __init__(self, folder: str | Path, rig: Rig | None, fps: float, camera_names: Sequence[str], *,
                 segment_s: float = 2.0, time_origin_s: float | None = None) -> None:
        self.folder = Path(folder)
        self.cameras = tuple(camera_names)
        self.info = TakeInfo(self.cameras, float(fps), datetime.datetime.now().astimezone().isoformat(),
                             time.monotonic(), time_origin_s, float(segment_s), software_versions())
        if self.folder.exists() and (not self.folder.is_dir() or any(self.folder.iterdir())):
            raise CaptureError(f"{self.folder}: already exists and is not empty; record into a new folder")
        self._segment_frames = max(1, round(segment_s * fps))
        self._frames = 0  # framesets written
        self._committed = 0  # framesets in committed segments
        self._segment = 0
        self._rows: list[str] = []  # timestamp rows of the open segment
        self._writers: dict[str, cv2.VideoWriter] = {}
        self._sizes: dict[str, tuple[int, int]] = {}  # camera -> (width, height)
        self._pending_gaps = dict.fromkeys(self.cameras, 0)  # gaps before a camera's size is known
        self._in_segment = dict.fromkeys(self.cameras, 0)
        self._last_time = dict.fromkeys(self.cameras, -math.inf)
        self._present = dict.fromkeys(self.cameras, 0)
        self._resized_warned: set[str] = set()
        self._bytes = dict.fromkeys(self.cameras, 0)
        self.closed = False
        self.error: str | None = None
        try:
            for camera in self.cameras:
                (self.folder / WORK_DIR / camera).mkdir(parents=True, exist_ok=True)
            if rig is not None:
                save_rig(rig.select(self.cameras, source="the recording's cameras"), self.folder / CALIBRATION_FILE,
                         metadata={"snapshot_of": "the rig used to record this take"})
            (self.folder / WORK_DIR / TIMESTAMPS_FILE).write_text(TIMESTAMP_HEADER, encoding="utf-8")
            self._write_info()
        except OSError as exc:
            raise CaptureError(f"{self.folder}: cannot create the take ({exc.strerror or exc})") from None
        logger.info("recording %s: %d cameras at %g fps, %d-frame segments", self.folder, len(self.cameras),
                    fps, self._segment_frames)

    @property
    def frames(self) -> int:
        """Framesets written so far (committed or not)."""
        return self._frames

    @property
    def committed_frames(self) -> int:
        """Framesets that survive a killed process."""
        return self._committed

    def _write_info(self) -> None:
        _write_atomic(self.folder / TAKE_FILE, self.info.to_yaml().encode("utf-8"))

    def write(self, frameset: FrameSet) -> int:
        """Append one frameset; a camera without a frame (``None``) is written as a gap.

        Returns:
            The frame number of this frameset in the take.

        Raises:
            CaptureError: writing failed (a full disk): recording has stopped and the frames of the
                committed segments were finalised into the take.
        """
        if self.closed:
            raise CaptureError(f"{self.folder}: recording has stopped{': ' + self.error if self.error else ''}")
        if frameset.cameras != self.cameras:
            raise ValueError(f"frameset cameras {frameset.cameras} differ from the take's {self.cameras}")
        try:
            return self._write(frameset)
        except OSError as exc:
            raise self._fail(exc) from None

    def _write(self, frameset: FrameSet) -> int:
        if self.info.time_origin_s is None:
            origin = min(f.timestamp_s for f in frameset.frames if f is not None)
            self.info = replace(self.info, time_origin_s=float(origin))
        number = self._frames
        for camera, frame in zip(self.cameras, frameset.frames):
            if frame is not None and frame.timestamp_s <= self._last_time[camera]:
                logger.warning("camera %r: frame at %.4f s is not after the previous one; written as a gap",
                               camera, frame.timestamp_s)
                frame = None
            if frame is None:
                self._rows.append(f"{number},{camera},nan\n")
                if camera in self._sizes:
                    width, height = self._sizes[camera]
                    self._video(camera).write(np.zeros((height, width, 3), np.uint8))
                    self._in_segment[camera] += 1
                else:
                    self._pending_gaps[camera] += 1
                continue
            image = frame.image
            size = (image.shape[1], image.shape[0])
            if camera not in self._sizes:
                self._sizes[camera] = size
                black = np.zeros_like(image)
                for _ in range(self._pending_gaps[camera]):
                    self._video(camera).write(black)
                    self._in_segment[camera] += 1
                self._pending_gaps[camera] = 0
            elif size != self._sizes[camera]:
                if camera not in self._resized_warned:
                    logger.warning("camera %r: frame size changed from %s to %s; scaled to the first size",
                                   camera, self._sizes[camera], size)
                    self._resized_warned.add(camera)
                image = cv2.resize(image, self._sizes[camera], interpolation=cv2.INTER_AREA)
            self._video(camera).write(image)
            self._in_segment[camera] += 1
            self._last_time[camera] = frame.timestamp_s
            self._present[camera] += 1
            self._rows.append(f"{number},{camera},{frame.timestamp_s - self.info.time_origin_s:.6f}\n")
        self._frames += 1
        if self._frames - self._committed >= self._segment_frames:
            self._commit()
        return number

    def _video(self, camera: str) -> cv2.VideoWriter:
        writer = self._writers.get(camera)
        if writer is None:
            path = _segment_path(self.folder, camera, self._segment)
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), self.info.fps, self._sizes[camera])
            if not writer.isOpened():
                raise OSError(f"cannot open a video writer for {path}")
            self._writers[camera] = writer
        return writer

    def _commit(self) -> None:
        """Close the open segment, check its videos, and record it durably (rows, then journal)."""
        frames = self._frames - self._committed
        if frames == 0:
            return
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.release()
        for camera in writers:
            path = _segment_path(self.folder, camera, self._segment)
            found = _count_frames(path)
            if found != self._in_segment[camera]:
                raise OSError(f"segment {path.name} of camera {camera!r} holds {found} frames, "
                              f"{self._in_segment[camera]} were written (is the disk full?)")
            self._bytes[camera] += path.stat().st_size
        work = self.folder / WORK_DIR
        if self._committed == 0:
            self._write_info()  # now with the time origin
        _append_durably(work / TIMESTAMPS_FILE, "".join(self._rows))
        _append_durably(work / JOURNAL_FILE, f"{self._segment},{self._committed},{frames}\n")
        self._rows.clear()
        self._committed = self._frames
        self._segment += 1
        self._in_segment = dict.fromkeys(self.cameras, 0)
        self._pending_gaps = dict.fromkeys(self.cameras, 0)  # finalising fills their segments with black
        # Finalising copies each camera's segments into one video: keep room for the largest.
        needed = max(self._bytes.values()) + MIN_FREE_BYTES
        free = shutil.disk_usage(self.folder).free
        if free < needed:
            raise OSError(f"the disk is nearly full ({free / 1e6:.0f} MB free, finalising needs "
                          f"{needed / 1e6:.0f} MB)")

    def _fail(self, exc: OSError) -> CaptureError:
        """Stop after a failed write: finalise the committed segments; the error to raise."""
        for writer in self._writers.values():
            writer.release()
        self._writers.clear()
        reason = f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        self.error = f"recording stopped: {reason}"
        logger.error("%s: %s", self.folder, self.error)
        kept = f"the take keeps the {self._committed} framesets written before"
        try:
            finalise_take(self.folder, stop_reason=self.error)
        except CrossviewError as final:
            self.closed = True
            return CaptureError(f"{self.folder}: {self.error}; {kept}, but finalising failed ({final}); free "
                                "disk space and open the take: it is finalised then")
        self.closed = True
        return CaptureError(f"{self.folder}: {self.error}; {kept}; free disk space before recording again")

    def close(self) -> Path:
        """Commit the last segment and finalise the take; returns the take folder. Safe to call twice.

        Raises:
            CaptureError: the last segment or the finalisation could not be written (see :meth:`write`).
        """
        if self.closed:
            return self.folder
        try:
            self._commit()
        except OSError as exc:
            raise self._fail(exc) from None
        self.closed = True
        finalise_take(self.folder)
        logger.info("recording %s finalised: %d framesets", self.folder, self._committed)
        return self.folder

    def abort(self) -> None:
        """Stop without committing the open segment (what a killed process leaves; for tests and crashes)."""
        for writer in self._writers.values():
            writer.release()
        self._writers.clear()
        self.closed = True


def _read_journal(path: Path) -> list[tuple[int, int, int]]:
    """Committed segments ``(segment, first_frame, frames)``; a torn last line (killed mid-write) is ignored."""
    if not path.is_file():
        return []
    segments = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(",")
        try:
            segment, first, frames = (int(p) for p in parts)
        except ValueError:
            break
        if first != sum(s[2] for s in segments) or segment != len(segments):
            break
        segments.append((segment, first, frames))
    return segments


def _committed_rows(path: Path, cameras: Sequence[str], total: int) -> list[str]:
    """The rows of ``.recording/timestamps.csv`` for frames ``< total`` (a torn tail is dropped)."""
    rows = []
    counts: dict[int, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split(",")
        if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in cameras:
            continue
        frame = int(parts[0])
        if frame < total:
            rows.append(line + "\n")
            counts[frame] = counts.get(frame, 0) + 1
    if len(rows) != total * len(cameras) or any(counts.get(f) != len(cameras) for f in range(total)):
        raise InputFileError(f"{path}: holds {len(rows)} rows for {total} committed framesets of "
                             f"{len(cameras)} cameras; the take's timestamps are damaged")
    return rows


def _black_segment(path: Path, frames: int, size: tuple[int, int], fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), fps, size)
    black = np.zeros((size[1], size[0], 3), np.uint8)
    for _ in range(frames):
        writer.write(black)
    writer.release()


def _concatenate(segments: list[Path], out: Path, fps: float, expected: int) -> None:
    """Join MP4 segments into ``out`` (atomically): FFmpeg stream copy when the ``ffmpeg`` program is
    there (no re-encoding), else decode and re-encode with OpenCV. The result must hold ``expected``
    frames."""
    temp = out.with_name(f".{out.name}.tmp{VIDEO_SUFFIX}")
    temp.unlink(missing_ok=True)
    ffmpeg = shutil.which("ffmpeg")
    if len(segments) == 1:
        shutil.copyfile(segments[0], temp)
    elif ffmpeg is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=out.parent, delete=False) as listing:
            listing.write("".join("file '" + str(p.resolve()).replace("'", "'\\''") + "'\n" for p in segments))
        try:
            result = subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
                                     "-i", listing.name, "-c", "copy", "-f", "mp4", str(temp)],
                                    capture_output=True, text=True, timeout=600)
        finally:
            Path(listing.name).unlink(missing_ok=True)
        if result.returncode != 0:
            logger.warning("ffmpeg could not join %s (%s); re-encoding", out.name, result.stderr.strip()[-300:])
            temp.unlink(missing_ok=True)
    if not temp.exists():
        _reencode(segments, temp, fps)
    found = _count_frames(temp)
    if found != expected and ffmpeg is not None and len(segments) > 1:
        logger.warning("%s: stream copy gave %d frames for %d; re-encoding", out.name, found, expected)
        _reencode(segments, temp, fps)
        found = _count_frames(temp)
    if found != expected:
        temp.unlink(missing_ok=True)
        raise OSError(f"{out}: joining the segments gave {found} frames, expected {expected} (is the disk full?)")
    with open(temp, "rb") as stream:
        os.fsync(stream.fileno())
    os.replace(temp, out)


def _reencode(segments: list[Path], out: Path, fps: float) -> None:
    writer = None
    try:
        for path in segments:
            capture = cv2.VideoCapture(str(path))
            while True:
                ok, image = capture.read()
                if not ok:
                    break
                if writer is None:
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*FOURCC), fps,
                                             (image.shape[1], image.shape[0]))
                writer.write(image)
            capture.release()
    finally:
        if writer is not None:
            writer.release()


def finalise_take(folder: str | Path, *, stop_reason: str = "") -> TakeInfo:
    """Turn the committed segments of ``folder/.recording`` into the final layout (see the module
    docstring); the uncommitted tail is dropped. Idempotent: a complete take is returned as it is.

    Raises:
        InputFileError: ``take.yaml`` is missing or broken, or the committed data is damaged.
        CaptureError: the final files cannot be written (a full disk); ``.recording`` is kept.
    """
    folder = Path(folder)
    info = read_take_info(folder)
    if info is None:
        raise InputFileError(f"{folder}: no {TAKE_FILE}; this is not a recorded take")
    work = folder / WORK_DIR
    if info.state == "complete":
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)  # killed after the commit point
        return info
    if not work.is_dir():
        raise InputFileError(f"{folder}: {TAKE_FILE} says the take is still recording, but {WORK_DIR}/ is missing")
    segments = _read_journal(work / JOURNAL_FILE)
    total = sum(s[2] for s in segments)
    try:
        rows = _committed_rows(work / TIMESTAMPS_FILE, info.cameras, total)
        present = {c: 0 for c in info.cameras}
        for row in rows:
            _, camera, t_s = row.rstrip("\n").split(",")
            present[camera] += 0 if t_s == "nan" else 1
        videos = folder / "videos"
        videos.mkdir(exist_ok=True)
        for camera in info.cameras:
            paths = [_segment_path(folder, camera, s[0]) for s in segments]
            final_video = videos / f"{camera}{VIDEO_SUFFIX}"
            if final_video.is_file() and _count_frames(final_video) == total:
                continue  # joined by an earlier finalisation that was interrupted
            for extra in sorted((work / camera).glob(f"*{VIDEO_SUFFIX}")):
                if extra not in paths:
                    extra.unlink()  # an uncommitted segment: it was still open when recording stopped
            sizes = [_frame_size(p) for p in paths if p.is_file()]
            size = next((s for s in sizes if s is not None), None)
            if size is None:
                logger.warning("%s: camera %r delivered no frame; it has no video", folder, camera)
                continue
            for path, (_, _, frames) in zip(paths, segments):
                if not path.is_file():  # the camera was absent for a whole segment before its first frame
                    _black_segment(path, frames, size, info.fps)
            _concatenate(paths, final_video, info.fps, total)
            for path in paths:  # free the space now: the next camera's join needs it
                path.unlink()
        _write_atomic(folder / TIMESTAMPS_FILE, (TIMESTAMP_HEADER + "".join(rows)).encode("utf-8"))
        final = replace(info, state="complete", frames=total, frames_per_camera=present,
                         stop_reason=stop_reason or info.stop_reason)
        _write_atomic(folder / TAKE_FILE, final.to_yaml().encode("utf-8"))  # the commit point
    except OSError as exc:
        raise CaptureError(f"{folder}: cannot finalise the take ({exc.strerror or exc}); free disk space (or "
                           "make the folder writable) and open it again") from None
    shutil.rmtree(work, ignore_errors=True)
    return final


def recover_take(folder: str | Path) -> TakeInfo:
    """Finalise a take whose recording was interrupted (killed process, power cut, full disk).

    Keeps the framesets of the committed segments (all but at most the last ``segment_s`` seconds)
    and marks the take ``recovered``. A complete take is returned unchanged.
    """
    folder = Path(folder)
    info = read_take_info(folder)
    if info is None or info.state == "complete":
        return finalise_take(folder)
    logger.warning("%s: the recording was interrupted; finalising the segments written before", folder)
    _write_atomic(folder / TAKE_FILE, replace(info, recovered=True).to_yaml().encode("utf-8"))
    return finalise_take(folder, stop_reason=info.stop_reason or "interrupted (the recording did not stop cleanly)")


def needs_recovery(folder: str | Path) -> bool:
    """True when ``folder`` is a recorded take that was not finalised."""
    folder = Path(folder)
    if (folder / WORK_DIR).exists():
        return True
    info = read_take_info(folder)
    return info is not None and info.state != "complete"


__all__ = ["TakeWriter", "TakeInfo", "recover_take", "finalise_take", "needs_recovery", "read_take_info",
           "read_timestamps", "software_versions", "TAKE_FILE", "TIMESTAMPS_FILE"]
