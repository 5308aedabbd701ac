"""Board views from calibration videos: frames grouped by capture sync, the board detected in each.

Videos are matched to cameras by file stem (``cam_0.mp4`` -> camera ``"cam_0"``). Frames are
grouped into synchronised sets ("frames" F below) either by a timestamps table or by frame index.

The timestamps table is caliscope's ``timestamps.csv``: columns ``sync_index, cam_id, frame_index,
frame_time``; rows sharing a ``sync_index`` were captured together. ``cam_id`` N matches the video
whose stem is ``N`` or ends in ``_N`` / ``N`` (``cam_0``). ``frame_index`` counts from the start of
capture, which may precede the first frame written to the video: when a camera has as many rows as
its video has frames, its rows in ``frame_index`` order are the video's frames in order; otherwise
``frame_index`` is taken as the frame's position in the video.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np

from calibration.board_detection import BoardDetector, explain_missing_board
from calibration.boards import Board
from calibration.errors import CalibrationError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
_DIAGNOSIS_SAMPLES = 5  # frames kept per camera to explain a board never found
_TIMESTAMP_COLUMNS = ("sync_index", "cam_id", "frame_index")


@dataclass(frozen=True, slots=True, eq=False)
class BoardViews:
    """The board's corners in every camera and synchronised frame.

    Attributes:
        names: C camera names, in view order.
        corners: ``(C, F, N, 2)`` float64 px; NaN where the board corner was not found.
        frame_labels: ``(F,)`` int: the sync index (timestamps table) or video frame index of each frame.
        widths: ``(C,)`` int image widths, px.
        heights: ``(C,)`` int image heights, px.
    """

    names: tuple[str, ...]
    corners: np.ndarray
    frame_labels: np.ndarray
    widths: np.ndarray
    heights: np.ndarray

    def frame_of_label(self, label: int) -> int:
        """The frame index (0..F-1) whose label is ``label``."""
        hits = np.flatnonzero(self.frame_labels == label)
        if hits.size == 0:
            raise CalibrationError(
                f"frame {label} was not sampled (frames run {self.frame_labels.min()}-{self.frame_labels.max()}; "
                "with --step, choose a multiple of the step)",
                field="origin_frame",
            )
        return int(hits[0])


def find_videos(paths: Sequence[str | Path]) -> dict[str, Path]:
    """Camera name -> video file, from files and folders (a folder contributes its videos).

    Raises:
        CalibrationError: for a missing path, no videos, or two videos with the same stem.
    """
    videos: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if not found:
                raise CalibrationError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in the folder", path=path)
        elif path.is_file():
            found = [path]
        else:
            raise CalibrationError("no such file or folder", path=path)
        for video in found:
            if video.stem in videos:
                raise CalibrationError(
                    f"two videos for camera {video.stem!r}: {videos[video.stem]} and {video}; camera names come from file stems",
                    path=video,
                )
            videos[video.stem] = video
    if len(videos) == 0:
        raise CalibrationError("no videos given")
    return videos


def _matches_id(name: str, cam_id: int) -> bool:
    """Camera ``name`` is ``cam_id``: ``"3"``, ``"cam_3"``, ``"cam3"`` all match 3."""
    digits = re.search(r"(\d+)$", name)
    return digits is not None and int(digits.group(1)) == cam_id


def read_sync_table(path: str | Path, names: Sequence[str], frame_counts: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Synchronised frame positions from a timestamps table (see the module docstring).

    Args:
        path: the CSV file.
        names: camera names (video stems).
        frame_counts: frames in each camera's video.

    Returns:
        ``labels (F,)`` int sync indices and ``positions (C, F)`` int video frame positions, -1
        where a camera has no frame in a sync group.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise CalibrationError(f"cannot read the timestamps ({exc})", path=path) from None
    if not rows or any(column not in rows[0] for column in _TIMESTAMP_COLUMNS):
        raise CalibrationError(f"a timestamps table needs columns {', '.join(_TIMESTAMP_COLUMNS)}", path=path)
    try:
        table = np.array([[int(row[c]) for c in _TIMESTAMP_COLUMNS] for row in rows])  # (R, 3)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"a value is not a whole number ({exc})", path=path) from None
    labels = np.unique(table[:, 0])
    positions = np.full((len(names), labels.size), -1)
    for c, name in enumerate(names):
        ids = [i for i in np.unique(table[:, 1]) if _matches_id(name, int(i))]
        if not ids:
            raise CalibrationError(f"no rows for camera {name!r} (cam_id matching its number)", path=path)
        mine = table[table[:, 1] == ids[0]]
        mine = mine[np.argsort(mine[:, 2], kind="stable")]
        if len(mine) == frame_counts[name]:
            position = np.arange(len(mine))  # the rows are the video's frames, in order
        elif mine[:, 2].max() < frame_counts[name]:
            position = mine[:, 2]
        else:
            raise CalibrationError(
                f"camera {name!r}: {len(mine)} rows with frame_index up to {mine[:, 2].max()}, but the video has "
                f"{frame_counts[name]} frames; the table does not belong to these videos",
                path=path,
            )
        positions[c, np.searchsorted(labels, mine[:, 0])] = position
    return labels, positions


def video_frame_count(path: str | Path) -> int:
    """Frames in a video, as its container states them."""
    path = Path(path)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise CalibrationError("cannot open the video (missing codec or not a video)", path=path)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return count


def require_board_found(board: Board, name: str, corners: np.ndarray, samples: Sequence[np.ndarray], decoded: int,
                        *, path: str | Path | None = None) -> None:
    """Raise when camera ``name`` never saw the board, saying why (:func:`explain_missing_board`).

    Args:
        board: the board looked for.
        name: camera name.
        corners: ``(F, N, 2)`` px the camera's detections, NaN where unseen.
        samples: a few of its frames (``(H, W, 3)`` uint8 BGR) for the diagnosis.
        decoded: frames read from the camera.
        path: its video file, for the message.

    Raises:
        CalibrationError: no frame was read, or the board was found in none.
    """
    if decoded == 0:
        raise CalibrationError("no frame could be decoded from the video", path=path, camera=name)
    if not np.any(np.isfinite(corners)):
        raise CalibrationError(
            f"the board ({board.describe()}) was not found in any of {decoded} frames: "
            + explain_missing_board(board, samples),
            path=path,
            camera=name,
        )


class _VideoReader:
    """Reads chosen frame positions of one video in increasing order (decoding only those frames)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.capture = cv2.VideoCapture(str(path))
        self.position = 0  # the next frame read() or grab() returns
        self.ended = False

    def read(self, position: int) -> np.ndarray | None:
        """The frame at ``position`` (>= every earlier request), or None past the end of the video."""
        if position < self.position:  # out of order (a sync table not in frame order): start again
            self.capture.release()
            self.capture, self.position, self.ended = cv2.VideoCapture(str(self.path)), 0, False
        while not self.ended and self.position < position:
            self.ended = not self.capture.grab()
            self.position += 1
        if self.ended:
            return None
        ok, image = self.capture.read()
        self.position += 1
        self.ended = not ok
        return image if ok else None

    def close(self) -> None:
        self.capture.release()


