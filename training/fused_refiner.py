"""A trained CV-UGCN rewritten for a fixed number of views, for fast ONNX inference (same weights).

:class:`training.cvugcn.CVUGCN` keeps the view axis dynamic (one model for any V >= 2), and its
exported graph pays for that: ~510 ONNX nodes, many of them shape bookkeeping (Shape, Gather,
Concat, Reshape for the flatten/unflatten and BatchNorm over every node), ~0.5 ms of fixed cost per
call on one CPU core before any arithmetic. :class:`FixedViewRefiner` computes the same function
for one view count V (the batch stays dynamic) with every shape a constant and the algebra
rearranged once, at export time:

- BatchNorm (eval: a per-channel affine map) is folded into the graph convolution's weights, and
  the linear layer's bias, which the kinds' adjacencies spread unevenly over the nodes
  (``sum_k A_k 1 b_k``), becomes one constant ``(N, C)`` bias per unit.
- The cross-view kind, ``mean over the other views of H W_view = (sum_v H W_view - H W_view) /
  (V - 1)``, becomes ``(sum_v H) (W_view / (V - 1))`` — computed once per frame instead of once
  per view — plus ``-W_view / (V - 1)`` folded into the ``self`` kind's weights (``A_self = I``).
  The fusion layer's mean over the other views is rewritten the same way.
- The skip connections' concatenation ``[unpool(h_coarse), h_fine] W`` becomes
  ``unpool(h_coarse W_a) + h_fine W_b``: the coarse half is multiplied on the 5 (10) groups
  instead of the 10 (17) nodes it is copied to.
- The head's ``* residual_scale_mm`` is folded into its weights; pooling and upsampling are
  constant ``(G, N)`` matrices; every reshape has constant sizes (-1 for the batch).
- The normalisation takes fewer operators (``x - x == 0`` for "finite", slices instead of
  gathers, broadcasting instead of expand) and its scalings are folded into the first unit's
  weights, whose 8 input features are never concatenated: the root position's 3 features are
  multiplied once per view and broadcast over the joints.

Result (``widths`` 64/96/128): 127 exported nodes (98 after ONNX Runtime's optimiser, no shape
operators) instead of ~510, and 11.5 million multiply-adds per 4-view frame instead of 15.2.

Only the order of float32 operations changes: outputs agree with the torch model to ~1e-4 mm
(tests/test_refiner_runtime.py). The state_dict of the trained model is read, never changed.

Inputs and outputs are :class:`~training.cvugcn.CVUGCN`'s: ``points_cam (B, V, 17, 3)`` mm and
``confidence (B, V, 17)`` in, ``refined_cam (B, V, 17, 3)`` mm out, V fixed.
"""

from __future__ import annotations

import torch
from torch import nn

from training.cvugcn import CVUGCN, ROOT_JOINT, GCNUnit


def _folded_unit(unit: GCNUnit, num_views: int, split: int | None = None) -> dict[str, torch.Tensor]:
    """The constants of one GCN unit (graph conv + BatchNorm) for ``num_views`` views, float64.

    Returns ``{"W": (C_in, K C), "side": (N, N K), "bias": (N, C)}`` and, for an M-GCN unit,
    ``"W_view": (C_in, C)`` (applied to the sum over views). With ``split``, the input channels
    ``[:split]`` (the upsampled coarse features) and ``[split:]`` (the skip) get separate matrices:
    ``"W_a", "W_b"`` and ``"W_view_a", "W_view_b"``.
    """
    conv = unit.conv
    K, C = conv.kinds, conv.out_channels
    weight = conv.linear.weight.detach().double()  # (K' C, C_in), kind-major rows
    bias = conv.linear.bias.detach().double()  # (K' C)
    c_in = weight.shape[1]
    per_kind = weight.reshape(-1, C, c_in).transpose(1, 2).clone()  # (K', C_in, C)
    bias_kind = bias.reshape(-1, C)  # (K', C)
    side = conv.side.detach().double()  # (N, N K): side[n, m K + k] = A_k[n, m]
    N = side.shape[0]
    row_sums = side.reshape(N, N, K).sum(dim=1)  # (N, K): A_k 1
    node_bias = row_sums @ bias_kind[:K]  # (N, C)
    W_view = None
    if conv.cross_view:
        node_bias = node_bias + bias_kind[K]  # a mean over views of a constant is the constant
        W_view = per_kind[K] / (num_views - 1)
        per_kind[0] = per_kind[0] - W_view  # -H W_view / (V - 1): the self kind (A_self = I)
    norm = unit.norm
    scale = norm.weight.detach().double() / torch.sqrt(norm.running_var.double() + norm.eps)  # (C,)
    shift = norm.bias.detach().double() - norm.running_mean.double() * scale
    W = (per_kind[:K] * scale).permute(1, 0, 2).reshape(c_in, K * C)  # (C_in, K C), column k C + c
    out = {"W": W, "side": side, "bias": node_bias * scale + shift}
    if W_view is not None:
        out["W_view"] = W_view * scale
    if split is not None:
        out["W_a"], out["W_b"] = out.pop("W").split([split, c_in - split])
        if W_view is not None:
            out["W_view_a"], out["W_view_b"] = out.pop("W_view").split([split, c_in - split])
    return out


