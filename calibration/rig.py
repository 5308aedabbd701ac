"""A rig: an ordered set of calibrated cameras sharing one world frame (millimetres).

The API follows the shape users know from aniposelib::

    pixels = rig.project(points)             # (N, 3) mm -> (C, N, 2) px
    result = rig.triangulate(pixels, conf)   # (C, N, 2) px -> result.points (N, 3) mm
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from calibration.camera import Camera
from calibration.errors import CalibrationError, check_shape


@dataclass(frozen=True, slots=True, eq=False)
class Rig:
    """Ordered cameras with unique names. Views in every ``(C, ...)`` array follow this order.

    Attributes:
        cameras: the cameras, in view order.
    """

    cameras: tuple[Camera, ...]

    def __post_init__(self) -> None:
        cameras = tuple(self.cameras)
        if not cameras:
            raise CalibrationError("a rig needs at least one camera")
        for camera in cameras:
            if not isinstance(camera, Camera):
                raise CalibrationError(f"rig members must be Camera objects, got {type(camera).__name__}")
        names = [c.name for c in cameras]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise CalibrationError(f"camera names must be unique; repeated: {', '.join(duplicates)}")
        object.__setattr__(self, "cameras", cameras)

    # ----------------------------------------------------------------------------------------
    # Container behaviour
    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self) -> Iterator[Camera]:
        return iter(self.cameras)

    def __getitem__(self, key: int | str) -> Camera:
        if isinstance(key, str):
            for camera in self.cameras:
                if camera.name == key:
                    return camera
            raise KeyError(f"no camera named {key!r}; the rig has {', '.join(self.names)}")
        return self.cameras[key]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    @property
    def centers(self) -> np.ndarray:
        """(C, 3) optical centres in world coordinates, mm."""
        return np.stack([c.center for c in self.cameras])

    def select(self, names: Sequence[str], *, source: str = "the data") -> "Rig":
        """The cameras named ``names``, in that order.

        Raises:
            CalibrationError: listing the names the calibration lacks and the names it has, when
                ``names`` asks for a camera that is not in the rig.
        """
        names = [str(n) for n in names]
        missing = [n for n in names if n not in self.names]
        if missing:
            raise CalibrationError(
                f"{source} names camera(s) {', '.join(missing)} that the calibration does not have; "
                f"the calibration has {', '.join(self.names)}. Rename the cameras (or the files) so "
                "the names match."
            )
        return Rig(tuple(self[n] for n in names))

    def relative_transform(self, source: int | str, target: int | str) -> tuple[np.ndarray, np.ndarray]:
        """``R (3, 3)``, ``t (3,)`` mm taking points from camera ``source``'s frame to ``target``'s."""
        return self[source].relative_to(self[target])

    def isclose(self, other: "Rig", *, atol: float = 1e-9) -> bool:
        return len(self) == len(other) and all(a.isclose(b, atol=atol) for a, b in zip(self, other))

    def scaled(self, factor: float) -> "Rig":
        """All translations multiplied by ``factor`` (a change of length unit)."""
        return Rig(tuple(c.scaled(factor) for c in self.cameras))

    # ----------------------------------------------------------------------------------------
    # Geometry
    def project(self, points: np.ndarray) -> np.ndarray:
        """Project world points into every camera.

        Args:
            points: ``(..., 3)`` world coordinates, mm.

        Returns:
            ``(C, ..., 2)`` distorted pixel coordinates; NaN where a point is behind a camera.
        """
        points = np.asarray(points, dtype=np.float64)
        check_shape("points", points, "(..., 3)", points.ndim >= 1 and points.shape[-1] == 3)
        return np.stack([c.project(points) for c in self.cameras])

    def undistort_points(self, points2d: np.ndarray, *, normalized: bool = False) -> np.ndarray:
        """``(C, ..., 2)`` distorted pixels -> undistorted pixels (or normalised coordinates)."""
        points2d = np.asarray(points2d, dtype=np.float64)
        check_shape(
            "points2d",
            points2d,
            f"(C={len(self)}, ..., 2)",
            points2d.ndim >= 2 and points2d.shape[0] == len(self) and points2d.shape[-1] == 2,
        )
        return np.stack(
            [c.undistort_points(p, normalized=normalized) for c, p in zip(self.cameras, points2d)]
        )

    def triangulate(self, points2d: np.ndarray, confidence: np.ndarray | None = None, *, robust: bool = True,
                    **options):
        """Triangulate points seen by the cameras; see :func:`calibration.triangulation.triangulate`
        (``options``: ``sigma_mm``, ``max_reprojection_error_px``)."""
        from calibration.triangulation import triangulate

        return triangulate(self, points2d, confidence, robust=robust, **options)

    def __repr__(self) -> str:
        return f"Rig({len(self)} cameras: {', '.join(self.names)})"
