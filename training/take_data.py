"""Refiner training data from a user's own recorded take: 2D detections and a calibration, no 3D.

A take folder as ``crossview process`` leaves it (see :mod:`app.take`): a calibration file and
``poses2d.npz`` (any joint set the readers know; mapped to H36M-17 here). ``ground_truth.npz``,
when there is one (synthetic takes), fills ``points3d`` for evaluation; it never reaches a loss.

Per frame the fields are those of :class:`training.data.RefinerDataset`:

- ``coarse_world (J, 3)`` mm: the project's robust triangulation of the take's own detections;
- ``confidence (V, J)``: the detector's confidence where the view was triangulated and kept as an
  inlier, else 0 (the model's confidence input);
- ``target_keypoints (V, J, 2)`` px, ``target_confidence (V, J)``: the detections themselves
  (``"detections"`` target of :mod:`training.data`): pure self-supervision;
- ``K``, ``dist``, ``R``, ``t``: the take's cameras; ``points3d (J, 3)`` mm, the truth or NaN.

Held-out part. The last ``holdout`` fraction of the frames (a contiguous block) is held out, and
``gap_s`` seconds before it are dropped from both parts, so no training frame is a near copy of
a held-out one (consecutive frames at 30 fps differ by millimetres).

View dropout with cross-view targets (``view_dropout=True``, takes of three or more cameras).
Fitting the detections that were triangulated teaches little: triangulation already nearly
minimises their reprojection error, and a refiner fitted to them is pulled back to the
triangulation. So each training frame appears once per proper subset of two or more views: the
coarse pose is triangulated from that subset only, the views outside it get confidence 0 as input
(the model sees where those cameras are, not what they saw), and the reprojection loss fits the
detections of the views *left out* (raw detection confidence: no triangulation judged them). Those
are 2D evidence the coarse pose did not use, as the independent 2D labels of seed 000 are, and
their noise is independent of the coarse pose's; no 3D enters. The triangulated views' targets are
weighted by ``fitted_weight`` (default 0). The frames with all views are kept: from scratch they
fit their own detections, so that the model learns what to do with every view present; when
fine-tuning a trained refiner (``pretrained``, ``--init``) they carry only the symmetry,
transform and bone terms, because fitting their own detections pulls a trained model back to
the triangulation. Measured on a 3-camera synthetic take (``training.take_eval``, medium
detector; held-out frames, mean px, leave-one-camera-out against the truth's projections / all
cameras against the truth's projections), fine-tuning the CMU-trained refiner for 100 steps:
triangulation 4.23 / 2.32, the refiner untouched 3.31 / 1.87; fine-tuned with every target at
weight 1 3.62 / 2.15 (worse than untouched), with the cross-view targets only 3.16 / 1.89, with
those and the all-view frames at weight 1 3.22 / 2.17. From scratch (12 short epochs, "high"
detector, tests/test_training_take.py) the all-view frames at weight 0 made the all-camera
figure worse than triangulation (4.63 against 4.45), at weight 1 better (4.30). With two cameras
there is no proper subset: the frames are used whole and fit their own detections, which teaches
little.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from calibration.errors import CrossviewError, InputFileError, check_shape
from calibration.rig import Rig
from calibration.triangulation import triangulate
from models.skeleton import H36M17
from training.data import FIELDS, MIN_COARSE_JOINTS, RefinerDataset, camera_arrays

log = logging.getLogger(__name__)

DEFAULT_HOLDOUT = 0.2
DEFAULT_GAP_S = 1.0
J = H36M17.num_joints


@dataclass(frozen=True, slots=True, eq=False)
class TakeInputs:
    """What a take offers the refiner.

    Attributes:
        folder: the take folder.
        rig: the C cameras, in the keypoints' view order (fitted to the videos when there are any).
        keypoints: ``(T, C, 17, 2)`` float64 detections, px (distorted), H36M-17; NaN = missing.
        confidence: ``(T, C, 17)`` in [0, 1]; 0 = missing.
        truth: ``(T, 17, 3)`` mm world, from ``ground_truth.npz``, or None.
        fps: frames per second.
    """

    folder: Path
    rig: Rig
    keypoints: np.ndarray
    confidence: np.ndarray
    truth: np.ndarray | None
    fps: float

    def __post_init__(self) -> None:
        T, C = self.keypoints.shape[:2] if self.keypoints.ndim == 4 else (0, 0)
        check_shape("keypoints", self.keypoints, "(T, C, 17, 2)", self.keypoints.shape == (T, len(self.rig), J, 2))
        check_shape("confidence", self.confidence, f"(T, C, 17) = ({T}, {C}, 17)", self.confidence.shape == (T, C, J))
        if self.truth is not None:
            check_shape("truth", self.truth, f"(T, 17, 3) = ({T}, 17, 3)", self.truth.shape == (T, J, 3))
        if self.fps <= 0:
            raise CrossviewError(f"take {self.folder}: frame rate must be positive, got {self.fps}")

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def num_cameras(self) -> int:
        return len(self.rig)


def read_take(folder: str | Path) -> TakeInputs:
    """Read a take folder's calibration, 2D keypoints (mapped to H36M-17) and optional truth.

    Raises:
        InputFileError: no such folder, no calibration, no ``poses2d.npz``, unreadable files, or
            fewer than two cameras.
        CrossviewError: the keypoints name cameras the calibration lacks.
    """
    from app.take import Take  # the same reader as the desktop app: one definition of a take

    take = Take.open(folder)
    try:
        if take.poses2d is None:
            raise InputFileError(f"{take.folder}: no poses2d.npz (2D keypoints); run 'crossview process' on the take first")
        poses = take.poses2d.to_h36m17()
        if poses.num_cameras < 2:
            raise InputFileError(f"{take.folder}: keypoints from {poses.num_cameras} camera; the refiner needs at least 2")
        return TakeInputs(take.folder, take.rig, poses.keypoints, poses.confidence, take.ground_truth, take.fps)
    finally:
        take.close()


def split_frames(num_frames: int, holdout: float = DEFAULT_HOLDOUT, gap_frames: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous training and held-out frame indices.

    Args:
        num_frames: T.
        holdout: fraction of the frames held out, at the end of the take, in (0, 1).
        gap_frames: frames dropped just before the held-out block (in neither part).

    Returns:
        ``train (N_train,)`` and ``heldout (N_held,)`` int64 frame indices.

    Raises:
        CrossviewError: ``holdout`` outside (0, 1), or too few frames for both parts.
    """
    if not 0.0 < holdout < 1.0:
        raise CrossviewError(f"holdout must be a fraction in (0, 1), got {holdout}")
    held = int(round(holdout * num_frames))
    train_stop = num_frames - held - max(int(gap_frames), 0)
    if held < 1 or train_stop < 1:
        raise CrossviewError(
            f"a take of {num_frames} frames is too short to hold out {holdout:.0%} after a {gap_frames}-frame gap; "
            "record a longer take or lower --holdout"
        )
    return np.arange(train_stop), np.arange(num_frames - held, num_frames)


