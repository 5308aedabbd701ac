"""Camera tiles: each camera's video frame with the 2D skeleton drawn over it.

Every graphics item is created once per tile; a new frame only pushes arrays into them
(``ImageItem.setImage(autoLevels=False)``, ``setData``). Scene coordinates are the camera's full
image pixels whatever size the frame is shown at, so keypoints (OpenCV pixel centres at integer
coordinates) are drawn at ``(u + 0.5, v + 0.5)``: pyqtgraph's pixel ``i`` spans ``[i, i + 1]``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PyQt6.QtCore import QRectF
from PyQt6.QtWidgets import QGridLayout, QWidget

import pyqtgraph as pg

from calibration.camera import Camera

#: Colours (RGB) of the overlays; the GUI test probes for them.
BONE_COLOUR = (255, 60, 200)
JOINT_COLOUR = (0, 255, 255)
REPROJECTION_COLOUR = (255, 210, 0)
BLANK_GREY = 40
#: Frames are shown at most this many pixels on their long side (drawing full HD frames in four
#: tiles costs more than the screen can show).
DISPLAY_MAX_SIDE = 960


def display_size(width: int, height: int) -> tuple[int, int]:
    """The ``(width, height)`` in px at which a ``width`` x ``height`` camera's frames are shown."""
    scale = min(1.0, DISPLAY_MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_display(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A frame ready for the tile: ``(H, W, 3)`` uint8 BGR -> ``size`` (width, height) RGB.
    Pure, so decoder threads can prepare frames off the GUI thread."""
    if frame.shape[1] != size[0] or frame.shape[0] != size[1]:
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def bone_segments(points: np.ndarray, bones: np.ndarray) -> np.ndarray:
    """The bones whose two ends are known, as consecutive point pairs.

    Args:
        points: (J, D) joint positions; NaN where unknown.
        bones: (B, 2) joint index pairs.

    Returns:
        (2 * K, D) the K drawable bones' end points, pair after pair.
    """
    ends = points[bones]  # (B, 2, D)
    ok = np.isfinite(ends).all(axis=(1, 2))
    return ends[ok].reshape(-1, points.shape[-1])


class CameraTile(pg.GraphicsLayoutWidget):
    """One camera: its image, the detected 2D skeleton and the reprojected 3D joints."""

    def __init__(self, camera: Camera, bones: np.ndarray, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.camera = camera
        self.bones = np.asarray(bones, dtype=np.int64).reshape(-1, 2)  # (B, 2)
        self.setBackground((BLANK_GREY // 2,) * 3)
        self.title = self.addLabel(camera.name, row=0, col=0)
        self.view = self.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMenu=False)
        self.image = pg.ImageItem(axisOrder="row-major")  # uint8 RGB without levels: no rescaling per frame
        self.bone_item = pg.PlotCurveItem(connect="pairs", pen=pg.mkPen(BONE_COLOUR, width=3), antialias=True)
        self.joint_item = pg.ScatterPlotItem(size=7, pen=None, brush=pg.mkBrush(JOINT_COLOUR), pxMode=True)
        self.reprojection_item = pg.ScatterPlotItem(
            size=11, symbol="o", pen=pg.mkPen(REPROJECTION_COLOUR, width=2), brush=None, pxMode=True
        )
        for z, item in enumerate((self.image, self.reprojection_item, self.bone_item, self.joint_item)):
            item.setZValue(z)
            self.view.addItem(item)
        self.display_size = display_size(camera.width, camera.height)  # width, height
        self._blank = np.full((self.display_size[1], self.display_size[0], 3), BLANK_GREY, dtype=np.uint8)
        self._showing_blank = False
        self.show_image(None)
        self.image.setRect(QRectF(0, 0, camera.width, camera.height))
        self.view.setRange(QRectF(0, 0, camera.width, camera.height), padding=0.0)
        self.view.disableAutoRange()

    def show_image(self, frame: np.ndarray | None, *, prepared: bool = False) -> None:
        """Show ``frame`` ((H, W, 3) uint8 BGR at the camera's size, or with ``prepared`` already
        through :func:`to_display` at :attr:`display_size`) or, for None, a blank grey image."""
        if frame is None:
            if not self._showing_blank:
                self.image.setImage(self._blank, autoLevels=False, levels=None)
                self._showing_blank = True
            return
        self.image.setImage(frame if prepared else to_display(frame, self.display_size), autoLevels=False, levels=None)
        self._showing_blank = False

    def show_keypoints(self, keypoints: np.ndarray | None) -> None:
        """Draw the 2D skeleton. ``keypoints``: (J, 2) px, NaN where missing; None clears it."""
        if keypoints is None:
            self.bone_item.setData(x=np.zeros(0), y=np.zeros(0))
            self.joint_item.setData(x=np.zeros(0), y=np.zeros(0))
            return
        scene = np.asarray(keypoints, dtype=np.float64) + 0.5  # (J, 2) pixel centres
        segments = bone_segments(scene, self.bones)  # (2K, 2)
        self.bone_item.setData(x=segments[:, 0], y=segments[:, 1])
        known = scene[np.isfinite(scene).all(axis=1)]
        self.joint_item.setData(x=known[:, 0], y=known[:, 1])

    def show_reprojection(self, points_px: np.ndarray | None) -> None:
        """Mark the 3D joints projected into this camera. ``points_px``: (17, 2) px or None."""
        if points_px is None:
            self.reprojection_item.setData(x=np.zeros(0), y=np.zeros(0))
            return
        scene = np.asarray(points_px, dtype=np.float64) + 0.5
        inside = np.isfinite(scene).all(axis=1)
        self.reprojection_item.setData(x=scene[inside, 0], y=scene[inside, 1])

    def scene_to_widget(self, points_px: np.ndarray) -> np.ndarray:
        """Widget pixel positions of image pixels (for tests and tools).

        Args:
            points_px: (N, 2) image px (OpenCV convention).

        Returns:
            (N, 2) float positions in this widget's coordinates.
        """
        out = []
        for u, v in np.asarray(points_px, dtype=np.float64).reshape(-1, 2):
            scene_point = self.view.mapViewToScene(pg.Point(u + 0.5, v + 0.5))
            widget_point = self.mapFromScene(scene_point)
            out.append((widget_point.x(), widget_point.y()))
        return np.asarray(out, dtype=np.float64).reshape(-1, 2)


class CameraGrid(QWidget):
    """The tiles of every camera of a take, in rows."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.tiles: list[CameraTile] = []

    def set_cameras(self, cameras: tuple[Camera, ...], bones: np.ndarray) -> None:
        """Replace the tiles with one per camera."""
        for tile in self.tiles:
            self.grid.removeWidget(tile)
            tile.deleteLater()
        self.tiles = []
        count = len(cameras)
        portrait = count > 0 and all(c.height > c.width for c in cameras)
        columns = min(count, 4) if portrait else max(1, math.ceil(math.sqrt(count)))
        for index, camera in enumerate(cameras):
            tile = CameraTile(camera, bones, self)
            self.grid.addWidget(tile, index // columns, index % columns)
            self.tiles.append(tile)
