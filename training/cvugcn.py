"""CV-UGCN (seed 000): a cross-view U-shaped graph network that refines a triangulated pose.

Input and output (also the exported ONNX model's, see :mod:`training.export`):

- ``points_cam (B, V, J, 3)`` float32 mm: the coarse (triangulated) pose expressed in each view's
  camera frame (``x_cam = R x_world + t``); NaN for a joint the triangulation could not place.
- ``confidence (B, V, J)`` float32 in [0, 1]: the detector's confidence of joint j in view v,
  0 where that view did not see the joint or triangulation rejected the view as an outlier.
- output ``refined_cam (B, V, J, 3)`` float32 mm, camera frames: ``points_cam + residual``. A joint
  missing from the coarse pose starts from the root and is predicted from the rest of the body
  (it is never NaN).

V may be any number >= 2 (the cross-view kind of neighbour is a mean over the other views, see
:mod:`training.graph`); J is the H36M-17 joint set.

Choices the paper leaves open (documented here, and configurable in :class:`CVUGCNConfig`):

- Normalisation, inside the model (so the ONNX model takes millimetres): each view's pose is made
  root-relative (pelvis; the mean of the present joints if the pelvis is missing) and divided by
  ``pose_scale_mm`` (1 m), a fixed scale rather than a per-pose one so that bone lengths keep
  their meaning (the symmetry and transform losses are in mm). Each node also sees the root's
  position in that camera's frame divided by ``root_scale_mm`` (where the person stands relative to
  the camera: distance sets the noise level), its confidence and whether the coarse joint exists:
  8 input features per node. The head's output is multiplied by ``residual_scale_mm`` (100 mm)
  and the head starts at zero, so an untrained model returns the triangulation.
- Units: every unit is graph convolution (one weight matrix per neighbour kind, seed 000's
  eq. 2), BatchNorm over channels, ReLU, and an identity shortcut when the width does not change.
- S-GCN stage: ``spatial_units`` units (default 2) with the four spatial kinds, the same weights
  for every view ("fed into S-GCN units independently").
- Fusion: each node's features are concatenated with the mean of the same joint's features over
  the other views and mapped back to the width (for two views this is exactly the concatenation of
  both views into a shared latent space; the mean keeps it defined for any V).
- U: widths ``widths`` (default 128, 192, 256) at 17 joints, 10 groups and 5 parts, pooling by
  averaging and upsampling by copying (groups in :mod:`training.graph`), ``units_per_level``
  M-GCN units (all five kinds) per level on the way down, the bottom, and the way up; skip
  connections concatenate the down path's features with the upsampled ones.
- Size: about 1.2 M parameters, 4.8 MB in float32 (the paper's ~20 MB is not needed to beat
  triangulation on our data; widths are configurable).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from models.skeleton import H36M17
from training.graph import unet_levels

ROOT_JOINT = 0


@dataclass(frozen=True, slots=True)
class CVUGCNConfig:
    """Architecture of :class:`CVUGCN` (see the module docstring for why these defaults)."""

    widths: tuple[int, int, int] = (128, 192, 256)
    spatial_units: int = 2
    units_per_level: int = 1
    dropout: float = 0.0
    pose_scale_mm: float = 1000.0
    root_scale_mm: float = 5000.0
    residual_scale_mm: float = 100.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ValueError(f"widths must be three positive channel counts (17, 10, 5 nodes), got {self.widths}")
        if self.spatial_units < 1 or self.units_per_level < 1:
            raise ValueError("spatial_units and units_per_level must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


def mean_over_other_views(h: torch.Tensor) -> torch.Tensor:
    """``(B, V, N, C)`` -> ``(B, V, N, C)``: for each view, the mean over the other views (V >= 2).

    Written without reading V as a Python number, so the exported graph keeps V dynamic.
    """
    total = h.sum(dim=1, keepdim=True)
    count = (h[:, :, :1, :1] * 0.0 + 1.0).sum(dim=1, keepdim=True)  # (B, 1, 1, 1) = V (h is finite)
    return (total - h) / (count - 1.0)


class GraphConv(nn.Module):
    """``Z = sum_k A_k H W_k`` over the spatial kinds (+ the cross-view kind when ``cross_view``).

    Computed as ``H W`` for all kinds at once (one linear layer to ``K x C_out``), then one batched
    matrix product with the kinds' adjacencies laid side by side, ``(N, N K)``; the cross-view
    kind's term is the mean over the other views of ``H W_view`` (linear maps commute with means).
    """

    def __init__(self, spatial: np.ndarray, in_channels: int, out_channels: int, *, cross_view: bool):
        super().__init__()
        spatial = np.array(spatial, dtype=np.float32)  # (4, N, N)
        kinds, n = spatial.shape[0], spatial.shape[1]
        # side[n, m * K + k] = A_k[n, m], matching H W reshaped to (N * K, C_out) node-major.
        self.register_buffer("side", torch.from_numpy(np.ascontiguousarray(spatial.transpose(1, 2, 0).reshape(n, n * kinds))))
        self.cross_view = cross_view
        self.kinds = kinds
        self.out_channels = out_channels
        self.linear = nn.Linear(in_channels, (kinds + int(cross_view)) * out_channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h (B, V, N, C_in)`` -> ``(B, V, N, C_out)``."""
        hw = self.linear(h)  # (B, V, N, K' C_out)
        spatial_part = hw[..., : self.kinds * self.out_channels]
        z = torch.matmul(self.side, spatial_part.flatten(-2, -1).unflatten(-1, (-1, self.out_channels)))
        if self.cross_view:
            z = z + mean_over_other_views(hw[..., self.kinds * self.out_channels:])
        return z


