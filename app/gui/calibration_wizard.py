"""The calibration wizard: board and cameras -> intrinsics -> shared views -> solve -> review and save.

``crossview calibrate --wizard`` (or :func:`run_wizard`) opens it. It works on recorded videos (a
folder or files, with caliscope's ``timestamps.csv`` when present) and on live cameras (any
:func:`~app.capture.sources.open_source` spec), so the same pages are tested on real recordings.

The pages are in :mod:`app.gui.calibration_wizard_pages` and :mod:`app.gui.calibration_wizard_results`; the state and the worker-thread tasks in
:mod:`app.gui.calibration_wizard_session`. Nothing is written until Finish, and then atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from PyQt6.QtWidgets import QWidget, QWizard

from app.gui.calibration_wizard_pages import ExtrinsicsPage, IntrinsicsPage, SourcesPage
from app.gui.calibration_wizard_results import ReviewPage, SolvePage
from app.gui.calibration_wizard_session import CalibrationSession

logger = logging.getLogger(__name__)

#: Page ids, in order; also the names of the screenshots the test saves.
PAGES = ("sources", "intrinsics", "extrinsics", "solve", "review")


class CalibrationWizard(QWizard):
    """Calibrate a camera rig step by step.

    Args:
        parent: parent widget.
        videos: a folder of videos or a list of video files to start with (the first page can change it).
        board: a board file (crossview YAML or caliscope ``charuco.toml``) to start with.
    """

    def __init__(self, parent: QWidget | None = None, videos: str | Path | Sequence[str | Path] | None = None,
                 board: str | Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Crossview — calibrate cameras")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.session = CalibrationSession(self)
        self.pages = {
            "sources": SourcesPage(self.session, videos, board),
            "intrinsics": IntrinsicsPage(self.session),
            "extrinsics": ExtrinsicsPage(self.session),
            "solve": SolvePage(self.session),
            "review": ReviewPage(self.session),
        }
        for index, name in enumerate(PAGES):
            self.setPage(index, self.pages[name])
        self.setButtonText(QWizard.WizardButton.FinishButton, "Save")
        self.resize(1200, 820)

    def current_page_name(self) -> str:
        return PAGES[self.currentId()] if 0 <= self.currentId() < len(PAGES) else ""

    def done(self, result: int) -> None:
        """Closing (Finish, Cancel or the window's X) stops any running task first."""
        self.session.cancel()
        super().done(result)


def run_wizard(videos: Sequence[str | Path] | None = None, board: str | Path | None = None) -> int:
    """Show the wizard until it is closed; 0 when a rig was saved, 1 when it was cancelled.

    Raises:
        CrossviewError: the GUI packages are missing or there is no display.
    """
    from app.gui.main import qt_application

    app = qt_application("the calibration wizard")
    wizard = CalibrationWizard(videos=videos, board=board)
    wizard.show()
    app.exec()
    for path in wizard.session.saved:
        print(f"wrote {path}")
    return 0 if wizard.session.saved else 1
