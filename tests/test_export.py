"""Export of a take's 3D joints: CSV, JSON, TRC and C3D round trips, BVH forward kinematics, errors."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from app.export import FORMATS, export_take
from app.export.csv_json import read_csv, read_json
from app.export.take_poses import Y_UP_FROM_Z_UP, TakePoses, load_take_poses
from app.export.trc import read_trc
from calibration.errors import CrossviewError
from models.keypoint_io import save_poses3d
from models.skeleton import H36M17
from models.synthetic.motion import demo_routine

FPS = 30.0


@pytest.fixture(scope="module")
def motion() -> np.ndarray:
    """(240, 17, 3) mm, Z up: 8 s of the demo routine."""
    return demo_routine(8.0, fps=FPS)


def _take(tmp_path, points, with_times=True):
    timestamps = 12.5 + np.arange(len(points)) / FPS if with_times else None
    save_poses3d(tmp_path, points, np.zeros(points.shape[:2]), np.full(points.shape[:2], 2), timestamps=timestamps)
    return tmp_path


def _with_gaps(points: np.ndarray) -> np.ndarray:
    gappy = points.copy()
    gappy[10, 13] = np.nan  # one wrist
    gappy[20] = np.nan  # a whole frame
    return gappy


def test_frame_rate_from_timestamps_and_option(tmp_path, motion):
    take = _take(tmp_path, motion[:30])
    assert load_take_poses(take).fps == pytest.approx(FPS)
    assert load_take_poses(take, fps=25.0).fps == 25.0
    take2 = _take(tmp_path / "no_times", motion[:30], with_times=False)
    with pytest.raises(CrossviewError, match="--fps"):
        load_take_poses(take2)
    assert load_take_poses(take2, fps=60.0).times_s[1] == pytest.approx(1 / 60)


def test_csv_round_trip_keeps_values_and_gaps(tmp_path, motion):
    points = _with_gaps(motion)
    path = export_take(_take(tmp_path, points), "csv")
    assert path == tmp_path / "export" / "poses3d.csv"
    back, times = read_csv(path)
    np.testing.assert_array_equal(np.isnan(back), np.isnan(points))
    assert np.nanmax(np.abs(back - points)) <= 0.0005
    assert times[1] - times[0] == pytest.approx(1 / FPS, abs=1e-6)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:5] == ["frame", "time_s", "pelvis_x", "pelvis_y", "pelvis_z"]


def test_json_round_trip_and_schema(tmp_path, motion):
    points = _with_gaps(motion)
    path = export_take(_take(tmp_path, points), "json", out=tmp_path / "out.json")
    back, times, meta = read_json(path)
    np.testing.assert_array_equal(np.isnan(back), np.isnan(points))
    assert np.nanmax(np.abs(back - points)) <= 0.0005
    assert meta["units"] == "mm" and meta["fps"] == pytest.approx(FPS) and meta["schema_version"] == 1
    assert meta["joint_names"] == list(H36M17.joints) and len(meta["bones"]) == 16
    document = json.loads(path.read_text())
    assert document["frames"][20]["points"] == [None] * 17


def test_trc_header_and_round_trip(tmp_path, motion):
    points = _with_gaps(motion)
    path = export_take(_take(tmp_path, points), "trc")
    lines = path.read_text().splitlines()
    assert lines[0] == "PathFileType\t4\t(X/Y/Z)\tposes3d.trc"
    assert lines[1].split("\t") == [
        "DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate", "OrigDataStartFrame",
        "OrigNumFrames",
    ]  # fmt: skip
    assert lines[2].split("\t") == ["30.00", "30.00", "240", "17", "mm", "30.00", "1", "240"]
    assert lines[3].startswith("Frame#\tTime\tpelvis\t\t\tr_hip\t")
    assert lines[4].startswith("\t\tX1\tY1\tZ1\tX2\t") and lines[5] == ""
    assert lines[6].startswith("1\t12.500000\t")
    back, times, names, header = read_trc(path)
    assert names == list(H36M17.joints) and header["Units"] == "mm"
    np.testing.assert_array_equal(np.isnan(back), np.isnan(points))
    assert np.nanmax(np.abs(back - points)) <= 0.0005


def test_trc_y_up_rotates_z_up(tmp_path, motion):
    path = export_take(_take(tmp_path, motion), "trc", y_up=True)
    back, _, _, _ = read_trc(path)
    np.testing.assert_allclose(back[..., 1], motion[..., 2], atol=0.0005)  # height now on Y
    np.testing.assert_allclose(back[..., 2], -motion[..., 1], atol=0.0005)


def test_c3d_round_trip_through_the_library(tmp_path, motion):
    pytest.importorskip("c3d")
    from app.export.c3d import read_c3d

    points = _with_gaps(motion)
    path = export_take(_take(tmp_path, points), "c3d")
    back, rate, labels = read_c3d(path)
    assert rate == pytest.approx(FPS) and labels == list(H36M17.joints)
    np.testing.assert_array_equal(np.isnan(back), np.isnan(points))
    assert np.nanmax(np.abs(back - points)) <= 0.01  # float32 storage


# ------------------------------------------------------------------------------------------------
# BVH: a small parser and forward kinematics, independent of the writer
def _parse_bvh(text: str):
    """-> joints [(name, parent index, offset (3,), channel names)], end sites {joint index: offset},
    motion (T, channels), frame time."""
    tokens = text.split()
    joints, end_sites, stack = [], {}, []
    i = 1  # after HIERARCHY
    while tokens[i] != "MOTION":
        token = tokens[i]
        if token in ("ROOT", "JOINT"):
            joints.append([tokens[i + 1], stack[-1] if stack else -1, None, []])
            stack.append(len(joints) - 1)
            i += 2
        elif token == "End":
            offset = np.array(tokens[i + 4 : i + 7], dtype=float)  # End Site { OFFSET x y z }
            end_sites[stack[-1]] = offset
            i += 8
        elif token == "OFFSET":
            joints[stack[-1]][2] = np.array(tokens[i + 1 : i + 4], dtype=float)
            i += 4
        elif token == "CHANNELS":
            count = int(tokens[i + 1])
            joints[stack[-1]][3] = tokens[i + 2 : i + 2 + count]
            i += 2 + count
        elif token == "}":
            stack.pop()
            i += 1
        else:  # "{"
            i += 1
    frames = int(tokens[i + 2])
    frame_time = float(tokens[i + 5])
    values = np.array(tokens[i + 6 :], dtype=float).reshape(frames, -1)
    return joints, end_sites, values, frame_time


def _forward_kinematics(joints, end_sites, values):
    """-> {name: (T, 3)} positions of every joint and of each End Site (named '<joint>_end')."""
    count = len(values)
    rotations, positions, column = {}, {}, 0
    for index, (name, parent, offset, channels) in enumerate(joints):
        chunk = values[:, column : column + len(channels)]
        column += len(channels)
        angles = {c[0]: chunk[:, k] for k, c in enumerate(channels) if c.endswith("rotation")}
        order = "".join(c[0] for c in channels if c.endswith("rotation"))
        local = Rotation.from_euler(order, np.stack([angles[a] for a in order], axis=1), degrees=True).as_matrix()
        if parent < 0:
            position = chunk[:, [channels.index(f"{a}position") for a in "XYZ"]] + offset
            rotations[index] = local
        else:
            position = positions[joints[parent][0]] + rotations[parent] @ offset
            rotations[index] = rotations[parent] @ local
        positions[name] = position
        if index in end_sites:
            positions[f"{name}_end"] = position + rotations[index] @ end_sites[index]
    assert column == values.shape[1]
    return positions


BVH_TO_H36M = {
    "pelvis": "pelvis", "l_hip": "l_hip", "l_knee": "l_knee", "l_knee_end": "l_ankle", "r_hip": "r_hip",
    "r_knee": "r_knee", "r_knee_end": "r_ankle", "spine": "spine", "thorax": "thorax", "neck": "neck",
    "neck_end": "head", "l_shoulder": "l_shoulder", "l_elbow": "l_elbow", "l_elbow_end": "l_wrist",
    "r_shoulder": "r_shoulder", "r_elbow": "r_elbow", "r_elbow_end": "r_wrist",
}  # fmt: skip


def _bvh_joints_mm(path) -> tuple[np.ndarray, list, float]:
    """Parse a BVH and return its FK joints (T, 17, 3) mm in the Z-up world, the joints, frame time."""
    joints, end_sites, values, frame_time = _parse_bvh(path.read_text())
    positions = _forward_kinematics(joints, end_sites, values)
    out = np.full((len(values), 17, 3), np.nan)
    for bvh_name, h36m_name in BVH_TO_H36M.items():
        out[:, H36M17.joints.index(h36m_name)] = positions[bvh_name] * 10.0 @ Y_UP_FROM_Z_UP  # cm, Y up -> mm, Z up
    return out, joints, frame_time


def test_bvh_forward_kinematics_reproduces_the_joints(tmp_path, motion):
    """FK of the written BVH vs the input, demo_routine(8.0): mean 0.001 mm, max 0.063 mm over every
    joint and frame (bone lengths vary by < 0.1 mm there; angles written with 4 decimals)."""
    path = export_take(_take(tmp_path, motion), "bvh")
    fk, joints, frame_time = _bvh_joints_mm(path)
    assert frame_time == pytest.approx(1 / FPS)
    assert joints[0][3] == ["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"]
    assert all(channels == ["Zrotation", "Xrotation", "Yrotation"] for _, _, _, channels in joints[1:])
    error = np.linalg.norm(fk - motion, axis=-1)
    assert error.max() < 0.2, error.max()


def test_bvh_rest_pose_is_a_y_up_t_pose(tmp_path, motion):
    path = export_take(_take(tmp_path, motion), "bvh")
    joints, end_sites, _, _ = _parse_bvh(path.read_text())
    offsets = {name: offset for name, _, offset, _ in joints}
    assert offsets["l_knee"][1] < 0 and offsets["spine"][1] > 0  # legs down, spine up (cm)
    assert offsets["l_elbow"][0] > 0 and offsets["r_elbow"][0] < 0  # arms out sideways, left on +X
    assert offsets["l_elbow"][0] == pytest.approx(30.1, abs=0.05)  # median upper arm, cm


def test_bvh_holds_the_last_good_pose_through_gaps(tmp_path, motion):
    """Frames with missing joints keep the previous frame's rotations; the other frames stay exact."""
    points = _with_gaps(motion)
    path = export_take(_take(tmp_path, points), "bvh")
    fk, _, _ = _bvh_joints_mm(path)
    assert np.isfinite(fk).all()
    wrist = H36M17.joints.index("l_wrist")
    elbow = H36M17.joints.index("l_elbow")
    np.testing.assert_allclose(fk[20, 1:] - fk[20, :1], fk[19, 1:] - fk[19, :1], atol=0.01)  # held pose
    np.testing.assert_allclose(fk[20, 0], fk[19, 0], atol=0.01)  # held root position
    held = fk[10, wrist] - fk[10, elbow]
    assert np.linalg.norm(held) == pytest.approx(np.linalg.norm(motion[9, wrist] - motion[9, elbow]), abs=0.05)
    good = np.ones(len(points), bool)
    good[[10, 20]] = False
    assert np.linalg.norm(fk[good] - motion[good], axis=-1).max() < 0.2


