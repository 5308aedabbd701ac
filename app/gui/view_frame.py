"""What the window draws for one instant, whatever it came from: a processed take, a take played
through the pipeline, or live cameras. Also the HUD's text. No Qt here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration.errors import check_shape
from models.skeleton import H36M17

#: Joint sets by keypoint count (the pipeline's 2D keypoints are BlazePose-33 or H36M-17).
JOINT_SETS = {33: "blazepose33", 17: "h36m17"}


@dataclass(frozen=True, slots=True, eq=False)
class ViewFrame:
    """One instant to show.

    Attributes:
        index: the take's frame index (live: frame sets since the start).
        t_s: seconds from the start of the take (live: the frame set's timestamp).
        images: one ``(H, W, 3)`` uint8 BGR image or None per camera, in rig order.
        prepared: the images are already resized and RGB for display
            (:func:`app.gui.camera_tiles.to_display`), not camera-size BGR.
        keypoints: ``(C, J, 2)`` detected px (NaN where missing), or None.
        points3d: ``(17, 3)`` mm H36M-17, NaN where unknown, or None.
        joint_error_px: ``(17,)`` reprojection error per joint over the views used, px (NaN
            where unknown), or None.
        views_used: ``(17,)`` number of views each joint came from, or None.
        truth: ``(17, 3)`` mm ground truth, or None.
        timings_ms: pipeline stage -> ms (empty for a processed take).
        method: how the 3D joints were made (``"file"`` for a processed take).
        provider: where the models ran ("" when no model ran).
    """

    index: int
    t_s: float
    images: tuple[np.ndarray | None, ...]
    keypoints: np.ndarray | None = None
    points3d: np.ndarray | None = None
    joint_error_px: np.ndarray | None = None
    views_used: np.ndarray | None = None
    truth: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    method: str = "file"
    provider: str = ""
    prepared: bool = False

    def __post_init__(self) -> None:
        C = len(self.images)
        if self.keypoints is not None:
            check_shape("keypoints", self.keypoints, f"({C}, J, 2)",
                        self.keypoints.ndim == 3 and self.keypoints.shape[0] == C and self.keypoints.shape[2] == 2)
        for name in ("points3d", "truth"):
            value = getattr(self, name)
            if value is not None:
                check_shape(name, value, "(17, 3)", value.shape == (17, 3))
        for name in ("joint_error_px", "views_used"):
            value = getattr(self, name)
            if value is not None:
                check_shape(name, value, "(17,)", value.shape == (17,))

    @property
    def joint_set(self) -> str:
        """The keypoints' joint set (``h36m17`` when there are none)."""
        return "h36m17" if self.keypoints is None else JOINT_SETS.get(self.keypoints.shape[1], "h36m17")


def from_take(take, index: int, images: dict[str, np.ndarray | None], *, prepared: bool = False) -> ViewFrame:
    """The :class:`ViewFrame` of a processed take's frame ``index`` (an ``app.take.Take``), with the
    decoded ``images`` (camera name -> image or None; ``prepared`` for display)."""
    poses3d = take.poses3d
    return ViewFrame(
        index=index,
        t_s=take.time_s(index),
        images=tuple(images.get(name) for name in take.camera_names),
        keypoints=take.keypoints(index),
        points3d=None if poses3d is None else poses3d.points[index],
        joint_error_px=None if poses3d is None else poses3d.reprojection_error_px[index],
        views_used=None if poses3d is None else poses3d.views_used[index],
        truth=None if take.ground_truth is None else take.ground_truth[index],
        prepared=prepared,
    )


def from_pose_frame(index: int, t_s: float, images, pose, truth: np.ndarray | None = None) -> ViewFrame:
    """The :class:`ViewFrame` of a pipeline result ``pose`` (an ``app.pipeline.PoseFrame``:
    keypoints (C, J, 2) px, points3d (17, 3) mm, reprojection_error (C, 17) px, views_used (17,)).

    The per-joint error is the RMS over the cameras that have one.
    """
    error = np.asarray(pose.reprojection_error, dtype=np.float64)  # (C, 17) px, NaN where unused
    with np.errstate(invalid="ignore"):
        squared = np.where(np.isfinite(error), error**2, 0.0).sum(axis=0)  # (17,)
        counts = np.isfinite(error).sum(axis=0)  # (17,)
        joint_error = np.where(counts > 0, np.sqrt(squared / np.maximum(counts, 1)), np.nan)
    return ViewFrame(
        index=index,
        t_s=float(t_s),
        images=tuple(images),
        keypoints=np.asarray(pose.keypoints, dtype=np.float64),
        points3d=np.asarray(pose.points3d, dtype=np.float64),
        joint_error_px=joint_error,
        views_used=np.asarray(pose.views_used),
        truth=truth,
        timings_ms=dict(pose.timings_ms),
        method=str(pose.method),
        provider=str(pose.provider),
    )


def hud_text(view: ViewFrame, *, num_frames: int | None, fps_shown: float, speed: float | None = None,
             skew_ms: float | None = None, recording: str | None = None) -> str:
    """The HUD: position, display rate, provider and stage latencies, sync skew, reprojection error.

    Args:
        num_frames: frames of the take (None: live).
        fps_shown: frames shown per second, measured.
        speed: playback speed (None: live).
        skew_ms: the synchronizer's frame-set skew, ms (live).
        recording: what is being recorded (a folder), or None.
    """
    first = [f"frame {view.index + 1}/{num_frames}" if num_frames else f"frame set {view.index + 1}",
             f"{view.t_s:.2f} s", f"{fps_shown:.1f} fps shown"]
    if speed is not None:
        first.append(f"{speed:g}x")
    if skew_ms is not None:
        first.append(f"sync skew {skew_ms:.1f} ms")
    if recording:
        first.append(f"● REC {recording}")
    second = []
    if view.provider:
        second.append(f"{view.provider} · {view.method}")
    if view.timings_ms:
        second.append(" ".join(f"{stage} {ms:.1f}" for stage, ms in view.timings_ms.items()) + " ms")
    third = []
    if view.points3d is not None and view.joint_error_px is not None:
        error = view.joint_error_px
        known = np.isfinite(view.points3d).all(axis=1) & np.isfinite(error)
        if known.any():
            worst = int(np.flatnonzero(known)[np.argmax(error[known])])
            third.append(f"reproj. error median {np.median(error[known]):.1f} px "
                         f"(worst {H36M17.joints[worst]} {error[worst]:.1f} px)")
            if view.views_used is not None:
                views = view.views_used[known]
                third.append(f"views {views.mean():.1f} (min {views.min()})")
        third.append(f"{int(np.isfinite(view.points3d).all(axis=1).sum())}/17 joints")
    return "\n".join("   |   ".join(line) for line in (first, second, third) if line)


def joint_table(view: ViewFrame) -> str:
    """One line per H36M-17 joint: reprojection error (px) and views used."""
    if view.joint_error_px is None:
        return ""
    views = view.views_used if view.views_used is not None else np.zeros(17, dtype=np.int64)
    return "\n".join(
        f"{name}: {view.joint_error_px[j]:.1f} px, {views[j]} views" if np.isfinite(view.joint_error_px[j])
        else f"{name}: not triangulated"
        for j, name in enumerate(H36M17.joints)
    )
