"""Extrinsic calibration: where every camera is, from a board seen by several cameras at once.

1. Each camera's board pose in each frame (``solvePnP``, IPPE for a planar target).
2. Each pair of cameras: the relative pose, a robust average over the frames both see (the medoid
   rotation, then the mean of rotations within ``PAIR_INLIER_DEG`` of it and the median translation).
3. The cameras chained along a maximum spanning tree of the "shared views" graph, from the best
   connected camera: each camera is reached through the pairs that saw the board together most.
4. Bundle adjustment of all cameras and board poses (:mod:`calibration.bundle_adjustment`); views
   whose RMS error is an outlier (``VIEW_OUTLIER_FACTOR`` x the median view and above
   ``VIEW_OUTLIER_FLOOR_PX``) are dropped and the adjustment runs again.
5. The world frame: the board in the *origin frame* defines it. Put the board flat on the floor at
   one moment of the recording (seen by as many cameras as possible) and pass that frame as
   ``origin_frame``; the default is the first frame seen by the most cameras. Origin at the board's
   top-left corner, X along its columns, Z up. A planar board leaves a mirror ambiguity (Z up or
   down); Z is chosen so that the cameras are above the floor (the side of the board they see).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree
from scipy.spatial.transform import Rotation

from calibration.boards import Board
from calibration.bundle_adjustment import COARSE_SCALE_PX, BundleResult, bundle_adjust, reprojection_errors
from calibration.camera import Camera
from calibration.errors import CalibrationError, check_shape
from calibration.rig import Rig

logger = logging.getLogger(__name__)

MIN_POSE_CORNERS = 6  # fewest corners for a board pose in one view
PNP_OUTLIER_PX = 3.0  # a board pose whose own RMS reprojection error exceeds this is not used
PAIR_INLIER_DEG = 5.0  # relative rotations further than this from the medoid are outliers
VIEW_OUTLIER_FACTOR = 3.0  # after a first adjustment, a view whose RMS exceeds this x the median view ...
VIEW_OUTLIER_FLOOR_PX = 2.0  # ... and this many pixels is dropped before the final adjustment
_FLIP = np.diag([1.0, -1.0, -1.0])  # board frame (z into the board) <-> world (z out of the board)


@dataclass(frozen=True, slots=True, eq=False)
class ExtrinsicsResult:
    """A calibrated rig and the board poses that support it.

    Attributes:
        rig: the cameras in the world frame (mm, Z up, origin at the board in ``origin_frame``).
        board_R: ``(F, 3, 3)`` board -> world rotations; NaN for frames not used.
        board_t: ``(F, 3)`` board -> world translations, mm; NaN for frames not used.
        used: ``(C, F)`` bool, the views (camera, frame) the final adjustment used; outliers and
            frames seen by one camera only are excluded.
        shared_views: ``(C, C)`` int, frames in which both cameras saw the board (diagonal: views per camera).
        tree: ``(C - 1, 2)`` int, the camera pairs that chained the initial poses.
        origin_frame: the frame index whose board defines the world.
        rms_px: bundle adjustment RMS reprojection error over all observations, px.
    """

    rig: Rig
    board_R: np.ndarray
    board_t: np.ndarray
    used: np.ndarray
    shared_views: np.ndarray
    tree: np.ndarray
    origin_frame: int
    rms_px: float


def _matrix(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """(4, 4) rigid transform from a rotation vector and translation."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rvec).as_matrix()
    T[:3, 3] = tvec
    return T


