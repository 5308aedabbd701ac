"""Intrinsic calibration of one camera from board views: focal lengths, principal point, distortion.

Steps: keep the views with enough corners; choose up to ``max_views`` of them so that the corners
cover the image (greedy on a coverage grid: each pick adds the most uncovered cells, then the views
with most corners fill the rest); calibrate with OpenCV; drop views whose own RMS reprojection error
is an outlier (above ``OUTLIER_FACTOR`` x the median and above ``OUTLIER_FLOOR_PX``) and calibrate
again.

The principal point is only pinned down by corners spread over the image: with the board kept in
the middle of the view, a shift of the principal point and a small tilt of every board pose explain
the corners equally well, and the fit may land tens of pixels off (it then reads as a camera
rotation of a few degrees in the rig, while triangulation inside the covered volume is barely
affected). ``principal_point="centre"`` holds it at the image centre; ``"auto"`` does so only when
the corners fill fewer than ``PRINCIPAL_POINT_MIN_COVERAGE`` of the coverage grid's cells or miss
a quarter of the image. The default is ``"fit"``: on caliscope's real webcams, whose principal
points lie 20-32 px off centre, holding them at the centre was no closer to caliscope's solution
(orientations within 4.06 deg against 3.47 deg fitted; see ``tests/test_calibrate_real.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.boards import Board
from calibration.camera import FISHEYE, PINHOLE, Camera
from calibration.errors import CalibrationError, check_shape

logger = logging.getLogger(__name__)

GRID_COLUMNS = 8  # coverage grid across the image
GRID_ROWS = 6  # coverage grid down the image
MIN_VIEW_CORNERS = 6  # fewest corners for a view to enter the calibration
MIN_VIEWS = 4  # fewest views for a calibration
OUTLIER_FACTOR = 3.0  # a view whose RMS exceeds this x the median ...
OUTLIER_FLOOR_PX = 1.0  # ... and this many pixels is dropped
PRINCIPAL_POINT_MIN_COVERAGE = 0.5  # fewer covered grid cells than this: the principal point is held at the centre
PRINCIPAL_POINT_MODES = ("auto", "fit", "centre")


@dataclass(frozen=True, slots=True, eq=False)
class IntrinsicsResult:
    """One camera's intrinsic calibration.

    Attributes:
        camera: the calibrated camera (identity pose).
        rms_px: RMS reprojection error over the views kept, pixels.
        view_rms_px: ``(F,)`` per-view RMS error, px; NaN for views not used.
        used: ``(F,)`` bool, the views the final calibration used.
        coverage: fraction of the coverage grid's cells holding a corner of a used view, in [0, 1].
        principal_point_fixed: True when the principal point was held at the image centre.
    """

    camera: Camera
    rms_px: float
    view_rms_px: np.ndarray
    used: np.ndarray
    coverage: float
    principal_point_fixed: bool = False


def coverage_cells(corners: np.ndarray, width: int, height: int) -> np.ndarray:
    """The grid cells holding corners: ``corners (..., 2)`` px -> ``(GRID_ROWS * GRID_COLUMNS,)`` bool."""
    points = np.asarray(corners, dtype=np.float64).reshape(-1, 2)  # (M, 2)
    points = points[np.all(np.isfinite(points), axis=1)]
    cells = np.zeros(GRID_ROWS * GRID_COLUMNS, bool)
    if points.size:
        col = np.clip((points[:, 0] / width * GRID_COLUMNS).astype(int), 0, GRID_COLUMNS - 1)
        row = np.clip((points[:, 1] / height * GRID_ROWS).astype(int), 0, GRID_ROWS - 1)
        cells[row * GRID_COLUMNS + col] = True
    return cells


def select_views(corners: np.ndarray, width: int, height: int, max_views: int) -> np.ndarray:
    """Views that cover the image: ``corners (F, N, 2)`` px (NaN = unseen) -> sorted ``(V,)`` view indices.

    Only views with at least ``MIN_VIEW_CORNERS`` corners qualify. Greedy: take the view adding the
    most uncovered grid cells (ties: more corners) until no view adds any, then the views with most
    corners until ``max_views``.
    """
    counts = np.isfinite(corners[..., 0]).sum(axis=1)  # (F,)
    candidates = [int(f) for f in np.flatnonzero(counts >= MIN_VIEW_CORNERS)]
    cells = {f: coverage_cells(corners[f], width, height) for f in candidates}
    covered = np.zeros(GRID_ROWS * GRID_COLUMNS, bool)
    chosen: list[int] = []
    while candidates and len(chosen) < max_views:
        gains = [(int((cells[f] & ~covered).sum()), int(counts[f]), -f) for f in candidates]
        gain, _, neg_f = max(gains)
        if gain == 0:
            break
        chosen.append(-neg_f)
        candidates.remove(-neg_f)
        covered |= cells[-neg_f]
    candidates.sort(key=lambda f: (-counts[f], f))
    chosen += candidates[: max(0, max_views - len(chosen))]
    return np.array(sorted(chosen), dtype=int)


def principal_point_constrained(corners: np.ndarray, width: int, height: int) -> bool:
    """Whether board corners ``(..., 2)`` px spread enough over the image to fit the principal point:
    at least ``PRINCIPAL_POINT_MIN_COVERAGE`` of the grid's cells, and some in each image quadrant."""
    cells = coverage_cells(corners, width, height).reshape(GRID_ROWS, GRID_COLUMNS)
    half_r, half_c = GRID_ROWS // 2, GRID_COLUMNS // 2
    quadrants = [cells[:half_r, :half_c], cells[:half_r, half_c:], cells[half_r:, :half_c], cells[half_r:, half_c:]]
    return bool(cells.mean() >= PRINCIPAL_POINT_MIN_COVERAGE and all(q.any() for q in quadrants))


