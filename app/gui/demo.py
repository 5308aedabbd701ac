"""``crossview demo``: the desktop app on the bundled sample take, with its error against the truth.

The sample take (:mod:`app.sample`: a procedurally animated mannequin rendered by three calibrated
virtual cameras, with its 3D ground truth) lives in ``$CROSSVIEW_DATA_DIR/sample-take``, else
``$XDG_DATA_HOME/crossview/sample-take``, else ``~/.local/share/crossview/sample-take`` — beside the
models, out of the working directory; it is made there (about a minute and a half of rendering)
when missing. It has videos but no ``poses3d.npz``, so the app plays it through the real pipeline
(BlazePose, triangulation, filter) while a plot shows the MPJPE of each frame shown against
``ground_truth.npz``. A take processed beforehand (``crossview process``) plays from its files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QWidget

import pyqtgraph as pg

from models.metrics import mpjpe

logger = logging.getLogger(__name__)

SAMPLE_DIR_NAME = "sample-take"


def sample_take_dir() -> Path:
    """Where the demo's sample take lives (see the module docstring)."""
    override = os.environ.get("CROSSVIEW_DATA_DIR")
    if override:
        return Path(override).expanduser() / SAMPLE_DIR_NAME
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "crossview" / SAMPLE_DIR_NAME


def sample_is_complete(folder: Path) -> bool:
    """The folder holds a whole sample take: calibration, ground truth and one video per camera."""
    videos = folder / "videos"
    return ((folder / "calibration.yaml").is_file() and (folder / "ground_truth.npz").is_file()
            and videos.is_dir() and any(videos.glob("*.mp4")))


def ensure_sample_take(folder: Path | None = None, progress: Callable[[int, int], None] | None = None) -> Path:
    """The sample take in ``folder`` (default :func:`sample_take_dir`), rendered first when missing."""
    from app.sample import make_sample

    folder = Path(folder) if folder is not None else sample_take_dir()
    if not sample_is_complete(folder):
        logger.info("making the sample take in %s (rendering the videos takes about a minute)", folder)
        make_sample(folder, videos=True, progress=progress)
    return folder


class MpjpePlot(pg.PlotWidget):
    """MPJPE of each frame shown against the ground truth, over the take's time (mm vs s)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setLabel("left", "MPJPE", units="mm")
        self.setLabel("bottom", "time", units="s")
        self.showGrid(x=True, y=True, alpha=0.3)
        self.curve = self.plot(pen=pg.mkPen((90, 200, 255), width=2), symbol="o", symbolSize=4,
                               symbolBrush=(90, 200, 255))
        self._errors: dict[float, float] = {}  # t_s -> mm

    @property
    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The plotted ``(times_s, mpjpe_mm)``, each ``(N,)``, in time order."""
        times = np.array(sorted(self._errors), dtype=np.float64)
        return times, np.array([self._errors[t] for t in times], dtype=np.float64)

    def add(self, t_s: float, points3d: np.ndarray | None, truth: np.ndarray | None) -> float | None:
        """Plot the MPJPE of ``points3d`` ((17, 3) mm) against ``truth`` ((17, 3) mm) at ``t_s``;
        returns it (None when either is missing or no joint is known)."""
        if points3d is None or truth is None:
            return None
        error = mpjpe(points3d[None], truth[None])
        if not np.isfinite(error):
            return None
        self._errors[round(float(t_s), 4)] = float(error)
        self.curve.setData(*self.points)
        return float(error)


def attach_mpjpe_plot(window) -> MpjpePlot:
    """Add the MPJPE plot to ``window`` (a :class:`app.gui.main_window.MainWindow`) as a dock,
    fed with every frame the window shows."""
    from PyQt6.QtWidgets import QDockWidget

    plot = MpjpePlot()
    dock = QDockWidget("MPJPE against the ground truth", window)
    dock.setObjectName("mpjpe")
    dock.setWidget(plot)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock, Qt.Orientation.Horizontal)  # beside the others
    window.resizeDocks([window.joint_dock, dock], [700, 700], Qt.Orientation.Horizontal)
    window.frame_shown.connect(lambda _index: plot.add(window.shown.t_s, window.shown.points3d, window.shown.truth))
    window.mpjpe_plot = plot
    return plot


def open_demo(window, folder: Path, *, play: bool = True) -> MpjpePlot:
    """Open the sample take ``folder`` in ``window`` with the MPJPE plot; start playing."""
    plot = attach_mpjpe_plot(window)
    if window.presenter.open_take(folder) and play:
        window.presenter.play()
    return plot
