"""A live capture session: cameras -> synchronizer -> (recording, processing), on threads, no Qt.

:class:`LiveSession` opens one :class:`CameraThread` per source and runs three kinds of thread:

- the **sync thread** drains every camera's buffer into a :class:`Synchronizer` in live mode and
  hands each complete frameset on; it also watches the cameras (state changes, a camera that stops
  delivering) and reports them as :class:`SessionEvent` (``on_status`` callback, ``events``);
- the **recording thread** (while recording) writes every frameset to a :class:`TakeWriter`
  through a bounded queue;
- the **processing thread** (with ``on_frameset``) calls it with the newest frameset; framesets that
  arrive while it is busy are skipped and counted, so a slow pipeline never falls behind the cameras.

A camera that disappears (its stream drops, its thread reconnects or gives up, or it sends nothing
for ``absent_after_s``) is *absent*: the synchronizer stops waiting for it and framesets go on with
its slot ``None``. The recording writes those as gaps (a black frame in its video and ``nan`` in
``timestamps.csv``), so every video keeps one frame per frameset and the take stays in lockstep.
When the camera comes back, framesets include it again.
"""

from __future__ import annotations

import logging
import queue
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from app.capture.camera_thread import CameraThread
from app.capture.sources import Source, VideoFileSource, open_source
from app.capture.synchronizer import FrameSet, Synchronizer
from app.recording import TakeWriter, finalise_take
from calibration.errors import CaptureError, CrossviewError
from calibration.rig import Rig

logger = logging.getLogger(__name__)

#: Frameset callbacks failing this many times in a row stop being called (with a message).
MAX_CALLBACK_FAILURES = 10
_STOP = object()


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """Something that happened to a camera or to the recording.

    Attributes:
        subject: a camera name, or ``"recording"``.
        state: for a camera, its capture state (``connecting, running, reconnecting, finished,
            failed, stopped``) or ``"absent"`` (running but silent) / ``"present"`` (frames again);
            for the recording ``"started"``, ``"stopped"`` or ``"failed"``.
        message: what happened, for a person to read.
        time_s: ``time.monotonic()`` when it was seen.
    """

    subject: str
    state: str
    message: str
    time_s: float


@dataclass(frozen=True, slots=True)
class CameraLiveStats:
    """One camera in a live session.

    Attributes:
        camera: name.
        state: capture state (see :class:`SessionEvent`).
        absent: True while framesets go on without this camera.
        message: the last problem reported, or empty.
        frames: frames captured; dropped: frames pushed out of the capture buffer unread.
        reconnects: successful reconnections.
        used, skipped, missing: frames put in framesets, frames the synchronizer skipped (stale),
            framesets delivered without this camera.
        mean_abs_offset_s, max_abs_offset_s: |frame time - frameset time|, seconds.
    """

    camera: str
    state: str
    absent: bool
    message: str
    frames: int
    dropped: int
    reconnects: int
    used: int
    skipped: int
    missing: int
    mean_abs_offset_s: float
    max_abs_offset_s: float


@dataclass(frozen=True, slots=True)
class SessionStats:
    """A snapshot of a live session.

    Attributes:
        cameras: per-camera figures, in camera order.
        framesets: framesets delivered by the synchronizer.
        frameset_rate_hz: framesets per second over the last ~2 s.
        skew_mean_s, skew_max_s: latest minus earliest frame time within a frameset, seconds.
        processed, processing_skipped, processing_failures: ``on_frameset`` calls, framesets skipped
            because it was busy, and calls that raised.
        recording: True while recording; recorded_frames: framesets written to the current/last take;
        recording_dropped: framesets the recording queue could not take (the disk was too slow).
        recording_folder: the current/last take folder; recording_error: why recording stopped early.
    """

    cameras: tuple[CameraLiveStats, ...]
    framesets: int
    frameset_rate_hz: float
    skew_mean_s: float
    skew_max_s: float
    processed: int
    processing_skipped: int
    processing_failures: int
    recording: bool
    recorded_frames: int
    recording_dropped: int
    recording_folder: Path | None
    recording_error: str | None

    def camera(self, name: str) -> CameraLiveStats:
        for stats in self.cameras:
            if stats.camera == name:
                return stats
        raise KeyError(f"no camera {name!r} in this session")


