"""2D keypoint sources for the pipeline: BlazePose, or any ONNX pose model described by a card.

Every source takes one frame set (a list of ``(H, W, 3)`` uint8 BGR images, one per camera; None
for a camera without a frame in this set) and returns the subject's keypoints in every view (NaN
with confidence 0 where a view has no frame), all views in one batched model call;
:func:`open_detector` picks the source:

- ``"blazepose"`` (default): :class:`models.blazepose.BlazePoseDetector`, fetched and converted on
  first use; keypoints in BlazePose-33.
- a model card (``*.yaml`` beside an ONNX file) of family ``rtmo`` or ``yolo-pose`` (one-stage,
  several people per image) or ``rtmpose`` (top-down: each view's subject box comes from the
  previous frame's keypoints, the whole image when there are none); keypoints mapped to H36M-17.

With several people in a view the subject is the one the views agree on: the person whose pelvis
lies nearest the epipolar lines of the other views' candidates (the Pose2Sim demo has a bystander
in some views); without a rig, the highest-scored person.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from calibration.errors import CrossviewError
from calibration.rig import Rig
from models.blazepose_multiview import epipolar_distances

logger = logging.getLogger(__name__)

#: RTMPose boxes grow by this around the previous keypoints (the model expects some context).
BOX_GROWTH = 1.25
#: Below this mean confidence a view's subject counts as lost (RTMPose then looks at the whole image).
MIN_MEAN_CONFIDENCE = 0.3
#: A candidate agrees with another view when its pelvis lies this close to an epipolar line, px.
AGREEMENT_PX = 40.0


@dataclass(frozen=True, slots=True, eq=False)
class FrameKeypoints:
    """The subject in one frame set.

    Attributes:
        keypoints: ``(C, J, 2)`` px in the source's joint set; NaN where missing.
        confidence: ``(C, J)`` in [0, 1].
        found: ``(C,)`` bool, the subject was found in the view.
        milliseconds: wall time of the call.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    found: np.ndarray
    milliseconds: float


