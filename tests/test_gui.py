"""The desktop app on a real processed take: playback, overlays in the tiles, the 3D view's pixels.

Runs under Xvfb (pytest-xvfb starts it) so the 3D view renders through Mesa's OpenGL; skipped,
with the reason, when Qt, pyqtgraph or a display is missing. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from models.synthetic.mocap import shared_data_dir

from gui_testing import image_array, near_colour, needs_gui, save_screenshot

try:
    from PyQt6.QtWidgets import QApplication

    from app.gui.camera_tiles import JOINT_COLOUR
    from app.gui.main_window import MainWindow
    from app.gui.scene3d import SKELETON_COLOUR
except (ImportError, OSError):  # reported by needs_gui
    pass

HANDOFF = Path("/tmp/handoff")
DEMO = shared_data_dir() / "pose2sim_demo_single"
pytestmark = needs_gui


def save_artifact(image, name: str, *, handoff: bool = False) -> None:
    path = save_screenshot(image, name)
    if handoff and HANDOFF.is_dir():
        shutil.copy(path, HANDOFF / f"gui_{name}")


@pytest.fixture(scope="session")
def real_take(tmp_path_factory) -> Path:
    """The Pose2Sim demo (4 synchronised videos, 100 frames) processed as a take folder (~35 s CPU)."""
    if not (DEMO / "videos").is_dir():
        pytest.skip(f"needs the Pose2Sim demo at {DEMO}")
    from app.process import process_videos
    from calibration import load_rig, save_rig
    from calibration.errors import CrossviewError
    from models.model_store import ensure_blazepose_models

    try:
        ensure_blazepose_models()
    except CrossviewError as exc:
        pytest.skip(f"BlazePose models unavailable: {exc}")
    take = tmp_path_factory.mktemp("gui") / "take"
    (take / "videos").mkdir(parents=True)
    for video in sorted((DEMO / "videos").glob("*.mp4")):
        (take / "videos" / video.name).symlink_to(video)
    save_rig(load_rig(DEMO / "calibration" / "Calib.qca.txt"), take / "calibration.yaml")
    process_videos(take / "videos", calibration_path=take / "calibration.yaml", out_dir=take, progress=False,
                   device="cpu")
    return take


@pytest.fixture
def window(qtbot, tmp_path):
    window = MainWindow(settings_path=tmp_path / "gui.yaml")  # never the user's own settings
    qtbot.addWidget(window)
    window.resize(1500, 900)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.presenter.pause()


def show_frame(qtbot, window, frame: int) -> None:
    """Seek to ``frame`` and wait until the window has drawn it (videos decode in the background)."""
    window.presenter.seek(frame)
    qtbot.waitUntil(lambda: window.shown is not None and window.shown.index == frame, timeout=10000)
    qtbot.wait(50)  # let the views repaint
    QApplication.processEvents()


def test_open_play_step_seek(qtbot, window, real_take: Path) -> None:
    presenter = window.presenter
    with qtbot.waitSignal(presenter.take_opened, timeout=10000):
        assert presenter.open_take(real_take)
    assert [tile.camera.name for tile in window.cameras.tiles] == ["cam01", "cam02", "cam03", "cam04"]
    assert presenter.num_frames == 100 and presenter.frame == 0
    assert "4 cameras, 100 frames, 4 videos" in window.statusBar().currentMessage()

    presenter.play()
    assert presenter.playing and window.play_button.text() == "❚❚"
    qtbot.waitUntil(lambda: presenter.frame >= 5, timeout=15000)
    presenter.pause()
    assert not presenter.playing and window.play_button.text() == "▶"
    assert window.slider.value() == presenter.frame
    presenter.seek(50)  # wherever a loaded machine let playback get to
    frame = presenter.frame
    qtbot.waitUntil(lambda: window.shown is not None and window.shown.index == frame, timeout=10000)
    assert window.hud.text().startswith(f"frame {frame + 1}/100")

    window.forward_button.click()
    assert presenter.frame == frame + 1
    window.back_button.click()
    window.back_button.click()
    assert presenter.frame == frame - 1

    window.slider.setValue(60)  # the user drags the slider
    assert presenter.frame == 60
    qtbot.waitUntil(lambda: window.shown is not None and window.shown.index == 60, timeout=10000)
    assert "reproj. error median" in window.hud.text() and "views" in window.hud.text()
    assert window.hud.toolTip().count("\n") == 16 and "l_wrist: " in window.hud.toolTip()
    presenter.seek(10_000)
    assert presenter.frame == 99 and window.slider.value() == 99

    # At the end, play starts over from the first frame; speed comes from the combo box; playback
    # stops on the last frame.
    window.speed_box.setCurrentIndex(window.speed_box.findText("4x"))
    assert presenter.speed == 4.0
    presenter.play()
    assert presenter.frame == 0
    presenter.seek(90)
    qtbot.waitUntil(lambda: not presenter.playing, timeout=30000)
    assert presenter.frame == 99 and window.play_button.text() == "▶"


def test_camera_tiles_draw_the_keypoints(qtbot, window, real_take: Path) -> None:
    """At the detected keypoints the tiles show the joint colour; with the overlay off they do not.

    Measured: 33/33 confident keypoints of every camera are probed; all hit the joint colour.
    """
    window.presenter.open_take(real_take)
    show_frame(qtbot, window, 40)
    take = window.take
    keypoints = take.keypoints(40)  # (C, 33, 2) px
    confidence = take.poses2d.confidence[40]  # (C, 33)
    screenshot = window.grab()
    save_artifact(screenshot.toImage(), "window.png", handoff=True)
    hits_on, hits_off = [], []
    shots_on = [image_array(tile.grab().toImage()) for tile in window.cameras.tiles]
    window.show_keypoints_action.setChecked(False)
    qtbot.wait(50)
    shots_off = [image_array(tile.grab().toImage()) for tile in window.cameras.tiles]
    window.show_keypoints_action.setChecked(True)
    for c, tile in enumerate(window.cameras.tiles):
        probes = np.round(tile.scene_to_widget(keypoints[c][confidence[c] > 0.5])).astype(int)  # (N, 2) x, y
        assert len(probes) >= 10
        for shot, hits in ((shots_on[c], hits_on), (shots_off[c], hits_off)):
            x = np.clip(probes[:, 0], 0, shot.shape[1] - 1)
            y = np.clip(probes[:, 1], 0, shot.shape[0] - 1)
            hits.append(near_colour(shot[y, x], JOINT_COLOUR).mean())
    assert min(hits_on) >= 0.9, hits_on
    assert max(hits_off) <= 0.1, hits_off


def test_3d_view_draws_the_skeleton(qtbot, window, real_take: Path) -> None:
    """The 3D view's pixels change along the skeleton when it is shown, and only a little elsewhere.

    Measured (591x793 px view, frame 40): 0.32 % of the pixels change when the skeleton is shown,
    and each of the 17 joints, projected with the view's own matrices, lies within 0.6 px of a
    changed pixel.
    """
    window.presenter.open_take(real_take)
    show_frame(qtbot, window, 40)
    scene = window.scene3d
    with_skeleton = scene.grabFramebuffer()
    save_artifact(with_skeleton, "view3d.png", handoff=True)
    window.show_skeleton3d_action.setChecked(False)
    qtbot.wait(50)
    without = image_array(scene.grabFramebuffer())
    window.show_skeleton3d_action.setChecked(True)
    shown = image_array(with_skeleton)
    assert shown.shape == without.shape and shown.std() > 5  # a real rendering, not a blank buffer
    changed = (np.abs(shown.astype(int) - without.astype(int)).max(axis=-1) > 40)  # (H, W)
    assert 0.0005 < changed.mean() < 0.05, changed.mean()

    ratio = shown.shape[1] / scene.width()  # framebuffer px per widget px (1 under Xvfb)
    points = window.take.poses3d.points[40]  # (17, 3) mm
    joints_px = scene.world_to_widget(points[np.isfinite(points).all(axis=1)]) * ratio  # (N, 2)
    changed_y, changed_x = np.nonzero(changed)
    distance = np.array([np.hypot(changed_x - x, changed_y - y).min() for x, y in joints_px])  # (N,) px
    assert len(distance) == 17 and distance.max() <= 3.0, distance.round(1)
    skeleton = near_colour(shown, np.array(SKELETON_COLOUR[:3]) * 255, tolerance=70)  # (H, W)
    assert skeleton[changed].mean() > 0.2 and skeleton[~changed].mean() < 0.001


def test_take_without_videos_shows_blank_tiles(qtbot, window, tmp_path: Path) -> None:
    from app.gui.camera_tiles import BLANK_GREY
    from app.process import process
    from app.sample import make_sample

    folder = make_sample(tmp_path / "sample", duration_s=8.0)
    process(folder)
    assert window.presenter.open_take(folder)
    show_frame(qtbot, window, 30)
    tile = window.cameras.tiles[0]
    shot = image_array(tile.grab().toImage())
    corner = np.round(tile.scene_to_widget(np.array([[20.0, 20.0]]))).astype(int)[0]
    assert near_colour(shot[corner[1], corner[0]], (BLANK_GREY,) * 3, tolerance=3)
    keypoints = window.take.keypoints(30)[0]
    probes = np.round(tile.scene_to_widget(keypoints[np.isfinite(keypoints).all(axis=1)])).astype(int)
    assert near_colour(shot[probes[:, 1], probes[:, 0]], JOINT_COLOUR).mean() >= 0.8
    assert window.take.ground_truth is not None and window.scene3d.truth_item.visible()


def test_errors_are_shown_in_the_window(qtbot, window, tmp_path: Path) -> None:
    with qtbot.waitSignal(window.presenter.error):
        assert not window.presenter.open_take(tmp_path)
    assert "no calibration found" in window.statusBar().currentMessage()
    assert window.error_box is not None and window.error_box.isVisible()
    assert "no calibration found" in window.error_box.text()
    qtbot.waitUntil(lambda: "no calibration found" in window.log_panel.toPlainText(), timeout=2000)
    with qtbot.waitSignal(window.presenter.error):
        window.presenter.set_speed(3.0)
    assert window.presenter.speed == 1.0
