"""The 3D poses of a take, as the exporters read them.

A take folder holds ``poses3d.npz`` (written by :func:`models.keypoint_io.save_poses3d`):
``points (T, 17, 3)`` float mm in H36M-17 order, in the calibration's world frame (Z up when the
calibration has a floor board), NaN where unknown; optional ``timestamps (T,)`` in seconds.

The frame rate is ``fps`` when given, otherwise 1 / the median step of the timestamps.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.errors import CrossviewError, InputFileError, check_shape
from models.skeleton import H36M17

# Z-up world -> Y-up world: a rotation of -90 degrees about X, (x, y, z) -> (x, z, -y).
Y_UP_FROM_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True, slots=True)
class TakePoses:
    """A take's 3D joints, ready to export.

    Attributes:
        points: (T, 17, 3) float64 mm, H36M-17 order, NaN where unknown.
        times_s: (T,) seconds: the take's timestamps, or frame / fps without them.
        fps: frames per second (> 0).
        joint_names: the 17 joint names.
        up_axis: "z" (the calibration's world frame) or "y" (after :meth:`y_up`).
        source: the file the poses were read from (None for poses built in memory).
    """

    points: np.ndarray
    times_s: np.ndarray
    fps: float
    joint_names: tuple[str, ...] = H36M17.joints
    up_axis: str = "z"
    source: Path | None = None

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float64)
        check_shape("points", points, "(T, 17, 3)", points.ndim == 3 and points.shape[1:] == (17, 3))
        times = np.asarray(self.times_s, dtype=np.float64)
        check_shape("times_s", times, f"({len(points)},)", times.shape == (len(points),))
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise CrossviewError(f"frame rate must be a positive number, got {self.fps!r}")
        if len(self.joint_names) != 17:
            raise CrossviewError(f"expected 17 joint names, got {len(self.joint_names)}")
        if self.up_axis not in ("y", "z"):
            raise CrossviewError(f"up_axis must be 'y' or 'z', got {self.up_axis!r}")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "joint_names", tuple(str(name) for name in self.joint_names))

    @classmethod
    def from_points(cls, points: np.ndarray, fps: float, timestamps: np.ndarray | None = None) -> "TakePoses":
        """Poses from arrays: ``points (T, 17, 3)`` mm (Z up), optional ``timestamps (T,)`` s."""
        points = np.asarray(points, dtype=np.float64)
        times = np.arange(len(points)) / fps if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        return cls(points=points, times_s=times, fps=fps)

    @property
    def num_frames(self) -> int:
        return len(self.points)

    def y_up(self) -> "TakePoses":
        """The same poses rotated from Z up to Y up ((x, y, z) -> (x, z, -y)); unchanged if already Y up."""
        if self.up_axis == "y":
            return self
        return TakePoses(self.points @ Y_UP_FROM_Z_UP.T, self.times_s, self.fps, self.joint_names, "y", self.source)


def frame_rate_from_timestamps(timestamps: np.ndarray) -> float | None:
    """1 / the median step of ``timestamps (T,)`` s; None when there are fewer than two usable steps."""
    steps = np.diff(np.asarray(timestamps, dtype=np.float64))
    steps = steps[np.isfinite(steps) & (steps > 0)]
    if len(steps) == 0:
        return None
    return float(1.0 / np.median(steps))


def load_take_poses(take_folder: str | Path, fps: float | None = None) -> TakePoses:
    """Read ``poses3d.npz`` from a take folder (or the npz file itself).

    Args:
        take_folder: the take's folder, or the path of a ``poses3d.npz``.
        fps: frames per second; overrides the rate from the timestamps, and is needed when the file
            has none (or fewer than two).

    Raises:
        CrossviewError: no poses3d.npz there (process the take first), or no frame rate.
        InputFileError: the file is unreadable or its arrays have the wrong shape.
    """
    take_folder = Path(take_folder)
    path = take_folder if take_folder.suffix == ".npz" else take_folder / "poses3d.npz"
    if not path.is_file():
        raise CrossviewError(
            f"{path}: no 3D poses in this take; run `crossview process {take_folder}` first to triangulate them"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputFileError(f"{path}: not a readable .npz file ({exc})") from None
    if "points" not in arrays:
        raise InputFileError(f"{path}: no 'points' array; a poses3d.npz holds points (T, 17, 3) in mm")
    points = np.asarray(arrays["points"], dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (17, 3):
        raise InputFileError(f"{path}: 'points' must have shape (T, 17, 3) (H36M-17, mm), got {points.shape}")
    timestamps = arrays.get("timestamps")
    if timestamps is not None:
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if timestamps.shape != (len(points),):
            raise InputFileError(f"{path}: 'timestamps' must have shape ({len(points)},), got {timestamps.shape}")
    if fps is None:
        fps = frame_rate_from_timestamps(timestamps) if timestamps is not None else None
        if fps is None:
            raise CrossviewError(f"{path}: no timestamps to take the frame rate from; give it with --fps")
    names = tuple(str(n) for n in arrays["joint_names"]) if "joint_names" in arrays else H36M17.joints
    if names != H36M17.joints:
        raise InputFileError(f"{path}: joints are not H36M-17 ({', '.join(names)})")
    times = timestamps if timestamps is not None else np.arange(len(points)) / fps
    return TakePoses(points=points, times_s=times, fps=fps, source=path)
