"""BVH export with a rest pose, for animation tools (Blender, MotionBuilder, game engines).

Rest pose and axes. The rest (zero-rotation) pose is a T-pose in a Y-up frame, the character
facing +Z with its left along +X (the usual BVH convention): legs straight down, spine, neck and
head straight up, collar bones, upper arms and forearms straight out sideways. Positions are in
centimetres (``scale=0.1`` from millimetres). The take's Z-up world is rotated to Y up first
((x, y, z) -> (x, z, -y)). Bone lengths are the take's median lengths, so the skeleton is rigid;
the two hip offsets from the pelvis are the take's median pelvis triangle, expressed in the pelvis
frame (so the pelvis may sit above the hip line, as in the CMU-derived data).

Hierarchy (H36M-17 joints; ``lower_back`` and the collars are extra joints at zero offset, so
that each rotating joint aims exactly one bone and every joint position is reproduced)::

    pelvis (ROOT: Xposition Yposition Zposition Zrotation Xrotation Yrotation)
      l_hip - l_knee - End Site (l_ankle)          r_hip - r_knee - End Site (r_ankle)
      lower_back - spine - thorax - neck - End Site (head)
                            thorax - l_collar - l_shoulder - l_elbow - End Site (l_wrist)
                            thorax - r_collar - r_shoulder - r_elbow - End Site (r_wrist)

Every other joint has ``CHANNELS 3 Zrotation Xrotation Yrotation``: its local rotation is
``Rz @ Rx @ Ry`` (scipy's intrinsic "ZXY"), a child's position is
``p_parent + G_parent @ offset`` and ``G = G_parent @ R_local``.

Solving the rotations. Each joint's global rotation takes its rest bone direction onto the observed
one exactly; the twist about the bone comes from a secondary direction (Gram-Schmidt against the
bone):

- pelvis: the bone is the right-to-left hip vector; the secondary is the pelvis's offset above the
  hip midpoint when the take's pelvis sits off the hip line (> 20 mm), else pelvis -> spine;
- lower_back, spine, thorax, neck: the right-to-left shoulder vector (rest +X);
- collars: the thorax -> neck direction (rest +Y);
- hips, knees, shoulders, elbows: the normal of the limb's plane (upper x lower segment; rest
  +X for the legs, -Y / +Y for the left / right arm, i.e. knees and elbows bend forward from the
  rest pose). A nearly straight limb has no plane: below 25 degrees of bend the normal is blended
  into the parent's axis, which it becomes at 0.

Missing data: a joint whose bone (or the pelvis's hip vector) is unknown in a frame keeps its
last known local rotation (the first known one before any is seen); the root position likewise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from app.export.take_poses import TakePoses
from calibration.errors import CrossviewError
from calibration.files.atomic import write_bytes_atomic
from models.skeleton import H36M17

_J = {name: index for index, name in enumerate(H36M17.joints)}
_X, _Y = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
_PELVIS_OFF_HIP_LINE_MM = 20.0
_STRAIGHT_LIMB_DEG = 25.0


@dataclass(frozen=True, slots=True)
class BvhJoint:
    """One rotating BVH joint below the root.

    ``site`` is the H36M joint where it sits, ``aim`` the H36M joint its bone points to,
    ``rest_dir`` that bone's unit direction in the rest pose, ``secondary`` how its twist is found
    ("torso", "up", "leg" or "arm") and ``rest_secondary`` that direction in the rest pose.
    ``end_site`` is True when its aimed joint is a leaf (written as an End Site); ``limb`` holds
    the three H36M joints (root, middle, tip) of a limb whose plane gives the twist.
    """

    name: str
    parent: str
    site: int
    aim: int
    rest_dir: tuple[float, float, float]
    secondary: str
    rest_secondary: tuple[float, float, float]
    end_site: bool = False
    limb: tuple[int, int, int] | None = None


def _limb(side: str, names: tuple[str, str], sites: tuple[str, str, str], parent: str, rest_dir, secondary, rest_sec):
    upper, lower = names
    a, b, c = (_J[f"{side}_{s}"] for s in sites)
    return (
        BvhJoint(upper, parent, a, b, rest_dir, secondary, rest_sec, limb=(a, b, c)),
        BvhJoint(lower, upper, b, c, rest_dir, secondary, rest_sec, end_site=True, limb=(a, b, c)),
    )


DOWN, UP, LEFT, RIGHT = (0.0, -1.0, 0.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (-1.0, 0.0, 0.0)
BVH_JOINTS: tuple[BvhJoint, ...] = (
    *_limb("l", ("l_hip", "l_knee"), ("hip", "knee", "ankle"), "pelvis", DOWN, "leg", LEFT),
    *_limb("r", ("r_hip", "r_knee"), ("hip", "knee", "ankle"), "pelvis", DOWN, "leg", LEFT),
    BvhJoint("lower_back", "pelvis", _J["pelvis"], _J["spine"], UP, "torso", LEFT),
    BvhJoint("spine", "lower_back", _J["spine"], _J["thorax"], UP, "torso", LEFT),
    BvhJoint("thorax", "spine", _J["thorax"], _J["neck"], UP, "torso", LEFT),
    BvhJoint("neck", "thorax", _J["neck"], _J["head"], UP, "torso", LEFT, end_site=True),
    BvhJoint("l_collar", "thorax", _J["thorax"], _J["l_shoulder"], LEFT, "up", UP),
    *_limb("l", ("l_shoulder", "l_elbow"), ("shoulder", "elbow", "wrist"), "l_collar", LEFT, "arm", DOWN),
    BvhJoint("r_collar", "thorax", _J["thorax"], _J["r_shoulder"], RIGHT, "up", UP),
    *_limb("r", ("r_shoulder", "r_elbow"), ("shoulder", "elbow", "wrist"), "r_collar", RIGHT, "arm", UP),
)  # parents before children


def _unit(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> unit vectors; NaN where the norm is 0 or unknown."""
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 1e-9, v / norm, np.nan)


