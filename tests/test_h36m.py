"""VideoPose3D-style Human3.6M files: reading, 32 -> 17 joints, metres -> mm, guarded unpickling, errors.

The files are faked in tmp_path with the real structure (dicts in numpy object arrays, written by
``np.savez_compressed`` as VideoPose3D's prepare_data_h36m.py does); no Human3.6M data is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calibration.errors import CrossviewError, InputFileError  # noqa: E402
from models.skeleton import H36M17  # noqa: E402
from training.data import FIELDS, DataConfig  # noqa: E402
from training.h36m import H36M32_TO_17, h36m_arrays, load_h36m_2d, load_h36m_3d  # noqa: E402

# A standing person, H36M-17, mm, Z up (the same pose as the refiner tests).
STANDING = np.array(
    [[0, 0, 950], [130, 0, 950], [130, 0, 520], [130, -20, 90], [-130, 0, 950], [-130, 0, 520],
     [-130, -20, 90], [0, 0, 1180], [0, 0, 1430], [0, 20, 1530], [0, 0, 1700], [-180, 0, 1420],
     [-200, 0, 1150], [-210, 30, 900], [180, 0, 1420], [200, 0, 1150], [210, 30, 900]], dtype=float)


def _motion_32(frames: int, seed: int) -> np.ndarray:
    """``(T, 32, 3)`` metres: the standing pose at the kept joints (walking along x), the 15 dropped
    joints at unrelated positions so a wrong mapping shows."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-5.0, 5.0, (frames, 32, 3))
    walk = np.linspace(0, 1500, frames)[:, None] * [1, 0, 0]  # (T, 3) mm
    points[:, list(H36M32_TO_17)] = (STANDING[None] + walk[:, None] + rng.normal(0, 5, (frames, 17, 3))) / 1000.0
    return points.astype(np.float32)


