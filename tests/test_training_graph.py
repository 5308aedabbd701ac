"""The CV-UGCN graph: five neighbour kinds, normalisation, cross-view edges, pooling groups."""

from __future__ import annotations

import numpy as np
import pytest

from models.skeleton import H36M17
from training.graph import (
    H36M17_GROUPS_10,
    KINDS,
    SkeletonGraph,
    multiview_adjacency,
    normalize_adjacency,
    pooling_matrix,
    unet_levels,
)


@pytest.mark.parametrize("views", [2, 3, 4, 7])
def test_multiview_adjacency_is_symmetric_and_normalised(views: int) -> None:
    """Every kind is symmetric and equals D^-1/2 A D^-1/2 of its 0/1 pattern."""
    graph = SkeletonGraph.from_skeleton(H36M17)
    A = multiview_adjacency(graph, views)
    J = H36M17.num_joints
    assert A.shape == (len(KINDS), views * J, views * J)
    for k in range(len(KINDS)):
        np.testing.assert_allclose(A[k], A[k].T, atol=1e-12)
        pattern = (A[k] != 0).astype(float)
        np.testing.assert_allclose(A[k], normalize_adjacency(pattern), atol=1e-12)
        # normalised: the spectral radius of D^-1/2 A D^-1/2 is at most 1
        assert np.abs(np.linalg.eigvalsh(A[k])).max() <= 1.0 + 1e-9


@pytest.mark.parametrize("views", [2, 4])
def test_view_edges_connect_the_same_joint_in_other_views(views: int) -> None:
    graph = SkeletonGraph.from_skeleton(H36M17)
    view = multiview_adjacency(graph, views)[KINDS.index("view")]
    J = H36M17.num_joints
    rows, cols = np.nonzero(view)
    assert np.all(rows % J == cols % J)  # same joint
    assert np.all(rows // J != cols // J)  # different views
    assert len(rows) == views * (views - 1) * J  # every other view
    np.testing.assert_allclose(view[rows, cols], 1.0 / (views - 1))  # the mean over the other views


def test_spatial_kinds_stay_within_a_view() -> None:
    A = multiview_adjacency(SkeletonGraph.from_skeleton(H36M17), 3)
    J = H36M17.num_joints
    for k in range(4):
        rows, cols = np.nonzero(A[k])
        assert np.all(rows // J == cols // J), KINDS[k]


def test_neighbour_kinds_of_the_skeleton() -> None:
    g = SkeletonGraph.from_skeleton(H36M17)
    bone, two_hop, mirror = (g.spatial[k] != 0 for k in (1, 2, 3))
    assert bone[0, 1] and bone[8, 11] and not bone[0, 2]
    assert two_hop[0, 2] and two_hop[1, 4] and two_hop[11, 14] and not two_hop[0, 1] and not two_hop[0, 0]
    assert mirror[4, 1] and mirror[13, 16] and not mirror[0].any()  # pelvis: no mirror twin
    assert not (bone & two_hop).any()


def test_pooling_levels() -> None:
    graphs, pools = unet_levels()
    assert [g.num_nodes for g in graphs] == [17, 10, 5]
    for pool in pools:
        np.testing.assert_allclose(pool.sum(axis=1), 1.0)  # averages
        assert np.all((pool > 0).sum(axis=0) == 1)  # each node in one group
    # five parts: the torso is joined to every limb, the limbs mirror each other
    parts = graphs[2]
    assert parts.bone[0, 1:].all() and not parts.bone[1:, 1:].any()
    assert parts.mirror[1, 2] and parts.mirror[3, 4]


def test_pooling_groups_must_cover_every_joint_once() -> None:
    with pytest.raises(Exception, match="exactly once"):
        pooling_matrix(H36M17_GROUPS_10[:-1], 17)
