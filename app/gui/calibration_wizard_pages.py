"""The calibration wizard's first pages: sources, intrinsics (board search) and shared views.

Each page draws what the :class:`~app.gui.calibration_wizard_session.CalibrationSession` says and
calls its commands; a page is complete when the session holds what the next page needs. Errors are
shown on the page (red text), never as a traceback, and nothing is written before the last page
(:mod:`app.gui.calibration_wizard_results`).
"""

from __future__ import annotations

import logging
import re
from typing import Callable, Sequence

import numpy as np
from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHeaderView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

import pyqtgraph as pg

from app.calibrate_cli import find_timestamps
from app.gui.calibration_wizard_session import CalibrationSession, Sources
from calibration.boards import load_board
from calibration.errors import CrossviewError
from calibration.intrinsics import GRID_COLUMNS, GRID_ROWS, coverage_cells
from calibration.quality import PAIR_VIEWS_WARN
from calibration.video_views import find_videos

logger = logging.getLogger(__name__)

#: Colours (RGB) of the overlays; the wizard test probes for the corner colour.
CORNER_COLOUR = (0, 255, 120)
COVERAGE_RGBA = (0, 200, 255, 70)
ERROR_STYLE = "color: #d03030; font-weight: bold;"
GOOD, WEAK, NONE = QColor(170, 225, 170), QColor(250, 215, 140), QColor(245, 160, 160)


