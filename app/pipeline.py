"""One frame set in, one 3D pose out: the code path shared by live capture, playback and
``crossview process``.

Per frame set (one image per camera, None for a camera without a frame)::

    pipeline = Pipeline.build(rig, refiner="default", lifter="none")   # or Pipeline(rig, detector, ...)
    pose = pipeline.process(frames, t_s)     # PoseFrame: keypoints (C, J, 2) px, points3d (17, 3) mm, ...

Stages, each timed in ``PoseFrame.timings_ms``:

1. ``detect``: the 2D detector (:mod:`app.detection`), all views in one batched model call, with
   tracking between calls; keypoints are mapped to H36M-17 for the 3D stages.
2. ``triangulate``: robust multi-view triangulation (:func:`calibration.triangulation.triangulate`)
   when at least two views see the person.
3. ``refine``: the cross-view refiner (``models.refiner``) on the triangulated pose; the views a
   joint was rejected from (triangulation's outliers) reach it with confidence 0.
4. ``lift``: when fewer than two views see the person, the single-view lifter (``models.lifter``)
   on the view with the highest mean confidence.
5. ``filter``: temporal smoothing (:class:`models.filters.OneEuroFilter`), time-stamp aware, so
   a live session that skips stale frame sets is smoothed correctly.

``PoseFrame.method`` says which path made the pose: ``"triangulated"``, ``"refined"``,
``"lifted"`` or ``"none"`` (nobody seen, or one view and no lifter: NaN). The pipeline holds
state (the detector's tracking, the filter): one pipeline per stream, called from one thread;
:meth:`Pipeline.reset` after a seek or a change of take.

Keypoints from a file (``crossview process poses2d.npz``) enter at stage 2 through
:meth:`Pipeline.process_keypoints`, so they get the same triangulation, refiner, lifter and filter.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Protocol, Sequence

import numpy as np

from calibration.camera import Camera
from calibration.errors import CrossviewError, check_shape
from calibration.rig import Rig
from calibration.triangulation import DEFAULT_MAX_REPROJECTION_ERROR_PX
from models.filters import OneEuroFilter
from models.skeleton import to_h36m17

logger = logging.getLogger(__name__)

METHODS = ("triangulated", "refined", "lifted", "none")
STAGES = ("detect", "triangulate", "refine", "lift", "filter", "total")
#: A view "sees the person" from keypoints when at least this many of the 17 joints have a confidence.
MIN_JOINTS_PER_VIEW = 6
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Where ``--refiner default`` / ``--lifter default`` look.
DEFAULT_MODELS = {"refiner": REPO_ROOT / "assets" / "models" / "refiner.onnx",
                  "lifter": REPO_ROOT / "assets" / "models" / "lifter.onnx"}


class Detector(Protocol):
    """What the pipeline needs from a 2D keypoint source (see :mod:`app.detection`)."""

    joint_set: str
    provider: str

    def __call__(self, frames: Sequence[np.ndarray | None], rig: Rig | None):
        """-> an object with ``keypoints (C, J, 2)`` px, ``confidence (C, J)``, ``found (C,)``."""


class Refiner(Protocol):
    def refine(self, points3d: np.ndarray, confidence: np.ndarray, rig: Rig) -> np.ndarray:
        """``(T, 17, 3)`` mm world, ``(T, C, 17)`` -> ``(T, 17, 3)`` mm world."""


class Lifter(Protocol):
    def lift(self, keypoints: np.ndarray, confidence: np.ndarray, camera: Camera) -> np.ndarray:
        """``(T, 17, 2)`` px, ``(T, 17)`` -> ``(T, 17, 3)`` mm world."""


def _read_only(array, dtype) -> np.ndarray:
    out = np.array(array, dtype=dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class PoseFrame:
    """The pipeline's output for one frame set.

    Attributes:
        keypoints: ``(C, J, 2)`` float32 px in the detector's joint set (``joint_set``); NaN where
            missing.
        confidence: ``(C, J)`` float32 in [0, 1]; 0 where missing.
        points3d: ``(17, 3)`` float64 mm, H36M-17, world frame of the calibration, after every
            stage that ran; NaN where unknown.
        reprojection_error: ``(C, 17)`` float64 px, distance between ``points3d`` projected into
            each view and that view's H36M-17 keypoint; NaN where either is missing.
        views_used: ``(17,)`` int64 views each joint came from (1 for a lifted pose, 0 if NaN).
        method: ``"triangulated"``, ``"refined"``, ``"lifted"`` or ``"none"``.
        timings_ms: milliseconds per stage (:data:`STAGES`; 0 for a stage that did not run).
        provider: where the detector ran (e.g. ``CPUExecutionProvider``); ``"keypoints"`` when the
            2D keypoints came from a file.
        t_s: time stamp of the frame set, s.
        joint_set: joint set of ``keypoints`` (``"blazepose33"``, ``"h36m17"``, ...).
        found: ``(C,)`` bool, the view sees the person.
        points_triangulated: ``(17, 3)`` float64 mm, the triangulation before refiner and filter
            (NaN when fewer than two views see the person).
        triangulation_error_px: ``(17,)`` float64 RMS reprojection error of ``points_triangulated``
            over the views used, px.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    points3d: np.ndarray
    reprojection_error: np.ndarray
    views_used: np.ndarray
    method: str
    timings_ms: Mapping[str, float]
    provider: str
    t_s: float = math.nan
    joint_set: str = "h36m17"
    found: np.ndarray | None = None
    points_triangulated: np.ndarray | None = None
    triangulation_error_px: np.ndarray | None = None

    def __post_init__(self) -> None:
        kp = _read_only(self.keypoints, np.float32)
        check_shape("keypoints", kp, "(C, J, 2)", kp.ndim == 3 and kp.shape[2] == 2)
        C, J = kp.shape[:2]
        conf = _read_only(self.confidence, np.float32)
        check_shape("confidence", conf, f"({C}, {J})", conf.shape == (C, J))
        points = _read_only(self.points3d, np.float64)
        check_shape("points3d", points, "(17, 3)", points.shape == (17, 3))
        error = _read_only(self.reprojection_error, np.float64)
        check_shape("reprojection_error", error, f"({C}, 17)", error.shape == (C, 17))
        views = _read_only(self.views_used, np.int64)
        check_shape("views_used", views, "(17,)", views.shape == (17,))
        if self.method not in METHODS:
            raise CrossviewError(f"PoseFrame.method must be one of {', '.join(METHODS)}, got {self.method!r}")
        found = _read_only(np.any(conf > 0, axis=1) if self.found is None else self.found, bool)
        check_shape("found", found, f"({C},)", found.shape == (C,))
        triangulated = _read_only(np.full((17, 3), np.nan) if self.points_triangulated is None
                                  else self.points_triangulated, np.float64)
        check_shape("points_triangulated", triangulated, "(17, 3)", triangulated.shape == (17, 3))
        tri_error = _read_only(np.full(17, np.nan) if self.triangulation_error_px is None
                               else self.triangulation_error_px, np.float64)
        check_shape("triangulation_error_px", tri_error, "(17,)", tri_error.shape == (17,))
        for name, value in (("keypoints", kp), ("confidence", conf), ("points3d", points),
                            ("reprojection_error", error), ("views_used", views), ("found", found),
                            ("points_triangulated", triangulated), ("triangulation_error_px", tri_error)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "timings_ms", MappingProxyType(dict(self.timings_ms)))

    @property
    def num_views(self) -> int:
        return self.keypoints.shape[0]


