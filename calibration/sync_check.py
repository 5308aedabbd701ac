"""Whole-frame sync errors between cameras, found from the board itself.

When two cameras see a rigid board at the same instant, the relative pose ``T_j_from_i`` computed
from each frame is the same in every frame. If one camera's frames are off by one (a frame dropped
or added when the video was written), the board has moved between the two images and the relative
poses scatter. For each camera, frame shifts of up to ``max_shift`` are tried against the best
connected camera; a shift is adopted only when it makes the relative poses clearly more consistent
(``IMPROVEMENT_RATIO``) over enough shared frames (``MIN_SHARED``).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from calibration.boards import Board
from calibration.camera import Camera
from calibration.errors import check_shape
from calibration.extrinsics import board_poses

logger = logging.getLogger(__name__)

MIN_SHARED = 8  # fewest frames both cameras must share at a shift for it to be judged
IMPROVEMENT_RATIO = 0.6  # a shift must bring the scatter below this fraction of the unshifted scatter


def shift_frames(corners: np.ndarray, shift: int) -> np.ndarray:
    """``corners (F, ...)`` with frame ``f`` taking frame ``f + shift``'s content; NaN past the ends."""
    out = np.full_like(corners, np.nan)
    F = corners.shape[0]
    if shift >= 0:
        out[: F - shift] = corners[shift:]
    else:
        out[-shift:] = corners[: F + shift]
    return out


def _scatter(rvec_i, tvec_i, rvec_j, tvec_j, distance_mm: float) -> tuple[float, int]:
    """Median deviation of per-frame relative poses from their median (mm, with rotation as mm at
    ``distance_mm``), and the number of frames it used."""
    ok = np.isfinite(rvec_i[:, 0]) & np.isfinite(rvec_j[:, 0])
    n = int(ok.sum())
    if n < MIN_SHARED:
        return np.inf, n
    R_i = Rotation.from_rotvec(rvec_i[ok])
    R_j = Rotation.from_rotvec(rvec_j[ok])
    R_rel = R_j * R_i.inv()  # (n,) T_j_from_i rotations
    t_rel = tvec_j[ok] - R_rel.apply(tvec_i[ok])  # (n, 3) mm
    angles = (R_rel * R_rel.mean().inv()).magnitude()  # (n,) rad from the mean rotation
    offsets = np.linalg.norm(t_rel - np.median(t_rel, axis=0), axis=1)  # (n,) mm
    return float(np.median(offsets + angles * distance_mm)), n


def estimate_frame_shifts(cameras: Sequence[Camera], corners: np.ndarray, board: Board, *, max_shift: int = 2) -> np.ndarray:
    """Whole-frame shift per camera that best synchronises it with the best-connected camera.

    Args:
        cameras: C cameras with intrinsics.
        corners: ``(C, F, N, 2)`` px, NaN where unseen.
        board: the board.
        max_shift: largest shift tried, frames.

    Returns:
        ``(C,)`` int: camera c's frame f should be read as its frame ``f + shifts[c]``; 0 for the
        reference camera and wherever no shift is clearly better.
    """
    C = len(cameras)
    corners = np.asarray(corners, dtype=np.float64)
    check_shape("corners", corners, f"(C={C}, F, N, 2)", corners.ndim == 4 and corners.shape[0] == C)
    points = board.object_points()
    poses = [board_poses(camera, corners[c], points) for c, camera in enumerate(cameras)]
    located = np.stack([np.isfinite(p[0][:, 0]) for p in poses])  # (C, F)
    shared = (located[:, None] & located[None]).sum(axis=2)  # (C, C)
    np.fill_diagonal(shared, 0)
    reference = int(np.argmax(shared.sum(axis=1)))
    depth = float(np.nanmedian(np.concatenate([np.linalg.norm(p[1], axis=1) for p in poses])))
    shifts = np.zeros(C, int)
    for c in range(C):
        if c == reference:
            continue
        scores = {}
        for shift in range(-max_shift, max_shift + 1):
            rvec = shift_frames(poses[c][0], shift)
            tvec = shift_frames(poses[c][1], shift)
            scores[shift], _ = _scatter(poses[reference][0], poses[reference][1], rvec, tvec, depth)
        best = min(scores, key=scores.get)
        # Both must be judged on enough frames: a shift that merely pairs up more frames than the
        # unshifted videos share (a camera that saw the board at other times) says nothing about sync.
        if best != 0 and np.isfinite(scores[best]) and np.isfinite(scores[0]) and scores[best] < IMPROVEMENT_RATIO * scores[0]:
            shifts[c] = best
            logger.warning(
                "camera %s looks %d frame(s) out of sync with %s (board-pose scatter %.1f mm at shift %+d, %.1f mm unshifted)",
                cameras[c].name, abs(best), cameras[reference].name, scores[best], best, scores[0],
            )
    return shifts
