"""Bundle adjustment of a camera rig and board poses (SciPy ``least_squares``, sparse Jacobian).

Unknowns: every camera's pose (rotation vector, translation mm) except one held fixed (it fixes the
gauge: the solution is in that camera's frame until the caller moves it), every board pose
(board -> reference frame), and, optionally, every camera's intrinsics. The board's printed size
fixes the metric scale.

Residuals are pixels. With fixed intrinsics, the observations are undistorted once (any lens model
:class:`~calibration.camera.Camera` supports) and the residual is the normalised-coordinate error
times the focal length. With intrinsics refined, the lens is evaluated here: pinhole
``(k1, k2, p1, p2, k3)`` or fisheye ``(k1, k2, k3, k4)``. A Huber loss (``f_scale_px``) keeps a few
bad corners from pulling the solution.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix, csr_matrix
from scipy.spatial.transform import Rotation

from calibration.camera import FISHEYE, Camera
from calibration.errors import CalibrationError, check_shape

logger = logging.getLogger(__name__)

COARSE_SCALE_PX = 30.0  # Huber scale of the first pass, px
_INTRINSIC_COUNT = 9  # fx, fy, cx, cy and 5 distortion slots (fisheye uses the first 4)
INTRINSIC_NAMES = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3")  # pinhole slot names (fisheye: k1-k4)


@dataclass(frozen=True, slots=True, eq=False)
class BundleResult:
    """The adjusted rig in the frame of the fixed camera.

    Attributes:
        cameras: the cameras, poses relative to the fixed camera (mm).
        board_rotvecs: ``(F, 3)`` board -> reference rotation vectors; NaN for frames not adjusted.
        board_tvecs: ``(F, 3)`` board -> reference translations, mm; NaN for frames not adjusted.
        rms_px: RMS reprojection error over all observations, px (without the robust loss).
        success: whether the optimiser reported convergence.
    """

    cameras: tuple[Camera, ...]
    board_rotvecs: np.ndarray
    board_tvecs: np.ndarray
    rms_px: float
    success: bool


def _intrinsic_vector(camera: Camera) -> np.ndarray:
    """(9,) fx, fy, cx, cy, distortion padded to 5."""
    if camera.model != FISHEYE and camera.dist.size not in (0, 4, 5):
        raise CalibrationError(
            f"refining intrinsics supports 0, 4 or 5 pinhole distortion coefficients, not {camera.dist.size}; "
            "keep the intrinsics fixed",
            camera=camera.name,
        )
    dist = np.zeros(5)
    dist[: camera.dist.size] = camera.dist
    return np.concatenate([[camera.K[0, 0], camera.K[1, 1], camera.K[0, 2], camera.K[1, 2]], dist])


def _distort(xy: np.ndarray, coeffs: np.ndarray, fisheye: np.ndarray) -> np.ndarray:
    """Normalised ``xy (M, 2)`` -> distorted normalised ``(M, 2)``; ``coeffs (M, 5)``, ``fisheye (M,)`` bool."""
    x, y = xy[:, 0], xy[:, 1]
    r2 = x * x + y * y
    k1, k2, p1, p2, k3 = coeffs.T
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    if np.any(fisheye):
        r = np.sqrt(r2)
        theta = np.arctan(r)
        t2 = theta * theta
        # fisheye slots: k1, k2, k3, k4 = coeffs[:, 0:4]
        theta_d = theta * (1 + coeffs[:, 0] * t2 + coeffs[:, 1] * t2**2 + coeffs[:, 2] * t2**3 + coeffs[:, 3] * t2**4)
        scale = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
        xd = np.where(fisheye, x * scale, xd)
        yd = np.where(fisheye, y * scale, yd)
    return np.stack([xd, yd], axis=1)


def _jacobian_sparsity(
    free_slot: np.ndarray, cam_idx: np.ndarray, board_slot: np.ndarray, n_pose: int, n_intr: int, free_intr: np.ndarray,
    n_unknowns: int,
) -> csr_matrix:
    """``(2M, n_unknowns)`` 0/1 pattern: observation m's two residuals depend on its camera's pose
    (``free_slot[m]`` >= 0), its camera's free intrinsics (``free_intr``: (9,) bool, none when not
    refined) and its board pose."""
    M = cam_idx.size
    rows, cols = [], []
    for axis in (0, 1):
        r = 2 * np.arange(M) + axis  # (M,)
        free = free_slot >= 0
        for k in range(6):
            rows += [r[free], r]
            cols += [6 * free_slot[free] + k, n_pose + n_intr + 6 * board_slot + k]
        n_free = int(free_intr.sum())
        for k in range(n_free):
            rows.append(r)
            cols.append(n_pose + n_free * cam_idx + k)
    rows_all, cols_all = np.concatenate(rows), np.concatenate(cols)
    data = np.ones(rows_all.size, dtype=np.uint8)
    return coo_matrix((data, (rows_all, cols_all)), shape=(2 * M, n_unknowns)).tocsr()


def bundle_adjust(
    cameras: Sequence[Camera],
    board_rotvecs: np.ndarray,
    board_tvecs: np.ndarray,
    corners: np.ndarray,
    board_points: np.ndarray,
    *,
    fixed_camera: int = 0,
    refine_intrinsics: bool = False,
    f_scale_px: float = 2.0,
    max_nfev: int = 200,
    ftol: float = 1e-6,
    fixed_intrinsics: Sequence[str] = (),
    on_pass: Callable[[], None] | None = None,
) -> BundleResult:
    """Jointly refine camera poses (and intrinsics) and board poses.

    Args:
        cameras: C cameras, poses in the reference frame (the fixed camera's frame, or any frame:
            the fixed camera's pose is kept as it is).
        board_rotvecs: ``(F, 3)`` initial board -> reference rotation vectors; NaN rows are skipped.
        board_tvecs: ``(F, 3)`` initial board -> reference translations, mm.
        corners: ``(C, F, N, 2)`` observed pixels, NaN where unseen.
        board_points: ``(N, 3)`` board corners in the board frame, mm.
        fixed_camera: index of the camera whose pose stays fixed.
        refine_intrinsics: also refine focal lengths, principal points and distortion.
        f_scale_px: Huber loss scale, px: residuals above it count linearly. The default, 2 px, is
            about 3 sigma of good corner noise; a smaller scale puts most residuals in the linear
            part, where the trust-region solver crawls.
        max_nfev: most function evaluations.
        ftol: stop when an iteration lowers the cost by less than this fraction.
        fixed_intrinsics: with ``refine_intrinsics``, the intrinsics held at their starting values,
            by name (:data:`INTRINSIC_NAMES`, e.g. ``("cx", "cy")``).
        on_pass: called before each solver pass (a progress report; it may raise to cancel).
    """
    C = len(cameras)
    corners = np.asarray(corners, dtype=np.float64)
    board_points = np.asarray(board_points, dtype=np.float64)
    check_shape("board_points", board_points, "(N, 3)", board_points.ndim == 2 and board_points.shape[1] == 3)
    N = board_points.shape[0]
    check_shape("corners", corners, f"(C={C}, F, N={N}, 2)", corners.ndim == 4 and corners.shape[0] == C and corners.shape[2:] == (N, 2))
    F = corners.shape[1]
    board_rotvecs = np.asarray(board_rotvecs, dtype=np.float64)
    board_tvecs = np.asarray(board_tvecs, dtype=np.float64)
    check_shape("board_rotvecs", board_rotvecs, f"(F={F}, 3)", board_rotvecs.shape == (F, 3))
    check_shape("board_tvecs", board_tvecs, f"(F={F}, 3)", board_tvecs.shape == (F, 3))

    unknown = sorted(set(fixed_intrinsics) - set(INTRINSIC_NAMES))
    if unknown:
        raise CalibrationError(f"unknown intrinsic(s) {', '.join(unknown)}; names are {', '.join(INTRINSIC_NAMES)}")
    free_intr = np.array([refine_intrinsics and n not in fixed_intrinsics for n in INTRINSIC_NAMES])  # (9,)
    frames = np.flatnonzero(np.all(np.isfinite(board_rotvecs), axis=1) & np.all(np.isfinite(board_tvecs), axis=1))
    frame_slot = np.full(F, -1)
    frame_slot[frames] = np.arange(frames.size)
    seen = np.isfinite(corners[..., 0]) & (frame_slot[None, :, None] >= 0)  # (C, F, N)
    cam_idx, frame_idx, point_idx = np.nonzero(seen)  # (M,) each
    M = cam_idx.size
    if M == 0:
        raise CalibrationError("bundle adjustment has no observations of a located board")
    observed = corners[cam_idx, frame_idx, point_idx]  # (M, 2) px
    slot = frame_slot[frame_idx]
    fisheye = np.array([c.model == FISHEYE for c in cameras])[cam_idx]  # (M,)

    free_cams = [c for c in range(C) if c != fixed_camera]
    cam_slot = np.full(C, -1)
    cam_slot[free_cams] = np.arange(len(free_cams))
    n_pose = 6 * len(free_cams)
    n_intr = int(free_intr.sum()) * C
    n_board = 6 * frames.size

    x0 = np.concatenate(
        [np.concatenate([[*cameras[c].rvec, *cameras[c].t] for c in free_cams]) if free_cams else np.zeros(0),
         np.concatenate([_intrinsic_vector(c)[free_intr] for c in cameras]) if refine_intrinsics else np.zeros(0),
         np.concatenate([board_rotvecs[frames], board_tvecs[frames]], axis=1).ravel()]
    )
    fixed_R, fixed_t = cameras[fixed_camera].R, cameras[fixed_camera].t
    intr_start = np.stack([_intrinsic_vector(c) for c in cameras]) if refine_intrinsics else None  # (C, 9)
    if not refine_intrinsics:
        target = np.concatenate(  # (M, 2) undistorted normalised observations
            [cameras[c].undistort_points(observed[cam_idx == c], normalized=True) for c in range(C)]
        )
        order = np.concatenate([np.flatnonzero(cam_idx == c) for c in range(C)])
        normalized_obs = np.empty_like(observed)
        normalized_obs[order] = target
        focal = np.array([np.sqrt(c.K[0, 0] * c.K[1, 1]) for c in cameras])[cam_idx]  # (M,)

    def unpack(x):
        poses = x[:n_pose].reshape(-1, 6)
        R_cam = np.empty((C, 3, 3))
        t_cam = np.empty((C, 3))
        R_cam[fixed_camera], t_cam[fixed_camera] = fixed_R, fixed_t
        if free_cams:
            R_cam[free_cams] = Rotation.from_rotvec(poses[:, :3]).as_matrix()
            t_cam[free_cams] = poses[:, 3:]
        intr = None
        if refine_intrinsics:
            intr = intr_start.copy()
            intr[:, free_intr] = x[n_pose : n_pose + n_intr].reshape(C, -1)
        boards = x[n_pose + n_intr :].reshape(-1, 6)
        return R_cam, t_cam, intr, Rotation.from_rotvec(boards[:, :3]).as_matrix(), boards[:, 3:]

    def residuals(x):
        R_cam, t_cam, intr, R_board, t_board = unpack(x)
        X = np.einsum("mij,mj->mi", R_board[slot], board_points[point_idx]) + t_board[slot]  # (M, 3) reference
        Xc = np.einsum("mij,mj->mi", R_cam[cam_idx], X) + t_cam[cam_idx]  # (M, 3) camera
        z = np.where(Xc[:, 2] > 1e-6, Xc[:, 2], 1e-6)
        xy = Xc[:, :2] / z[:, None]  # (M, 2) normalised
        if not refine_intrinsics:
            return ((xy - normalized_obs) * focal[:, None]).ravel()
        k = intr[cam_idx]  # (M, 9)
        d = _distort(xy, k[:, 4:], fisheye)
        pix = np.stack([k[:, 0] * d[:, 0] + k[:, 2], k[:, 1] * d[:, 1] + k[:, 3]], axis=1)
        return (pix - observed).ravel()

    sparsity = _jacobian_sparsity(cam_slot[cam_idx], cam_idx, slot, n_pose, n_intr, free_intr, x0.size)
    logger.info("bundle adjustment: %d cameras, %d board poses, %d observations, %d unknowns", C, frames.size, M, x0.size)
    # A robust loss from a poor start crawls (most residuals sit in its linear part): converge with
    # a wide Huber scale first, then down-weight the outliers at ``f_scale_px``.
    solution = None
    for scale in (COARSE_SCALE_PX, f_scale_px) if f_scale_px < COARSE_SCALE_PX else (f_scale_px,):
        if on_pass is not None:
            on_pass()
        solution = least_squares(
            residuals, x0 if solution is None else solution.x, jac_sparsity=sparsity, loss="huber", f_scale=scale,
            x_scale="jac", method="trf", max_nfev=max_nfev, ftol=ftol, xtol=1e-10,
            tr_options={"regularize": False, "atol": 1e-10, "btol": 1e-10},
        )
    R_cam, t_cam, intr, R_board, t_board = unpack(solution.x)
    adjusted = []
    for c, camera in enumerate(cameras):
        changes = {"R": R_cam[c], "t": t_cam[c]}
        if refine_intrinsics:
            K = camera.K.copy()
            K[0, 0], K[1, 1], K[0, 2], K[1, 2] = intr[c, :4]
            changes["K"] = K
            changes["dist"] = intr[c, 4:8] if camera.model == FISHEYE else intr[c, 4:]
        adjusted.append(replace(camera, **changes))
    out_rot = np.full((F, 3), np.nan)
    out_t = np.full((F, 3), np.nan)
    out_rot[frames] = Rotation.from_matrix(R_board).as_rotvec()
    out_t[frames] = t_board
    final = residuals(solution.x).reshape(M, 2)
    rms = float(np.sqrt(np.mean(np.sum(final**2, axis=1))))
    logger.info("bundle adjustment: %s after %d evaluations, RMS %.3f px", solution.message, solution.nfev, rms)
    return BundleResult(tuple(adjusted), out_rot, out_t, rms, bool(solution.success))


def reprojection_errors(
    cameras: Sequence[Camera], board_R: np.ndarray, board_t: np.ndarray, corners: np.ndarray, board_points: np.ndarray
) -> np.ndarray:
    """Distance between observed and reprojected board corners.

    Args:
        cameras: C cameras (poses in the same frame as the board poses).
        board_R: ``(F, 3, 3)`` board -> world rotations; NaN for frames without a pose.
        board_t: ``(F, 3)`` board -> world translations, mm.
        corners: ``(C, F, N, 2)`` observed px, NaN where unseen.
        board_points: ``(N, 3)`` mm, board frame.

    Returns:
        ``(C, F, N)`` px; NaN where unobserved or the frame has no board pose.
    """
    points = np.einsum("fij,nj->fni", board_R, board_points) + board_t[:, None, :]  # (F, N, 3) world mm
    projected = np.stack([camera.project(points) for camera in cameras])  # (C, F, N, 2)
    return np.linalg.norm(projected - corners, axis=-1)
