"""Synthetic multi-view data: the CMU loader, random and ring rigs, and the dataset builder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.synthetic.mocap import shared_data_dir
from calibration.errors import CrossviewError, InputFileError
from models.synthetic import (
    IMAGE_SIZES,
    MotionSequence,
    centre_on_floor,
    estimate_floor_z,
    load_cmu,
    make_multiview,
    random_placement,
    random_rig,
    resample,
    ring_rig,
    synthetic_dataset,
    visible_in_image,
)




CMU_PATH = shared_data_dir() / "cmu_mocap" / "cmu_mocap.npz"
needs_cmu = pytest.mark.skipif(not CMU_PATH.is_file(), reason=f"shared CMU motion capture not found at {CMU_PATH}")

# A standing person facing +Y (their right is +X), H36M-17 order, mm, floor at z = 0.
STANDING = np.array(
    [
        [0, 0, 950], [130, 0, 950], [130, 0, 520], [130, -20, 90], [-130, 0, 950], [-130, 0, 520],
        [-130, -20, 90], [0, 0, 1180], [0, 0, 1430], [0, 20, 1530], [0, 0, 1700], [-180, 0, 1420],
        [-200, 0, 1150], [-210, 30, 900], [180, 0, 1420], [200, 0, 1150], [210, 30, 900],
    ],
    dtype=np.float64,
)


def standing_people(rng: np.random.Generator, num_frames: int, max_offset_mm: float = 800.0) -> np.ndarray:
    """``(T, 17, 3)`` mm: the standing pose, turned and shifted at random in every frame."""
    yaw = rng.uniform(0, 2 * np.pi, num_frames)
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.zeros((num_frames, 3, 3))
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1
    radius = max_offset_mm * np.sqrt(rng.uniform(size=num_frames))
    heading = rng.uniform(0, 2 * np.pi, num_frames)
    offset = np.stack([radius * np.cos(heading), radius * np.sin(heading), np.zeros(num_frames)], axis=1)
    return np.einsum("tij,kj->tki", R, STANDING) + offset[:, None, :]


# --------------------------------------------------------------------------------------------
# CMU loader
@needs_cmu
def test_cmu_splits_and_shapes():
    train = load_cmu(CMU_PATH, split="train")
    test = load_cmu(CMU_PATH, split="test")
    everything = load_cmu(CMU_PATH, split=None)
    assert len(train) == 32 and len(test) == 6 and len(everything) == 38
    assert all(s.name.startswith("train/") and s.split == "train" for s in train)
    assert all(s.name.startswith("test/") and s.split == "test" for s in test)
    assert {s.name for s in everything} == {s.name for s in train} | {s.name for s in test}
    assert sum(s.num_frames for s in everything) == 40331
    for s in test:
        assert s.fps == 120.0 and s.points.shape[1:] == (17, 3) and s.points.dtype == np.float32
        assert not s.points.flags.writeable


@needs_cmu
def test_cmu_default_path_and_fps_subsampling(monkeypatch):
    monkeypatch.setenv("CROSSVIEW_SHARED_DATA", str(CMU_PATH.parent.parent))
    full = load_cmu(split="test")
    every_fourth = load_cmu(split="test", fps=30)
    for a, b in zip(full, every_fourth):
        assert b.fps == 30.0 and b.num_frames == math.ceil(a.num_frames / 4)
        np.testing.assert_array_equal(b.points, a.points[::4])
    # 50 fps is not a divisor of 120: linear interpolation at t = n / 50 s (2.4 source frames apart).
    fifty = resample(full[0], 50)
    assert fifty.num_frames == int((full[0].num_frames - 1) / 2.4) + 1
    np.testing.assert_allclose(fifty.points[0], full[0].points[0])
    expected = 0.6 * full[0].points[2] + 0.4 * full[0].points[3]
    np.testing.assert_allclose(fifty.points[1], expected, atol=1e-3)
    with pytest.raises(CrossviewError, match="cannot resample up"):
        resample(full[0], 240)


def test_cmu_missing_file_and_bad_split(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "cmu_mocap.npz"
    with pytest.raises(InputFileError, match="nowhere"):
        load_cmu(missing)
    monkeypatch.setenv("CROSSVIEW_SHARED_DATA", str(tmp_path))
    with pytest.raises(InputFileError, match="CROSSVIEW_SHARED_DATA"):
        load_cmu()
    with pytest.raises(CrossviewError, match="unknown split"):
        load_cmu(missing, split="validation")
    broken = tmp_path / "broken.npz"
    np.savez(broken, sequences=np.array(["train/a"]), fps=np.array(120.0))
    with pytest.raises(InputFileError, match="train/a/h36m17"):
        load_cmu(broken)


@needs_cmu
def test_centre_on_floor():
    """The floor estimate puts the lower ankle's 5th percentile at the ankle height (70 mm)."""
    for sequence in load_cmu(CMU_PATH, split="test", fps=30):
        centred = centre_on_floor(sequence)
        assert abs(estimate_floor_z(centred.points)) < 1e-3
        lower_ankle = np.minimum(centred.points[:, 3, 2], centred.points[:, 6, 2])
        assert abs(np.percentile(lower_ankle, 5) - 70.0) < 1e-3
        pelvis = centred.points[:, 0, :2]
        np.testing.assert_allclose(pelvis.min(axis=0) + pelvis.max(axis=0), 0.0, atol=1e-2)
        # Only a translation: bone vectors are unchanged.
        np.testing.assert_allclose(np.diff(centred.points, axis=1), np.diff(sequence.points, axis=1), atol=1e-3)