def _calibrate(board_points, seen, image_points, width, height, model, fix_principal_point=False):
    """Calibrate -> (K (3, 3), dist (D,), per-view rms (V,) px).

    Pinhole: ``cv2.calibrateCamera``. Fisheye: ``cv2.fisheye.calibrate`` fails on every input in
    OpenCV 5.0, so the fisheye model is fitted here: a distortion-free pinhole calibration gives K
    and the board poses, then :func:`~calibration.bundle_adjustment.bundle_adjust` refines K, the
    four fisheye coefficients and the poses with the camera fixed at the origin.
    """
    from calibration.bundle_adjustment import bundle_adjust

    object_points = [board_points[mask] for mask in seen]
    objects = [o.astype(np.float32) for o in object_points]
    images = [i.astype(np.float32) for i in image_points]
    flags = 0 if model == PINHOLE else cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST
    if fix_principal_point:
        flags |= cv2.CALIB_FIX_PRINCIPAL_POINT  # OpenCV's initial guess, the image centre, is kept
    _, K, dist, rvecs, tvecs = cv2.calibrateCamera(objects, images, (width, height), None, None, flags=flags)
    K, dist = np.asarray(K, dtype=np.float64), np.asarray(dist, dtype=np.float64).ravel()[:5]
    rvecs = np.array([np.ravel(r) for r in rvecs])  # (V, 3)
    tvecs = np.array([np.ravel(t) for t in tvecs])  # (V, 3) mm
    if model == FISHEYE:
        K[1, 0], K[2] = 0.0, (0.0, 0.0, 1.0)
        start = Camera(name="fit", width=width, height=height, K=K, dist=np.zeros(4), model=FISHEYE)
        corners = np.full((1, len(images), len(board_points), 2), np.nan)  # (1, V, N, 2)
        for v, (mask, img) in enumerate(zip(seen, image_points)):
            corners[0, v, mask] = img
        fitted = bundle_adjust(
            [start], rvecs, tvecs, corners, board_points, refine_intrinsics=True, f_scale_px=1e3,
            fixed_intrinsics=("cx", "cy") if fix_principal_point else (),
        )
        K, dist = fitted.cameras[0].K.copy(), fitted.cameras[0].dist.copy()
        rvecs, tvecs = fitted.board_rotvecs, fitted.board_tvecs
    errors = []
    for obj, img, rvec, tvec in zip(object_points, image_points, rvecs, tvecs):
        if model == FISHEYE:
            proj, _ = cv2.fisheye.projectPoints(obj.reshape(-1, 1, 3), rvec, tvec, K, dist)
        else:
            proj, _ = cv2.projectPoints(obj, rvec, tvec, K, dist)
        errors.append(float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img) ** 2, axis=1)))))
    return K, dist, np.array(errors)


