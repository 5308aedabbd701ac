"""Triangulation: exactness, robustness to wrong views, confidence, errors and the lens model.

Synthetic rigs: a ring of cameras 2.5-4.5 m around a person-sized volume (1.6 x 1.6 x 1.9 m),
1920x1080, focal 1100-1500 px; "distorted" rigs carry mild OpenCV k1 k2 p1 p2 k3 distortion that
stays invertible over the whole image.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from app.bench.triangulation import bench_rig
from calibration import Camera, Rig, look_at
from calibration.errors import CrossviewError, ShapeError
from calibration.triangulation import (
    Triangulation,
    dlt,
    normalized_from_pixels,
    project_points,
    reprojection_error,
    triangulate,
)


def ring_rig(cameras: int, *, distortion: bool = False, seed: int = 0) -> Rig:
    """The benchmark's ring: cameras 2.5-4.5 m around a person-sized volume, 1920x1080."""
    return bench_rig(distortion, cameras=cameras, seed=seed)


def volume_points(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """``(*shape, 3)`` mm, uniform in the capture volume."""
    return rng.uniform((-800.0, -800.0, 0.0), (800.0, 800.0, 1900.0), size=shape + (3,))


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)


# ------------------------------------------------------------------------------------------------
# Exactness
@pytest.mark.parametrize("distortion", [False, True])
@pytest.mark.parametrize("cameras", range(2, 9))
def test_noise_free_points_are_recovered(cameras, distortion):
    """Noise-free detections give the points back, plain and robust, for any batch shape.

    Measured: worst error ~3e-10 mm (2 views), ~1e-12 mm (3-8 views); reprojection < 2e-11 px.
    """
    rng = np.random.default_rng(cameras)
    rig = ring_rig(cameras, distortion=distortion, seed=cameras)
    for shape in [(50,), (7, 17), (1,)]:
        world = volume_points(rng, shape)
        pixels = rig.project(world)  # (C, *shape, 2)
        for robust in (False, True):
            result = triangulate(rig, pixels, robust=robust)
            assert isinstance(result, Triangulation)
            assert result.points.shape == shape + (3,) and result.points.dtype == np.float64
            assert result.reprojection_error_px.shape == shape and result.views_used.shape == shape
            assert result.inliers.shape == (cameras,) + shape
            assert distance(result.points, world).max() < 1e-3
            assert result.reprojection_error_px.max() < 1e-6
            assert np.all(result.views_used == cameras)


def test_single_point_without_batch_axes():
    rig = ring_rig(3)
    world = np.array([100.0, -200.0, 900.0])
    result = triangulate(rig, rig.project(world))  # (3, 2) -> (3,)
    assert result.points.shape == (3,) and result.views_used.shape == ()
    assert distance(result.points, world) < 1e-6


def test_project_triangulate_round_trip():
    """project(triangulate(project(X))) reproduces the pixels; Rig.triangulate delegates here."""
    rng = np.random.default_rng(3)
    rig = ring_rig(5, distortion=True, seed=3)
    world = volume_points(rng, (200,))
    pixels = rig.project(world)
    result = rig.triangulate(pixels, np.ones(pixels.shape[:-1]), robust=False)
    np.testing.assert_allclose(result.points, world, atol=1e-6, rtol=0)
    np.testing.assert_allclose(rig.project(result.points), pixels, atol=1e-6, rtol=0)
    assert result.points.flags.writeable is False


