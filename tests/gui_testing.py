"""Helpers shared by the desktop-app tests: Qt set-up, screenshots and pixel probes.

Importing this module sets ``AA_ShareOpenGLContexts`` before pytest-qt creates the application
(as ``run_gui`` does: every window's 3D view shares GL resources). Screenshots go to
``$CROSSVIEW_SCREENSHOT_DIR`` when set, else ``test-artifacts/`` in the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

try:
    from PyQt6.QtCore import Qt
    from PyQt6.QtGui import QImage
    from PyQt6.QtWidgets import QApplication

    import pyqtgraph  # noqa: F401
    import pyqtgraph.opengl  # noqa: F401

    GUI_MISSING = None
except (ImportError, OSError) as exc:  # PyQt6 / pyqtgraph / PyOpenGL (libGL) not installed
    GUI_MISSING = f"the GUI packages are not importable: {exc}"

if GUI_MISSING is None and QApplication.instance() is None:
    QApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)

REPO = Path(__file__).resolve().parents[1]
HAS_DISPLAY = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))

needs_gui = pytest.mark.skipif(
    GUI_MISSING is not None or not HAS_DISPLAY,
    reason=GUI_MISSING or "no display (install Xvfb and pytest-xvfb, or run on a desktop)",
)


def screenshot_dir() -> Path:
    folder = Path(os.environ.get("CROSSVIEW_SCREENSHOT_DIR") or REPO / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_screenshot(image: "QImage", name: str) -> Path:
    path = screenshot_dir() / name
    image.save(str(path))
    return path


def image_array(image: "QImage") -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of a QImage."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), dtype=np.uint8)
    return data.reshape(height, image.bytesPerLine())[:, : 3 * width].reshape(height, width, 3).copy()


def near_colour(pixels: np.ndarray, colour, tolerance: int = 60) -> np.ndarray:
    """(...,) True where an RGB pixel is within ``tolerance`` of ``colour`` in every channel."""
    return (np.abs(pixels.astype(np.int64) - np.asarray(colour)[:3]) <= tolerance).all(axis=-1)


def write_video(path: Path, frames: np.ndarray, fps: float = 30.0) -> Path:
    """Write ``frames`` ((T, H, W, 3) uint8 BGR) as an MPEG-4 video."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames.shape[2], frames.shape[1]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
