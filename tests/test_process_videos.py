"""``crossview process --videos``: BlazePose on real synchronised videos, then triangulation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.process import process_videos
from calibration.errors import InputFileError
from models.keypoint_io import load_poses2d
from models.synthetic.mocap import shared_data_dir

DEMO = shared_data_dir() / "pose2sim_demo_single"
needs_demo = pytest.mark.skipif(not (DEMO / "videos").is_dir(), reason=f"needs the Pose2Sim demo at {DEMO}")


@pytest.fixture(scope="module")
def models_ready():
    from calibration.errors import CrossviewError
    from models.model_store import ensure_blazepose_models

    try:
        return ensure_blazepose_models()
    except CrossviewError as exc:  # no registry: say why
        pytest.skip(f"BlazePose models unavailable: {exc}")


@needs_demo
def test_real_four_camera_recording(tmp_path: Path, models_ready, capsys) -> None:
    """The person is found in >= 95 % of frames of every view and the joints triangulate.

    Measured (100 frames, 4 views, CPU): found in 100 % of frames of every view; 100 % of joints
    triangulated from 3.79 views on average; reprojection error median 13.2 px, p95 22.5 px
    (portrait 1080x1920 videos; the calibration's own check on the subject's cap gives 18 px).
    """
    code = main([
        "process", "--videos", str(DEMO / "videos"), "--calibration", str(DEMO / "calibration" / "Calib.qca.txt"),
        "--out", str(tmp_path), "--device", "cpu",
    ])
    assert code == 0
    out = capsys.readouterr().out
    assert "person found in" in out
    poses = load_poses2d(tmp_path / "poses2d.npz")
    assert poses.joint_set == "blazepose33" and poses.keypoints.shape == (100, 4, 33, 2)
    found = (poses.confidence.max(axis=2) > 0).mean(axis=0)  # (C,)
    assert found.min() >= 0.95, found
    with np.load(tmp_path / "poses3d.npz") as data:
        error = data["reprojection_error"]
        points = data["points"]
    assert np.isfinite(points).all(axis=-1).mean() > 0.95
    assert np.nanmedian(error) < 20.0
    # The subject stands on the lab floor (z up, mm): ankles near 0-200 mm, head 1.4-2.0 m up.
    assert 0.0 < np.nanmedian(points[:, [3, 6], 2]) < 250.0
    assert 1300.0 < np.nanmedian(points[:, 10, 2]) < 2100.0


@needs_demo
def test_videos_that_name_no_camera_are_refused(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(DEMO / "videos" / "cam01.mp4", videos / "cam01.mp4")
    shutil.copy(DEMO / "videos" / "cam02.mp4", videos / "left.mp4")
    with pytest.raises(InputFileError, match="left.mp4 match no camera"):
        process_videos(videos, calibration_path=DEMO / "calibration" / "Calib.qca.txt", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@needs_demo
def test_one_video_is_not_enough(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(DEMO / "videos" / "cam01.mp4", videos / "cam01.mp4")
    with pytest.raises(InputFileError, match="at least 2"):
        process_videos(videos, calibration_path=DEMO / "calibration" / "Calib.qca.txt", out_dir=tmp_path / "out")


@needs_demo
def test_corrupt_video_is_a_clear_error(tmp_path: Path, capsys) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(DEMO / "videos" / "cam01.mp4", videos / "cam01.mp4")
    (videos / "cam02.mp4").write_bytes((DEMO / "videos" / "cam02.mp4").read_bytes()[:2000])
    code = main([
        "process", "--videos", str(videos), "--calibration", str(DEMO / "calibration" / "Calib.qca.txt"),
        "--out", str(tmp_path / "out"),
    ])
    err = capsys.readouterr().err
    assert code == 2 and "cam02.mp4" in err and "Traceback" not in err
