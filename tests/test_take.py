"""Opening a take folder for viewing (app/take.py) and random access to video frames; no display."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.process import process
from app.sample import make_sample
from app.take import Take, VideoFrames
from calibration import load_rig, save_rig
from calibration.errors import CrossviewError, InputFileError
from calibration.rig import Rig


def write_numbered_video(path: Path, frames: int, *, width: int = 160, height: int = 96) -> Path:
    """An MJPG video whose frame ``t`` is flat grey level ``10 + 4 (t mod 60)`` (so a frame shows its index)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for t in range(frames):
        writer.write(np.full((height, width, 3), 10 + 4 * (t % 60), dtype=np.uint8))
    writer.release()
    return path


def frame_number(image: np.ndarray) -> int:
    return int(round((float(image.mean()) - 10.0) / 4.0))


@pytest.fixture(scope="module")
def sample_take(tmp_path_factory) -> Path:
    """The synthetic sample (3 cameras, 8 s at 30 fps), processed: no videos."""
    folder = make_sample(tmp_path_factory.mktemp("take") / "sample", duration_s=8.0)
    process(folder)
    return folder


def copy_take(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def test_sample_take_opens(sample_take: Path) -> None:
    take = Take.open(sample_take)
    assert take.camera_names == ("cam_0", "cam_1", "cam_2")
    assert take.num_frames == 240 and take.fps == pytest.approx(30.0)
    assert take.poses3d is not None and take.poses3d.points.shape == (240, 17, 3)
    assert take.ground_truth is not None and take.ground_truth.shape == (240, 17, 3)
    assert take.keypoints(10).shape == (3, 17, 2)
    assert take.frame("cam_1", 10) is None  # no video: the GUI shows a blank tile
    assert take.time_s(30) == pytest.approx(1.0)
    with pytest.raises(CrossviewError, match="outside 0..239"):
        take.frame("cam_0", 240)
    with pytest.raises(CrossviewError, match="no camera 'cam_9'"):
        take.frame("cam_9", 0)


def test_open_errors_name_the_problem(sample_take: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such folder"):
        Take.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no calibration found"):
        Take.open(tmp_path / "empty")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(sample_take / "calibration.yaml", bare / "calibration.yaml")
    with pytest.raises(InputFileError, match="nothing to show"):
        Take.open(bare)


def test_calibration_with_other_cameras_is_refused(sample_take: Path, tmp_path: Path) -> None:
    take = copy_take(sample_take, tmp_path / "take")
    rig = load_rig(take / "calibration.yaml")
    renamed = Rig(tuple(replace(camera, name=f"left{i}") for i, camera in enumerate(rig)))
    save_rig(renamed, take / "calibration.yaml")
    with pytest.raises(CrossviewError, match=r"keypoints .* name camera\(s\) cam_0, cam_1, cam_2 .* does not have"):
        Take.open(take)


def test_video_named_after_no_camera_is_refused(sample_take: Path, tmp_path: Path) -> None:
    take = copy_take(sample_take, tmp_path / "take")
    (take / "videos").mkdir()
    write_numbered_video(take / "videos" / "side.avi", 5)
    with pytest.raises(CrossviewError, match=r"videos .* name camera\(s\) side"):
        Take.open(take)


def test_files_disagreeing_on_length_are_refused(sample_take: Path, tmp_path: Path) -> None:
    take = copy_take(sample_take, tmp_path / "take")
    with np.load(take / "ground_truth.npz") as data:
        np.savez(take / "ground_truth.npz", points=data["points"][:100])
    with pytest.raises(InputFileError, match="disagree on the number of frames"):
        Take.open(take)


def test_take_with_videos_fits_the_cameras_to_the_frames(sample_take: Path, tmp_path: Path) -> None:
    """Videos at 1/8 of the calibrated 1280x720: the rig is rescaled so overlays land on them."""
    take_dir = copy_take(sample_take, tmp_path / "take")
    (take_dir / "videos").mkdir()
    for name in ("cam_0", "cam_1", "cam_2"):
        write_numbered_video(take_dir / "videos" / f"{name}.avi", 240, width=160, height=90)
    take = Take.open(take_dir)
    try:
        assert sorted(take.videos) == ["cam_0", "cam_1", "cam_2"]
        assert (take.rig["cam_0"].width, take.rig["cam_0"].height) == (160, 90)
        original = load_rig(take_dir / "calibration.yaml")["cam_0"]
        assert take.rig["cam_0"].K[0, 0] == pytest.approx(original.K[0, 0] / 8.0)
        image = take.frame("cam_2", 17)
        assert image.shape == (90, 160, 3) and image.dtype == np.uint8
        assert frame_number(image) == 17
    finally:
        take.close()


def test_video_frames_random_access(tmp_path: Path) -> None:
    """Sequential reads and short skips ahead never seek; a long jump seeks once and lands on the
    right frame; repeated reads hit the cache."""
    video = VideoFrames(write_numbered_video(tmp_path / "numbers.avi", 150))
    try:
        assert len(video) == 150
        assert [frame_number(video.read(t)) for t in range(10)] == list(range(10))
        assert video.seeks == 0
        assert frame_number(video.read(14)) == 14 and video.seeks == 0  # a short jump decodes through
        assert frame_number(video.read(130)) == 130 % 60 and video.seeks == 1  # a long one seeks
        assert video.read(130) is video.read(130) and video.seeks == 1  # cached
        assert frame_number(video.read(131)) == 131 % 60 and video.seeks == 1  # sequential again
        assert frame_number(video.read(3)) == 3 and video.seeks == 2  # backwards
        assert video.read(500) is None  # past the end
        assert frame_number(video.read(4)) == 4
        with pytest.raises(InputFileError, match="frame -1 does not exist"):
            video.read(-1)
    finally:
        video.close()


def test_gui_refuses_to_start_without_a_display(monkeypatch) -> None:
    """Qt would abort the process; the app says what to do instead (checked before Qt loads)."""
    from app.gui.main import check_display

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(CrossviewError, match="no display"):
        check_display()


def test_take_and_gui_entry_import_without_qt() -> None:
    """app/take.py and app/gui/main.py (imported by the CLI) load with Qt blocked: the GUI's
    packages stay optional until the window opens."""
    import subprocess
    import sys

    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('PyQt6', 'pyqtgraph', 'OpenGL'):\n"
        "            raise ImportError(f'{name} is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import app.take, app.gui.main\n"
        "from calibration.errors import CrossviewError\n"
        "try:\n"
        "    app.gui.main.run_gui()\n"
        "except CrossviewError as exc:\n"
        "    assert 'pip install PyQt6' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('run_gui started without Qt')\n"
    )
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