def message_label() -> QLabel:
    label = QLabel("")
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def table(rows: int, headers: list[str]) -> QTableWidget:
    table = QTableWidget(rows, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def cell(text: str, colour: QColor | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
    if colour is not None:
        item.setBackground(colour)
    return item


def fill_table(table: QTableWidget, rows: Sequence[Sequence[tuple[str, QColor | None]]]) -> None:
    """Replace ``table``'s rows: one ``(text, background colour or None)`` per cell; columns fit their text."""
    table.setRowCount(len(rows))
    for r, values in enumerate(rows):
        for c, (text, colour) in enumerate(values):
            table.setItem(r, c, cell(text, colour))
    table.resizeColumnsToContents()


class TaskPage(QWizardPage):
    """A page that runs session tasks in the background: a status line, Cancel and a retry button.

    A failure of one of the page's ``TASKS`` (the session's ``failed`` signal, or a command that
    raises :class:`CrossviewError` on start) shows in red in ``status``, disables Cancel and enables
    the retry button, which runs :meth:`initializePage` again; Back cancels the running task.
    Subclasses add what else a failure changes in :meth:`_show_failure`.

    Attributes:
        session: the wizard's session.
        error: the last task's error message, "" when none.
        status: the status line.
        cancel_button: cancels the running task.
        retry_button: starts the page again.
    """

    #: The session task names whose failures this page shows.
    TASKS: tuple[str, ...] = ()

    def __init__(self, session: CalibrationSession, retry_text: str) -> None:
        super().__init__()
        self.session = session
        self.error = ""
        self.status = message_label()
        self.cancel_button = QPushButton("Cancel")
        self.retry_button = QPushButton(retry_text)
        self.cancel_button.clicked.connect(lambda: session.task.cancel() if session.task else None)
        self.retry_button.clicked.connect(self.initializePage)
        session.failed.connect(self._on_failed)

    def _reset_task_controls(self) -> None:
        """Before a start: no error, a plain status line, Cancel on, retry off."""
        self.error = ""
        self.status.setStyleSheet("")
        self.cancel_button.setEnabled(True)
        self.retry_button.setEnabled(False)

    def _run(self, task: str, command: Callable[[], None]) -> None:
        """Call a session command that starts ``task``; its CrossviewError shows as that task's failure."""
        try:
            command()
        except CrossviewError as exc:
            self._on_failed(task, str(exc))

    def cleanupPage(self) -> None:  # noqa: N802 (Back pressed)
        self.session.cancel()

    def _on_failed(self, task: str, message: str) -> None:
        if task not in self.TASKS:
            return
        self.error = message
        self.status.setStyleSheet(ERROR_STYLE)
        self.status.setText(message)
        self.cancel_button.setEnabled(False)
        self.retry_button.setEnabled(True)
        self._show_failure(message)
        self.completeChanged.emit()

    def _show_failure(self, message: str) -> None:
        """What else a failure changes on the page (nothing by default)."""


class BoardTile(pg.GraphicsLayoutWidget):
    """One camera's latest frame, the board corners found in it and its coverage map (8 x 6 cells)."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.setBackground((20, 20, 20))
        self.title = self.addLabel(name, row=0, col=0)
        self.view = self.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMenu=False)
        self.view.setMouseEnabled(False, False)
        self.image = pg.ImageItem(axisOrder="row-major", levels=(0, 255))
        self.coverage_item = pg.ImageItem(axisOrder="row-major", levels=(0, 255))
        self.corner_item = pg.ScatterPlotItem(size=8, pen=pg.mkPen(CORNER_COLOUR, width=2), brush=None, pxMode=True)
        for z, item in enumerate((self.image, self.coverage_item, self.corner_item)):
            item.setZValue(z)
            self.view.addItem(item)
        self.covered = np.zeros(GRID_ROWS * GRID_COLUMNS, bool)
        self.views_found = 0
        self.size_px: tuple[int, int] | None = None  # (width, height)

    def reset(self) -> None:
        self.covered[:] = False
        self.views_found = 0
        self.corner_item.setData(x=np.zeros(0), y=np.zeros(0))

    def show_view(self, image: np.ndarray, corners: np.ndarray, size: tuple[int, int]) -> None:
        """Show a frame and its detection.

        Args:
            image: (h, w, 3) uint8 BGR, possibly shrunk.
            corners: (N, 2) px in the full frame, NaN where unseen.
            size: the full frame's (width, height), px.
        """
        width, height = size
        self.image.setImage(np.ascontiguousarray(image[..., ::-1]), autoLevels=False)
        self.image.setRect(QRectF(0, 0, width, height))  # after setImage: the rect scales the image it holds
        if self.size_px != (width, height):
            self.size_px = (width, height)
            self.view.setRange(QRectF(0, 0, width, height), padding=0.0)
            self.view.disableAutoRange()
        known = corners[np.isfinite(corners).all(axis=1)] + 0.5  # (n, 2) pixel centres
        self.corner_item.setData(x=known[:, 0], y=known[:, 1])
        if len(known):
            self.covered |= coverage_cells(corners, width, height)
            self.views_found += 1
        self._draw_coverage()

    def _draw_coverage(self) -> None:
        rgba = np.zeros((GRID_ROWS, GRID_COLUMNS, 4), np.uint8)  # (rows, columns, RGBA)
        rgba[self.covered.reshape(GRID_ROWS, GRID_COLUMNS)] = COVERAGE_RGBA
        self.coverage_item.setImage(rgba, autoLevels=False)
        if self.size_px is not None:
            self.coverage_item.setRect(QRectF(0, 0, *self.size_px))
        self.title.setText(f"{self.name}: board in {self.views_found} frames, "
                           f"coverage {100 * self.covered.mean():.0f} %")


class SourcesPage(QWizardPage):
    """Choose the board file and the videos (or live cameras)."""

    def __init__(self, session: CalibrationSession, videos=None, board=None) -> None:
        super().__init__()
        self.session = session
        self.setTitle("Board and cameras")
        self.setSubTitle("Choose the board definition and the calibration videos (or live cameras). "
                         "Film the board where several cameras see it at once, and across each image.")
        self.board_edit = QLineEdit(str(board) if board else "")
        self.board_edit.setPlaceholderText("board YAML or caliscope charuco.toml")
        board_button = QPushButton("Browse…")
        board_button.clicked.connect(self._browse_board)
        self.board_label = message_label()
        self.videos_radio = QRadioButton("Recorded videos (one per camera, named after the camera)")
        self.live_radio = QRadioButton("Live cameras (one per line: name = camera index, device, URL, video or folder)")
        group = QButtonGroup(self)
        group.addButton(self.videos_radio)
        group.addButton(self.live_radio)
        self.videos_edit = QLineEdit(" ; ".join(str(v) for v in videos) if isinstance(videos, (list, tuple))
                                     else str(videos or ""))
        self.videos_edit.setPlaceholderText("a folder of videos, or video files separated by ';'")
        videos_button = QPushButton("Folder…")
        videos_button.clicked.connect(self._browse_videos)
        self.step_box = QSpinBox(minimum=1, maximum=100, value=1)
        self.step_box.setToolTip("use every N-th synchronised frame (faster on long videos)")
        self.live_edit = QPlainTextEdit()
        self.live_edit.setPlaceholderText("cam_0 = 0\ncam_1 = 1\ncam_2 = rtsp://192.168.1.20/stream")
        self.live_edit.setMaximumHeight(90)
        self.live_frames_box = QSpinBox(minimum=10, maximum=5000, value=200)
        self.message = message_label()
        self.message.setStyleSheet(ERROR_STYLE)
        self.error = ""

        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.board_edit, 1)
        row.addWidget(board_button)
        form.addRow("Board file:", row)
        form.addRow("", self.board_label)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.videos_radio)
        row = QHBoxLayout()
        row.addWidget(self.videos_edit, 1)
        row.addWidget(videos_button)
        row.addWidget(QLabel("every"))
        row.addWidget(self.step_box)
        row.addWidget(QLabel("frame(s)"))
        layout.addLayout(row)
        layout.addWidget(self.live_radio)
        layout.addWidget(self.live_edit)
        row = QHBoxLayout()
        row.addWidget(QLabel("Keep up to"))
        row.addWidget(self.live_frames_box)
        row.addWidget(QLabel("frame sets (4 per second) while the board is moved"))
        row.addStretch(1)
        layout.addLayout(row)
        layout.addWidget(self.message)
        layout.addStretch(1)
        self.videos_radio.toggled.connect(self._enable_mode)
        self.videos_radio.setChecked(True)
        self.board_edit.editingFinished.connect(self._describe_board)
        self._describe_board()

    def _enable_mode(self, videos: bool) -> None:
        for widget in (self.videos_edit, self.step_box):
            widget.setEnabled(videos)
        for widget in (self.live_edit, self.live_frames_box):
            widget.setEnabled(not videos)

    def _browse_board(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Board definition", "", "Boards (*.yaml *.yml *.toml)")
        if path:
            self.board_edit.setText(path)
            self._describe_board()

    def _browse_videos(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of calibration videos")
        if folder:
            self.videos_edit.setText(folder)

    def _describe_board(self) -> None:
        text = self.board_edit.text().strip()
        if not text:
            self.board_label.setText("")
            return
        try:
            self.board_label.setText(load_board(text).describe())
            self.board_label.setStyleSheet("")
        except CrossviewError as exc:
            self.board_label.setText(str(exc))
            self.board_label.setStyleSheet(ERROR_STYLE)

    def live_sources(self) -> dict[str, str]:
        """Camera name -> source spec from the live text box (a line without a name gets ``cam_<i>``)."""
        sources: dict[str, str] = {}
        for i, line in enumerate(l.strip() for l in self.live_edit.toPlainText().splitlines()):
            if not line:
                continue
            match = re.fullmatch(r"([\w.-]+)\s*=\s*(.+)", line)
            name, spec = (match.group(1), match.group(2).strip()) if match else (f"cam_{len(sources)}", line)
            if name in sources:
                raise CrossviewError(f"line {i + 1}: camera name {name!r} is used twice")
            sources[name] = spec
        return sources

    def validatePage(self) -> bool:  # noqa: N802 (Qt's name)
        try:
            board_text = self.board_edit.text().strip()
            if not board_text:
                raise CrossviewError("choose the board definition file (board YAML or caliscope charuco.toml)")
            board = load_board(board_text)
            if self.videos_radio.isChecked():
                parts = [p.strip() for p in self.videos_edit.text().split(";") if p.strip()]
                if not parts:
                    raise CrossviewError("choose a folder of calibration videos (or the video files)")
                videos = find_videos(parts)
                sources = Sources(board, videos=videos, timestamps=find_timestamps(videos), step=self.step_box.value())
            else:
                live = self.live_sources()
                sources = Sources(board, live=live, live_frames=self.live_frames_box.value())
        except CrossviewError as exc:
            self.error = str(exc)
            self.message.setText(self.error)
            return False
        self.error = ""
        self.message.setText("")
        self.session.set_sources(sources)
        return True


class IntrinsicsPage(TaskPage):
    """Search the board in every frame (live overlay, coverage maps), then calibrate each camera's lens."""

    TASKS = ("board search", "intrinsic calibration")

    def __init__(self, session: CalibrationSession) -> None:
        super().__init__(session, "Search again")
        self.setTitle("Intrinsics: the board in each camera")
        self.setSubTitle("Green circles: board corners found. Blue cells: parts of the image the board has "
                         "covered; a lens is only well calibrated where the board has been.")
        self.tiles: list[BoardTile] = []
        self.grid = QGridLayout()
        self.grid.setSpacing(2)
        self.progress = QProgressBar()
        self.shared_label = message_label()
        self.shared_label.setToolTip("frames in which both cameras saw the board (live while frames come in)")
        self.stop_button = QPushButton("Stop capture")
        self.stop_button.setToolTip("live cameras: stop capturing and use the frames so far")
        self.table = table(0, ["camera", "views used", "coverage", "RMS px", "principal point (px)"])
        self.table.setMaximumHeight(150)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        for button in (self.stop_button, self.cancel_button, self.retry_button):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(self.grid, 1)
        layout.addLayout(row)
        layout.addWidget(self.shared_label)
        layout.addWidget(self.status)
        layout.addWidget(self.table)
        self.stop_button.clicked.connect(session.stop_capture)
        session.views_changed.connect(self._on_views_changed)
        session.preview.connect(self._on_preview)
        session.detection_progress.connect(self._on_progress)
        session.detection_done.connect(self._on_detection_done)
        session.intrinsics_done.connect(self._on_intrinsics_done)

    def initializePage(self) -> None:  # noqa: N802
        names = self.session.sources.camera_names
        if [t.name for t in self.tiles] != list(names):
            for tile in self.tiles:
                self.grid.removeWidget(tile)
                tile.deleteLater()
            columns = int(np.ceil(np.sqrt(len(names))))
            self.tiles = [BoardTile(name) for name in names]
            for i, tile in enumerate(self.tiles):
                self.grid.addWidget(tile, i // columns, i % columns)
        for tile in self.tiles:
            tile.reset()
        self.table.setRowCount(0)
        self.shared_label.setText("")
        self._reset_task_controls()
        self.progress.setRange(0, 0 if self.session.sources.live else 1)
        self.progress.setValue(0)
        self.status.setText("Searching the board…")
        self.stop_button.setVisible(bool(self.session.sources.live))
        self._run("board search", self.session.start_detection)
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802
        return self.session.intrinsics is not None

    def _on_preview(self, camera: int, image, corners, size) -> None:
        if camera < len(self.tiles):
            self.tiles[camera].show_view(image, corners, size)

    def _on_views_changed(self, seen) -> None:
        names = self.session.sources.camera_names if self.session.sources else ()
        seen = np.asarray(seen, bool)  # (C, F)
        if seen.shape[0] != len(names):
            return
        pairs = [f"{names[i]}+{names[j]}: {int((seen[i] & seen[j]).sum())}"
                 for i in range(len(names)) for j in range(i + 1, len(names))]
        self.shared_label.setText("Frames seen together — " + ",  ".join(pairs))

    def _on_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)

    def _on_detection_done(self, views) -> None:
        found = np.isfinite(views.corners[..., 0]).any(axis=2).sum(axis=1)  # (C,)
        self.status.setText(f"Board found in {', '.join(f'{n}: {k}' for n, k in zip(views.names, found))} frames; "
                            "calibrating each camera's lens…")
        self._run("intrinsic calibration", self.session.start_intrinsics)

    def _on_intrinsics_done(self, results) -> None:
        rows = []
        for result in results:
            K = result.camera.K
            pp = f"{K[0, 2]:.0f}, {K[1, 2]:.0f}" + (" (held at centre)" if result.principal_point_fixed else "")
            rows.append([(result.camera.name, None), (str(int(result.used.sum())), None),
                         (f"{100 * result.coverage:.0f} %", GOOD if result.coverage >= 0.3 else WEAK),
                         (f"{result.rms_px:.2f}", GOOD if result.rms_px <= 1.0 else WEAK), (pp, None)])
        fill_table(self.table, rows)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.status.setText("Lenses calibrated. Low coverage (orange): the board stayed in part of the image, so the "
                            "lens is well known only there; film the board in the corners of that view too.")
        self.cancel_button.setEnabled(False)
        self.stop_button.setVisible(False)
        self.completeChanged.emit()

    def _show_failure(self, message: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.stop_button.setVisible(False)


class ExtrinsicsPage(QWizardPage):
    """How many frames each pair of cameras saw the board in together (updated as frames come)."""

    def __init__(self, session: CalibrationSession) -> None:
        super().__init__()
        self.session = session
        self.setTitle("Extrinsics: views shared between cameras")
        self.setSubTitle(f"Each cell counts the frames in which both cameras saw the board. Every camera must be "
                         f"linked to the others through shared views; {PAIR_VIEWS_WARN}+ per link is good.")
        self.table = table(0, [])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.status = message_label()
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.connected = False
        self.error = ""
        session.views_changed.connect(self._on_views_changed)

    def initializePage(self) -> None:  # noqa: N802
        views = self.session.views
        seen = np.isfinite(views.corners[..., 0]).sum(axis=2) >= 6  # (C, F)
        self._on_views_changed(seen)

    def isComplete(self) -> bool:  # noqa: N802
        return self.connected

    def _on_views_changed(self, seen) -> None:
        if self.session.sources is None:
            return
        names = self.session.sources.camera_names
        seen = np.asarray(seen, bool)  # (C, F)
        shared = (seen[:, None, :] & seen[None, :, :]).sum(axis=2)  # (C, C)
        self.table.setRowCount(len(names))
        self.table.setColumnCount(len(names))
        self.table.setHorizontalHeaderLabels(list(names))
        self.table.setVerticalHeaderLabels(list(names))
        for i in range(len(names)):
            for j in range(len(names)):
                colour = None if i == j else GOOD if shared[i, j] >= PAIR_VIEWS_WARN else WEAK if shared[i, j] else NONE
                self.table.setItem(i, j, cell(str(shared[i, j]), colour))
        rows_px = sum(self.table.rowHeight(r) for r in range(len(names)))
        self.table.setFixedHeight(self.table.horizontalHeader().height() + rows_px + 2 * self.table.frameWidth())
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        n_groups, labels = connected_components(csr_matrix((shared > 0) & ~np.eye(len(names), dtype=bool)),
                                                directed=False)
        self.connected = n_groups == 1
        self.error = ""
        if self.connected:
            self.status.setStyleSheet("")
            self.status.setText(f"All {len(names)} cameras are linked through shared board views "
                                f"(diagonal: frames in which each camera saw the board).")
        else:
            groups = ["{" + ", ".join(names[c] for c in np.flatnonzero(labels == g)) + "}" for g in range(n_groups)]
            self.error = ("These groups of cameras never saw the board at the same time, so they cannot be "
                          f"placed in one frame: {'; '.join(groups)}. Record the board where cameras of "
                          "different groups see it together (or check the sync), then search again.")
            self.status.setStyleSheet(ERROR_STYLE)
            self.status.setText(self.error)
        self.completeChanged.emit()
