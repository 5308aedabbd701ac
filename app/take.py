"""A processed take on disk, opened for viewing: calibration, videos, 2D keypoints, 3D poses.

A take folder holds (every file but the calibration is optional, yet at least one of videos,
``poses2d.npz`` and ``poses3d.npz`` must be there)::

    calibration.yaml | calibration.yml | calibration.toml | Calib.qca.txt
    videos/<camera>.mp4 ...      one file per camera, frame t of each = the same instant
    poses2d.npz                  2D keypoints (T, C, J, 2) px, as ``crossview process`` writes them
    poses3d.npz                  points (T, 17, 3) mm, reprojection_error (T, 17) px, views_used (T, 17)
    ground_truth.npz             points (T, 17, 3) mm (synthetic takes)
    take.yaml, timestamps.csv    a recorded take (see :mod:`app.recording`): cameras, fps, start
                                 time, versions; frame,camera,t_s per frameset and camera

A recorded take that was not finalised (the recording was killed, or the disk filled up) is
recovered when opened: its committed segments are finalised first (:func:`app.recording.recover_take`).

:meth:`Take.open` checks that the files agree (camera names, frame counts) and says what to fix
when they do not. No Qt here: the desktop app (``app/gui``) draws what this module reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.capture.video_files import VIDEO_SUFFIXES, VideoInfo, probe_video
from app.process import CALIBRATION_NAMES, find_calibration
from app.recording import needs_recovery, recover_take
from app.take_format import TIMESTAMPS_FILE, TakeInfo, read_take_info, read_timestamps
from calibration import load_rig
from calibration.errors import CrossviewError, InputFileError
from calibration.rig import Rig
from models.keypoint_io import Poses2D, load_poses2d

logger = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
#: A jump this many frames ahead or fewer decodes through (``grab``) instead of seeking: seeking
#: restarts at the previous key frame, which costs more than a few decodes.
MAX_GRAB_AHEAD = 60


class VideoFrames:
    """Random access to the frames of one video file.

    Sequential reads (``t`` then ``t + 1``) decode the next frame; a short jump ahead (playback
    dropping frames) decodes through the frames in between; any other jump seeks with
    ``CAP_PROP_POS_FRAMES``. The last frame read is cached, so asking for the same frame twice
    (a repaint, a paused view) decodes nothing. Not thread-safe: use from one thread.
    """

    def __init__(self, path: str | Path) -> None:
        self.info: VideoInfo = probe_video(path)
        self._capture: cv2.VideoCapture | None = None
        self._next_index = 0  # the frame the capture decodes on its next read()
        self._cached_index = -1
        self._cached: np.ndarray | None = None
        self.seeks = 0  # how many times the decoder had to seek (sequential reads do not)

    @property
    def path(self) -> Path:
        return self.info.path

    def __len__(self) -> int:
        return self.info.frame_count

    def read(self, index: int) -> np.ndarray | None:
        """Frame ``index`` as an ``(H, W, 3)`` uint8 BGR image, or None past the decodable end.

        Raises:
            InputFileError: ``index`` is negative.
        """
        index = int(index)
        if index < 0:
            raise InputFileError(f"{self.path}: frame {index} does not exist (frames count from 0)")
        if index == self._cached_index:
            return self._cached
        if self._capture is None:
            self._capture = cv2.VideoCapture(str(self.path))
            self._next_index = 0
            if not self._capture.isOpened():
                raise InputFileError(f"{self.path}: cannot open the video (unsupported codec or damaged file)")
        if 0 <= self._next_index < index <= self._next_index + MAX_GRAB_AHEAD:
            while self._next_index < index and self._capture.grab():
                self._next_index += 1
        if index != self._next_index:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            self.seeks += 1
        ok, frame = self._capture.read()
        if not ok or frame is None:
            self._next_index = -1  # position unknown: seek next time
            return None
        self._next_index = index + 1
        self._cached_index, self._cached = index, frame
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        self._cached_index, self._cached = -1, None


@dataclass(frozen=True, slots=True, eq=False)
class Poses3D:
    """3D poses of a take, as ``poses3d.npz`` holds them.

    Attributes:
        points: (T, 17, 3) float64 mm, H36M-17, world frame of the calibration; NaN where unknown.
        reprojection_error_px: (T, 17) float64 RMS reprojection error over the views used; NaN where unknown.
        views_used: (T, 17) int64 number of views each joint came from.
        timestamps: (T,) seconds, or None.
    """

    points: np.ndarray
    reprojection_error_px: np.ndarray
    views_used: np.ndarray
    timestamps: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return self.points.shape[0]


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: not a readable .npz file ({exc})") from None


def load_points_npz(path: str | Path) -> Poses3D:
    """Read ``poses3d.npz`` (or ``ground_truth.npz``, which has only ``points``).

    Raises:
        InputFileError: naming the file and array when ``points`` is missing or has another shape
            than ``(T, 17, 3)``, or the per-joint arrays do not match it.
    """
    path = Path(path)
    data = _read_npz(path)
    if "points" not in data:
        raise InputFileError(f"{path}: no 'points' array (T, 17, 3) mm; write it with 'crossview process'")
    points = np.asarray(data["points"], dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (17, 3):
        raise InputFileError(f"{path}: 'points' must have shape (T, 17, 3) (H36M-17, mm), got {points.shape}")
    T = points.shape[0]
    error = np.asarray(data.get("reprojection_error", np.full((T, 17), np.nan)), dtype=np.float64)
    views = np.asarray(data.get("views_used", np.zeros((T, 17))), dtype=np.int64)
    for name, array in (("reprojection_error", error), ("views_used", views)):
        if array.shape != (T, 17):
            raise InputFileError(f"{path}: '{name}' must have shape (T, 17) = ({T}, 17), got {array.shape}")
    timestamps = data.get("timestamps")
    if timestamps is not None:
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if timestamps.shape != (T,):
            raise InputFileError(f"{path}: 'timestamps' must have shape ({T},), got {timestamps.shape}")
    return Poses3D(points, error, views, timestamps)


def find_take_videos(folder: Path) -> dict[str, Path]:
    """Video files in ``folder/videos`` by camera name (file stem); empty when there is none."""
    videos_dir = folder / "videos"
    if not videos_dir.is_dir():
        return {}
    return {p.stem: p for p in sorted(videos_dir.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()}


def _check_names(names, rig: Rig, what: str, calibration_path: Path) -> None:
    unknown = [n for n in names if n not in rig.names]
    if unknown:
        raise CrossviewError(
            f"{what} name camera(s) {', '.join(unknown)} that the calibration {calibration_path.name} does not have "
            f"(it has {', '.join(rig.names)}); use the calibration the take was recorded with, or rename the "
            "files after the calibration's cameras"
        )


@dataclass(frozen=True, slots=True, eq=False)
class Take:
    """An opened take. Build it with :meth:`open`.

    Attributes:
        folder: the take folder.
        rig: the cameras shown, in view order, fitted to their videos' frame size (see
            :meth:`calibration.camera.Camera.fitted_to_image`) so overlays land on the pixels.
        calibration_path: the calibration file read.
        videos: camera name -> :class:`VideoFrames` (only cameras that have a video).
        poses2d: 2D keypoints ``(T, C, J, 2)`` px in ``rig`` order, or None.
        poses3d: 3D poses, or None.
        ground_truth: ``(T, 17, 3)`` mm, or None.
        num_frames: frames the take plays (the poses' length, or the shortest video's).
        fps: frames per second (``take.yaml``, else the poses' timestamps, else the videos, else 30).
        info: what ``take.yaml`` says (recorded takes), or None.
        timestamps: ``(T, C)`` seconds from ``timestamps.csv`` in ``rig`` order, NaN where a camera
            had no frame (recorded takes), or None.
    """

    folder: Path
    rig: Rig
    calibration_path: Path
    videos: dict[str, VideoFrames] = field(default_factory=dict)
    poses2d: Poses2D | None = None
    poses3d: Poses3D | None = None
    ground_truth: np.ndarray | None = None
    num_frames: int = 0
    fps: float = DEFAULT_FPS
    info: TakeInfo | None = None
    timestamps: np.ndarray | None = None

    @classmethod
    def open(cls, folder: str | Path) -> "Take":
        """Read a take folder (see the module docstring for its files).

        Raises:
            InputFileError: the folder or its calibration is missing, nothing to show is in it, or
                a file is unreadable or has the wrong shape.
            CrossviewError: the calibration names other cameras than the videos or keypoints.
            CaptureError: an interrupted recording cannot be finalised (a full disk).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise InputFileError(f"{folder}: not a take folder (no such folder)")
        info = recover_take(folder) if needs_recovery(folder) else read_take_info(folder)
        calibration_path = find_calibration(folder)
        if calibration_path is None:
            recorded = " (it was recorded without one)" if info is not None else ""
            raise InputFileError(
                f"{folder}: no calibration found{recorded} (looked for {', '.join(CALIBRATION_NAMES)}); "
                "copy the rig's calibration into the take folder"
            )
        rig = load_rig(calibration_path)
        video_paths = find_take_videos(folder)
        _check_names(video_paths, rig, f"the videos in {folder / 'videos'}", calibration_path)
        if info is not None:
            _check_recorded(folder, info, video_paths)
            _check_names(info.cameras, rig, f"the cameras of {folder / 'take.yaml'}", calibration_path)
        poses2d = None
        if (folder / "poses2d.npz").is_file():
            poses2d = load_poses2d(folder / "poses2d.npz")
            _check_names(poses2d.camera_names, rig, f"the keypoints in {folder / 'poses2d.npz'}", calibration_path)
        poses3d = load_points_npz(folder / "poses3d.npz") if (folder / "poses3d.npz").is_file() else None
        truth = None
        if (folder / "ground_truth.npz").is_file():
            truth = load_points_npz(folder / "ground_truth.npz").points
        if not video_paths and poses2d is None and poses3d is None:
            raise InputFileError(
                f"{folder}: nothing to show: no videos/ folder, poses2d.npz or poses3d.npz; "
                "run 'crossview process' on the take first"
            )

        # The views: those of the keypoints (which name the cameras that were processed), else
        # the cameras with a video, else every camera of the calibration; in that order.
        if poses2d is not None:
            names = list(poses2d.camera_names)
            no_keypoints = [n for n in video_paths if n not in names]
            if no_keypoints:
                logger.warning("videos without keypoints are not shown: %s", ", ".join(no_keypoints))
        elif video_paths:
            names = [n for n in rig.names if n in video_paths]
        else:
            names = list(rig.names)
        videos = {name: VideoFrames(video_paths[name]) for name in names if name in video_paths}
        rig = Rig(tuple(
            rig[n].fitted_to_image(videos[n].info.width, videos[n].info.height) if n in videos else rig[n]
            for n in names
        ))

        lengths = {}
        if poses3d is not None:
            lengths["poses3d.npz"] = poses3d.num_frames
        if poses2d is not None:
            lengths["poses2d.npz"] = poses2d.num_frames
        if truth is not None:
            lengths["ground_truth.npz"] = truth.shape[0]
        if lengths and len(set(lengths.values())) > 1:
            counts = ", ".join(f"{name}: {count}" for name, count in lengths.items())
            raise InputFileError(
                f"{folder}: the files disagree on the number of frames ({counts}); re-run 'crossview process' on the take"
            )
        if lengths:
            num_frames = next(iter(lengths.values()))
        else:
            num_frames = min(len(v) for v in videos.values())
        timestamps = None
        if info is not None and (folder / TIMESTAMPS_FILE).is_file():
            table = read_timestamps(folder / TIMESTAMPS_FILE, info.cameras)  # (T, C_recorded) s
            for name, video in videos.items():
                if len(video) != table.shape[0]:
                    raise InputFileError(
                        f"{video.path}: {len(video)} frames, but {folder / TIMESTAMPS_FILE} has {table.shape[0]}; "
                        "the take is damaged (re-record it, or trim the longer file)"
                    )
            timestamps = np.stack([table[:, info.cameras.index(n)] if n in info.cameras
                                   else np.full(table.shape[0], np.nan) for n in names], axis=1)  # (T, C) s
        for name, video in videos.items():
            if len(video) < num_frames:
                logger.warning("video %s has %d frames for %d poses; later frames show no image",
                               video.path.name, len(video), num_frames)
        return cls(
            folder=folder,
            rig=rig,
            calibration_path=calibration_path,
            videos=videos,
            poses2d=poses2d,
            poses3d=poses3d,
            ground_truth=truth,
            num_frames=int(num_frames),
            fps=info.fps if info is not None else _frame_rate(poses3d, poses2d, videos),
            info=info,
            timestamps=timestamps,
        )

    @property
    def camera_names(self) -> tuple[str, ...]:
        return self.rig.names

    def frame(self, camera: str, index: int) -> np.ndarray | None:
        """Camera ``camera``'s image at frame ``index``: ``(H, W, 3)`` uint8 BGR, or None when
        the camera has no video (or the video ends before ``index``).

        Raises:
            CrossviewError: an unknown camera or a frame outside ``[0, num_frames)``.
        """
        self._check_frame(index)
        if camera not in self.rig.names:
            raise CrossviewError(f"take {self.folder}: no camera {camera!r} (cameras: {', '.join(self.rig.names)})")
        video = self.videos.get(camera)
        return None if video is None else video.read(index)

    def keypoints(self, index: int) -> np.ndarray | None:
        """The 2D keypoints at frame ``index``: ``(C, J, 2)`` px in ``rig`` order (NaN where
        missing), or None without ``poses2d.npz``."""
        self._check_frame(index)
        return None if self.poses2d is None else self.poses2d.keypoints[index]

    def time_s(self, index: int) -> float:
        """Time of frame ``index`` in seconds from the start of the take."""
        for source in (self.poses3d, self.poses2d):
            if source is not None and source.timestamps is not None:
                return float(source.timestamps[index] - source.timestamps[0])
        if self.timestamps is not None and index < self.timestamps.shape[0]:
            row = self.timestamps[index]  # (C,) s, NaN for cameras without a frame
            if np.isfinite(row).any():
                return float(np.nanmedian(row))
        return index / self.fps

    def _check_frame(self, index: int) -> None:
        if not 0 <= index < self.num_frames:
            raise CrossviewError(f"take {self.folder}: frame {index} is outside 0..{self.num_frames - 1}")

    def close(self) -> None:
        """Release the video decoders."""
        for video in self.videos.values():
            video.close()


def _check_recorded(folder: Path, info: TakeInfo, video_paths: dict[str, Path]) -> None:
    """A recorded take's videos must be those of the cameras ``take.yaml`` lists."""
    strangers = [n for n in video_paths if n not in info.cameras]
    if strangers:
        raise CrossviewError(
            f"{folder / 'videos'}: video(s) of camera(s) {', '.join(strangers)} that {folder / 'take.yaml'} does not "
            f"list (it records {', '.join(info.cameras)}); remove them or fix take.yaml"
        )
    delivered = info.frames_per_camera or {}
    lost = [n for n in info.cameras if n not in video_paths and delivered.get(n, 1) > 0]
    if lost:
        raise InputFileError(
            f"{folder / 'videos'}: no video of camera(s) {', '.join(lost)} listed in {folder / 'take.yaml'}; "
            "the take is incomplete (was a file deleted?)"
        )


def _frame_rate(poses3d: Poses3D | None, poses2d: Poses2D | None, videos: dict[str, VideoFrames]) -> float:
    for source in (poses3d, poses2d):
        if source is not None and source.timestamps is not None and len(source.timestamps) > 1:
            step = float(np.median(np.diff(source.timestamps)))
            if step > 0:
                return 1.0 / step
    rates = [v.info.fps for v in videos.values() if v.info.fps > 0]
    return float(np.median(rates)) if rates else DEFAULT_FPS
