"""Skeleton definitions (joint names, bones, left/right pairs) and the maps between them.

Left and right are always the person's own, in every joint set.

Joint sets (``JOINT_SETS``, ``get_skeleton(name)``):

- ``h36m17``, the project's 3D skeleton, Human3.6M's 17 joints with the pelvis as root::

    0 pelvis, 1 r_hip, 2 r_knee, 3 r_ankle, 4 l_hip, 5 l_knee, 6 l_ankle, 7 spine, 8 thorax,
    9 neck, 10 head, 11 l_shoulder, 12 l_elbow, 13 l_wrist, 14 r_shoulder, 15 r_elbow, 16 r_wrist

  Bones form a tree (16 bones); ``H36M17_PARENTS`` gives each joint's parent.
- ``coco17``, the COCO keypoint order (most 2D detectors: RTMPose, ViTPose, YOLO-pose)::

    0 nose, 1 left_eye, 2 right_eye, 3 left_ear, 4 right_ear, 5 left_shoulder, 6 right_shoulder,
    7 left_elbow, 8 right_elbow, 9 left_wrist, 10 right_wrist, 11 left_hip, 12 right_hip,
    13 left_knee, 14 right_knee, 15 left_ankle, 16 right_ankle

  Bones are COCO's usual 19 links (limbs, the shoulder-hip box, eyes-nose-ears, ears to
  shoulders): a connected graph with cycles, not a tree.
- ``blazepose33``, MediaPipe Pose's 33 landmarks::

    0 nose, 1 left_eye_inner, 2 left_eye, 3 left_eye_outer, 4 right_eye_inner, 5 right_eye,
    6 right_eye_outer, 7 left_ear, 8 right_ear, 9 mouth_left, 10 mouth_right, 11 left_shoulder,
    12 right_shoulder, 13 left_elbow, 14 right_elbow, 15 left_wrist, 16 right_wrist,
    17 left_pinky, 18 right_pinky, 19 left_index, 20 right_index, 21 left_thumb, 22 right_thumb,
    23 left_hip, 24 right_hip, 25 left_knee, 26 right_knee, 27 left_ankle, 28 right_ankle,
    29 left_heel, 30 right_heel, 31 left_foot_index, 32 right_foot_index

  Bones are MediaPipe's ``POSE_CONNECTIONS`` (35 links). They leave three separate components:
  the eyes-ears-nose group (0-8), the mouth (9-10) and the body (11-32).

Mapping to H36M-17 (``to_h36m17``). Each H36M joint is a fixed weighted combination of source
joints; ``h36m17_weights(joint_set)`` returns it as a ``(17, J)`` matrix whose rows sum to 1 (so
the map commutes with translation). COCO-17 and BlazePose-33 use the same names for every joint
involved, so one recipe serves both (mid-X = the mean of left_X and right_X)::

     0 pelvis     = mid-hips
     1 r_hip      = right_hip
     2 r_knee     = right_knee
     3 r_ankle    = right_ankle
     4 l_hip      = left_hip
     5 l_knee     = left_knee
     6 l_ankle    = left_ankle
     7 spine      = 0.43 mid-hips + 0.57 mid-shoulders
     8 thorax     = mid-shoulders
     9 neck       = 1/3 mid-shoulders + 2/3 mid-ears
    10 head       = 1.25 mid-ears - 0.25 mid-shoulders
    11 l_shoulder = left_shoulder
    12 l_elbow    = left_elbow
    13 l_wrist    = left_wrist
    14 r_shoulder = right_shoulder
    15 r_elbow    = right_elbow
    16 r_wrist    = right_wrist

Why these choices:

- pelvis and thorax are the midpoints of the detector's hips and shoulders, as in real Human3.6M
  (whose root sits between the hip joints). The project's CMU-derived 3D data
  (``cmu_mocap.npz``, ``<name>/h36m17``) follows another convention: there the pelvis lies
  108 mm above mid-hips and the thorax 44 mm from mid-shoulders (mean over all 40,331 frames).
  Code that compares mapped detections with that data must expect these offsets.
- spine: in the CMU-derived data the spine joint lies at 0.57 of the way from mid-hips to
  mid-shoulders (least-squares fit: 0.573 on train, 0.571 on test). The mapped spine is then
  13.8 mm from the data's spine on average, against 32.0 mm for the plain midpoint (0.5) and
  81.7 mm for 0.36, the fraction at which the spine sits between that data's own pelvis and
  thorax.
- neck: H36M's joint 9 ("Neck/Nose") sits below the chin, about two thirds of the way from the
  shoulder line up to the ear canals (ears about 0.11 of body height above the shoulders, so
  about 125 mm up for a 1.7 m person; the CMU-derived neck is 129 mm from mid-shoulders). The
  ears rather than the nose because the upper cervical spine lies under the ears: nodding or
  turning the head moves the nose by 100 mm or more but the ear midpoint little.
- head: H36M's head joint is near the top of the head, between ear level and the crown (crown
  about 0.18 of body height above the shoulders). It is extrapolated beyond the ears along the
  shoulders-to-ears axis by a quarter of that distance: about 0.14 of body height, 235 mm for a
  1.7 m person, above the shoulders (the CMU-derived head is 217 mm from mid-shoulders).

Missing data and confidence. A source joint is missing when any coordinate is NaN or its
confidence is NaN or <= 0 (threshold low confidences to 0 before calling). A derived joint is NaN
with confidence 0 as soon as one of its sources (weight != 0) is missing; otherwise its
confidence is the minimum over its sources: a derived joint is no surer than its least sure part.

2D versus 3D. The same weights are applied to 2D pixels or to 3D millimetres. Affine combinations
commute with affine maps but not with perspective projection (nor lens distortion): the midpoint
of two projected points is not the projection of the 3D midpoint. For two joints 2a apart across
the line of sight and 2d apart along it, at depth Z, the gap is about a*d/Z measured in
millimetres at that depth: a = d = 150 mm at Z = 3 m gives 7.5 mm. In a test with a turning,
leaning person 3 m from the camera the worst gap was 4 px at 1400 px focal length (8.5 mm, at
the spine, which mixes hips and shoulders), less than a typical detector's error. Distorted
pixels add a little more near the image edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np

from calibration.errors import CrossviewError, check_shape


@dataclass(frozen=True, slots=True)
class Skeleton:
    """A named joint set.

    Attributes:
        name: short identifier used in files, e.g. ``"h36m17"``.
        joints: joint names in index order.
        bones: ``(parent, child)`` index pairs; for a tree skeleton the parent is nearer the root.
        left_right: ``(left, right)`` index pairs of mirror-symmetric joints.
    """

    name: str
    joints: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    left_right: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        n = len(self.joints)
        if len(set(self.joints)) != n:
            raise ValueError(f"skeleton {self.name!r}: joint names repeat")
        for a, b in self.bones + self.left_right:
            if not (0 <= a < n and 0 <= b < n) or a == b:
                raise ValueError(f"skeleton {self.name!r}: bad joint pair ({a}, {b})")

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        """Index of the joint named ``joint``."""
        try:
            return self.joints.index(joint)
        except ValueError:
            raise KeyError(f"skeleton {self.name!r} has no joint {joint!r}") from None

    @property
    def flip_permutation(self) -> np.ndarray:
        """(J,) int index array that swaps every left joint with its right twin."""
        perm = np.arange(self.num_joints)
        for left, right in self.left_right:
            perm[left], perm[right] = right, left
        return perm


H36M17 = Skeleton(
    name="h36m17",
    joints=(
        "pelvis",
        "r_hip",
        "r_knee",
        "r_ankle",
        "l_hip",
        "l_knee",
        "l_ankle",
        "spine",
        "thorax",
        "neck",
        "head",
        "l_shoulder",
        "l_elbow",
        "l_wrist",
        "r_shoulder",
        "r_elbow",
        "r_wrist",
    ),
    bones=(
        (0, 1),
        (1, 2),
        (2, 3),
        (0, 4),
        (4, 5),
        (5, 6),
        (0, 7),
        (7, 8),
        (8, 9),
        (9, 10),
        (8, 11),
        (11, 12),
        (12, 13),
        (8, 14),
        (14, 15),
        (15, 16),
    ),
    left_right=((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16)),
)

#: Parent of each H36M-17 joint (-1 for the pelvis root), derived from the bones.
H36M17_PARENTS = np.full(17, -1, dtype=np.int64)
for _parent, _child in H36M17.bones:
    H36M17_PARENTS[_child] = _parent

COCO17 = Skeleton(
    name="coco17",
    joints=(
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    bones=(
        # legs, hips to ankles
        (11, 13),
        (13, 15),
        (12, 14),
        (14, 16),
        # torso box
        (11, 12),
        (5, 11),
        (6, 12),
        (5, 6),
        # arms
        (5, 7),
        (7, 9),
        (6, 8),
        (8, 10),
        # face, and ears to shoulders
        (1, 2),
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
    ),
    left_right=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
)

BLAZEPOSE33 = Skeleton(
    name="blazepose33",
    joints=(
        "nose",
        "left_eye_inner",
        "left_eye",
        "left_eye_outer",
        "right_eye_inner",
        "right_eye",
        "right_eye_outer",
        "left_ear",
        "right_ear",
        "mouth_left",
        "mouth_right",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_pinky",
        "right_pinky",
        "left_index",
        "right_index",
        "left_thumb",
        "right_thumb",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
        "left_heel",
        "right_heel",
        "left_foot_index",
        "right_foot_index",
    ),
    # MediaPipe's POSE_CONNECTIONS, in its order.
    bones=(
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 7),
        (0, 4),
        (4, 5),
        (5, 6),
        (6, 8),
        (9, 10),
        (11, 12),
        (11, 13),
        (13, 15),
        (15, 17),
        (15, 19),
        (15, 21),
        (17, 19),
        (12, 14),
        (14, 16),
        (16, 18),
        (16, 20),
        (16, 22),
        (18, 20),
        (11, 23),
        (12, 24),
        (23, 24),
        (23, 25),
        (24, 26),
        (25, 27),
        (26, 28),
        (27, 29),
        (28, 30),
        (29, 31),
        (30, 32),
        (27, 31),
        (28, 32),
    ),
    left_right=(
        (1, 4),
        (2, 5),
        (3, 6),
        (7, 8),
        (9, 10),
        (11, 12),
        (13, 14),
        (15, 16),
        (17, 18),
        (19, 20),
        (21, 22),
        (23, 24),
        (25, 26),
        (27, 28),
        (29, 30),
        (31, 32),
    ),
)

#: Every known joint set by name.
JOINT_SETS: Mapping[str, Skeleton] = MappingProxyType(
    {s.name: s for s in (H36M17, COCO17, BLAZEPOSE33)}
)


def get_skeleton(name: str | Skeleton) -> Skeleton:
    """The joint set called ``name`` (a :class:`Skeleton` is returned as it is).

    Raises:
        CrossviewError: ``name`` is not a known joint set; the message lists the known names.
    """
    if isinstance(name, Skeleton):
        return name
    try:
        return JOINT_SETS[name]
    except (KeyError, TypeError):
        known = ", ".join(repr(n) for n in JOINT_SETS)
        raise CrossviewError(
            f"unknown joint set {name!r}: use one of {known}"
        ) from None


# Fractions along the mid-shoulders axis; see the module docstring for where they come from.
#: Spine position from mid-hips (0) to mid-shoulders (1), fitted on the CMU-derived data.
SPINE_FRACTION = 0.57
#: Neck position from mid-shoulders (0) to mid-ears (1).
NECK_FRACTION = 2.0 / 3.0
#: Head position beyond mid-ears, as a fraction of the mid-shoulders-to-mid-ears distance.
HEAD_EXTRAPOLATION = 0.25


def _mid(name: str, weight: float = 1.0) -> tuple[tuple[str, float], ...]:
    """``weight`` times the midpoint of ``left_<name>`` and ``right_<name>``."""
    return ((f"left_{name}", 0.5 * weight), (f"right_{name}", 0.5 * weight))


#: For each H36M-17 joint, ``(source joint name, weight)`` pairs. Source names are those shared
#: by COCO-17 and BlazePose-33.
H36M17_RECIPE: Mapping[str, tuple[tuple[str, float], ...]] = MappingProxyType(
    {
        "pelvis": _mid("hip"),
        "r_hip": (("right_hip", 1.0),),
        "r_knee": (("right_knee", 1.0),),
        "r_ankle": (("right_ankle", 1.0),),
        "l_hip": (("left_hip", 1.0),),
        "l_knee": (("left_knee", 1.0),),
        "l_ankle": (("left_ankle", 1.0),),
        "spine": _mid("hip", 1.0 - SPINE_FRACTION) + _mid("shoulder", SPINE_FRACTION),
        "thorax": _mid("shoulder"),
        "neck": _mid("shoulder", 1.0 - NECK_FRACTION) + _mid("ear", NECK_FRACTION),
        "head": _mid("ear", 1.0 + HEAD_EXTRAPOLATION) + _mid("shoulder", -HEAD_EXTRAPOLATION),
        "l_shoulder": (("left_shoulder", 1.0),),
        "l_elbow": (("left_elbow", 1.0),),
        "l_wrist": (("left_wrist", 1.0),),
        "r_shoulder": (("right_shoulder", 1.0),),
        "r_elbow": (("right_elbow", 1.0),),
        "r_wrist": (("right_wrist", 1.0),),
    }
)


def _build_weights(source: Skeleton) -> np.ndarray:
    """(17, J) float64 read-only weights of H36M-17 joints over ``source``'s joints."""
    weights = np.zeros((H36M17.num_joints, source.num_joints))
    for row, joint in enumerate(H36M17.joints):
        for name, weight in H36M17_RECIPE[joint]:
            weights[row, source.index(name)] += weight
    weights.setflags(write=False)
    return weights


