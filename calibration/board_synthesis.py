"""Synthetic board views: a board placed in front of known cameras, as corner pixels or as images.

Used to test the calibration solvers against a known truth, and to check a board definition
end to end (render, then detect) without a camera.
"""

from __future__ import annotations

import cv2
import numpy as np

from calibration.boards import Board, board_image
from calibration.camera import Camera
from calibration.errors import check_shape
from calibration.rig import Rig

_MARGIN_MM = 10.0  # white border around the rendered board (detectors need a quiet zone)


def random_board_poses(
    rng: np.random.Generator, count: int, *, center_mm=(0.0, 0.0, 1000.0), spread_mm: float = 500.0, tilt_deg: float = 40.0
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` board poses scattered around ``center_mm``, facing up (+Z) within ``tilt_deg``.

    Returns:
        ``R (count, 3, 3)`` board -> world rotations and ``t (count, 3)`` mm. The board's own z axis
        points down (into the floor), so a board lying flat shows its face to cameras above it.
    """
    from scipy.spatial.transform import Rotation

    tilt = Rotation.from_rotvec(
        np.concatenate([rng.uniform(-1, 1, (count, 2)) * np.deg2rad(tilt_deg), np.zeros((count, 1))], axis=1)
    )
    spin = Rotation.from_euler("z", rng.uniform(-np.pi, np.pi, (count, 1)))
    face_up = Rotation.from_rotvec([np.pi, 0.0, 0.0])  # board z (into the board) -> world -Z
    R = (tilt * spin * face_up).as_matrix()
    t = np.asarray(center_mm, dtype=np.float64) + rng.uniform(-1, 1, (count, 3)) * spread_mm
    return R, t


def project_board(rig: Rig, board: Board, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Corner pixels of ``board`` at poses ``R (F, 3, 3)``, ``t (F, 3)`` mm (board -> world) in every camera.

    Returns:
        ``(C, F, N, 2)`` px; NaN where a corner falls outside the image, behind the camera, or the
        board shows its back to the camera.
    """
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    check_shape("R", R, "(F, 3, 3)", R.ndim == 3 and R.shape[1:] == (3, 3))
    check_shape("t", t, f"(F={R.shape[0]}, 3)", t.shape == (R.shape[0], 3))
    points = np.einsum("fij,nj->fni", R, board.object_points()) + t[:, None, :]  # (F, N, 3) world mm
    pixels = rig.project(points)  # (C, F, N, 2)
    normals = -R[:, :, 2]  # (F, 3) the printed face looks along -z of the board
    for c, camera in enumerate(rig):
        facing = np.einsum("fi,fi->f", camera.center - t, normals) > 0  # (F,)
        inside = (
            (pixels[c, ..., 0] >= 0) & (pixels[c, ..., 0] <= camera.width - 1)
            & (pixels[c, ..., 1] >= 0) & (pixels[c, ..., 1] <= camera.height - 1)
        )
        pixels[c][~(inside & facing[:, None])] = np.nan
    return pixels


def render_board_view(
    camera: Camera, board: Board, R: np.ndarray, t: np.ndarray, *, pixels_per_mm: float = 4.0, background: int = 128
) -> np.ndarray:
    """The image ``camera`` would take of ``board`` at pose ``R (3, 3)``, ``t (3,)`` mm (board -> world).

    The printed board is warped with a homography into the undistorted image, then lens distortion
    is applied with ``cv2.remap`` (each output pixel undistorted through the camera model).

    Returns:
        ``(H, W)`` uint8 grayscale image.
    """
    art = board_image(board, pixels_per_mm=pixels_per_mm, margin_mm=_MARGIN_MM)  # (h, w)
    # Board-plane mm -> art pixels: u = (x + margin) * s - 0.5
    art_from_board = np.array(
        [[pixels_per_mm, 0, _MARGIN_MM * pixels_per_mm - 0.5], [0, pixels_per_mm, _MARGIN_MM * pixels_per_mm - 0.5], [0, 0, 1]]
    )
    R_cam = camera.R @ R  # board -> camera
    t_cam = camera.R @ t + camera.t
    ideal_from_board = camera.K @ np.column_stack([R_cam[:, 0], R_cam[:, 1], t_cam])  # plane z = 0
    H = ideal_from_board @ np.linalg.inv(art_from_board)  # art px -> undistorted image px
    size = (camera.width, camera.height)
    if not camera.has_distortion:
        return cv2.warpPerspective(art, H, size, flags=cv2.INTER_LINEAR, borderValue=background)
    ys, xs = np.mgrid[0 : camera.height, 0 : camera.width].astype(np.float64)
    ideal = camera.undistort_points(np.stack([xs, ys], axis=-1))  # (H, W, 2) undistorted px for each output px
    ideal_h = np.concatenate([ideal, np.ones_like(ideal[..., :1])], axis=-1) @ np.linalg.inv(H).T  # (H, W, 3) art
    map_xy = (ideal_h[..., :2] / ideal_h[..., 2:]).astype(np.float32)
    return cv2.remap(art, map_xy[..., 0], map_xy[..., 1], cv2.INTER_LINEAR, borderValue=background)
