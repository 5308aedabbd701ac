"""The refiner's weak losses: the torch lens model equals the numpy one; perfect data costs nothing."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calibration.camera import Camera, look_at  # noqa: E402
from models.skeleton import H36M17  # noqa: E402
from training.losses import project, refiner_losses  # noqa: E402

STANDING = np.array(
    [[0, 0, 950], [130, 0, 950], [130, 0, 520], [130, -20, 90], [-130, 0, 950], [-130, 0, 520],
     [-130, -20, 90], [0, 0, 1180], [0, 0, 1430], [0, 20, 1530], [0, 0, 1700], [-180, 0, 1420],
     [-200, 0, 1150], [-210, 30, 900], [180, 0, 1420], [200, 0, 1150], [210, 30, 900]], dtype=float)


def _cameras(rng) -> list[Camera]:
    cameras = []
    for c, azimuth in enumerate(np.radians([10.0, 100.0, 215.0])):
        centre = np.array([4000 * np.cos(azimuth), 4000 * np.sin(azimuth), 1500.0])
        dist = np.array([rng.uniform(-0.3, 0.15), rng.uniform(-0.15, 0.15), rng.normal(0, 0.0015),
                         rng.normal(0, 0.0015), rng.uniform(-0.02, 0.1)])
        cam = look_at(f"cam{c}", centre, (0, 0, 900), width=1920, height=1080, focal_px=1200.0, dist=dist)
        K = cam.K.copy()
        K[0, 1] = 0.5  # a little skew, which OpenCV's model allows
        cameras.append(Camera(cam.name, cam.width, cam.height, K, cam.dist, cam.R, cam.t))
    return cameras


def _tensors(cameras):
    K = torch.tensor(np.stack([c.K for c in cameras]))[None]
    dist = torch.tensor(np.stack([c.dist for c in cameras]))[None]
    R = torch.tensor(np.stack([c.R for c in cameras]))[None]
    t = torch.tensor(np.stack([c.t for c in cameras]))[None]
    return K, dist, R, t


def test_torch_projection_equals_camera_project() -> None:
    """Distortion k1, k2, p1, p2, k3 and skew in torch match Camera.project (measured: 5e-13 px)."""
    rng = np.random.default_rng(0)
    cameras = _cameras(rng)
    points = rng.uniform([-1500, -1500, 0], [1500, 1500, 2000], size=(500, 3))  # spans the images' corners
    K, dist, R, t = _tensors(cameras)
    cam_points = torch.einsum("vcd,nd->vnc", R[0], torch.tensor(points)) + t[0][:, None]
    pixels, in_front = project(cam_points, K[0], dist[0])
    for c, camera in enumerate(cameras):
        expected = camera.project(points)
        assert in_front[c].all()
        assert np.abs(pixels[c].numpy() - expected).max() < 1e-6


def test_losses_vanish_on_perfect_data() -> None:
    """Exact pose, exact keypoints, a symmetric skeleton: every term is ~0."""
    cameras = _cameras(np.random.default_rng(1))
    K, dist, R, t = _tensors(cameras)
    world = torch.tensor(STANDING)
    cam = (torch.einsum("vcd,jd->vjc", R[0], world) + t[0][:, None])[None]  # (1, V, J, 3)
    keypoints = torch.tensor(np.stack([c.project(STANDING) for c in cameras]))[None]
    confidence = torch.ones(1, 3, 17, dtype=torch.float64)
    losses = refiner_losses(cam, keypoints, confidence, K, dist, R, t)
    assert float(losses["reprojection_px"]) < 1e-3
    assert float(losses["transform_mm"]) < 1e-2
    assert float(losses["symmetry_mm"]) < 1e-2
    assert float(losses["bone_direction"]) < 1e-6


def test_losses_see_each_corruption() -> None:
    """Moving a joint in one view raises reprojection, transform and symmetry; missing 2D is ignored."""
    cameras = _cameras(np.random.default_rng(2))
    K, dist, R, t = _tensors(cameras)
    world = torch.tensor(STANDING)
    cam = (torch.einsum("vcd,jd->vjc", R[0], world) + t[0][:, None])[None]
    keypoints = torch.tensor(np.stack([c.project(STANDING) for c in cameras]))[None]
    confidence = torch.ones(1, 3, 17, dtype=torch.float64)
    moved = cam.clone()
    moved[0, 0, H36M17.index("l_wrist")] += torch.tensor([50.0, 0.0, 0.0], dtype=torch.float64)
    losses = refiner_losses(moved, keypoints, confidence, K, dist, R, t)
    assert float(losses["reprojection_px"]) > 0.1
    assert float(losses["transform_mm"]) > 1.0
    assert float(losses["symmetry_mm"]) > 0.1
    keypoints[0, 0, H36M17.index("l_wrist")] = float("nan")
    confidence[0, 0, H36M17.index("l_wrist")] = 0.0
    moved[0, :, H36M17.index("l_wrist")] = cam[0, :, H36M17.index("l_wrist")]
    assert float(refiner_losses(moved, keypoints, confidence, K, dist, R, t)["reprojection_px"]) < 1e-3


def test_reprojection_leaves_out_joints_projected_far_off_image() -> None:
    """A joint whose projection lands absurdly far outside the image (a bad triangulation through the
    distortion polynomial) adds nothing: the loss equals the loss with that joint's 2D removed, and
    the gradient stays finite. Measured: identical totals (difference 0.0)."""
    cameras = _cameras(np.random.default_rng(3))
    K, dist, R, t = _tensors(cameras)
    world = torch.tensor(STANDING)
    cam = (torch.einsum("vcd,jd->vjc", R[0], world) + t[0][:, None])[None]  # (1, V, J, 3)
    keypoints = torch.tensor(np.stack([c.project(STANDING) for c in cameras]))[None]
    keypoints = keypoints + torch.randn(keypoints.shape, generator=torch.Generator().manual_seed(0),
                                        dtype=torch.float64) * 3.0  # some error everywhere
    confidence = torch.ones(1, 3, 17, dtype=torch.float64)
    wrist = H36M17.index("l_wrist")
    far = cam.clone()
    # In view 0 the wrist goes 200 m sideways at its depth: projected ~60 000 px from the image.
    far[0, 0, wrist, 0] += 200_000.0
    far.requires_grad_(True)
    pixels, _ = project(far.detach()[0], K[0], dist[0])
    assert abs(float(pixels[0, wrist, 0])) > 1e4  # the case under test: far outside a 1920 px image
    losses = refiner_losses(far, keypoints, confidence, K, dist, R, t)
    losses["total"].backward()
    assert torch.isfinite(far.grad).all()

    without = confidence.clone()
    without[0, 0, wrist] = 0.0  # the same joint's 2D removed
    keypoints_without = keypoints.clone()
    keypoints_without[0, 0, wrist] = float("nan")
    reference = refiner_losses(far.detach(), keypoints_without, without, K, dist, R, t)
    for key in ("total", "reprojection_px"):
        assert float(losses[key].detach()) == pytest.approx(float(reference[key]), rel=1e-12, abs=1e-9)
    # The far joint still counts in the other terms (they are 3D), so the check above is not vacuous:
    assert float(losses["transform_mm"]) > 1000.0
