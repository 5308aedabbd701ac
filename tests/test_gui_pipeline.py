"""A take with videos but no 3D poses plays through the real pipeline (BlazePose, triangulation,
filter) in the desktop app: the Pose2Sim demo's four real cameras, the skeleton on the person in
every tile, the 3D joints in the 3D view.

Needs the shared Pose2Sim demo and the BlazePose models (skipped with the reason otherwise); runs
under Xvfb. The screenshot goes to ``$CROSSVIEW_SCREENSHOT_DIR`` or ``test-artifacts/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gui_testing import image_array, near_colour, needs_gui, save_screenshot
from models.synthetic.mocap import shared_data_dir

try:
    from app.gui.camera_tiles import JOINT_COLOUR
    from app.gui.main_window import MainWindow
except (ImportError, OSError):  # reported by needs_gui
    pass

DEMO = shared_data_dir() / "pose2sim_demo_single"
pytestmark = needs_gui


@pytest.fixture
def unprocessed_take(tmp_path: Path) -> Path:
    """The Pose2Sim demo as a take of videos and calibration only (nothing processed)."""
    if not (DEMO / "videos").is_dir():
        pytest.skip(f"needs the Pose2Sim demo at {DEMO}")
    from calibration import load_rig, save_rig
    from calibration.errors import CrossviewError
    from models.model_store import ensure_blazepose_models

    try:
        ensure_blazepose_models()
    except CrossviewError as exc:
        pytest.skip(f"BlazePose models unavailable: {exc}")
    take = tmp_path / "take"
    (take / "videos").mkdir(parents=True)
    for video in sorted((DEMO / "videos").glob("*.mp4")):
        (take / "videos" / video.name).symlink_to(video)
    save_rig(load_rig(DEMO / "calibration" / "Calib.qca.txt"), take / "calibration.yaml")
    return take


def test_unprocessed_take_plays_through_the_pipeline(qtbot, tmp_path: Path, unprocessed_take: Path) -> None:
    """Frame 30 through the pipeline: the person is found in all four views, the 2D skeleton is
    drawn on them, the 3D joints come from triangulation with a small reprojection error.

    Measured (frame 30, right after the seek): 4/4 views found, 17/17 joints triangulated, median
    reprojection error 12.9 px (1080x1920 views); every confident keypoint of every tile probes
    the joint colour.
    """
    window = MainWindow(settings_path=tmp_path / "gui.yaml")
    qtbot.addWidget(window)
    window.resize(1500, 900)
    window.show()
    qtbot.waitExposed(window)
    assert window.presenter.open_take(unprocessed_take)
    assert window.feed.uses_pipeline
    qtbot.waitUntil(lambda: window.shown is not None and window.shown.method != "file", timeout=60000)
    window.presenter.seek(30)
    qtbot.waitUntil(lambda: window.shown is not None and window.shown.index == 30, timeout=60000)
    qtbot.wait(100)
    view = window.shown
    pose = window.feed.poses[30]
    assert pose.found is not None and pose.found.all(), pose.found
    assert view.method in ("triangulated", "refined") and np.isfinite(view.points3d).all()
    assert np.nanmedian(view.joint_error_px) < 25.0, view.joint_error_px
    assert "detect" in window.hud.text() and ("CPU" in window.hud.text() or "CUDA" in window.hud.text())
    save_screenshot(window.grab().toImage(), "gui_pipeline_pose2sim.png")

    for c, tile in enumerate(window.cameras.tiles):
        confident = pose.confidence[c] > 0.5
        probes = np.round(tile.scene_to_widget(pose.keypoints[c][confident])).astype(int)  # (N, 2) x, y
        shot = image_array(tile.grab().toImage())
        x = np.clip(probes[:, 0], 0, shot.shape[1] - 1)
        y = np.clip(probes[:, 1], 0, shot.shape[0] - 1)
        assert len(probes) >= 10 and near_colour(shot[y, x], JOINT_COLOUR).mean() >= 0.9, tile.camera.name
    window.close()