_IDENTITY17 = np.eye(H36M17.num_joints)
_IDENTITY17.setflags(write=False)
_WEIGHTS: Mapping[str, np.ndarray] = MappingProxyType(
    {
        H36M17.name: _IDENTITY17,
        COCO17.name: _build_weights(COCO17),
        BLAZEPOSE33.name: _build_weights(BLAZEPOSE33),
    }
)


def _known_skeleton(joint_set: str | Skeleton) -> Skeleton:
    """The known skeleton named by ``joint_set``; a custom Skeleton has no mapping."""
    skeleton = get_skeleton(joint_set)
    if JOINT_SETS.get(skeleton.name) != skeleton:
        known = ", ".join(repr(n) for n in JOINT_SETS)
        raise CrossviewError(
            f"skeleton {skeleton.name!r} has no mapping to h36m17: use one of {known}"
        )
    return skeleton


def h36m17_weights(joint_set: str | Skeleton) -> np.ndarray:
    """Weights that make H36M-17 joints from ``joint_set``'s joints (see the module docstring).

    Returns:
        (17, J) float64, a fresh copy; row k holds the weights of H36M joint k over the J source
        joints and sums to 1. For ``"h36m17"`` it is the identity.
    """
    return _WEIGHTS[_known_skeleton(joint_set).name].copy()