def collect_board_views(
    videos: Mapping[str, str | Path],
    board: Board,
    *,
    timestamps: str | Path | None = None,
    step: int = 1,
    frames: tuple[int, int] | None = None,
    on_frame: Callable[[], None] | None = None,
    on_view: Callable[[int, int, np.ndarray, np.ndarray], None] | None = None,
) -> BoardViews:
    """Detect ``board`` in every ``step``-th synchronised frame of ``videos``.

    The videos are read in lockstep, one synchronised frame of every camera after the other, so
    the views shared between cameras grow as the reading goes (a wizard shows them live).

    Args:
        videos: camera name -> video file.
        board: the board to detect.
        timestamps: a timestamps table grouping simultaneous frames; None: frame ``i`` of every
            video was captured together.
        step: keep every ``step``-th synchronised frame.
        frames: ``(start, stop)`` frame labels (sync index, or frame index without a table) to keep,
            ``start <= label < stop``; None keeps all.
        on_frame: called after each decoded frame (for a progress bar); it may raise
            (:class:`~calibration.errors.Cancelled`) to stop.
        on_view: called after each decoded frame with ``(camera index, frame index 0..F-1,
            image (H, W, 3) uint8 BGR, corners (N, 2) px, NaN where unseen)``, for a live display.

    Raises:
        CalibrationError: for an unreadable video, or a camera in which the board is never found
            (the message gives the likely cause, see :func:`explain_missing_board`).
    """
    if step < 1:
        raise CalibrationError(f"step must be 1 or more, got {step}", field="step")
    names = tuple(videos)
    paths = {name: Path(videos[name]) for name in names}
    counts = {name: video_frame_count(paths[name]) for name in names}
    if timestamps is not None:
        labels, positions = read_sync_table(timestamps, names, counts)
    else:
        shortest = min(counts.values())
        if len(set(counts.values())) > 1:
            logger.warning("videos have different lengths (%s); using the first %d frames of each",
                           ", ".join(f"{n}: {k}" for n, k in counts.items()), shortest)
        labels = np.arange(shortest)
        positions = np.tile(labels, (len(names), 1))
    if frames is not None:
        keep = (labels >= frames[0]) & (labels < frames[1])
        if not keep.any():
            raise CalibrationError(
                f"no frames in {frames[0]}:{frames[1]}; the frames run {labels.min()}-{labels.max()}", field="frames"
            )
        labels, positions = labels[keep], positions[:, keep]
    labels, positions = labels[::step], positions[:, ::step]
    detector = BoardDetector(board)
    C, F = len(names), labels.size
    corners = np.full((C, F, board.corner_count, 2), np.nan)
    widths, heights = np.zeros(C, int), np.zeros(C, int)
    readers = [_VideoReader(paths[name]) for name in names]
    samples: list[list[np.ndarray]] = [[] for _ in names]
    sample_every = [max(1, int((positions[c] >= 0).sum()) // _DIAGNOSIS_SAMPLES) for c in range(C)]
    decoded = np.zeros(C, int)
    try:
        for f in range(F):
            for c, name in enumerate(names):
                if positions[c, f] < 0 or readers[c].ended:
                    continue
                image = readers[c].read(int(positions[c, f]))
                if image is None:
                    logger.warning("camera %s: video ended at frame %d of %d", name, readers[c].position, counts[name])
                    continue
                heights[c], widths[c] = image.shape[:2]
                corners[c, f] = detector.detect(image).corners
                if decoded[c] % sample_every[c] == 0 and len(samples[c]) < _DIAGNOSIS_SAMPLES:
                    samples[c].append(image)
                decoded[c] += 1
                if on_view is not None:
                    on_view(c, f, image, corners[c, f])
                if on_frame is not None:
                    on_frame()
    finally:
        for reader in readers:
            reader.close()
    for c, name in enumerate(names):
        require_board_found(board, name, corners[c], samples[c], int(decoded[c]), path=paths[name])
        found = int(np.any(np.isfinite(corners[c, ..., 0]), axis=1).sum())
        logger.info("camera %s: board in %d of %d frames", name, found, decoded[c])
    return BoardViews(names, corners, labels, widths, heights)
