"""How good a rig calibration is: per-camera errors in pixels and millimetres, coverage, shared views.

Warnings (thresholds below, chosen for human motion capture where a few millimetres matter):

- ``RMS_WARN_PX``: a camera's RMS reprojection error above 1 px means a poorly fitting lens model,
  blurred or badly synchronised frames, or a mis-described board.
- ``ERROR_WARN_MM``: the pixel error turned into millimetres at the median board distance
  (``rms_px * depth / focal``) above 3 mm: the camera will place joints less precisely than that.
- ``COVERAGE_WARN``: corners in fewer than 30 % of the 8 x 6 image grid cells leave the lens
  distortion and principal point poorly constrained near the image edges (move the board into the
  corners of every view).
- ``PAIR_VIEWS_WARN``: a camera pair on the chain that placed the cameras with fewer than 10 shared
  frames is a weak link (film the board where both see it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from calibration.boards import Board
from calibration.bundle_adjustment import reprojection_errors
from calibration.errors import CalibrationError, check_shape
from calibration.extrinsics import ExtrinsicsResult
from calibration.intrinsics import GRID_COLUMNS, GRID_ROWS, coverage_cells

RMS_WARN_PX = 1.0
ERROR_WARN_MM = 3.0
COVERAGE_WARN = 0.3
PAIR_VIEWS_WARN = 10


@dataclass(frozen=True, slots=True)
class CameraQuality:
    """One camera's figures.

    Attributes:
        name: camera name.
        rms_px: RMS reprojection error over the views used, px.
        error_mm: ``rms_px`` at the median board distance, mm.
        depth_mm: median distance from the camera to the board corners it saw, mm.
        coverage: fraction of the coverage grid's cells holding a corner, in [0, 1].
        views: frames (views) used.
        dropped_views: views with a board that the final adjustment did not use (outliers, frames seen alone).
    """

    name: str
    rms_px: float
    error_mm: float
    depth_mm: float
    coverage: float
    views: int
    dropped_views: int


@dataclass(frozen=True, slots=True, eq=False)
class QualityReport:
    """Figures and warnings for a calibrated rig.

    Attributes:
        cameras: one :class:`CameraQuality` per camera, in rig order.
        shared_views: ``(C, C)`` int frames both cameras saw the board in.
        tree: ``(C - 1, 2)`` int camera pairs that chained the rig.
        warnings: human sentences, empty when every figure is within its threshold.
    """

    cameras: tuple[CameraQuality, ...]
    shared_views: np.ndarray
    tree: np.ndarray
    warnings: tuple[str, ...]

    def format(self) -> str:
        """A text table plus the warnings, for the terminal."""
        lines = [f"{'camera':<12} {'RMS px':>7} {'err mm':>7} {'dist mm':>8} {'cover':>6} {'views':>6} {'dropped':>8}"]
        for q in self.cameras:
            lines.append(
                f"{q.name:<12} {q.rms_px:7.3f} {q.error_mm:7.2f} {q.depth_mm:8.0f} {100 * q.coverage:5.0f}% {q.views:6d} {q.dropped_views:8d}"
            )
        names = [q.name for q in self.cameras]
        pairs = ", ".join(f"{names[i]}-{names[j]}: {self.shared_views[i, j]}" for i, j in self.tree)
        lines.append(f"shared views along the chain: {pairs}")
        lines += [f"warning: {w}" for w in self.warnings] or ["no warnings"]
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """Plain data for a calibration file's metadata."""
        names = [q.name for q in self.cameras]
        return {
            "rms_px": {q.name: round(q.rms_px, 4) for q in self.cameras},
            "error_mm": {q.name: round(q.error_mm, 3) for q in self.cameras},
            "coverage": {q.name: round(q.coverage, 3) for q in self.cameras},
            "views": {q.name: q.views for q in self.cameras},
            "shared_views": {f"{names[i]}-{names[j]}": int(self.shared_views[i, j]) for i, j in self.tree},
            "warnings": list(self.warnings),
        }


