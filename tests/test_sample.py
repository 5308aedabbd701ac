"""The bundled sample take: made from nothing but the project's code, and processed end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.process import process
from calibration import load_rig
from calibration.errors import CrossviewError
from app.sample import make_sample
from models.keypoint_io import load_poses2d
from models.metrics import mpjpe


def test_sample_round_trip_and_accuracy(tmp_path: Path) -> None:
    """An 8 s, 3-camera sample processes to within 50 mm of its ground truth.

    Measured (seed 0, medium detector noise): 30.7 mm MPJPE over 10 s; 99.8 % of joints triangulated.
    """
    folder = make_sample(tmp_path / "take", duration_s=8.0)
    rig = load_rig(folder / "calibration.yaml")
    poses = load_poses2d(folder)
    assert poses.camera_names == rig.names == ("cam_0", "cam_1", "cam_2")
    assert poses.keypoints.shape == (240, 3, 17, 2)
    # Every camera sees the person: at most a few per cent of joints missing per view.
    assert (poses.confidence > 0).mean(axis=(0, 2)).min() > 0.9
    result, _ = process(folder)
    with np.load(folder / "ground_truth.npz") as data:
        truth = data["points"]
    error = mpjpe(result.points, truth)
    assert 5.0 < error < 50.0, error  # noisy detections: neither exact nor broken
    assert result.summary()["joints_triangulated_pct"] > 97.0


def test_sample_is_deterministic(tmp_path: Path) -> None:
    a = make_sample(tmp_path / "a", seed=3, duration_s=8.0)
    b = make_sample(tmp_path / "b", seed=3, duration_s=8.0)
    for name in ("poses2d.npz", "ground_truth.npz"):
        with np.load(a / name) as x, np.load(b / name) as y:
            for key in x.files:
                np.testing.assert_array_equal(x[key], y[key])


def test_cli_sample_then_process_prints_accuracy(tmp_path: Path, capsys) -> None:
    assert main(["sample", str(tmp_path / "s"), "--duration", "8", "--cameras", "4"]) == 0
    assert main(["process", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "against the sample's ground truth: MPJPE" in out
    assert load_rig(tmp_path / "s" / "calibration.yaml").names == ("cam_0", "cam_1", "cam_2", "cam_3")


def test_sample_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(CrossviewError, match="at least 2 cameras"):
        make_sample(tmp_path, num_cameras=1)
    with pytest.raises(CrossviewError, match="between 8 and 600"):
        make_sample(tmp_path, duration_s=2.0)