class FixedViewRefiner(nn.Module):
    """``forward(points_cam (B, V, 17, 3) mm, confidence (B, V, 17)) -> (B, V, 17, 3) mm``, V fixed.

    Built from a trained :class:`~training.cvugcn.CVUGCN` in eval mode (see the module docstring);
    holds float32 constants only (no parameters), so it is for inference and export.
    """

    def __init__(self, model: CVUGCN, num_views: int):
        super().__init__()
        if num_views < 2:
            raise ValueError(f"the cross-view refiner needs at least 2 views, got {num_views}")
        if model.training:
            raise ValueError("fold the model in eval mode (BatchNorm statistics, no dropout)")
        self.num_views = num_views
        self.config = model.config
        self.num_joints = model.num_joints
        self.widths = model.config.widths
        self._sizes: dict[str, tuple[int, int, bool]] = {}  # unit -> (N K, C, shortcut): constant reshapes
        self.spatial_units = len(model.spatial)
        if model.config.widths[0] == CVUGCN.num_features:
            raise ValueError("a first width of 8 gives the first unit a shortcut, which this rewrite does not do")
        for i, unit in enumerate(model.spatial):
            folded = _folded_unit(unit, num_views)
            if i == 0:
                # The first unit reads the 8 features [relative / pose_scale, root / root_scale,
                # confidence, valid]: its rows are split so the features are never built (forward).
                W, c = folded.pop("W"), model.config  # (8, K C)
                rows = torch.tensor([1.0 / c.pose_scale_mm] * 3 + [1.0, 1.0], dtype=torch.float64)[:, None]
                self._add("input", {"W": W[[0, 1, 2, 6, 7]] * rows, "W_root": W[3:6] / c.root_scale_mm})
            self._add(f"spatial{i}", folded)
        w0 = self.widths[0]
        fusion = model.fusion[0]
        weight = fusion.weight.detach().double().T  # (2 w0, w0): rows [h | mean_other(h)]
        own, other = weight[:w0], weight[w0:] / (num_views - 1)
        self._add("fusion", {"W": own - other, "W_view": other, "bias": fusion.bias.detach().double()})
        for name, stack in (("down0", model.down0), ("down1", model.down1), ("bottom", model.bottom)):
            for i, unit in enumerate(stack):
                self._add(f"{name}_{i}", _folded_unit(unit, num_views))
        for name, stack, split in (("up1", model.up1, self.widths[2]), ("up0", model.up0, self.widths[1])):
            for i, unit in enumerate(stack):
                self._add(f"{name}_{i}", _folded_unit(unit, num_views, split=split if i == 0 else None))
        self.depth = {"down0": len(model.down0), "down1": len(model.down1), "bottom": len(model.bottom),
                      "up1": len(model.up1), "up0": len(model.up0)}
        scale = model.config.residual_scale_mm
        self._add("head", {"W": model.head.weight.detach().double().T * scale,
                           "bias": model.head.bias.detach().double() * scale})
        for i in range(2):
            self._add(f"pool{i}", {"": getattr(model, f"pool{i}").double()})
            self._add(f"unpool{i}", {"": getattr(model, f"unpool{i}").double()})

    def _add(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
        if "side" in tensors:
            C = int(tensors["bias"].shape[-1])
            # GCNUnit: identity shortcut at equal widths (the first unit, 8 -> w0, and the split
            # units, whose widths differ, have none)
            shortcut = "W" in tensors and int(tensors["W"].shape[0]) == C
            self._sizes[prefix] = (int(tensors["side"].shape[1]), C, shortcut)
        for key, value in tensors.items():
            name = f"{prefix}_{key}" if key else prefix
            self.register_buffer(name, value.float().contiguous())

    def _c(self, name: str) -> torch.Tensor:
        return getattr(self, name)  # a buffer registered by _add

    # --------------------------------------------------------------------------------------------
    def _graph_conv(self, name: str, hw: torch.Tensor, view_term: torch.Tensor | None) -> torch.Tensor:
        """``hw (B, V, N, K C)`` = H W of the spatial kinds -> BatchNormed ``(B, V, N, C)`` before ReLU."""
        side = self._c(f"{name}_side")  # (N, N K)
        nk, C, _ = self._sizes[name]
        z = torch.matmul(side, hw.reshape(-1, self.num_views, nk, C))  # (B, V, N, C)
        bias = self._c(f"{name}_bias")  # (N, C)
        # added to the (B, 1, N, C) view term first: one full-size addition instead of two
        return z + (bias if view_term is None else view_term + bias)

    def _unit(self, name: str, h: torch.Tensor, cross_view: bool = True) -> torch.Tensor:
        """An S-GCN (``cross_view`` false) or M-GCN unit: ``(B, V, N, C_in)`` -> ``(B, V, N, C)``."""
        view_term = h.sum(dim=1, keepdim=True) @ self._c(f"{name}_W_view") if cross_view else None
        z = torch.relu(self._graph_conv(name, h @ self._c(f"{name}_W"), view_term))
        return z + h if self._sizes[name][2] else z

    def _split_unit(self, name: str, coarse: torch.Tensor, unpool: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """An M-GCN unit on ``[unpool @ coarse, skip]`` without building the concatenation."""
        hw = unpool @ (coarse @ self._c(f"{name}_W_a")) + skip @ self._c(f"{name}_W_b")
        view_term = (unpool @ (coarse.sum(dim=1, keepdim=True) @ self._c(f"{name}_W_view_a"))
                     + skip.sum(dim=1, keepdim=True) @ self._c(f"{name}_W_view_b"))
        return torch.relu(self._graph_conv(name, hw, view_term))  # widths differ: no shortcut

    def _stack(self, level: str, h: torch.Tensor, start: int = 0) -> torch.Tensor:
        for i in range(start, self.depth[level]):
            h = self._unit(f"{level}_{i}", h)
        return h

    def normalise(self, points_cam: torch.Tensor, confidence: torch.Tensor):
        """:meth:`training.cvugcn.CVUGCN.normalise` in fewer ONNX nodes, without the scaling (folded
        into the first unit's weights).

        Returns:
            ``inputs (B, V, J, 5)`` = [filled - root (mm), confidence, valid], ``root (B, V, 1, 3)``
            mm and ``filled (B, V, J, 3)`` mm (missing joints at the root).
        """
        # x - x is 0 for a finite x and NaN for NaN or +-inf: valid = every coordinate finite
        valid = (points_cam - points_cam).sum(dim=-1, keepdim=True) == 0.0  # (B, V, J, 1)
        points = torch.where(valid, points_cam, 0.0)
        present = valid.to(points.dtype)  # (B, V, J, 1)
        count = present.sum(dim=-2, keepdim=True).clamp(min=1.0)  # (B, V, 1, 1)
        centroid = points.sum(dim=-2, keepdim=True) / count  # (B, V, 1, 3)
        root_slice = slice(ROOT_JOINT, ROOT_JOINT + 1)
        root = torch.where(valid[:, :, root_slice], points[:, :, root_slice], centroid)  # (B, V, 1, 3)
        filled = torch.where(valid, points, root)  # (B, V, J, 3)
        conf = torch.where(confidence > 0.0, confidence.clamp(max=1.0), 0.0)[..., None]  # NaN -> 0, as nan_to_num
        return torch.cat([filled - root, conf, present], dim=-1), root, filled

    def forward(self, points_cam: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        inputs, root, filled = self.normalise(points_cam, confidence)
        # the first S-GCN unit on the 8 features = inputs @ W[relative, conf, valid] + root @ W[where]
        hw = inputs @ self.input_W + root @ self.input_W_root  # (B, V, J, K C)
        h = torch.relu(self._graph_conv("spatial0", hw, None))  # 8 -> w0 channels: no shortcut
        for i in range(1, self.spatial_units):
            h = self._unit(f"spatial{i}", h, cross_view=False)  # (B, V, 17, w0)
        h = torch.relu(h @ self.fusion_W + h.sum(dim=1, keepdim=True) @ self.fusion_W_view + self.fusion_bias)
        h0 = self._stack("down0", h)  # (B, V, 17, w0)
        h1 = self._stack("down1", self.pool0 @ h0)  # (B, V, 10, w1)
        h2 = self._stack("bottom", self.pool1 @ h1)  # (B, V, 5, w2)
        u1 = self._stack("up1", self._split_unit("up1_0", h2, self.unpool1, h1), start=1)  # (B, V, 10, w1)
        u0 = self._stack("up0", self._split_unit("up0_0", u1, self.unpool0, h0), start=1)  # (B, V, 17, w0)
        return filled + (u0 @ self.head_W + self.head_bias)


__all__ = ["FixedViewRefiner"]
