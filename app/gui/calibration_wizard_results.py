"""The calibration wizard's last pages: the solve (progress, Cancel) and the review (errors, 3D view, save).

Like the first pages (:mod:`app.gui.calibration_wizard_pages`), they draw what the
:class:`~app.gui.calibration_wizard_session.CalibrationSession` holds; nothing is written until Finish.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PyQt6.QtGui import QFontDatabase
from PyQt6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWizardPage,
)

import pyqtgraph.opengl as gl

from app.gui.calibration_wizard_pages import ERROR_STYLE, GOOD, WEAK, TaskPage, fill_table, message_label, table
from app.gui.calibration_wizard_session import CalibrationSession
from app.gui.scene3d import Scene3D
from calibration.errors import CrossviewError
from calibration.files import save_rig

logger = logging.getLogger(__name__)


class SolvePage(TaskPage):
    """The bundle adjustment, with progress and Cancel."""

    TASKS = ("calibration",)

    def __init__(self, session: CalibrationSession) -> None:
        super().__init__(session, "Solve again")
        self.setTitle("Solve")
        self.setSubTitle("Pairwise poses, chained over the cameras, then a bundle adjustment of all cameras "
                         "and board poses.")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.step_label = message_label()
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        row.addWidget(self.retry_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.step_label)
        layout.addWidget(self.status)
        layout.addWidget(self.log, 1)
        session.solve_progress.connect(self._on_progress)
        session.solved.connect(self._on_solved)

    @property
    def again_button(self) -> QPushButton:
        """The "Solve again" button (:attr:`retry_button`)."""
        return self.retry_button

    def initializePage(self) -> None:  # noqa: N802
        self.progress.setValue(0)
        self.log.clear()
        self.status.setText("")
        self._reset_task_controls()
        self._run("calibration", self.session.start_solve)
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802
        return self.session.calibration is not None

    def _on_progress(self, step: str, fraction: float) -> None:
        self.progress.setValue(int(round(100 * fraction)))
        self.step_label.setText(f"Step: {step}")
        self.log.appendPlainText(f"{100 * fraction:4.0f} %  {step}")

    def _on_solved(self, calibration) -> None:
        rms = calibration.quality.cameras
        self.status.setText("Solved: RMS reprojection error " + ", ".join(f"{q.name} {q.rms_px:.2f} px" for q in rms)
                            + ". Next: review and save.")
        self.log.appendPlainText("\n" + calibration.quality.format())
        self.cancel_button.setEnabled(False)
        self.completeChanged.emit()

    def _show_failure(self, message: str) -> None:
        self.log.appendPlainText(f"stopped: {message}")


class ReviewPage(QWizardPage):
    """Errors per camera, warnings, the cameras and floor in 3D; Finish saves YAML (and anipose TOML)."""

    def __init__(self, session: CalibrationSession) -> None:
        super().__init__()
        self.session = session
        self.setTitle("Review and save")
        self.setSubTitle("Reprojection error per camera in pixels and in millimetres at the capture volume. "
                         "Finish writes the rig file (and the anipose TOML, if a path is given).")
        self.table = table(0, ["camera", "RMS px", "error mm", "distance m", "coverage", "views"])
        self.table.setMaximumHeight(210)
        self.warnings = QPlainTextEdit(readOnly=True)
        self.scene = Scene3D(np.zeros((0, 2), int))
        self.scene.setMinimumSize(420, 300)
        self.board_item = gl.GLLinePlotItem(mode="line_strip", width=3.0, color=(1.0, 1.0, 1.0, 1.0), antialias=True)
        self.scene.addItem(self.board_item)
        self.yaml_edit = QLineEdit()
        self.yaml_edit.setPlaceholderText("rig.yaml")
        self.toml_edit = QLineEdit()
        self.toml_edit.setPlaceholderText("optional: calibration.toml for anipose")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.message = message_label()
        self.error = ""
        left = QVBoxLayout()
        left.addWidget(self.table)
        left.addWidget(QLabel("Warnings:"))
        left.addWidget(self.warnings, 1)
        top = QHBoxLayout()
        top.addLayout(left, 1)
        top.addWidget(self.scene, 1)
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.yaml_edit, 1)
        row.addWidget(browse)
        form.addRow("Save rig (YAML):", row)
        form.addRow("Export anipose TOML:", self.toml_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addLayout(form)
        layout.addWidget(self.message)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save rig", "rig.yaml", "Rig (*.yaml)")
        if path:
            self.yaml_edit.setText(path)
            if not self.toml_edit.text():
                self.toml_edit.setText(str(Path(path).with_suffix(".toml")))

    def initializePage(self) -> None:  # noqa: N802
        calibration = self.session.calibration
        quality = calibration.quality
        fill_table(self.table, [[(q.name, None), (f"{q.rms_px:.2f}", GOOD if q.rms_px <= 1.0 else WEAK),
                                 (f"{q.error_mm:.2f}", GOOD if q.error_mm <= 3.0 else WEAK),
                                 (f"{q.depth_mm / 1000:.2f}", None), (f"{100 * q.coverage:.0f} %", None),
                                 (str(q.views), None)] for q in quality.cameras])
        self.warnings.setPlainText("\n".join(quality.warnings) or "No warnings.")
        rig = calibration.rig
        board = self.session.sources.board
        width, height = board.size_mm
        outline = np.array([[0, 0, 0], [width, 0, 0], [width, height, 0], [0, height, 0], [0, 0, 0]], float)  # board mm
        extrinsics = calibration.extrinsics
        R, t = extrinsics.board_R[extrinsics.origin_frame], extrinsics.board_t[extrinsics.origin_frame]
        outline = outline @ R.T + t  # (5, 3) world mm: the board that defines the floor
        self.board_item.setData(pos=outline)
        focus = outline[:4].mean(axis=0)
        self.scene.set_cameras(tuple(rig), focus)
        reach = float(np.linalg.norm(rig.centers - focus, axis=1).max())  # mm, farthest camera from the board
        self.scene.setCameraPosition(distance=max(1000.0, 2.6 * reach), elevation=30.0, azimuth=-60.0)
        self.message.setText("")

    def validatePage(self) -> bool:  # noqa: N802 (Finish)
        calibration = self.session.calibration
        yaml_path = self.yaml_edit.text().strip()
        toml_path = self.toml_edit.text().strip()
        try:
            if not yaml_path:
                raise CrossviewError("choose where to save the rig file (.yaml)")
            if Path(yaml_path).suffix.lower() not in (".yaml", ".yml"):
                raise CrossviewError(f"{yaml_path}: the rig file must end in .yaml")
            if toml_path and Path(toml_path).suffix.lower() != ".toml":
                raise CrossviewError(f"{toml_path}: the anipose file must end in .toml")
            metadata = calibration.metadata(self.session.sources.board)
            written = [save_rig(calibration.rig, yaml_path, metadata=metadata)]
            if toml_path:
                written.append(save_rig(calibration.rig, toml_path, format="anipose", metadata=None))
        except (CrossviewError, OSError) as exc:
            self.error = str(exc)
            self.message.setStyleSheet(ERROR_STYLE)
            self.message.setText(self.error)
            return False
        self.error = ""
        self.message.setStyleSheet("")
        self.message.setText("Wrote " + " and ".join(str(p) for p in written))
        self.session.saved = tuple(written)
        return True
