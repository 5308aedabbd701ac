"""Frames of an open take for the window: decoded in the background, with their poses.

- A processed take (``poses3d.npz``, or no videos): each wanted frame is shown with the poses from
  the files as soon as every camera's image is decoded (:class:`FramePrefetcher` decodes ahead).
- A take with videos but no ``poses3d.npz``: the decoded frame set goes through the
  :class:`~app.pipeline.Pipeline` on the :class:`PoseWorker` thread (detect, triangulate, refine,
  filter) and is shown with its result; a slow pipeline shows fewer frames, never out of step.
  Results are kept per frame, so going back shows them at once.

Decoder and worker threads report through callbacks that emit this object's signals; Qt queues
them to the GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from app.gui.camera_tiles import display_size, to_display
from app.gui.frame_prefetch import FramePrefetcher
from app.gui.pose_worker import PoseWorker
from app.gui.view_frame import from_pose_frame, from_take
from app.take import Take

logger = logging.getLogger(__name__)

#: Frames the pipeline may skip between two frame sets and still track and filter across them.
MAX_SMOOTH_GAP = 15


class PlaybackFeed(QObject):
    """The frames of ``take``; ``make_pipeline()`` builds the pipeline for takes without 3D poses.

    Signals:
        frame_ready(ViewFrame): a frame to draw.
        pipeline_ready(str): the pipeline is built (its provider).
        error(str): a message for the user.
    """

    frame_ready = pyqtSignal(object)
    pipeline_ready = pyqtSignal(str)
    error = pyqtSignal(str)
    _decoded = pyqtSignal(int)  # from decoder threads
    _posed = pyqtSignal(object, object, object)  # from the worker thread

    def __init__(self, take: Take, make_pipeline: Callable[[], object] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.take = take
        self.uses_pipeline = take.poses3d is None and bool(take.videos) and make_pipeline is not None
        self._wanted = 0
        self._last_shown: int | None = None
        self._submitted: int | None = None  # the last frame given to the pipeline
        self._poses: dict[int, object] = {}  # frame index -> PoseFrame (pipeline mode)
        self._decoded.connect(self._on_decoded)
        self._posed.connect(self._on_posed)
        self.prefetcher = None
        if take.videos:
            transform = None
            if not self.uses_pipeline:  # only the display needs the images: prepare them off the GUI thread
                sizes = {camera.name: display_size(camera.width, camera.height) for camera in take.rig}
                transform = lambda name, image: to_display(image, sizes[name])  # noqa: E731
            self.prefetcher = FramePrefetcher(
                {name: video.path for name, video in take.videos.items()},
                take.num_frames,
                on_ready=self._decoded.emit,
                on_error=self.error.emit,
                transform=transform,
            )
        self.worker = None
        if self.uses_pipeline:
            self.worker = PoseWorker(make_pipeline, on_result=self._posed.emit, on_error=self.error.emit,
                                     on_ready=self.pipeline_ready.emit)

    @property
    def poses(self) -> dict[int, object]:
        """Pipeline results so far, frame index -> PoseFrame (empty for a processed take)."""
        return dict(self._poses)

    def request(self, index: int) -> None:
        """Show frame ``index`` as soon as it is ready (``frame_ready``)."""
        self._wanted = int(index)
        if self.prefetcher is None:
            self.frame_ready.emit(from_take(self.take, self._wanted, {}))
            return
        self.prefetcher.request(self._wanted)
        self._on_decoded(self._wanted)

    def close(self) -> None:
        """Stop and join the decoder and worker threads."""
        if self.worker is not None:
            self.worker.close()
        if self.prefetcher is not None:
            self.prefetcher.close()

    # ----------------------------------------------------------------------------------------
    def _truth(self, index: int) -> np.ndarray | None:
        truth = self.take.ground_truth
        return None if truth is None else truth[index]

    def _on_decoded(self, _index: int) -> None:
        if self.prefetcher is None:
            return
        found = self.prefetcher.newest(self._wanted)
        if found is None or found[0] == self._last_shown:
            return  # nothing newer decoded yet: on_ready calls back
        index, images = found
        self._last_shown = index
        if not self.uses_pipeline:
            self.frame_ready.emit(from_take(self.take, index, images, prepared=True))
            return
        frames = [images.get(name) for name in self.take.camera_names]
        if index in self._poses:
            self.frame_ready.emit(from_pose_frame(index, self.take.time_s(index), frames, self._poses[index],
                                                  self._truth(index)))
            return
        if self._submitted is not None and not 0 < index - self._submitted <= MAX_SMOOTH_GAP:
            self.worker.reset()  # a seek: the tracking and the filter must not bridge it
        self._submitted = index
        self.worker.submit(index, frames, self.take.time_s(index))

    def _on_posed(self, index: int, frames, pose) -> None:
        self._poses[index] = pose
        self.frame_ready.emit(from_pose_frame(index, self.take.time_s(index), frames, pose, self._truth(index)))
