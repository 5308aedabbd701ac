"""Seed 001's objective for the single-view lifter: no 3D labels, only two views' 2D and the calibration.

For a pair of views (u, v) of the same instant, each view's 2D is lifted to ``Y~ = Y + r`` (lifting
branch + root branch, camera frame, mm); ``tau_uv`` is the known rigid map from camera u's frame to
camera v's (``x_v = R_v R_u^T (x_u - t_u) + t_v``: the paper's eq. 4 written with our
``x_cam = R x_world + t`` convention, checked numerically in tests/test_lifter.py), ``rho`` the
pinhole projection, ``w`` the detector's confidence:

- warm-up (eq. 6): ``L_pre = sum_j ||tau_uv(Y~u_j) - Y~v_j||^2 + ||tau_vu(Y~v_j) - Y~u_j||^2`` (m^2);
- reprojection (eq. 2): ``L_reproj = sum_j wu_j ||xu_j - rho(Y~u_j)||^2 + wv_j ||xv_j - rho(Y~v_j)||^2``;
- transform re-projection (eq. 5): ``L_t = sum_j w_j ||xv_j - rho(tau_uv(Y~u_j))||^2 + (v <-> u)``;
- after the warm-up ``L = L_reproj + lambda L_t`` (eq. 7).

Choices the paper leaves open:

- Units of the 2D errors. The paper's are pixels^2 on Human3.6M, where every camera is alike. Our
  rigs mix 640 x 480 webcams and 1920 x 1080 cameras at 2.5-6 m, so a pixel error would weigh
  people 30x differently; errors are measured in normalised camera coordinates divided by the
  target view's 2D pose size ``s`` (RMS distance of its seen joints from their mean, see
  :func:`training.lifter.pose_features`) and reported in per cent of it: the detector's noise
  is a fixed fraction of that size too (:mod:`models.synthetic.noise`). Logs also show pixels.
- Confidence weights of the transform term: the paper weights by the source view's confidence
  only; here by the product of the source's and the target's (the target's 2D is the label, and
  its confidence flags the detector's unsure joints just as well). A joint missing in a view has
  weight 0 wherever that view is involved.
- Squared errors (the paper) only up to ``HUBER_DELTA`` = 25 % of the pose size, linear beyond
  (Huber): the detector's outliers (10-40 % of the person's size away, half of them confident)
  and, early in training, poses pushed towards the other camera (the perspective division blows
  their error up) made the plain square diverge in a first run (loss 1e7, MPJPE rising).
- Points behind the target camera (only in early training) are projected from a depth clamped at
  100 mm and carry no weight.
- ``lambda`` (not published): see :class:`training.lifter_train.TrainConfig`.

:func:`supervised_loss` is the fully supervised baseline's L1 on the root-relative 3D pose (the
only place the 3D truth enters training, and only for the clearly labelled baseline).
"""

from __future__ import annotations

import torch

from training.lifter import normalised_coordinates

_MIN_DEPTH_MM = 100.0
#: 2D errors are squared (the paper) up to this fraction of the pose size, linear beyond (Huber).
HUBER_DELTA = 0.25
_EPS = 1e-12  # (normalised units^2: a floor of 1e-6, ~0.001 px)


def transform(points_u: torch.Tensor, R_u: torch.Tensor, t_u: torch.Tensor, R_v: torch.Tensor,
              t_v: torch.Tensor) -> torch.Tensor:
    """Points in camera u's frame ``(B, J, 3)`` mm -> the same points in camera v's frame.

    ``R_* (B, 3, 3)`` are ``R_cam_from_world``, ``t_* (B, 3)`` mm: ``x_v = R_v R_u^T (x_u - t_u) + t_v``.
    """
    world = torch.einsum("bjc,bcd->bjd", points_u - t_u[:, None, :], R_u)  # R_u^T (x - t_u), row vectors
    return torch.einsum("bdc,bjc->bjd", R_v, world) + t_v[:, None, :]