def test_motion_sequence_validation():
    with pytest.raises(CrossviewError):
        MotionSequence("x", 0.0, np.zeros((3, 17, 3)))
    with pytest.raises(CrossviewError):
        MotionSequence("x", 30.0, np.zeros((3, 17, 2)))
    source = np.zeros((3, 17, 3))
    sequence = MotionSequence("x", 30.0, source)
    source[:] = 1.0
    assert np.all(sequence.points == 0.0) and sequence.duration_s == pytest.approx(0.1)


# --------------------------------------------------------------------------------------------
# Rigs
@pytest.mark.parametrize("num_cameras", [2, 3, 4, 8])
def test_random_rig_frames_the_person(num_cameras):
    """Every camera sees a person standing within 0.8 m of the target: over 20 rigs per camera
    count, the median fraction of joints inside each image is 100 % (required: >= 95 %) and the
    worst single frame keeps >= 70 % (measured: 100 %)."""
    for seed in range(20):
        rng = np.random.default_rng([seed, num_cameras])
        rig = random_rig(rng, num_cameras)
        people = standing_people(rng, 50)
        inside = visible_in_image(rig, people).mean(axis=-1)  # (C, T)
        assert np.all(np.median(inside, axis=1) >= 0.95), (seed, np.median(inside, axis=1))
        assert inside.min() >= 0.7
        assert rig.names == tuple(f"cam_{i}" for i in range(num_cameras))


def test_random_rig_geometry():
    """Cameras look at the target (optical axis within 10 degrees; aim jitter is 150 mm), stand
    2.5-6 m away and 0.5-2.5 m high, keep the minimum azimuth separation, use the listed image
    sizes, 30-100 degree fields of view and mild distortion."""
    target = np.array([300.0, -200.0, 900.0])
    distorted = 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        num_cameras = 2 + seed % 5
        rig = random_rig(rng, num_cameras, target=target, min_separation_deg=30.0, distortion_probability=0.7)
        azimuths = []
        for camera in rig:
            to_target = target - camera.center
            axis = camera.R[2]
            angle = math.degrees(math.acos(axis @ to_target / np.linalg.norm(to_target)))
            assert angle < 10.0
            horizontal = np.linalg.norm(camera.center[:2] - target[:2])
            assert 2500.0 - 1e-6 <= horizontal <= 6000.0 + 1e-6
            assert 500.0 <= camera.center[2] <= 2500.0
            assert (camera.width, camera.height) in IMAGE_SIZES
            hfov = 2 * math.degrees(math.atan(camera.width / 2 / camera.K[0, 0]))
            assert 30.0 - 1e-6 <= hfov <= 100.0 + 1e-6
            k1, k2, p1, p2, k3 = camera.dist
            assert -0.3 <= k1 <= 0.15 and -0.15 <= k2 <= 0.15 and abs(p1) <= 0.005 and abs(p2) <= 0.005
            assert -0.02 <= k3 <= 0.1
            distorted += camera.has_distortion
            azimuths.append(math.degrees(math.atan2(*(camera.center[:2] - target[:2])[::-1])))
        azimuths = np.sort(np.array(azimuths) % 360)
        gaps = np.diff(np.concatenate([azimuths, azimuths[:1] + 360]))
        assert gaps.min() >= 30.0 - 1e-6
        if num_cameras == 2:
            assert 30.0 - 1e-6 <= gaps[0] <= 150.0 + 1e-6 or 210.0 - 1e-6 <= gaps[0] <= 330.0 + 1e-6
    assert distorted > 20


