"""Group frames of several cameras into framesets by timestamp, and report how well they line up.

Two frames belong to the same instant when their timestamps differ by at most ``tolerance_s``
(default half a frame period). A :class:`FrameSet` holds one frame (or ``None``) per camera in camera
order, its timestamp (the median of its frames) and its skew (latest minus earliest frame).

- ``mode="live"``: :meth:`Synchronizer.pop` returns the newest *complete* frameset; older frames
  are skipped and counted, so a slow consumer never falls behind the cameras.
- ``mode="offline"``: :meth:`Synchronizer.pop` returns framesets in time order and skips nothing;
  a frame without partners within the tolerance yields an incomplete frameset (missing cameras are
  ``None``, to be NaN with confidence 0 downstream), so every frame is processed once.

Not thread-safe by itself: one consumer thread pushes and pops (e.g. draining the camera threads).
"""

from __future__ import annotations

import collections
import logging
import statistics
from dataclasses import dataclass, field

from app.capture.sources import Frame

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FrameSet:
    """Frames of all cameras for one instant.

    Attributes:
        cameras: camera names, in order.
        frames: one :class:`Frame` or ``None`` (missing) per camera, same order.
        timestamp_s: median timestamp of the present frames, seconds.
        skew_s: latest minus earliest present timestamp, seconds (0 for a single frame).
    """

    cameras: tuple[str, ...]
    frames: tuple[Frame | None, ...]
    timestamp_s: float = field(init=False)
    skew_s: float = field(init=False)

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.cameras):
            raise ValueError(f"FrameSet needs one frame slot per camera: {len(self.cameras)} cameras, "
                             f"{len(self.frames)} frames")
        present = [f for f in self.frames if f is not None]
        if not present:
            raise ValueError("FrameSet needs at least one frame")
        for name, frame in zip(self.cameras, self.frames):
            if frame is not None and frame.camera != name:
                raise ValueError(f"FrameSet slot {name!r} holds a frame of camera {frame.camera!r}")
        times = [f.timestamp_s for f in present]
        object.__setattr__(self, "timestamp_s", float(statistics.median(times)))
        object.__setattr__(self, "skew_s", float(max(times) - min(times)))

    @property
    def complete(self) -> bool:
        return all(f is not None for f in self.frames)

    def __getitem__(self, camera: str) -> Frame | None:
        try:
            return self.frames[self.cameras.index(camera)]
        except ValueError:
            raise KeyError(f"no camera {camera!r} in this frameset (cameras: {', '.join(self.cameras)})") from None


@dataclass(frozen=True, slots=True)
class CameraSyncStats:
    """How one camera fared in the synchronizer.

    Attributes:
        camera: camera name.
        received: frames pushed.
        used: frames delivered in a frameset.
        skipped: frames discarded (live: stale; offline: never, except frames older than one already
            delivered, which arrived out of order).
        missing: framesets delivered without this camera.
        mean_abs_offset_s, max_abs_offset_s: |frame time - frameset time| over delivered frames, seconds.
    """

    camera: str
    received: int
    used: int
    skipped: int
    missing: int
    mean_abs_offset_s: float
    max_abs_offset_s: float


