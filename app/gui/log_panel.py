"""The window's log panel: every log record of the app (any thread) shown in a read-only text view.

:class:`QtLogHandler` is a :class:`logging.Handler` that turns records into a Qt signal, so records
logged by capture, decoder and inference threads reach the panel through a queued connection and
widgets are touched only on the GUI thread.
"""

from __future__ import annotations

import logging

from PyQt6.QtCore import QObject, pyqtSignal
from PyQt6.QtGui import QColor, QTextCharFormat
from PyQt6.QtWidgets import QPlainTextEdit, QWidget

#: Lines kept in the panel; older ones scroll away.
MAX_LINES = 2000
LEVEL_COLOURS = {logging.WARNING: QColor(200, 130, 0), logging.ERROR: QColor(210, 40, 40)}


class _Emitter(QObject):
    record = pyqtSignal(int, str)


class QtLogHandler(logging.Handler):
    """Forward log records as ``emitter.record(levelno, text)`` signals (thread-safe)."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.emitter = _Emitter()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.emitter.record.emit(record.levelno, self.format(record))
        except RuntimeError:  # the panel (and its emitter) were deleted while a thread still logs
            pass


class LogPanel(QPlainTextEdit):
    """A read-only view of the app's log; attaches a :class:`QtLogHandler` to ``logger``
    (the root logger by default) until :meth:`detach`."""

    def __init__(self, parent: QWidget | None = None, logger: logging.Logger | None = None,
                 level: int = logging.INFO) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LINES)
        self.setPlaceholderText("Messages of the app appear here")
        self._logger = logger or logging.getLogger()
        self.handler = QtLogHandler(level)
        self.handler.emitter.record.connect(self.append_record)
        self._logger.addHandler(self.handler)

    def append_record(self, level: int, text: str) -> None:
        colour = next((c for threshold, c in sorted(LEVEL_COLOURS.items(), reverse=True) if level >= threshold), None)
        fmt = QTextCharFormat()
        if colour is not None:
            fmt.setForeground(colour)
        cursor = self.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        if not self.document().isEmpty():
            cursor.insertBlock()
        cursor.insertText(text, fmt)
        self.ensureCursorVisible()

    def detach(self) -> None:
        """Stop receiving records (call before the window goes away)."""
        self._logger.removeHandler(self.handler)
