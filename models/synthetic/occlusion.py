"""Self-occlusion of skeleton joints, with the body approximated by capsules.

A joint is *occluded* in a view when the line of sight from the camera centre to the skin over the
joint passes through a body capsule that does not contain the joint. A joint centre lies inside
the body, ``joint_depth_mm`` under the skin (120 mm for the middle of the pelvis, 90 mm for a
hip, 30 mm for a wrist), and a detector that sees the skin over it places it; so the last
``joint_depth_mm`` of the line of sight are not tested. Capsules that contain the joint (its own
limb segments, the hip capsule for the pelvis) never hide it.

Measured on the CMU clips (train and test, 30 fps) in random 4-camera rigs, 16 % of the joint
views are occluded; the far hip (~40 % of views) and shoulder (~30 %) most, the neck and head
least (~2 %). A standing person with arms down seen from the side has the pelvis, both hips and
the far arm hidden behind the near arm and thigh, as a camera would.

The H36M-17 capsules (radii in mm, for an average adult; the torso's is between half the chest
depth, ~110 mm, and half the shoulder-to-shoulder width of the upper chest, ~150 mm):

=====================  =========  =====================  =========
segment                radius     segment                radius
=====================  =========  =====================  =========
pelvis - spine         120        thighs                 75
spine - thorax         130        shanks                 50
hip - hip              90         upper arms             45
shoulder - shoulder    60         forearms               38
thorax - neck          55         neck - head top        95
=====================  =========  =====================  =========
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.errors import CrossviewError, check_shape

_CHUNK_ELEMENTS = 1 << 18  # C x T x J elements processed at a time (bounds memory)


@dataclass(frozen=True, slots=True)
class BodyCapsules:
    """Capsules (segments between two joints, with a radius) that make up a body.

    Attributes:
        segments: ``(a, b)`` joint index pairs.
        radii_mm: one radius per segment, mm.
    """

    segments: tuple[tuple[int, int], ...]
    radii_mm: tuple[float, ...]
    joint_depth_mm: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.segments) != len(self.radii_mm):
            raise ValueError(f"{len(self.segments)} segments but {len(self.radii_mm)} radii")
        if any(r <= 0 for r in self.radii_mm):
            raise ValueError("capsule radii must be positive")
        if any(d < 0 for d in self.joint_depth_mm):
            raise ValueError("joint depths must be non-negative")
        needed = 1 + max((max(pair) for pair in self.segments), default=-1)
        if len(self.joint_depth_mm) < needed:
            raise ValueError(f"{len(self.joint_depth_mm)} joint depths for segments that use {needed} joints")


H36M17_CAPSULES = BodyCapsules(
    segments=(
        (0, 7), (7, 8), (1, 4), (11, 14), (8, 9), (9, 10),
        (1, 2), (4, 5), (2, 3), (5, 6),
        (11, 12), (14, 15), (12, 13), (15, 16),
    ),
    radii_mm=(
        120.0, 130.0, 90.0, 60.0, 55.0, 95.0,
        75.0, 75.0, 50.0, 50.0,
        45.0, 45.0, 38.0, 38.0,
    ),
    joint_depth_mm=(
        120.0,  # pelvis: the middle of the pelvis
        90.0, 50.0, 40.0,  # hip, knee, ankle
        90.0, 50.0, 40.0,
        110.0, 110.0, 50.0, 60.0,  # spine, thorax, neck, head
        60.0, 40.0, 30.0,  # shoulder, elbow, wrist
        60.0, 40.0, 30.0,
    ),
)


def _point_segment_distance(point, start, axis) -> np.ndarray:
    """Distance from ``point`` to the segment ``start + u axis`` (u in [0, 1]); ``(..., 3)`` -> ``(...)``."""
    offset = point - start
    length2 = np.einsum("...i,...i->...", axis, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.clip(np.einsum("...i,...i->...", offset, axis) / np.where(length2 > 1e-12, length2, 1.0), 0.0, 1.0)
    return np.linalg.norm(offset - u[..., None] * axis, axis=-1)


def self_occlusion(
    points3d: np.ndarray,
    camera_centers: np.ndarray,
    *,
    capsules: BodyCapsules = H36M17_CAPSULES,
) -> np.ndarray:
    """Which joints each camera cannot see because another body part is in front of them.

    Args:
        points3d: ``(T, J, 3)`` joint positions, mm (world frame). NaN joints are never occluded
            and never occlude.
        camera_centers: ``(C, 3)`` camera optical centres, mm (world frame).
        capsules: the body model; indices refer to the J joints (its ``joint_depth_mm`` has J
            entries: the untested end of each joint's line of sight).

    Returns:
        ``(C, T, J)`` bool, True where the joint is hidden.
    """
    points3d = np.asarray(points3d, dtype=np.float64)
    check_shape("points3d", points3d, "(T, J, 3)", points3d.ndim == 3 and points3d.shape[2] == 3)
    camera_centers = np.asarray(camera_centers, dtype=np.float64)
    check_shape(
        "camera_centers", camera_centers, "(C, 3)", camera_centers.ndim == 2 and camera_centers.shape[1] == 3
    )
    num_frames, num_joints, _ = points3d.shape
    num_cameras = camera_centers.shape[0]
    if len(capsules.joint_depth_mm) != num_joints:
        raise CrossviewError(
            f"the body model has {len(capsules.joint_depth_mm)} joint depths for {num_joints} joints; "
            "pass a BodyCapsules for this skeleton or switch occlusion off"
        )
    depth = np.asarray(capsules.joint_depth_mm, dtype=np.float64)  # (J,)
    occluded = np.zeros((num_cameras, num_frames, num_joints), dtype=bool)
    step = max(1, _CHUNK_ELEMENTS // max(1, num_cameras * num_joints))
    for start in range(0, num_frames, step):  # chunks of frames, to bound memory
        chunk = points3d[start : start + step]  # (t, J, 3)
        occluded[:, start : start + step] = _occlusion_chunk(chunk, camera_centers, capsules, depth)
    return occluded


def _occlusion_chunk(points3d, camera_centers, capsules: BodyCapsules, depth: np.ndarray) -> np.ndarray:
    """``(C, t, J)`` occlusion for a chunk of frames, ``points3d (t, J, 3)``.

    The least distance between two segments (Ericson, *Real-Time Collision Detection*, 5.1.9),
    expanded into dot products so that only two ``(C, t, J)`` dot products are computed per
    capsule (the line of sight starts at the camera centre, which becomes the origin).
    """
    origin = camera_centers[:, None, None, :]  # (C, 1, 1, 3)
    ray = points3d[None] - origin  # (C, t, J, 3) camera -> joint
    length = np.sqrt(np.einsum("...i,...i->...", ray, ray))  # (C, t, J)
    with np.errstate(invalid="ignore", divide="ignore"):
        shorten = np.clip(1.0 - depth / length, 0.0, 1.0)
    sight = ray * shorten[..., None]  # (C, t, J, 3) the tested part of the line of sight
    a = np.einsum("...i,...i->...", sight, sight)  # (C, t, J) |sight|^2
    a_safe = np.where(a > 1e-12, a, 1.0)
    hidden = np.zeros(ray.shape[:-1], dtype=bool)  # (C, t, J)
    for (i, j), radius in zip(capsules.segments, capsules.radii_mm):  # tiny loop over capsules
        start = points3d[:, i]  # (t, 3)
        axis = points3d[:, j] - start  # (t, 3) capsule axis D
        # A joint inside this capsule (its own limb, or embedded in it) cannot be hidden by it.
        embedded = _point_segment_distance(points3d, start[:, None], axis[:, None]) < radius  # (t, J)
        rel = start[None] - camera_centers[:, None, :]  # (C, t, 3) capsule start A' from the camera
        e = np.einsum("ti,ti->t", axis, axis)[None, :, None]  # (1, t, 1) |D|^2
        g = np.einsum("cti,ti->ct", rel, axis)[:, :, None]  # (C, t, 1) A'.D
        h = np.einsum("cti,cti->ct", rel, rel)[:, :, None]  # (C, t, 1) |A'|^2
        b = np.einsum("ctji,ti->ctj", sight, axis)  # (C, t, J) sight.D
        c = np.einsum("ctji,cti->ctj", sight, rel)  # (C, t, J) sight.A'
        e_safe = np.where(e > 1e-12, e, 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            denom = a * e - b * b
            general = denom > 1e-9 * a_safe * e_safe  # not parallel
            s = np.where(general, np.clip((c * e - b * g) / np.where(general, denom, 1.0), 0, 1), 0.0)
            u = (b * s - g) / e_safe
            s = np.where(u < 0, np.clip(c / a_safe, 0, 1), np.where(u > 1, np.clip((b + c) / a_safe, 0, 1), s))
            u = np.clip(u, 0, 1)
            # |s sight - A' - u D|^2
            distance2 = s * s * a + h + u * u * e - 2 * s * c - 2 * s * u * b + 2 * u * g
            hidden |= (distance2 < radius * radius) & ~embedded[None]
    return hidden