def take_arrays(inputs: TakeInputs, frames: np.ndarray, views: tuple[int, ...] | None = None, *,
                fitted_weight: float = 1.0) -> dict[str, np.ndarray]:
    """Per-frame refiner fields of ``frames``, the coarse pose triangulated from ``views`` only.

    Args:
        inputs: the take.
        frames: ``(N,)`` frame indices.
        views: the views triangulated (default: all). The others keep their place in every
            field, with confidence 0 as the model's input and their detections as targets.
        fitted_weight: factor on the target confidence of the triangulated views.

    Returns:
        ``{field: (N, ...) float32}`` for every field of :data:`training.data.FIELDS`, views in
        the rig's order (V = C).
    """
    frames = np.asarray(frames, dtype=np.int64)
    C = inputs.num_cameras
    views = tuple(range(C)) if views is None else tuple(sorted(set(int(v) for v in views)))
    if len(views) < 2 or views[0] < 0 or views[-1] >= C:
        raise CrossviewError(f"triangulation needs at least two of the take's {C} views, got {views}")
    kp = np.moveaxis(inputs.keypoints[frames], 1, 0)  # (C, N, J, 2)
    conf = np.moveaxis(inputs.confidence[frames], 1, 0)  # (C, N, J)
    used = np.zeros(C, dtype=bool)
    used[list(views)] = True
    tri = triangulate(inputs.rig.select([inputs.rig.names[v] for v in views]), kp[used], conf[used], robust=True)
    inlier = np.zeros_like(conf)
    inlier[used] = np.where(tri.inliers, conf[used], 0.0)
    # Targets: the triangulated views' inliers, and the detections of every view left out.
    target_confidence = np.where(used[:, None, None], fitted_weight * inlier, conf)  # (C, N, J)
    N = len(frames)
    cams = {k: np.broadcast_to(v, (N,) + v.shape) for k, v in camera_arrays(inputs.rig).items()}
    truth = inputs.truth[frames] if inputs.truth is not None else np.full((N, J, 3), np.nan)
    arrays = {
        "coarse_world": tri.points,  # (N, J, 3)
        "confidence": np.moveaxis(inlier, 0, 1),  # (N, C, J)
        "target_keypoints": np.moveaxis(kp, 0, 1),  # (N, C, J, 2)
        "target_confidence": np.moveaxis(target_confidence, 0, 1),  # (N, C, J)
        **cams,
        "points3d": truth,  # (N, J, 3)
    }
    return {f: np.asarray(arrays[f], dtype=np.float32) for f in FIELDS}


