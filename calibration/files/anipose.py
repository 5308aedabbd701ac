"""anipose / aniposelib TOML calibrations (also written by FreeMoCap and Pose2Sim).

One table per camera plus an optional ``[metadata]`` table::

    [cam_0]
    name = "cam01"
    size = [1920, 1080]                  # width, height in pixels
    matrix = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    distortions = [k1, k2, p1, p2, k3]   # OpenCV order; (k1, k2, k3, k4) when fisheye = true
    rotation = [rx, ry, rz]              # Rodrigues vector of R_cam_from_world
    translation = [tx, ty, tz]           # t_cam_from_world, in the calibration board's unit
    fisheye = false                      # optional

    [metadata]
    units = "mm"                         # written by crossview; others leave it out

The format has no unit field. Files in the wild are in millimetres (FreeMoCap, anipose with a
board measured in mm) or metres (Pose2Sim). When ``[metadata] units`` is absent and the caller
gives no ``units``, the unit is inferred from the camera spacing
(:func:`calibration.files.rigfile.infer_units`) and the assumption is logged and reported in
:attr:`RigFile.units_note`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np
import tomli_w
from scipy.spatial.transform import Rotation

from calibration.camera import FISHEYE, PINHOLE
from calibration.errors import CalibrationError
from calibration.files.documents import decode_text, parse_toml, read_bytes
from calibration.files.fields import MM_PER_UNIT, UNIT_WORDS, Fields, build_camera, check_unit, plain_data
from calibration.files.rigfile import (
    ANIPOSE,
    UNITS_FROM_CALLER,
    UNITS_FROM_FILE,
    UNITS_INFERRED,
    RigFile,
    infer_units,
)
from calibration.rig import Rig

logger = logging.getLogger(__name__)

CAMERA_KEYS = ("name", "size", "matrix", "distortions", "rotation", "translation", "fisheye")
_FIELD_NAMES = {"K": "matrix", "dist": "distortions", "R": "rotation", "t": "translation", "width": "size",
                "height": "size", "model": "fisheye"}


def is_anipose(document: Any) -> bool:
    """True for a parsed TOML document with at least one table that has anipose camera keys."""
    if not isinstance(document, Mapping):
        return False
    return any(
        isinstance(table, Mapping) and key != "metadata" and any(k in table for k in CAMERA_KEYS[1:])
        for key, table in document.items()
    )


def read_anipose(path: str | Path, *, units: str | None = None) -> RigFile:
    """Read an anipose TOML file.

    Args:
        path: the ``.toml`` file.
        units: ``"mm"``, ``"cm"`` or ``"m"`` to override the unit; None reads ``[metadata] units`` or
            infers it from the camera spacing.

    Returns:
        A :class:`RigFile`; ``units``, ``units_source`` and ``units_note`` say which unit was used and why.
    """
    document = parse_toml(decode_text(read_bytes(path), path), path)
    return parse_anipose(document, path, units=units)


def parse_anipose(document: Any, path: str | Path, *, units: str | None = None) -> RigFile:
    """Build a :class:`RigFile` from a parsed anipose TOML document (see :func:`read_anipose`)."""
    units = check_unit(units, path=path)
    top = Fields(document, path=path, what="the file")
    metadata: Mapping[str, Any] = {}
    if top.has("metadata"):
        metadata = top.raw("metadata")
        if not isinstance(metadata, Mapping):
            raise top.error("metadata", "must be a table ([metadata])")
    raw_cameras = []  # (name, width, height, K, dist, R, t in file units, model) per camera
    for key, table in document.items():
        if key == "metadata":
            continue
        if not isinstance(table, Mapping):
            raise top.error(key, "expected a camera table such as [cam_0] with name, size, matrix, ...")
        raw_cameras.append(_parse_camera(key, table, path))
    if not raw_cameras:
        raise CalibrationError("no camera tables ([cam_0], [cam_1], ...) in the file", path=path)

    cameras = [  # translations still in the file's unit: validate first, then decide the unit
        build_camera(path=path, name=name, width=w, height=h, K=K, dist=dist, R=R, t_mm=t, model=model,
                     field_names=_FIELD_NAMES)
        for (name, w, h, K, dist, R, t, model) in raw_cameras
    ]
    try:
        rig = Rig(tuple(cameras))
    except CalibrationError as exc:
        raise exc.in_file(path) from None
    with np.errstate(over="ignore", invalid="ignore"):  # absurd translations are refused below, not warned about
        used, source, note = _decide_units(metadata, units, rig.centers, path)
        try:
            rig = rig.scaled(MM_PER_UNIT[used]) if MM_PER_UNIT[used] != 1.0 else rig
        except CalibrationError as exc:
            raise exc.in_file(path) from None
    return RigFile(rig=rig, path=Path(path), format=ANIPOSE, units=used, units_source=source, units_note=note,
                   metadata=dict(metadata))


def _parse_camera(key: str, table: Mapping[str, Any], path: str | Path):
    label = table["name"] if isinstance(table.get("name"), str) and table["name"].strip() else f"[{key}]"
    fields = Fields(table, path=path, camera=label, what=f"table [{key}]")
    extra = fields.unknown(CAMERA_KEYS)
    if extra:
        logger.info("%s: camera %r: ignoring keys %s", path, label, ", ".join(extra))
    name = fields.string("name")
    size = fields.array("size", (2,))
    if not all(float(v).is_integer() and v > 0 for v in size):
        raise fields.error("size", f"must be [width, height] in whole pixels, got {size.tolist()}")
    model = FISHEYE if fields.boolean("fisheye", default=False) else PINHOLE
    rvec = fields.array("rotation", (3,))
    R = cv2.Rodrigues(rvec.reshape(3, 1))[0]
    return (
        name,
        int(size[0]),
        int(size[1]),
        fields.array("matrix", (3, 3)),
        fields.array("distortions", (None,)),
        R,
        fields.array("translation", (3,)),
        model,
    )


def _decide_units(metadata: Mapping[str, Any], units: str | None, centers: np.ndarray, path) -> tuple[str, str, str]:
    """(unit, source, note) for the file's translations."""
    stated = metadata.get("units") if isinstance(metadata, Mapping) else None
    if stated is not None:
        stated = check_unit(stated, path=path, field="metadata.units")
        if units is not None and units != stated:
            raise CalibrationError(
                f"the file states units = {stated!r} but {units} was asked for; drop the override or fix the file",
                path=path,
                field="metadata.units",
            )
        note = f"units: {stated} as stated in [metadata]"
        logger.info("%s: %s", path, note)
        return stated, UNITS_FROM_FILE, note
    if units is not None:
        note = f"{UNIT_WORDS[units]} as requested (the file does not state a unit)"
        logger.info("%s: %s", path, note)
        return units, UNITS_FROM_CALLER, note
    inferred, note = infer_units(centers)
    logger.warning("%s: anipose TOML has no unit: %s", path, note)
    return inferred, UNITS_INFERRED, note


