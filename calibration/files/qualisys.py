"""Qualisys Track Manager calibrations exported as XML (``.qca.txt``; read only).

Per camera (``<calibration><cameras><camera serial=... active=... viewrotation=...>``):

- ``<fov_video left top right bottom>``: the video image is ``right - left + 1`` pixels wide and
  ``bottom - top + 1`` high, in sensor pixels.
- ``<intrinsic>``: ``focalLengthU/V``, ``centerPointU/V`` (and ``sensorMin/Max``) in 1/64 pixel
  ("subpixel") units, so divided by 64; the principal point is moved into the video window
  (minus ``left``/``top``). ``radialDistortion1..3`` and ``tangentalDistortion1..2`` (sic) are used
  as OpenCV's ``(k1, k2, p1, p2, k3)`` unchanged. (Pose2Sim's converter also divides these by 64.
  On the Pose2Sim demo the two readings cannot be told apart: the lens barely distorts, and the
  cap check below gives median 18.0 px either way (max 32.2 vs 31.8 px). The coefficients act on
  unitless normalised coordinates, so a pixel-unit scale should not apply to them; they are kept
  as written.)
- ``<transform r11..r33 x y z>``: ``(x, y, z)`` is the camera centre in the world, millimetres.
  The matrix ``M = [[r11, r12, r13], [r21, r22, r23], [r31, r32, r33]]`` has the camera's axes as
  its rows, in Qualisys' camera frame, which looks down -Z with +Y up the image. OpenCV's camera
  looks down +Z with +Y down the image, so ``R_cam_from_world = diag(1, -1, -1) @ M`` and
  ``t = -R @ (x, y, z)``. This is the pose Pose2Sim's converter produces (after its transposes and
  its rotation by pi about X), and the tests verify it on real footage: the swimming cap of the
  person in the Pose2Sim demo, found by colour in the four videos and triangulated from any three,
  lands 1.45-1.65 m above the floor and reprojects into the fourth within 18 px (median; 32 px at
  most). Read as ``M`` itself every camera faces away from the volume; ``M^T`` sends the volume
  outside the images; ``diag(-1, 1, -1) @ M`` (a 180-degree image turn) gives 161 px and puts the
  head under the floor.

Cameras with ``active="0"`` are left out. A camera with a non-zero ``viewrotation`` (mounted
sideways or upside down) is refused: its video may be stored rotated relative to the sensor and
that mapping has not been verified on real data.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from calibration.errors import CalibrationError
from calibration.files.fields import build_camera, check_unit, real_number, whole_number
from calibration.files.rigfile import QUALISYS, UNITS_FROM_FORMAT, RigFile
from calibration.rig import Rig

logger = logging.getLogger(__name__)

SUBPIXELS_PER_PIXEL = 64.0
# Qualisys camera frame (Y up, looking down -Z) -> OpenCV camera frame (Y down, looking down +Z).
QUALISYS_TO_OPENCV_CAMERA = np.diag([1.0, -1.0, -1.0])
_FIELD_NAMES = {"K": "intrinsic", "dist": "intrinsic", "R": "transform", "t": "transform",
                "width": "fov_video", "height": "fov_video"}


def is_qualisys(root: ET.Element) -> bool:
    """True for an XML root ``<calibration>`` (the cameras are checked while parsing)."""
    return root.tag == "calibration"


def parse_qualisys(root: ET.Element, path: str | Path, *, units: str | None = None) -> RigFile:
    """Build a :class:`RigFile` from the parsed XML of a ``.qca.txt`` file.

    Args:
        units: must be None or ``"mm"``: Qualisys writes millimetres.
    """
    units = check_unit(units, path=path)
    if units not in (None, "mm"):
        raise CalibrationError(f"Qualisys calibrations are in millimetres; cannot read them as {units}",
                               path=path, field="units")
    elements = root.findall("cameras/camera")
    if not elements:
        raise CalibrationError("no <cameras><camera> elements: not a Qualisys calibration, or truncated", path=path)
    cameras = []
    for index, element in enumerate(elements):
        camera = _parse_camera(element, index, path)
        if camera is not None:
            cameras.append(camera)
    if not cameras:
        raise CalibrationError("every camera is marked active=\"0\"", path=path)
    try:
        rig = Rig(tuple(cameras))
    except CalibrationError as exc:
        raise exc.in_file(path) from None
    return RigFile(rig=rig, path=Path(path), format=QUALISYS, units="mm", units_source=UNITS_FROM_FORMAT,
                   units_note="millimetres (Qualisys writes millimetres)")


class _Element:
    """Typed access to one XML element's attributes, with errors naming file, camera and attribute."""

    def __init__(self, parent: ET.Element, tag: str, path, camera: str) -> None:
        self.path, self.camera, self.tag = path, camera, tag
        element = parent.find(tag)
        if element is None:
            raise CalibrationError(f"missing <{tag}> element", path=path, camera=camera, field=tag)
        self.attrib = element.attrib

    def _error(self, name: str):
        return lambda message: CalibrationError(message, path=self.path, camera=self.camera, field=f"{self.tag}.{name}")

    def _text(self, name: str, default: str | None = None) -> str:
        if name not in self.attrib:
            if default is not None:
                return default
            raise self._error(name)("missing attribute")
        return self.attrib[name]

    def number(self, name: str, default: str | None = None) -> float:
        text = self._text(name, default)
        try:
            value = float(text)
        except ValueError:
            raise self._error(name)(f"not a number: {text[:40]!r}") from None
        return real_number(value, self._error(name))

    def integer(self, name: str) -> int:
        return whole_number(self.number(name), self._error(name))


