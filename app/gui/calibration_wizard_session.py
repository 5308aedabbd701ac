"""The calibration wizard's presenter: what was chosen, what was found, and the long tasks that find it.

:class:`CalibrationSession` (a QObject) owns the wizard's state and computes it from the work done:
the board and sources chosen on the first page, the board views found in the videos or live
cameras, each camera's intrinsics, and the solved rig. Pages call its commands and redraw on its
signals; they hold no calibration state of their own.

The long tasks (board search, intrinsics, the solve) run one at a time on a worker thread
(:class:`Task`). They report through Qt signals, which reach the GUI thread queued, and stop
between steps when cancelled: :class:`~calibration.errors.Cancelled` is raised from their progress
callback. Every error a user can cause arrives as the ``failed`` signal's message, never as a
traceback.

Live cameras are read by :class:`LiveBoardCapture`: one :class:`~app.capture.camera_thread.CameraThread`
per source (any :func:`~app.capture.sources.open_source` spec), frames grouped by the
:class:`~app.capture.synchronizer.Synchronizer`, the board searched in every camera of a frameset,
and a frameset kept at most every ``interval_s`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from app.capture.camera_thread import CameraThread
from app.capture.sources import open_source
from app.capture.synchronizer import Synchronizer
from calibration.board_detection import BoardDetector
from calibration.boards import Board
from calibration.errors import CalibrationError, Cancelled, CrossviewError
from calibration.intrinsics import IntrinsicsResult, calibrate_intrinsics
from calibration.rig_calibration import RigCalibration, calibrate_rig
from calibration.video_views import BoardViews, collect_board_views, require_board_found, video_frame_count

logger = logging.getLogger(__name__)

#: Previews are sent to the GUI at most this often per camera (a frame every 40 ms is all a screen shows).
PREVIEW_INTERVAL_S = 0.04
#: Previews are shrunk to at most this many pixels on their long side before crossing threads.
PREVIEW_MAX_SIDE = 640


@dataclass(frozen=True, slots=True)
class Sources:
    """What the first page chose.

    Attributes:
        board: the calibration board.
        videos: camera name -> video file (recorded mode), empty for live cameras.
        timestamps: a sync table beside the videos, or None (frame i of every video is simultaneous).
        live: camera name -> :func:`~app.capture.sources.open_source` spec (live mode), empty for videos.
        step: use every ``step``-th synchronised frame of the videos.
        live_frames: live mode: stop after this many kept framesets.
        interval_s: live mode: keep at most one frameset per this many seconds.
    """

    board: Board
    videos: Mapping[str, Path] = field(default_factory=dict)
    timestamps: Path | None = None
    live: Mapping[str, str] = field(default_factory=dict)
    step: int = 1
    live_frames: int = 200
    interval_s: float = 0.25

    def __post_init__(self) -> None:
        if bool(self.videos) == bool(self.live):
            raise CalibrationError("choose either videos or live cameras (one of them, not both)")
        if len(self.camera_names) < 2:
            raise CalibrationError(f"a rig needs at least 2 cameras, got {len(self.camera_names)}")
        if self.step < 1 or self.live_frames < 1 or not self.interval_s >= 0:
            raise CalibrationError("step and live_frames must be >= 1 and interval_s >= 0")

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(self.videos or self.live)


def shrink(image: np.ndarray) -> tuple[np.ndarray, float]:
    """A copy of ``image`` ((H, W, 3) uint8 BGR) at most ``PREVIEW_MAX_SIDE`` px long, and its scale."""
    import cv2

    scale = min(1.0, PREVIEW_MAX_SIDE / max(image.shape[:2]))
    if scale == 1.0:
        return image.copy(), 1.0
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


class LiveBoardCapture:
    """Board views from live sources, frameset by frameset (no Qt; runs on a worker thread).

    Args:
        sources: camera name -> open_source spec.
        board: the board.
        max_frames: stop after this many kept framesets.
        interval_s: keep at most one frameset per this many seconds (of frame time).
    """

    def __init__(self, sources: Mapping[str, str], board: Board, *, max_frames: int, interval_s: float) -> None:
        self.sources = dict(sources)
        self.board = board
        self.max_frames = int(max_frames)
        self.interval_s = float(interval_s)

    def run(self, should_stop: Callable[[], bool], on_view: Callable[[int, int, np.ndarray, np.ndarray], None]) -> BoardViews:
        """Capture until ``should_stop()`` says so, ``max_frames`` framesets are kept or every source ends.

        ``on_view(camera index, frame index, image, corners (N, 2) px)`` is called for every frame;
        it may raise (:class:`~calibration.errors.Cancelled`) to abandon the capture.

        Raises:
            CrossviewError: a source that cannot be opened, or a camera that never saw the board.
        """
        names = tuple(self.sources)
        threads = [CameraThread(open_source(spec, name), buffer_size=4) for name, spec in self.sources.items()]
        offline = not any(t.source.live for t in threads)
        synchronizer = Synchronizer(names, mode="offline" if offline else "live")
        detector = BoardDetector(self.board)
        kept: list[np.ndarray] = []  # (C, N, 2) per kept frameset
        sizes = np.zeros((len(names), 2), int)  # (C, 2) width, height
        samples: list[list[np.ndarray]] = [[] for _ in names]
        decoded = np.zeros(len(names), int)
        last_time = -np.inf
        for thread in threads:
            thread.start()
        try:
            ended: set[str] = set()
            while not should_stop() and len(kept) < self.max_frames:
                for thread in threads:
                    frame = thread.get(timeout_s=0.0)
                    while frame is not None:
                        synchronizer.push(frame)
                        frame = thread.get(timeout_s=0.0)
                    status = thread.status()
                    if status.state == "failed":
                        raise CalibrationError(f"camera {thread.name!r} failed: {status.message}")
                    if not thread.running and thread.name not in ended:
                        ended.add(thread.name)
                        synchronizer.end(thread.name)
                frameset = synchronizer.pop()
                if frameset is None:
                    if len(ended) == len(threads):
                        break
                    time.sleep(0.005)
                    continue
                if frameset.timestamp_s - last_time < self.interval_s:
                    continue
                last_time = frameset.timestamp_s
                slot = len(kept)
                views = np.full((len(names), self.board.corner_count, 2), np.nan)
                for c, frame in enumerate(frameset.frames):
                    if frame is None:
                        continue
                    sizes[c] = frame.image.shape[1], frame.image.shape[0]
                    views[c] = detector.detect(frame.image).corners
                    decoded[c] += 1
                    if len(samples[c]) < 5 and decoded[c] % 10 == 1:
                        samples[c].append(frame.image)
                    on_view(c, slot, frame.image, views[c])
                kept.append(views)
        finally:
            for thread in threads:
                thread.stop()
        if not kept:
            raise CalibrationError("no frames came from the cameras; check that they are connected and not in use")
        corners = np.stack(kept, axis=1)  # (C, F, N, 2)
        for c, name in enumerate(names):
            require_board_found(self.board, name, corners[c], samples[c], int(decoded[c]), path=self.sources[name])
        return BoardViews(names, corners, np.arange(len(kept)), sizes[:, 0].copy(), sizes[:, 1].copy())


class Task:
    """One job on a worker thread, with a cancel flag checked between its steps."""

    def __init__(self, name: str, work: Callable[["Task"], object], done: Callable[[object], None],
                 failed: Callable[[str], None]) -> None:
        self.name = name
        self.cancel_event = threading.Event()
        self.finished = False  # the work has ended and its result (or error) is being reported
        self._work, self._done, self._failed = work, done, failed
        self._thread = threading.Thread(target=self._run, name=f"calibration-{name}", daemon=True)

    def start(self) -> "Task":
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    def check(self) -> None:
        """Raise :class:`Cancelled` when cancel was asked (call between steps)."""
        if self.cancel_event.is_set():
            raise Cancelled(f"{self.name} cancelled; nothing was saved")

    @property
    def running(self) -> bool:
        """The work has not ended yet."""
        return self._thread.is_alive() and not self.finished

    def join(self, timeout_s: float | None = None) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        # ``finished`` is set before the result is reported, so that a receiver may start the next task
        # at once while this thread is still returning.
        try:
            result = self._work(self)
        except CrossviewError as exc:
            self.finished = True
            self._failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must still reach the user as a message, not kill the GUI
            logger.exception("calibration task %s failed", self.name)
            self.finished = True
            self._failed(f"{self.name} failed unexpectedly ({type(exc).__name__}: {exc}); see the log for details")
        else:
            self.finished = True
            self._done(result)


class CalibrationSession(QObject):
    """The wizard's state and its long tasks (GUI thread for commands; signals arrive queued).

    Signals:
        preview(int, object, object, object): camera index, a shrunk (h, w, 3) BGR frame, the
            corners (N, 2) in the full frame's px (NaN where unseen), the full frame's (width, height).
        views_changed(object): ``(C, F)`` bool, which cameras saw the board in which frames so far.
        detection_progress(int, int): frames read, frames to read (0 when unknown: live cameras).
        detection_done(object): the :class:`BoardViews`.
        intrinsics_done(object): tuple of :class:`IntrinsicsResult`, one per camera.
        solve_progress(str, float): step description, fraction done.
        solved(object): the :class:`RigCalibration`.
        failed(str, str): task name (``detection``, ``intrinsics``, ``solve``), message for the user.
    """

    preview = pyqtSignal(int, object, object, object)
    views_changed = pyqtSignal(object)
    detection_progress = pyqtSignal(int, int)
    detection_done = pyqtSignal(object)
    intrinsics_done = pyqtSignal(object)
    solve_progress = pyqtSignal(str, float)
    solved = pyqtSignal(object)
    failed = pyqtSignal(str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.sources: Sources | None = None
        self.views: BoardViews | None = None
        self.intrinsics: tuple[IntrinsicsResult, ...] | None = None
        self.calibration: RigCalibration | None = None
        self.task: Task | None = None
        self.saved: tuple[Path, ...] = ()  # files written by the last page
        self._stop_live = threading.Event()
        self.detection_done.connect(self._store_views)
        self.intrinsics_done.connect(self._store_intrinsics)
        self.solved.connect(self._store_calibration)

    # ----------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.task is not None and self.task.running

    def set_sources(self, sources: Sources) -> None:
        """New sources: everything found from the old ones is forgotten."""
        self.cancel()
        self.sources, self.views, self.intrinsics, self.calibration = sources, None, None, None

    def cancel(self, wait_s: float = 10.0) -> None:
        """Stop the running task (it ends at its next step) and wait for it."""
        if self.task is not None:
            self.task.cancel()
            self.task.join(wait_s)

    def _start(self, name: str, work, done_signal) -> None:
        if self.busy:
            raise CalibrationError(f"the {self.task.name} is still running; wait for it or cancel it")
        if self.task is not None:
            self.task.join(5.0)  # it has reported its result and is returning
        self.task = Task(name, work, done_signal.emit, lambda message: self.failed.emit(name, message)).start()

    # ----------------------------------------------------------------------------------------
    def start_detection(self) -> None:
        """Search the board in every frame of the sources (progress, previews, then ``detection_done``)."""
        sources = self.sources
        if sources is None:
            raise CalibrationError("choose the board and the videos or cameras first")
        self.views = self.intrinsics = self.calibration = None
        names = sources.camera_names
        last_sent = np.zeros(len(names))
        seen: dict[int, np.ndarray] = {}

        last_found: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # camera -> its last frame with the board

        def on_view(task: Task, camera: int, frame: int, image: np.ndarray, corners: np.ndarray) -> None:
            task.check()
            found = np.isfinite(corners[:, 0]).any()
            row = seen.setdefault(frame, np.zeros(len(names), bool))
            row[camera] = found
            if found:
                last_found[camera] = (image, np.array(corners))
            now = time.monotonic()
            if now - last_sent[camera] >= PREVIEW_INTERVAL_S or found and now - last_sent[camera] >= PREVIEW_INTERVAL_S / 2:
                last_sent[camera] = now
                small, _ = shrink(image)
                self.preview.emit(camera, small, np.array(corners), (image.shape[1], image.shape[0]))
                frames = sorted(seen)
                self.views_changed.emit(np.stack([seen[f] for f in frames], axis=1))  # (C, F)

        def show_last_found() -> None:
            """End on each camera's last frame with the board (the very last frames often have none)."""
            for camera, (image, corners) in sorted(last_found.items()):
                self.preview.emit(camera, shrink(image)[0], corners, (image.shape[1], image.shape[0]))

        def work(task: Task) -> BoardViews:
            if sources.live:
                capture = LiveBoardCapture(sources.live, sources.board, max_frames=sources.live_frames,
                                           interval_s=sources.interval_s)
                self._stop_live.clear()
                views = capture.run(self._stop_live.is_set, lambda *a: on_view(task, *a))
                show_last_found()
                return views
            total = sum(video_frame_count(p) for p in sources.videos.values()) // sources.step
            done = [0]

            def on_frame() -> None:
                done[0] += 1
                if done[0] % 8 == 0:
                    self.detection_progress.emit(done[0], max(total, done[0]))

            views = collect_board_views(sources.videos, sources.board, timestamps=sources.timestamps,
                                        step=sources.step, on_frame=on_frame,
                                        on_view=lambda *a: on_view(task, *a))
            self.detection_progress.emit(max(total, done[0]), max(total, done[0]))
            show_last_found()
            self.views_changed.emit(np.isfinite(views.corners[..., 0]).any(axis=2))
            return views

        self._start("board search", work, self.detection_done)

    def stop_capture(self) -> None:
        """Live cameras: stop capturing and keep what was captured (the task ends normally)."""
        self._stop_live.set()

    def start_intrinsics(self) -> None:
        """Calibrate each camera's intrinsics from the views found (then ``intrinsics_done``)."""
        views, board = self.views, self.sources.board if self.sources else None
        if views is None or board is None:
            raise CalibrationError("search the board in the videos first")

        def work(task: Task) -> tuple[IntrinsicsResult, ...]:
            results = []
            for c, name in enumerate(views.names):
                task.check()
                results.append(calibrate_intrinsics(views.corners[c], board, name=name, width=int(views.widths[c]),
                                                    height=int(views.heights[c])))
            return tuple(results)

        self._start("intrinsic calibration", work, self.intrinsics_done)

    def start_solve(self) -> None:
        """Place the cameras (bundle adjustment) and assess the result (then ``solved``)."""
        views, intrinsics = self.views, self.intrinsics
        if views is None or intrinsics is None or self.sources is None:
            raise CalibrationError("calibrate the intrinsics first")
        board = self.sources.board

        def work(task: Task) -> RigCalibration:
            def progress(step: str, fraction: float) -> None:
                task.check()
                self.solve_progress.emit(step, fraction)

            calibration = calibrate_rig(views, board, intrinsic_results=intrinsics, progress=progress)
            self.solve_progress.emit("done", 1.0)
            return calibration

        self.calibration = None
        self._start("calibration", work, self.solved)

    # ----------------------------------------------------------------------------------------
    def _store_views(self, views: BoardViews) -> None:
        self.views = views

    def _store_intrinsics(self, results) -> None:
        self.intrinsics = tuple(results)

    def _store_calibration(self, calibration: RigCalibration) -> None:
        self.calibration = calibration

    def shared_views(self) -> np.ndarray | None:
        """``(C, C)`` int frames in which both cameras saw the board (diagonal: per camera), or None."""
        if self.views is None:
            return None
        seen = np.isfinite(self.views.corners[..., 0]).sum(axis=2) >= 6  # (C, F) enough corners for a pose
        return (seen[:, None, :] & seen[None, :, :]).sum(axis=2)
