"""The 3D view: the triangulated skeleton, the floor and the cameras, in millimetres (Z up).

Items are created once; :meth:`Scene3D.show_points` pushes a frame's joints into them.
Camera frusta are drawn from each camera's centre, orientation and intrinsics (lens distortion
ignored): the image corners back-projected to a fixed depth.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtGui import QVector3D
from PyQt6.QtWidgets import QWidget

import pyqtgraph.opengl as gl

from app.gui.camera_tiles import bone_segments
from calibration.camera import Camera

#: RGBA in [0, 1]; the GUI test probes for the skeleton colour.
SKELETON_COLOUR = (1.0, 0.55, 0.1, 1.0)
JOINT_COLOUR = (1.0, 0.9, 0.3, 1.0)
TRUTH_COLOUR = (0.3, 0.9, 0.4, 0.9)
FRUSTUM_COLOUR = (0.45, 0.65, 1.0, 0.9)
BACKGROUND = (22, 24, 30)
FLOOR_SPACING_MM = 500.0


def frustum_segments(camera: Camera, depth_mm: float) -> np.ndarray:
    """Line segments of a camera's viewing pyramid, cut at ``depth_mm`` in front of it.

    Returns:
        (16, 3) mm, world frame: 4 edges from the centre to the image corners, then the 4 sides
        of the image rectangle, as point pairs.
    """
    corners_px = np.array([[0, 0, 1], [camera.width, 0, 1], [camera.width, camera.height, 1], [0, camera.height, 1]],
                          dtype=np.float64)  # (4, 3) homogeneous px
    rays_cam = corners_px @ np.linalg.inv(camera.K).T  # (4, 3), z = 1
    corners = camera.center + (rays_cam * depth_mm) @ camera.R  # (4, 3) world mm: R^T applied per row
    centre = np.repeat(camera.center[None], 4, axis=0)  # (4, 3)
    edges = np.stack([centre, corners], axis=1)  # (4, 2, 3)
    sides = np.stack([corners, np.roll(corners, -1, axis=0)], axis=1)  # (4, 2, 3)
    return np.concatenate([edges, sides]).reshape(-1, 3)


class Scene3D(gl.GLViewWidget):
    """Skeleton, floor grid (z = 0) and camera frusta; orbit with the mouse."""

    def __init__(self, bones: np.ndarray, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bones = np.asarray(bones, dtype=np.int64).reshape(-1, 2)  # (B, 2)
        self.setBackgroundColor(BACKGROUND)
        self.floor = gl.GLGridItem(color=(255, 255, 255, 60))
        self.floor.setSize(8000.0, 8000.0)
        self.floor.setSpacing(FLOOR_SPACING_MM, FLOOR_SPACING_MM)
        self.skeleton_item = gl.GLLinePlotItem(mode="lines", width=4.0, color=SKELETON_COLOUR, antialias=True,
                                               glOptions="opaque")
        self.joint_item = gl.GLScatterPlotItem(size=9.0, color=JOINT_COLOUR, pxMode=True, glOptions="opaque")
        self.truth_item = gl.GLLinePlotItem(mode="lines", width=2.0, color=TRUTH_COLOUR, antialias=True,
                                            glOptions="translucent")
        self.frustum_item = gl.GLLinePlotItem(mode="lines", width=1.5, color=FRUSTUM_COLOUR, antialias=True,
                                              glOptions="translucent")
        for item in (self.floor, self.frustum_item, self.truth_item, self.skeleton_item, self.joint_item):
            item.setVisible(False)
            self.addItem(item)
        self.floor.setVisible(True)
        self.labels: list[gl.GLTextItem] = []
        self.setCameraPosition(distance=7000.0, elevation=20.0, azimuth=-60.0)

    def set_cameras(self, cameras: tuple[Camera, ...], focus_mm: np.ndarray | None = None) -> None:
        """Draw the frusta of ``cameras`` and aim the view at ``focus_mm`` ((3,) mm) or the rig's middle."""
        for label in self.labels:
            self.removeItem(label)
        self.labels = []
        centres = np.array([c.center for c in cameras])  # (C, 3) mm
        if focus_mm is None or not np.isfinite(focus_mm).all():
            focus_mm = np.array([*centres[:, :2].mean(axis=0), 900.0])
        spread = float(np.max(np.linalg.norm(centres[:, :2] - focus_mm[:2], axis=1))) if len(cameras) else 3000.0
        depth = max(150.0, 0.08 * spread)
        self.frustum_item.setData(pos=np.concatenate([frustum_segments(c, depth) for c in cameras]))
        self.frustum_item.setVisible(True)
        for camera in cameras:
            label = gl.GLTextItem(pos=camera.center, text=camera.name, color=(170, 200, 255, 255))
            self.addItem(label)
            self.labels.append(label)
        extent = max(spread, 2000.0)
        size = 2.0 * FLOOR_SPACING_MM * np.ceil(1.2 * extent / FLOOR_SPACING_MM)
        self.floor.setSize(size, size)
        self.floor.resetTransform()
        self.floor.translate(float(round(focus_mm[0] / FLOOR_SPACING_MM) * FLOOR_SPACING_MM),
                             float(round(focus_mm[1] / FLOOR_SPACING_MM) * FLOOR_SPACING_MM), 0.0)
        self.setCameraPosition(pos=QVector3D(*map(float, focus_mm)), distance=2.0 * extent)

    def show_points(self, points: np.ndarray | None, truth: np.ndarray | None = None) -> None:
        """Draw a frame's skeleton.

        Args:
            points: (J, 3) mm, NaN where unknown; None hides the skeleton.
            truth: (J, 3) mm ground truth, or None.
        """
        self._set_lines(self.skeleton_item, points)
        self._set_lines(self.truth_item, truth)
        known = None if points is None else points[np.isfinite(points).all(axis=1)]
        if known is None or len(known) == 0:
            self.joint_item.setVisible(False)
        else:
            self.joint_item.setData(pos=known)
            self.joint_item.setVisible(True)

    def _set_lines(self, item: gl.GLLinePlotItem, points: np.ndarray | None) -> None:
        segments = None if points is None else bone_segments(np.asarray(points, dtype=np.float64), self.bones)
        if segments is None or len(segments) == 0:
            item.setVisible(False)
            return
        item.setData(pos=segments)
        item.setVisible(True)

    def world_to_widget(self, points_mm: np.ndarray) -> np.ndarray:
        """Widget pixel positions (x right, y down) of world points, as the view projects them.

        Args:
            points_mm: (N, 3) mm.

        Returns:
            (N, 2) float px in this widget's logical coordinates; NaN behind the viewer.
        """
        width, height = self.width(), self.height()
        viewport = (0, 0, width, height)
        mvp = self.projectionMatrix(viewport, viewport) * self.viewMatrix()
        m = np.array(mvp.data(), dtype=np.float64).reshape(4, 4).T  # QMatrix4x4.data() is column-major
        points = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
        clip = np.c_[points, np.ones(len(points))] @ m.T  # (N, 4)
        with np.errstate(divide="ignore", invalid="ignore"):
            ndc = clip[:, :3] / clip[:, 3:4]
        x = (ndc[:, 0] + 1.0) * 0.5 * width
        y = (1.0 - ndc[:, 1]) * 0.5 * height
        out = np.stack([x, y], axis=1)
        out[clip[:, 3] <= 0] = np.nan
        return out
