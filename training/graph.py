"""The CV-UGCN graph: V views x J joints, five kinds of neighbours, and the pooling into body parts.

Seed 000 (CV-UGCN) classifies the neighbours of node ``(view v, joint j)`` into five kinds, each
with its own adjacency ``A_k`` normalised as ``D_k^-1/2 A_k D_k^-1/2`` and its own weights:

0. ``self``      - the node itself (``A = I``).
1. ``bone``      - joints one bone away in the same view.
2. ``two_hop``   - joints exactly two bones away in the same view (not the node, not its bone
   neighbours).
3. ``symmetric`` - the mirror joint (left <-> right) in the same view. Midline joints (pelvis,
   spine, thorax, neck, head) have no mirror: their row is zero (a degree of 0 gets
   ``D^-1/2 = 0``), so this kind adds nothing to them.
4. ``view``      - the same joint in every *other* view. With V views its degree is V - 1, so the
   normalised block is ``(1 / (V - 1)) (ones(V, V) - I) kron I_J``: the mean over the other views.

The first four kinds are block-diagonal over views with the same ``J x J`` block for every view,
and the fifth is the mean over the other views. :class:`SkeletonGraph` stores the four ``J x J``
blocks; the network applies the view kind as a mean over the view axis, so one model serves any
number of views >= 2 without a ``VJ x VJ`` matrix (and the exported ONNX has a dynamic view axis).
:func:`multiview_adjacency` builds the explicit ``(5, VJ, VJ)`` matrices for tests and figures.

Pooling (the U of the U-shaped GCN). Joints are merged into groups twice, H36M-17 -> 10 -> 5:

====  ================  =========================================
10    group             joints (H36M-17 indices)
====  ================  =========================================
0     lower torso       pelvis 0, spine 7
1     upper torso/head  thorax 8, neck 9, head 10
2     right thigh       r_hip 1, r_knee 2
3     right foot        r_ankle 3
4     left thigh        l_hip 4, l_knee 5
5     left foot         l_ankle 6
6     left upper arm    l_shoulder 11, l_elbow 12
7     left hand         l_wrist 13
8     right upper arm   r_shoulder 14, r_elbow 15
9     right hand        r_wrist 16
====  ================  =========================================

and the ten groups into five parts: torso/head {0, 1}, right leg {2, 3}, left leg {4, 5}, left arm
{6, 7}, right arm {8, 9}. Pooling averages the members' features; upsampling copies a group's
features back to each member. A coarse level's graph is derived from the finer one: two groups are
bone neighbours when a bone joins their members, two-hop neighbours when they are two such steps
apart, and mirror groups when the mirror of one's members are the other's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.errors import CrossviewError
from models.skeleton import H36M17, Skeleton

#: Names of the neighbour kinds, in the order of the adjacency stacks.
KINDS = ("self", "bone", "two_hop", "symmetric", "view")
#: Kinds used by the single-view (S-GCN) units: all but ``view``.
SPATIAL_KINDS = KINDS[:4]

#: H36M-17 joints -> 10 groups (see the module docstring).
H36M17_GROUPS_10: tuple[tuple[int, ...], ...] = (
    (0, 7), (8, 9, 10), (1, 2), (3,), (4, 5), (6,), (11, 12), (13,), (14, 15), (16,),
)
#: 10 groups -> 5 body parts: torso/head, right leg, left leg, left arm, right arm.
H36M17_PARTS_5: tuple[tuple[int, ...], ...] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


def normalize_adjacency(adjacency: np.ndarray) -> np.ndarray:
    """``D^-1/2 A D^-1/2`` of a symmetric ``(N, N)`` adjacency; rows of degree 0 stay zero."""
    adjacency = np.asarray(adjacency, dtype=np.float64)
    degree = adjacency.sum(axis=1)
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(degree), 0.0)
    return inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]


def _hops(bone: np.ndarray) -> np.ndarray:
    """``(N, N)`` 0/1 matrix of node pairs exactly two bone steps apart."""
    n = bone.shape[0]
    reach2 = (bone @ bone) > 0
    return (reach2 & ~(bone > 0) & ~np.eye(n, dtype=bool)).astype(np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class SkeletonGraph:
    """The per-view graph of one level of the U: ``(4, N, N)`` normalised spatial adjacencies.

    Attributes:
        num_nodes: N, joints (or joint groups at a pooled level).
        bone: ``(N, N)`` 0/1 symmetric bone-neighbour matrix (no self loops).
        mirror: ``(N, N)`` 0/1 symmetric left/right matrix.
        spatial: ``(4, N, N)`` normalised adjacencies of the kinds ``self``, ``bone``, ``two_hop``,
            ``symmetric`` (read-only).
    """

    num_nodes: int
    bone: np.ndarray
    mirror: np.ndarray
    spatial: np.ndarray

    @classmethod
    def from_pairs(cls, num_nodes: int, bones, mirrors) -> "SkeletonGraph":
        """A graph from ``bones`` and ``mirrors``, sequences of ``(a, b)`` node index pairs."""
        bone = np.zeros((num_nodes, num_nodes))
        mirror = np.zeros((num_nodes, num_nodes))
        for matrix, pairs in ((bone, bones), (mirror, mirrors)):
            for a, b in pairs:
                if a == b or not (0 <= a < num_nodes and 0 <= b < num_nodes):
                    raise CrossviewError(f"graph pair ({a}, {b}) is not two distinct nodes of 0..{num_nodes - 1}")
                matrix[a, b] = matrix[b, a] = 1.0
        spatial = np.stack([np.eye(num_nodes), normalize_adjacency(bone),
                            normalize_adjacency(_hops(bone)), normalize_adjacency(mirror)])
        for array in (bone, mirror, spatial):
            array.setflags(write=False)
        return cls(num_nodes, bone, mirror, spatial)

    @classmethod
    def from_skeleton(cls, skeleton: Skeleton = H36M17) -> "SkeletonGraph":
        return cls.from_pairs(skeleton.num_joints, skeleton.bones, skeleton.left_right)

    def pooled(self, groups) -> "SkeletonGraph":
        """The graph of ``groups`` (a sequence of node-index tuples covering every node once)."""
        membership = pooling_matrix(groups, self.num_nodes)  # (G, N), rows sum to 1
        binary = (membership > 0).astype(np.float64)
        linked = binary @ self.bone @ binary.T  # (G, G) bones between groups
        mirrored = binary @ self.mirror @ binary.T
        G = len(groups)
        bones = [(a, b) for a in range(G) for b in range(a + 1, G) if linked[a, b] > 0]
        mirrors = [(a, b) for a in range(G) for b in range(a + 1, G) if mirrored[a, b] > 0]
        return SkeletonGraph.from_pairs(G, bones, mirrors)


def pooling_matrix(groups, num_nodes: int) -> np.ndarray:
    """``(G, N)`` averaging matrix: row g is ``1 / |group g|`` on its members.

    Raises:
        CrossviewError: the groups do not cover every node exactly once.
    """
    matrix = np.zeros((len(groups), num_nodes))
    for g, members in enumerate(groups):
        for node in members:
            matrix[g, node] = 1.0 / len(members)
    counts = (matrix > 0).sum(axis=0)
    if not np.all(counts == 1):
        raise CrossviewError(f"pooling groups must cover each of the {num_nodes} nodes exactly once; "
                             f"node counts {counts.tolist()}")
    return matrix


def unet_levels(skeleton: Skeleton = H36M17, groups=(H36M17_GROUPS_10, H36M17_PARTS_5)):
    """The graphs of the U's levels and the pooling matrices between them.

    Returns:
        ``(graphs, pools)``: ``graphs[0]`` is the joint graph, ``graphs[i + 1]`` the graph after
        ``pools[i]`` (``(G_{i+1}, G_i)`` averaging matrix).
    """
    graphs = [SkeletonGraph.from_skeleton(skeleton)]
    pools = []
    for grouping in groups:
        pools.append(pooling_matrix(grouping, graphs[-1].num_nodes))
        graphs.append(graphs[-1].pooled(grouping))
    return graphs, pools


def multiview_adjacency(graph: SkeletonGraph, num_views: int) -> np.ndarray:
    """The explicit ``(5, V*J, V*J)`` normalised adjacencies of :data:`KINDS`; node ``v * J + j``.

    The network never builds these (see the module docstring); they document and test the graph.
    """
    if num_views < 2:
        raise CrossviewError(f"the cross-view graph needs at least 2 views, got {num_views}")
    eye_views = np.eye(num_views)
    per_view = [np.kron(eye_views, block) for block in graph.spatial]
    view_link = np.kron(np.ones((num_views, num_views)) - eye_views, np.eye(graph.num_nodes))
    return np.stack(per_view + [normalize_adjacency(view_link)])


__all__ = [
    "H36M17_GROUPS_10",
    "H36M17_PARTS_5",
    "KINDS",
    "SPATIAL_KINDS",
    "SkeletonGraph",
    "multiview_adjacency",
    "normalize_adjacency",
    "pooling_matrix",
    "unet_levels",
]
