"""``crossview process TAKE``: a take folder with videos/ and a calibration runs through the pipeline
(BlazePose -> triangulation -> refiner -> filter) and gets poses2d.npz, poses3d.npz and poses3d.csv;
bad takes give clear messages and keep what was processed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.process import process_take, read_frame_times
from app.sample import sample_rig, write_sample_videos
from calibration import Rig, save_rig
from calibration.errors import CrossviewError, InputFileError
from models.keypoint_io import load_poses2d
from models.synthetic.mocap import to_detector_convention
from models.synthetic.motion import demo_routine

FRAMES = 6
FPS = 30.0


@pytest.fixture(scope="module")
def rendered_take(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 3-camera take (1280x720, 6 frames of the sample's routine) as ``crossview record`` lays it
    out: calibration.yaml, videos/<camera>.mp4 and timestamps.csv (frame, camera, t_s)."""
    from models.model_store import ensure_blazepose_models

    try:
        ensure_blazepose_models()
    except CrossviewError as exc:
        pytest.skip(f"BlazePose models unavailable: {exc}")
    folder = tmp_path_factory.mktemp("takes") / "take"
    rig = sample_rig(3)
    motion = demo_routine(duration_s=8.0, fps=FPS, seed=0)[150:150 + FRAMES]  # (8, 17, 3) mm
    save_rig(rig, folder / "calibration.yaml")
    write_sample_videos(folder / "videos", rig, motion, fps=FPS)
    lines = ["frame,camera,t_s"] + [f"{t},{c.name},{100.0 + t / 25.0 + 0.001 * i:.6f}"
                                    for t in range(FRAMES) for i, c in enumerate(rig)]
    (folder / "timestamps.csv").write_text("\n".join(lines) + "\n")
    return folder, to_detector_convention(motion)


def _copy(rendered: Path, tmp_path: Path) -> Path:
    take = tmp_path / "take"
    shutil.copytree(rendered, take)
    return take


def test_process_take_writes_the_results_into_the_take(rendered_take, tmp_path: Path, capsys) -> None:
    """Measured: person found in every frame of every view, MPJPE 29 mm against the rendered truth
    (refiner off, filter on; 25 mm with the filter off: 6 frames of fast motion are mostly the
    filter's start-up)."""
    rendered, truth = rendered_take
    take = _copy(rendered, tmp_path)
    assert main(["process", str(take), "--device", "cpu", "--refiner", "none"]) == 0
    out = capsys.readouterr().out
    assert "person found in cam_0 100.0 %" in out and "latency per frame set" in out
    assert "3D from: triangulated 100.0 %" in out
    poses = load_poses2d(take / "poses2d.npz")
    assert poses.joint_set == "blazepose33" and poses.keypoints.shape == (FRAMES, 3, 33, 2)
    with np.load(take / "poses3d.npz") as data:
        points, method, times = data["points"], data["method"], data["timestamps"]
        assert data["points_triangulated"].shape == (FRAMES, 17, 3)
    assert (method == "triangulated").all()
    np.testing.assert_allclose(times, 100.0 + np.arange(FRAMES) / 25.0 + 0.001, atol=1e-6)  # timestamps.csv
    error = np.linalg.norm(points - truth, axis=-1).mean()
    assert error < 60.0, error
    assert (take / "poses3d.csv").read_text().startswith("frame,time_s,pelvis_x")


def test_refiner_runs_in_the_take_pipeline(rendered_take, tmp_path: Path) -> None:
    """With the bundled refiner the pose is marked refined and stays on the person (< 80 mm;
    measured 26 mm, against 25 mm triangulated, filter off; the figure follows the bundled model)."""
    from app.pipeline import DEFAULT_MODELS

    if not DEFAULT_MODELS["refiner"].is_file():
        pytest.skip(f"no refiner installed at {DEFAULT_MODELS['refiner']}")
    rendered, truth = rendered_take
    take = _copy(rendered, tmp_path)
    result, _, stats = process_take(take, device="cpu", refiner="default", smooth=False, progress=False)
    assert set(result.method) == {"refined"} and stats["stage_ms"]["refine"]["median"] > 0
    assert np.linalg.norm(result.points - truth, axis=-1).mean() < 80.0