def view_subsets(num_cameras: int, view_dropout: bool) -> list[tuple[int, ...]]:
    """All views, then (with ``view_dropout``) every proper subset of two or more views."""
    subsets = [tuple(range(num_cameras))]
    if view_dropout:
        for size in range(num_cameras - 1, 1, -1):
            subsets += list(combinations(range(num_cameras), size))
    return subsets


def take_groups(inputs: TakeInputs, frames: np.ndarray, *, view_dropout: bool = True,
                min_joints: int = MIN_COARSE_JOINTS, fitted_weight: float = 0.0,
                full_view_weight: float = 1.0) -> dict[int, dict[str, np.ndarray]]:
    """``{C: {field: (N', ...)}}`` for :class:`RefinerDataset`: ``frames`` once per view subset
    (see the module docstring), keeping the rows whose coarse pose has ``min_joints`` joints.
    The rows with every view fit their own detections with weight ``full_view_weight`` (they have
    no other target); the rows with a proper subset fit the views left out, and their triangulated
    views with weight ``fitted_weight``. Without a proper subset (two cameras, no view dropout)
    the rows fit their detections with weight 1."""
    subsets = view_subsets(inputs.num_cameras, view_dropout)
    full = full_view_weight if len(subsets) > 1 else 1.0
    parts = [take_arrays(inputs, frames, views, fitted_weight=full if len(views) == inputs.num_cameras else fitted_weight)
             for views in subsets]
    arrays = {f: np.concatenate([p[f] for p in parts]) for f in FIELDS}
    keep = np.isfinite(arrays["coarse_world"]).all(axis=-1).sum(axis=-1) >= min_joints
    if not keep.any():
        raise CrossviewError(
            f"take {inputs.folder}: no frame has {min_joints} or more triangulated joints; check the calibration "
            "and that the 2D keypoints belong to this take"
        )
    return {inputs.num_cameras: {f: a[keep] for f, a in arrays.items()}}


@dataclass(frozen=True, slots=True)
class TakeDataConfig:
    """How :func:`take_datasets` cuts a take into training and held-out data."""

    folder: str
    holdout: float = DEFAULT_HOLDOUT
    gap_s: float = DEFAULT_GAP_S
    view_dropout: bool = True
    fitted_weight: float = 0.0
    # True when fine-tuning a trained refiner: the all-view frames then carry no reprojection target
    # (a trained model already handles all views; fitting their own detections pulls it back to the
    # triangulation). From scratch they fit their detections, so the model learns all-view input.
    pretrained: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout < 1.0:
            raise CrossviewError(f"--holdout must be a fraction in (0, 1), got {self.holdout}")
        if not 0.0 <= self.fitted_weight <= 1.0:
            raise CrossviewError(f"fitted_weight must be in [0, 1], got {self.fitted_weight}")
        if self.gap_s < 0:
            raise CrossviewError(f"the gap before the held-out frames must be >= 0 s, got {self.gap_s}")


def take_split(inputs: TakeInputs, config: TakeDataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out frame indices of a take (:func:`split_frames` with the gap in frames)."""
    return split_frames(inputs.num_frames, config.holdout, int(round(config.gap_s * inputs.fps)))


def take_datasets(config: TakeDataConfig) -> tuple[RefinerDataset, RefinerDataset]:
    """The training part (with view dropout) and the held-out part (all views) of a take."""
    inputs = read_take(config.folder)
    train_frames, held_frames = take_split(inputs, config)
    train_set = RefinerDataset(take_groups(inputs, train_frames, view_dropout=config.view_dropout,
                                           fitted_weight=config.fitted_weight,
                                           full_view_weight=0.0 if config.pretrained else 1.0))
    held_set = RefinerDataset(take_groups(inputs, held_frames, view_dropout=False))
    log.info("take %s: %d cameras, %d training frames (%d rows with view dropout), %d held-out frames",
             inputs.folder, inputs.num_cameras, len(train_frames), len(train_set), len(held_frames))
    return train_set, held_set


__all__ = ["DEFAULT_GAP_S", "DEFAULT_HOLDOUT", "TakeDataConfig", "TakeInputs", "read_take", "split_frames",
           "take_arrays", "take_datasets", "take_groups", "take_split", "view_subsets"]
