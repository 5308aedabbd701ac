"""The settings dialog: models, execution provider, thresholds and the One-Euro filter.

Each control binds one field of :class:`app.gui.settings.GuiSettings`; :meth:`SettingsDialog.settings`
reads them back into a new (validated) settings object. Saving and applying is the window's job.
"""

from __future__ import annotations

from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.settings import PROVIDERS, GuiSettings
from calibration.errors import CrossviewError


def _spin(low: float, high: float, step: float, decimals: int, suffix: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    if suffix:
        box.setSuffix(suffix)
    return box


class SettingsDialog(QDialog):
    """Edit a copy of the settings; :meth:`settings` returns the edited ones."""

    def __init__(self, settings: GuiSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.detector_edit = QLineEdit(toolTip="'blazepose' or a model card .yaml (RTMPose, RTMO, YOLO-pose)")
        self.refiner_edit = QLineEdit(toolTip="'none', 'default' (the bundled CV-UGCN refiner) or an .onnx / run folder")
        self.lifter_edit = QLineEdit(toolTip="'none', 'default' (the bundled single-view lifter) or an .onnx file")
        self.provider_box = QComboBox(toolTip="where the models run; 'cuda' fails loudly when no GPU is usable")
        self.provider_box.addItems(PROVIDERS)
        self.confidence_spin = _spin(0.0, 1.0, 0.05, 2)
        self.confidence_spin.setToolTip("2D keypoints below this confidence count as not seen")
        self.reprojection_spin = _spin(1.0, 1000.0, 5.0, 1, " px")
        self.reprojection_spin.setToolTip("with 3+ views, a view whose reprojection error stays above this is dropped")
        self.filter_check = QCheckBox("Smooth the 3D joints (One-Euro filter)")
        self.min_cutoff_spin = _spin(0.01, 30.0, 0.1, 2, " Hz")
        self.beta_spin = _spin(0.0, 10.0, 0.01, 3)
        self.d_cutoff_spin = _spin(0.01, 30.0, 0.1, 2, " Hz")
        self.message = QLabel("")
        self.message.setWordWrap(True)

        models = QGroupBox("Models")
        form = QFormLayout(models)
        form.addRow("2D detector", self._with_browse(self.detector_edit, "Model card (*.yaml *.yml)"))
        form.addRow("3D refiner", self._with_browse(self.refiner_edit, "Refiner (*.onnx)"))
        form.addRow("Single-view lifter", self._with_browse(self.lifter_edit, "Lifter (*.onnx)"))
        form.addRow("Execution provider", self.provider_box)
        thresholds = QGroupBox("Thresholds")
        form = QFormLayout(thresholds)
        form.addRow("Minimum keypoint confidence", self.confidence_spin)
        form.addRow("Drop a view above (reprojection error)", self.reprojection_spin)
        smoothing = QGroupBox("Temporal filter")
        form = QFormLayout(smoothing)
        form.addRow(self.filter_check)
        form.addRow("Minimum cut-off", self.min_cutoff_spin)
        form.addRow("Speed coefficient (beta)", self.beta_spin)
        form.addRow("Derivative cut-off", self.d_cutoff_spin)
        self.filter_check.toggled.connect(
            lambda on: [w.setEnabled(on) for w in (self.min_cutoff_spin, self.beta_spin, self.d_cutoff_spin)])

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(
            lambda: self.show_settings(GuiSettings()))
        layout = QVBoxLayout(self)
        for widget in (models, thresholds, smoothing, self.message, buttons):
            layout.addWidget(widget)
        self.show_settings(settings)

    def show_settings(self, settings: GuiSettings) -> None:
        """Put ``settings`` into the controls."""
        self.detector_edit.setText(settings.detector)
        self.refiner_edit.setText(settings.refiner)
        self.lifter_edit.setText(settings.lifter)
        self.provider_box.setCurrentText(settings.provider)
        self.confidence_spin.setValue(settings.min_confidence)
        self.reprojection_spin.setValue(settings.max_reprojection_error_px)
        self.filter_check.setChecked(settings.filter_enabled)
        self.min_cutoff_spin.setValue(settings.min_cutoff_hz)
        self.beta_spin.setValue(settings.beta)
        self.d_cutoff_spin.setValue(settings.d_cutoff_hz)
        for widget in (self.min_cutoff_spin, self.beta_spin, self.d_cutoff_spin):
            widget.setEnabled(settings.filter_enabled)

    def settings(self) -> GuiSettings:
        """The controls' values as settings.

        Raises:
            CrossviewError: a value the pipeline cannot use (an empty model name, say).
        """
        return GuiSettings(
            detector=self.detector_edit.text().strip(),
            refiner=self.refiner_edit.text().strip(),
            lifter=self.lifter_edit.text().strip(),
            provider=self.provider_box.currentText(),
            min_confidence=self.confidence_spin.value(),
            max_reprojection_error_px=self.reprojection_spin.value(),
            filter_enabled=self.filter_check.isChecked(),
            min_cutoff_hz=self.min_cutoff_spin.value(),
            beta=self.beta_spin.value(),
            d_cutoff_hz=self.d_cutoff_spin.value(),
        )

    def accept(self) -> None:
        try:
            self.settings()
        except CrossviewError as exc:
            self.message.setText(str(exc))
            return
        super().accept()

    def _with_browse(self, edit: QLineEdit, file_filter: str) -> QWidget:
        button = QPushButton("…", maximumWidth=32)
        button.clicked.connect(lambda: self._browse(edit, file_filter))
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        row.addWidget(button)
        return box

    def _browse(self, edit: QLineEdit, file_filter: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model", "", f"{file_filter};;All files (*)")
        if path:
            edit.setText(path)