def test_dlt_agrees_with_svd_of_the_stacked_system():
    """The closed-form DLT equals an independent homogeneous SVD solve on noise-free data, with
    pixel projection matrices ``K [R | t]`` (measured max difference 2e-10 mm)."""
    rng = np.random.default_rng(4)
    rig = ring_rig(4, seed=4)
    world = volume_points(rng, (30,))
    pixels = rig.project(world)  # (4, 30, 2), no distortion
    projections = np.stack([c.P for c in rig])  # (4, 3, 4)
    ours = dlt(projections, pixels)
    rows = np.concatenate(
        [pixels[..., 0:1, None] * projections[:, None, 2:3] - projections[:, None, 0:1],
         pixels[..., 1:2, None] * projections[:, None, 2:3] - projections[:, None, 1:2]], axis=2
    )  # (4, 30, 2, 4)
    A = np.moveaxis(rows, 0, 1).reshape(30, 8, 4)
    h = np.linalg.svd(A)[2][:, -1]  # (30, 4)
    reference = h[:, :3] / h[:, 3:]
    np.testing.assert_allclose(ours, reference, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours, world, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------
# Missing views
@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("robust", [False, True])
def test_fewer_than_two_views_give_nan_without_warnings(robust):
    rng = np.random.default_rng(5)
    rig = ring_rig(4, seed=5)
    world = volume_points(rng, (6,))
    pixels = rig.project(world)  # (4, 6, 2)
    confidence = np.ones((4, 6))
    pixels[:, 0] = np.nan  # seen by nobody
    pixels[1:, 1] = np.nan  # seen by one camera
    confidence[1:, 2] = 0.0  # one camera with confidence
    pixels[2:, 3] = np.nan  # two views: fine
    confidence[:2, 3] = 0.0  # ... but both have confidence 0
    confidence[0, 4] = 0.0  # three views left
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = triangulate(rig, pixels, confidence, robust=robust)
    assert np.all(np.isnan(result.points[:4])) and np.all(np.isnan(result.reprojection_error_px[:4]))
    assert np.all(result.views_used[:4] == 0) and not result.inliers[:, :4].any()
    assert result.views_used[4] == 3 and result.views_used[5] == 4
    assert distance(result.points[4:], world[4:]).max() < 1e-6


@pytest.mark.filterwarnings("error")
def test_identical_rays_give_nan():
    """Two cameras at the same place looking the same way cannot triangulate: NaN, 0 views."""
    camera = look_at("a", (3000.0, 0.0, 1500.0), (0.0, 0.0, 900.0), width=1920, height=1080, focal_px=1200.0)
    twin = Camera("b", camera.width, camera.height, camera.K, camera.dist, camera.R, camera.t)
    rig = Rig((camera, twin))
    pixels = rig.project(np.array([[0.0, 0.0, 900.0], [100.0, 50.0, 1000.0]]))
    result = triangulate(rig, pixels)
    assert np.all(np.isnan(result.points)) and np.all(result.views_used == 0)


@pytest.mark.filterwarnings("error")
def test_all_missing_and_single_camera_rigs():
    rig = ring_rig(3)
    result = triangulate(rig, np.full((3, 4, 17, 2), np.nan))
    assert result.points.shape == (4, 17, 3) and np.all(np.isnan(result.points))
    single = Rig((rig[0],))
    result = triangulate(single, single.project(np.zeros((5, 3)) + [0.0, 0.0, 900.0]))
    assert np.all(np.isnan(result.points)) and np.all(result.views_used == 0)


# ------------------------------------------------------------------------------------------------
# Robustness
def _corrupt(pixels, rng, view, fraction):
    """Replace ``fraction`` of the points in ``view`` by detections 100-300 px away."""
    bad = pixels.copy()
    corrupted = rng.random(pixels.shape[1]) < fraction
    angle = rng.uniform(0.0, 2 * np.pi, corrupted.sum())
    radius = rng.uniform(100.0, 300.0, corrupted.sum())
    bad[view, corrupted] += np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1)
    return bad, corrupted