def test_bvh_with_noisy_bone_lengths_stays_within_a_few_mm(tmp_path, motion):
    """Joints jittered by 3 mm per axis (seeded; 5.2 mm rms in 3D): the rigid skeleton's FK error is
    5.0 mm mean, 21 mm max (bone lengths fixed to the medians; the hips follow the pelvis triangle)."""
    rng = np.random.default_rng(0)
    noisy = motion + rng.normal(0.0, 3.0, motion.shape)
    path = export_take(_take(tmp_path, noisy), "bvh")
    fk, _, _ = _bvh_joints_mm(path)
    error = np.linalg.norm(fk - noisy, axis=-1)
    assert error.mean() < 7.0 and error.max() < 35.0, (error.mean(), error.max())


# ------------------------------------------------------------------------------------------------
def test_errors_name_the_problem(tmp_path, motion):
    with pytest.raises(CrossviewError, match="crossview process"):
        export_take(tmp_path / "empty", "csv")
    take = _take(tmp_path, motion[:10])
    with pytest.raises(CrossviewError, match="unknown export format 'fbx'"):
        export_take(take, "fbx")
    bad = tmp_path / "bad"
    bad.mkdir()
    np.savez(bad / "poses3d.npz", points=np.zeros((5, 12, 3)))
    with pytest.raises(CrossviewError, match=r"\(T, 17, 3\)"):
        export_take(bad, "csv", fps=30)


def test_cli_run_writes_the_file(tmp_path, motion, capsys):
    from app.export_cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    take = _take(tmp_path, motion[:30])
    out = tmp_path / "clip.trc"
    args = parser.parse_args(["export", str(take), "--format", "TRC", "--out", str(out), "--y-up"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert read_trc(out)[0].shape == (30, 17, 3)
    assert set(FORMATS) == {"csv", "json", "trc", "c3d", "bvh"}
