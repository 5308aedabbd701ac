"""One calibrated camera, in OpenCV conventions.

Conventions (the same everywhere in the project):

- World points are in millimetres. A world point ``X`` maps into the camera frame as
  ``x_cam = R @ X + t`` (``R`` is ``R_cam_from_world``, ``t`` is ``t_cam_from_world`` in mm).
  The camera looks down its +Z axis, +X to the right of the image, +Y down the image.
- Pixels: ``u = fx * x' + cx``, ``v = fy * y' + cy`` where ``(x', y')`` are the distorted normalised
  coordinates; the centre of the top-left pixel is (0, 0).
- Distortion follows OpenCV: the pinhole model takes 0, 4, 5, 8, 12 or 14 coefficients
  ``(k1, k2, p1, p2[, k3[, k4, k5, k6[, s1..s4[, tx, ty]]]])``; the fisheye model takes exactly 4
  ``(k1, k2, k3, k4)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from calibration.errors import CalibrationError, check_shape
from calibration.lens import normalized_from_pixels, project_points

PINHOLE = "pinhole"
FISHEYE = "fisheye"
_PINHOLE_DIST_LENGTHS = (0, 4, 5, 8, 12, 14)
_ROTATION_TOLERANCE = 1e-5
# OpenCV 4 names the iterative undistortion with a stopping criterion undistortPointsIter; OpenCV 5
# folds the criterion into undistortPoints.
_undistort_iter = getattr(cv2, "undistortPointsIter", cv2.undistortPoints)


def _as_matrix(value, shape: tuple[int, ...], camera: str, field_name: str) -> np.ndarray:
    """A read-only float64 copy of ``value`` with ``shape``, or a CalibrationError naming the field."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"not numeric ({exc})", camera=camera, field=field_name) from None
    if array.shape != shape:
        raise CalibrationError(
            f"expected shape {shape}, got {array.shape}", camera=camera, field=field_name
        )
    if not np.all(np.isfinite(array)):
        raise CalibrationError("contains NaN or infinity", camera=camera, field=field_name)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, slots=True, eq=False)