class GCNUnit(nn.Module):
    """Graph convolution, BatchNorm, ReLU (and dropout), with an identity shortcut at equal widths.

    An S-GCN unit when ``cross_view`` is false, an M-GCN unit when true.
    """

    def __init__(self, spatial: np.ndarray, in_channels: int, out_channels: int, *, cross_view: bool,
                 dropout: float = 0.0):
        super().__init__()
        self.conv = GraphConv(spatial, in_channels, out_channels, cross_view=cross_view)
        self.norm = nn.BatchNorm1d(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.shortcut = in_channels == out_channels

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.conv(h)
        z = self.norm(z.flatten(0, 2)).view_as(z)  # BatchNorm over channels of every node
        z = self.dropout(torch.relu(z))
        return z + h if self.shortcut else z


class CVUGCN(nn.Module):
    """The refiner: ``forward(points_cam (B, V, J, 3) mm, confidence (B, V, J)) -> (B, V, J, 3) mm``."""

    num_features = 8

    def __init__(self, config: CVUGCNConfig = CVUGCNConfig()):
        super().__init__()
        self.config = config
        graphs, pools = unet_levels(H36M17)
        self.num_joints = graphs[0].num_nodes
        w0, w1, w2 = config.widths
        d, n = config.dropout, config.units_per_level
        A0, A1, A2 = (g.spatial for g in graphs)

        def stack(spatial, widths_in, width_out, cross_view=True):
            return nn.Sequential(*[GCNUnit(spatial, widths_in if i == 0 else width_out, width_out,
                                           cross_view=cross_view, dropout=d) for i in range(n)])

        self.spatial = nn.Sequential(*[GCNUnit(A0, self.num_features if i == 0 else w0, w0, cross_view=False,
                                               dropout=d) for i in range(config.spatial_units)])
        self.fusion = nn.Sequential(nn.Linear(2 * w0, w0), nn.ReLU())
        self.down0 = stack(A0, w0, w0)
        self.down1 = stack(A1, w0, w1)
        self.bottom = stack(A2, w1, w2)
        self.up1 = stack(A1, w2 + w1, w1)
        self.up0 = stack(A0, w1 + w0, w0)
        self.head = nn.Linear(w0, 3)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        for i, pool in enumerate(pools):
            self.register_buffer(f"pool{i}", torch.as_tensor(pool, dtype=torch.float32))  # (G_{i+1}, G_i)
            self.register_buffer(f"unpool{i}", torch.as_tensor((pool > 0).T.astype(np.float32)))  # (G_i, G_{i+1})

    # --------------------------------------------------------------------------------------------
    def normalise(self, points_cam: torch.Tensor, confidence: torch.Tensor):
        """Root-relative, scaled node features.

        Returns:
            ``features (B, V, J, 8)``, ``filled (B, V, J, 3)`` mm (the coarse pose with missing
            joints put at the root) and ``valid (B, V, J)`` bool.
        """
        valid = torch.isfinite(points_cam).all(dim=-1)  # (B, V, J)
        points = torch.where(valid[..., None], points_cam, torch.zeros_like(points_cam))
        count = valid.sum(dim=-1, keepdim=True).clamp(min=1).to(points.dtype)  # (B, V, 1)
        centroid = points.sum(dim=-2) / count  # (B, V, 3)
        root = torch.where(valid[..., ROOT_JOINT, None], points[..., ROOT_JOINT, :], centroid)  # (B, V, 3)
        filled = torch.where(valid[..., None], points, root[..., None, :])  # (B, V, J, 3)
        c = self.config
        relative = (filled - root[..., None, :]) / c.pose_scale_mm
        where = (root / c.root_scale_mm)[..., None, :].expand_as(relative)
        conf = torch.nan_to_num(confidence, nan=0.0).clamp(0.0, 1.0)[..., None]
        features = torch.cat([relative, where, conf, valid[..., None].to(points.dtype)], dim=-1)  # (B, V, J, 8)
        return features, filled, valid

    def forward(self, points_cam: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        """Refine.

        Args:
            points_cam: ``(B, V, J, 3)`` coarse pose in each camera's frame, mm; NaN = missing.
            confidence: ``(B, V, J)`` in [0, 1].

        Returns:
            ``(B, V, J, 3)`` refined pose in each camera's frame, mm.
        """
        features, filled, _ = self.normalise(points_cam, confidence)
        h = self.spatial(features)  # (B, V, 17, w0)
        h = self.fusion(torch.cat([h, mean_over_other_views(h)], dim=-1))
        h0 = self.down0(h)
        h1 = self.down1(torch.einsum("gn,bvnc->bvgc", self.pool0, h0))  # (B, V, 10, w1)
        h2 = self.bottom(torch.einsum("gn,bvnc->bvgc", self.pool1, h1))  # (B, V, 5, w2)
        u1 = self.up1(torch.cat([torch.einsum("ng,bvgc->bvnc", self.unpool1, h2), h1], dim=-1))  # (B, V, 10, w1)
        u0 = self.up0(torch.cat([torch.einsum("ng,bvgc->bvnc", self.unpool0, u1), h0], dim=-1))  # (B, V, 17, w0)
        return filled + self.head(u0) * self.config.residual_scale_mm


def to_world(points_cam: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``(B, V, J, 3)`` camera-frame mm -> world mm, per view: ``R^T (x - t)``.

    ``R (B, V, 3, 3)`` is ``R_cam_from_world``, ``t (B, V, 3)`` mm.
    """
    return torch.einsum("bvjc,bvcd->bvjd", points_cam - t[:, :, None, :], R)


def fuse_views(refined_cam: torch.Tensor, confidence: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The world-frame pose ``(B, J, 3)`` mm: each view's refined pose mapped to the world and
    averaged with weights ``confidence + 0.01`` (so a joint no view saw still gets the plain mean)."""
    world = to_world(refined_cam, R, t)  # (B, V, J, 3)
    weight = torch.nan_to_num(confidence, nan=0.0).clamp(0.0, 1.0) + 0.01  # (B, V, J)
    return (world * weight[..., None]).sum(dim=1) / weight.sum(dim=1)[..., None]


class RefinerWithFusion(nn.Module):
    """The exported model: refined camera-frame poses and their fused world pose.

    ``forward(points_cam (B, V, J, 3) mm, confidence (B, V, J), R_cam_from_world (B, V, 3, 3),
    t_cam_from_world (B, V, 3) mm) -> (refined_cam (B, V, J, 3) mm, refined_world (B, J, 3) mm)``.
    """

    def __init__(self, refiner: CVUGCN):
        super().__init__()
        self.refiner = refiner

    def forward(self, points_cam, confidence, R_cam_from_world, t_cam_from_world):
        refined = self.refiner(points_cam, confidence)
        return refined, fuse_views(refined, confidence, R_cam_from_world, t_cam_from_world)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["CVUGCN", "CVUGCNConfig", "GCNUnit", "GraphConv", "RefinerWithFusion", "count_parameters",
           "fuse_views", "mean_over_other_views", "to_world"]
