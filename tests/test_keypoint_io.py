"""Reading 2D keypoints in every supported layout, and rejecting bad files with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calibration.errors import CrossviewError, InputFileError
from models.keypoint_io import (
    Poses2D,
    BODY25_TO_COCO17,
    load_poses2d,
    save_poses2d,
    save_poses3d,
)
from models.skeleton import get_skeleton


def _random_poses(rng, T=6, C=3, J=17, joint_set="coco17") -> Poses2D:
    kp = rng.uniform(0, 1000, size=(T, C, J, 2))
    conf = rng.uniform(0.1, 1.0, size=(T, C, J))
    kp[0, 1, 3] = np.nan
    conf[0, 1, 3] = 0.0
    return Poses2D(kp, conf, tuple(f"cam{c}" for c in range(C)), joint_set, timestamps=np.arange(T) / 30.0)


def test_npz_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    poses = _random_poses(rng)
    save_poses2d(poses, tmp_path / "poses2d.npz")
    back = load_poses2d(tmp_path / "poses2d.npz")
    assert back.camera_names == poses.camera_names and back.joint_set == "coco17"
    np.testing.assert_allclose(back.keypoints, poses.keypoints, atol=1e-3)  # stored as float32 px
    np.testing.assert_allclose(back.confidence, poses.confidence, atol=1e-6)
    np.testing.assert_array_equal(back.timestamps, poses.timestamps)
    # A take folder holding poses2d.npz reads the same.
    assert load_poses2d(tmp_path).num_frames == 6


def test_missing_is_nan_with_zero_confidence() -> None:
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 100, size=(2, 2, 17, 2))
    conf = np.ones((2, 2, 17))
    kp[0, 0, 0] = np.nan  # NaN point, confidence 1 -> confidence 0
    conf[1, 1, 5] = 0.0  # confidence 0, finite point -> NaN point
    poses = Poses2D(kp, conf, ("a", "b"), "coco17")
    assert poses.confidence[0, 0, 0] == 0.0
    assert np.isnan(poses.keypoints[1, 1, 5]).all()


def _write_openpose(root: Path, keypoints: np.ndarray, conf: np.ndarray, names, extra_person=None) -> None:
    """keypoints (T, C, J, 2), conf (T, C, J) -> root/<cam>_json/<cam>_<frame>_keypoints.json."""
    T, C, J, _ = keypoints.shape
    for c, name in enumerate(names):
        folder = root / f"{name}_json"
        folder.mkdir(parents=True)
        for t in range(T):
            flat = np.concatenate([np.nan_to_num(keypoints[t, c]), conf[t, c, :, None]], axis=1).ravel()
            people = [{"person_id": [-1], "pose_keypoints_2d": flat.tolist()}]
            if extra_person is not None:
                people.insert(0, {"person_id": [-1], "pose_keypoints_2d": extra_person.tolist()})
            (folder / f"{name}_{t:06d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))


def test_openpose_body25_folders_map_to_coco(tmp_path: Path) -> None:
    """BODY_25 JSON (as OpenPose/Pose2Sim write it) reads as COCO-17 in the right joint order;
    a second, less confident person in the view is ignored."""
    rng = np.random.default_rng(2)
    T, C = 4, 2
    body25 = rng.uniform(10, 900, size=(T, C, 25, 2))
    conf = rng.uniform(0.3, 0.9, size=(T, C, 25))
    conf[1, 0, 4] = 0.0  # right wrist undetected in one frame (OpenPose writes 0, 0, 0)
    ghost = np.concatenate([rng.uniform(0, 50, size=(25, 2)), np.full((25, 1), 0.05)], axis=1).ravel()
    _write_openpose(tmp_path, body25, conf, ["camA", "camB"], extra_person=ghost)
    poses = load_poses2d(tmp_path)
    assert poses.joint_set == "coco17" and poses.camera_names == ("camA", "camB")
    coco = get_skeleton("coco17")
    expected = body25[:, :, list(BODY25_TO_COCO17)]
    np.testing.assert_allclose(poses.keypoints[0], expected[0])
    # BODY_25 index 4 is the right wrist; COCO's right_wrist is 10.
    assert coco.joints[10] == "right_wrist" and np.isnan(poses.keypoints[1, 0, 10]).all()
    assert poses.confidence[1, 0, 10] == 0.0


def test_openpose_halpe26_keeps_the_coco_part(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    halpe = rng.uniform(10, 900, size=(3, 2, 26, 2))
    conf = rng.uniform(0.3, 0.9, size=(3, 2, 26))
    _write_openpose(tmp_path, halpe, conf, ["c1", "c2"])
    poses = load_poses2d(tmp_path)
    np.testing.assert_allclose(poses.keypoints, halpe[:, :, :17])


def test_dlc_csv_folder(tmp_path: Path) -> None:
    """DeepLabCut-style CSVs with H36M joint names (any column order) read in skeleton order."""
    rng = np.random.default_rng(4)
    joints = list(get_skeleton("h36m17").joints)
    shuffled = list(rng.permutation(joints))
    truth = {}
    for cam in ("left", "right"):
        values = rng.uniform(0, 500, size=(5, 17, 3))
        values[..., 2] = rng.uniform(0, 1, size=(5, 17))
        truth[cam] = values
        lines = [
            "scorer," + ",".join(["dlc"] * 51),
            "bodyparts," + ",".join(p for p in shuffled for _ in range(3)),
            "coords," + ",".join(["x", "y", "likelihood"] * 17),
        ]
        for t in range(5):
            row = [values[t, joints.index(p)] for p in shuffled]
            lines.append(f"{t}," + ",".join(f"{v:.6f}" for triple in row for v in triple))
        (tmp_path / f"{cam}.csv").write_text("\n".join(lines) + "\n")
    poses = load_poses2d(tmp_path)
    assert poses.joint_set == "h36m17" and poses.camera_names == ("left", "right")
    np.testing.assert_allclose(poses.keypoints[:, 0], truth["left"][..., :2], atol=1e-5)
    np.testing.assert_allclose(poses.confidence[:, 1], truth["right"][..., 2], atol=1e-5)


def test_freemocap_npy(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    data = rng.uniform(0, 700, size=(3, 8, 75, 3))  # body 33 + hands 42
    data[..., 2] = rng.uniform(0, 1, size=(3, 8, 75))
    path = tmp_path / "mediapipe_2dData_numCams_numFrames_numTrackedPoints_pixelXY.npy"
    np.save(path, data)
    poses = load_poses2d(path)
    assert poses.joint_set == "blazepose33" and poses.keypoints.shape == (8, 3, 33, 2)
    np.testing.assert_allclose(poses.keypoints[2, 1], data[1, 2, :33, :2])
    named = load_poses2d(path, camera_names=("a", "b", "c"))
    assert named.camera_names == ("a", "b", "c")


def test_save_poses3d_writes_npz_and_csv(tmp_path: Path) -> None:
    points = np.arange(2 * 17 * 3, dtype=float).reshape(2, 17, 3)
    points[1, 4] = np.nan
    npz, csv_path = save_poses3d(tmp_path, points, np.ones((2, 17)), np.full((2, 17), 3), timestamps=np.array([0.0, 0.5]))
    with np.load(npz) as data:
        np.testing.assert_array_equal(data["points"], points)
        assert str(data["units"]) == "mm" and list(data["joint_names"])[0] == "pelvis"
    lines = csv_path.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:5] == ["frame", "time_s", "pelvis_x", "pelvis_y", "pelvis_z"] and len(header) == 2 + 51
    row = lines[2].split(",")
    assert row[2 + 4 * 3] == ""  # the missing joint is an empty cell, not "nan"
    assert float(row[2 + 3]) == pytest.approx(points[1, 1, 0])


# ------------------------------------------------------------------------------------------------
# Bad input: every case is an InputFileError with a message naming the file.
def _bad_npz_cases(tmp_path: Path, rng) -> list[Path]:
    good = _random_poses(rng)
    base = {
        "keypoints": good.keypoints,
        "confidence": good.confidence,
        "camera_names": np.array(good.camera_names),
        "joint_set": np.array("coco17"),
    }
    variants = {
        "missing_conf": {k: v for k, v in base.items() if k != "confidence"},
        "bad_joint_set": {**base, "joint_set": np.array("smpl24")},
        "wrong_J": {**base, "keypoints": base["keypoints"][:, :, :5], "confidence": base["confidence"][:, :, :5]},
        "conf_shape": {**base, "confidence": base["confidence"][:, :2]},
        "kp_3d": {**base, "keypoints": np.zeros((6, 3, 17, 3))},
        "names_count": {**base, "camera_names": np.array(["a", "b"])},
        "names_repeat": {**base, "camera_names": np.array(["a", "a", "b"])},
        "conf_range": {**base, "confidence": base["confidence"] * 5},
        "conf_nan": {**base, "confidence": np.full_like(base["confidence"], np.nan)},
        "inf": {**base, "keypoints": np.full_like(base["keypoints"], np.inf)},
        "ts_shape": {**base, "timestamps": np.zeros(3)},
        "names_numeric": {**base, "camera_names": np.array([1, 2, 3])},
        "kp_strings": {**base, "keypoints": np.full((6, 3, 17, 2), "x")},
    }
    paths = []
    for name, arrays in variants.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        paths.append(path)
    whole = tmp_path / "whole.npz"
    np.savez(whole, **base)
    data = whole.read_bytes()
    for cut in rng.integers(1, len(data) - 1, size=12):
        path = tmp_path / f"truncated_{cut}.npz"
        path.write_bytes(data[:cut])
        paths.append(path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(rng.integers(0, 256, size=500, dtype=np.uint8).tobytes())
    paths.append(garbage)
    (tmp_path / "empty.npz").write_bytes(b"")
    paths.append(tmp_path / "empty.npz")
    return paths


def test_bad_npz_files_give_clear_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    for path in _bad_npz_cases(tmp_path, rng):
        with pytest.raises(InputFileError) as info:
            load_poses2d(path)
        assert path.name in str(info.value), str(info.value)


def test_bad_openpose_files_give_clear_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    cases = {
        "not_json": b"{ this is not json",
        "binary": rng.integers(0, 256, size=200, dtype=np.uint8).tobytes(),
        "odd_count": json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 50}]}).encode(),
        "unknown_count": json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 60}]}).encode(),
        "people_not_list_items": json.dumps({"people": ["x"]}).encode(),
        "top_level_list": json.dumps([1, 2, 3]).encode(),
        "values_not_numbers": json.dumps({"people": [{"pose_keypoints_2d": ["a"] * 51}]}).encode(),
    }
    for name, payload in cases.items():
        root = tmp_path / name
        (root / "cam1_json").mkdir(parents=True)
        (root / "cam1_json" / "f_000000_keypoints.json").write_bytes(payload)
        with pytest.raises(CrossviewError) as info:
            load_poses2d(root)
        assert "cam1_json" in str(info.value) or name in str(info.value), f"{name}: {info.value}"


def test_missing_and_unknown_paths(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        load_poses2d(tmp_path / "nope.npz")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputFileError, match="no 2D keypoints found"):
        load_poses2d(tmp_path / "empty_dir")
    (tmp_path / "k.txt").write_text("1 2 3")
    with pytest.raises(InputFileError, match="unsupported"):
        load_poses2d(tmp_path / "k.txt")
