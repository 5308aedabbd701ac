"""Pose metrics: MPJPE, P-MPJPE, N-MPJPE, PCK, AUC, PSS and evaluate()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from models.synthetic.mocap import shared_data_dir
from calibration.errors import CrossviewError, ShapeError
from models.metrics import (
    PoseStructureScorer,
    auc,
    evaluate,
    mpjpe,
    n_mpjpe,
    normalize_poses,
    p_mpjpe,
    pck,
    per_joint_error,
    procrustes_align,
    pss,
    root_relative,
)

# A standing H36M-17 pose, millimetres, pelvis at the origin, Z up.
BASE_POSE = np.array(
    [
        [0, 0, 0],  # pelvis
        [-120, 0, -10],  # r_hip
        [-125, 10, -440],  # r_knee
        [-120, 30, -860],  # r_ankle
        [120, 0, -10],  # l_hip
        [125, 10, -440],  # l_knee
        [120, 30, -860],  # l_ankle
        [0, 10, 230],  # spine
        [0, 0, 480],  # thorax
        [0, -40, 590],  # neck
        [0, -10, 700],  # head
        [170, 0, 470],  # l_shoulder
        [190, 0, 190],  # l_elbow
        [200, -40, -60],  # l_wrist
        [-170, 0, 470],  # r_shoulder
        [-190, 0, 190],  # r_elbow
        [-200, -40, -60],  # r_wrist
    ],
    dtype=np.float64,
)


def _poses(rng: np.random.Generator, n: int, spread_mm: float = 80.0) -> np.ndarray:
    """(n, 17, 3) varied root-relative poses: BASE_POSE with smooth random joint offsets."""
    offsets = rng.normal(scale=spread_mm, size=(n, 17, 3))
    offsets[:, 0] = 0.0  # keep the pelvis at the origin
    return BASE_POSE + offsets


def _horn_similarity(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x (J, 3) aligned to y by Horn's quaternion method (an eigenproblem, not an SVD)."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    a, b = x - mx, y - my
    s = a.T @ b  # s[i, j] = sum a_i b_j
    sxx, sxy, sxz = s[0]
    syx, syy, syz = s[1]
    szx, szy, szz = s[2]
    n = np.array(
        [
            [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
            [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
            [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
            [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
        ]
    )
    values, vectors = np.linalg.eigh(n)
    w, qx, qy, qz = vectors[:, np.argmax(values)]
    rotation = Rotation.from_quat([qx, qy, qz, w]).as_matrix()
    rotated = a @ rotation.T
    scale = (rotated * b).sum() / (a * a).sum()
    return scale * rotated + my


def _optimised_similarity(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x (J, 3) aligned to y by numerical least squares over rotation vector, log scale, shift."""

    def residual(params):
        rotation = Rotation.from_rotvec(params[:3]).as_matrix()
        return (np.exp(params[3]) * x @ rotation.T + params[4:] - y).ravel()

    best = None
    for start in Rotation.from_euler("z", [[0], [90], [180], [270]], degrees=True).as_rotvec():
        initial = np.concatenate([start, [0.0], y.mean(0) - x.mean(0)])
        fit = least_squares(residual, initial, x_scale="jac", xtol=1e-15, ftol=1e-15, gtol=1e-15)
        if best is None or fit.cost < best.cost:
            best = fit
    rotation = Rotation.from_rotvec(best.x[:3]).as_matrix()
    return np.exp(best.x[3]) * x @ rotation.T + best.x[4:]


def test_identical_poses_score_perfectly():
    rng = np.random.default_rng(0)
    poses = _poses(rng, 80)
    assert mpjpe(poses, poses) == 0.0
    assert p_mpjpe(poses, poses) == pytest.approx(0.0, abs=1e-9)
    assert n_mpjpe(poses, poses) == pytest.approx(0.0, abs=1e-9)
    assert pck(poses, poses) == 100.0
    assert auc(poses, poses) == 100.0
    assert pss(poses, poses, k=10) == 1.0


def test_similarity_copy_has_zero_p_mpjpe_but_not_mpjpe():
    """Rotated, scaled (x0.8..1.2) and shifted copies: P-MPJPE below 1e-9 mm."""
    rng = np.random.default_rng(1)
    target = _poses(rng, 20)
    rotations = Rotation.random(20, random_state=2).as_matrix()  # (N, 3, 3)
    scales = rng.uniform(0.8, 1.2, size=(20, 1, 1))
    shifts = rng.normal(scale=500.0, size=(20, 1, 3))
    pred = scales * np.einsum("nik,njk->nji", rotations, target) + shifts
    assert p_mpjpe(pred, target) < 1e-9
    assert mpjpe(pred, target) > 100.0
    np.testing.assert_allclose(procrustes_align(pred, target), target, atol=1e-9)