def _write_3d(path: Path, subjects=("S1", "S9"), frames: int = 100) -> Path:
    positions = {s: {"Walking 1": _motion_32(frames, i), "Greeting": _motion_32(frames // 2, 10 + i)}
                 for i, s in enumerate(subjects)}
    np.savez_compressed(path, positions_3d=positions)
    return path


def _write_2d(path: Path, joints: int = 17, shape_ok: bool = True) -> Path:
    rng = np.random.default_rng(0)
    views = [rng.uniform(0, 1000, (50, joints, 2) if shape_ok else (50, joints)).astype(np.float32) for _ in range(4)]
    metadata = {"layout_name": "h36m", "num_joints": joints,
                "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    np.savez_compressed(path, positions_2d={"S1": {"Walking 1": views}}, metadata=metadata)
    return path


def test_3d_file_maps_32_joints_to_h36m17_in_millimetres(tmp_path: Path) -> None:
    path = _write_3d(tmp_path / "data_3d_h36m.npz")
    raw = np.load(path, allow_pickle=True)["positions_3d"].item()["S1"]["Walking 1"]  # the test's own fixture
    motions = load_h36m_3d(path)
    assert [(m.subject, m.action) for m in motions] == [("S1", "Walking 1"), ("S1", "Greeting"),
                                                          ("S9", "Walking 1"), ("S9", "Greeting")]
    walking = motions[0].points
    assert walking.shape == (100, 17, 3) and walking.dtype == np.float32
    for j in range(17):
        if j in (H36M17.index("pelvis"), H36M17.index("thorax")):
            continue
        np.testing.assert_allclose(walking[:, j], raw[:, H36M32_TO_17[j]] * 1000.0, rtol=1e-6)
    # pelvis and thorax rebuilt as the detectors see them: mid-hips, mid-shoulders
    np.testing.assert_allclose(walking[:, 0], 0.5 * (walking[:, 1] + walking[:, 4]), atol=1e-3)
    np.testing.assert_allclose(walking[:, 8], 0.5 * (walking[:, 11] + walking[:, 14]), atol=1e-3)
    # units: a standing person's head is ~1.7 m above the ankles, in mm
    height = walking[:, H36M17.index("head"), 2] - walking[:, H36M17.index("r_ankle"), 2]
    assert 1550 < height.mean() < 1700
    sequence = motions[0].sequence()
    assert sequence.fps == 50.0 and sequence.name == "S1/Walking 1"


def test_splits_follow_the_usual_subjects(tmp_path: Path) -> None:
    path = _write_3d(tmp_path / "data_3d_h36m.npz")
    assert {m.subject for m in load_h36m_3d(path, "train")} == {"S1"}
    assert {m.subject for m in load_h36m_3d(path, "test")} == {"S9"}
    only_train = _write_3d(tmp_path / "train_only.npz", subjects=("S5",))
    with pytest.raises(CrossviewError, match="no motion of S9, S11"):
        load_h36m_3d(only_train, "test")
    with pytest.raises(CrossviewError, match="unknown split"):
        load_h36m_3d(path, "validation")


def test_h36m_motion_feeds_the_synthetic_refiner_data(tmp_path: Path) -> None:
    """Random rigs and the simulated detector on the H36M motion: the refiner's fields, in mm."""
    path = _write_3d(tmp_path / "data_3d_h36m.npz", frames=150)
    groups = h36m_arrays(path, DataConfig(split="train", num_cameras=(2, 3), passes=1, num_frames=30))
    assert groups and set(groups) <= {2, 3}
    for V, arrays in groups.items():
        assert set(arrays) == set(FIELDS)
        N = len(arrays["points3d"])
        assert N > 0
        assert arrays["confidence"].shape == (N, V, 17) and arrays["target_keypoints"].shape == (N, V, 17, 2)
        # the truth is the mapped motion in mm (placed on the floor, at 30 fps): a ~1.6 m person
        height = arrays["points3d"][:, H36M17.index("head"), 2] - arrays["points3d"][:, H36M17.index("r_ankle"), 2]
        assert 1500 < float(np.median(height)) < 1750
        error = np.linalg.norm(arrays["coarse_world"] - arrays["points3d"], axis=-1)
        assert float(np.nanmedian(error)) < 60.0  # triangulated in mm, not metres


def test_2d_file_is_read_per_camera(tmp_path: Path) -> None:
    positions, metadata = load_h36m_2d(_write_2d(tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz"))
    views = positions["S1"]["Walking 1"]
    assert len(views) == 4 and all(v.shape == (50, 17, 2) and v.dtype == np.float32 for v in views)
    assert metadata["layout_name"] == "h36m"


def test_wrong_files_give_clear_errors(tmp_path: Path) -> None:
    text = tmp_path / "data_3d_h36m.npz"
    text.write_text("not a zip archive")
    with pytest.raises(InputFileError, match="not a readable .npz"):
        load_h36m_3d(text)
    with pytest.raises(InputFileError, match="not an .npz file"):
        load_h36m_3d(tmp_path / "missing.npz")
    other = tmp_path / "other.npz"
    np.savez(other, points=np.zeros((3, 17, 3)))
    with pytest.raises(InputFileError, match="no 'positions_3d' array .*holds points"):
        load_h36m_3d(other)
    plain = tmp_path / "plain.npz"
    np.savez(plain, positions_3d=np.zeros((3, 32, 3)))
    with pytest.raises(InputFileError, match="not the dict"):
        load_h36m_3d(plain)
    wrong = tmp_path / "wrong_joints.npz"
    np.savez_compressed(wrong, positions_3d={"S1": {"Walking": np.zeros((10, 17, 3), np.float32)}})
    with pytest.raises(InputFileError, match=r"positions_3d\['S1'\]\['Walking'\] must be \(T, 32, 3\)"):
        load_h36m_3d(wrong)
    # the 2D file: missing metadata, other joint counts, wrong array shapes, the 3D file by mistake
    no_meta = tmp_path / "no_meta.npz"
    np.savez_compressed(no_meta, positions_2d={"S1": {"Walking": [np.zeros((5, 17, 2), np.float32)]}})
    with pytest.raises(InputFileError, match="no 'metadata' array"):
        load_h36m_2d(no_meta)
    with pytest.raises(InputFileError, match="33 keypoints per person"):
        load_h36m_2d(_write_2d(tmp_path / "coco.npz", joints=33))
    with pytest.raises(InputFileError, match=r"\[0\] must be \(T, 17, 2\)"):
        load_h36m_2d(_write_2d(tmp_path / "flat.npz", shape_ok=False))
    with pytest.raises(InputFileError, match="no 'positions_2d' array"):
        load_h36m_2d(_write_3d(tmp_path / "data_3d.npz"))


def test_pickled_code_is_refused_not_run(tmp_path: Path) -> None:
    """A file whose pickle names anything but numpy's array builders fails before it can run."""
    hostile = tmp_path / "hostile.npz"
    np.savez(hostile, positions_3d=np.array({"S1": {"Walking": os.getcwd}}, dtype=object))
    with pytest.raises(InputFileError, match="refusing to load .*getcwd"):
        load_h36m_3d(hostile)


def test_crossview_train_refiner_h36m(tmp_path: Path, capsys) -> None:
    """``crossview train refiner --h36m FILE`` trains on the H36M motion (one tiny epoch)."""
    from app.cli import main

    path = _write_3d(tmp_path / "data_3d_h36m.npz", frames=150)
    assert main(["train", "refiner", "--h36m", str(path), "--out", str(tmp_path / "runs"), "--name", "h36m",
                 "--epochs", "1", "--passes", "1", "--widths", "8", "8", "8", "--batch-size", "64",
                 "--threads", "1"]) == 0
    run = tmp_path / "runs" / "h36m"
    assert (run / "checkpoint.pt").is_file() and (run / "metrics.csv").is_file()
    assert '"h36m": "' in (run / "config.json").read_text()
    assert str(run) in capsys.readouterr().out
