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

:func:`board_reconstruction_error` measures a rig without ground truth: the board's corners,
triangulated from the cameras that saw them in one synchronised frame, should form the board's
exact grid; how far they do not (rigid fit residual, corner-to-corner distances) is a calibration
error in millimetres, for any rig (also another tool's) and any subset of its cameras.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Mapping, Sequence

import numpy as np

from calibration.boards import Board
from calibration.bundle_adjustment import reprojection_errors
from calibration.errors import CalibrationError, check_shape
from calibration.extrinsics import ExtrinsicsResult
from calibration.intrinsics import GRID_COLUMNS, GRID_ROWS, coverage_cells
from calibration.sync_check import shift_frames
from calibration.video_views import BoardViews

logger = logging.getLogger(__name__)

RMS_WARN_PX = 1.0
ERROR_WARN_MM = 3.0
COVERAGE_WARN = 0.3
PAIR_VIEWS_WARN = 10
MIN_BOARD_CORNERS = 6  # fewest triangulated corners for a frame's board to be measured


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


def similarity_transform(source: np.ndarray, target: np.ndarray, *, scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """The scale, rotation and translation that best map ``source`` onto ``target`` (Umeyama 1991).

    Args:
        source: ``(N, 3)`` points, N >= 3 not collinear (e.g. one rig's camera centres, mm).
        target: ``(N, 3)`` the same points in the other frame.
        scale: fit the scale too; False: a rigid fit (Kabsch), ``s = 1``.

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
    s = float((sigma * d).sum() / S.var(axis=0).sum()) if scale else 1.0
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


@dataclass(frozen=True, slots=True, eq=False)
class BoardReconstruction:
    """How well a rig rebuilds the board's known grid (:func:`board_reconstruction_error`).

    Attributes:
        cameras: names of the cameras the corners were triangulated from.
        frame_labels: ``(K,)`` int labels (sync index or video frame) of the frames measured.
        frame_rms_mm: ``(K,)`` per frame, RMS distance between the triangulated corners and the
            board model rigidly fitted to them (Kabsch), mm.
        distance_errors_mm: ``(M,)`` triangulated minus true distance, mm, for every pair of
            corners triangulated in one frame (true distances are 54 mm-style multiples
            ``square * sqrt(a^2 + b^2)``, exact).
        true_distances_mm: ``(M,)`` the true distances of those pairs, mm.
        corners: corners triangulated in the measured frames.
    """

    cameras: tuple[str, ...]
    frame_labels: np.ndarray
    frame_rms_mm: np.ndarray
    distance_errors_mm: np.ndarray
    true_distances_mm: np.ndarray
    corners: int

    def __post_init__(self) -> None:
        for name in ("frame_labels", "frame_rms_mm", "distance_errors_mm", "true_distances_mm"):
            array = np.array(getattr(self, name), dtype=np.int64 if name == "frame_labels" else np.float64)
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        K, M = len(self.frame_labels), len(self.distance_errors_mm)
        check_shape("frame_rms_mm", self.frame_rms_mm, f"(K={K},)", self.frame_rms_mm.shape == (K,))
        check_shape("distance_errors_mm", self.distance_errors_mm, "(M,)", self.distance_errors_mm.ndim == 1)
        check_shape("true_distances_mm", self.true_distances_mm, f"(M={M},)", self.true_distances_mm.shape == (M,))

    @property
    def frames(self) -> int:
        """Frames measured."""
        return len(self.frame_labels)

    def _stat(self, values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q)) if values.size else float("nan")

    @property
    def median_rms_mm(self) -> float:
        """Median over frames of the rigid-fit RMS, mm."""
        return self._stat(self.frame_rms_mm, 50)

    @property
    def p95_rms_mm(self) -> float:
        """95th percentile over frames of the rigid-fit RMS, mm."""
        return self._stat(self.frame_rms_mm, 95)

    @property
    def distance_median_mm(self) -> float:
        """Median absolute corner-to-corner distance error, mm."""
        return self._stat(np.abs(self.distance_errors_mm), 50)

    @property
    def distance_p95_mm(self) -> float:
        """95th percentile of the absolute corner-to-corner distance error, mm."""
        return self._stat(np.abs(self.distance_errors_mm), 95)

    @property
    def scale_error_percent(self) -> float:
        """Median of (triangulated / true distance - 1), %: a size bias (focal lengths, baseline)."""
        return self._stat(100 * self.distance_errors_mm / self.true_distances_mm, 50)

    def summary(self) -> dict[str, Any]:
        """Plain data: the figures above, rounded."""
        return {
            "cameras": list(self.cameras),
            "frames": self.frames,
            "corners": self.corners,
            "rms_mm": {"median": round(self.median_rms_mm, 3), "p95": round(self.p95_rms_mm, 3)},
            "distance_error_mm": {"median": round(self.distance_median_mm, 3), "p95": round(self.distance_p95_mm, 3)},
            "scale_error_percent": round(self.scale_error_percent, 3),
        }


def board_reconstruction_error(
    rig,
    views: BoardViews | np.ndarray,
    board: Board,
    *,
    cameras: Sequence[str] | None = None,
    frame_shifts: Mapping[str, int] | None = None,
    min_corners: int = MIN_BOARD_CORNERS,
) -> BoardReconstruction:
    """A rig's error in mm without ground truth: its triangulated board against the board's exact grid.

    In every synchronised frame, each board corner seen by two or more of ``cameras`` is
    triangulated from all of them (plain DLT, no view rejection, so a calibration error shows
    instead of being voted away); a frame with at least ``min_corners`` corners is measured by
    fitting the board model rigidly to them (Kabsch, no scale: the square size is exact) and by
    comparing every corner-to-corner distance with the true one. Intrinsics, relative poses and
    scale all show in these figures; sync errors and detection noise (about 0.1-0.3 px on a sharp
    board) do too, so compare rigs on the same views. Triangulating from one camera pair at a time
    tells which camera a disagreement comes from.

    Args:
        rig: the cameras (a :class:`~calibration.rig.Rig`, world in mm; any world frame).
        views: board detections: :class:`~calibration.video_views.BoardViews` (cameras matched to
            the rig by name) or ``(C, F, N, 2)`` px corners in rig order, NaN where unseen.
        board: the board (its ``object_points`` give the true grid, mm).
        cameras: names of the cameras to triangulate from (e.g. a pair); None: every camera of
            ``views``.
        frame_shifts: camera name -> whole frames: that camera's frame ``f`` is read as its frame
            ``f + shift`` (:func:`~calibration.sync_check.shift_frames`, as
            :class:`~calibration.rig_calibration.RigCalibration` ``frame_shifts``); None: no shift.
        min_corners: fewest triangulated corners for a frame to be measured (>= 3).

    Raises:
        CalibrationError: a camera of ``views`` or ``cameras`` is not in the rig, fewer than two
            cameras, or an unknown camera in ``frame_shifts``.
        ShapeError: corners not ``(C, F, N, 2)`` with N the board's corner count.
    """
    from calibration.triangulation import triangulate

    N = board.corner_count
    if isinstance(views, BoardViews):
        names, corners, labels = tuple(views.names), np.asarray(views.corners, np.float64), np.asarray(views.frame_labels)
    else:
        corners = np.asarray(views, dtype=np.float64)
        names, labels = tuple(rig.names), np.arange(corners.shape[1] if corners.ndim == 4 else 0)
    check_shape(
        "corners", corners, f"(C={len(names)}, F, N={N}, 2)",
        corners.ndim == 4 and corners.shape[0] == len(names) and corners.shape[2:] == (N, 2),
    )
    if min_corners < 3:
        raise CalibrationError(f"min_corners must be 3 or more, got {min_corners}", field="min_corners")
    chosen = tuple(names) if cameras is None else tuple(cameras)
    unknown = [n for n in chosen if n not in names] + [n for n in (frame_shifts or {}) if n not in names]
    if unknown:
        raise CalibrationError(f"cameras {unknown} are not among the views' cameras {list(names)}")
    if len(set(chosen)) < 2:
        raise CalibrationError(f"the board is triangulated from two or more cameras, got {list(chosen)}")
    selected = rig.select(chosen, source="the board views")
    observed = np.stack([
        shift_frames(corners[names.index(n)], int((frame_shifts or {}).get(n, 0))) for n in chosen
    ])  # (C', F, N, 2)
    points = triangulate(selected, observed, robust=False).points  # (F, N, 3) mm, NaN below two views
    model = board.object_points()  # (N, 3) mm
    pair_i, pair_j = (np.array(a, int) for a in zip(*combinations(range(N), 2)))
    true = np.linalg.norm(model[pair_i] - model[pair_j], axis=1)  # (N (N - 1) / 2,) mm
    kept, rms, errors, truths, count = [], [], [], [], 0
    for f in range(points.shape[0]):
        ok = np.isfinite(points[f, :, 0])  # (N,)
        if ok.sum() < min_corners:
            continue
        _, R, t = similarity_transform(model[ok], points[f, ok], scale=False)
        residual = points[f, ok] - (model[ok] @ R.T + t)  # (n, 3) mm
        rms.append(float(np.sqrt(np.mean(np.sum(residual**2, axis=1)))))
        both = ok[pair_i] & ok[pair_j]
        found = np.linalg.norm(points[f, pair_i[both]] - points[f, pair_j[both]], axis=1)
        errors.append(found - true[both])
        truths.append(true[both])
        kept.append(int(labels[f]))
        count += int(ok.sum())
    if not kept:
        logger.warning("no frame has %d corners triangulated from cameras %s", min_corners, ", ".join(chosen))
    return BoardReconstruction(
        cameras=chosen,
        frame_labels=np.array(kept, dtype=np.int64),
        frame_rms_mm=np.array(rms),
        distance_errors_mm=np.concatenate(errors) if errors else np.zeros(0),
        true_distances_mm=np.concatenate(truths) if truths else np.zeros(0),
        corners=count,
    )