class _Recorder:
    """A :class:`TakeWriter` fed from a bounded queue on its own thread."""

    def __init__(self, writer: TakeWriter, capacity: int, report: Callable[[str, str], None]) -> None:
        self.writer = writer
        self.report = report
        self.queue: queue.Queue = queue.Queue(maxsize=capacity)
        self.dropped = 0
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="recording", daemon=True)
        self.thread.start()

    def put(self, frameset: FrameSet) -> None:
        if self.error is not None:
            return
        try:
            self.queue.put_nowait(frameset)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                logger.warning("recording cannot keep up: %d framesets not recorded so far", self.dropped)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            if self.error is not None:
                continue
            try:
                self.writer.write(item)
            except CaptureError as exc:  # a full disk: the writer has finalised what it committed
                self.error = str(exc)
                self.report("failed", self.error)
            except Exception as exc:  # a bug must not leave the take unfinalised; logged with its traceback
                logger.exception("recording into %s failed", self.writer.folder)
                self.writer.abort()
                self.error = f"recording stopped by an internal error ({exc!r}); see the log"
                try:
                    finalise_take(self.writer.folder, stop_reason=self.error)
                except CrossviewError as final:
                    self.error += f"; the take could not be finalised ({final})"
                self.report("failed", self.error)

    def finish(self) -> Path:
        """Write what is queued, stop the thread and finalise the take."""
        self.queue.put(_STOP)
        self.thread.join()
        if self.error is not None:
            return self.writer.folder
        return self.writer.close()