class Camera:
    """A calibrated camera: intrinsics, distortion and pose (world -> camera).

    Attributes:
        name: unique name within a rig, e.g. ``"cam01"``; videos and keypoints are matched by it.
        width: image width in pixels.
        height: image height in pixels.
        K: (3, 3) intrinsic matrix, pixels.
        dist: (D,) distortion coefficients in OpenCV order (see the module docstring).
        R: (3, 3) rotation ``R_cam_from_world``.
        t: (3,) translation ``t_cam_from_world`` in millimetres.
        model: ``"pinhole"`` or ``"fisheye"``.
    """

    name: str
    width: int
    height: int
    K: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    model: str = PINHOLE

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name.strip():
            raise CalibrationError(f"camera name must be a non-empty string, got {name!r}")
        for size_field in ("width", "height"):
            value = getattr(self, size_field)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                if isinstance(value, (float, np.floating)) and float(value).is_integer():
                    value = int(value)
                else:
                    raise CalibrationError(
                        f"must be a whole number of pixels, got {value!r}", camera=name, field=size_field
                    )
            if value <= 0:
                raise CalibrationError(f"must be positive, got {value}", camera=name, field=size_field)
            object.__setattr__(self, size_field, int(value))
        if self.model not in (PINHOLE, FISHEYE):
            raise CalibrationError(
                f"unknown camera model {self.model!r}; use 'pinhole' or 'fisheye'", camera=name, field="model"
            )
        K = _as_matrix(self.K, (3, 3), name, "K")
        if not (K[0, 0] > 0 and K[1, 1] > 0):
            raise CalibrationError(
                f"focal lengths must be positive, got fx={K[0, 0]:g}, fy={K[1, 1]:g}", camera=name, field="K"
            )
        if not np.allclose(K[2], (0.0, 0.0, 1.0)) or K[1, 0] != 0.0:
            raise CalibrationError(
                f"not an upper-triangular intrinsic matrix with last row [0, 0, 1]: {K.tolist()}",
                camera=name,
                field="K",
            )
        dist_raw = np.asarray(self.dist, dtype=np.float64).ravel() if self.dist is not None else np.zeros(0)
        allowed = (4,) if self.model == FISHEYE else _PINHOLE_DIST_LENGTHS
        if dist_raw.size not in allowed:
            raise CalibrationError(
                f"{self.model} model takes {' or '.join(map(str, allowed))} coefficients, got {dist_raw.size}",
                camera=name,
                field="dist",
            )
        dist = _as_matrix(dist_raw, dist_raw.shape, name, "dist")
        R = _as_matrix(self.R, (3, 3), name, "R")
        orthogonality = float(np.abs(R @ R.T - np.eye(3)).max())
        if orthogonality > _ROTATION_TOLERANCE:
            raise CalibrationError(
                f"not a rotation matrix (|R R^T - I| = {orthogonality:.2e}); "
                "expected an orthonormal world-to-camera rotation",
                camera=name,
                field="R",
            )
        det = float(np.linalg.det(R))
        if det < 0:
            raise CalibrationError(
                f"not a rotation matrix (det = {det:.3f}): a reflection; the file may use a "
                "left-handed frame or a transposed matrix",
                camera=name,
                field="R",
            )
        t = _as_matrix(np.asarray(self.t, dtype=np.float64).ravel() if self.t is not None else None, (3,), name, "t")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", t)

    # ----------------------------------------------------------------------------------------
    # Derived quantities
    @property
    def center(self) -> np.ndarray:
        """(3,) optical centre in world coordinates, mm: ``-R^T t``."""
        return -self.R.T @ self.t

    @property
    def P(self) -> np.ndarray:
        """(3, 4) projection matrix ``K [R | t]`` for undistorted pixels (mm in, px out)."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    @property
    def rvec(self) -> np.ndarray:
        """(3,) Rodrigues (axis-angle) vector of ``R``, as OpenCV's ``rvec``.

        SciPy's conversion stays accurate near 180 degrees, where ``cv2.Rodrigues`` loses ~1e-5.
        """
        return Rotation.from_matrix(self.R).as_rotvec()

    @property
    def has_distortion(self) -> bool:
        return bool(np.any(self.dist != 0.0))

    def relative_to(self, other: "Camera") -> tuple[np.ndarray, np.ndarray]:
        """The rigid transform from this camera's frame to ``other``'s frame.

        Returns:
            ``R_other_from_self (3, 3)`` and ``t_other_from_self (3,)`` mm, such that
            ``x_other = R @ x_self + t`` for any point expressed in both frames.
        """
        R_rel = other.R @ self.R.T
        t_rel = other.t - R_rel @ self.t
        return R_rel, t_rel

    def with_pose(self, R: np.ndarray, t: np.ndarray) -> "Camera":
        """A copy with a new world -> camera pose (``R (3, 3)``, ``t (3,)`` mm)."""
        return replace(self, R=R, t=t)

    def fitted_to_image(self, width: int, height: int) -> "Camera":
        """This camera for images of another size that hold the calibrated image scaled to fit.

        Videos are often resized after calibration (a 1080p calibration used on 720p footage) and
        sometimes letterboxed (the Pose2Sim demo's 1088x1920 calibration on 1080x1920 videos: the
        image scaled by 1080/1088 and 7 black rows added above and below). The calibrated image is
        assumed scaled by ``s = min(width / self.width, height / self.height)`` and centred, so
        ``K`` is scaled by ``s`` and the principal point shifted by the padding; distortion
        coefficients (in normalised coordinates) and the pose do not change.

        Returns:
            ``self`` when the size already matches, else the adapted camera.
        """
        if (width, height) == (self.width, self.height):
            return self
        s = min(width / self.width, height / self.height)
        pad_x = (width - s * self.width) / 2.0
        pad_y = (height - s * self.height) / 2.0
        K = self.K.copy()
        K[:2] *= s
        # Pixel centres: calibrated pixel (u, v) -> s (u + 0.5) - 0.5 + pad.
        K[0, 2] += pad_x + 0.5 * s - 0.5
        K[1, 2] += pad_y + 0.5 * s - 0.5
        return replace(self, width=int(width), height=int(height), K=K)

    def scaled(self, factor: float) -> "Camera":
        """A copy with the translation multiplied by ``factor`` (a change of length unit)."""
        return replace(self, t=self.t * factor)

    # ----------------------------------------------------------------------------------------
    # Geometry
    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` mm -> the same points in this camera's frame ``(..., 3)`` mm."""
        points = np.asarray(points, dtype=np.float64)
        check_shape("points", points, "(..., 3)", points.ndim >= 1 and points.shape[-1] == 3)
        return points @ self.R.T + self.t

    def project(self, points: np.ndarray) -> np.ndarray:
        """Project world points to (distorted) pixels.

        Args:
            points: ``(..., 3)`` world coordinates in mm; NaN rows stay NaN.

        Returns:
            ``(..., 2)`` float64 pixel coordinates, distortion applied. Points on or behind the
            camera plane (z <= 0 in the camera frame) have no image and come back NaN.
        """
        points = np.asarray(points, dtype=np.float64)
        check_shape("points", points, "(..., 3)", points.ndim >= 1 and points.shape[-1] == 3)
        return project_points(self, points)

    def opencv_distort_normalized(self, normalized: np.ndarray) -> np.ndarray:
        """Normalised undistorted coordinates ``(N, 2)`` -> distorted pixels ``(N, 2)``, through OpenCV.

        :mod:`calibration.lens` does the same in numpy for the common models and calls this for
        the others (fisheye, tilted sensor).
        """
        normalized = np.ascontiguousarray(normalized, dtype=np.float64).reshape(-1, 1, 2)
        if not self.has_distortion:
            pix = normalized.reshape(-1, 2) @ self.K[:2, :2].T + self.K[:2, 2]
            return pix
        if self.model == FISHEYE:
            pts3 = np.concatenate([normalized, np.ones_like(normalized[..., :1])], axis=-1)
            pix, _ = cv2.fisheye.projectPoints(pts3, np.zeros((3, 1)), np.zeros((3, 1)), self.K, self.dist)
        else:
            pts3 = np.concatenate([normalized, np.ones_like(normalized[..., :1])], axis=-1)
            pix, _ = cv2.projectPoints(pts3, np.zeros(3), np.zeros(3), self.K, self.dist)
        return pix.reshape(-1, 2)

    def undistort_points(self, pixels: np.ndarray, *, normalized: bool = False) -> np.ndarray:
        """Remove lens distortion from pixel coordinates.

        Args:
            pixels: ``(..., 2)`` distorted pixel coordinates; NaN rows stay NaN.
            normalized: return normalised camera coordinates ``(x/z, y/z)`` instead of pixels.

        Returns:
            ``(..., 2)`` undistorted pixels (ideal pinhole with the same ``K``), or normalised
            coordinates when ``normalized`` is true.
        """
        pixels = np.asarray(pixels, dtype=np.float64)
        check_shape("pixels", pixels, "(..., 2)", pixels.ndim >= 1 and pixels.shape[-1] == 2)
        norm = normalized_from_pixels(self, pixels)  # (..., 2)
        if normalized:
            return norm
        return norm @ self.K[:2, :2].T + self.K[:2, 2]

    def opencv_normalized(self, pixels: np.ndarray) -> np.ndarray:
        """Distorted pixels ``(N, 2)`` -> normalised undistorted coordinates ``(N, 2)``, through OpenCV.

        The iterative solver runs to convergence (50 iterations or 1e-12); NaN rows stay NaN.
        :mod:`calibration.lens` calls this for the models it does not evaluate itself.
        """
        flat = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)  # (N, 2)
        finite = np.all(np.isfinite(flat), axis=1)
        norm = np.full_like(flat, np.nan)
        if np.any(finite):
            src = np.ascontiguousarray(flat[finite]).reshape(-1, 1, 2)
            if self.model == FISHEYE:
                und = cv2.fisheye.undistortPoints(src, self.K, self.dist)
            else:
                und = _undistort_iter(
                    src,
                    self.K,
                    self.dist,
                    R=np.eye(3),
                    P=np.eye(3),
                    criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12),
                )
            norm[finite] = und.reshape(-1, 2)
        return norm

    def isclose(self, other: "Camera", *, atol: float = 1e-9) -> bool:
        """True when every field matches ``other`` (arrays within ``atol``)."""
        return (
            self.name == other.name
            and self.width == other.width
            and self.height == other.height
            and self.model == other.model
            and self.dist.shape == other.dist.shape
            and all(
                np.allclose(getattr(self, f), getattr(other, f), atol=atol, rtol=0)
                for f in ("K", "dist", "R", "t")
            )
        )

    def __repr__(self) -> str:
        c = self.center
        return (
            f"Camera({self.name!r}, {self.width}x{self.height}, f=({self.K[0, 0]:.1f}, {self.K[1, 1]:.1f}), "
            f"centre=({c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}) mm, {self.model})"
        )


def look_at(
    name: str,
    center: np.ndarray,
    target: np.ndarray,
    *,
    width: int,
    height: int,
    focal_px: float,
    up: np.ndarray = (0.0, 0.0, 1.0),
    dist: np.ndarray | None = None,
) -> Camera:
    """A pinhole camera at ``center`` (mm) looking at ``target`` (mm) with ``up`` pointing up in the image.

    The principal point is the image centre. ``up`` is the world's up direction (Z-up by default).
    """
    center = np.asarray(center, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - center
    norm = np.linalg.norm(forward)
    if norm == 0:
        raise CalibrationError("camera centre and target coincide", camera=name, field="target")
    z = forward / norm
    x = np.cross(z, np.asarray(up, dtype=np.float64))  # image right = forward x up
    if np.linalg.norm(x) < 1e-9:
        raise CalibrationError("viewing direction is parallel to 'up'", camera=name, field="target")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # image down
    R = np.stack([x, y, z])  # rows: camera axes in world coordinates
    K = np.array([[focal_px, 0.0, (width - 1) / 2.0], [0.0, focal_px, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    return Camera(
        name=name,
        width=width,
        height=height,
        K=K,
        dist=np.zeros(5) if dist is None else dist,
        R=R,
        t=-R @ center,
    )