def test_robust_triangulation_survives_an_outlier_view():
    """4 cameras, 2 px noise, 20 % of the joints in one view moved 100-300 px.

    Measured (3000 points, seed 6), median 3D error in mm, all joints / corrupted joints:
      outlier-free plain DLT 4.8 / 4.8;
      robust with outliers 5.0 / 5.4 (1.12x; the corrupted view is dropped for 100 % of them);
      plain DLT with outliers 5.5 / 219 (45x). Over all joints the median hides a 20 %
      corruption, so the assertions look at the corrupted joints and the 90th percentile.
    """
    rng = np.random.default_rng(6)
    rig = ring_rig(4, distortion=True, seed=6)
    world = volume_points(rng, (3000,))
    clean = rig.project(world) + rng.normal(0.0, 2.0, (4, 3000, 2))
    bad, corrupted = _corrupt(clean, rng, view=2, fraction=0.2)
    reference = distance(triangulate(rig, clean, robust=False).points, world)
    robust = triangulate(rig, bad)
    plain = triangulate(rig, bad, robust=False)
    robust_error = distance(robust.points, world)
    plain_error = distance(plain.points, world)
    ref_corrupted = np.median(reference[corrupted])
    assert np.median(robust_error[corrupted]) < 1.5 * ref_corrupted
    assert np.median(robust_error) < 1.5 * np.median(reference)
    assert np.median(plain_error[corrupted]) > 5.0 * ref_corrupted
    assert np.percentile(robust_error, 90) < 1.5 * np.percentile(reference, 90)
    assert np.percentile(plain_error, 90) > 5.0 * np.percentile(reference, 90)
    # The corrupted view is the one dropped, and robust weighting does not hurt clean data.
    assert np.mean(~robust.inliers[2, corrupted]) > 0.95
    assert np.mean(robust.inliers[:, ~corrupted]) > 0.99
    assert np.median(robust.reprojection_error_px) < 5.0
    assert np.median(distance(triangulate(rig, clean).points, world)) < 1.1 * np.median(reference)


def test_three_views_one_wrong_drops_that_view():
    """With three views the pair median cannot tell; rejection by reprojection error does.

    Measured: the wrong view is dropped for 97 % of the points (the rest reproject within the
    60 px threshold); median error 4.9 mm (3.7 mm from the clean detections).
    """
    rng = np.random.default_rng(7)
    rig = ring_rig(3, seed=7)
    world = volume_points(rng, (500,))
    clean = rig.project(world) + rng.normal(0.0, 1.0, (3, 500, 2))
    bad, corrupted = _corrupt(clean, rng, view=0, fraction=1.0)
    result = triangulate(rig, bad)
    assert np.mean(~result.inliers[0]) > 0.95 and np.mean(result.views_used == 2) > 0.95
    assert np.median(distance(result.points, world)) < 15.0


@pytest.mark.parametrize("cameras", [4, 6])
def test_robust_beats_plain_on_simulated_detections(cameras):
    """The defaults on the project's detector simulator (medium preset: heavy-tailed noise, swaps,
    outliers, confidences that fall with the error), a 10 s exercise routine, 3 random rigs.

    Measured mean (p95) 3D error, plain -> robust: 4 cameras 28.2 (63) -> 24.7 (52) mm, x0.87;
    6 cameras 22.8 (50) -> 18.3 (36) mm, x0.81.
    """
    from models.synthetic.dataset import make_multiview
    from models.synthetic.motion import demo_routine
    from models.synthetic.rigs import random_rig

    plain, robust = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        motion = demo_routine(10.0, 30.0, seed=seed)  # (T, 17, 3) mm
        rig = random_rig(rng, cameras)
        sample = make_multiview(motion, rig, "medium", rng)
        for results, is_robust in ((plain, False), (robust, True)):
            points = triangulate(rig, sample.keypoints, sample.confidence, robust=is_robust).points
            results.append(distance(points, motion).ravel())
    ratio = np.nanmean(np.concatenate(robust)) / np.nanmean(np.concatenate(plain))
    assert ratio < 0.95


# ------------------------------------------------------------------------------------------------
# Confidence and reprojection error
@pytest.mark.parametrize("robust", [False, True])
def test_zero_confidence_view_is_ignored_exactly(robust):
    rng = np.random.default_rng(8)
    rig = ring_rig(5, distortion=True, seed=8)
    world = volume_points(rng, (400,))
    pixels = rig.project(world) + rng.normal(0.0, 2.0, (5, 400, 2))
    pixels, _ = _corrupt(pixels, rng, view=4, fraction=0.2)
    confidence = rng.uniform(0.3, 1.0, (5, 400))
    pixels[1] += 500.0  # garbage in the view that confidence 0 switches off
    confidence[1] = 0.0
    keep = [0, 2, 3, 4]
    result = triangulate(rig, pixels, confidence, robust=robust)
    without = triangulate(rig.select([rig.names[i] for i in keep]), pixels[keep], confidence[keep], robust=robust)
    np.testing.assert_allclose(result.points, without.points, atol=1e-9, rtol=0)
    np.testing.assert_allclose(result.reprojection_error_px, without.reprojection_error_px, atol=1e-9, rtol=0)
    np.testing.assert_array_equal(result.views_used, without.views_used)
    assert not result.inliers[1].any()


