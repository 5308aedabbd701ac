"""The main window: camera tiles, the 3D view, a HUD and the playback controls of one take.

The window draws what the :class:`~app.gui.presenter.PlaybackPresenter` says (its signals) and
forwards the user's actions to it (its commands); it holds no playback state of its own. Every
error reaches the user in the window (status bar and a message box), never only a terminal.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSlider,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.camera_tiles import CameraGrid
from app.gui.presenter import SPEEDS, PlaybackPresenter
from app.gui.scene3d import Scene3D
from app.take import Take
from calibration.errors import CrossviewError
from models.skeleton import H36M17, get_skeleton

logger = logging.getLogger(__name__)


def hud_text(take: Take, frame: int, speed: float) -> str:
    """The HUD line for ``frame``: time, rate, reprojection error and views of the 3D joints."""
    parts = [
        f"frame {frame + 1}/{take.num_frames}",
        f"{take.time_s(frame):.2f} s",
        f"{take.fps:.1f} fps",
        f"{speed:g}x",
    ]
    if take.poses3d is not None:
        error = take.poses3d.reprojection_error_px[frame]  # (17,) px
        views = take.poses3d.views_used[frame]  # (17,)
        known = np.isfinite(take.poses3d.points[frame]).all(axis=1) & np.isfinite(error)
        if known.any():
            worst = int(np.flatnonzero(known)[np.argmax(error[known])])
            parts.append(f"reproj. error median {np.median(error[known]):.1f} px "
                         f"(worst {H36M17.joints[worst]} {error[worst]:.1f} px)")
            parts.append(f"views {views[known].mean():.1f} (min {views[known].min()})")
        parts.append(f"{int(known.sum())}/17 joints")
    return "   |   ".join(parts)


def joint_table(take: Take, frame: int) -> str:
    """One line per H36M-17 joint at ``frame``: reprojection error (px) and views used."""
    if take.poses3d is None:
        return ""
    error = take.poses3d.reprojection_error_px[frame]  # (17,) px
    views = take.poses3d.views_used[frame]  # (17,)
    return "\n".join(
        f"{name}: {error[j]:.1f} px, {views[j]} views" if np.isfinite(error[j]) else f"{name}: not triangulated"
        for j, name in enumerate(H36M17.joints)
    )


class MainWindow(QMainWindow):
    """Crossview's desktop window for one take at a time."""

    def __init__(self, presenter: PlaybackPresenter | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Crossview")
        self.presenter = presenter or PlaybackPresenter(self)
        self.take: Take | None = None
        self.error_box: QMessageBox | None = None

        self.cameras = CameraGrid()
        self.scene3d = Scene3D(np.asarray(H36M17.bones))
        self.hud = QLabel("File > Open take folder… to start")
        self.hud.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.cameras)
        splitter.addWidget(self.scene3d)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([900, 600])
        self.splitter = splitter

        self.back_button = QToolButton(text="◀|", toolTip="Step back one frame (Left)")
        self.play_button = QToolButton(text="▶", toolTip="Play / pause (Space)")
        self.forward_button = QToolButton(text="|▶", toolTip="Step forward one frame (Right)")
        self.slider = QSlider(Qt.Orientation.Horizontal, toolTip="Seek")
        self.slider.setRange(0, 0)
        self.speed_box = QComboBox(toolTip="Playback speed")
        for speed in SPEEDS:
            self.speed_box.addItem(f"{speed:g}x", speed)
        self.speed_box.setCurrentIndex(SPEEDS.index(self.presenter.speed))
        controls = QHBoxLayout()
        for widget in (self.back_button, self.play_button, self.forward_button):
            controls.addWidget(widget)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.speed_box)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.hud)
        layout.addLayout(controls)
        self.setCentralWidget(central)
        self.statusBar().showMessage("No take open")
        self._build_menus()
        self._set_controls_enabled(False)

        self.back_button.clicked.connect(lambda: self.presenter.step(-1))
        self.forward_button.clicked.connect(lambda: self.presenter.step(1))
        self.play_button.clicked.connect(self.presenter.toggle_play)
        self.slider.valueChanged.connect(self.presenter.seek)
        self.speed_box.currentIndexChanged.connect(lambda i: self.presenter.set_speed(self.speed_box.itemData(i)))
        self.presenter.take_opened.connect(self._on_take_opened)
        self.presenter.frame_changed.connect(self._on_frame_changed)
        self.presenter.playing_changed.connect(self._on_playing_changed)
        self.presenter.speed_changed.connect(self._on_speed_changed)
        self.presenter.error.connect(self.show_error)
        self.resize(1500, 900)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open take folder…", self, shortcut=QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self.choose_take)
        file_menu.addAction(open_action)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        playback = self.menuBar().addMenu("&Playback")
        for text, key, slot in (
            ("Play / pause", Qt.Key.Key_Space, self.presenter.toggle_play),
            ("Step back", Qt.Key.Key_Left, lambda: self.presenter.step(-1)),
            ("Step forward", Qt.Key.Key_Right, lambda: self.presenter.step(1)),
        ):
            action = QAction(text, self, shortcut=QKeySequence(key))
            action.triggered.connect(slot)
            playback.addAction(action)

        view = self.menuBar().addMenu("&View")
        self.show_keypoints_action = QAction("2D &keypoints", self, checkable=True, checked=True)
        self.show_reprojection_action = QAction("3D joints &reprojected", self, checkable=True, checked=True)
        self.show_skeleton3d_action = QAction("3D &skeleton", self, checkable=True, checked=True)
        for action in (self.show_keypoints_action, self.show_reprojection_action, self.show_skeleton3d_action):
            action.toggled.connect(lambda _checked: self._on_frame_changed(self.presenter.frame))
            view.addAction(action)

    # ----------------------------------------------------------------------------------------
    def choose_take(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open take folder")
        if folder:
            self.presenter.open_take(Path(folder))

    def show_error(self, message: str) -> None:
        """Tell the user: the status bar keeps the message, a box makes sure it is seen."""
        logger.error("%s", message)
        self.statusBar().showMessage(message)
        if self.error_box is not None:
            self.error_box.close()
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, "Crossview", message, parent=self)
        self.error_box.open()  # window-modal, does not block the event loop

    def _set_controls_enabled(self, enabled: bool) -> None:
        for widget in (self.back_button, self.play_button, self.forward_button, self.slider, self.speed_box):
            widget.setEnabled(enabled)

    def _on_take_opened(self, take: Take) -> None:
        self.take = take
        joint_set = take.poses2d.joint_set if take.poses2d is not None else "h36m17"
        self.cameras.set_cameras(tuple(take.rig), np.asarray(get_skeleton(joint_set).bones))
        focus = None
        if take.poses3d is not None and np.isfinite(take.poses3d.points).any():
            focus = np.nanmedian(take.poses3d.points.reshape(-1, 3), axis=0)
        self.scene3d.set_cameras(tuple(take.rig), focus)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, take.num_frames - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self._set_controls_enabled(True)
        self.setWindowTitle(f"Crossview — {take.folder.name}")
        videos = f"{len(take.videos)} videos" if take.videos else "no videos"
        self.statusBar().showMessage(
            f"Opened {take.folder}: {len(take.camera_names)} cameras, {take.num_frames} frames, {videos}")

    def _on_frame_changed(self, frame: int) -> None:
        take = self.take
        if take is None:
            return
        try:
            self._draw(take, frame)
        except CrossviewError as exc:  # a video that stops decoding, say: tell the user, keep going
            self.presenter.pause()
            self.show_error(f"Frame {frame}: {exc}")

    def _draw(self, take: Take, frame: int) -> None:
        keypoints = take.keypoints(frame) if self.show_keypoints_action.isChecked() else None  # (C, J, 2)
        points = take.poses3d.points[frame] if take.poses3d is not None else None  # (17, 3) mm
        reprojected = None
        if points is not None and self.show_reprojection_action.isChecked():
            reprojected = take.rig.project(points)  # (C, 17, 2) px
        for c, tile in enumerate(self.cameras.tiles):
            tile.show_image(take.frame(tile.camera.name, frame))
            tile.show_keypoints(None if keypoints is None else keypoints[c])
            tile.show_reprojection(None if reprojected is None else reprojected[c])
        truth = take.ground_truth[frame] if take.ground_truth is not None else None
        self.scene3d.show_points(points if self.show_skeleton3d_action.isChecked() else None, truth)
        self.hud.setText(hud_text(take, frame, self.presenter.speed))
        self.hud.setToolTip(joint_table(take, frame))
        self.slider.blockSignals(True)
        self.slider.setValue(frame)
        self.slider.blockSignals(False)

    def _on_playing_changed(self, playing: bool) -> None:
        self.play_button.setText("❚❚" if playing else "▶")

    def _on_speed_changed(self, speed: float) -> None:
        self.speed_box.blockSignals(True)
        self.speed_box.setCurrentIndex(SPEEDS.index(speed))
        self.speed_box.blockSignals(False)
        if self.take is not None:
            self.hud.setText(hud_text(self.take, self.presenter.frame, speed))

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.presenter.close_take()
        super().closeEvent(event)
