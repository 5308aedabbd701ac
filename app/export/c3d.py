"""C3D export through the ``c3d`` package (pure Python, EmbodiedCognition's py-c3d).

Each frame stores the 17 H36M joints as points in millimetres (floating point, POINT:SCALE < 0),
with a residual of 0 for a known point and -1 for a missing one (C3D's convention for an invalid
point; its coordinates are written as 0). POINT:LABELS are the joint names, POINT:RATE the frame
rate, POINT:UNITS "mm". No analog channels. Optionally rotated to Y up like the TRC export.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from app.export.take_poses import TakePoses
from calibration.errors import CrossviewError, InputFileError
from calibration.files.atomic import write_bytes_atomic


def _c3d_module():
    try:
        import c3d
    except ImportError:
        raise CrossviewError("C3D export needs the 'c3d' package: pip install c3d") from None
    return c3d


def c3d_bytes(poses: TakePoses) -> bytes:
    """The C3D file's bytes (see the module docstring)."""
    c3d = _c3d_module()
    writer = c3d.Writer(point_rate=poses.fps, analog_rate=0.0, point_scale=-1.0, point_units="mm  ")
    missing = np.isnan(poses.points).any(axis=-1)  # (T, 17)
    frames = []
    empty_analog = np.zeros((0, 0), dtype=np.float32)
    for t in range(poses.num_frames):
        block = np.zeros((17, 5), dtype=np.float32)  # x, y, z, residual, camera mask
        block[:, :3] = np.where(missing[t, :, None], 0.0, poses.points[t])
        block[:, 3] = np.where(missing[t], -1.0, 0.0)
        frames.append((block, empty_analog))
    writer.add_frames(frames)
    writer.set_point_labels(list(poses.joint_names))
    handle = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No analog data")  # none is intended
        writer.write(handle)
    return handle.getvalue()


def write_c3d(poses: TakePoses, path: str | Path, *, y_up: bool = False) -> Path:
    """Write the poses as C3D (atomically), rotated to Y up when ``y_up``; returns the path."""
    if y_up:
        poses = poses.y_up()
    return write_bytes_atomic(path, c3d_bytes(poses))


def read_c3d(path: str | Path) -> tuple[np.ndarray, float, list[str]]:
    """Read the points of a C3D file with the ``c3d`` package.

    Returns:
        points (T, M, 3) in the file's units, NaN where the residual is negative; the point rate
        (Hz); the M point labels.
    """
    c3d = _c3d_module()
    path = Path(path)
    try:
        with path.open("rb") as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = c3d.Reader(handle)
            labels = [label.strip() for label in reader.point_labels]
            blocks = [points for _, points, _ in reader.read_frames(check_nan=False)]
            rate = float(reader.point_rate)
    except (OSError, ValueError, AssertionError, KeyError) as exc:
        raise InputFileError(f"{path}: not a readable C3D file ({exc})") from None
    data = np.stack(blocks).astype(np.float64)  # (T, M, 5)
    points = data[..., :3].copy()
    points[data[..., 3] < 0] = np.nan
    return points, rate, labels