def test_random_rig_reproducible_and_checked():
    a = random_rig(np.random.default_rng(5), 4)
    b = random_rig(np.random.default_rng(5), 4)
    c = random_rig(np.random.default_rng(6), 4)
    assert a.isclose(b) and not a.isclose(c)
    with pytest.raises(CrossviewError, match="cannot be"):
        random_rig(np.random.default_rng(0), 8, min_separation_deg=50.0)
    with pytest.raises(CrossviewError):
        random_rig(np.random.default_rng(0), 0)


def test_ring_rig():
    rig = ring_rig(4, 4000.0, 1500.0, width=1920, height=1080)
    assert rig.names == ("cam_0", "cam_1", "cam_2", "cam_3")
    np.testing.assert_allclose(rig.centers[:, 2], 1500.0)
    np.testing.assert_allclose(np.linalg.norm(rig.centers[:, :2], axis=1), 4000.0)
    np.testing.assert_allclose(rig.centers[1, :2], [0.0, 4000.0], atol=1e-9)
    for camera in rig:
        centre = camera.project(np.array([0.0, 0.0, 900.0]))
        np.testing.assert_allclose(centre, [(1920 - 1) / 2, (1080 - 1) / 2], atol=1e-9)
    assert ring_rig(4).isclose(ring_rig(4))
    pair = ring_rig(2)
    cos = pair.centers[0, :2] @ pair.centers[1, :2] / 4000.0**2
    assert abs(cos) < 1e-12  # two cameras default to 90 degrees apart
    assert np.all(visible_in_image(rig, standing_people(np.random.default_rng(0), 30)))