def load_model(kind: str, spec: str | Path | None):
    """The refiner or lifter a command-line spec names.

    Args:
        kind: ``"refiner"`` or ``"lifter"``.
        spec: ``"none"`` -> None; ``"default"`` -> the bundled model (:data:`DEFAULT_MODELS`),
            an error when it is not installed; a path -> that model; None (the command line's
            default) -> the bundled model when it is installed, else None with an info line.

    Raises:
        CrossviewError: the model cannot be loaded (the message names it and the alternatives).
    """
    if kind not in DEFAULT_MODELS:
        raise CrossviewError(f"unknown model kind {kind!r}; use refiner or lifter")
    default = DEFAULT_MODELS[kind]
    if spec is None:
        if not default.is_file():
            logger.info("no %s installed (%s): 3D poses without it; pass --%s PATH to use one", kind, default, kind)
            return None
        spec = "default"
    spec = str(spec)
    if spec == "none":
        return None
    if spec == "default" and not default.is_file():
        raise CrossviewError(f"--{kind} default: no {kind} is installed at {default}; pass --{kind} PATH "
                             f"(an exported .onnx) or --{kind} none")
    import importlib

    try:
        module = importlib.import_module(f"models.{kind}")
    except ModuleNotFoundError as exc:
        if exc.name != f"models.{kind}":
            raise
        raise CrossviewError(f"--{kind} {spec}: this version has no {kind} runtime (models/{kind}.py); "
                             f"use --{kind} none") from None
    model = getattr(module, f"load_{kind}")(spec)
    logger.info("%s: %s", kind, spec)
    return model


