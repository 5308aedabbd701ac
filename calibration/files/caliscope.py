"""caliscope's ``camera_array.toml`` (read only).

One table per camera under ``[cameras.N]``::

    [cameras.0]
    cam_id = 0
    size = [1280, 720]                          # width, height in pixels
    matrix = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    distortions = [k1, k2, p1, p2, k3]          # OpenCV order
    rotation = [[...], [...], [...]]            # 3x3 R_cam_from_world (a Rodrigues vector is accepted too)
    translation = [tx, ty, tz]                  # t_cam_from_world, metres
    # also: error, exposure, grid_count, ignore, rotation_count, verified_resolutions (not used here)

Cameras are named ``cam_<cam_id>`` to match caliscope's recordings (``cam_0.mp4``, ...). The
rotation is world-to-camera: in the caliscope ChArUco sample every camera then has the common
point its optical axes meet about 1 m in front of it (checked in the tests); read as
camera-to-world, every camera would face away from it. Cameras marked ``ignore = true`` are left
out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from calibration.camera import FISHEYE, PINHOLE
from calibration.errors import CalibrationError
from calibration.files.fields import MM_PER_UNIT, UNIT_WORDS, Fields, build_camera, check_unit
from calibration.files.rigfile import CALISCOPE, UNITS_FROM_CALLER, UNITS_FROM_FORMAT, RigFile, infer_units
from calibration.rig import Rig

logger = logging.getLogger(__name__)

_USED_KEYS = ("cam_id", "size", "matrix", "distortions", "rotation", "translation", "fisheye", "ignore",
              "rotation_count")
_KNOWN_UNUSED = ("error", "exposure", "grid_count", "verified_resolutions")
_FIELD_NAMES = {"K": "matrix", "dist": "distortions", "R": "rotation", "t": "translation", "width": "size",
                "height": "size", "model": "fisheye"}


def is_caliscope(document: Any) -> bool:
    """True for a parsed TOML document with a ``[cameras]`` table of tables."""
    if not isinstance(document, Mapping):
        return False
    cameras = document.get("cameras")
    return isinstance(cameras, Mapping) and all(isinstance(t, Mapping) for t in cameras.values())


def parse_caliscope(document: Any, path: str | Path, *, units: str | None = None) -> RigFile:
    """Build a :class:`RigFile` from a parsed ``camera_array.toml``.

    Args:
        units: override the unit of ``translation`` (caliscope writes metres).
    """
    units = check_unit(units, path=path)
    top = Fields(document, path=path, what="the file")
    cameras_table = top.raw("cameras")
    if not isinstance(cameras_table, Mapping):
        raise top.error("cameras", "must be a set of tables [cameras.0], [cameras.1], ...")
    others = top.unknown(("cameras",))
    if others:
        logger.info("%s: ignoring top-level keys %s", path, ", ".join(others))
    used = units or "m"
    scale = MM_PER_UNIT[used]
    cameras = []
    for key, table in cameras_table.items():
        parsed = _parse_camera(str(key), table, path)
        if parsed is None:
            continue
        name, width, height, K, dist, R, t, model = parsed
        with np.errstate(over="ignore"):  # a translation too large for mm becomes inf and is refused
            t_mm = t * scale
        cameras.append(build_camera(path=path, name=name, width=width, height=height, K=K, dist=dist, R=R,
                                    t_mm=t_mm, model=model, field_names=_FIELD_NAMES))
    if not cameras:
        raise CalibrationError("no usable camera under [cameras] (all missing or marked ignore = true)", path=path)
    try:
        rig = Rig(tuple(cameras))
    except CalibrationError as exc:
        raise exc.in_file(path) from None
    if units is None:
        source = UNITS_FROM_FORMAT
        note = "metres (caliscope writes translations in metres)"
        guess, _ = infer_units(rig.centers / MM_PER_UNIT["m"])
        if guess != "m":
            logger.warning("%s: the camera spacing looks like millimetres, not caliscope's metres; "
                           "pass units='mm' if the rig comes out 1000 times too large", path)
    else:
        source = UNITS_FROM_CALLER
        note = f"{UNIT_WORDS[units]} as requested"
    logger.info("%s: caliscope camera array, %d cameras, %s", path, len(rig), note)
    return RigFile(rig=rig, path=Path(path), format=CALISCOPE, units=used, units_source=source, units_note=note)


def _parse_camera(key: str, table: Any, path: str | Path):
    """The camera's fields, or None when caliscope marks it ``ignore = true``."""
    label = f"cam_{key}"
    if isinstance(table, Mapping) and isinstance(table.get("cam_id"), int) and not isinstance(table["cam_id"], bool):
        label = f"cam_{table['cam_id']}"
    fields = Fields(table, path=path, camera=label, what=f"table [cameras.{key}]")
    extra = fields.unknown(_USED_KEYS + _KNOWN_UNUSED)
    if extra:
        logger.info("%s: camera %r: ignoring keys %s", path, label, ", ".join(extra))
    if fields.boolean("ignore", default=False):
        logger.warning("%s: camera %r is marked ignore = true; leaving it out", path, label)
        return None
    cam_id = fields.integer("cam_id") if fields.has("cam_id") else _key_number(key, fields)
    name = f"cam_{cam_id}"
    if fields.has("rotation_count") and fields.integer("rotation_count") % 4 != 0:
        logger.warning("%s: camera %r has rotation_count = %d: caliscope showed its frames rotated; the "
                       "calibration is used as stored, for unrotated frames of the stored size",
                       path, name, fields.integer("rotation_count"))
    if not (fields.has("rotation") and fields.has("translation")):
        raise fields.error("rotation" if not fields.has("rotation") else "translation",
                           "missing: the camera has no extrinsic calibration yet; finish caliscope's "
                           "extrinsic calibration and export again")
    size = fields.array("size", (2,))
    if not all(float(v).is_integer() and v > 0 for v in size):
        raise fields.error("size", f"must be [width, height] in whole pixels, got {size.tolist()}")
    rotation = table["rotation"]
    if isinstance(rotation, list) and rotation and not isinstance(rotation[0], list):
        R = cv2.Rodrigues(fields.array("rotation", (3,)).reshape(3, 1))[0]
    else:
        R = fields.array("rotation", (3, 3))
    model = FISHEYE if fields.boolean("fisheye", default=False) else PINHOLE
    return (name, int(size[0]), int(size[1]), fields.array("matrix", (3, 3)),
            fields.array("distortions", (None,)), R, fields.array("translation", (3,)), model)


def _key_number(key: str, fields: Fields) -> int:
    if key.isdigit():
        return int(key)
    raise fields.error("cam_id", f"missing, and the table name [cameras.{key}] is not a number")