def test_calibration_naming_other_cameras_is_refused(rendered_take, tmp_path: Path, capsys) -> None:
    rendered, _ = rendered_take
    take = _copy(rendered, tmp_path)
    rig = sample_rig(3)
    renamed = Rig(tuple(c.__class__(f"other{i}", c.width, c.height, c.K, c.dist, c.R, c.t) for i, c in enumerate(rig)))
    save_rig(renamed, take / "calibration.yaml")
    assert main(["process", str(take), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "cam_0.mp4" in err and "other0" in err and "calibration.yaml" in err and "Traceback" not in err
    assert not (take / "poses3d.npz").exists()


def test_missing_camera_video_is_reported_and_the_rest_processed(rendered_take, tmp_path: Path, capsys) -> None:
    rendered, _ = rendered_take
    take = _copy(rendered, tmp_path)
    (take / "videos" / "cam_1.mp4").unlink()
    assert main(["process", str(take), "--device", "cpu", "--refiner", "none"]) == 0
    out = capsys.readouterr().out
    assert "no video for camera(s) cam_1" in out and "processed cam_0, cam_2" in out
    assert load_poses2d(take / "poses2d.npz").camera_names == ("cam_0", "cam_2")


def test_truncated_video_keeps_the_frames_before(rendered_take, tmp_path: Path, capsys) -> None:
    """A video cut short: the frames before the damage are processed and written, with a warning."""
    import cv2

    rendered, _ = rendered_take
    take = _copy(rendered, tmp_path)
    source = cv2.VideoCapture(str(rendered / "videos" / "cam_2.mp4"))
    writer = cv2.VideoWriter(str(take / "videos" / "cam_2.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (1280, 720))
    for _ in range(3):
        writer.write(source.read()[1])
    writer.release()
    source.release()
    assert main(["process", str(take), "--device", "cpu", "--refiner", "none"]) == 0
    with np.load(take / "poses3d.npz") as data:
        assert data["points"].shape == (3, 17, 3) and np.isfinite(data["points"]).all()
    corrupt = take / "videos" / "cam_0.mp4"
    corrupt.write_bytes(corrupt.read_bytes()[:1500])
    assert main(["process", str(take), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "cam_0.mp4" in err and "Traceback" not in err


def test_an_error_mid_take_writes_what_was_processed(rendered_take, tmp_path: Path, monkeypatch) -> None:
    """The detector fails at frame 4 (a camera unplugged mid-read, say): frames 0-3 are on disk
    and the message says so."""
    import app.detection

    rendered, _ = rendered_take
    take = _copy(rendered, tmp_path)
    real_open = app.detection.open_detector

    class FailingAtFrame4:
        def __init__(self, inner):
            self.inner, self.calls = inner, 0
            self.joint_set, self.provider = inner.joint_set, inner.provider

        def __call__(self, frames, rig):
            self.calls += 1
            if self.calls > 4:
                raise CrossviewError("camera cam_1: the frame could not be read")
            return self.inner(frames, rig)

    monkeypatch.setattr(app.detection, "open_detector", lambda model, device: FailingAtFrame4(real_open(model, device)))
    with pytest.raises(CrossviewError, match="stopped at frame 4; the frames before it were written"):
        process_take(take, device="cpu", progress=False)
    with np.load(take / "poses3d.npz") as data:
        assert data["points"].shape == (4, 17, 3)
    assert load_poses2d(take / "poses2d.npz").num_frames == 4


def test_frame_times_from_timestamps_csv(tmp_path: Path) -> None:
    path = tmp_path / "timestamps.csv"
    path.write_text("frame,camera,t_s\n0,a,1.0\n0,b,1.2\n1,a,2.0\n1,b,2.0\n")
    np.testing.assert_allclose(read_frame_times(path, 2), [1.1, 2.0])
    assert read_frame_times(path, 3) is None  # does not cover frame 2
    path.write_text("frame,time\n0,1.0\n")
    with pytest.raises(InputFileError, match="frame,camera,t_s"):
        read_frame_times(path, 1)


def test_take_without_videos_or_calibration(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no calibration found"):
        process_take(tmp_path / "empty")
    save_rig(sample_rig(2), tmp_path / "empty" / "calibration.yaml")
    with pytest.raises(InputFileError, match="no videos/ folder"):
        process_take(tmp_path / "empty")