def test_scaled_copy_has_zero_n_mpjpe():
    rng = np.random.default_rng(3)
    target = _poses(rng, 10)
    pred = target * rng.uniform(0.7, 1.4, size=(10, 1, 1))
    assert n_mpjpe(pred, target) < 1e-9
    assert mpjpe(pred, target) > 20.0
    # A shifted copy is not scale-only: N-MPJPE does not centre (VideoPose3D's convention).
    assert n_mpjpe(target + [0.0, 0.0, 100.0], target) > 10.0


def test_n_mpjpe_matches_closed_form_scale():
    rng = np.random.default_rng(4)
    target = _poses(rng, 6)
    pred = 1.1 * target + rng.normal(scale=20.0, size=target.shape)
    expected = []
    for p, t in zip(pred, target):
        s = (p * t).sum() / (p * p).sum()
        expected.append(np.linalg.norm(s * p - t, axis=-1))
    assert n_mpjpe(pred, target) == pytest.approx(np.mean(expected), rel=1e-12)
    assert n_mpjpe(pred, target) <= mpjpe(pred, target)


def test_p_mpjpe_agrees_with_independent_solvers():
    """Against Horn's quaternion solution (all samples) and numerical least squares (first 5).

    Measured agreement of the aligned joints: 1.7e-12 mm (Horn), 3e-6 mm (least_squares).
    """
    rng = np.random.default_rng(5)
    target = _poses(rng, 30)
    rotations = Rotation.random(30, random_state=6).as_matrix()
    pred = np.einsum("nik,njk->nji", rotations, target) * 0.9 + rng.normal(
        scale=40.0, size=target.shape
    )
    aligned = procrustes_align(pred, target)
    horn = np.stack([_horn_similarity(p, t) for p, t in zip(pred, target)])
    np.testing.assert_allclose(aligned, horn, atol=1e-8)
    expected = np.mean([np.linalg.norm(h - t, axis=-1) for h, t in zip(horn, target)])
    assert p_mpjpe(pred, target) == pytest.approx(expected, rel=1e-10)
    for i in range(5):
        numeric = _optimised_similarity(pred[i], target[i])
        np.testing.assert_allclose(aligned[i], numeric, atol=1e-4)  # measured 3e-6
    # With a clean rotation scipy's orthogonal Procrustes (no scale) finds the same rotation.
    x = target[0] - target[0].mean(0)
    rotation, _ = orthogonal_procrustes(x, x @ rotations[0].T)
    np.testing.assert_allclose(rotation.T, rotations[0], atol=1e-9)


def test_p_mpjpe_never_reflects():
    """A mirrored pose cannot be rotated onto its original: P-MPJPE stays large (Horn agrees)."""
    rng = np.random.default_rng(7)
    target = _poses(rng, 5)
    mirrored = target * [-1.0, 1.0, 1.0]
    aligned = procrustes_align(mirrored, target)
    for a, m, t in zip(aligned, mirrored, target):
        np.testing.assert_allclose(a, _horn_similarity(m, t), atol=1e-8)
    assert p_mpjpe(mirrored, target) > 20.0
    # The reflection itself would fit exactly: proof that the solver declined it.
    centred_t, centred_m = target[0] - target[0].mean(0), mirrored[0] - mirrored[0].mean(0)
    u, _, vt = np.linalg.svd(centred_t.T @ centred_m)
    assert np.linalg.det(u @ vt) < 0


def test_pck_and_auc_on_constructed_errors():
    # Errors 0, 50, 100, 149, 151, 200 mm along x.
    errors = np.array([0.0, 50.0, 100.0, 149.0, 151.0, 200.0])
    target = np.zeros((1, 6, 3))
    pred = target.copy()
    pred[0, :, 0] = errors
    assert pck(pred, target) == pytest.approx(100.0 * 4 / 6)
    assert pck(pred, target, threshold_mm=100.0) == pytest.approx(50.0)
    # Thresholds 0, 5, ..., 150: each error counts for the thresholds at or above it:
    # 31 + 21 + 11 + 1 + 0 + 0 = 64 of 31 * 6.
    assert auc(pred, target) == pytest.approx(100.0 * 64 / (31 * 6))
    # Thresholds 0, 50, 100, 150, 200: 5 + 4 + 3 + 2 + 1 + 1 = 16 of 5 * 6.
    assert auc(pred, target, max_mm=200.0, steps=5) == pytest.approx(100.0 * 16 / 30)
    np.testing.assert_allclose(per_joint_error(pred, target), errors[None])
    assert mpjpe(pred, target) == pytest.approx(errors.mean())