def calibrate_intrinsics(
    corners: np.ndarray,
    board: Board,
    *,
    name: str,
    width: int,
    height: int,
    model: str = PINHOLE,
    max_views: int = 40,
    principal_point: str = "fit",
) -> IntrinsicsResult:
    """Calibrate one camera's intrinsics from board views.

    Args:
        corners: ``(F, N, 2)`` float px, the board's ``N`` corners in ``F`` frames; NaN = not seen.
        board: the board (its ``object_points`` give the metric layout).
        name: camera name (for the result and error messages).
        width: image width, px.
        height: image height, px.
        model: ``"pinhole"`` (5 distortion coefficients) or ``"fisheye"`` (4).
        max_views: most views used (more cost time and add little once the image is covered).
        principal_point: ``"fit"`` it, hold it at the image ``"centre"``, or ``"auto"``: hold it when
            the views leave it unconstrained (:func:`principal_point_constrained`, module docstring).

    Raises:
        CalibrationError: naming the camera when fewer than ``MIN_VIEWS`` usable views exist or OpenCV fails.
    """
    corners = np.asarray(corners, dtype=np.float64)
    N = board.corner_count
    check_shape("corners", corners, f"(F, N={N}, 2)", corners.ndim == 3 and corners.shape[1:] == (N, 2))
    if model not in (PINHOLE, FISHEYE):
        raise CalibrationError(f"unknown camera model {model!r}; use 'pinhole' or 'fisheye'", camera=name)
    if principal_point not in PRINCIPAL_POINT_MODES:
        raise CalibrationError(
            f"principal_point must be one of {', '.join(PRINCIPAL_POINT_MODES)}, got {principal_point!r}", camera=name
        )
    views = select_views(corners, width, height, max_views)
    if views.size < MIN_VIEWS:
        raise CalibrationError(
            f"only {views.size} frame(s) show the board with >= {MIN_VIEW_CORNERS} corners; intrinsic calibration "
            f"needs {MIN_VIEWS} or more (better 15+): film the board closer, at several angles, across the whole image",
            camera=name,
        )
    board_points = board.object_points()  # (N, 3) mm
    fix_pp = principal_point == "centre" or (
        principal_point == "auto" and not principal_point_constrained(corners[views], width, height)
    )
    if fix_pp:
        logger.info("camera %s: the board views leave the principal point unconstrained; holding it at the image centre", name)
    for attempt in range(2):
        seen = [np.isfinite(corners[f, :, 0]) for f in views]
        images = [corners[f][s] for f, s in zip(views, seen)]
        try:
            K, dist, errors = _calibrate(board_points, seen, images, width, height, model, fix_pp)
        except cv2.error as exc:
            raise CalibrationError(
                f"OpenCV could not calibrate from {views.size} views ({str(exc).strip().splitlines()[-1]}); "
                "the views may be too similar or the board mis-described",
                camera=name,
            ) from None
        limit = max(OUTLIER_FACTOR * float(np.median(errors)), OUTLIER_FLOOR_PX)
        keep = errors <= limit
        if attempt == 1 or keep.all() or keep.sum() < MIN_VIEWS:
            break
        logger.info("camera %s: dropping %d of %d views above %.2f px", name, (~keep).sum(), views.size, limit)
        views = views[keep]
    view_rms = np.full(corners.shape[0], np.nan)
    view_rms[views] = errors
    used = np.zeros(corners.shape[0], bool)
    used[views] = True
    squared = np.concatenate([np.full(len(img), e**2) for img, e in zip(images, errors)])
    rms = float(np.sqrt(squared.mean()))
    coverage = float(coverage_cells(corners[views], width, height).mean())
    K[1, 0] = 0.0
    K[2] = (0.0, 0.0, 1.0)
    camera = Camera(name=name, width=width, height=height, K=K, dist=dist, model=model)
    logger.info("camera %s: intrinsics from %d views, RMS %.3f px, coverage %.0f %%", name, views.size, rms, 100 * coverage)
    return IntrinsicsResult(
        camera=camera, rms_px=rms, view_rms_px=view_rms, used=used, coverage=coverage, principal_point_fixed=fix_pp
    )
