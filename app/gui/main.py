"""``crossview gui [TAKE]``: start the desktop app, optionally with a take open."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from calibration.errors import CrossviewError

logger = logging.getLogger(__name__)

GUI_EXTRA_HINT = "install the desktop app's packages: pip install PyQt6 pyqtgraph PyOpenGL"


def check_display() -> None:
    """Raise a clear error instead of letting Qt abort the process when there is no screen.

    Raises:
        CrossviewError: on Linux with neither ``DISPLAY`` nor ``WAYLAND_DISPLAY`` (and no
            ``QT_QPA_PLATFORM`` chosen).
    """
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        raise CrossviewError(
            "no display: the desktop app needs a screen (DISPLAY or WAYLAND_DISPLAY is not set); "
            "run it on a desktop, through 'ssh -X', or under 'xvfb-run'"
        )


def qt_application(what: str):
    """The process's QApplication, created on first use, after checking that Qt and a display
    are there (``what`` names the window in the error, e.g. "the desktop app").

    Raises:
        CrossviewError: the GUI packages are missing or there is no display.
    """
    try:
        from PyQt6.QtCore import Qt
        from PyQt6.QtWidgets import QApplication
    except ImportError as exc:
        raise CrossviewError(f"{what} cannot start ({exc}); {GUI_EXTRA_HINT}") from None
    check_display()
    if QApplication.instance() is None:
        # pyqtgraph caches GL shader programs across 3D views: their contexts must share.
        QApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
    return QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "crossview"])


def run_gui(take_folder: str | Path | None = None, *, demo: bool = False) -> int:
    """Show the main window (with ``take_folder`` open, if given) until it is closed.

    With ``demo``, ``take_folder`` is the sample take: it plays at once, with the MPJPE plot
    against its ground truth (:mod:`app.gui.demo`). Errors opening the take appear in the window.
    Returns the Qt event loop's exit status.

    Raises:
        CrossviewError: the GUI packages are missing or there is no display.
    """
    app = qt_application("the desktop app")
    try:
        from app.gui.main_window import MainWindow
    except ImportError as exc:  # pyqtgraph or PyOpenGL missing
        raise CrossviewError(f"the desktop app cannot start ({exc}); {GUI_EXTRA_HINT}") from None

    app.setApplicationName("Crossview")
    window = MainWindow()
    window.show()
    if demo and take_folder is not None:
        from app.gui.demo import open_demo

        open_demo(window, Path(take_folder))
    elif take_folder is not None:
        window.presenter.open_take(Path(take_folder))
    return int(app.exec())
