"""BlazePose (MediaPipe Pose, full model) for several cameras at once, through ONNX Runtime.

Per frame set (one image per camera)::

    detector = BlazePoseDetector(paths["pose_detection"], paths["pose_landmark_full"], device="auto")
    result = detector.detect(frames, rig=rig)   # frames: C images (H, W, 3) uint8 BGR
    result.keypoints    # (C, 33, 2) px, NaN where the person is lost
    result.confidence   # (C, 33) visibility x presence, 0 where lost
    result.status       # per view: "tracked", "detected", "seeded" or "lost"

The pipeline follows MediaPipe's pose graphs (see :mod:`models.blazepose_geometry`):

1. Views without a ROI from the previous frame run the person detector (letterbox to 224 x 224,
   RGB in [-1, 1]; anchors, box decoding, weighted NMS; letterbox removed), all such views in one
   batched call. The subject is the detection MediaPipe would take (the best), or with a rig the
   one that agrees across views (:func:`models.blazepose_multiview.choose_subject`; a tracked
   view takes part with its ROI centre). Its hip centre and scale point give the ROI.
2. Every view with a ROI is cropped (rotated square, 256 x 256, RGB in [0, 1]) and all crops go
   through the landmark model in one batched call (a model exported with a fixed batch of 1 is
   run once per crop, the API staying batched).
3. Landmarks (39 x (x, y, z, visibility, presence)) are refined from the heatmaps (MediaPipe's
   kernel 7, min confidence 0.5; on the Pose2Sim demo, 4 views x 40 frames, it lowers the mean
   reprojection error of the triangulated landmarks from 16.3 to 15.7 px), mapped back through
   the crop's affine and split into the 33
   body landmarks and the alignment points 33 (hip centre) and 34 (scale point), which give the
   next frame's ROI. The pose flag (a probability: MediaPipe thresholds the raw output at 0.5,
   the model applies the sigmoid itself) below ``min_pose_flag`` means the person is lost; the
   view runs the detector on the next frame, as it does when its next ROI leaves the image.
4. With a rig, views that found the person are triangulated (33 landmarks, confidence-weighted)
   and views that lost it get their next ROI by reprojecting that 3D pose
   (:func:`models.blazepose_multiview.seed_rois_from_3d`) instead of waiting for the detector.

Confidence is ``visibility x presence`` (both sigmoid): presence says the landmark is inside the
crop, visibility that it is not occluded; a triangulation should trust a joint only when both
hold, and the product stays in [0, 1]. MediaPipe's landmark smoothing (one-euro filter) and
segmentation are not part of this module.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

import cv2
import numpy as np

from calibration.errors import CrossviewError
from calibration.rig import Rig
from models.blazepose_geometry import (
    DETECTOR_SIZE,
    HIP_CENTER,
    LANDMARK_SIZE,
    NUM_LANDMARKS,
    SCALE_POINT,
    Detections,
    Letterbox,
    Roi,
    crop_roi,
    crop_to_image,
    decode_detections,
    refine_from_heatmap,
    roi_from_alignment,
    sigmoid,
    ssd_anchors,
    weighted_nms,
)
from models.blazepose_multiview import choose_subject, seed_rois_from_3d
from models.onnx_session import TensorSpec, create_session
from models.skeleton import to_h36m17

logger = logging.getLogger(__name__)

NUM_BODY_LANDMARKS = 33
STATUSES = ("tracked", "detected", "seeded", "lost")
HEATMAP_SIZE = 64

DETECTOR_INPUTS = (TensorSpec(None, (None, DETECTOR_SIZE, DETECTOR_SIZE, 3)),)
DETECTOR_OUTPUTS = (TensorSpec(None, (None, 2254, 12)), TensorSpec(None, (None, 2254, 1)))
LANDMARK_INPUTS = (TensorSpec(None, (None, LANDMARK_SIZE, LANDMARK_SIZE, 3)),)
LANDMARK_OUTPUTS = (
    TensorSpec(None, (None, NUM_LANDMARKS * 5)),
    TensorSpec(None, (None, 1)),
    TensorSpec(None, (None, HEATMAP_SIZE, HEATMAP_SIZE, NUM_LANDMARKS)),
)


@dataclass(frozen=True, slots=True, eq=False)
class BlazePoseResult:
    """One frame set's BlazePose output.

    Attributes:
        keypoints: ``(C, 33, 2)`` float32 image px (OpenCV convention); NaN where lost.
        confidence: ``(C, 33)`` float32 visibility x presence in [0, 1]; 0 where lost.
        status: per view ``"tracked"`` (ROI from the previous frame's landmarks), ``"detected"``
            (ROI from the person detector), ``"seeded"`` (ROI reprojected from the 3D pose) or
            ``"lost"``.
        rois: per view the ROI the landmarks were read in, or None.
        pose_flag: ``(C,)`` float32 probability that the crop holds a person; NaN where no
            crop ran.
        points3d: ``(33, 3)`` float64 world mm triangulated from the views (with a rig and at
            least two views), else None.
        timings_ms: milliseconds per stage (``detector``, ``landmarks``, ``postprocess``,
            ``triangulation``, ``total``); the model stages include their pre-processing.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    status: tuple[str, ...]
    rois: tuple[Roi | None, ...]
    pose_flag: np.ndarray
    points3d: np.ndarray | None = None
    timings_ms: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        c = len(self.status)
        if self.keypoints.shape != (c, NUM_BODY_LANDMARKS, 2) or self.confidence.shape != (c, NUM_BODY_LANDMARKS):
            raise ValueError(
                f"BlazePoseResult: keypoints {self.keypoints.shape} / confidence {self.confidence.shape} for {c} views"
            )
        if any(s not in STATUSES for s in self.status):
            raise ValueError(f"BlazePoseResult: unknown status in {self.status}")
        object.__setattr__(self, "timings_ms", MappingProxyType(dict(self.timings_ms)))

    @property
    def joint_set(self) -> str:
        return "blazepose33"

    def to_h36m17(self) -> tuple[np.ndarray, np.ndarray]:
        """``(C, 17, 2)`` px and ``(C, 17)`` confidence on the H36M-17 skeleton."""
        return to_h36m17(self.keypoints.astype(np.float64), self.confidence.astype(np.float64), "blazepose33")


class BlazePoseDetector:
    """Multi-view BlazePose with MediaPipe's tracking, batched over views.

    Stateful: each view's next ROI comes from its last landmarks; :meth:`reset` forgets them
    (call it when the take or the cameras change). Not thread-safe: one inference worker owns
    it. Constructing it never downloads: :meth:`from_folder` finds models fetched before.

    Args:
        detector_path: ``pose_detection.onnx`` (input ``(B, 224, 224, 3)``; outputs
            ``(B, 2254, 12)`` and ``(B, 2254, 1)``, found by shape).
        landmark_path: ``pose_landmark_full.onnx`` (input ``(B, 256, 256, 3)``; outputs
            ``(B, 195)``, ``(B, 1)`` and ``(B, 64, 64, 39)``, found by shape).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"tensorrt"``
            (:func:`models.onnx_session.create_session`).
        min_detection_score: detector score threshold (MediaPipe 0.5).
        min_pose_flag: below this pose-flag probability the person is lost (MediaPipe 0.5).
        refine_heatmap: refine landmarks from the heatmaps as MediaPipe does.
        threads: CPU threads per inference (ONNX Runtime's default when None).
    """

    def __init__(
        self,
        detector_path: str | Path,
        landmark_path: str | Path,
        device: str = "auto",
        *,
        min_detection_score: float = 0.5,
        min_pose_flag: float = 0.5,
        refine_heatmap: bool = True,
        threads: int | None = None,
    ) -> None:
        self.detector = create_session(
            detector_path, device, inputs=DETECTOR_INPUTS, outputs=DETECTOR_OUTPUTS, threads=threads
        )
        self.landmarker = create_session(
            landmark_path, device, inputs=LANDMARK_INPUTS, outputs=LANDMARK_OUTPUTS, threads=threads
        )
        self.anchors = ssd_anchors()
        self.min_detection_score = float(min_detection_score)
        self.min_pose_flag = float(min_pose_flag)
        self.refine_heatmap = bool(refine_heatmap)
        self._next_rois: list[Roi | None] = []
        self._next_status: list[str] = []
        for model in (self.detector, self.landmarker):
            if model.fixed_batch == 1:
                logger.info("%s has a fixed batch of 1: views run one after another", model.path.name)

    @classmethod
    def from_folder(cls, folder: str | Path | None = None, device: str = "auto", **options) -> "BlazePoseDetector":
        """The detector on ``pose_detection.onnx`` and ``pose_landmark_full.onnx`` in ``folder``
        (default: :func:`models.model_store.model_dir`).

        Raises:
            CrossviewError: a model is missing; the message says how to fetch it.
        """
        from models.model_store import model_dir

        folder = model_dir() if folder is None else Path(folder)
        paths = [folder / "pose_detection.onnx", folder / "pose_landmark_full.onnx"]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise CrossviewError(
                f"{folder}: no {' or '.join(missing)}; run `crossview models fetch` to download and convert "
                "the BlazePose models (once)"
            )
        return cls(*paths, device=device, **options)

    @property
    def provider(self) -> str:
        """The execution provider of the landmark model (the one that runs every frame)."""
        return self.landmarker.provider

    @property
    def gpu_fallback(self) -> bool:
        return self.detector.gpu_fallback or self.landmarker.gpu_fallback

    def reset(self) -> None:
        """Forget the tracked ROIs: the next call detects in every view."""
        self._next_rois = []
        self._next_status = []

    # --------------------------------------------------------------------------------------------
    def _check_frames(self, frames: Sequence[np.ndarray], rig: Rig | None) -> None:
        if len(frames) == 0 or all(frame is None for frame in frames):
            raise CrossviewError("detect needs at least one frame")
        if rig is not None and len(rig) != len(frames):
            raise CrossviewError(f"{len(frames)} frames for a rig of {len(rig)} cameras ({', '.join(rig.names)})")
        for v, frame in enumerate(frames):
            name = rig[v].name if rig is not None else f"view {v}"
            if frame is None:
                continue
            if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
                shape = getattr(frame, "shape", None)
                kind = getattr(frame, "dtype", type(frame).__name__)
                raise CrossviewError(f"{name}: expected an (H, W, 3) uint8 BGR image, got {shape} {kind}")
            if rig is not None and frame.shape[:2] != (rig[v].height, rig[v].width):
                raise CrossviewError(
                    f"camera {name!r}: the frame is {frame.shape[1]}x{frame.shape[0]} px but the calibration is for "
                    f"{rig[v].width}x{rig[v].height}; use Camera.fitted_to_image for resized videos"
                )

    def _detect_people(self, frames: Sequence[np.ndarray], views: list[int]) -> dict[int, Detections]:
        """Detections (image px, after NMS) for ``views``, one batched detector call."""
        boxes = [Letterbox.fit(frames[v].shape[1], frames[v].shape[0]) for v in views]
        batch = np.stack([cv2.cvtColor(lb.apply(frames[v]), cv2.COLOR_BGR2RGB) for lb, v in zip(boxes, views)])
        batch = batch.astype(np.float32) / np.float32(127.5) - np.float32(1.0)  # (B, 224, 224, 3) in [-1, 1]
        raw_boxes, raw_scores = self.detector.run_batched(batch)  # (B, 2254, 12), (B, 2254, 1)
        found = {}
        for i, (v, lb) in enumerate(zip(views, boxes)):
            decoded = decode_detections(raw_boxes[i], raw_scores[i], self.anchors, min_score=self.min_detection_score)
            found[v] = lb.detections_to_image(weighted_nms(decoded))
        return found

    def detect(self, frames: Sequence[np.ndarray], rig: Rig | None = None) -> BlazePoseResult:
        """Landmarks of the subject in every view.

        Args:
            frames: C images ``(H, W, 3)`` uint8 BGR, one per view (rig order when a rig is given;
                sizes may differ between views); None for a view without a frame in this frame set
                (a dropped frame: the view is ``"lost"`` now and keeps its ROI for the next call).
            rig: the calibrated cameras, for choosing the subject across views and re-seeding
                lost views from the 3D pose; None for independent views.

        Returns:
            :class:`BlazePoseResult`.

        Raises:
            CrossviewError: frames that are not (H, W, 3) uint8, or that do not match the rig.
        """
        start = time.perf_counter()
        self._check_frames(frames, rig)
        count = len(frames)
        if len(self._next_rois) != count:
            self.reset()
            self._next_rois = [None] * count
            self._next_status = ["detected"] * count
        rois: list[Roi | None] = [
            roi if roi is not None and f is not None and roi.inside(f.shape[1], f.shape[0]) else None
            for roi, f in zip(self._next_rois, frames)
        ]
        status = [self._next_status[v] if rois[v] is not None else "lost" for v in range(count)]
        timings = {"detector": 0.0, "landmarks": 0.0, "postprocess": 0.0, "triangulation": 0.0}

        absent = [v for v in range(count) if frames[v] is None]
        need = [v for v in range(count) if rois[v] is None and frames[v] is not None]
        if need:
            t0 = time.perf_counter()
            found = self._detect_people(frames, need)
            # Tracked views take part in the choice through their ROI centre (the hip centre).
            candidates = []
            for v in range(count):
                if v in found:
                    candidates.append(found[v])
                elif rois[v] is None:  # no frame in this view
                    candidates.append(Detections(np.zeros(0), np.zeros((0, 4)), np.zeros((0, 4, 2))))
                else:
                    kp = np.full((1, 4, 2), np.nan)
                    kp[0, 0] = (rois[v].center_x, rois[v].center_y)
                    candidates.append(Detections(np.ones(1), np.full((1, 4), np.nan), kp))
            chosen = choose_subject(rig, candidates)
            for v in need:
                if chosen[v] is not None:
                    kp = found[v].keypoints[chosen[v]]  # (4, 2) px
                    rois[v] = roi_from_alignment(kp[0], kp[1])
                    status[v] = "detected" if rois[v] is not None else "lost"
            timings["detector"] = (time.perf_counter() - t0) * 1e3

        keypoints = np.full((count, NUM_BODY_LANDMARKS, 2), np.nan, dtype=np.float32)
        confidence = np.zeros((count, NUM_BODY_LANDMARKS), dtype=np.float32)
        pose_flag = np.full(count, np.nan, dtype=np.float32)
        next_rois: list[Roi | None] = [None] * count
        next_status = ["detected"] * count
        active = [v for v in range(count) if rois[v] is not None]
        if active:
            t0 = time.perf_counter()
            crops = np.stack([cv2.cvtColor(crop_roi(frames[v], rois[v]), cv2.COLOR_BGR2RGB) for v in active])
            crops = crops.astype(np.float32) / np.float32(255.0)  # (B, 256, 256, 3) in [0, 1]
            raw, flags, heatmaps = self.landmarker.run_batched(crops)  # (B, 195), (B, 1), (B, 64, 64, 39)
            t1 = time.perf_counter()
            timings["landmarks"] = (t1 - t0) * 1e3
            landmarks = raw.reshape(len(active), NUM_LANDMARKS, 5).astype(np.float64)  # (B, 39, 5)
            xy = landmarks[..., :2]  # (B, 39, 2) crop px, continuous
            if self.refine_heatmap:
                xy = refine_from_heatmap(xy / LANDMARK_SIZE, heatmaps) * LANDMARK_SIZE
            conf = sigmoid(landmarks[..., 3]) * sigmoid(landmarks[..., 4])  # (B, 39)
            for i, v in enumerate(active):
                pose_flag[v] = flags[i, 0]
                if not flags[i, 0] >= self.min_pose_flag:
                    status[v] = "lost"
                    continue
                image_xy = crop_to_image(xy[i], rois[v])  # (39, 2) px
                keypoints[v] = image_xy[:NUM_BODY_LANDMARKS]
                confidence[v] = conf[i, :NUM_BODY_LANDMARKS]
                roi = roi_from_alignment(image_xy[HIP_CENTER], image_xy[SCALE_POINT])
                if roi is not None and roi.inside(frames[v].shape[1], frames[v].shape[0]):
                    next_rois[v], next_status[v] = roi, "tracked"
            timings["postprocess"] = (time.perf_counter() - t1) * 1e3

        for v in absent:  # a dropped frame does not end the tracking
            next_rois[v], next_status[v] = self._next_rois[v], self._next_status[v]
        points3d = None
        seen = [v for v in range(count) if status[v] != "lost"]
        if rig is not None and len(seen) >= 2:
            t0 = time.perf_counter()
            points3d = rig.triangulate(keypoints.astype(np.float64), confidence.astype(np.float64)).points  # (33, 3) mm
            if any(r is None for r in next_rois):
                for v, seed in enumerate(seed_rois_from_3d(rig, points3d)):
                    if next_rois[v] is None and seed is not None:
                        next_rois[v], next_status[v] = seed, "seeded"
            timings["triangulation"] = (time.perf_counter() - t0) * 1e3
        self._next_rois, self._next_status = next_rois, next_status
        timings["total"] = (time.perf_counter() - start) * 1e3
        return BlazePoseResult(
            keypoints=keypoints,
            confidence=confidence,
            status=tuple(status),
            rois=tuple(rois[v] if v in active else None for v in range(count)),
            pose_flag=pose_flag,
            points3d=points3d,
            timings_ms=timings,
        )