def test_nan_joints_are_left_out():
    rng = np.random.default_rng(8)
    target = _poses(rng, 12)
    pred = target + rng.normal(scale=30.0, size=target.shape)
    full = per_joint_error(pred, target)
    pred_nan, target_nan = pred.copy(), target.copy()
    pred_nan[0, 3] = np.nan
    target_nan[2, 5, 1] = np.nan
    errors = per_joint_error(pred_nan, target_nan)
    assert np.isnan(errors[0, 3]) and np.isnan(errors[2, 5])
    keep = np.ones((12, 17), bool)
    keep[0, 3] = keep[2, 5] = False
    assert mpjpe(pred_nan, target_nan) == pytest.approx(full[keep].mean())
    assert pck(pred_nan, target_nan, 40.0) == pytest.approx(100 * (full[keep] <= 40.0).mean())
    # P-MPJPE of a sample with a missing joint = P-MPJPE of that sample without the joint.
    sub = [j for j in range(17) if j != 3]
    assert p_mpjpe(pred_nan[:1], target_nan[:1]) == pytest.approx(
        p_mpjpe(pred[:1, sub], target[:1, sub]), rel=1e-12
    )
    assert n_mpjpe(pred_nan[:1], target_nan[:1]) == pytest.approx(
        n_mpjpe(pred[:1, sub], target[:1, sub]), rel=1e-12
    )
    # A sample with fewer than 3 valid joints cannot be aligned and is left out.
    pred_nan[4, 2:] = np.nan
    aligned = procrustes_align(pred_nan, target_nan)
    assert np.isnan(aligned[4]).all() and np.isfinite(aligned[5]).all()
    rest = [i for i in range(12) if i != 4]
    assert p_mpjpe(pred_nan, target_nan) == pytest.approx(
        p_mpjpe(pred_nan[rest], target_nan[rest]), rel=1e-12
    )
    # Nothing valid: NaN, not an exception or a warning turned error.
    nothing = np.full((2, 17, 3), np.nan)
    for metric in (mpjpe, p_mpjpe, n_mpjpe, pck, auc):
        assert np.isnan(metric(nothing, target[:2]))


def test_leading_axes_are_flattened():
    rng = np.random.default_rng(9)
    target = _poses(rng, 12).reshape(3, 4, 17, 3)  # (T, people, J, 3)
    pred = target + rng.normal(scale=25.0, size=target.shape)
    flat_p, flat_t = pred.reshape(-1, 17, 3), target.reshape(-1, 17, 3)
    assert mpjpe(pred, target) == pytest.approx(mpjpe(flat_p, flat_t))
    assert p_mpjpe(pred, target) == pytest.approx(p_mpjpe(flat_p, flat_t))
    assert per_joint_error(pred, target).shape == (3, 4, 17)
    assert procrustes_align(pred, target).shape == (3, 4, 17, 3)


def test_shape_errors():
    with pytest.raises(ShapeError, match="target"):
        mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)))
    with pytest.raises(ShapeError, match="pred"):
        p_mpjpe(np.zeros((2, 17, 2)), np.zeros((2, 17, 2)))
    with pytest.raises(ValueError, match="steps"):
        auc(np.zeros((1, 17, 3)), np.zeros((1, 17, 3)), steps=1)


def test_pss_identical_scaled_and_random():
    """PSS (k=20) of identical, scaled or shifted poses is 1; of unrelated poses 0.045.

    Measured with per-joint noise: 0.915 at sigma 10 mm, 0.335 at sigma 100 mm.
    """
    rng = np.random.default_rng(10)
    train = _poses(rng, 600, spread_mm=120.0)
    scorer = PoseStructureScorer.fit(train, k=20, seed=0)
    assert scorer.k == 20 and scorer.num_joints == 17
    test = _poses(rng, 200, spread_mm=120.0)
    assert pss(test, test, scorer=scorer) == 1.0
    assert pss(2.0 * test + [300.0, -50.0, 900.0], test, scorer=scorer) == 1.0
    unrelated = _poses(rng, 200, spread_mm=120.0)
    assert pss(unrelated, test, scorer=scorer) < 0.15
    # Small errors keep most poses in their cluster; PSS falls as the error grows.
    small = pss(test + rng.normal(scale=10.0, size=test.shape), test, scorer=scorer)
    large = pss(test + rng.normal(scale=100.0, size=test.shape), test, scorer=scorer)
    assert small > 0.8 and large < small


