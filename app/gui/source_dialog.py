"""The "Open live sources" dialog: one row per camera (name and source) and the rig's calibration.

A source is what :func:`app.capture.sources.open_source` reads: a camera index (``0``), a device
path (``/dev/video2``), a stream URL (``rtsp://…``, ``http://…/video.mjpg``), a video file or a
folder of images. Camera names must match the calibration's; with a calibration chosen, the rows
start as its cameras.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from calibration.errors import CrossviewError


@dataclass(frozen=True, slots=True)
class LiveSources:
    """What to capture: ``sources`` camera name -> source spec (in view order; or an opened-later
    :class:`app.capture.sources.Source` object, for scripts and tests) and the rig's calibration
    file (None: show the cameras without 3D)."""

    sources: dict[str, object]
    calibration: Path | None = None

    def __post_init__(self) -> None:
        if not self.sources:
            raise CrossviewError("add at least one camera source")
        for name, spec in self.sources.items():
            if not name.strip():
                raise CrossviewError("every camera needs a name (the calibration's camera name)")
            if isinstance(spec, str) and not spec.strip():
                raise CrossviewError(f"camera {name!r}: no source; give a camera index, device path, URL, "
                                     "video file or image folder")


class SourceDialog(QDialog):
    """Pick live sources; :meth:`sources` builds the result (raises with a message when invalid)."""

    def __init__(self, parent: QWidget | None = None, calibration: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open live sources")
        self.table = QTableWidget(0, 2, self)
        self.table.setHorizontalHeaderLabels(["Camera name", "Source (index, /dev/videoN, URL, video file, image folder)"])
        self.table.horizontalHeader().setStretchLastSection(True)
        add = QPushButton("Add camera")
        add.clicked.connect(lambda: self.add_row(f"cam{self.table.rowCount() + 1}", ""))
        browse = QPushButton("Video file…")
        browse.clicked.connect(self._browse_video)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: self.table.removeRow(max(0, self.table.currentRow())))
        self.calibration_edit = QLineEdit(self, placeholderText="calibration file (.yaml, .toml, .qca.txt); empty: no 3D")
        calibration_button = QPushButton("Calibration…")
        calibration_button.clicked.connect(self._browse_calibration)
        self.calibration_edit.editingFinished.connect(lambda: self.use_calibration(self.calibration_edit.text()))
        self.message = QLabel("")
        self.message.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        row_buttons = QHBoxLayout()
        for widget in (add, browse, remove):
            row_buttons.addWidget(widget)
        row_buttons.addStretch(1)
        calibration_row = QHBoxLayout()
        calibration_row.addWidget(self.calibration_edit, 1)
        calibration_row.addWidget(calibration_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(row_buttons)
        layout.addLayout(calibration_row)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.resize(760, 360)
        if calibration is not None:
            self.use_calibration(str(calibration))
        if self.table.rowCount() == 0:
            self.add_row("cam1", "0")

    def add_row(self, name: str, spec: str) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(name))
        self.table.setItem(row, 1, QTableWidgetItem(spec))

    def use_calibration(self, path: str) -> None:
        """Take ``path`` as the calibration; name the rows after its cameras."""
        from calibration import load_rig

        self.calibration_edit.setText(path)
        if not path.strip():
            return
        try:
            rig = load_rig(Path(path))
        except CrossviewError as exc:
            self.message.setText(f"Calibration: {exc}")
            return
        specs = [self._cell(r, 1) for r in range(self.table.rowCount())]
        self.table.setRowCount(0)
        for index, name in enumerate(rig.names):
            self.add_row(name, specs[index] if index < len(specs) else "")
        self.message.setText(f"{len(rig)} cameras in the calibration: {', '.join(rig.names)}")

    def sources(self) -> LiveSources:
        """The dialog's content as :class:`LiveSources`.

        Raises:
            CrossviewError: a row without a name or source, or a name given twice.
        """
        rows = [(self._cell(r, 0).strip(), self._cell(r, 1).strip()) for r in range(self.table.rowCount())]
        names = [name for name, _ in rows]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise CrossviewError(f"camera name(s) given twice: {', '.join(twice)}")
        calibration = self.calibration_edit.text().strip()
        return LiveSources(dict(rows), Path(calibration) if calibration else None)

    def accept(self) -> None:
        try:
            self.sources()
        except CrossviewError as exc:
            self.message.setText(str(exc))
            return
        super().accept()

    def _cell(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return item.text() if item is not None else ""

    def _browse_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Video file", "", "Videos (*.mp4 *.avi *.mov *.mkv);;All files (*)")
        if path:
            row = self.table.currentRow()
            if row < 0:
                self.add_row(Path(path).stem, path)
            else:
                self.table.setItem(row, 1, QTableWidgetItem(path))

    def _browse_calibration(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Calibration file", "",
                                              "Calibrations (*.yaml *.yml *.toml *.txt);;All files (*)")
        if path:
            self.use_calibration(path)