def _invert(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def board_poses(camera: Camera, corners: np.ndarray, board_points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The board's pose in ``camera``'s frame in every frame.

    Args:
        camera: the camera (intrinsics used; its pose ignored).
        corners: ``(F, N, 2)`` px, NaN where unseen.
        board_points: ``(N, 3)`` mm in the board frame.

    Returns:
        ``rvecs (F, 3)``, ``tvecs (F, 3)`` mm (board -> camera) and ``rms_px (F,)``; NaN where the
        board has fewer than ``MIN_POSE_CORNERS`` corners or its pose fits worse than ``PNP_OUTLIER_PX``.
    """
    F = corners.shape[0]
    rvecs, tvecs, rms = np.full((F, 3), np.nan), np.full((F, 3), np.nan), np.full(F, np.nan)
    for f in range(F):
        seen = np.isfinite(corners[f, :, 0])
        if seen.sum() < MIN_POSE_CORNERS:
            continue
        normalized = camera.undistort_points(corners[f, seen], normalized=True)  # (n, 2)
        ok, rvec, tvec = cv2.solvePnP(
            board_points[seen], normalized.reshape(-1, 1, 2), np.eye(3), None, flags=cv2.SOLVEPNP_IPPE
        )
        if not ok:
            continue
        rvec, tvec = cv2.solvePnPRefineLM(board_points[seen], normalized.reshape(-1, 1, 2), np.eye(3), None, rvec, tvec)
        posed = replace(camera, R=Rotation.from_rotvec(rvec.ravel()).as_matrix(), t=tvec.ravel())
        error = float(np.sqrt(np.nanmean(np.sum((posed.project(board_points[seen]) - corners[f, seen]) ** 2, axis=1))))
        if error <= PNP_OUTLIER_PX:
            rvecs[f], tvecs[f], rms[f] = rvec.ravel(), tvec.ravel(), error
    return rvecs, tvecs, rms


def _relative_pose(T_i: list[np.ndarray], T_j: list[np.ndarray]) -> np.ndarray:
    """Robust (4, 4) ``T_j_from_i`` from paired board poses ``T_i_from_board``, ``T_j_from_board``."""
    relative = np.stack([Tj @ _invert(Ti) for Ti, Tj in zip(T_i, T_j)])  # (S, 4, 4)
    rotations = Rotation.from_matrix(relative[:, :3, :3])
    quats = rotations.as_quat()  # (S, 4)
    angles = 2 * np.arccos(np.clip(np.abs(quats @ quats.T), 0.0, 1.0))  # (S, S) geodesic distances
    medoid = int(np.argmin(angles.sum(axis=1)))
    inliers = angles[medoid] <= np.deg2rad(PAIR_INLIER_DEG)
    T = np.eye(4)
    T[:3, :3] = rotations[inliers].mean().as_matrix()
    T[:3, 3] = np.median(relative[inliers, :3, 3], axis=0)
    return T


def _view_rms(result: BundleResult, corners: np.ndarray, board_points: np.ndarray) -> np.ndarray:
    """``(C, F)`` RMS reprojection error of each view after ``result``, px; NaN where unseen."""
    board_R = np.full((corners.shape[1], 3, 3), np.nan)
    ok = np.isfinite(result.board_rotvecs[:, 0])
    board_R[ok] = Rotation.from_rotvec(result.board_rotvecs[ok]).as_matrix()
    errors = reprojection_errors(result.cameras, board_R, result.board_tvecs, corners, board_points)  # (C, F, N)
    squared = np.where(np.isfinite(errors), errors**2, 0.0).sum(axis=2)
    count = np.isfinite(errors).sum(axis=2)
    return np.where(count > 0, np.sqrt(squared / np.maximum(count, 1)), np.nan)


def _disconnected_message(names: Sequence[str], labels: np.ndarray, shared: np.ndarray) -> str:
    groups = [[names[c] for c in np.flatnonzero(labels == g)] for g in range(labels.max() + 1)]
    lonely = [names[c] for c in range(len(names)) if shared[c, c] == 0]
    text = "the cameras do not all see the board at the same time, so they cannot be placed in one frame: groups " + "; ".join(
        "{" + ", ".join(g) + "}" for g in groups
    )
    if lonely:
        text += f" (no usable board view at all: {', '.join(lonely)})"
    return text + ". Record the board where cameras of different groups see it together (or check the sync)."


def calibrate_extrinsics(
    cameras: Sequence[Camera],
    corners: np.ndarray,
    board: Board,
    *,
    origin_frame: int | None = None,
    refine_intrinsics: bool = False,
    fixed_intrinsics: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> ExtrinsicsResult:
    """Place ``cameras`` (intrinsics known) in one world frame from simultaneous board views.

    Args:
        cameras: C cameras with calibrated intrinsics (their poses are ignored).
        corners: ``(C, F, N, 2)`` px: the board's corners seen by each camera in each synchronised
            frame; NaN where unseen.
        board: the board (its square size gives the metric scale).
        origin_frame: frame index (0..F-1) whose board defines the world; default: the first frame
            seen by the most cameras.
        refine_intrinsics: refine intrinsics in the bundle adjustment too (all cameras' board
            views together, after the outlier views are dropped).
        fixed_intrinsics: intrinsics kept as they are when refining, by name (``("cx", "cy")``; see
            :data:`~calibration.bundle_adjustment.INTRINSIC_NAMES`).
        progress: called with a short description before each step (initial poses, each bundle
            adjustment pass); it may raise (e.g. :class:`~calibration.errors.Cancelled`) to stop.

    Raises:
        CalibrationError: when a camera never sees the board, the cameras split into groups that
            share no view, or ``origin_frame`` has no located board.
    """
    C = len(cameras)
    N = board.corner_count
    corners = np.asarray(corners, dtype=np.float64)
    check_shape("corners", corners, f"(C={C}, F, N={N}, 2)", corners.ndim == 4 and corners.shape[0] == C and corners.shape[2:] == (N, 2))
    if C < 2:
        raise CalibrationError("extrinsic calibration needs at least 2 cameras")
    F = corners.shape[1]
    names = [c.name for c in cameras]
    board_points = board.object_points()
    report = progress or (lambda step: None)
    report("board poses in every view")
    poses = [board_poses(cam, corners[c], board_points) for c, cam in enumerate(cameras)]
    located = np.stack([np.isfinite(p[0][:, 0]) for p in poses])  # (C, F)
    shared = (located[:, None, :] & located[None, :, :]).sum(axis=2)  # (C, C)
    for c in range(C):
        logger.info("camera %s: board located in %d of %d frames", names[c], shared[c, c], F)

    weights = np.where(shared > 0, shared, 0) * (1 - np.eye(C, dtype=int))
    n_groups, labels = connected_components(csr_matrix(weights > 0), directed=False)
    if n_groups > 1:
        raise CalibrationError(_disconnected_message(names, labels, shared))
    # Maximum spanning tree = minimum spanning tree of (big - weight) over the existing edges.
    cost = np.where(weights > 0, weights.max() + 1 - weights, 0)
    tree = minimum_spanning_tree(csr_matrix(cost)).toarray() > 0
    tree = tree | tree.T
    root = int(np.argmax(weights.sum(axis=1)))
    order, predecessors = breadth_first_order(csr_matrix(tree), root, directed=False)
    T_from_root = [np.eye(4) for _ in range(C)]  # T_cam_from_root
    edges = []
    for c in order[1:]:
        parent = int(predecessors[c])
        both = np.flatnonzero(located[parent] & located[c])
        T_parent = [_matrix(poses[parent][0][f], poses[parent][1][f]) for f in both]
        T_child = [_matrix(poses[c][0][f], poses[c][1][f]) for f in both]
        T_from_root[c] = _relative_pose(T_parent, T_child) @ T_from_root[parent]
        edges.append((parent, int(c)))
        logger.info("camera %s placed from %s over %d shared frames", names[c], names[parent], both.size)

    # Initial board poses in the root frame, from the camera that fits each frame best.
    multi = located.sum(axis=0) >= 2  # (F,) frames that tie cameras together
    board_rot, board_t = np.full((F, 3), np.nan), np.full((F, 3), np.nan)
    for f in np.flatnonzero(multi):
        errors = np.array([poses[c][2][f] for c in range(C)])
        best = int(np.nanargmin(errors))
        T = _invert(T_from_root[best]) @ _matrix(poses[best][0][f], poses[best][1][f])  # T_root_from_board
        board_rot[f], board_t[f] = Rotation.from_matrix(T[:3, :3]).as_rotvec(), T[:3, 3]
    posed = [replace(cam, R=T_from_root[c][:3, :3], t=T_from_root[c][:3, 3]) for c, cam in enumerate(cameras)]
    visible = np.where(located[:, :, None, None], corners, np.nan)  # (C, F, N, 2): views with a trusted pose
    report("bundle adjustment, first pass")
    result = bundle_adjust(posed, board_rot, board_t, visible, board_points, fixed_camera=root, f_scale_px=COARSE_SCALE_PX)
    # Views far worse than the rest (a moving board caught at different instants, a misdetection)
    # would bend the rig: drop them and adjust again, refining intrinsics now if asked.
    view_rms = _view_rms(result, visible, board_points)  # (C, F)
    limit = max(VIEW_OUTLIER_FACTOR * float(np.nanmedian(view_rms)), VIEW_OUTLIER_FLOOR_PX)
    outliers = view_rms > limit
    logger.info("dropping %d of %d views above %.2f px", outliers.sum(), np.isfinite(view_rms).sum(), limit)
    visible[outliers] = np.nan
    passes = iter(("bundle adjustment, final pass", "bundle adjustment, final pass with the robust loss"))
    result = bundle_adjust(
        list(result.cameras), result.board_rotvecs, result.board_tvecs, visible, board_points,
        fixed_camera=root, refine_intrinsics=refine_intrinsics, fixed_intrinsics=fixed_intrinsics,
        on_pass=lambda: report(next(passes, "bundle adjustment") + (" (intrinsics refined)" if refine_intrinsics else "")),
    )
    located &= np.isfinite(visible[..., 0]).any(axis=2)

    if origin_frame is None:
        counts = np.where(np.isfinite(result.board_rotvecs[:, 0]), located.sum(axis=0), -1)
        origin_frame = int(np.argmax(counts))
    if not 0 <= origin_frame < F or not np.isfinite(result.board_rotvecs[origin_frame, 0]):
        raise CalibrationError(
            f"origin frame {origin_frame} has no board seen by two or more cameras; choose a frame where the board "
            "lies flat on the floor in view of several cameras",
            field="origin_frame",
        )
    T_root_from_board0 = _matrix(result.board_rotvecs[origin_frame], result.board_tvecs[origin_frame])
    centers_board = np.stack(
        [(_invert(T_root_from_board0) @ np.append(cam.center, 1.0))[:3] for cam in result.cameras]
    )  # (C, 3) camera centres in the origin board's frame
    flip = _FLIP if np.median(centers_board[:, 2]) < 0 else np.eye(3)  # cameras must end up at Z > 0
    T_root_from_world = T_root_from_board0.copy()
    T_root_from_world[:3, :3] = T_root_from_board0[:3, :3] @ flip
    final = []
    for cam in result.cameras:
        T_cam_from_root = np.eye(4)
        T_cam_from_root[:3, :3], T_cam_from_root[:3, 3] = cam.R, cam.t
        T = T_cam_from_root @ T_root_from_world
        final.append(replace(cam, R=T[:3, :3], t=T[:3, 3]))
    T_world_from_root = _invert(T_root_from_world)
    board_R, board_tw = np.full((F, 3, 3), np.nan), np.full((F, 3), np.nan)
    for f in np.flatnonzero(np.isfinite(result.board_rotvecs[:, 0])):
        T = T_world_from_root @ _matrix(result.board_rotvecs[f], result.board_tvecs[f])
        board_R[f], board_tw[f] = T[:3, :3], T[:3, 3]
    rig = Rig(tuple(final))
    below = [c.name for c in rig if c.center[2] < 0]
    if below:
        logger.warning("cameras %s are below the origin board's plane; was the board on the floor?", ", ".join(below))
    return ExtrinsicsResult(
        rig=rig,
        board_R=board_R,
        board_t=board_tw,
        used=located & np.isfinite(board_tw[:, 0])[None, :],
        shared_views=shared,
        tree=np.array(edges, dtype=int).reshape(-1, 2),
        origin_frame=origin_frame,
        rms_px=result.rms_px,
    )
