"""The calibration wizard, driven page by page with pytest-qt under Xvfb.

On the real caliscope session (4 webcams, inverted ChArUco, real timestamps) the wizard goes through
every page and saves a rig; a screenshot of each page goes to assets/screenshots/wizard_<page>.png.
Bad input (videos without the board, a wrong board, cameras that share no view, a broken board
file) gives a message on the page, the wizard does not advance, and no file is written. Live mode
is driven with video files as sources (the same capture threads as cameras).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.synthetic.mocap import shared_data_dir

try:
    from PyQt6.QtCore import Qt
    from PyQt6.QtGui import QImage
    from PyQt6.QtWidgets import QApplication, QWizard

    from app.gui.calibration_wizard import PAGES, CalibrationWizard
    from app.gui.calibration_wizard_pages import CORNER_COLOUR

    GUI_MISSING = None
except (ImportError, OSError) as exc:  # PyQt6 / pyqtgraph / PyOpenGL (libGL) not installed
    GUI_MISSING = f"the GUI packages are not importable: {exc}"

if GUI_MISSING is None and QApplication.instance() is None:
    QApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)  # as run_gui does

from calibration import load_rig, look_at, read_rig
from calibration.board_synthesis import random_board_poses, render_board_view
from calibration.boards import Board, save_board

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "assets" / "screenshots"
SESSION = shared_data_dir() / "caliscope_charuco"
HAS_DISPLAY = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
BOARD = Board("charuco", 8, 6, 80.0, dictionary="DICT_4X4_50")
TIMEOUT_MS = int(os.environ.get("WIZARD_TEST_TIMEOUT_MS", "120000"))

pytestmark = pytest.mark.skipif(
    GUI_MISSING is not None or not HAS_DISPLAY,
    reason=GUI_MISSING or "no display (install Xvfb and pytest-xvfb, or run on a desktop)",
)


def image_array(image: "QImage") -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of a QImage."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), dtype=np.uint8)
    return data.reshape(height, image.bytesPerLine())[:, : 3 * width].reshape(height, width, 3).copy()


def near_colour(pixels: np.ndarray, colour, tolerance: int = 60) -> np.ndarray:
    return (np.abs(pixels.astype(np.int64) - np.asarray(colour)[:3]) <= tolerance).all(axis=-1)


@pytest.fixture
def wizard(qtbot):
    def make(**kwargs) -> CalibrationWizard:
        wizard = CalibrationWizard(**kwargs)
        qtbot.addWidget(wizard)
        wizard.show()
        qtbot.waitExposed(wizard)
        made.append(wizard)
        return wizard

    made: list = []
    yield make
    for wizard in made:
        wizard.session.cancel()


def small_rig():
    cameras = []
    for i, angle in enumerate((0.0, 2.1, 4.2)):
        cameras.append(look_at(f"cam_{i}", [1100 * np.cos(angle), 1100 * np.sin(angle), 1000], [0, 0, 300],
                               width=640, height=360, focal_px=480))
    return cameras


def write_videos(folder: Path, frames: int, *, seen=None, seed: int = 5) -> Path:
    """Rendered board videos (MJPG, 10 fps) of 3 cameras; ``seen(camera, frame)`` False -> a blank frame."""
    rng = np.random.default_rng(seed)
    R, t = random_board_poses(rng, frames, center_mm=(0, 0, 400), spread_mm=300, tilt_deg=30)
    folder.mkdir(parents=True, exist_ok=True)
    for c, camera in enumerate(small_rig()):
        writer = cv2.VideoWriter(str(folder / f"{camera.name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                                 (camera.width, camera.height))
        for f in range(frames):
            show = seen is None or seen(c, f)
            image = render_board_view(camera, BOARD, R[f], t[f], pixels_per_mm=1.5) if show else np.full(
                (camera.height, camera.width), 128, np.uint8)
            writer.write(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
        writer.release()
    return folder


def wait_page(qtbot, wizard, name: str) -> None:
    assert wizard.current_page_name() == name
    page = wizard.pages[name]
    qtbot.waitUntil(lambda: page.isComplete() or bool(page.error), timeout=TIMEOUT_MS)
    qtbot.wait(100)  # let the last queued signals and repaints through


def written_files(folder: Path) -> list[Path]:
    """Files under ``folder`` other than the test's own inputs (videos, board files): results or temporaries."""
    inputs = ("board.yaml", "broken.yaml")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".avi" and p.name not in inputs)


