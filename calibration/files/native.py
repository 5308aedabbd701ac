"""Crossview's own calibration format: a YAML file written for people to read and edit.

Example (``units: mm``; one camera shown)::

    schema_version: 1
    units: mm
    rotation_convention: R_cam_from_world (x_cam = R x_world + t), OpenCV camera axes
    cameras:
    - name: cam01
      width: 1920
      height: 1080
      model: pinhole
      K:
      - [1400.0, 0.0, 959.5]
      - [0.0, 1400.0, 539.5]
      - [0.0, 0.0, 1.0]
      dist: [-0.05, 0.1, 0.0, 0.0, 0.0]
      R:
      - [1.0, 0.0, 0.0]
      - [0.0, 0.0, -1.0]
      - [0.0, 1.0, 0.0]
      t: [0.0, 1000.0, 3000.0]

Top-level keys: ``schema_version`` (1), ``units`` (mm, cm or m: the unit of ``t``),
``rotation_convention`` (exactly the text above), ``cameras`` (a list), optional ``metadata`` (any
mapping, kept and handed back but not interpreted). Camera keys: ``name``, ``width``, ``height``,
``K``, ``R``, ``t``, optional ``model`` (pinhole, the default, or fisheye) and ``dist`` (OpenCV
order; default none). Any other key is an error, so a typo cannot silently drop a value.
Floats are written with Python's shortest round-trip repr, so a write then a read is exact.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from calibration.camera import FISHEYE, PINHOLE
from calibration.errors import CalibrationError
from calibration.files.fields import MM_PER_UNIT, Fields, build_camera, check_unit, plain_data
from calibration.files.rigfile import NATIVE, UNITS_FROM_FILE, RigFile
from calibration.rig import Rig

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ROTATION_CONVENTION = "R_cam_from_world (x_cam = R x_world + t), OpenCV camera axes"
_TOP_KEYS = ("schema_version", "units", "rotation_convention", "metadata", "cameras")
_CAMERA_KEYS = ("name", "width", "height", "model", "K", "dist", "R", "t")
_HEADER = """\
# Crossview camera calibration, schema 1 (the README's "Calibration files" section describes it).
# World coordinates and t are in `units`; a world point X maps into a camera as x_cam = R X + t,
# with OpenCV camera axes (+X right, +Y down, +Z forward). K is in pixels (centre of the top-left
# pixel = (0, 0)); dist is in OpenCV order (k1, k2, p1, p2[, k3[, k4, k5, k6]]), or (k1..k4) for fisheye.
"""


def is_native(document: Any) -> bool:
    """True when a parsed YAML document claims to be a crossview rig (has schema_version and cameras)."""
    return isinstance(document, Mapping) and "schema_version" in document and "cameras" in document


def parse_native(document: Any, path: str | Path, *, units: str | None = None) -> RigFile:
    """Build a :class:`RigFile` from a parsed crossview YAML document.

    Args:
        document: the ``yaml.safe_load`` result.
        path: the file, for messages.
        units: the caller's idea of the unit; an error when it contradicts the file's ``units``.

    Raises:
        CalibrationError: naming the file, camera and key of the first problem found.
    """
    top = Fields(document, path=path, what="the file")
    top.reject_unknown(_TOP_KEYS)
    version = top.integer("schema_version")
    if version != SCHEMA_VERSION:
        newer = " (written by a newer crossview: upgrade crossview)" if version > SCHEMA_VERSION else ""
        raise top.error("schema_version", f"this crossview reads schema version {SCHEMA_VERSION}, got {version}{newer}")
    file_units = check_unit(top.string("units"), path=path)
    if units is not None and check_unit(units, path=path) != file_units:
        raise CalibrationError(
            f"the file states units: {file_units} but {units} was asked for; drop the units override "
            "or correct the file",
            path=path,
            field="units",
        )
    convention = " ".join(top.string("rotation_convention").split())
    if convention != ROTATION_CONVENTION:
        raise top.error(
            "rotation_convention",
            f"this reader understands only {ROTATION_CONVENTION!r}, got {convention!r}; convert the "
            "rotations (a camera-to-world R becomes R^T, and t becomes -R^T t) and state that convention",
        )
    metadata: Mapping[str, Any] = {}
    if top.has("metadata"):
        metadata = top.raw("metadata")
        if not isinstance(metadata, Mapping):
            raise top.error("metadata", "must be a mapping (key: value lines), or be left out")
    cameras_raw = top.raw("cameras")
    if not isinstance(cameras_raw, list) or not cameras_raw:
        raise top.error("cameras", "must be a non-empty list of cameras (lines starting with '- name: ...')")
    scale = MM_PER_UNIT[file_units]
    cameras = [_parse_camera(entry, index, path, scale) for index, entry in enumerate(cameras_raw)]
    try:
        rig = Rig(tuple(cameras))
    except CalibrationError as exc:
        raise exc.in_file(path) from None
    return RigFile(
        rig=rig,
        path=Path(path),
        format=NATIVE,
        units=file_units,
        units_source=UNITS_FROM_FILE,
        units_note=f"units: {file_units} as stated in the file",
        metadata=dict(metadata),
    )


def _parse_camera(entry: Any, index: int, path: str | Path, mm_per_unit: float):
    label = f"#{index + 1}"
    if isinstance(entry, Mapping) and isinstance(entry.get("name"), str) and entry["name"].strip():
        label = entry["name"]
    fields = Fields(entry, path=path, camera=label, what=f"camera {label} in 'cameras'")
    fields.reject_unknown(_CAMERA_KEYS)
    name = fields.string("name")
    model = fields.string("model") if fields.has("model") else PINHOLE
    if model not in (PINHOLE, FISHEYE):
        raise fields.error("model", f"must be {PINHOLE} or {FISHEYE}, got {model!r}")
    t = fields.array("t", (3,))
    with np.errstate(over="ignore"):  # a translation too large for mm becomes inf and is refused
        t_mm = t * mm_per_unit
    return build_camera(
        path=path,
        name=name,
        width=fields.integer("width"),
        height=fields.integer("height"),
        K=fields.array("K", (3, 3)),
        dist=fields.array("dist", (None,), default=[]),
        R=fields.array("R", (3, 3)),
        t_mm=t_mm,
        model=model,
        field_names={},
    )


def dump_native(rig: Rig, *, units: str = "mm", metadata: Mapping[str, Any] | None = None) -> str:
    """The text of a crossview YAML file for ``rig``, translations written in ``units``."""
    units = check_unit(units) or "mm"
    per_unit = MM_PER_UNIT[units]
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "units": units,
        "rotation_convention": ROTATION_CONVENTION,
    }
    if metadata:
        document["metadata"] = plain_data(dict(metadata))
    document["cameras"] = [
        {
            "name": cam.name,
            "width": int(cam.width),
            "height": int(cam.height),
            "model": cam.model,
            "K": _rows(cam.K),
            "dist": [float(v) for v in cam.dist],
            "R": _rows(cam.R),
            "t": [float(v) for v in (cam.t if per_unit == 1.0 else cam.t / per_unit)],
        }
        for cam in rig
    ]
    try:
        body = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, allow_unicode=True, width=120)
    except yaml.YAMLError as exc:
        raise CalibrationError(f"metadata cannot be written as YAML: {exc}", field="metadata") from None
    return _HEADER + body


def _rows(matrix: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in row] for row in matrix]

