"""What reading a calibration file gives: the rig, plus where it came from and in which unit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from calibration.errors import CalibrationError
from calibration.files.fields import MM_PER_UNIT, UNIT_WORDS
from calibration.rig import Rig

NATIVE = "native"
ANIPOSE = "anipose"
CALISCOPE = "caliscope"
QUALISYS = "qualisys"
FORMAT_NAMES = {
    NATIVE: "crossview YAML",
    ANIPOSE: "anipose TOML",
    CALISCOPE: "caliscope camera_array.toml",
    QUALISYS: "Qualisys .qca.txt",
}

# How the length unit was decided.
UNITS_FROM_FILE = "file"  # the file states it
UNITS_FROM_FORMAT = "format"  # the format defines it (Qualisys: mm; caliscope: m)
UNITS_INFERRED = "inferred"  # guessed from the camera spacing (anipose TOML without a unit)
UNITS_FROM_CALLER = "caller"  # the caller said so (units=...)

# Median distance between camera centres below which an anipose TOML is taken to be in metres.
# Real capture rigs put cameras 0.1-20 m apart: 0.1-20 in metres, 100-20000 in millimetres. A value
# under 50 would mean cameras 5 cm apart if read as mm, or 50 m apart if read as metres; neither
# is a human-capture rig, so 50 separates the two cleanly. Centimetres (10-2000) overlap with
# millimetres and cannot be told apart: pass units="cm" for those files.
METRES_BELOW_SPACING = 50.0


@dataclass(frozen=True, slots=True, eq=False)
class RigFile:
    """A calibration read from a file.

    Attributes:
        rig: the cameras, world in millimetres.
        path: the file read.
        format: ``"native"``, ``"anipose"``, ``"caliscope"`` or ``"qualisys"``.
        units: the length unit the file's translations were in (``"mm"``, ``"cm"`` or ``"m"``).
        units_source: how ``units`` was decided: ``"file"``, ``"format"``, ``"inferred"`` or ``"caller"``.
        units_note: one human sentence about the unit, e.g. ``"assumed metres from camera spacing
            (median 2.31 between camera centres)"``; the CLI prints it.
        metadata: the file's free-form metadata (native ``metadata:``, anipose ``[metadata]``), read-only.
    """

    rig: Rig
    path: Path
    format: str
    units: str
    units_source: str
    units_note: str
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.format not in FORMAT_NAMES:
            raise CalibrationError(f"unknown calibration format {self.format!r}", path=self.path)
        if self.units not in MM_PER_UNIT:
            raise CalibrationError(f"unknown length unit {self.units!r}", path=self.path)
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def format_name(self) -> str:
        return FORMAT_NAMES[self.format]

    def describe(self) -> str:
        """One line for the user: ``calib.toml: 4 cameras, anipose TOML, assumed metres from camera spacing``."""
        return f"{self.path.name}: {len(self.rig)} cameras, {self.format_name}, {self.units_note}"


def camera_spacing(centers: np.ndarray) -> float:
    """A typical distance between cameras, in the file's unit.

    Args:
        centers: ``(C, 3)`` camera centres in the file's unit.

    Returns:
        The median pairwise distance between centres; for a single camera, its distance from the
        world origin (calibration boards sit near the origin); 0 when there is nothing to measure.
    """
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    if len(centers) >= 2:
        diffs = centers[:, None, :] - centers[None, :, :]  # (C, C, 3)
        upper = np.triu_indices(len(centers), 1)
        return float(np.median(np.linalg.norm(diffs, axis=-1)[upper]))
    if len(centers) == 1:
        return float(np.linalg.norm(centers[0]))
    return 0.0


def infer_units(centers: np.ndarray) -> tuple[str, str]:
    """Guess the length unit of a file that does not state it, from how far apart its cameras are.

    Args:
        centers: ``(C, 3)`` camera centres in the file's (unknown) unit.

    Returns:
        ``(units, note)``: ``"m"`` when the spacing is under :data:`METRES_BELOW_SPACING`, else ``"mm"``;
        the note says what was assumed and why.
    """
    spacing = camera_spacing(centers)
    what = "median distance between camera centres" if len(centers) >= 2 else "camera distance from the origin"
    if spacing == 0.0:
        return "mm", "assumed millimetres (nothing to measure: the cameras sit at the origin)"
    units = "m" if spacing < METRES_BELOW_SPACING else "mm"
    return units, (
        f"assumed {UNIT_WORDS[units]} from camera spacing ({what} {spacing:.4g}; "
        f"under {METRES_BELOW_SPACING:g} means metres); pass units='mm', 'cm' or 'm' to override"
    )
