"""Decode a take's videos ahead of playback, one thread per camera, so the GUI thread never waits.

The viewer says which frame it wants now (:meth:`FramePrefetcher.request`). All cameras decode
the same *goal* frame first, then up to ``lookahead`` frames after it, into a small cache; when
the goal is complete (every camera has it), the next goal is the frame wanted by then. When
decoding keeps up with the playback clock the goal is always the wanted frame and the frames after
it are ready before they are asked for; when it does not, playback shows every frame set the
decoders complete (frames in between are grabbed through without conversion, or skipped by a
seek) instead of chasing a wanted frame that is always a little ahead. :meth:`FramePrefetcher.newest`
returns, without blocking, the newest complete frame up to the wanted one; ``on_ready(index)`` is
called from a decoder thread when such a frame completes, so a Qt bridge can redraw then. OpenCV
releases the GIL while it decodes, so cameras decode in parallel. No Qt here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.take import VideoFrames
from calibration.errors import CrossviewError

logger = logging.getLogger(__name__)

#: Decoded frames held per camera at most (the cache grows to this, whatever the lookahead, when
#: frames are large): ~256 MB for four 1080p cameras.
MAX_CACHE_BYTES = 256 * 1024 * 1024


class FramePrefetcher:
    """Background decoders for the videos of one take.

    Args:
        videos: camera name -> video file, in view order.
        num_frames: frames the take plays; indices past a video's end decode to None.
        lookahead: frames decoded ahead of the wanted one, per camera.
        on_ready: called as ``on_ready(index)`` from a decoder thread when the wanted frame
            ``index`` has been decoded by every camera.
        on_error: called as ``on_error(message)`` when a video cannot be decoded (that camera
            then shows no image).
        transform: called in the decoder thread as ``transform(camera, image)`` on each decoded
            ``(H, W, 3)`` uint8 BGR image; the cache holds its result (e.g. the image resized and
            converted for display, so the GUI thread does not).
    """

    def __init__(
        self,
        videos: dict[str, Path],
        num_frames: int,
        *,
        lookahead: int = 4,
        on_ready: Callable[[int], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        transform: Callable[[str, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        if lookahead < 1:
            raise CrossviewError(f"lookahead must be at least 1 frame, got {lookahead}")
        self.cameras = tuple(videos)
        self.num_frames = int(num_frames)
        self._decoders = {name: VideoFrames(path) for name, path in videos.items()}
        frame_bytes = sum(3 * d.info.width * d.info.height for d in self._decoders.values()) or 1
        self.lookahead = max(2, min(int(lookahead), MAX_CACHE_BYTES // frame_bytes))
        self._on_ready = on_ready
        self._on_error = on_error
        self._transform = transform
        self._lock = threading.Condition()
        self._target = 0  # the frame the viewer wants
        self._goal = 0  # the frame every camera decodes first
        self._cache: dict[str, dict[int, np.ndarray | None]] = {name: {} for name in self.cameras}
        self._failed: dict[str, str] = {}
        self._stop = False
        self.decoded = 0  # frames decoded so far, all cameras (for measurements)
        self._threads = [
            threading.Thread(target=self._run, args=(name,), name=f"decode-{name}", daemon=True) for name in self.cameras
        ]
        for thread in self._threads:
            thread.start()

    def request(self, index: int) -> None:
        """Frame ``index`` is wanted now: decode it (or, while the decoders are behind, the next
        frame set they can complete); forget frames that can no longer be shown."""
        with self._lock:
            self._target = max(0, min(int(index), self.num_frames - 1))
            self._advance_goal()
            self._evict()
            self._lock.notify_all()

    def frames(self, index: int) -> dict[str, np.ndarray | None] | None:
        """Every camera's ``(H, W, 3)`` uint8 BGR image at ``index`` (or what ``transform`` made of
        it; None for a camera whose video ended or failed), or None when some camera has not
        decoded it yet. Never blocks."""
        with self._lock:
            if not self._complete(index):
                return None
            return {name: self._cache[name].get(index) for name in self.cameras}

    def newest(self, index: int) -> tuple[int, dict[str, np.ndarray | None]] | None:
        """The newest complete frame at or before ``index`` still held, as ``(frame, images)``
        (images as :meth:`frames` gives them), or None. Never blocks."""
        with self._lock:
            found = self._newest(index)
            if found is None:
                return None
            return found, {name: self._cache[name].get(found) for name in self.cameras}

    def wait_frames(self, index: int, timeout_s: float) -> dict[str, np.ndarray | None] | None:
        """:meth:`frames` after requesting ``index`` and waiting up to ``timeout_s`` for it (for
        scripts and tests; the GUI uses ``on_ready`` instead)."""
        self.request(index)
        with self._lock:
            self._lock.wait_for(lambda: self._complete(index) or self._stop, timeout=timeout_s)
        return self.frames(index)

    def close(self) -> None:
        """Stop and join the decoder threads and release the videos."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=5.0)
        for decoder in self._decoders.values():
            decoder.close()

    # ----------------------------------------------------------------------------------------
    def _complete(self, index: int) -> bool:
        return all(index in self._cache[name] or name in self._failed for name in self.cameras)

    def _newest(self, index: int) -> int | None:
        """The newest complete frame held at or before ``index`` (lock held)."""
        if len(self._failed) == len(self.cameras):
            return index
        held = sorted({i for cache in self._cache.values() for i in cache if i <= index}, reverse=True)
        return next((i for i in held if self._complete(i)), None)

    def _advance_goal(self) -> None:
        """A new goal once the current one is complete, or at once for a frame behind it (lock held)."""
        if self._target < self._goal or self._complete(self._goal) or self._goal >= self.num_frames:
            self._goal = self._target

    def _evict(self) -> None:
        """Keep the newest complete frame up to the wanted one and the goal's window (lock held)."""
        keep = self._newest(self._target)
        for cache in self._cache.values():
            for stale in [i for i in cache if i != keep and not self._goal <= i < self._goal + self.lookahead]:
                del cache[stale]

    def _next_wanted(self, name: str) -> int | None:
        """The first frame of the goal's window this camera has not decoded (lock held)."""
        if name in self._failed:
            return None
        cache = self._cache[name]
        for index in range(self._goal, min(self._goal + self.lookahead, self.num_frames)):
            if index not in cache:
                return index
        return None

    def _run(self, name: str) -> None:
        decoder = self._decoders[name]
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._stop or self._next_wanted(name) is not None)
                if self._stop:
                    return
                index = self._next_wanted(name)
            try:
                image = decoder.read(index) if index < len(decoder) else None
                if image is not None and self._transform is not None:
                    image = self._transform(name, image)
            except CrossviewError as exc:
                message = f"camera {name}: {exc}"
                logger.error("%s", message)
                with self._lock:
                    self._failed[name] = message
                    target = self._target
                    ready = self._complete(target)
                    self._advance_goal()
                    self._lock.notify_all()
                if self._on_error is not None:
                    self._on_error(message)
                if ready and self._on_ready is not None:
                    self._on_ready(target)
                return
            with self._lock:
                if self._stop:
                    return
                if not self._goal <= index < self._goal + self.lookahead:
                    continue  # the viewer moved on while this frame decoded
                self._cache[name][index] = image
                self.decoded += 1
                ready = index <= self._target and self._complete(index)
                if ready:
                    self._advance_goal()
                    self._evict()
                self._lock.notify_all()
            if ready and self._on_ready is not None:
                self._on_ready(index)
