"""A whole rig from board views: intrinsics per camera (or known ones), extrinsics, quality report."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from calibration.boards import Board
from calibration.camera import PINHOLE
from calibration.errors import CalibrationError
from calibration.extrinsics import ExtrinsicsResult, calibrate_extrinsics
from calibration.intrinsics import IntrinsicsResult, calibrate_intrinsics
from calibration.quality import QualityReport, assess_calibration
from calibration.rig import Rig
from calibration.sync_check import estimate_frame_shifts, shift_frames
from calibration.video_views import BoardViews

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class RigCalibration:
    """The result of :func:`calibrate_rig`.

    Attributes:
        rig: the calibrated cameras, world in mm, Z up.
        intrinsics: per-camera intrinsic results, or None when known intrinsics were reused.
        extrinsics: the extrinsic solution (board poses, views used, camera chain).
        quality: the quality report.
        origin_label: label (sync index or video frame index) of the frame whose board defines the world.
        frame_shifts: per camera, the whole-frame sync correction applied (0: none).
    """

    rig: Rig
    intrinsics: tuple[IntrinsicsResult, ...] | None
    extrinsics: ExtrinsicsResult
    quality: QualityReport
    origin_label: int
    frame_shifts: tuple[int, ...]

    def metadata(self, board: Board) -> dict:
        """Plain data describing the calibration, for the rig file's metadata."""
        data = {
            "board": board.describe(),
            "origin_frame": self.origin_label,
            "bundle_rms_px": round(float(self.extrinsics.rms_px), 4),
            "quality": self.quality.summary(),
            "frame_shifts": dict(zip(self.rig.names, self.frame_shifts)),
        }
        if self.intrinsics is not None:
            data["intrinsic_rms_px"] = {r.camera.name: round(r.rms_px, 4) for r in self.intrinsics}
        return data


def known_intrinsics(known: Rig, views: BoardViews, *, source: str = "the intrinsics file") -> list:
    """The cameras of ``known`` named as ``views``' cameras, checked against the image sizes."""
    cameras = list(known.select(views.names, source="the videos"))
    for c, camera in enumerate(cameras):
        if (camera.width, camera.height) != (int(views.widths[c]), int(views.heights[c])):
            raise CalibrationError(
                f"{source} is for {camera.width}x{camera.height} images but the video is "
                f"{views.widths[c]}x{views.heights[c]}; calibrate the intrinsics at the video's resolution",
                camera=camera.name,
            )
    return [replace(camera, R=np.eye(3), t=np.zeros(3)) for camera in cameras]


def calibrate_rig(
    views: BoardViews,
    board: Board,
    *,
    intrinsics: Rig | None = None,
    intrinsic_results: Sequence[IntrinsicsResult] | None = None,
    model: str = PINHOLE,
    principal_point: str = "fit",
    origin_label: int | None = None,
    refine_intrinsics: bool = False,
    fix_sync: bool = True,
    progress: Callable[[str, float], None] | None = None,
) -> RigCalibration:
    """Calibrate every camera of ``views`` and place them in one world frame.

    Args:
        views: board corners per camera and synchronised frame.
        board: the board.
        intrinsics: known intrinsics (cameras named like the videos); None: calibrate them from ``views``.
        intrinsic_results: intrinsics already calibrated from ``views`` (one per camera, in view
            order), e.g. by a wizard page; used instead of calibrating them again.
        model: ``"pinhole"`` or ``"fisheye"`` for intrinsics calibrated here.
        principal_point: for intrinsics calibrated here, ``"auto"``, ``"fit"`` or ``"centre"``
            (:func:`~calibration.intrinsics.calibrate_intrinsics`); a principal point held at the
            centre stays there when ``refine_intrinsics`` refines the rest.
        origin_label: frame label (sync index or video frame index) of the board that defines the
            world; None: the first frame seen by the most cameras.
        refine_intrinsics: let the bundle adjustment refine intrinsics too (needs views that cover
            the images; with a board seen only mid-image it can drift).
        fix_sync: detect cameras whose frames are whole frames out of step with the others and
            shift them (:mod:`calibration.sync_check`); each shift is reported in the quality warnings.
        progress: called with ``(step, fraction done in [0, 1])`` before each step; it may raise
            (:class:`~calibration.errors.Cancelled`) to stop the calibration between steps.
    """
    C = len(views.names)
    steps = C + 6  # intrinsics per camera, sync check, board poses, 3 adjustment passes, quality report
    done = [0]

    def report(step: str) -> None:
        if progress is not None:
            progress(step, min(done[0] / steps, 1.0))
        done[0] += 1

    if intrinsic_results is not None:
        results = tuple(intrinsic_results)
        if [r.camera.name for r in results] != list(views.names):
            raise CalibrationError(
                f"intrinsics for cameras {[r.camera.name for r in results]} do not match the views' {list(views.names)}"
            )
        cameras = [r.camera for r in results]
        done[0] += C
    elif intrinsics is None:
        results = []
        for c, name in enumerate(views.names):
            report(f"intrinsics of {name}")
            results.append(calibrate_intrinsics(
                views.corners[c], board, name=name, width=int(views.widths[c]), height=int(views.heights[c]),
                model=model, principal_point=principal_point,
            ))
        results = tuple(results)
        cameras = [r.camera for r in results]
    else:
        results = None
        cameras = known_intrinsics(intrinsics, views)
        done[0] += C
    fixed = ("cx", "cy") if results is not None and any(r.principal_point_fixed for r in results) else ()
    corners = views.corners  # (C, F, N, 2)
    report("sync check")
    shifts = estimate_frame_shifts(cameras, corners, board) if fix_sync else np.zeros(len(cameras), int)
    if np.any(shifts):
        corners = np.stack([shift_frames(corners[c], int(s)) for c, s in enumerate(shifts)])
    origin = None if origin_label is None else views.frame_of_label(origin_label)
    extrinsics = calibrate_extrinsics(
        cameras, corners, board, origin_frame=origin, refine_intrinsics=refine_intrinsics, fixed_intrinsics=fixed,
        progress=report,
    )
    report("quality report")
    quality = assess_calibration(extrinsics, corners, board)
    notes = tuple(
        f"{name}: frames shifted by {int(s):+d} to match the other cameras (its video is out of sync with the timestamps)"
        for name, s in zip(views.names, shifts) if s
    )
    quality = replace(quality, warnings=notes + quality.warnings)
    return RigCalibration(
        extrinsics.rig, results, extrinsics, quality, int(views.frame_labels[extrinsics.origin_frame]),
        tuple(int(s) for s in shifts),
    )