def _frame(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """(..., 3), (..., 3) -> (..., 3, 3) orthonormal frames, columns [primary, secondary', cross]."""
    a = _unit(primary)
    b = _unit(secondary - np.sum(secondary * a, axis=-1, keepdims=True) * a)
    return np.stack([a, b, np.cross(a, b)], axis=-1)


def _aim(primary: np.ndarray, secondary: np.ndarray, rest_primary, rest_secondary) -> np.ndarray:
    """Global rotations (T, 3, 3) taking the rest directions onto the observed (T, 3) ones.

    The primary direction is matched exactly, the secondary as closely as possible; NaN where the
    observed frame is undefined.
    """
    rest = _frame(np.asarray(rest_primary, float), np.asarray(rest_secondary, float))  # (3, 3)
    return _frame(primary, secondary) @ rest.T


def _hold(values: np.ndarray, valid: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Replace invalid rows of ``values (T, ...)`` by the last valid one (the first valid one before
    any); ``fill`` when no row is valid."""
    if not valid.any():
        return np.broadcast_to(fill, values.shape).copy()
    index = np.where(valid, np.arange(len(valid)), -1)
    index = np.maximum.accumulate(index)
    index[index < 0] = int(np.argmax(valid))
    return values[index]


def _median_length(points: np.ndarray, a: int, b: int) -> float:
    lengths = np.linalg.norm(points[:, b] - points[:, a], axis=-1)
    lengths = lengths[np.isfinite(lengths)]
    if len(lengths) == 0:
        raise CrossviewError(
            f"cannot build a BVH skeleton: the bone {H36M17.joints[a]}-{H36M17.joints[b]} is never seen in this take"
        )
    return float(np.median(lengths))


@dataclass(frozen=True, slots=True)
class BvhMotion:
    """A solved BVH animation (Y up, millimetres until written).

    Attributes:
        offsets: joint name -> (3,) mm offset from its parent in the rest pose (root: zeros).
        end_sites: joint name -> (3,) mm offset of its End Site.
        root_position: (T, 3) mm, the pelvis (Y up).
        local_rotations: joint name (root "pelvis" included) -> (T, 3, 3) local rotation matrices.
        fps: frames per second.
    """

    offsets: dict
    end_sites: dict
    root_position: np.ndarray
    local_rotations: dict
    fps: float


def solve_bvh(poses: TakePoses) -> BvhMotion:
    """Build the rest skeleton and solve each frame's joint rotations (see the module docstring).

    Args:
        poses: the take's joints, (T, 17, 3) mm; Z up unless ``poses.up_axis == "y"``.
    """
    points = poses.y_up().points  # (T, 17, 3) mm, Y up
    pelvis, l_hip, r_hip, spine = (points[:, _J[n]] for n in ("pelvis", "l_hip", "r_hip", "spine"))

    # Root: hip vector exactly, twist from the pelvis's offset above the hip line (or the spine).
    off_line = np.linalg.norm(pelvis - (l_hip + r_hip) / 2, axis=-1)
    off_line = off_line[np.isfinite(off_line)]
    if len(off_line) and np.median(off_line) > _PELVIS_OFF_HIP_LINE_MM:
        root_secondary = pelvis - (l_hip + r_hip) / 2
    else:
        root_secondary = spine - pelvis
    global_rot = {"pelvis": _aim(l_hip - r_hip, root_secondary, _X, _Y)}  # (T, 3, 3)
    root_valid = np.isfinite(global_rot["pelvis"]).all(axis=(1, 2)) & np.isfinite(pelvis).all(axis=1)
    if not root_valid.any():
        raise CrossviewError("cannot write a BVH: the pelvis and both hips are never seen together in this take")
    global_rot["pelvis"] = _hold(global_rot["pelvis"], root_valid, np.eye(3))
    local = {"pelvis": global_rot["pelvis"]}
    root_position = _hold(pelvis, root_valid, np.zeros(3))

    offsets = {"pelvis": np.zeros(3)}
    for side, hip in (("l", l_hip), ("r", r_hip)):
        in_pelvis = np.einsum("tji,tj->ti", global_rot["pelvis"], hip - pelvis)[root_valid]  # (T', 3)
        in_pelvis = in_pelvis[np.isfinite(in_pelvis).all(axis=1)]
        if len(in_pelvis) == 0:
            raise CrossviewError(f"cannot build a BVH skeleton: the {side}_hip is never seen in this take")
        offsets[f"{side}_hip"] = np.median(in_pelvis, axis=0)
    end_sites = {}

    by_name = {joint.name: joint for joint in BVH_JOINTS}
    shoulders = points[:, _J["l_shoulder"]] - points[:, _J["r_shoulder"]]
    neck_up = points[:, _J["neck"]] - points[:, _J["thorax"]]
    for joint in BVH_JOINTS:
        parent_rot = global_rot[joint.parent]
        length = _median_length(points, joint.site, joint.aim)
        if joint.name not in offsets:
            parent = by_name.get(joint.parent)
            if parent is not None and parent.aim == joint.site:
                offsets[joint.name] = np.asarray(parent.rest_dir) * _median_length(points, parent.site, joint.site)
            else:
                offsets[joint.name] = np.zeros(3)  # an extra joint at its parent's place
        if joint.end_site:
            end_sites[joint.name] = np.asarray(joint.rest_dir) * length
        fallback = parent_rot @ np.asarray(joint.rest_secondary)  # (T, 3) the parent's axis
        bone = points[:, joint.aim] - points[:, joint.site]
        if joint.secondary == "torso":
            secondary = shoulders
        elif joint.secondary == "up":
            secondary = neck_up
        else:  # a limb: the normal of its plane, blended into the parent's axis when nearly straight
            a, b, c = joint.limb
            upper, lower = points[:, b] - points[:, a], points[:, c] - points[:, b]
            normal = np.cross(upper, lower)
            with np.errstate(invalid="ignore", divide="ignore"):
                sine = np.linalg.norm(normal, axis=-1) / (np.linalg.norm(upper, axis=-1) * np.linalg.norm(lower, axis=-1))
            weight = np.clip(np.nan_to_num(sine) / np.sin(np.radians(_STRAIGHT_LIMB_DEG)), 0.0, 1.0)[:, None]
            secondary = weight * np.nan_to_num(_unit(normal)) + (1.0 - weight) * fallback
        secondary = np.where(np.isfinite(secondary).all(axis=1, keepdims=True), secondary, fallback)
        observed = _aim(bone, secondary, joint.rest_dir, joint.rest_secondary)  # (T, 3, 3)
        relative = np.swapaxes(parent_rot, 1, 2) @ observed
        valid = np.isfinite(relative).all(axis=(1, 2))
        local[joint.name] = _hold(relative, valid, np.eye(3))
        global_rot[joint.name] = parent_rot @ local[joint.name]
    return BvhMotion(offsets, end_sites, root_position, local, poses.fps)


def _euler_zxy_deg(rotations: np.ndarray) -> np.ndarray:
    """(T, 3, 3) -> (T, 3) degrees [Z, X, Y] with R = Rz @ Rx @ Ry, unwrapped over time."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gimbal lock")  # still a valid decomposition
        angles = Rotation.from_matrix(rotations).as_euler("ZXY", degrees=True)
    angles = np.unwrap(angles, period=360.0, axis=0)
    return angles - 360.0 * np.round(angles.mean(axis=0) / 360.0)  # each channel centred near [-180, 180]


def bvh_text(motion: BvhMotion, *, scale: float = 0.1) -> str:
    """The BVH file's text; lengths are multiplied by ``scale`` (0.1: mm -> cm)."""
    children: dict[str, list[BvhJoint]] = {}
    for joint in BVH_JOINTS:
        children.setdefault(joint.parent, []).append(joint)
    lines: list[str] = ["HIERARCHY", "ROOT pelvis", "{"]
    order = ["pelvis"]

    def vec(v) -> str:
        return " ".join(f"{x * scale:.4f}" for x in v)

    lines += ["\tOFFSET 0.0000 0.0000 0.0000",
              "\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"]  # fmt: skip

    def write(joint: BvhJoint, depth: int) -> None:
        pad = "\t" * depth
        order.append(joint.name)
        lines.extend([f"{pad}JOINT {joint.name}", f"{pad}{{", f"{pad}\tOFFSET {vec(motion.offsets[joint.name])}",
                      f"{pad}\tCHANNELS 3 Zrotation Xrotation Yrotation"])  # fmt: skip
        for child in children.get(joint.name, []):
            write(child, depth + 1)
        if joint.end_site:
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {vec(motion.end_sites[joint.name])}",
                          f"{pad}\t}}"])  # fmt: skip
        lines.append(f"{pad}}}")

    for child in children["pelvis"]:
        write(child, 1)
    lines.append("}")
    count = len(motion.root_position)
    columns = [motion.root_position * scale] + [_euler_zxy_deg(motion.local_rotations[name]) for name in order]
    table = np.concatenate(columns, axis=1)  # (T, 6 + 3 * joints)
    lines += ["MOTION", f"Frames: {count}", f"Frame Time: {1.0 / motion.fps:.8f}"]
    lines += [" ".join(f"{v:.4f}" for v in row) for row in table]
    return "\n".join(lines) + "\n"


def write_bvh(poses: TakePoses, path: str | Path, *, scale: float = 0.1) -> Path:
    """Solve and write the poses as BVH (atomically); returns the path. ``scale`` 0.1 = centimetres."""
    return write_bytes_atomic(path, bvh_text(solve_bvh(poses), scale=scale).encode())