def _relative_error(points_cam: torch.Tensor, target_xy: torch.Tensor, weight: torch.Tensor,
                    scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared 2D error of ``points_cam (B, J, 3)`` against normalised ``target_xy (B, J, 2)``,
    in units of the target's pose size ``scale (B,)``; returns ``(weighted squared (B, J), plain (B, J))``."""
    depth = points_cam[..., 2]
    in_front = (depth > _MIN_DEPTH_MM).to(points_cam.dtype)
    projected = points_cam[..., :2] / depth.clamp(min=_MIN_DEPTH_MM)[..., None]
    w = weight * in_front
    target = torch.where(w[..., None] > 0, target_xy, projected.detach())
    error = torch.sqrt(((target - projected) ** 2).sum(dim=-1) + _EPS) / scale[:, None]  # (B, J)
    delta = HUBER_DELTA
    huber = torch.where(error <= delta, error * error, 2.0 * delta * error - delta * delta)
    return w * huber, error.detach()


def weak_losses(relative: torch.Tensor, root: torch.Tensor, views: dict[str, torch.Tensor], *,
                warmup: bool, transform_weight: float) -> dict[str, torch.Tensor]:
    """Seed 001's losses for a batch of view pairs.

    Args:
        relative: ``(2B, J, 3)`` mm, the lifting branch's root-relative poses: views u then views v.
        root: ``(2B, 3)`` mm, the root branch's positions (camera frames).
        views: tensors of both views stacked the same way: ``keypoints (2B, J, 2)`` undistorted px,
            ``confidence (2B, J)``, ``K``, ``R`` ``(2B, 3, 3)``, ``t (2B, 3)`` mm, and
            ``scale (2B,)`` (the 2D pose size from :func:`training.lifter.pose_features`).
        warmup: return the warm-up objective (eq. 6) as ``total``, else eq. 7.
        transform_weight: ``lambda`` of eq. 7.

    Returns:
        dict of scalars: ``total`` (per-sample sums over joints, mean over the pairs) and, for
        logs, ``pretrain_m2``, ``reprojection`` and ``transform_reprojection`` (the per-sample
        sums, % of the pose size squared), ``reprojection_px`` and ``transform_px`` (weighted
        mean errors in pixels), ``consistency_mm`` (mean 3D distance between the views' poses).
    """
    B = relative.shape[0] // 2
    absolute = relative + root[:, None, :]  # (2B, J, 3)
    conf = torch.nan_to_num(views["confidence"], nan=0.0)
    target = normalised_coordinates(torch.nan_to_num(views["keypoints"], nan=0.0), views["K"])  # (2B, J, 2)
    scale = views["scale"]
    swap = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)]).to(relative.device)  # u <-> v
    moved = transform(absolute, views["R"], views["t"], views["R"][swap], views["t"][swap])  # (2B, J, 3) in the partner

    pretrain = (((moved - absolute[swap]) / 1000.0) ** 2).sum(dim=-1).sum(dim=-1)  # (2B,) m^2
    own, own_plain = _relative_error(absolute, target, conf, scale)
    cross_weight = conf * conf[swap]
    cross, cross_plain = _relative_error(moved, target[swap], cross_weight, scale[swap])

    per_pair = lambda x: x.sum() / B  # noqa: E731 - the sum over both directions, mean over pairs
    terms = {"pretrain_m2": per_pair(pretrain), "reprojection": per_pair(own) * 1e4,
             "transform_reprojection": per_pair(cross) * 1e4}
    total = terms["pretrain_m2"] if warmup else terms["reprojection"] + transform_weight * terms["transform_reprojection"]
    px = (scale * views["K"][:, 0, 0])[:, None]  # (2B, 1) px per unit of relative error
    target_px = px[swap]
    seen, seen_cross = (conf > 0).float(), (cross_weight > 0).float()
    with torch.no_grad():
        terms["reprojection_px"] = (own_plain * px * seen).sum() / seen.sum().clamp(min=1.0)
        terms["transform_px"] = (cross_plain * target_px * seen_cross).sum() / seen_cross.sum().clamp(min=1.0)
        terms["consistency_mm"] = torch.sqrt(((moved - absolute[swap]) ** 2).sum(dim=-1)).mean()
    return {"total": total, **terms}


def supervised_loss(relative: torch.Tensor, truth_relative: torch.Tensor) -> torch.Tensor:
    """The fully supervised baseline: mean absolute error, mm, of ``(B, J, 3)`` root-relative poses."""
    return (relative - truth_relative).abs().mean()


__all__ = ["supervised_loss", "transform", "weak_losses"]
