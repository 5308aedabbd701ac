"""OpenSim / Motion Analysis TRC export (tab-separated marker trajectories).

Layout (tabs between fields; five header lines, a blank line, then one row per frame)::

    PathFileType  4  (X/Y/Z)  <file name>
    DataRate  CameraRate  NumFrames  NumMarkers  Units  OrigDataRate  OrigDataStartFrame  OrigNumFrames
    30.00  30.00  240  17  mm  30.00  1  240
    Frame#  Time  pelvis  <tab><tab>  r_hip  ...
            X1  Y1  Z1  X2  Y2  Z2 ...
    <blank>
    1  0.000000  x  y  z  ...

Frames are numbered from 1; a missing marker leaves its three cells empty. The markers are the
17 H36M joints in millimetres. OpenSim's world is Y up: pass ``y_up=True`` to rotate the Z-up
world of a calibration with a floor board ((x, y, z) -> (x, z, -y)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.export.take_poses import TakePoses
from calibration.errors import InputFileError
from calibration.files.atomic import write_bytes_atomic

HEADER_FIELDS = (
    "DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate", "OrigDataStartFrame", "OrigNumFrames",
)  # fmt: skip


def trc_text(poses: TakePoses, file_name: str) -> str:
    """The TRC file's text (see the module docstring); ``file_name`` goes on the first line."""
    count, markers = poses.num_frames, len(poses.joint_names)
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{file_name}",
        "\t".join(HEADER_FIELDS),
        f"{poses.fps:.2f}\t{poses.fps:.2f}\t{count}\t{markers}\tmm\t{poses.fps:.2f}\t1\t{count}",
        "Frame#\tTime\t" + "\t\t\t".join(poses.joint_names) + "\t\t",
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, markers + 1)),
        "",
    ]
    flat = poses.points.reshape(count, -1)  # (T, 3 * markers)
    for t, row in enumerate(flat):
        cells = [str(t + 1), f"{poses.times_s[t]:.6f}"] + ["" if np.isnan(v) else f"{v:.3f}" for v in row]
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def write_trc(poses: TakePoses, path: str | Path, *, y_up: bool = False) -> Path:
    """Write the poses as TRC (atomically), rotated to Y up when ``y_up``; returns the path."""
    path = Path(path)
    if y_up:
        poses = poses.y_up()
    return write_bytes_atomic(path, trc_text(poses, path.name).encode())


def read_trc(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """Read a TRC file with 3 columns per marker.

    Returns:
        points (T, M, 3) in the file's units (NaN for empty cells), times (T,) s, the M marker
        names, and the header fields (``DataRate`` ... ``OrigNumFrames``, as strings).
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    if len(lines) < 5 or not lines[0].startswith("PathFileType"):
        raise InputFileError(f"{path}: not a TRC file (no PathFileType line)")
    header = dict(zip(lines[1].split("\t"), lines[2].split("\t")))
    names = [name for name in lines[3].split("\t")[2:] if name]
    rows = [line.split("\t") for line in lines[5:] if line.strip()]
    width = 2 + 3 * len(names)
    values = np.full((len(rows), width), np.nan)
    for t, row in enumerate(rows):
        for k, cell in enumerate(row[:width]):
            if cell.strip():
                values[t, k] = float(cell)
    return values[:, 2:].reshape(len(rows), len(names), 3), values[:, 1], names, header