def assess_calibration(result: ExtrinsicsResult, corners: np.ndarray, board: Board) -> QualityReport:
    """The quality report of an extrinsic calibration.

    Args:
        result: the calibration (rig, board poses, views used).
        corners: ``(C, F, N, 2)`` px, the observations it was computed from (NaN = unseen).
        board: the board.
    """
    rig = result.rig
    C, N = len(rig), board.corner_count
    corners = np.asarray(corners, dtype=np.float64)
    check_shape("corners", corners, f"(C={C}, F, N={N}, 2)", corners.ndim == 4 and corners.shape[0] == C and corners.shape[2:] == (N, 2))
    used = np.asarray(result.used, bool)  # (C, F)
    observed = np.where(used[:, :, None, None], corners, np.nan)  # (C, F, N, 2)
    errors = reprojection_errors(rig.cameras, result.board_R, result.board_t, observed, board.object_points())  # (C, F, N)
    points = np.einsum("fij,nj->fni", result.board_R, board.object_points()) + result.board_t[:, None, :]  # (F, N, 3)
    had_board = np.isfinite(corners[..., 0]).sum(axis=2) > 0  # (C, F)
    cameras, warnings = [], []
    for c, camera in enumerate(rig):
        e = errors[c][np.isfinite(errors[c])]
        rms = float(np.sqrt(np.mean(e**2))) if e.size else float("nan")
        seen = np.isfinite(errors[c])  # (F, N)
        depth = float(np.median(camera.to_camera(points[seen])[:, 2])) if seen.any() else float("nan")
        focal = float(np.sqrt(camera.K[0, 0] * camera.K[1, 1]))
        quality = CameraQuality(
            name=camera.name,
            rms_px=rms,
            error_mm=rms * depth / focal,
            depth_mm=depth,
            coverage=float(coverage_cells(observed[c], camera.width, camera.height).mean()),
            views=int(used[c].sum()),
            dropped_views=int((had_board[c] & ~used[c]).sum()),
        )
        cameras.append(quality)
        if not rms <= RMS_WARN_PX:
            warnings.append(f"{camera.name}: RMS reprojection error {rms:.2f} px is above {RMS_WARN_PX:g} px")
        if not quality.error_mm <= ERROR_WARN_MM:
            warnings.append(f"{camera.name}: error {quality.error_mm:.1f} mm at {depth / 1000:.1f} m is above {ERROR_WARN_MM:g} mm")
        if quality.coverage < COVERAGE_WARN:
            warnings.append(
                f"{camera.name}: board corners cover {100 * quality.coverage:.0f} % of the image ({GRID_COLUMNS}x{GRID_ROWS} grid); "
                "move the board into the corners and edges of this view"
            )
    for i, j in result.tree:
        if result.shared_views[i, j] < PAIR_VIEWS_WARN:
            warnings.append(
                f"{rig[int(i)].name} and {rig[int(j)].name} share only {result.shared_views[i, j]} board views "
                f"(fewer than {PAIR_VIEWS_WARN}); film the board where both see it"
            )
    return QualityReport(tuple(cameras), np.asarray(result.shared_views), np.asarray(result.tree), tuple(warnings))


def similarity_transform(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The scale, rotation and translation that best map ``source`` onto ``target`` (Umeyama 1991).

    Args:
        source: ``(N, 3)`` points, N >= 3 not collinear (e.g. one rig's camera centres, mm).
        target: ``(N, 3)`` the same points in the other frame.

    Returns:
        ``s``, ``R (3, 3)``, ``t (3,)`` minimising ``sum |s R source_i + t - target_i|^2``.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    check_shape("source", source, "(N>=3, 3)", source.ndim == 2 and source.shape[1] == 3 and len(source) >= 3)
    check_shape("target", target, f"(N={len(source)}, 3)", target.shape == source.shape)
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    S, T = source - mu_s, target - mu_t  # (N, 3) centred
    U, sigma, Vt = np.linalg.svd(T.T @ S / len(source))
    d = np.ones(3)
    d[-1] = np.sign(np.linalg.det(U @ Vt))  # a rotation, never a reflection
    R = U @ np.diag(d) @ Vt
    s = float((sigma * d).sum() / S.var(axis=0).sum())
    return s, R, mu_t - s * R @ mu_s


def compare_rigs(found, reference) -> tuple[np.ndarray, np.ndarray]:
    """How far a calibration is from a reference, per camera, after a similarity alignment.

    The found camera centres are aligned to the reference's (Umeyama: rotation, translation and
    scale), then each camera's centre distance and orientation difference are measured.

    Args:
        found, reference: rigs with the same camera names in the same order.

    Returns:
        ``(C,)`` centre distances in mm and ``(C,)`` orientation differences in degrees.
    """
    from scipy.spatial.transform import Rotation

    if tuple(found.names) != tuple(reference.names):
        raise CalibrationError(f"cannot compare rigs with cameras {found.names} and {reference.names}")
    s, R, t = similarity_transform(found.centers, reference.centers)
    centres = np.linalg.norm((s * found.centers @ R.T + t) - reference.centers, axis=1)
    angles = np.array(
        [np.degrees(Rotation.from_matrix(a.R @ R.T @ b.R.T).magnitude()) for a, b in zip(found, reference)]
    )
    return centres, angles