class Synchronizer:
    """Group frames from ``camera_names`` into :class:`FrameSet` objects.

    Args:
        camera_names: the cameras, in frameset order.
        tolerance_s: largest timestamp difference within a frameset, seconds. ``None``: half the frame
            period, from ``fps`` or else estimated from the first frames (median interval per camera).
        mode: ``"live"`` or ``"offline"`` (see the module docstring).
        fps: nominal frame rate, used for the default tolerance.
        max_buffered: frames kept per camera while waiting (oldest skipped beyond that).
    """

    def __init__(self, camera_names, tolerance_s: float | None = None, mode: str = "live", *,
                 fps: float | None = None, max_buffered: int = 64) -> None:
        self.cameras = tuple(camera_names)
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"camera_names must be unique and non-empty, got {self.cameras}")
        if mode not in ("live", "offline"):
            raise ValueError(f"mode must be 'live' or 'offline', got {mode!r}")
        if tolerance_s is not None and not tolerance_s > 0:
            raise ValueError(f"tolerance_s must be > 0, got {tolerance_s}")
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.mode = mode
        self.tolerance_s = tolerance_s if tolerance_s is not None else (0.5 / fps if fps else None)
        self.max_buffered = int(max_buffered)
        self._queues: dict[str, collections.deque[Frame]] = {c: collections.deque() for c in self.cameras}
        self._ended: set[str] = set()
        self._seen: dict[str, list[float]] = {c: [] for c in self.cameras}
        self._received = dict.fromkeys(self.cameras, 0)
        self._used = dict.fromkeys(self.cameras, 0)
        self._skipped = dict.fromkeys(self.cameras, 0)
        self._missing = dict.fromkeys(self.cameras, 0)
        self._offsets: dict[str, list[float]] = {c: [] for c in self.cameras}
        self._last_time_s = float("-inf")
        self.framesets = 0
        self.skews_s: list[float] = []

    def push(self, frame: Frame) -> None:
        """Add a frame of one of the cameras."""
        if frame.camera not in self._queues:
            raise KeyError(f"frame of unknown camera {frame.camera!r}; cameras: {', '.join(self.cameras)}")
        self._received[frame.camera] += 1
        if frame.timestamp_s <= self._last_time_s - (self.tolerance_s or 0.0):
            self._skipped[frame.camera] += 1  # older than what was already delivered
            return
        queue = self._queues[frame.camera]
        queue.append(frame)
        if len(queue) > 1 and queue[-2].timestamp_s > frame.timestamp_s:
            ordered = sorted(queue, key=lambda f: f.timestamp_s)
            queue.clear()
            queue.extend(ordered)
        if self.mode == "live":
            while len(queue) > self.max_buffered:
                queue.popleft()
                self._skipped[frame.camera] += 1
        if self.tolerance_s is None:
            self._estimate_tolerance(frame)

    def end(self, camera: str) -> None:
        """Say that ``camera`` sends no more frames: offline, the rest is delivered without it; live,
        framesets are delivered without it (its slot ``None``) once its buffered frames are used up."""
        if camera not in self._queues:
            raise KeyError(f"unknown camera {camera!r}; cameras: {', '.join(self.cameras)}")
        self._ended.add(camera)

    def resume(self, camera: str) -> None:
        """Undo :meth:`end`: ``camera`` sends frames again (a live camera that reconnected), and
        framesets wait for it once more."""
        if camera not in self._queues:
            raise KeyError(f"unknown camera {camera!r}; cameras: {', '.join(self.cameras)}")
        self._ended.discard(camera)

    def _estimate_tolerance(self, frame: Frame) -> None:
        seen = self._seen[frame.camera]
        seen.append(frame.timestamp_s)
        intervals = [b - a for s in self._seen.values() for a, b in zip(s, s[1:]) if b > a]
        waiting = [c for c, s in self._seen.items() if len(s) < 2 and c not in self._ended]
        if len(intervals) >= 4 and not waiting:  # an ended camera (never connected) holds nothing back
            self.tolerance_s = 0.5 * statistics.median(intervals)
            logger.info("synchronizer: tolerance %.4f s (half the median frame interval)", self.tolerance_s)

    def _deliver(self, frames: dict[str, Frame]) -> FrameSet:
        frameset = FrameSet(self.cameras, tuple(frames.get(c) for c in self.cameras))
        for camera in self.cameras:
            frame = frames.get(camera)
            if frame is None:
                self._missing[camera] += 1
            else:
                self._used[camera] += 1
                self._offsets[camera].append(abs(frame.timestamp_s - frameset.timestamp_s))
        self._last_time_s = max(f.timestamp_s for f in frames.values())
        self.framesets += 1
        self.skews_s.append(frameset.skew_s)
        return frameset

    def pop(self) -> FrameSet | None:
        """The next frameset (see ``mode``), or ``None`` when none is ready yet."""
        if self.tolerance_s is None:
            return None
        return self._pop_live() if self.mode == "live" else self._pop_offline()

    def drain(self) -> list[FrameSet]:
        """Offline: end every camera and return all remaining framesets."""
        self._ended.update(self.cameras)
        out = []
        for _ in range(sum(len(q) for q in self._queues.values())):
            frameset = self.pop()
            if frameset is None:
                break
            out.append(frameset)
        return out

    def _pop_offline(self) -> FrameSet | None:
        waiting = [c for c in self.cameras if not self._queues[c] and c not in self._ended]
        if waiting or not any(self._queues.values()):
            return None
        heads = {c: q[0] for c, q in self._queues.items() if q}
        start_s = min(f.timestamp_s for f in heads.values())
        group = {c: f for c, f in heads.items() if f.timestamp_s - start_s <= self.tolerance_s}
        for camera in group:
            self._queues[camera].popleft()
        return self._deliver(group)

    def _pop_live(self) -> FrameSet | None:
        # Cameras still sending are required; an ended camera's buffered frames join a frameset when
        # they match it and are skipped as stale otherwise, so a camera that vanished with frames in
        # its queue never holds the others back. When every camera has ended, the leftovers are used.
        required = [c for c in self.cameras if c not in self._ended]
        if not required:
            required = [c for c in self.cameras if self._queues[c]]
        if not required or any(not self._queues[c] for c in required):
            return None
        optional = [c for c in self.cameras if c not in required and self._queues[c]]
        # The camera whose newest frame is oldest bounds the newest complete frameset.
        anchor_camera = min(required, key=lambda c: self._queues[c][-1].timestamp_s)
        for anchor in reversed(self._queues[anchor_camera]):
            group = {anchor_camera: anchor}
            for camera in required + optional:
                if camera == anchor_camera:
                    continue
                nearest = min(self._queues[camera], key=lambda f: abs(f.timestamp_s - anchor.timestamp_s))
                if abs(nearest.timestamp_s - anchor.timestamp_s) <= self.tolerance_s:
                    group[camera] = nearest
                elif camera in required:
                    break
            else:
                if max(f.timestamp_s for f in group.values()) - min(f.timestamp_s for f in group.values()) \
                        > 2 * self.tolerance_s:
                    continue
                newest_s = max(f.timestamp_s for f in group.values())
                for camera in required + optional:
                    queue = self._queues[camera]
                    limit_s = group[camera].timestamp_s if camera in group else newest_s
                    while queue and queue[0].timestamp_s <= limit_s:
                        if queue.popleft() is not group.get(camera):
                            self._skipped[camera] += 1
                return self._deliver(group)
        return None

    def stats(self) -> dict[str, CameraSyncStats]:
        """Per-camera counts and offsets so far."""
        out = {}
        for c in self.cameras:
            offsets = self._offsets[c]
            out[c] = CameraSyncStats(c, self._received[c], self._used[c], self._skipped[c], self._missing[c],
                                     float(statistics.fmean(offsets)) if offsets else 0.0,
                                     float(max(offsets)) if offsets else 0.0)
        return out