def test_confidence_weights_the_views():
    """A low-confidence noisy view moves the point less than a full-confidence one.

    Measured: median error 0.47 mm with confidence 0.05 on the noisy view, 6.0 mm with 1.
    """
    rng = np.random.default_rng(9)
    rig = ring_rig(4, seed=9)
    world = volume_points(rng, (300,))
    pixels = rig.project(world)
    pixels[0] += rng.normal(0.0, 6.0, (300, 2))
    low = np.ones((4, 300))
    low[0] = 0.05
    err_low = distance(triangulate(rig, pixels, low, robust=False).points, world)
    err_full = distance(triangulate(rig, pixels, robust=False).points, world)
    assert np.median(err_low) < 0.3 * np.median(err_full)


def test_reprojection_error_matches_an_independent_computation():
    rng = np.random.default_rng(10)
    rig = ring_rig(4, distortion=True, seed=10)
    world = volume_points(rng, (5, 17))
    pixels = rig.project(world) + rng.normal(0.0, 3.0, (4, 5, 17, 2))
    pixels, _ = _corrupt(pixels.reshape(4, 85, 2), rng, view=1, fraction=0.3)
    pixels = pixels.reshape(4, 5, 17, 2)
    result = triangulate(rig, pixels)
    # cv2.projectPoints through Camera.project, RMS over the inlier views.
    projected = np.stack([c.project(result.points) for c in rig])  # (4, 5, 17, 2)
    per_view = np.linalg.norm(projected - pixels, axis=-1)  # (4, 5, 17)
    expected = np.sqrt((per_view**2 * result.inliers).sum(axis=0) / result.inliers.sum(axis=0))
    np.testing.assert_allclose(result.reprojection_error_px, expected, rtol=1e-9, atol=1e-9)
    confidence = np.ones((4, 5, 17))
    confidence[3, 0] = 0.0
    errors = reprojection_error(rig, result.points, pixels, confidence)
    assert errors.shape == (4, 5, 17) and np.all(np.isnan(errors[3, 0]))
    np.testing.assert_allclose(errors[:3], per_view[:3], rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------------------------
# Bad input
def test_wrong_shapes_raise_shape_error_naming_the_shapes():
    rig = ring_rig(3)
    with pytest.raises(ShapeError, match=r"C=3.*\(4, 10, 2\)"):
        triangulate(rig, np.zeros((4, 10, 2)))
    with pytest.raises(ShapeError, match=r"\(3, 10, 3\)"):
        triangulate(rig, np.zeros((3, 10, 3)))
    with pytest.raises(ShapeError, match=r"\(3, 10\).*\(3, 11\)"):
        triangulate(rig, np.zeros((3, 10, 2)), np.ones((3, 11)))
    with pytest.raises(ShapeError, match=r"points3d"):
        reprojection_error(rig, np.zeros((9, 3)), np.zeros((3, 10, 2)))
    with pytest.raises(ShapeError, match=r"projections"):
        dlt(np.zeros((3, 4, 4)), np.zeros((3, 10, 2)))


def test_confidence_out_of_range_or_nan_is_an_error():
    rig = ring_rig(2)
    pixels = rig.project(np.array([[0.0, 0.0, 900.0], [10.0, 0.0, 900.0]]))
    with pytest.raises(CrossviewError, match=r"\[0, 1\]"):
        triangulate(rig, pixels, np.full((2, 2), 1.5))
    with pytest.raises(CrossviewError, match=r"\[0, 1\]"):
        triangulate(rig, pixels, np.full((2, 2), -0.1))
    with pytest.raises(CrossviewError, match="NaN"):
        triangulate(rig, pixels, np.array([[1.0, np.nan], [1.0, 1.0]]))
    pixels[0, 1] = np.nan  # NaN confidence for a missing point is fine
    result = triangulate(rig, pixels, np.array([[1.0, np.nan], [1.0, 1.0]]))
    assert result.views_used.tolist() == [2, 0]


# ------------------------------------------------------------------------------------------------
# Lens model
LENSES = {
    "5": [-0.11, 0.015, 4e-4, -3e-4, -0.004],
    "4": [0.04, -0.01, -2e-4, 1e-4],
    "8 rational": [0.3, -0.05, 3e-4, 2e-4, 0.01, 0.35, -0.04, 0.012],
    "12 thin prism": [-0.1, 0.01, 2e-4, -1e-4, 0.002, 0.0, 0.0, 0.0, 1e-3, -2e-4, -5e-4, 1e-4],
}


@pytest.mark.parametrize("lens", sorted(LENSES))
def test_vectorised_lens_model_matches_opencv(lens):
    """Undistortion matches cv2.undistortPoints and projection matches cv2.projectPoints.

    Measured: < 1e-12 px both ways over the whole 1920x1080 image.
    """
    camera = look_at("c", (3000.0, 500.0, 1500.0), (0.0, 0.0, 900.0), width=1920, height=1080,
                     focal_px=1300.0, dist=LENSES[lens])
    rng = np.random.default_rng(11)
    pixels = rng.uniform((0.0, 0.0), (1919.0, 1079.0), (2000, 2))
    ours = normalized_from_pixels(camera, pixels)
    theirs = cv2.undistortPoints(pixels.reshape(-1, 1, 2), camera.K, camera.dist,
                                 criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-15)).reshape(-1, 2)
    assert np.abs(ours - theirs).max() * camera.K[0, 0] < 1e-6
    world = volume_points(rng, (2000,))
    cam_frame = camera.to_camera(world)
    opencv, _ = cv2.projectPoints(cam_frame.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), camera.K, camera.dist)
    np.testing.assert_allclose(project_points(camera, world), opencv.reshape(-1, 2), atol=1e-6, rtol=0)
    pixels[:5] = np.nan
    assert np.all(np.isnan(normalized_from_pixels(camera, pixels)[:5]))


