"""The export dialog: write the open take's 3D joints as CSV, JSON, TRC, C3D and/or BVH.

The files are written by :func:`app.export.export_take` (atomically) into a folder the user picks
(default ``<take>/export``), one ``poses3d.<format>`` per chosen format. A format that fails (C3D
without the ``c3d`` package, say) is reported in the dialog and the others are still written.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PyQt6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.export import FORMATS, export_take
from calibration.errors import CrossviewError

logger = logging.getLogger(__name__)

FORMAT_LABELS = {
    "csv": "CSV (one row per frame)",
    "json": "JSON (units, joints, bones, fps)",
    "trc": "TRC (OpenSim marker trajectories)",
    "c3d": "C3D (biomechanics)",
    "bvh": "BVH (animation skeleton with a T rest pose)",
}


class ExportDialog(QDialog):
    """Choose formats and a folder; Export writes the files and lists them (or the errors).

    Attributes:
        written: the files written by the last export.
        errors: one message per format that failed in the last export.
    """

    def __init__(self, take_folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export 3D poses")
        self.take_folder = Path(take_folder)
        self.written: list[Path] = []
        self.errors: list[str] = []
        self.format_checks = {fmt: QCheckBox(FORMAT_LABELS[fmt]) for fmt in FORMATS}
        for fmt in ("csv", "bvh"):
            self.format_checks[fmt].setChecked(True)
        self.y_up_check = QCheckBox("Y up (rotate the Z-up world; BVH is always Y up)")
        self.folder_edit = QLineEdit(str(self.take_folder / "export"))
        browse = QPushButton("Folder…")
        browse.clicked.connect(self._browse)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = buttons.addButton("Export", QDialogButtonBox.ButtonRole.ApplyRole)
        self.export_button.clicked.connect(self.export)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Take: {self.take_folder}"))
        for check in self.format_checks.values():
            layout.addWidget(check)
        layout.addWidget(self.y_up_check)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        layout.addLayout(folder_row)
        layout.addWidget(self.result)
        layout.addWidget(buttons)
        self.resize(560, 0)

    def chosen_formats(self) -> list[str]:
        return [fmt for fmt, check in self.format_checks.items() if check.isChecked()]

    def export(self) -> list[Path]:
        """Write every chosen format; returns the files written (errors in :attr:`errors`)."""
        self.written, self.errors = [], []
        formats = self.chosen_formats()
        if not formats:
            self.result.setText("Choose at least one format.")
            return []
        folder = Path(self.folder_edit.text().strip() or self.take_folder / "export")
        for fmt in formats:
            try:
                self.written.append(export_take(self.take_folder, fmt, folder / f"poses3d.{fmt}",
                                                y_up=self.y_up_check.isChecked()))
            except (CrossviewError, OSError) as exc:
                message = f"{fmt.upper()}: {exc}"
                logger.error("export failed: %s", message)
                self.errors.append(message)
        lines = [f"Wrote {p}" for p in self.written] + [f"Failed: {e}" for e in self.errors]
        self.result.setText("\n".join(lines))
        return self.written

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)