class Pipeline:
    """Detector -> triangulation -> refiner | lifter -> filter, one frame set at a time.

    Args:
        rig: the cameras, in the order of the frames (sizes matching the frames: see
            :meth:`calibration.camera.Camera.fitted_to_image`).
        detector: a 2D source (:func:`app.detection.open_detector`); may be None when only
            :meth:`process_keypoints` is used.
        refiner: an object with ``refine(points3d, confidence, rig)`` (``models.refiner.Refiner``),
            or None.
        lifter: an object with ``lift(keypoints, confidence, camera)`` (``models.lifter.Lifter``),
            or None.
        smoother: an object with ``filter(points, t_s)`` and ``reset()``
            (:class:`models.filters.OneEuroFilter`), or None for no temporal filter.
        robust: robust triangulation (default) or plain confidence-weighted DLT.
        max_reprojection_error_px: robust triangulation drops a view whose reprojection error
            stays above this (px) while more than two views remain.
    """

    def __init__(self, rig: Rig, detector: Detector | None = None, refiner: Refiner | None = None,
                 lifter: Lifter | None = None, smoother: OneEuroFilter | None = None, robust: bool = True,
                 max_reprojection_error_px: float = DEFAULT_MAX_REPROJECTION_ERROR_PX) -> None:
        if not isinstance(rig, Rig):
            raise CrossviewError(f"Pipeline needs a Rig, got {type(rig).__name__}")
        if not max_reprojection_error_px > 0:
            raise CrossviewError(f"the reprojection rejection threshold must be > 0 px, got {max_reprojection_error_px}")
        self.max_reprojection_error_px = float(max_reprojection_error_px)
        self.rig = rig
        self.detector = detector
        self.refiner = refiner
        self.lifter = lifter
        self.smoother = smoother
        self.robust = bool(robust)

    @classmethod
    def build(cls, rig: Rig, *, model: str | Path = "blazepose", device: str = "auto",
              refiner: str | Path | None = None, lifter: str | Path | None = None, smooth: bool = True,
              min_cutoff_hz: float | None = None, beta: float | None = None, robust: bool = True) -> "Pipeline":
        """A pipeline from command-line style options: ``refiner`` / ``lifter`` as
        :func:`load_model` takes them (None: the bundled model when installed), ``smooth`` the
        One-Euro filter with ``min_cutoff_hz`` / ``beta`` (None: its defaults)."""
        from app.detection import open_detector

        options = {k: v for k, v in (("min_cutoff_hz", min_cutoff_hz), ("beta", beta)) if v is not None}
        smoother = OneEuroFilter(**options) if smooth else None
        return cls(rig, open_detector(model, device), load_model("refiner", refiner), load_model("lifter", lifter),
                   smoother, robust)

    @property
    def provider(self) -> str:
        return getattr(self.detector, "provider", "keypoints") if self.detector is not None else "keypoints"

    def reset(self) -> None:
        """Forget the detector's tracking and the filter's history (a seek, a new take)."""
        if self.detector is not None and hasattr(self.detector, "reset"):
            self.detector.reset()
        if self.smoother is not None:
            self.smoother.reset()

    def process(self, frames: Sequence[np.ndarray | None], t_s: float) -> PoseFrame:
        """Run every stage on one frame set.

        Args:
            frames: C images ``(H, W, 3)`` uint8 BGR in rig order; None for a camera without a
                frame in this set (its keypoints are NaN, confidence 0).
            t_s: the frame set's time stamp, s (for the filter).

        Raises:
            CrossviewError: no detector, or frames that do not match the rig.
        """
        if self.detector is None:
            raise CrossviewError("this pipeline has no detector: use process_keypoints, or build it with one")
        if len(frames) != len(self.rig):
            raise CrossviewError(f"{len(frames)} frames for a rig of {len(self.rig)} cameras ({', '.join(self.rig.names)})")
        self._fit_rig_to(frames)
        start = time.perf_counter()
        detected = self.detector(frames, self.rig)
        detect_ms = 1000.0 * (time.perf_counter() - start)
        return self._pose(np.asarray(detected.keypoints), np.asarray(detected.confidence),
                          np.asarray(detected.found, dtype=bool), self.detector.joint_set, t_s,
                          start, detect_ms, self.provider)

    def _fit_rig_to(self, frames: Sequence[np.ndarray | None]) -> None:
        """Adapt the rig once to frames of another size than calibrated (a camera delivering 720p
        for a 1080p calibration): the calibrated image is taken as scaled to fit and centred
        (:meth:`calibration.camera.Camera.fitted_to_image`). A different aspect ratio is logged,
        as that assumption (letterboxing, not cropping) may not hold."""
        cameras = list(self.rig.cameras)
        for index, (camera, frame) in enumerate(zip(cameras, frames)):
            if frame is None or frame.ndim < 2:
                continue
            height, width = frame.shape[:2]
            if (width, height) == (camera.width, camera.height):
                continue
            cameras[index] = camera.fitted_to_image(width, height)
            message = ("camera %s delivers %dx%d frames but was calibrated at %dx%d: using the calibration "
                       "scaled to fit")
            if abs(width / height - camera.width / camera.height) > 0.01 * camera.width / camera.height:
                logger.warning(message + " (another aspect ratio: assumed letterboxed, not cropped; recalibrate "
                               "at this size if the overlay is off)", camera.name, width, height, camera.width,
                               camera.height)
            else:
                logger.info(message, camera.name, width, height, camera.width, camera.height)
        if any(a is not b for a, b in zip(cameras, self.rig.cameras)):
            self.rig = Rig(tuple(cameras))

    def process_keypoints(self, keypoints: np.ndarray, confidence: np.ndarray, t_s: float, *,
                          joint_set: str = "h36m17") -> PoseFrame:
        """Stages 2-5 on 2D keypoints detected elsewhere.

        Args:
            keypoints: ``(C, J, 2)`` px in rig order; NaN where missing.
            confidence: ``(C, J)`` in [0, 1].
            t_s: time stamp, s.
            joint_set: the keypoints' joint set (``"h36m17"``, ``"coco17"``, ``"blazepose33"``).
        """
        start = time.perf_counter()
        keypoints = np.asarray(keypoints)
        confidence = np.asarray(confidence)
        C = len(self.rig)
        check_shape("keypoints", keypoints, f"({C}, J, 2)", keypoints.ndim == 3 and keypoints.shape[0] == C
                    and keypoints.shape[2] == 2)
        found = (np.nan_to_num(confidence) > 0).sum(axis=1) >= min(MIN_JOINTS_PER_VIEW, keypoints.shape[1])
        return self._pose(keypoints, confidence, found, joint_set, t_s, start, 0.0, "keypoints")

    # --------------------------------------------------------------------------------------------
    def _pose(self, keypoints: np.ndarray, confidence: np.ndarray, found: np.ndarray, joint_set: str,
              t_s: float, start: float, detect_ms: float, provider: str) -> PoseFrame:
        timings = dict.fromkeys(STAGES, 0.0)
        timings["detect"] = detect_ms
        kp17, conf17 = to_h36m17(keypoints.astype(np.float64), confidence.astype(np.float64), joint_set)  # (C, 17, 2), (C, 17)
        conf17 = np.clip(np.nan_to_num(conf17), 0.0, 1.0)
        kp17 = np.where(conf17[..., None] > 0, kp17, np.nan)
        seen = np.flatnonzero(found)

        points = np.full((17, 3), np.nan)
        triangulated = np.full((17, 3), np.nan)
        tri_error = np.full(17, np.nan)
        views_used = np.zeros(17, dtype=np.int64)
        method = "none"
        if len(seen) >= 2:
            t0 = time.perf_counter()
            result = self.rig.triangulate(kp17, conf17, robust=self.robust,
                                             max_reprojection_error_px=self.max_reprojection_error_px)  # (17, 3) mm
            timings["triangulate"] = 1000.0 * (time.perf_counter() - t0)
            if np.isfinite(result.points).all(axis=1).any():
                triangulated = np.array(result.points)
                tri_error = np.array(result.reprojection_error_px)
                views_used = np.array(result.views_used)
                points, method = triangulated, "triangulated"
                if self.refiner is not None:
                    t0 = time.perf_counter()
                    weights = np.where(result.inliers, conf17, 0.0)  # (C, 17): rejected views count as unseen
                    refined = np.asarray(self.refiner.refine(triangulated[None], weights[None], self.rig))  # (1, 17, 3)
                    check_shape("refined", refined, "(1, 17, 3)", refined.shape == (1, 17, 3))
                    points, method = refined[0].astype(np.float64), "refined"
                    timings["refine"] = 1000.0 * (time.perf_counter() - t0)
        if method == "none" and len(seen) >= 1 and self.lifter is not None:
            best = int(seen[np.argmax(conf17[seen].mean(axis=1))])
            t0 = time.perf_counter()
            lifted = np.asarray(self.lifter.lift(kp17[best][None], conf17[best][None], self.rig[best]))  # (1, 17, 3)
            check_shape("lifted", lifted, "(1, 17, 3)", lifted.shape == (1, 17, 3))
            timings["lift"] = 1000.0 * (time.perf_counter() - t0)
            if np.isfinite(lifted).any():  # the lifter returns NaN for views with too few joints
                points, method = lifted[0].astype(np.float64), "lifted"
                views_used = np.isfinite(points).all(axis=1).astype(np.int64)
        if self.smoother is not None:
            t0 = time.perf_counter()
            points = self.smoother.filter(points, t_s)
            timings["filter"] = 1000.0 * (time.perf_counter() - t0)

        projected = self.rig.project(points)  # (C, 17, 2)
        error = np.linalg.norm(projected - kp17, axis=-1)  # (C, 17) px, NaN where either is missing
        timings["total"] = 1000.0 * (time.perf_counter() - start)  # from before the detector
        return PoseFrame(
            keypoints=keypoints, confidence=np.clip(np.nan_to_num(confidence), 0.0, 1.0), points3d=points,
            reprojection_error=error, views_used=views_used, method=method, timings_ms=timings, provider=provider,
            t_s=float(t_s), joint_set=joint_set, found=found, points_triangulated=triangulated,
            triangulation_error_px=tri_error,
        )