def test_models_without_a_numpy_lens_fall_back_to_opencv():
    """Tilted (14-coefficient) and fisheye cameras still project and triangulate exactly."""
    tilted = look_at("t", (3000.0, 0.0, 1500.0), (0.0, 0.0, 900.0), width=1920, height=1080, focal_px=1300.0,
                     dist=[-0.1, 0.01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.001, -0.002])
    base = look_at("f", (0.0, 3000.0, 1500.0), (0.0, 0.0, 900.0), width=1920, height=1080, focal_px=900.0)
    fisheye = Camera("f", 1920, 1080, base.K, [0.05, -0.01, 0.002, -0.0005], base.R, base.t, model="fisheye")
    rig = Rig((tilted, fisheye, ring_rig(1, distortion=True)[0]))
    world = volume_points(np.random.default_rng(12), (100,))
    cam_frame = fisheye.to_camera(world).reshape(-1, 1, 3)
    opencv, _ = cv2.fisheye.projectPoints(cam_frame, np.zeros((3, 1)), np.zeros((3, 1)), fisheye.K, fisheye.dist)
    np.testing.assert_allclose(project_points(fisheye, world), opencv.reshape(-1, 2), atol=1e-6, rtol=0)
    result = triangulate(rig, rig.project(world))
    assert distance(result.points, world).max() < 1e-3


def test_bench_quick_run_returns_a_table():
    """``crossview bench triangulation`` in quick mode: the table's shape, not its speed."""
    from app.bench.triangulation import run

    result = run(quick=True)
    assert result["name"] == "triangulation" and result["title"] and result["notes"]
    assert len(result["rows"]) == 12 and all(len(row) == len(result["columns"]) for row in result["rows"])
    assert {(row[0], row[1], row[2]) for row in result["rows"]} == {
        (views, mode, distortion) for views in (2, 4, 8) for mode in ("dlt", "robust") for distortion in ("no", "yes")
    }
    assert all(row[3] > 0 and row[4] > 0 for row in result["rows"])