def choose_consistent(rig: Rig | None, pelvis: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> list[int | None]:
    """Per view, the index of the candidate the views agree on.

    Args:
        rig: the cameras (view order), or None.
        pelvis: per view ``(N_v, 2)`` candidate pelvis pixels (NaN allowed).
        scores: per view ``(N_v,)`` person scores.

    Returns:
        Per view a candidate index, or None where the view has none. A candidate ranks first by
        the number of other views holding a candidate within :data:`AGREEMENT_PX` of its
        epipolar line (the symmetric distance of :func:`models.blazepose_multiview.epipolar_distances`),
        then by the summed distance (capped at 1000 px per view), then by score. Two people seen by
        every view are equally consistent: the score decides between them.
    """
    best = [int(np.argmax(s)) if len(s) else None for s in scores]
    views = [v for v, s in enumerate(scores) if len(s)]
    if rig is None or len(views) < 2 or all(len(scores[v]) == 1 for v in views):
        return best
    distances = epipolar_distances(rig, [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in pelvis])
    chosen: list[int | None] = list(best)
    for v in views:
        cost = np.zeros(len(scores[v]))
        agreeing = np.zeros(len(scores[v]))
        for u in views:
            if u == v:
                continue
            nearest = distances[(v, u)].min(axis=1)  # (N_v,) px to the nearest candidate of view u
            agreeing += nearest < AGREEMENT_PX
            cost += np.minimum(nearest, 1000.0)
        ranking = np.lexsort((-np.asarray(scores[v]), np.round(cost), -agreeing))  # last key first; 1 px steps
        chosen[v] = int(ranking[0])
    return chosen


class BlazePoseSource:
    """BlazePose as a keypoint source (BlazePose-33), tracking across calls."""

    joint_set = "blazepose33"

    def __init__(self, device: str = "auto") -> None:
        from models.blazepose import BlazePoseDetector
        from models.model_store import ensure_blazepose_models

        paths = ensure_blazepose_models(progress=lambda message: logger.info("%s", message))
        self.detector = BlazePoseDetector(paths["pose_detection"], paths["pose_landmark_full"], device=device)
        self.provider = self.detector.provider

    def reset(self) -> None:
        """Forget the tracking (a new take, a seek)."""
        self.detector.reset()

    def __call__(self, frames: Sequence[np.ndarray | None], rig: Rig | None) -> FrameKeypoints:
        start = time.perf_counter()
        result = self.detector.detect(frames, rig)
        found = np.array([status != "lost" for status in result.status])
        return FrameKeypoints(result.keypoints, result.confidence, found, 1000.0 * (time.perf_counter() - start))


class CardModelSource:
    """An RTMPose, RTMO or YOLO-pose ONNX model described by a card; keypoints mapped to H36M-17."""

    joint_set = "h36m17"

    def __init__(self, card_path: str | Path, device: str = "auto") -> None:
        from models.model_card import load_model_card
        from models.pose_decoders import load_pose_model

        self.card = load_model_card(card_path)
        if self.card.joint_set is None:
            raise CrossviewError(f"{card_path}: the card names no keypoints.joint_set; the keypoints cannot be mapped")
        self.model = load_pose_model(self.card, device)
        self.provider = self.model.model.provider
        self._boxes: list[np.ndarray | None] = []

    def reset(self) -> None:
        """Forget the previous frame's boxes (a new take, a seek)."""
        self._boxes = []

    def _rtmpose_boxes(self, frames: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        if len(self._boxes) != len(frames):
            self._boxes = [None] * len(frames)
        boxes = []
        for frame, box in zip(frames, self._boxes):
            if frame is None:
                continue
            height, width = frame.shape[:2]
            boxes.append(np.array([[0.0, 0.0, width - 1.0, height - 1.0]]) if box is None else box[None])
        return boxes

    def _remember_boxes(self, keypoints: np.ndarray, confidence: np.ndarray, found: np.ndarray) -> None:
        for v in range(len(keypoints)):
            seen = confidence[v] > 0
            if not found[v] or seen.sum() < 3:
                self._boxes[v] = None
                continue
            low, high = np.nanmin(keypoints[v, seen], axis=0), np.nanmax(keypoints[v, seen], axis=0)
            centre, half = (low + high) / 2, (high - low) / 2 * BOX_GROWTH
            self._boxes[v] = np.concatenate([centre - half, centre + half])

    def __call__(self, frames: Sequence[np.ndarray | None], rig: Rig | None) -> FrameKeypoints:
        start = time.perf_counter()
        is_rtmpose = self.card.family == "rtmpose"
        present = [v for v, frame in enumerate(frames) if frame is not None]
        if not present:
            raise CrossviewError("detect needs at least one frame")
        images = [frames[v] for v in present]
        people = self.model(images, self._rtmpose_boxes(frames)) if is_rtmpose else self.model(images)
        mapped = [self.card.to_h36m17(p.keypoints, p.confidence) for p in people]  # per present view (N, 17, 2), (N, 17)
        C = len(frames)
        pelvis = [np.zeros((0, 2))] * C
        scores = [np.zeros(0)] * C
        for i, v in enumerate(present):
            pelvis[v], scores[v] = mapped[i][0][:, 0], people[i].scores
        chosen = choose_consistent(rig, pelvis, scores)
        keypoints = np.full((C, 17, 2), np.nan)
        confidence = np.zeros((C, 17))
        for i, v in enumerate(present):
            if chosen[v] is not None:
                keypoints[v], confidence[v] = mapped[i][0][chosen[v]], mapped[i][1][chosen[v]]
        found = confidence.mean(axis=1) >= MIN_MEAN_CONFIDENCE
        if is_rtmpose:
            self._remember_boxes(keypoints, confidence, found)
        return FrameKeypoints(keypoints, confidence, found, 1000.0 * (time.perf_counter() - start))


def open_detector(model: str | Path = "blazepose", device: str = "auto"):
    """``"blazepose"`` or the path of a model card (or of an ONNX file with a card beside it)."""
    if str(model) == "blazepose":
        return BlazePoseSource(device)
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        path = path.with_suffix(".yaml")
    if not path.is_file():
        raise CrossviewError(f"{model}: no such model card; pass 'blazepose' or a card .yaml beside its ONNX file")
    return CardModelSource(path, device)