def test_wizard_on_the_real_session(qtbot, wizard, tmp_path):
    """Every page on caliscope's real recording (all 111 synchronised frames x 4 cameras: the session
    is short, and a frame step would defeat the one-frame sync correction cam_1 needs). Measured: the
    board in 28-46 frames per camera, 27-45 shared per pair; RMS 0.66-0.83 px; 4 cameras above the
    floor; the saved YAML and anipose TOML load back to the same rig. 23 s on a loaded 2-core CPU."""
    if not (SESSION / "extrinsic" / "cam_0.mp4").is_file():
        pytest.skip(f"shared data not available: {SESSION}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    w = wizard(videos=SESSION / "extrinsic", board=SESSION / "charuco.toml")

    def screenshot(name: str) -> None:
        w.grab().save(str(SCREENSHOTS / f"wizard_{name}.png"))

    assert w.current_page_name() == "sources"
    assert "ChArUco 4x5" in w.pages["sources"].board_label.text()
    screenshot("sources")
    w.next()
    wait_page(qtbot, w, "intrinsics")
    page = w.pages["intrinsics"]
    assert page.isComplete(), page.status.text()
    assert page.table.rowCount() == 4
    assert all(0.0 < float(page.table.item(r, 3).text()) < 1.0 for r in range(4))
    assert all(tile.views_found >= 10 and tile.covered.any() for tile in page.tiles)
    # The overlay: the tiles show corner circles on the last frame with the board.
    drawn = [near_colour(image_array(tile.grab().toImage()), CORNER_COLOUR, 50).sum() for tile in page.tiles]
    assert sum(d > 20 for d in drawn) >= 2, drawn
    screenshot("intrinsics")

    w.next()
    wait_page(qtbot, w, "extrinsics")
    extrinsics = w.pages["extrinsics"]
    assert extrinsics.isComplete(), extrinsics.status.text()
    shared = np.array([[int(extrinsics.table.item(i, j).text()) for j in range(4)] for i in range(4)])
    np.testing.assert_array_equal(shared, w.session.shared_views())
    assert shared[0, 1] > 0 and "linked" in extrinsics.status.text()
    screenshot("extrinsics")

    w.next()
    wait_page(qtbot, w, "solve")
    solve = w.pages["solve"]
    assert solve.isComplete(), solve.status.text()
    assert solve.progress.value() == 100 and "Solved" in solve.status.text()
    screenshot("solve")

    w.next()
    wait_page(qtbot, w, "review")
    review = w.pages["review"]
    assert review.table.rowCount() == 4
    assert "cam_1: frames shifted by +1" in review.warnings.toPlainText()
    qtbot.wait(200)
    screenshot("review")
    view = image_array(review.scene.grabFramebuffer())
    assert view.std() > 5  # the 3D view rendered (floor, frusta), not a blank buffer

    review.yaml_edit.setText(str(tmp_path / "rig"))  # no .yaml: refused on the page
    w.button(QWizard.WizardButton.FinishButton).click()
    assert w.isVisible() and "must end in .yaml" in review.message.text()
    assert written_files(tmp_path) == []
    review.yaml_edit.setText(str(tmp_path / "rig.yaml"))
    review.toml_edit.setText(str(tmp_path / "rig.toml"))
    w.button(QWizard.WizardButton.FinishButton).click()
    assert not w.isVisible()
    rig = load_rig(tmp_path / "rig.yaml")
    assert rig.names == ("cam_0", "cam_1", "cam_2", "cam_3")
    rms = read_rig(tmp_path / "rig.yaml").metadata["quality"]["rms_px"]
    assert max(rms.values()) < 1.0
    assert np.all(rig.centers[:, 2] > 0)
    spacing = np.linalg.norm(rig.centers[:, None] - rig.centers[None], axis=-1).max()
    assert 500 < spacing < 10_000  # webcams around a room, in mm
    anipose = load_rig(tmp_path / "rig.toml", units="mm")
    assert np.abs(anipose.centers - rig.centers).max() < 1e-6
    assert all((SCREENSHOTS / f"wizard_{name}.png").is_file() for name in PAGES)


def test_videos_without_the_board(qtbot, wizard, tmp_path):
    folder = write_videos(tmp_path / "videos", 4, seen=lambda c, f: False)
    board = save_board(BOARD, tmp_path / "board.yaml")
    w = wizard(videos=folder, board=board)
    w.next()
    wait_page(qtbot, w, "intrinsics")
    page = w.pages["intrinsics"]
    assert not page.isComplete()
    text = page.status.text()
    assert "cam_0" in text and "not found in any of 4 frames" in text and "no ArUco markers" in text
    assert not w.button(QWizard.WizardButton.NextButton).isEnabled()
    assert written_files(tmp_path) == []


def test_wrong_board_definition(qtbot, wizard, tmp_path):
    folder = write_videos(tmp_path / "videos", 6)
    wrong = save_board(replace(BOARD, dictionary="DICT_5X5_50"), tmp_path / "board.yaml")
    w = wizard(videos=folder, board=wrong)
    w.next()
    wait_page(qtbot, w, "intrinsics")
    page = w.pages["intrinsics"]
    assert not page.isComplete()
    assert "set dictionary: DICT_4X4_50" in page.status.text()
    assert written_files(tmp_path) == []

    broken = tmp_path / "broken.yaml"
    broken.write_text("schema_version: 1\nkind: charuco\ncolumns: 8\nrows: 6\nsquare: 80\n")
    w.back()
    sources = w.pages["sources"]
    sources.board_edit.setText(str(broken))
    w.next()
    assert w.current_page_name() == "sources"
    assert "broken.yaml" in sources.message.text() and "unknown key(s) square" in sources.message.text()


def test_cameras_sharing_no_view(qtbot, wizard, tmp_path):
    """cam_0 sees the board in frames 0-19 only, cam_1 and cam_2 in frames 20-39 only."""
    folder = write_videos(tmp_path / "videos", 40, seen=lambda c, f: (f < 20) == (c == 0))
    board = save_board(BOARD, tmp_path / "board.yaml")
    w = wizard(videos=folder, board=board)
    w.next()
    wait_page(qtbot, w, "intrinsics")
    assert w.pages["intrinsics"].isComplete(), w.pages["intrinsics"].status.text()
    w.next()
    wait_page(qtbot, w, "extrinsics")
    page = w.pages["extrinsics"]
    assert not page.isComplete()
    assert "never saw the board at the same time" in page.status.text()
    assert "{cam_0}; {cam_1, cam_2}" in page.status.text()
    assert not w.button(QWizard.WizardButton.NextButton).isEnabled()
    assert written_files(tmp_path) == []


def test_live_sources_and_cancel(qtbot, wizard, tmp_path):
    """Live mode reads the sources through capture threads (here video files, 10 fps, 4 framesets a
    second kept); the solve can be cancelled and run again."""
    folder = write_videos(tmp_path / "videos", 40)
    board = save_board(BOARD, tmp_path / "board.yaml")
    w = wizard(board=board)
    sources = w.pages["sources"]
    sources.live_radio.setChecked(True)
    sources.live_edit.setPlainText("\n".join(f"cam_{c} = {folder / f'cam_{c}.avi'}" for c in range(3)))
    w.next()
    wait_page(qtbot, w, "intrinsics")
    page = w.pages["intrinsics"]
    assert page.isComplete(), page.status.text()
    assert w.session.views.corners.shape[:2] == (3, 14)  # 40 frames at 10 fps, one kept per 0.25 s
    w.next()
    wait_page(qtbot, w, "extrinsics")
    assert w.pages["extrinsics"].isComplete()

    def cancel_now(step: str, fraction: float) -> None:  # the user presses Cancel at the first step
        w.session.task.cancel()

    w.session.solve_progress.connect(cancel_now)
    w.next()
    wait_page(qtbot, w, "solve")
    solve = w.pages["solve"]
    assert not solve.isComplete() and "cancelled" in solve.status.text()
    assert solve.again_button.isEnabled()
    w.session.solve_progress.disconnect(cancel_now)
    solve.again_button.click()
    qtbot.waitUntil(solve.isComplete, timeout=TIMEOUT_MS)
    assert max(q.rms_px for q in w.session.calibration.quality.cameras) < 1.0
    assert written_files(tmp_path) == []
