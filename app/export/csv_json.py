"""CSV and JSON export of a take's 3D joints.

CSV: the layout of ``poses3d.csv``: a header ``frame, time_s, <joint>_x, <joint>_y, <joint>_z``
(H36M-17 order), one row per frame, millimetres with 3 decimals, empty cells where unknown.

JSON (``schema: crossview.poses3d``, ``schema_version: 1``)::

    {
      "schema": "crossview.poses3d", "schema_version": 1,
      "units": "mm", "up_axis": "z" | "y", "fps": 30.0, "num_frames": T,
      "joint_names": ["pelvis", ...],                 # 17 names, H36M-17 order
      "bones": [["pelvis", "r_hip"], ...],            # parent, child
      "frames": [{"frame": 0, "time_s": 0.0,
                  "points": [[x, y, z] | null, ...]}]  # 17 entries, null where unknown
    }
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from app.export.take_poses import TakePoses
from calibration.errors import InputFileError
from calibration.files.atomic import write_bytes_atomic
from models.skeleton import H36M17

JSON_SCHEMA = "crossview.poses3d"
JSON_SCHEMA_VERSION = 1


def csv_text(poses: TakePoses) -> str:
    """The CSV file's text (see the module docstring)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["frame", "time_s"] + [f"{j}_{a}" for j in poses.joint_names for a in ("x", "y", "z")])
    flat = poses.points.reshape(poses.num_frames, -1)  # (T, 51)
    for t, row in enumerate(flat):
        cells = [str(t), f"{poses.times_s[t]:.6f}"] + ["" if np.isnan(v) else f"{v:.3f}" for v in row]
        writer.writerow(cells)
    return text.getvalue()


def write_csv(poses: TakePoses, path: str | Path) -> Path:
    """Write the poses as CSV (atomically); returns the path."""
    return write_bytes_atomic(path, csv_text(poses).encode())


def read_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a CSV written by :func:`write_csv` (or ``poses3d.csv``).

    Returns:
        points (T, 17, 3) mm with NaN for empty cells, and times (T,) s (NaN without a time column).
    """
    path = Path(path)
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0][:1] != ["frame"]:
        raise InputFileError(f"{path}: not a poses CSV (the first column must be 'frame')")
    header = rows[0]
    first = 2 if header[1:2] == ["time_s"] else 1
    if len(header) - first != 51:
        raise InputFileError(f"{path}: expected 51 coordinate columns (17 joints x 3), got {len(header) - first}")
    values = np.array([[float(c) if c else np.nan for c in row] for row in rows[1:]], dtype=np.float64)
    values = values.reshape(len(rows) - 1, len(header))
    times = values[:, 1] if first == 2 else np.full(len(values), np.nan)
    return values[:, first:].reshape(-1, 17, 3), times


def json_document(poses: TakePoses) -> dict:
    """The JSON document as a dict (see the module docstring)."""
    frames = []
    for t in range(poses.num_frames):
        points = [None if np.isnan(p).any() else [round(float(v), 3) for v in p] for p in poses.points[t]]
        frames.append({"frame": t, "time_s": round(float(poses.times_s[t]), 6), "points": points})
    return {
        "schema": JSON_SCHEMA,
        "schema_version": JSON_SCHEMA_VERSION,
        "units": "mm",
        "up_axis": poses.up_axis,
        "fps": poses.fps,
        "num_frames": poses.num_frames,
        "joint_names": list(poses.joint_names),
        "bones": [[H36M17.joints[a], H36M17.joints[b]] for a, b in H36M17.bones],
        "frames": frames,
    }


def write_json(poses: TakePoses, path: str | Path) -> Path:
    """Write the poses as JSON (atomically); returns the path."""
    return write_bytes_atomic(path, json.dumps(json_document(poses), separators=(",", ":")).encode())


def read_json(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read a JSON written by :func:`write_json`.

    Returns:
        points (T, 17, 3) mm (NaN for null), times (T,) s, and the document's other fields.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != JSON_SCHEMA:
        raise InputFileError(f"{path}: not a {JSON_SCHEMA} document")
    frames = document["frames"]
    points = np.full((len(frames), 17, 3), np.nan)
    for t, frame in enumerate(frames):
        for j, point in enumerate(frame["points"]):
            if point is not None:
                points[t, j] = point
    times = np.array([frame["time_s"] for frame in frames], dtype=np.float64)
    meta = {key: value for key, value in document.items() if key != "frames"}
    return points, times, meta
