"""Live cameras for the window: a :class:`app.live.LiveSession` (capture threads, synchronizer,
recording) and the :class:`PoseWorker` running the pipeline on the newest frame set.

Framesets leave the session's processing thread through ``on_frameset``; with a calibration they
go to the pose worker (which keeps only the newest), without one they are shown as they are. Every
result, session event and error reaches the GUI thread through this object's signals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from app.capture.synchronizer import FrameSet
from app.gui.pose_worker import PoseWorker
from app.gui.view_frame import ViewFrame, from_pose_frame
from calibration.camera import Camera
from calibration.errors import CrossviewError
from calibration.rig import Rig

logger = logging.getLogger(__name__)

#: How often the session's statistics (sync skew, rates) are read, ms.
STATS_INTERVAL_MS = 500
#: Camera states that the user must hear about.
BAD_STATES = ("failed", "absent", "reconnecting")


def placeholder_rig(sizes: dict[str, tuple[int, int]]) -> Rig:
    """Cameras without a calibration (tiles need a size): ``sizes`` camera name -> (width, height)
    px; identity pose, a plausible focal length. Only the images mean something; no 3D."""
    cameras = []
    for name, (width, height) in sizes.items():
        K = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
        cameras.append(Camera(name, width, height, K, np.zeros(5), np.eye(3), np.zeros(3)))
    return Rig(tuple(cameras))


class LiveFeed(QObject):
    """A running live session.

    Args:
        sources: camera name -> source spec (see :func:`app.capture.sources.open_source`).
        rig: the calibration (None: images only, no 3D).
        pipeline_for: builds the pipeline for a rig (the calibration's cameras of ``sources``);
            None: no poses.

    Signals:
        frame_ready(ViewFrame), error(str), recording_changed(str: the folder, "" when stopped),
        rig_changed(Rig): the cameras' frame sizes became known (no calibration) or differ from the
            calibrated ones (the calibration scaled to fit).
    """

    frame_ready = pyqtSignal(object)
    rig_changed = pyqtSignal(object)
    error = pyqtSignal(str)
    recording_changed = pyqtSignal(str)
    _arrived = pyqtSignal()  # from the session's or the worker's thread: something is in _latest
    _event = pyqtSignal(object)  # from the session's threads

    def __init__(self, sources: dict[str, str], rig: Rig | None, pipeline_for: Callable[[Rig], object] | None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        from app.live import LiveSession

        self.calibrated = rig is not None
        self.rig = (rig.select(tuple(sources), source="the live cameras") if rig is not None
                    else placeholder_rig(dict.fromkeys(sources, (1280, 720))))
        self.recording_folder: Path | None = None
        self.skew_ms: float | None = None
        self.count = 0
        # Only the newest result waits for the GUI thread: a slow screen skips frame sets instead
        # of queueing them (which would add latency without end).
        self._latest_lock = threading.Lock()
        self._latest: tuple | None = None
        self._arrived.connect(self._show_latest)
        self._event.connect(self._on_event)
        self.worker = None
        self.restart_pipeline(pipeline_for)
        self.session = LiveSession(dict(sources), rig, on_frameset=self._on_frameset, on_status=self._event.emit)
        self.session.start()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._read_stats)
        self._timer.start(STATS_INTERVAL_MS)

    def restart_pipeline(self, pipeline_for: Callable[[Rig], object] | None) -> None:
        """Use a new pipeline (new settings) from the next frame set on; None: no poses."""
        if self.worker is not None:
            self.worker.close()
            self.worker = None
        if pipeline_for is not None and self.calibrated:
            rig = self.rig
            self.worker = PoseWorker(lambda: pipeline_for(rig), on_result=self._deliver, on_error=self.error.emit)

    def start_recording(self, folder: Path) -> None:
        """Record every frame set into the new take ``folder``.

        Raises:
            CrossviewError: already recording, or the folder cannot be written.
        """
        self.session.start_recording(folder)
        self.recording_folder = Path(folder)
        self.recording_changed.emit(str(folder))

    def stop_recording(self) -> Path | None:
        """Finalise the take; returns its folder (None when not recording).

        Raises:
            CrossviewError: finalising failed (the message says what was kept).
        """
        folder, self.recording_folder = self.recording_folder, None
        try:
            written = self.session.stop_recording()
        finally:
            self.recording_changed.emit("")
        return written or folder

    def stats(self):
        """The session's :class:`app.live.SessionStats`."""
        return self.session.stats()

    def close(self) -> None:
        """Stop the session (a recording is finalised) and the worker; threads are joined."""
        self._timer.stop()
        try:
            self.session.stop()
        except CrossviewError as exc:
            self.error.emit(f"Recording stopped with an error: {exc}")
        if self.worker is not None:
            self.worker.close()
        self.recording_folder = None

    # ----------------------------------------------------------------------------------------
    def _on_frameset(self, frameset: FrameSet) -> None:
        """Called by the session's processing thread with the newest frame set."""
        images = [None if frame is None else frame.image for frame in frameset.frames]
        worker = self.worker
        if worker is not None:
            worker.submit(frameset, images, frameset.timestamp_s)
        else:
            self._deliver(frameset, images, None)

    def _deliver(self, frameset: FrameSet, images, pose) -> None:
        """Hand a result to the GUI thread (from any thread), replacing one not yet shown."""
        with self._latest_lock:
            waiting = self._latest is not None
            self._latest = (frameset, images, pose)
        if not waiting:
            self._arrived.emit()

    def _show_latest(self) -> None:
        with self._latest_lock:
            latest, self._latest = self._latest, None
        if latest is None:
            return
        frameset, images, pose = latest
        self._track_sizes(frameset, tuple(images))
        if pose is None:
            self._show_frameset(frameset, tuple(images))
        else:
            self.count += 1
            self.frame_ready.emit(from_pose_frame(self.count - 1, frameset.timestamp_s, images, pose))

    def _track_sizes(self, frameset: FrameSet, images: tuple) -> None:
        """Keep the drawn rig at the frames' sizes: without a calibration the tiles take them from
        the frames; with one, a camera delivering another size than calibrated gets the calibration
        scaled to fit (as the pipeline does), so overlays land on the pixels."""
        current = {c.name: (c.width, c.height) for c in self.rig}
        sizes = dict(current)
        for name, image in zip(frameset.cameras, images):
            if image is not None:
                sizes[name] = (image.shape[1], image.shape[0])
        if sizes == current:
            return
        if self.calibrated:
            self.rig = Rig(tuple(c.fitted_to_image(*sizes[c.name]) for c in self.rig))
        else:
            self.rig = placeholder_rig(sizes)
        self.rig_changed.emit(self.rig)

    def _show_frameset(self, frameset: FrameSet, images: tuple) -> None:
        self.count += 1
        self.frame_ready.emit(ViewFrame(index=self.count - 1, t_s=frameset.timestamp_s, images=images))

    def _on_event(self, event) -> None:
        text = f"{event.subject}: {event.message}"
        if event.state in BAD_STATES or (event.subject == "recording" and event.state == "failed"):
            if event.subject == "recording":
                self.recording_folder = None
                self.recording_changed.emit("")
            self.error.emit(text)
        else:
            logger.info("%s", text)

    def _read_stats(self) -> None:
        stats = self.session.stats()
        self.skew_ms = 1000.0 * stats.skew_mean_s if stats.framesets else None