# --------------------------------------------------------------------------------------------
# Samples and the dataset
def test_noise_free_sample_triangulates_back():
    """Clean keypoints from random rigs (all with lens distortion) triangulate back to the truth:
    measured max error 2.4e-12 mm with plain DLT (required: < 1e-3 mm)."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        rig = random_rig(rng, 2 + seed, distortion_probability=1.0)
        people = standing_people(rng, 40)
        sample = make_multiview(people, rig, "clean", rng)
        np.testing.assert_array_equal(sample.keypoints, sample.keypoints_clean)
        assert np.all(sample.confidence == 1.0)
        result = rig.triangulate(sample.keypoints, sample.confidence, robust=False)
        assert np.nanmax(np.linalg.norm(result.points - people, axis=-1)) < 1e-3


def test_make_multiview_shapes_and_sequence():
    rng = np.random.default_rng(1)
    rig = ring_rig(3)
    sequence = MotionSequence("demo", 30.0, standing_people(rng, 12))
    sample = make_multiview(sequence, rig, "medium", rng)
    assert sample.keypoints.shape == (3, 12, 17, 2) and sample.confidence.shape == (3, 12, 17)
    assert sample.keypoints_clean.shape == (3, 12, 17, 2) and sample.occluded.shape == (3, 12, 17)
    assert sample.name == "demo" and sample.fps == 30.0 and sample.num_cameras == 3
    assert not sample.keypoints.flags.writeable
    with pytest.raises(CrossviewError, match="preset"):
        make_multiview(sequence, rig, "extreme", rng)


def test_random_placement_turns_and_shifts_on_the_floor():
    rng = np.random.default_rng(2)
    people = standing_people(rng, 5, max_offset_mm=0.0)
    placed = random_placement(rng, people, max_offset_mm=1000.0)
    np.testing.assert_allclose(placed[..., 2], people[..., 2])
    bones = np.linalg.norm(np.diff(placed, axis=1), axis=-1)
    np.testing.assert_allclose(bones, np.linalg.norm(np.diff(people, axis=1), axis=-1))
    shift = placed[:, 0, :2] - people[:, 0, :2]
    assert np.all(np.linalg.norm(placed[:, 0, :2], axis=-1) <= 1000.0 + 1e-9) and np.any(shift != 0)


@needs_cmu
def test_synthetic_dataset_reproducible_and_sized():
    kwargs = dict(num_frames=60, fps=30, max_sequences=3, data_path=str(CMU_PATH))
    first = list(synthetic_dataset("test", (2, 4), "medium", seed=11, **kwargs))
    again = list(synthetic_dataset("test", (2, 4), "medium", seed=11, **kwargs))
    other = list(synthetic_dataset("test", (2, 4), "medium", seed=12, **kwargs))
    assert len(first) == len(again) == len(other) > 3
    for a, b in zip(first, again):
        assert a.name == b.name and a.rig.isclose(b.rig)
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.confidence, b.confidence)
        np.testing.assert_array_equal(a.points3d, b.points3d)
    assert not np.array_equal(first[0].points3d, other[0].points3d)
    # A sample does not depend on how many sequences were asked for.
    one = next(synthetic_dataset("test", (2, 4), "medium", seed=11, **{**kwargs, "max_sequences": 1}))
    np.testing.assert_array_equal(one.keypoints, first[0].keypoints)
    for sample in first:
        assert 2 <= sample.num_cameras <= 4 and 30 <= sample.num_frames <= 60
        assert sample.fps == 30.0
        # Every camera sees the (moving) person: at least 90 % of the joints in the image (measured 100 %).
        inside = visible_in_image(sample.rig, sample.points3d).mean()
        assert inside >= 0.9, (sample.name, inside)
        assert np.percentile(sample.points3d[..., 2], 1) > -50.0  # the floor is near z = 0


def test_synthetic_dataset_from_given_sequences():
    """Motions passed in (e.g. the procedural generator's) are resampled, chunked and placed."""
    rng = np.random.default_rng(4)
    walk = standing_people(rng, 90, max_offset_mm=0.0) + np.linspace([0, 0, 0], [2000, 0, 0], 90)[:, None, :]
    sequence = MotionSequence("generated/walk", 60.0, walk)
    samples = list(synthetic_dataset(None, 3, "low", seed=1, sequences=[sequence], fps=30, num_frames=20))
    # 45 frames at 30 fps: a 5-frame tail is left out.
    assert [s.name for s in samples] == ["generated/walk[0:20]", "generated/walk[20:40]"]
    assert all(s.num_cameras == 3 and s.fps == 30.0 and s.num_frames == 20 for s in samples)
    with pytest.raises(CrossviewError, match="num_cameras"):
        synthetic_dataset(None, 0, sequences=[sequence])  # checked at the call, not at the first sample
    with pytest.raises(CrossviewError, match="rig_options"):
        synthetic_dataset(None, 2, sequences=[sequence], rig_options={"target": (0, 0, 0)})


@needs_cmu
def test_medium_noise_gives_realistic_triangulation_error():
    """Plain DLT (no confidence weights) on the 'medium' preset, CMU test split at 30 fps:

    - two views of an H36M-like pair (90 degrees apart, 4.5 m, 1000 x 1000 px): MPJPE 36.6 mm
      (triangulated CPN detections on Human3.6M: ~36 mm);
    - random two-camera rigs: 43.3 mm; random four-camera rigs: 30.1 mm.
    Required: 20-50 mm for two views, four views better than two.
    """
    sequences = load_cmu(CMU_PATH, split="test", fps=30)
    figures = {}
    for label, num_cameras in (("ring", 2), ("random2", 2), ("random4", 4)):
        errors = []
        for index, sequence in enumerate(sequences):
            rng = np.random.default_rng([3, index])
            sequence = centre_on_floor(sequence)
            if label == "ring":
                rig = ring_rig(2, 4500.0, 1500.0, width=1000, height=1000, start_deg=rng.uniform(0, 360))
                rig_radius = 1000.0
            for start in range(0, sequence.num_frames, 60):
                points = np.asarray(sequence.points[start : start + 60], dtype=np.float64)
                pelvis = points[:, 0, :2]
                points = points - np.append(0.5 * (pelvis.min(axis=0) + pelvis.max(axis=0)), 0.0)
                points = random_placement(rng, points, max_offset_mm=500.0)
                if label != "ring":
                    rig_radius = max(1000.0, float(np.linalg.norm(points[..., :2], axis=-1).max()) + 100.0)
                    rig = random_rig(rng, num_cameras, volume_radius_mm=rig_radius)
                sample = make_multiview(points, rig, "medium", rng)
                estimate = rig.triangulate(sample.keypoints, None, robust=False).points
                errors.append(np.linalg.norm(estimate - points, axis=-1).ravel())
        figures[label] = float(np.nanmean(np.concatenate(errors)))
    assert 20.0 <= figures["ring"] <= 50.0
    assert 20.0 <= figures["random2"] <= 50.0
    assert figures["random4"] < figures["random2"]
