"""A jointed body for procedural motion on the H36M-17 skeleton: sizes, joint rotations, kinematics.

World frame: right-handed, Z up, millimetres; the floor is ``z = 0``. At heading (yaw) 0 a person
faces +Y and their right is +X; a positive heading turns them to the left (counter-clockwise seen
from above): facing ``(-sin h, cos h)``, right hand side ``(cos h, sin h)``. Left/right are the
person's own; joints are in H36M-17 order (:data:`models.skeleton.H36M17`). Angles are radians.

The body is a tree rooted at the pelvis. At zero angles every segment is vertical: spine, neck and
head point up, thighs, shanks and arms hang down; each hip sits ``hip_half_width_mm`` beside and
``hip_drop_mm`` below the pelvis, each shoulder likewise beside and below the thorax. Joint
rotations (:class:`JointAngles`), each in its parent segment's frame:

- pelvis ``(yaw, tilt, roll)``: world rotation ``Rz(yaw) Rx(-tilt) Ry(roll)``; tilt > 0 leans
  forward, roll > 0 drops the right hip.
- lumbar (at the pelvis), thoracic (at the spine joint), neck (at the thorax), head (at the neck)
  ``(flexion, lateral bend, twist)``: ``Rx(-flex) Ry(bend) Rz(twist)``; flexion > 0 bends forward,
  bend > 0 towards the right, twist > 0 turns to the left.
- hips, shoulders ``(flexion, abduction, internal rotation)``: right ``Rx(flex) Ry(-abd) Rz(rot)``,
  left mirrored ``Rx(flex) Ry(abd) Rz(-rot)``; flexion > 0 swings the limb forward, abduction > 0
  away from the midline.
- knees: flexion > 0 swings the shank back (``Rx(-flex)``); elbows: flexion > 0 swings the forearm
  forward (``Rx(flex)``). The ankle is a leaf of H36M-17, so foot rotation moves no joint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import numpy as np

from calibration.errors import check_shape
from models.skeleton import H36M17

SIDES = ("left", "right")
"""Side index order of :class:`JointAngles` limb arrays."""
SIDE_SIGN = (-1.0, 1.0)  # x of each side at heading 0
LEGS = ((4, 5, 6), (1, 2, 3))  # (hip, knee, ankle) joint indices, left then right
ARMS = ((11, 12, 13), (14, 15, 16))  # (shoulder, elbow, wrist)

_DEFAULT_HEIGHT_MM = 1750.0
# Segment sizes as fractions of stature, after Winter's anthropometric table (Biomechanics and Motor
# Control of Human Movement, 2009: knee height 0.285, hip 0.530, shoulder 0.818, elbow 0.630, wrist
# 0.485 of H) for the joint centres H36M-17 marks. Versus the median H36M-17 bones of the CMU capture
# in ../shared/data (mm): thigh 428 (ours 429), shank 409 (431), pelvis-hip 141 (125), thorax-shoulder
# 192-214 (198), upper arm 279 (301), forearm 190 (256: CMU forearms are short), pelvis-thorax 320 (403).
_FRACTIONS = {
    "ankle_height_mm": 0.040, "shank_mm": 0.246, "thigh_mm": 0.245, "hip_half_width_mm": 0.051,
    "hip_drop_mm": 0.050, "spine_mm": 0.100, "chest_mm": 0.130, "neck_mm": 0.075, "head_mm": 0.070,
    "shoulder_half_width_mm": 0.110, "shoulder_drop_mm": 0.025, "upper_arm_mm": 0.172,
    "forearm_mm": 0.146, "ankle_to_toe_mm": 0.110, "ankle_to_heel_mm": 0.030,
}  # fmt: skip


def _default(name: str) -> float:
    return _FRACTIONS[name] * _DEFAULT_HEIGHT_MM


@dataclass(frozen=True, slots=True)
class BodyShape:
    """Segment sizes in millimetres; the defaults are an adult of 1.75 m (see :meth:`for_height`).

    Attributes:
        height_mm: stature (floor to the top of the head).
        ankle_height_mm: ankle joint centre above the floor when standing flat.
        shank_mm, thigh_mm: knee-ankle and hip-knee bones.
        hip_half_width_mm, hip_drop_mm: each hip joint beside / below the pelvis joint.
        spine_mm, chest_mm, neck_mm, head_mm: pelvis-spine, spine-thorax, thorax-neck, neck-head bones
            (the H36M ``head`` joint is near the forehead, about 80 mm below the top of the head).
        shoulder_half_width_mm, shoulder_drop_mm: each shoulder joint beside / below the thorax.
        upper_arm_mm, forearm_mm: shoulder-elbow and elbow-wrist bones.
        ankle_to_toe_mm, ankle_to_heel_mm: ankle to the toe tip / the back of the heel along the floor
            (the pivots of a step's toe-off and heel strike; not joints).
    """

    height_mm: float = _DEFAULT_HEIGHT_MM
    ankle_height_mm: float = _default("ankle_height_mm")
    shank_mm: float = _default("shank_mm")
    thigh_mm: float = _default("thigh_mm")
    hip_half_width_mm: float = _default("hip_half_width_mm")
    hip_drop_mm: float = _default("hip_drop_mm")
    spine_mm: float = _default("spine_mm")
    chest_mm: float = _default("chest_mm")
    neck_mm: float = _default("neck_mm")
    head_mm: float = _default("head_mm")
    shoulder_half_width_mm: float = _default("shoulder_half_width_mm")
    shoulder_drop_mm: float = _default("shoulder_drop_mm")
    upper_arm_mm: float = _default("upper_arm_mm")
    forearm_mm: float = _default("forearm_mm")
    ankle_to_toe_mm: float = _default("ankle_to_toe_mm")
    ankle_to_heel_mm: float = _default("ankle_to_heel_mm")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = float(getattr(self, f.name))
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"BodyShape.{f.name} must be a positive number of mm, got {value!r}")
            object.__setattr__(self, f.name, value)

    @classmethod
    def for_height(cls, height_mm: float) -> BodyShape:
        """A body of stature ``height_mm`` with every segment scaled in the default proportions."""
        return cls(height_mm=height_mm, **{k: v * height_mm for k, v in _FRACTIONS.items()})

    @property
    def bone_lengths_mm(self) -> np.ndarray:
        """(16,) float64 mm, one per bone of ``H36M17.bones`` in that order."""
        hip = np.hypot(self.hip_half_width_mm, self.hip_drop_mm)
        shoulder = np.hypot(self.shoulder_half_width_mm, self.shoulder_drop_mm)
        leg, arm = [hip, self.thigh_mm, self.shank_mm], [shoulder, self.upper_arm_mm, self.forearm_mm]
        return np.array(leg + leg + [self.spine_mm, self.chest_mm, self.neck_mm, self.head_mm] + arm + arm)

    def leg_length_mm(self, knee_flexion_rad: float = 0.0) -> float:
        """Hip-to-ankle distance with the knee bent by ``knee_flexion_rad``."""
        t, s = self.thigh_mm, self.shank_mm
        return float(np.sqrt(t * t + s * s + 2 * t * s * np.cos(knee_flexion_rad)))

    @property
    def standing_pelvis_z_mm(self) -> float:
        """Pelvis height of the relaxed stance (ankles under the hips, knees soft at 5 degrees)."""
        return self.ankle_height_mm + self.leg_length_mm(np.radians(5.0)) + self.hip_drop_mm


_ANGLE_SHAPES = {
    "pelvis_mm": (3,), "pelvis_rad": (3,), "lumbar_rad": (3,), "thoracic_rad": (3,), "neck_rad": (3,),
    "head_rad": (3,), "hip_rad": (2, 3), "knee_rad": (2,), "shoulder_rad": (2, 3), "elbow_rad": (2,),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class JointAngles:
    """Joint rotations for T frames (conventions in the module docstring); limb arrays are indexed
    by side, 0 = left and 1 = right (:data:`SIDES`).

    Attributes:
        pelvis_mm: (T, 3) pelvis joint position, world mm.
        pelvis_rad: (T, 3) yaw, forward tilt, roll.
        lumbar_rad, thoracic_rad, neck_rad, head_rad: (T, 3) flexion, lateral bend, twist.
        hip_rad, shoulder_rad: (T, 2, 3) flexion, abduction, internal rotation.
        knee_rad, elbow_rad: (T, 2) flexion.
    """

    pelvis_mm: np.ndarray
    pelvis_rad: np.ndarray
    lumbar_rad: np.ndarray
    thoracic_rad: np.ndarray
    neck_rad: np.ndarray
    head_rad: np.ndarray
    hip_rad: np.ndarray
    knee_rad: np.ndarray
    shoulder_rad: np.ndarray
    elbow_rad: np.ndarray

    def __post_init__(self) -> None:
        num_frames = np.shape(self.pelvis_mm)[0] if np.ndim(self.pelvis_mm) == 2 else 0
        for name, tail in _ANGLE_SHAPES.items():
            array = np.array(getattr(self, name), dtype=np.float64)
            expected = "(T, " + ", ".join(map(str, tail)) + ")"
            check_shape(name, array, expected, num_frames > 0 and array.shape == (num_frames, *tail))
            object.__setattr__(self, name, array)

    @classmethod
    def zeros(cls, num_frames: int) -> JointAngles:
        """All joints at zero for ``num_frames`` frames, the pelvis at the world origin."""
        return cls(**{name: np.zeros((num_frames, *tail)) for name, tail in _ANGLE_SHAPES.items()})

    @property
    def num_frames(self) -> int:
        return self.pelvis_mm.shape[0]

    def as_dict(self) -> dict[str, np.ndarray]:
        """Copies of the arrays by field name, to edit and pass back as ``JointAngles(**d)``."""
        return {name: getattr(self, name).copy() for name in _ANGLE_SHAPES}


def rotation_x(angle) -> np.ndarray:
    """(..., 3, 3) rotations about X by ``angle (...)`` rad."""
    c, s, z, o = np.cos(angle), np.sin(angle), np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rotation_y(angle) -> np.ndarray:
    """(..., 3, 3) rotations about Y by ``angle (...)`` rad."""
    c, s, z, o = np.cos(angle), np.sin(angle), np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rotation_z(angle) -> np.ndarray:
    """(..., 3, 3) rotations about Z by ``angle (...)`` rad."""
    c, s, z, o = np.cos(angle), np.sin(angle), np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _apply(rotation: np.ndarray, vector) -> np.ndarray:
    """(..., 3, 3) @ (..., 3) -> (..., 3)."""
    return np.einsum("...ij,...j->...i", rotation, np.asarray(vector, dtype=np.float64))


def _limb_rotation(angles: np.ndarray, sign: float) -> np.ndarray:
    return rotation_x(angles[:, 0]) @ rotation_y(-sign * angles[:, 1]) @ rotation_z(sign * angles[:, 2])


def _trunk_rotation(angles: np.ndarray) -> np.ndarray:
    return rotation_x(-angles[:, 0]) @ rotation_y(angles[:, 1]) @ rotation_z(angles[:, 2])


def forward_kinematics_frames(
    angles: JointAngles, shape: BodyShape
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint positions and the pelvis and chest orientations.

    Returns:
        points (T, 17, 3) float64 mm; ``R_world_from_pelvis`` and ``R_world_from_chest`` (T, 3, 3).
    """
    a, s = angles, shape
    p = np.empty((a.num_frames, 17, 3))
    yaw, tilt, roll = a.pelvis_rad.T
    r_pelvis = rotation_z(yaw) @ rotation_x(-tilt) @ rotation_y(roll)
    p[:, 0] = a.pelvis_mm
    for side, (hip, knee, ankle) in enumerate(LEGS):
        sign = SIDE_SIGN[side]
        p[:, hip] = p[:, 0] + _apply(r_pelvis, [sign * s.hip_half_width_mm, 0.0, -s.hip_drop_mm])
        r_thigh = r_pelvis @ _limb_rotation(a.hip_rad[:, side], sign)
        p[:, knee] = p[:, hip] + _apply(r_thigh, [0.0, 0.0, -s.thigh_mm])
        r_shank = r_thigh @ rotation_x(-a.knee_rad[:, side])
        p[:, ankle] = p[:, knee] + _apply(r_shank, [0.0, 0.0, -s.shank_mm])
    r_lumbar = r_pelvis @ _trunk_rotation(a.lumbar_rad)
    p[:, 7] = p[:, 0] + _apply(r_lumbar, [0.0, 0.0, s.spine_mm])
    r_chest = r_lumbar @ _trunk_rotation(a.thoracic_rad)
    p[:, 8] = p[:, 7] + _apply(r_chest, [0.0, 0.0, s.chest_mm])
    r_neck = r_chest @ _trunk_rotation(a.neck_rad)
    p[:, 9] = p[:, 8] + _apply(r_neck, [0.0, 0.0, s.neck_mm])
    p[:, 10] = p[:, 9] + _apply(r_neck @ _trunk_rotation(a.head_rad), [0.0, 0.0, s.head_mm])
    for side, (shoulder, elbow, wrist) in enumerate(ARMS):
        sign = SIDE_SIGN[side]
        offset = [sign * s.shoulder_half_width_mm, 0.0, -s.shoulder_drop_mm]
        p[:, shoulder] = p[:, 8] + _apply(r_chest, offset)
        r_upper = r_chest @ _limb_rotation(a.shoulder_rad[:, side], sign)
        p[:, elbow] = p[:, shoulder] + _apply(r_upper, [0.0, 0.0, -s.upper_arm_mm])
        r_fore = r_upper @ rotation_x(a.elbow_rad[:, side])
        p[:, wrist] = p[:, elbow] + _apply(r_fore, [0.0, 0.0, -s.forearm_mm])
    return p, r_pelvis, r_chest


def forward_kinematics(angles: JointAngles, shape: BodyShape | None = None) -> np.ndarray:
    """Joint positions from joint rotations.

    Args:
        angles: T frames of joint rotations.
        shape: segment sizes; default ``BodyShape()``.

    Returns:
        points (T, 17, 3) float64 mm, world frame, H36M-17 order.
    """
    return forward_kinematics_frames(angles, shape or BodyShape())[0]


def _hinge_ik(local: np.ndarray, upper: float, lower: float, bend: float):
    """Two-bone IK with no internal rotation, in the parent frame (right side's convention).

    ``local (N, 3)`` is root-to-end; ``bend`` is -1 for a knee (the lower bone swings back), +1 for
    an elbow. An end out of reach gets the straight (or fully bent) limb pointing at it.
    Returns flexion in [-pi/2, 3pi/2), abduction, hinge flexion, each (N,) rad.
    """
    dist = np.linalg.norm(local, axis=-1)
    reach = np.clip(dist, abs(upper - lower) + 1e-6, upper + lower)
    hinge = np.arccos(np.clip((reach**2 - upper**2 - lower**2) / (2 * upper * lower), -1.0, 1.0))
    wy, wz = bend * lower * np.sin(hinge), -(upper + lower * np.cos(hinge))  # the end in the limb frame
    norm = np.hypot(wy, wz)
    wy, wz = wy / norm, wz / norm
    d = local / np.maximum(dist, 1e-9)[:, None]
    # Rx(flex) Ry(-abd) (0, wy, wz) = d: abduction matches x, flexion turns (y, z) onto d's
    abduction = np.arcsin(np.clip(d[:, 0] / -wz, -1.0, 1.0))
    flexion = np.arctan2(d[:, 2], d[:, 1]) - np.arctan2(np.cos(abduction) * wz, wy)
    return (flexion + np.pi / 2) % (2 * np.pi) - np.pi / 2, abduction, hinge


def solve_legs(angles: JointAngles, ankles_mm: np.ndarray, shape: BodyShape) -> JointAngles:
    """The same angles with the hips and knees set so the ankles reach ``ankles_mm``.

    Args:
        angles: T frames; everything but ``hip_rad`` and ``knee_rad`` is kept.
        ankles_mm: (T, 2, 3) left and right ankle targets, world mm. A target out of reach gets the
            straight leg pointing at it (the ankle then stops short, above the target).
        shape: segment sizes.

    Returns:
        JointAngles with hip internal rotation 0: the knee bends in the leg's flexion plane, so a
        target far out to the side of a deeply bent leg (lateral offset beyond the cosine of the
        thigh-to-target angle) is met only approximately; every motion here stays inside that range.
    """
    ankles_mm = np.asarray(ankles_mm, dtype=np.float64)
    check_shape("ankles_mm", ankles_mm, "(T, 2, 3)", ankles_mm.shape == (angles.num_frames, 2, 3))
    points, r_pelvis, _ = forward_kinematics_frames(angles, shape)
    hips, knees = angles.hip_rad.copy(), angles.knee_rad.copy()
    for side, (hip, _, _) in enumerate(LEGS):
        local = np.einsum("tji,tj->ti", r_pelvis, ankles_mm[:, side] - points[:, hip])
        local[:, 0] *= SIDE_SIGN[side]  # mirror the left leg onto the right's convention
        flexion, abduction, knees[:, side] = _hinge_ik(local, shape.thigh_mm, shape.shank_mm, -1.0)
        hips[:, side] = np.stack([flexion, abduction, np.zeros_like(flexion)], -1)
    return dataclasses.replace(angles, hip_rad=hips, knee_rad=knees)


def solve_arm(angles: JointAngles, side: int, wrists_mm: np.ndarray, shape: BodyShape) -> JointAngles:
    """The same angles with the ``side`` (0 left, 1 right) shoulder and elbow set so the wrist
    reaches ``wrists_mm (T, 3)`` world mm (shoulder internal rotation 0; out of reach: arm straight)."""
    wrists_mm = np.asarray(wrists_mm, dtype=np.float64)
    check_shape("wrists_mm", wrists_mm, "(T, 3)", wrists_mm.shape == (angles.num_frames, 3))
    points, _, r_chest = forward_kinematics_frames(angles, shape)
    local = np.einsum("tji,tj->ti", r_chest, wrists_mm - points[:, ARMS[side][0]])
    local[:, 0] *= SIDE_SIGN[side]
    flexion, abduction, elbow = _hinge_ik(local, shape.upper_arm_mm, shape.forearm_mm, 1.0)
    shoulders, elbows = angles.shoulder_rad.copy(), angles.elbow_rad.copy()
    shoulders[:, side] = np.stack([flexion, abduction, np.zeros_like(flexion)], -1)
    elbows[:, side] = elbow
    return dataclasses.replace(angles, shoulder_rad=shoulders, elbow_rad=elbows)


def _two_bone(root, target, pole, upper: float, lower: float):
    """Middle and end joints (N, 3) of a limb from ``root`` towards ``target``, bending towards ``pole``."""
    v = target - root
    dist = np.linalg.norm(v, axis=-1, keepdims=True)
    u = v / np.maximum(dist, 1e-9)
    dist = np.clip(dist, abs(upper - lower) + 1e-6, upper + lower)
    along = (upper**2 - lower**2 + dist**2) / (2 * dist)
    side = pole - root
    side -= np.sum(side * u, axis=-1, keepdims=True) * u
    fallback = np.cross(u, [0.0, 0.0, 1.0]) + 1e-3 * np.cross(u, [1.0, 0.0, 0.0])  # pole on the line
    side = np.where(np.linalg.norm(side, axis=-1, keepdims=True) > 1e-6, side, fallback)
    side /= np.linalg.norm(side, axis=-1, keepdims=True)
    middle = root + along * u + np.sqrt(np.maximum(upper**2 - along**2, 0.0)) * side
    return middle, root + dist * u


def restore_bone_lengths(points: np.ndarray, lengths_mm: np.ndarray) -> np.ndarray:
    """Poses with every bone set back to its length, e.g. after averaging two poses.

    The pelvis stays; trunk, hip and shoulder bones keep their directions; each limb is re-solved
    from its (moved) root towards its end joint, bending towards its middle joint, so ankles and
    wrists stay where they were whenever they are within reach.

    Args:
        points: (N, 17, 3) mm.
        lengths_mm: (16,) mm in ``H36M17.bones`` order.

    Returns:
        (N, 17, 3) float64 mm.
    """
    points = np.asarray(points, dtype=np.float64)
    check_shape("points", points, "(N, 17, 3)", points.ndim == 3 and points.shape[1:] == (17, 3))
    check_shape("lengths_mm", lengths_mm, "(16,)", np.shape(lengths_mm) == (len(H36M17.bones),))
    out = points.copy()
    length = {child: float(lengths_mm[i]) for i, (_, child) in enumerate(H36M17.bones)}
    for parent, child in H36M17.bones:
        if child in (2, 5, 12, 15):  # knee or elbow: solve the limb down to its ankle or wrist
            out[:, child], out[:, child + 1] = _two_bone(
                out[:, parent], points[:, child + 1], points[:, child], length[child], length[child + 1]
            )
        elif child not in (3, 6, 13, 16):
            v = points[:, child] - points[:, parent]
            out[:, child] = out[:, parent] + length[child] * v / np.linalg.norm(v, axis=-1, keepdims=True)
    return out
