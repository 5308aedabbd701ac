"""The files that describe a recorded take: ``take.yaml`` and ``timestamps.csv``.

``take.yaml`` (:class:`TakeInfo`) says which cameras were recorded, at what rate, when (wall clock
ISO 8601 and ``time.monotonic()``), with which software, whether the take was finalised, and its
frame counts. ``timestamps.csv`` has one row ``frame,camera,t_s`` per frameset and camera, ``nan``
where the camera had no frame. :mod:`app.recording` writes them; :mod:`app.take` reads them.
"""

from __future__ import annotations

import csv
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import yaml

from calibration.errors import InputFileError

SCHEMA_VERSION = 1
TAKE_FILE = "take.yaml"
TIMESTAMPS_FILE = "timestamps.csv"
CALIBRATION_FILE = "calibration.yaml"
STATES = ("recording", "complete")
TIMESTAMP_HEADER = "frame,camera,t_s\n"

_INFO_KEYS = {
    "schema_version": int, "state": str, "cameras": list, "fps": (int, float), "start_time": str,
    "start_monotonic_s": (int, float), "time_origin_s": (int, float, type(None)), "segment_s": (int, float),
    "versions": dict, "frames": (int, type(None)), "frames_per_camera": (dict, type(None)),
    "stop_reason": str, "recovered": bool,
}


@dataclass(frozen=True, slots=True)
class TakeInfo:
    """What ``take.yaml`` says about a recorded take.

    Attributes:
        cameras: camera names, in recording order.
        fps: nominal frame rate of the videos.
        start_time: wall clock at the start, ISO 8601 with time zone.
        start_monotonic_s: ``time.monotonic()`` at the start (same clock as live frame timestamps).
        time_origin_s: the frame timestamp that ``t_s`` in ``timestamps.csv`` counts from; None until
            the first frameset was written.
        segment_s: length of the recording segments (the most a killed recording loses).
        versions: software versions (crossview, python, opencv, numpy, platform).
        state: ``"recording"`` until finalised, then ``"complete"``.
        frames: framesets in the take (set at finalise).
        frames_per_camera: frames each camera really delivered (the rest are gaps), set at finalise.
        stop_reason: why recording stopped early (a full disk), or empty.
        recovered: True when the take was finalised by :func:`recover_take` after an interruption.
    """

    cameras: tuple[str, ...]
    fps: float
    start_time: str
    start_monotonic_s: float
    time_origin_s: float | None = None
    segment_s: float = 2.0
    versions: dict = field(default_factory=dict)
    state: str = "recording"
    frames: int | None = None
    frames_per_camera: dict | None = None
    stop_reason: str = ""
    recovered: bool = False

    def __post_init__(self) -> None:
        if not self.cameras or len(set(self.cameras)) != len(self.cameras) or not all(self.cameras):
            raise ValueError(f"cameras must be unique non-empty names, got {self.cameras}")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if not self.segment_s > 0:
            raise ValueError(f"segment_s must be > 0, got {self.segment_s}")
        if self.state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {self.state!r}")

    def to_yaml(self) -> str:
        data = {"schema_version": SCHEMA_VERSION, "state": self.state, "cameras": list(self.cameras),
                "fps": float(self.fps), "start_time": self.start_time,
                "start_monotonic_s": float(self.start_monotonic_s), "time_origin_s": self.time_origin_s,
                "segment_s": float(self.segment_s), "versions": dict(self.versions), "frames": self.frames,
                "frames_per_camera": self.frames_per_camera, "stop_reason": self.stop_reason,
                "recovered": self.recovered}
        return yaml.safe_dump(data, sort_keys=False)


def software_versions() -> dict[str, str]:
    """Versions stored in ``take.yaml``, so a take says what recorded it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        crossview = version("crossview")
    except PackageNotFoundError:
        crossview = "unknown"
    return {"crossview": crossview, "python": platform.python_version(), "opencv": cv2.__version__,
            "numpy": np.__version__, "platform": platform.platform()}


def read_take_info(folder: str | Path) -> TakeInfo | None:
    """``take.yaml`` of ``folder``, or None when there is none (a processed-only take).

    Raises:
        InputFileError: naming the file and key for broken YAML, unknown keys or wrong types.
    """
    path = Path(folder) / TAKE_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputFileError(f"{path}: not a readable take file ({exc})") from None
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: expected a mapping of take fields, got {type(data).__name__}")
    for key, value in data.items():
        if key not in _INFO_KEYS:
            raise InputFileError(f"{path}: unknown key {key!r} (known: {', '.join(_INFO_KEYS)})")
        if not isinstance(value, _INFO_KEYS[key]) or (isinstance(value, bool) and key != "recovered"):
            raise InputFileError(f"{path}: key {key!r} has the wrong type ({type(value).__name__})")
    for key in ("schema_version", "cameras", "fps", "start_time", "start_monotonic_s"):
        if key not in data:
            raise InputFileError(f"{path}: key {key!r} is missing")
    if data["schema_version"] != SCHEMA_VERSION:
        raise InputFileError(f"{path}: schema_version {data['schema_version']} is not {SCHEMA_VERSION}; "
                             "update crossview to read this take")
    data.pop("schema_version")
    data["cameras"] = tuple(str(c) for c in data["cameras"])
    try:
        return TakeInfo(**data)
    except ValueError as exc:
        raise InputFileError(f"{path}: {exc}") from None


def read_timestamps(path: str | Path, cameras: Sequence[str]) -> np.ndarray:
    """``timestamps.csv`` as an array.

    Returns:
        ``(T, C)`` float64 seconds from the take's time origin, cameras in ``cameras`` order; NaN
        where a camera had no frame (a gap).

    Raises:
        InputFileError: naming the file and line for a missing header, an unknown camera, a frame
            number out of order, a missing row, or a camera's times that do not increase.
    """
    path = Path(path)
    index = {name: c for c, name in enumerate(cameras)}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read the timestamps ({exc})") from None
    if not lines or lines[0].strip() != TIMESTAMP_HEADER.strip():
        raise InputFileError(f"{path}: the first line must be {TIMESTAMP_HEADER.strip()!r}")
    rows: dict[int, dict[int, float]] = {}
    for number, row in enumerate(csv.reader(lines[1:]), start=2):
        if not row:
            continue
        try:
            frame, camera, t_s = int(row[0]), row[1], float(row[2])
        except (ValueError, IndexError):
            raise InputFileError(f"{path}: line {number}: expected frame,camera,t_s, got {','.join(row)!r}") from None
        if camera not in index:
            raise InputFileError(f"{path}: line {number}: camera {camera!r} is not one of the take's "
                                 f"cameras ({', '.join(cameras)})")
        rows.setdefault(frame, {})[index[camera]] = t_s
    count = len(rows)
    if sorted(rows) != list(range(count)):
        raise InputFileError(f"{path}: frame numbers must run 0..{count - 1} without holes")
    times = np.full((count, len(cameras)), np.nan)
    for frame, values in rows.items():
        if len(values) != len(cameras):
            missing = [cameras[c] for c in range(len(cameras)) if c not in values]
            raise InputFileError(f"{path}: frame {frame} has no row for camera(s) {', '.join(missing)}")
        for c, t_s in values.items():
            times[frame, c] = t_s
    for c, name in enumerate(cameras):
        present = times[:, c][np.isfinite(times[:, c])]
        if np.any(np.diff(present) <= 0):
            raise InputFileError(f"{path}: the times of camera {name!r} do not increase")
    return times