def _parse_camera(element: ET.Element, index: int, path):
    serial = element.get("serial")
    if serial is None or not serial.strip():
        raise CalibrationError(f"camera #{index + 1} has no serial attribute (used as its name)", path=path,
                               camera=f"#{index + 1}", field="serial")
    name = serial.strip()
    if element.get("active", "1").strip() == "0":
        logger.info("%s: camera %r is inactive (active=\"0\"); leaving it out", path, name)
        return None
    rotation = element.get("viewrotation", "0").strip()
    if rotation not in ("0", "0.0", ""):
        raise CalibrationError(
            f"viewrotation={rotation!r} is not supported: the video of a rotated camera may be stored "
            "rotated relative to the sensor, and that mapping is unverified; export with the camera "
            "upright (viewrotation 0) or convert the calibration to crossview YAML yourself",
            path=path, camera=name, field="viewrotation",
        )
    fov = _Element(element, "fov_video", path, name)
    left, top = fov.integer("left"), fov.integer("top")
    width = fov.integer("right") - left + 1
    height = fov.integer("bottom") - top + 1
    intrinsic = _Element(element, "intrinsic", path, name)
    per_px = SUBPIXELS_PER_PIXEL
    K = np.array([
        [intrinsic.number("focalLengthU") / per_px, intrinsic.number("skew", "0") / per_px,
         intrinsic.number("centerPointU") / per_px - left],
        [0.0, intrinsic.number("focalLengthV") / per_px, intrinsic.number("centerPointV") / per_px - top],
        [0.0, 0.0, 1.0],
    ])
    tangential = "tangentalDistortion" if "tangentalDistortion1" in intrinsic.attrib else "tangentialDistortion"
    dist = np.array([
        intrinsic.number("radialDistortion1"),
        intrinsic.number("radialDistortion2"),
        intrinsic.number(f"{tangential}1"),
        intrinsic.number(f"{tangential}2"),
        intrinsic.number("radialDistortion3", "0"),
    ])
    transform = _Element(element, "transform", path, name)
    M = np.array([[transform.number(f"r{row}{col}") for col in "123"] for row in "123"])  # rows: camera axes
    center_mm = np.array([transform.number(axis) for axis in "xyz"])
    R = QUALISYS_TO_OPENCV_CAMERA @ M
    with np.errstate(over="ignore", invalid="ignore"):  # absurd values end up refused by Camera, not warned
        t_mm = -R @ center_mm
    return build_camera(path=path, name=name, width=width, height=height, K=K, dist=dist, R=R,
                        t_mm=t_mm, model="pinhole", field_names=_FIELD_NAMES)
