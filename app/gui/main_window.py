"""The main window: camera tiles, the 3D view, a HUD, playback controls, and live capture.

The window draws :class:`~app.gui.view_frame.ViewFrame` objects, whatever produced them: a
:class:`~app.gui.playback_feed.PlaybackFeed` for an open take (driven by the
:class:`~app.gui.presenter.PlaybackPresenter`'s frame) or a :class:`~app.gui.live_feed.LiveFeed` for
live cameras. It holds no playback state of its own. Every error reaches the user in the window —
status bar, a message box and the log panel — never only a terminal.
"""

from __future__ import annotations

import collections
import logging
import time
from pathlib import Path

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QAction, QFont, QKeySequence
from PyQt6.QtWidgets import (
    QComboBox,
    QDockWidget,
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

import pyqtgraph as pg

from app.gui.camera_tiles import CameraGrid
from app.gui.log_panel import LogPanel
from app.gui.playback_feed import PlaybackFeed
from app.gui.presenter import SPEEDS, PlaybackPresenter
from app.gui.scene3d import Scene3D
from app.gui.settings import GuiSettings, build_pipeline, load_settings, save_settings, settings_file
from app.gui.view_frame import ViewFrame, hud_text, joint_table
from app.take import Take
from calibration.errors import CrossviewError
from calibration.rig import Rig
from models.skeleton import H36M17, get_skeleton

logger = logging.getLogger(__name__)

#: Initial height of the bottom panels (joint errors, log, MPJPE), px.
DOCK_HEIGHT_PX = 170
#: Seconds over which the "fps shown" figure is measured.
RATE_WINDOW_S = 1.0


class RateMeter:
    """Events per second over the last :data:`RATE_WINDOW_S` seconds."""

    def __init__(self) -> None:
        self._times: collections.deque[float] = collections.deque()

    def tick(self) -> float:
        now = time.perf_counter()
        self._times.append(now)
        while self._times and now - self._times[0] > RATE_WINDOW_S:
            self._times.popleft()
        span = now - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


class JointErrorPlot(pg.PlotWidget):
    """Per-joint reprojection error of the frame shown, one bar per H36M-17 joint (px)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setLabel("left", "error", units="px")
        bottom = self.getAxis("bottom")
        bottom.setTicks([list(enumerate(H36M17.joints))])
        font = QFont()
        font.setPointSize(7)  # 17 joint names must fit under a dock's width
        bottom.setStyle(tickFont=font)
        self.bars = pg.BarGraphItem(x=np.arange(17), height=np.zeros(17), width=0.7, brush=(255, 160, 60))
        self.addItem(self.bars)
        self._top = 10.0
        self.setYRange(0, self._top)
        self.setMouseEnabled(x=False, y=False)

    def show_errors(self, error_px: np.ndarray | None) -> None:
        """``error_px``: (17,) px, NaN where unknown (drawn as 0); None clears."""
        heights = np.zeros(17) if error_px is None else np.nan_to_num(np.asarray(error_px, dtype=np.float64))
        self.bars.setOpts(height=heights)
        top = max(10.0, float(heights.max()) * 1.1)
        if not self._top / 3 <= top <= self._top:  # rescale the axis only on a big change (it repaints)
            self._top = top
            self.setYRange(0, top)


class MainWindow(QMainWindow):
    """Crossview's desktop window: one take or one live session at a time.

    Signals:
        frame_shown(int): a frame was drawn (its index); tests and tools wait on it.
    """

    frame_shown = pyqtSignal(int)

    def __init__(self, presenter: PlaybackPresenter | None = None, settings_path: Path | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Crossview")
        self.presenter = presenter or PlaybackPresenter(self)
        self.settings_path = Path(settings_path) if settings_path is not None else settings_file()
        self.take: Take | None = None
        self.feed: PlaybackFeed | None = None
        self.live = None  # app.gui.live_feed.LiveFeed while live
        self.wizard = None  # the calibration wizard, once opened
        self.rig: Rig | None = None
        self.error_box: QMessageBox | None = None
        self.shown: ViewFrame | None = None
        self.rate = RateMeter()
        self.fps_shown = 0.0
        try:
            self.settings = load_settings(self.settings_path)
        except CrossviewError as exc:
            self.settings = GuiSettings()
            self._startup_error = f"Settings not read, defaults used: {exc}"
        else:
            self._startup_error = None

        self.cameras = CameraGrid()
        self.scene3d = Scene3D(np.asarray(H36M17.bones))
        self.hud = QLabel("File > Open take folder… or File > Open live sources… to start")
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
        self.record_button = QToolButton(text="● Record", toolTip="Record the live cameras into a take folder")
        self.stop_record_button = QToolButton(text="■ Stop", toolTip="Stop recording and finalise the take")
        controls = QHBoxLayout()
        for widget in (self.back_button, self.play_button, self.forward_button):
            controls.addWidget(widget)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.speed_box)
        controls.addWidget(self.record_button)
        controls.addWidget(self.stop_record_button)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.hud)
        layout.addLayout(controls)
        self.setCentralWidget(central)

        self.joint_errors = JointErrorPlot()
        self.log_panel = LogPanel()
        self.joint_dock = self._add_dock("Reprojection error per joint", self.joint_errors)
        self.log_dock = self._add_dock("Log", self.log_panel)
        self.tabifyDockWidget(self.joint_dock, self.log_dock)
        self.joint_dock.raise_()
        self.resizeDocks([self.joint_dock], [DOCK_HEIGHT_PX], Qt.Orientation.Vertical)

        self.statusBar().showMessage("No take open")
        self._build_menus()
        self._set_controls_enabled(False)
        self._set_record_enabled(False)

        self.back_button.clicked.connect(lambda: self.presenter.step(-1))
        self.forward_button.clicked.connect(lambda: self.presenter.step(1))
        self.play_button.clicked.connect(self.presenter.toggle_play)
        self.slider.valueChanged.connect(self.presenter.seek)
        self.speed_box.currentIndexChanged.connect(lambda i: self.presenter.set_speed(self.speed_box.itemData(i)))
        self.record_button.clicked.connect(self.choose_recording_folder)
        self.stop_record_button.clicked.connect(self.stop_recording)
        self.presenter.take_opened.connect(self._on_take_opened)
        self.presenter.frame_changed.connect(self._on_frame_changed)
        self.presenter.playing_changed.connect(self._on_playing_changed)
        self.presenter.speed_changed.connect(self._on_speed_changed)
        self.presenter.error.connect(self.show_error)
        self.resize(1500, 900)
        if self._startup_error:
            self.show_error(self._startup_error)

    def _add_dock(self, title: str, widget: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        return dock

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        for text, shortcut, slot in (
            ("&Open take folder…", QKeySequence.StandardKey.Open, self.choose_take),
            ("Open &live sources…", None, self.choose_live_sources),
            ("&Export…", None, self.open_export_dialog),
            ("&Settings…", QKeySequence.StandardKey.Preferences, self.open_settings_dialog),
            ("&Quit", QKeySequence.StandardKey.Quit, self.close),
        ):
            action = QAction(text, self)
            if shortcut is not None:
                action.setShortcut(shortcut)
            action.triggered.connect(slot)
            file_menu.addAction(action)
        tools = self.menuBar().addMenu("&Tools")
        wizard_action = QAction("&Calibration wizard…", self)
        wizard_action.triggered.connect(self.open_calibration_wizard)
        tools.addAction(wizard_action)

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
            action.toggled.connect(self._redraw)
            view.addAction(action)
        view.addSeparator()
        view.addAction(self.joint_dock.toggleViewAction())
        view.addAction(self.log_dock.toggleViewAction())

    # ----------------------------------------------------------------------------------------
    # Commands
    def choose_take(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open take folder")
        if folder:
            self.presenter.open_take(Path(folder))

    def show_error(self, message: str) -> None:
        """Tell the user: the status bar keeps the message, a box makes sure it is seen, the log
        panel keeps the history."""
        logger.error("%s", message)
        self.statusBar().showMessage(message)
        if self.error_box is not None:
            self.error_box.close()
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, "Crossview", message, parent=self)
        self.error_box.open()  # window-modal, does not block the event loop

    def apply_settings(self, settings: GuiSettings, *, save: bool = True) -> None:
        """Use ``settings`` from now on (saved to the settings file); a take played through the
        pipeline, or a live session, restarts its pipeline with them."""
        self.settings = settings
        if save:
            try:
                save_settings(settings, self.settings_path)
            except OSError as exc:
                self.show_error(f"Cannot save the settings to {self.settings_path}: {exc}")
        if self.feed is not None and self.feed.uses_pipeline and self.take is not None:
            self._start_feed(self.take)
            self.feed.request(self.presenter.frame)
        if self.live is not None:
            self.live.restart_pipeline(self._pipeline_for)
        self.statusBar().showMessage(f"Settings applied ({settings.detector}, {settings.provider})")

    def open_settings_dialog(self) -> None:
        from app.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.apply_settings(dialog.settings())

    def open_export_dialog(self) -> None:
        from app.gui.export_dialog import ExportDialog

        if self.take is None or not (self.take.folder / "poses3d.npz").is_file():
            self.show_error("Nothing to export: open a processed take (one with poses3d.npz) first; "
                            "'crossview process TAKE' writes it")
            return
        ExportDialog(self.take.folder, self).exec()

    def open_calibration_wizard(self) -> None:
        try:
            from app.gui.calibration_wizard import CalibrationWizard
        except ImportError as exc:
            self.show_error(f"The calibration wizard is not available in this installation ({exc})")
            return
        self.wizard = CalibrationWizard(self)
        self.wizard.show()

    def choose_live_sources(self) -> None:
        from app.gui.source_dialog import SourceDialog

        dialog = SourceDialog(self, calibration=self.take.calibration_path if self.take is not None else None)
        if dialog.exec():
            self.start_live(dialog.sources())

    def start_live(self, sources) -> bool:
        """Capture ``sources`` (:class:`app.gui.source_dialog.LiveSources`) live, closing any open
        take; returns False (with the error shown) when the session cannot start."""
        from app.gui.live_feed import LiveFeed

        self.stop_live()
        self.presenter.close_take()
        self._close_feed()
        rig = None
        try:
            if sources.calibration is not None:
                from calibration import load_rig

                rig = load_rig(sources.calibration)
            self.live = LiveFeed(sources.sources, rig, self._pipeline_for, self)
        except CrossviewError as exc:
            self.show_error(f"Cannot start live capture: {exc}")
            return False
        self.live.frame_ready.connect(self.show_view)
        self.live.error.connect(self.show_error)
        self.live.recording_changed.connect(self._on_recording_changed)
        self.live.rig_changed.connect(self._show_rig)
        self.take = None
        self._show_rig(self.live.rig)
        self._set_controls_enabled(False)
        self._set_record_enabled(True)
        self.setWindowTitle("Crossview — live")
        self.statusBar().showMessage(f"Live: {', '.join(f'{n} = {s}' for n, s in sources.sources.items())}")
        return True

    def stop_live(self) -> None:
        if self.live is not None:
            self.live.close()
            self.live.deleteLater()
            self.live = None
            self._set_record_enabled(False)

    def choose_recording_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Record into folder (a new take folder inside it)")
        if folder:
            self.start_recording(Path(folder) / time.strftime("take-%Y%m%d-%H%M%S"))

    def start_recording(self, folder: Path) -> None:
        if self.live is None:
            self.show_error("Recording needs live sources: File > Open live sources… first")
            return
        try:
            self.live.start_recording(Path(folder))
        except CrossviewError as exc:
            self.show_error(f"Cannot record: {exc}")

    def stop_recording(self) -> Path | None:
        if self.live is None:
            return None
        try:
            return self.live.stop_recording()
        except CrossviewError as exc:
            self.show_error(f"Recording stopped with an error: {exc}")
            return None

    # ----------------------------------------------------------------------------------------
    # Drawing
    def show_view(self, view: ViewFrame) -> None:
        """Draw ``view`` in the tiles, the 3D view, the HUD and the joint-error plot."""
        self.shown = view
        self.fps_shown = self.rate.tick()
        self._draw(view)
        if self.take is not None and self.presenter.playing:
            self._set_slider(view.index)
        self.frame_shown.emit(view.index)

    def _set_slider(self, frame: int) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(frame)
        self.slider.blockSignals(False)

    def _redraw(self) -> None:
        if self.shown is not None:
            self._draw(self.shown)

    def _draw(self, view: ViewFrame) -> None:
        rig = self.rig
        if rig is None:
            return
        keypoints = view.keypoints if self.show_keypoints_action.isChecked() else None  # (C, J, 2) px
        points = view.points3d  # (17, 3) mm
        reprojected = None
        if points is not None and self.show_reprojection_action.isChecked():
            reprojected = rig.project(points)  # (C, 17, 2) px
        bones = np.asarray(get_skeleton(view.joint_set).bones)
        for c, tile in enumerate(self.cameras.tiles):
            tile.show_image(view.images[c] if c < len(view.images) else None, prepared=view.prepared)
            if not np.array_equal(tile.bones, bones):
                tile.bones = bones
            tile.show_keypoints(None if keypoints is None else keypoints[c])
            tile.show_reprojection(None if reprojected is None else reprojected[c])
        self.scene3d.show_points(points if self.show_skeleton3d_action.isChecked() else None, view.truth)
        skew = recording = None
        if self.live is not None:
            skew, recording = self.live.skew_ms, self.live.recording_folder
        self.hud.setText(hud_text(view, num_frames=self.take.num_frames if self.take is not None else None,
                                  fps_shown=self.fps_shown, speed=self.presenter.speed if self.take else None,
                                  skew_ms=skew, recording=str(recording) if recording else None))
        self.hud.setToolTip(joint_table(view))
        self.joint_errors.show_errors(view.joint_error_px)

    # ----------------------------------------------------------------------------------------
    def _pipeline_factory(self, rig: Rig):
        settings = self.settings
        return lambda: build_pipeline(rig, settings)

    def _pipeline_for(self, rig: Rig):
        """Build the pipeline for ``rig`` with the current settings (called on a worker thread)."""
        return build_pipeline(rig, self.settings)

    def _close_feed(self) -> None:
        if self.feed is not None:
            self.feed.close()
            self.feed.deleteLater()
            self.feed = None

    def _start_feed(self, take: Take) -> None:
        self._close_feed()
        self.feed = PlaybackFeed(take, self._pipeline_factory(take.rig), self)
        self.feed.frame_ready.connect(self.show_view)
        self.feed.error.connect(self.show_error)
        self.feed.pipeline_ready.connect(
            lambda provider: self.statusBar().showMessage(f"Pose pipeline ready ({provider}); playing through it"))
        if self.feed.uses_pipeline:
            self.statusBar().showMessage(f"No poses3d.npz in {take.folder.name}: loading the pose pipeline "
                                         f"({self.settings.detector}, {self.settings.provider})…")

    def _show_rig(self, rig: Rig | None) -> None:
        self.rig = rig
        self.shown = None
        if rig is None:
            self.cameras.set_cameras((), np.zeros((0, 2), dtype=np.int64))
            return
        self.cameras.set_cameras(tuple(rig), np.asarray(H36M17.bones))
        if self.live is None or self.live.calibrated:  # placeholder cameras have no place in the world
            self.scene3d.set_cameras(tuple(rig))

    def _set_controls_enabled(self, enabled: bool) -> None:
        for widget in (self.back_button, self.play_button, self.forward_button, self.slider, self.speed_box):
            widget.setEnabled(enabled)

    def _set_record_enabled(self, live: bool) -> None:
        recording = live and self.live is not None and self.live.recording_folder is not None
        self.record_button.setEnabled(live and not recording)
        self.stop_record_button.setEnabled(recording)

    def _on_recording_changed(self, folder: str) -> None:
        self._set_record_enabled(self.live is not None)
        self._redraw()
        self.statusBar().showMessage(f"Recording into {folder}" if folder else "Recording stopped")

    def _on_take_opened(self, take: Take) -> None:
        self.stop_live()
        self.take = take
        joint_set = take.poses2d.joint_set if take.poses2d is not None else "h36m17"
        self.rig = take.rig
        self.shown = None
        self.cameras.set_cameras(tuple(take.rig), np.asarray(get_skeleton(joint_set).bones))
        focus = None
        if take.poses3d is not None and np.isfinite(take.poses3d.points).any():
            focus = np.nanmedian(take.poses3d.points.reshape(-1, 3), axis=0)
        elif take.ground_truth is not None and np.isfinite(take.ground_truth).any():
            focus = np.nanmedian(take.ground_truth.reshape(-1, 3), axis=0)
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
        self._start_feed(take)

    def _on_frame_changed(self, frame: int) -> None:
        if self.feed is None:
            return
        if not self.presenter.playing:
            # While playing, the slider follows the frames drawn (show_view): moving it on every
            # clock tick would repaint the window up to 60 times a second for nothing new.
            self._set_slider(frame)
        try:
            self.feed.request(frame)
        except CrossviewError as exc:
            self.presenter.pause()
            self.show_error(f"Frame {frame}: {exc}")

    def _on_playing_changed(self, playing: bool) -> None:
        self.play_button.setText("❚❚" if playing else "▶")
        if not playing:
            self._set_slider(self.presenter.frame)

    def _on_speed_changed(self, speed: float) -> None:
        self.speed_box.blockSignals(True)
        self.speed_box.setCurrentIndex(SPEEDS.index(speed))
        self.speed_box.blockSignals(False)
        self._redraw()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.stop_live()
        self.presenter.close_take()
        self._close_feed()
        self.log_panel.detach()
        super().closeEvent(event)