class LiveSession:
    """Capture several cameras live, synchronise them, and optionally record and process framesets.

    Args:
        sources: camera name -> source: a spec for :func:`open_source` (``"0"``, ``"/dev/video2"``,
            ``"rtsp://..."``, ``"http://.../video.mjpg"``, a video file, an image folder) or a
            :class:`Source`. The order is the frameset order.
        rig: the calibration (its cameras must include every source name); snapshotted into takes.
        fps: nominal rate: requested from cameras, used for the sync tolerance and the take's videos
            (default: measured).
        width, height: requested camera resolution, px (``None`` = the device's default).
        on_frameset: ``(FrameSet) -> None`` called on the processing thread with the newest frameset.
        on_status: ``(SessionEvent) -> None`` called on the sync or recording thread.
        tolerance_s: sync tolerance (default half a frame period).
        absent_after_s: a running camera that sends nothing for this long is treated as absent.
        timeout_s, buffer_size, backoff_initial_s, backoff_max_s, max_reconnects: for the camera
            threads (:class:`CameraThread`) and stream sources.

    Raises:
        CrossviewError: a source spec that is not one, or a rig without one of the cameras.
    """

    def __init__(
        self,
        sources: Mapping[str, str | Source],
        rig: Rig | None = None,
        *,
        fps: float | None = None,
        width: int | None = None,
        height: int | None = None,
        on_frameset: Callable[[FrameSet], None] | None = None,
        on_status: Callable[[SessionEvent], None] | None = None,
        tolerance_s: float | None = None,
        absent_after_s: float = 1.0,
        timeout_s: float = 2.0,
        buffer_size: int = 4,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 2.0,
        max_reconnects: int = 8,
    ) -> None:
        if not sources:
            raise CrossviewError("a live session needs at least one camera")
        if not absent_after_s > 0:
            raise ValueError(f"absent_after_s must be > 0, got {absent_after_s}")
        self.cameras = tuple(sources)
        self.rig = None if rig is None else rig.select(self.cameras, source="the live cameras")
        self.fps = fps
        self.on_frameset = on_frameset
        self.on_status = on_status
        self.absent_after_s = float(absent_after_s)
        self._threads: dict[str, CameraThread] = {}
        for name, spec in sources.items():
            source = spec if not isinstance(spec, str) else open_source(
                spec, name, width=width, height=height, fps=fps, timeout_s=timeout_s)
            if isinstance(source, VideoFileSource):
                source.realtime = True  # a file stands in for a camera: deliver at its own rate
            self._threads[name] = CameraThread(source, buffer_size=buffer_size, on_frame=self._frame_arrived,
                                               backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s,
                                               max_reconnects=max_reconnects)
        self._sync = Synchronizer(self.cameras, tolerance_s, mode="live", fps=fps)
        self._lock = threading.Lock()  # guards the synchronizer, counters, events and the recorder
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.finished = threading.Event()  # every camera has ended (files at their end, cameras given up)
        self._sync_thread = threading.Thread(target=self._sync_loop, name="live-sync", daemon=True)
        self._work = threading.Condition()
        self._latest: FrameSet | None = None
        self._process_thread = threading.Thread(target=self._process_loop, name="live-process", daemon=True)
        self._states = dict.fromkeys(self.cameras, "idle")
        self._absent = dict.fromkeys(self.cameras, False)
        self._last_arrival = dict.fromkeys(self.cameras, 0.0)
        self._events: list[SessionEvent] = []
        self._frameset_times: list[float] = []  # arrival of recent framesets (monotonic)
        self._framesets = 0
        self._processed = self._processing_skipped = self._failures = self._failures_in_row = 0
        self._recorder: _Recorder | None = None
        self._last_recorder: _Recorder | None = None
        self._started = False

    # -- control ------------------------------------------------------------------------------

    def start(self) -> "LiveSession":
        if self._started:
            raise CrossviewError("this live session was already started; make a new one")
        self._started = True
        start = time.monotonic()
        self._last_arrival = dict.fromkeys(self.cameras, start)
        for thread in self._threads.values():
            thread.start()
        self._sync_thread.start()
        if self.on_frameset is not None:
            self._process_thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> Path | None:
        """Stop the cameras and threads (joined), finalise a running recording; returns its folder."""
        for thread in self._threads.values():
            thread.stop(0.0)  # signal every camera first, so their blocking reads end together
        for thread in self._threads.values():
            thread.stop(timeout_s)
        self._stop.set()
        self._wake.set()
        if self._sync_thread.is_alive():
            self._sync_thread.join(timeout_s)
        with self._work:
            self._work.notify_all()
        if self._process_thread.is_alive():
            self._process_thread.join(timeout_s)
        return self.stop_recording()

    def __enter__(self) -> "LiveSession":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def recording(self) -> bool:
        """True while a take is being written (False again after stop or a write failure)."""
        with self._lock:
            return self._recorder is not None and self._recorder.error is None

    def start_recording(self, folder: str | Path, *, segment_s: float = 2.0, fps: float | None = None) -> TakeWriter:
        """Record every frameset from now on into the new take ``folder`` (see :mod:`app.recording`).

        ``fps`` (default: the session's, else the measured frameset rate, else 30) is the videos' rate.
        """
        if self._recorder is not None and self._recorder.error is not None:
            self.stop_recording()  # the last take stopped on an error: let its thread go
        with self._lock:
            if self._recorder is not None:
                raise CaptureError(f"already recording into {self._recorder.writer.folder}; stop that first")
            rate = fps or self.fps or self._measured_rate() or 30.0
            writer = TakeWriter(folder, self.rig, rate, self.cameras, segment_s=segment_s)
            self._recorder = self._last_recorder = _Recorder(writer, max(8, int(4 * rate)), self._recording_event)
        self._event("recording", "started", f"recording into {folder} at {rate:g} fps")
        return writer

    def stop_recording(self) -> Path | None:
        """Finalise the take being recorded; returns its folder (None when not recording).

        Raises:
            CaptureError: finalising failed (a full disk); the message says what is kept.
        """
        with self._lock:
            recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        folder = recorder.finish()
        if recorder.error is None:
            self._event("recording", "stopped", f"take {folder}: {recorder.writer.committed_frames} framesets")
        return folder

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until every camera has ended (or ``timeout_s``); True if they have."""
        return self.finished.wait(timeout_s)

    # -- observation --------------------------------------------------------------------------

    @property
    def events(self) -> list[SessionEvent]:
        """Every event so far, oldest first (a copy)."""
        with self._lock:
            return list(self._events)

    def stats(self) -> SessionStats:
        with self._lock:
            sync = self._sync.stats()
            skews = self._sync.skews_s
            recorder = self._recorder or self._last_recorder
            cameras = []
            for name in self.cameras:
                status = self._threads[name].status()
                s = sync[name]
                cameras.append(CameraLiveStats(name, status.state, self._absent[name], status.message, status.frames,
                                               status.dropped, status.reconnects, s.used, s.skipped, s.missing,
                                               s.mean_abs_offset_s, s.max_abs_offset_s))
            return SessionStats(
                cameras=tuple(cameras),
                framesets=self._framesets,
                frameset_rate_hz=self._measured_rate() or 0.0,
                skew_mean_s=float(statistics.fmean(skews)) if skews else 0.0,
                skew_max_s=float(max(skews)) if skews else 0.0,
                processed=self._processed,
                processing_skipped=self._processing_skipped,
                processing_failures=self._failures,
                recording=self._recorder is not None and self._recorder.error is None,
                recorded_frames=recorder.writer.frames if recorder else 0,
                recording_dropped=recorder.dropped if recorder else 0,
                recording_folder=recorder.writer.folder if recorder else None,
                recording_error=recorder.error if recorder else None,
            )

    def _measured_rate(self) -> float | None:
        times = self._frameset_times
        if len(times) < 3 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    # -- threads ------------------------------------------------------------------------------

    def _frame_arrived(self, frame) -> None:
        self._wake.set()

    def _event(self, subject: str, state: str, message: str) -> None:
        event = SessionEvent(subject, state, message, time.monotonic())
        with self._lock:
            self._events.append(event)
        level = logging.WARNING if state in ("reconnecting", "absent", "failed") else logging.INFO
        logger.log(level, "%s: %s%s", subject, state, f" ({message})" if message else "")
        if self.on_status is not None:
            try:
                self.on_status(event)
            except Exception:  # a consumer bug must not stop capture; logged with its traceback
                logger.exception("on_status callback failed")

    def _recording_event(self, state: str, message: str) -> None:
        self._event("recording", state, message)

    def _watch(self, name: str, now: float) -> None:
        """Report state changes of camera ``name`` and mark it absent/present for the synchronizer."""
        status = self._threads[name].status()
        if status.state != self._states[name]:
            self._states[name] = status.state
            self._event(name, status.state, status.message)
        if status.state == "stopped":  # stopped by us (the session is stopping): not a camera problem
            return
        silent = now - self._last_arrival[name] > self.absent_after_s
        gone = status.state in ("reconnecting", "failed", "finished") or silent
        if gone and not self._absent[name]:
            self._absent[name] = True
            with self._lock:
                self._sync.end(name)
            why = status.message or f"no frame for {now - self._last_arrival[name]:.1f} s"
            self._event(name, "absent", f"camera {name!r} is missing ({why}); recording it as a gap")
        elif not gone and self._absent[name]:
            self._absent[name] = False
            with self._lock:
                self._sync.resume(name)
            self._event(name, "present", f"camera {name!r} delivers frames again")

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            now = time.monotonic()
            for name, thread in self._threads.items():
                pushed = False
                for _ in range(1000):  # bounded: a camera cannot starve the others
                    frame = thread.get()
                    if frame is None:
                        break
                    with self._lock:
                        self._sync.push(frame)
                    pushed = True
                if pushed:
                    self._last_arrival[name] = now
                self._watch(name, now)
            while True:
                with self._lock:
                    frameset = self._sync.pop()
                if frameset is None:
                    break
                self._deliver(frameset)
            if not any(t.running for t in self._threads.values()):
                with self._lock:
                    leftover = self._sync.pop()
                if leftover is not None:
                    self._deliver(leftover)
                    continue
                self.finished.set()
                return
        self.finished.set()

    def _deliver(self, frameset: FrameSet) -> None:
        with self._lock:
            self._framesets += 1
            self._frameset_times.append(time.monotonic())
            del self._frameset_times[:-60]
            recorder = self._recorder
        if recorder is not None:
            recorder.put(frameset)
        if self.on_frameset is not None:
            with self._work:
                if self._latest is not None:
                    self._processing_skipped += 1
                self._latest = frameset
                self._work.notify_all()

    def _process_loop(self) -> None:
        while True:
            with self._work:
                while self._latest is None and not self._stop.is_set():
                    self._work.wait(0.1)
                if self._stop.is_set():
                    return
                frameset, self._latest = self._latest, None
            try:
                self.on_frameset(frameset)
            except Exception:  # counted; K failures in a row stop the callback with a clear message
                logger.exception("on_frameset failed")
                self._failures += 1
                self._failures_in_row += 1
                if self._failures_in_row >= MAX_CALLBACK_FAILURES:
                    self._event("processing", "failed", f"frameset processing failed {MAX_CALLBACK_FAILURES} "
                                                        "times in a row; it is stopped (see the log)")
                    return
                continue
            self._processed += 1
            self._failures_in_row = 0
