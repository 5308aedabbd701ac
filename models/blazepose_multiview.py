"""What a calibrated rig adds to BlazePose: ROIs seeded from the 3D pose, and the subject chosen
among several people by agreement across views.

- :func:`seed_rois_from_3d`: a view that lost the person gets its next ROI by projecting the
  previous 3D pose (hip centre, the body's "up" direction, the body's extent) into it, instead
  of waiting for the single-view detector to find the person again.
- :func:`choose_subject`: when a view's detector finds several people (a bystander in the
  background), keep in each view the detection whose hip centre agrees best with the other views'
  detections: the smallest epipolar distance, summed over the other views.
"""

from __future__ import annotations

import math

import numpy as np

from calibration.errors import check_shape
from calibration.rig import Rig
from models.blazepose_geometry import Detections, Roi, roi_from_alignment
from models.skeleton import BLAZEPOSE33, H36M17

#: The body's circle (centred on the hips) reaches past the outermost joints: H36M's head joint
#: is below the crown, the ankles above the soles, BlazePose's nose below the crown. 1.15 leaves
#: about 0.1 of body height, so the ROI (x 1.25 on top, as MediaPipe's) holds the whole person.
SEED_RADIUS_MARGIN = 1.15


def _hip_up_points(pose3d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hip centre (3,) and mid-shoulders (3,) of an H36M-17 or BlazePose-33 pose (J, 3) mm."""
    if pose3d.shape[0] == H36M17.num_joints:
        return pose3d[H36M17.index("pelvis")], pose3d[H36M17.index("thorax")]
    hips = [BLAZEPOSE33.index("left_hip"), BLAZEPOSE33.index("right_hip")]
    shoulders = [BLAZEPOSE33.index("left_shoulder"), BLAZEPOSE33.index("right_shoulder")]
    return pose3d[hips].mean(axis=0), pose3d[shoulders].mean(axis=0)


def seed_rois_from_3d(rig: Rig, pose3d: np.ndarray) -> list[Roi | None]:
    """One BlazePose ROI per camera from a 3D pose.

    Args:
        rig: the calibrated cameras (their width and height bound the ROIs).
        pose3d: ``(17, 3)`` H36M-17 or ``(33, 3)`` BlazePose-33 joints, world mm; NaN = missing.

    Returns:
        Per camera, in rig order, the ROI MediaPipe's alignment rule gives for the projected hip
        centre and a scale point ``radius`` away along the projected hip-to-shoulders direction,
        ``radius`` = :data:`SEED_RADIUS_MARGIN` x the largest distance of a projected joint from
        the projected hip centre; None where the hip centre is missing, behind the camera or
        outside the image.
    """
    pose3d = np.asarray(pose3d, dtype=np.float64)
    check_shape("pose3d", pose3d, "(17, 3) or (33, 3)", pose3d.ndim == 2 and pose3d.shape in ((17, 3), (33, 3)))
    hip, up = _hip_up_points(pose3d)
    points = np.vstack([hip, up, pose3d])  # (2 + J, 3)
    projected = rig.project(points)  # (C, 2 + J, 2)
    rois: list[Roi | None] = []
    for camera, pixels in zip(rig, projected):
        hip2d, up2d, joints2d = pixels[0], pixels[1], pixels[2:]
        if not np.all(np.isfinite(hip2d)):
            rois.append(None)
            continue
        distances = np.linalg.norm(joints2d - hip2d, axis=1)
        distances = distances[np.isfinite(distances)]
        if distances.size == 0 or distances.max() <= 0:
            rois.append(None)
            continue
        radius = SEED_RADIUS_MARGIN * distances.max()
        direction = up2d - hip2d
        length = float(np.hypot(*direction)) if np.all(np.isfinite(direction)) else 0.0
        # A torso seen end-on gives no direction: assume upright.
        unit = direction / length if length > 1e-6 * radius else np.array([0.0, -1.0])
        roi = roi_from_alignment(hip2d, hip2d + radius * unit)
        rois.append(roi if roi is not None and roi.inside(camera.width, camera.height) else None)
    return rois


def epipolar_distances(rig: Rig, hips: list[np.ndarray]) -> dict[tuple[int, int], np.ndarray]:
    """Symmetric epipolar distances (px) between candidate points (hip centres) of every view pair.

    Args:
        hips: per view ``(D_v, 2)`` distorted pixels (NaN rows give an infinite distance).

    Returns:
        ``{(v, u): (D_v, D_u)}`` for v != u with detections in both views.
    """
    normalized = [
        rig[v].undistort_points(h, normalized=True) if len(h) else np.zeros((0, 2)) for v, h in enumerate(hips)
    ]
    homogeneous = [np.hstack([n, np.ones((len(n), 1))]) for n in normalized]  # (D_v, 3)
    costs = {}
    for v in range(len(rig)):
        for u in range(len(rig)):
            if u == v or not len(hips[v]) or not len(hips[u]):
                continue
            R, t = rig[v].relative_to(rig[u])  # x_u = R x_v + t
            tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
            E = tx @ R  # x_u^T E x_v = 0
            lines_u = homogeneous[v] @ E.T  # (D_v, 3): epipolar lines in view u
            lines_v = homogeneous[u] @ E  # (D_u, 3): epipolar lines in view v
            algebraic = homogeneous[v] @ E.T @ homogeneous[u].T  # (D_v, D_u)
            norm_u = np.hypot(lines_u[:, 0], lines_u[:, 1])[:, None]  # (D_v, 1)
            norm_v = np.hypot(lines_v[:, 0], lines_v[:, 1])[None, :]  # (1, D_u)
            focal_u = float(np.mean(np.diag(rig[u].K)[:2]))
            focal_v = float(np.mean(np.diag(rig[v].K)[:2]))
            with np.errstate(divide="ignore", invalid="ignore"):
                distance = 0.5 * np.abs(algebraic) * (focal_u / norm_u + focal_v / norm_v)
            costs[(v, u)] = np.where(np.isfinite(distance), distance, np.inf)
    return costs


def choose_subject(rig: Rig | None, detections: list[Detections]) -> list[int | None]:
    """The detection to follow in each view.

    Args:
        rig: the cameras, in view order, or None.
        detections: per view, detections in image pixels (keypoint 0 = hip centre), best first.

    Returns:
        Per view the index of the chosen detection, None for a view without detections. Without
        a rig, or with detections in fewer than two views, the best-scored one. Otherwise each
        view keeps the detection with the smallest summed epipolar distance (px) to the nearest
        detection of every other view, then one refinement pass measures against the other
        views' choices; ties go to the better score.
    """
    chosen: list[int | None] = [0 if len(d) else None for d in detections]
    views_with = [v for v, d in enumerate(detections) if len(d)]
    if rig is None or len(views_with) < 2 or all(len(detections[v]) == 1 for v in views_with):
        return chosen
    hips = [np.asarray(d.keypoints[:, 0, :], dtype=np.float64) for d in detections]  # (D_v, 2)
    costs = epipolar_distances(rig, hips)

    def total(v: int, against: list[int | None] | None) -> np.ndarray:
        cost = np.zeros(len(detections[v]))
        for u in views_with:
            if u == v:
                continue
            pair = costs[(v, u)]  # (D_v, D_u)
            column = pair.min(axis=1) if against is None else pair[:, against[u]]
            cost += np.minimum(column, 1e6)  # a failed pair must not swamp the others
        return cost

    for against in (None, "chosen"):
        reference = None if against is None else list(chosen)
        for v in views_with:
            cost = total(v, reference)
            best = float(cost.min())
            # Ties (within 1 px) go to the best-scored detection, which comes first.
            chosen[v] = int(np.flatnonzero(cost <= best + 1.0)[0]) if math.isfinite(best) else 0
    return chosen