def to_h36m17(
    keypoints: np.ndarray,
    confidence: np.ndarray | None,
    joint_set: str | Skeleton,
) -> tuple[np.ndarray, np.ndarray]:
    """Map 2D or 3D keypoints of any known joint set to H36M-17.

    Vectorised over any leading batch shape (frames, cameras, people). See the module docstring
    for the recipe, the missing-data rule and the 2D approximation.

    Args:
        keypoints: ``(..., J, D)`` with D = 2 (pixels) or 3 (millimetres); NaN where missing.
        confidence: ``(..., J)`` in [0, 1], or None to take every finite keypoint as sure (1).
        joint_set: name (``"coco17"``, ``"blazepose33"``, ``"h36m17"``) or known Skeleton.

    Returns:
        ``(kp, conf)``: kp ``(..., 17, D)`` in the input's units (float32 input stays float32),
        NaN where a source is missing; conf ``(..., 17)``, the minimum confidence of each
        joint's sources, 0 where missing.

    Raises:
        CrossviewError: unknown joint set. ShapeError: shapes that do not match it.
    """
    skeleton = _known_skeleton(joint_set)
    weights = _WEIGHTS[skeleton.name]
    num_src = skeleton.num_joints
    keypoints = np.asarray(keypoints)
    check_shape(
        "keypoints",
        keypoints,
        f"(..., {num_src}, D) with D = 2 or 3 for {skeleton.name}",
        keypoints.ndim >= 2 and keypoints.shape[-2] == num_src and keypoints.shape[-1] in (2, 3),
    )
    batch = keypoints.shape[:-2]
    if confidence is None:
        confidence = np.ones(batch + (num_src,), dtype=np.float32)
    confidence = np.asarray(confidence)
    check_shape(
        "confidence",
        confidence,
        f"{batch + (num_src,)} (keypoints' shape without its last axis)",
        confidence.shape == batch + (num_src,),
    )
    out_dtype = np.result_type(keypoints.dtype, np.float32)
    conf_dtype = np.result_type(confidence.dtype, np.float32)

    with np.errstate(invalid="ignore"):
        present = np.isfinite(keypoints).all(axis=-1) & (confidence > 0)  # (..., J)
    filled = np.where(present[..., None], keypoints, 0.0).astype(np.float64)  # (..., J, D)
    mapped = np.einsum("kj,...jd->...kd", weights, filled)  # (..., 17, D)
    src_conf = np.where(present, confidence, 0.0)  # (..., J), 0 where missing

    conf = np.empty(batch + (H36M17.num_joints,), dtype=np.float64)  # (..., 17)
    for row in range(H36M17.num_joints):
        sources = np.flatnonzero(weights[row])
        conf[..., row] = src_conf[..., sources].min(axis=-1)
    missing = conf <= 0
    mapped[missing] = np.nan
    conf[missing] = 0.0
    return mapped.astype(out_dtype, copy=False), conf.astype(conf_dtype, copy=False)


def bone_lengths(points: np.ndarray, skeleton: str | Skeleton) -> np.ndarray:
    """Length of every bone of ``skeleton``, in ``skeleton.bones`` order.

    Args:
        points: ``(..., J, 3)`` millimetres (``(..., J, 2)`` pixels also works); NaN where
            missing.
        skeleton: a Skeleton or the name of a known one.

    Returns:
        ``(..., B)`` float64 in the input's units, B = ``len(skeleton.bones)``; NaN where either
        end of the bone is missing.
    """
    skeleton = get_skeleton(skeleton)
    points = np.asarray(points, dtype=np.float64)
    check_shape(
        "points",
        points,
        f"(..., {skeleton.num_joints}, 3) for {skeleton.name}",
        points.ndim >= 2 and points.shape[-2] == skeleton.num_joints and points.shape[-1] in (2, 3),
    )
    bones = np.asarray(skeleton.bones, dtype=np.int64).reshape(-1, 2)  # (B, 2)
    vectors = points[..., bones[:, 1], :] - points[..., bones[:, 0], :]  # (..., B, D)
    return np.linalg.norm(vectors, axis=-1)
