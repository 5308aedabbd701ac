"""Skeleton definitions: joint names, bones and left/right pairs.

The project's 3D skeleton is Human3.6M's 17 joints (pelvis root). Left and right are the person's
own. Order::

    0 pelvis, 1 r_hip, 2 r_knee, 3 r_ankle, 4 l_hip, 5 l_knee, 6 l_ankle, 7 spine, 8 thorax,
    9 neck, 10 head, 11 l_shoulder, 12 l_elbow, 13 l_wrist, 14 r_shoulder, 15 r_elbow, 16 r_wrist
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