def test_pss_scorer_details():
    rng = np.random.default_rng(11)
    train = _poses(rng, 300)
    a = PoseStructureScorer.fit(train, k=10, seed=3)
    b = PoseStructureScorer.fit(train, k=10, seed=3)
    np.testing.assert_array_equal(a.centroids, b.centroids)  # seeded
    assert not a.centroids.flags.writeable
    normalised = normalize_poses(train)
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=1), 1.0)
    np.testing.assert_array_equal(normalised[:, :3], 0.0)  # root-centred
    incomplete = train[:3].copy()
    incomplete[1, 4] = np.nan
    labels = a.assign(incomplete)
    assert labels[1] == -1 and labels[0] >= 0 and labels[2] >= 0
    # PSS counts only samples complete in both.
    assert pss(incomplete, train[:3], scorer=a) == 1.0
    with pytest.raises(CrossviewError, match="at least 50 distinct"):
        PoseStructureScorer.fit(np.repeat(train[:1], 100, axis=0), k=50)
    with pytest.raises(ShapeError):
        a.assign(train[:, :16])


def test_evaluate_reports_every_metric():
    rng = np.random.default_rng(12)
    target = _poses(rng, 120) + [0.0, 2000.0, 950.0]  # absolute positions, pelvis off origin
    pred = target + rng.normal(scale=20.0, size=target.shape)
    pred[0, 3] = np.nan
    pred[1, 0] = np.nan  # a missing root: sample 1 drops out of the root-relative metrics
    result = evaluate(pred, target, per_joint=True, pss_k=10)
    assert result["num_samples"] == 120 and result["num_valid_joints"] == 120 * 17 - 2
    assert result["absolute_mpjpe_mm"] == pytest.approx(mpjpe(pred, target))
    rel_p, rel_t = root_relative(pred), root_relative(target)
    assert np.isnan(rel_p[1]).all()
    assert result["mpjpe_mm"] == pytest.approx(mpjpe(rel_p, rel_t))
    assert result["p_mpjpe_mm"] == pytest.approx(p_mpjpe(rel_p, rel_t))
    assert result["n_mpjpe_mm"] == pytest.approx(n_mpjpe(rel_p, rel_t))
    assert result["pck_percent"] == pytest.approx(pck(rel_p, rel_t))
    assert result["auc_percent"] == pytest.approx(auc(rel_p, rel_t))
    assert result["pss_k"] == 10 and 0.0 <= result["pss"] <= 1.0
    assert result["p_mpjpe_mm"] < result["mpjpe_mm"]
    per_joint = result["per_joint_mpjpe_mm"]
    assert per_joint.shape == (17,) and result["per_joint_p_mpjpe_mm"].shape == (17,)
    assert per_joint[0] == 0.0  # the root, after root-centring
    np.testing.assert_allclose(per_joint, np.nanmean(per_joint_error(rel_p, rel_t), axis=0))
    # root=None scores the positions as given.
    given = evaluate(pred, target, root=None, pss_k=10)
    assert given["mpjpe_mm"] == pytest.approx(mpjpe(pred, target))
    assert given["p_mpjpe_mm"] == pytest.approx(p_mpjpe(pred, target))
    # Too few poses for k-means: PSS is NaN, the rest still computed.
    few = evaluate(pred[:5], target[:5], pss_k=50)
    assert np.isnan(few["pss"]) and np.isfinite(few["mpjpe_mm"])




def test_pss_on_cmu_motion():
    """k=50 fitted on CMU train poses (every 10th frame), scored on test poses (every 5th).

    Measured: identical 1.000; per-joint noise sigma 20 mm 0.927 (MPJPE 31.9 mm); test poses
    paired with the pose of another random test frame 0.118.
    """
    path = shared_data_dir() / "cmu_mocap" / "cmu_mocap.npz"
    if not path.exists():
        pytest.skip(f"shared CMU data not found at {path}")
    data = np.load(path)
    names = [str(n) for n in data["sequences"]]
    train = np.concatenate([data[f"{n}/h36m17"][::10] for n in names if n.startswith("train/")])
    test = np.concatenate([data[f"{n}/h36m17"][::5] for n in names if n.startswith("test/")])
    train = train - train[:, :1]  # root-relative, mm
    test = (test - test[:, :1]).astype(np.float64)
    scorer = PoseStructureScorer.fit(train, k=50, seed=0)
    rng = np.random.default_rng(13)
    assert pss(test, test, scorer=scorer) == 1.0
    noisy = test + rng.normal(scale=20.0, size=test.shape)
    assert pss(noisy, test, scorer=scorer) > 0.8
    shuffled = test[rng.permutation(len(test))]
    assert pss(shuffled, test, scorer=scorer) < 0.2