def dump_anipose(rig: Rig, *, units: str = "mm", metadata: Mapping[str, Any] | None = None) -> str:
    """The text of an anipose TOML file for ``rig``, translations in ``units``.

    One line per key, as aniposelib writes it, so the file stays readable. ``[metadata] units``
    records the unit so that crossview reads the file back without guessing; anipose and Pose2Sim
    ignore that table's contents.
    """
    units = check_unit(units) or "mm"
    per_unit = MM_PER_UNIT[units]
    lines: list[str] = []
    for index, cam in enumerate(rig):
        translation = cam.t if per_unit == 1.0 else cam.t / per_unit
        lines += [
            f"[cam_{index}]",
            tomli_w.dumps({"name": cam.name}).strip(),
            f"size = [{int(cam.width)}, {int(cam.height)}]",
            f"matrix = [{', '.join(_toml_floats(row) for row in cam.K)}]",
            f"distortions = {_toml_floats(cam.dist)}",
            f"rotation = {_toml_floats(rotation_vector(cam.R))}",
            f"translation = {_toml_floats(translation)}",
            f"fisheye = {'true' if cam.model == FISHEYE else 'false'}",
            "",
        ]
    meta = {str(k): plain_data(v) for k, v in (metadata or {}).items()}
    meta["units"] = units
    try:
        lines.append(tomli_w.dumps({"metadata": meta}))
    except TypeError as exc:
        raise CalibrationError(f"metadata cannot be written as TOML: {exc}", field="metadata") from None
    return "\n".join(lines)


def rotation_vector(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (3,) Rodrigues vector, accurate to ~1e-15 at every angle.

    ``cv2.Rodrigues`` in this direction loses up to 2e-5 in R for rotations within ~1e-6 rad of 180
    degrees; scipy goes through a quaternion and keeps full precision. (Reading with cv2.Rodrigues,
    vector -> matrix, is accurate.)
    """
    return Rotation.from_matrix(R).as_rotvec()


def _toml_floats(values: np.ndarray) -> str:
    """``[a, b, c]`` with each float in Python's shortest round-trip repr (valid TOML for finite values)."""
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"
