"""Synchronised video files read in lockstep: one frame of every camera per step.

Used offline (``crossview process --videos``): frame ``t`` of every file belongs to the same
instant, as in a hardware-synchronised or already-trimmed recording. Videos are matched to the
calibration's cameras by file name (``cam01.mp4`` -> camera ``cam01``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from calibration.errors import InputFileError
from calibration.video_views import VIDEO_SUFFIXES  # one list of video file types for the project

logger = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What a video file says about itself.

    Attributes:
        path: the file.
        width, height: frame size, px.
        fps: frames per second (0 when the container does not say).
        frame_count: frames the container announces (may be wrong for damaged files).
    """

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int


def probe_video(path: str | Path) -> VideoInfo:
    """Open ``path`` and read its size, rate and length; a file that does not decode is an error."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such video file")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputFileError(f"{path}: cannot open the video (unsupported codec or not a video file)")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise InputFileError(f"{path}: the video has no decodable frame (empty, truncated or corrupt)")
        height, width = frame.shape[:2]
        return VideoInfo(
            path=path,
            width=int(width),
            height=int(height),
            fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
            frame_count=int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
        )
    finally:
        capture.release()


def find_videos(folder: str | Path) -> dict[str, Path]:
    """Video files in ``folder`` by camera name (the file stem), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{folder}: not a folder of videos")
    videos = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()}
    if not videos:
        raise InputFileError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    return videos


class LockstepVideos:
    """Read several videos frame by frame together.

    Iterating yields ``(t, frames)`` with ``frames`` a list of ``(H, W, 3)`` uint8 BGR images in
    camera order. It stops at the end of the shortest video (logging the frames left in the others).
    When a video stops decoding early (a truncated or damaged file) iteration ends there, the
    frames before it stand, and :attr:`problem` says which file failed at which frame, so the
    caller keeps what was processed and tells the user.
    """

    def __init__(self, videos: dict[str, Path]) -> None:
        self.names = tuple(videos)
        self.infos = {name: probe_video(path) for name, path in videos.items()}
        counts = {name: info.frame_count for name, info in self.infos.items()}
        self.num_frames = min(counts.values())
        if len(set(counts.values())) > 1:
            logger.warning("videos differ in length %s; processing the first %d frames of each", counts, self.num_frames)
        rates = {info.fps for info in self.infos.values() if info.fps > 0}
        self.fps = float(np.median(sorted(rates))) if rates else 0.0
        if len(rates) > 1:
            logger.warning("videos differ in frame rate %s; timestamps use %.3f fps", sorted(rates), self.fps)
        self.problem: str | None = None

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[tuple[int, list[np.ndarray]]]:
        captures = [cv2.VideoCapture(str(self.infos[name].path)) for name in self.names]
        try:
            for t in range(self.num_frames):
                frames = []
                for name, capture in zip(self.names, captures):
                    ok, frame = capture.read()
                    if not ok or frame is None:
                        self.problem = (
                            f"{self.infos[name].path}: decoding failed at frame {t} of {self.num_frames} "
                            "(the file is truncated or damaged); the frames before it were kept"
                        )
                        logger.warning("%s", self.problem)
                        return
                    frames.append(frame)
                yield t, frames
        finally:
            for capture in captures:
                capture.release()
