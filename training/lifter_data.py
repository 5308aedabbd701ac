"""Training and evaluation data for the single-view lifter: synthetic multi-view detections, in memory.

:func:`build_lifter_arrays` walks :func:`models.synthetic.synthetic_dataset` (CMU motion, a random
calibrated rig of 2-4 cameras per chunk, the simulated detector) and stores per frame, padded to
:data:`MAX_VIEWS` views:

- ``keypoints (N, V, J, 2)`` px, the detections *undistorted* (``camera.undistort_points``: the
  lifter and its losses work with ideal pinhole pixels of the same ``K``, as the runtime does);
  NaN where missing;
- ``confidence (N, V, J)``, 0 where missing (and for padded views);
- ``K (N, V, 3, 3)``, ``R (N, V, 3, 3)`` (``R_cam_from_world``), ``t (N, V, 3)`` mm;
- ``view_ok (N, V)`` bool: a real view that sees at least :data:`MIN_SEEN_JOINTS` joints;
- ``points3d (N, J, 3)`` mm, world: the truth, for evaluation (and the supervised baseline) only.

Training draws, per frame and step, an ordered pair of usable views (:func:`sample_pairs`);
evaluation lifts every usable view on its own (:func:`single_views`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from calibration.errors import CrossviewError
from models.synthetic import synthetic_dataset

log = logging.getLogger(__name__)

MAX_VIEWS = 4
#: A view is used when its detector saw at least this many of the 17 joints.
MIN_SEEN_JOINTS = 8
MIXED_NOISE = ("medium", "low", "high")
FIELDS = ("keypoints", "confidence", "K", "R", "t", "view_ok", "points3d")


@dataclass(frozen=True, slots=True)
class LifterDataConfig:
    """What :func:`build_lifter_arrays` generates."""

    split: str = "train"
    num_cameras: tuple[int, int] = (2, 4)
    # A detector preset ("clean", "low", "medium", "high") or "mixed": pass p uses MIXED_NOISE[p % 3].
    noise: str = "mixed"
    seed: int = 0
    passes: int = 6  # walks over the split, each with new rigs, placements and noise
    num_frames: int = 30  # frames per chunk (one rig per chunk)
    fps: float = 30.0
    max_sequences: int | None = None

    def __post_init__(self) -> None:
        if self.passes < 1:
            raise CrossviewError(f"passes must be >= 1, got {self.passes}")
        low, high = self.num_cameras
        if not 1 <= low <= high <= MAX_VIEWS:
            raise CrossviewError(f"num_cameras must be a range within 1..{MAX_VIEWS}, got {self.num_cameras}")


def sample_arrays(sample) -> dict[str, np.ndarray]:
    """One :class:`~models.synthetic.MultiviewSample` (C views, T frames) -> per-frame arrays padded to MAX_VIEWS."""
    C, T = sample.num_cameras, sample.num_frames
    J = sample.points3d.shape[1]
    if C > MAX_VIEWS:
        raise CrossviewError(f"the lifter data holds at most {MAX_VIEWS} views per frame, got {C}")
    keypoints = np.full((T, MAX_VIEWS, J, 2), np.nan)
    confidence = np.zeros((T, MAX_VIEWS, J))
    K = np.broadcast_to(np.eye(3), (T, MAX_VIEWS, 3, 3)).copy()
    R = K.copy()
    t = np.zeros((T, MAX_VIEWS, 3))
    for c, camera in enumerate(sample.rig):  # tiny loop over cameras
        keypoints[:, c] = camera.undistort_points(sample.keypoints[c])  # (T, J, 2)
        confidence[:, c] = sample.confidence[c]
        K[:, c], R[:, c], t[:, c] = camera.K, camera.R, camera.t
    seen = np.isfinite(keypoints).all(axis=-1) & (confidence > 0)  # (T, V, J)
    confidence = np.where(seen, confidence, 0.0)
    keypoints[~seen] = np.nan
    return {"keypoints": keypoints, "confidence": confidence, "K": K, "R": R, "t": t,
            "view_ok": seen.sum(axis=-1) >= MIN_SEEN_JOINTS, "points3d": sample.points3d}


def build_lifter_arrays(config: LifterDataConfig, *, min_views: int = 2) -> dict[str, np.ndarray]:
    """Generate ``config``'s data: ``{field: (N, ...)}`` (float32; ``view_ok`` bool).

    Frames with fewer than ``min_views`` usable views are left out (training needs a pair; single-view
    evaluation passes ``min_views=1``).
    """
    parts: dict[str, list] = {f: [] for f in FIELDS}
    for p in range(config.passes):
        noise = MIXED_NOISE[p % len(MIXED_NOISE)] if config.noise == "mixed" else config.noise
        samples = synthetic_dataset(config.split, num_cameras=config.num_cameras, noise=noise,
                                    seed=config.seed * 1000 + p, num_frames=config.num_frames, fps=config.fps,
                                    max_sequences=config.max_sequences)
        for sample in samples:
            arrays = sample_arrays(sample)
            for f in FIELDS:
                parts[f].append(arrays[f])
    if not parts["points3d"]:
        raise CrossviewError(f"no motion found for split {config.split!r}")
    result = {f: np.concatenate(v) for f, v in parts.items()}
    keep = result["view_ok"].sum(axis=1) >= min_views
    result = {f: (a[keep] if f == "view_ok" else a[keep].astype(np.float32)) for f, a in result.items()}
    log.info("lifter data %s/%s: %d frames, %d usable views", config.split, config.noise, len(result["points3d"]),
             int(result["view_ok"].sum()))
    return result


def sample_pairs(view_ok: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random ordered pair of distinct usable views per frame.

    Args:
        view_ok: ``(B, V)`` bool, at least two True per row.

    Returns:
        ``(u, v)``, two ``(B,)`` int arrays.
    """
    scores = np.where(view_ok, rng.random(view_ok.shape), -1.0)  # (B, V)
    order = np.argsort(-scores, axis=1)
    return order[:, 0], order[:, 1]


def single_views(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every usable view on its own: ``keypoints (M, J, 2)``, ``confidence (M, J)``, ``K (M, 3, 3)``,
    ``truth_cam (M, J, 3)`` mm (the true pose in that camera's frame), ``frame (M,)`` and ``view (M,)``."""
    frame, view = np.nonzero(arrays["view_ok"])
    R, t = arrays["R"][frame, view].astype(np.float64), arrays["t"][frame, view].astype(np.float64)
    truth = np.einsum("mcd,mjd->mjc", R, arrays["points3d"][frame].astype(np.float64)) + t[:, None, :]
    return {"keypoints": arrays["keypoints"][frame, view], "confidence": arrays["confidence"][frame, view],
            "K": arrays["K"][frame, view], "truth_cam": truth, "frame": frame, "view": view}


__all__ = ["FIELDS", "LifterDataConfig", "MAX_VIEWS", "MIN_SEEN_JOINTS", "build_lifter_arrays", "sample_arrays",
           "sample_pairs", "single_views"]
