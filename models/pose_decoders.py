"""Decoders for the other pose-model families: RTMPose (SimCC), RTMO and YOLO-pose.

Each family is preprocess -> inference -> postprocess on plain arrays, driven by its model card
(:mod:`models.model_card`: input size, layout, channels, normalisation, joint set). Every call
takes all views at once and runs ONE batched inference (every crop of every view for RTMPose;
every view for RTMO and YOLO-pose), falling back to one call per item only for a model exported
with a fixed batch of 1.

Signatures (as the public exports have them; checked when the model loads):

- RTMPose (mmpose/rtmlib export, top-down): input ``(B, 3, H, W)`` (256 x 192 for the body
  models); outputs ``simcc_x (B, K, 2W)`` and ``simcc_y (B, K, 2H)``. A person box is enlarged
  1.25 times, widened or heightened to the input's aspect ratio and warped to the input; each
  keypoint is the argmax of its x and y vectors divided by the split ratio 2.0, its score the
  smaller of the two maxima (rtmlib and mmpose), clipped to [0, 1] here.
- RTMO (one stage): input ``(B, 3, 640, 640)``, the image scaled to fit and placed top-left on
  grey (114); outputs ``dets (B, N, 5)`` (x1, y1, x2, y2, score in input px) and
  ``keypoints (B, N, K, 3)`` (x, y, score). Scores below ``min_score`` dropped, then NMS.
- YOLO-pose (ultralytics export): input ``(B, 3, 640, 640)`` RGB in [0, 1], the image scaled to
  fit and centred on grey (114); output ``(B, 4 + 1 + 3K, A)`` = box centre x, y, width, height,
  person score, then K x (x, y, visibility) per anchor A (8400 at 640 px; scores already
  sigmoid). Scores below ``min_score`` dropped, then NMS.

Outputs: :class:`PoseDetections` per view, keypoints in image px in the card's joint set (map to
H36M-17 with :meth:`models.model_card.ModelCard.to_h36m17`). Coordinates follow each family's
own pixel convention (mmpose and ultralytics map ``input = image * scale + offset`` without
half-pixel terms).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from calibration.errors import CrossviewError, check_shape
from models.model_card import ModelCard
from models.onnx_session import OnnxModel, TensorSpec, create_session

logger = logging.getLogger(__name__)

PAD_VALUE = 114
SIMCC_SPLIT_RATIO = 2.0
BOX_PADDING = 1.25


@dataclass(frozen=True, slots=True, eq=False)
class PoseDetections:
    """People found in one image.

    Attributes:
        boxes: ``(N, 4)`` x1, y1, x2, y2 image px (the input boxes for RTMPose).
        scores: ``(N,)`` person scores (1 for RTMPose, which is given the boxes).
        keypoints: ``(N, K, 2)`` float64 image px; NaN where the model gives nothing.
        confidence: ``(N, K)`` in [0, 1]; 0 where missing.
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray
    confidence: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.scores)
        check_shape("boxes", self.boxes, f"({n}, 4)", self.boxes.shape == (n, 4))
        check_shape("keypoints", self.keypoints, f"({n}, K, 2)", self.keypoints.ndim == 3 and len(self.keypoints) == n)
        check_shape("confidence", self.confidence, f"({n}, K)", self.confidence.shape == self.keypoints.shape[:2])

    def __len__(self) -> int:
        return len(self.scores)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` x1, y1, x2, y2.
        scores: ``(N,)``.

    Returns:
        ``(M,)`` int indices of the kept boxes, best first.
    """
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep = []
    while order.size:
        top, rest = order[0], order[1:]
        keep.append(top)
        ix = np.clip(np.minimum(boxes[top, 2], boxes[rest, 2]) - np.maximum(boxes[top, 0], boxes[rest, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[top, 3], boxes[rest, 3]) - np.maximum(boxes[top, 1], boxes[rest, 1]), 0, None)
        inter = ix * iy
        union = areas[top] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _check_image(image: np.ndarray, where: str) -> None:
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3):
        raise CrossviewError(f"{where}: expected an (H, W, 3) BGR image, got {getattr(image, 'shape', None)}")


def _session(card: ModelCard, device: str, outputs: Sequence[TensorSpec]) -> OnnxModel:
    if None in (card.input_width, card.input_height):
        raise CrossviewError(f"{card.path}: key 'input.shape': the image size must be fixed, got {list(card.input_shape)}")
    return create_session(card.onnx_path, device, inputs=[card.input_spec()], outputs=outputs)


def _card_outputs(card: ModelCard, shapes: Sequence[tuple]) -> list[TensorSpec]:
    """Expected outputs: the card's names when it lists exactly these outputs, else by shape."""
    if len(card.outputs) == len(shapes):
        return [TensorSpec(name, shape) for (name, _), shape in zip(card.outputs, shapes)]
    return [TensorSpec(None, shape) for shape in shapes]


# ------------------------------------------------------------------------------------------------
# RTMPose
def box_to_center_scale(box: np.ndarray, aspect: float, padding: float = BOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """``box (4,)`` x1, y1, x2, y2 px -> centre ``(2,)`` px and size ``(2,)`` px (width, height),
    enlarged by ``padding`` and to the aspect ratio ``aspect`` = input width / height."""
    center = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], dtype=np.float64)
    width, height = (box[2] - box[0]) * padding, (box[3] - box[1]) * padding
    if width > height * aspect:
        height = width / aspect
    else:
        width = height * aspect
    return center, np.array([width, height], dtype=np.float64)


def _crop_matrix(center: np.ndarray, scale: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(2, 3)`` affine image px -> input px: centre to (W/2, H/2), scale W / scale_w."""
    s = width / scale[0]
    return np.array([[s, 0, width / 2 - s * center[0]], [0, s, height / 2 - s * center[1]]])


def simcc_decode(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = SIMCC_SPLIT_RATIO) -> tuple[np.ndarray, np.ndarray]:
    """SimCC vectors -> input-pixel locations and scores.

    Args:
        simcc_x: ``(N, K, Wx)``; simcc_y: ``(N, K, Wy)``.

    Returns:
        ``(N, K, 2)`` input px (argmax / split_ratio; NaN where the score <= 0) and ``(N, K)``
        scores ``min(max x, max y)``.
    """
    check_shape("simcc_x", simcc_x, "(N, K, Wx)", simcc_x.ndim == 3)
    check_shape("simcc_y", simcc_y, f"{simcc_x.shape[:2]} + (Wy,)", simcc_y.ndim == 3 and simcc_y.shape[:2] == simcc_x.shape[:2])
    locs = np.stack([simcc_x.argmax(axis=-1), simcc_y.argmax(axis=-1)], axis=-1).astype(np.float64) / split_ratio
    scores = np.minimum(simcc_x.max(axis=-1), simcc_y.max(axis=-1)).astype(np.float64)
    locs[scores <= 0] = np.nan
    return locs, scores


class RTMPoseModel:
    """A top-down RTMPose model: person boxes in, keypoints out.

    Args:
        card: the model card (family ``rtmpose``).
        device: see :func:`models.onnx_session.create_session`.
    """

    def __init__(self, card: ModelCard, device: str = "auto") -> None:
        if card.family != "rtmpose" or card.num_keypoints is None:
            raise CrossviewError(f"{card.path}: RTMPoseModel needs a family 'rtmpose' card with keypoints.joint_set")
        self.card = card
        k, w, h = card.num_keypoints, card.input_width, card.input_height
        outputs = _card_outputs(card, [(None, k, int(w * SIMCC_SPLIT_RATIO)), (None, k, int(h * SIMCC_SPLIT_RATIO))])
        self.model = _session(card, device, outputs)

    def preprocess(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``image (H, W, 3)`` BGR, ``boxes (N, 4)`` px -> crops ``(N, H_in, W_in, 3)`` BGR,
        centres ``(N, 2)`` px, scales ``(N, 2)`` px."""
        w, h = self.card.input_width, self.card.input_height
        crops, centers, scales = [], [], []
        for box in boxes:
            center, scale = box_to_center_scale(box, w / h)
            matrix = _crop_matrix(center, scale, w, h)
            crops.append(cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR))
            centers.append(center)
            scales.append(scale)
        return np.array(crops).reshape(-1, h, w, 3), np.array(centers).reshape(-1, 2), np.array(scales).reshape(-1, 2)

    def postprocess(self, simcc_x, simcc_y, centers, scales) -> tuple[np.ndarray, np.ndarray]:
        """SimCC outputs of N crops -> keypoints ``(N, K, 2)`` image px and confidence ``(N, K)``."""
        locs, scores = simcc_decode(simcc_x, simcc_y)  # (N, K, 2) input px
        size = np.array([self.card.input_width, self.card.input_height], dtype=np.float64)
        keypoints = locs / size * scales[:, None, :] + centers[:, None, :] - scales[:, None, :] / 2
        confidence = np.where(np.isnan(keypoints).any(-1), 0.0, np.clip(scores, 0.0, 1.0))
        return keypoints, confidence

    def __call__(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[PoseDetections]:
        """Keypoints for every box of every view, in one batched inference.

        Args:
            images: C images ``(H, W, 3)`` uint8 BGR.
            boxes: per image ``(N_c, 4)`` person boxes x1, y1, x2, y2 px (N_c may be 0).
        """
        if len(images) != len(boxes):
            raise CrossviewError(f"{len(images)} images but {len(boxes)} box lists")
        parts = []
        for c, (image, view_boxes) in enumerate(zip(images, boxes)):
            _check_image(image, f"view {c}")
            view_boxes = np.asarray(view_boxes, dtype=np.float64).reshape(-1, 4)
            parts.append((view_boxes, *self.preprocess(image, view_boxes)))
        crops = np.concatenate([p[1] for p in parts])
        k = self.card.num_keypoints
        if len(crops):
            simcc_x, simcc_y = self.model.run_batched(self.card.normalize(crops))
            keypoints, confidence = self.postprocess(
                simcc_x, simcc_y, np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts])
            )
        else:
            keypoints, confidence = np.zeros((0, k, 2)), np.zeros((0, k))
        results, start = [], 0
        for view_boxes, *_ in parts:
            n = len(view_boxes)
            results.append(PoseDetections(view_boxes, np.ones(n), keypoints[start:start + n], confidence[start:start + n]))
            start += n
        return results


# ------------------------------------------------------------------------------------------------
# One-stage models: RTMO and YOLO-pose
@dataclass(frozen=True, slots=True)
class Placement:
    """An image scaled by ``ratio`` and pasted at ``(left, top)`` on a grey square input:
    ``input = image * ratio + (left, top)``."""

    ratio: float
    left: int
    top: int

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """``(..., 2)`` input px -> image px."""
        return (np.asarray(points, dtype=np.float64) - [self.left, self.top]) / self.ratio


def place_on_canvas(image: np.ndarray, width: int, height: int, *, centered: bool) -> tuple[np.ndarray, Placement]:
    """Scale ``image (H, W, 3)`` to fit ``width`` x ``height`` keeping its aspect ratio and paste it
    on grey (114): top-left (RTMO) or centred (YOLO). Returns the canvas and the placement."""
    ratio = min(width / image.shape[1], height / image.shape[0])
    new_w, new_h = max(1, round(image.shape[1] * ratio)), max(1, round(image.shape[0] * ratio))
    left, top = ((width - new_w) // 2, (height - new_h) // 2) if centered else (0, 0)
    canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
    canvas[top:top + new_h, left:left + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return canvas, Placement(ratio, left, top)


class _OneStageModel:
    family = ""

    def __init__(self, card: ModelCard, device: str, outputs: Sequence[tuple], min_score: float, iou_threshold: float) -> None:
        if card.family != self.family or card.num_keypoints is None:
            raise CrossviewError(f"{card.path}: {type(self).__name__} needs a family {self.family!r} card with keypoints.joint_set")
        self.card = card
        self.min_score = float(min_score)
        self.iou_threshold = float(iou_threshold)
        self.model = _session(card, device, _card_outputs(card, outputs))

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Placement]]:
        """C images -> ``(C, H_in, W_in, 3)`` uint8 BGR canvases and their placements."""
        canvases, placements = [], []
        for c, image in enumerate(images):
            _check_image(image, f"view {c}")
            canvas, placement = place_on_canvas(image, self.card.input_width, self.card.input_height, centered=self.centered)
            canvases.append(canvas)
            placements.append(placement)
        return np.stack(canvases), placements

    def _finish(self, boxes, scores, keypoints, confidence, placement: Placement) -> PoseDetections:
        """Input-px candidates of one image -> thresholded, NMS-filtered detections in image px."""
        keep = np.flatnonzero(scores >= self.min_score)
        keep = keep[nms(boxes[keep], scores[keep], self.iou_threshold)]
        corners = placement.to_image(boxes[keep].reshape(-1, 2, 2)).reshape(-1, 4)
        return PoseDetections(
            corners, scores[keep].astype(np.float64), placement.to_image(keypoints[keep]),
            np.clip(confidence[keep], 0.0, 1.0).astype(np.float64),
        )

    def __call__(self, images: Sequence[np.ndarray]) -> list[PoseDetections]:
        """Every person in every view, one batched inference. ``images``: C ``(H, W, 3)`` uint8 BGR."""
        if len(images) == 0:
            return []
        canvases, placements = self.preprocess(images)
        outputs = self.model.run_batched(self.card.normalize(canvases))
        return [self.postprocess([o[c] for o in outputs], placements[c]) for c in range(len(images))]


class RTMOModel(_OneStageModel):
    """RTMO: one-stage multi-person pose. Defaults as rtmlib: score 0.7, NMS IoU 0.45."""

    family = "rtmo"
    centered = False

    def __init__(self, card: ModelCard, device: str = "auto", *, min_score: float = 0.7, iou_threshold: float = 0.45) -> None:
        k = card.num_keypoints or 0
        super().__init__(card, device, [(None, None, 5), (None, None, k, 3)], min_score, iou_threshold)

    def postprocess(self, outputs: Sequence[np.ndarray], placement: Placement) -> PoseDetections:
        """One image's ``dets (N, 5)`` and ``keypoints (N, K, 3)`` (input px) -> detections."""
        dets, kpts = outputs
        return self._finish(dets[:, :4], dets[:, 4], kpts[..., :2], kpts[..., 2], placement)


class YoloPoseModel(_OneStageModel):
    """YOLO-pose (ultralytics ONNX export). Defaults as ultralytics: score 0.25, NMS IoU 0.7."""

    family = "yolo-pose"
    centered = True

    def __init__(self, card: ModelCard, device: str = "auto", *, min_score: float = 0.25, iou_threshold: float = 0.7) -> None:
        k = card.num_keypoints or 0
        super().__init__(card, device, [(None, 5 + 3 * k, None)], min_score, iou_threshold)

    def postprocess(self, outputs: Sequence[np.ndarray], placement: Placement) -> PoseDetections:
        """One image's ``(5 + 3K, A)`` output (input px) -> detections."""
        (raw,) = outputs
        rows = raw.T.astype(np.float64)  # (A, 5 + 3K)
        cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)  # (A, 4)
        kpts = rows[:, 5:].reshape(len(rows), -1, 3)  # (A, K, 3)
        return self._finish(boxes, rows[:, 4], kpts[..., :2], kpts[..., 2], placement)


def load_pose_model(card: ModelCard, device: str = "auto"):
    """The decoder for ``card``'s family: :class:`RTMPoseModel`, :class:`RTMOModel` or
    :class:`YoloPoseModel` (BlazePose needs two models: use :class:`models.blazepose.BlazePoseDetector`)."""
    families = {"rtmpose": RTMPoseModel, "rtmo": RTMOModel, "yolo-pose": YoloPoseModel}
    if card.family not in families:
        raise CrossviewError(
            f"{card.path}: family {card.family!r} is not a single-model decoder; "
            "BlazePose runs through models.blazepose.BlazePoseDetector"
        )
    return families[card.family](card, device)
