"""BlazePose geometry, as MediaPipe Pose computes it: anchors, box decoding, weighted NMS, the
letterbox, regions of interest (ROIs) and the rotated crops around them.

Pixel convention: image coordinates here are OpenCV's (pixel centres at integers, as in
:meth:`calibration.camera.Camera.project`). The models' own coordinates are MediaPipe's
continuous ones (a 256-px crop spans [0, 256], pixel centres at half-integers); the conversions
below add or remove the half pixel, so a landmark the model puts at the centre of crop pixel
(i, j) lands on the centre of the image pixel the crop sampled there.

Where each rule comes from (MediaPipe's pose graphs, ``mediapipe/modules/pose_detection`` and
``pose_landmark``; re-implemented, not copied):

- anchors: ``SsdAnchorsCalculator`` with the pose-detection options (:data:`POSE_ANCHORS`);
- boxes: ``TensorsToDetectionsCalculator`` (centre/size order x, y, w, h; scale 224; 4 keypoints
  after the box; scores ``sigmoid(clip(raw, -100, 100))``, kept above 0.5);
- NMS: ``NonMaxSuppressionCalculator``, WEIGHTED, IoU threshold 0.3;
- ROI: ``AlignmentPointsRectsCalculator`` (hip centre, scale point, target angle 90 degrees)
  then ``RectTransformationCalculator`` (scale 1.25, square_long);
- crops: ``ImageToTensorCalculator`` (rotated sub-rectangle; bilinear);
- landmarks: ``TensorsToLandmarksCalculator`` + ``LandmarkProjectionCalculator``;
- heatmap refinement: ``RefineLandmarksFromHeatmapCalculator`` (kernel 7, min confidence 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.errors import check_shape

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
NUM_LANDMARKS = 39  # 33 body landmarks + 6 auxiliary (33 hip centre, 34 scale point, ...)
HIP_CENTER, SCALE_POINT = 33, 34
ROI_SCALE = 1.25


@dataclass(frozen=True, slots=True)
class AnchorOptions:
    """SSD anchor generation options (MediaPipe's ``SsdAnchorsCalculatorOptions``)."""

    num_layers: int = 5
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    input_height: int = DETECTOR_SIZE
    input_width: int = DETECTOR_SIZE
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    strides: tuple[int, ...] = (8, 16, 32, 32, 32)
    aspect_ratios: tuple[float, ...] = (1.0,)
    fixed_anchor_size: bool = True
    interpolated_scale_aspect_ratio: float = 1.0

    def __post_init__(self) -> None:
        if len(self.strides) != self.num_layers:
            raise ValueError(f"{len(self.strides)} strides for {self.num_layers} layers")


POSE_ANCHORS = AnchorOptions()


def _layer_scale(options: AnchorOptions, layer: int) -> float:
    if options.num_layers == 1:
        return (options.min_scale + options.max_scale) / 2
    return options.min_scale + (options.max_scale - options.min_scale) * layer / (options.num_layers - 1)


def ssd_anchors(options: AnchorOptions = POSE_ANCHORS) -> np.ndarray:
    """SSD anchors.

    Consecutive layers with the same stride share one feature map, their anchors interleaved per
    cell: for BlazePose 28x28x2 + 14x14x2 + 7x7x6 = 2254 anchors.

    Returns:
        ``(N, 4)`` float32: x centre, y centre, width, height, normalised to the input size.
    """
    anchors = []
    layer = 0
    while layer < options.num_layers:
        scales, ratios = [], []
        last = layer
        while last < options.num_layers and options.strides[last] == options.strides[layer]:
            scale = _layer_scale(options, last)
            for ratio in options.aspect_ratios:
                scales.append(scale)
                ratios.append(ratio)
            if options.interpolated_scale_aspect_ratio > 0:
                following = 1.0 if last == options.num_layers - 1 else _layer_scale(options, last + 1)
                scales.append(math.sqrt(scale * following))
                ratios.append(options.interpolated_scale_aspect_ratio)
            last += 1
        stride = options.strides[layer]
        rows = math.ceil(options.input_height / stride)
        cols = math.ceil(options.input_width / stride)
        for y in range(rows):
            for x in range(cols):
                for scale, ratio in zip(scales, ratios):
                    if options.fixed_anchor_size:
                        width = height = 1.0
                    else:
                        width, height = scale * math.sqrt(ratio), scale / math.sqrt(ratio)
                    anchors.append(
                        ((x + options.anchor_offset_x) / cols, (y + options.anchor_offset_y) / rows, width, height)
                    )
        layer = last
    return np.asarray(anchors, dtype=np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Detections:
    """Person detections of one image.

    Attributes:
        scores: ``(D,)`` in [0, 1], best first.
        boxes: ``(D, 4)`` face box xmin, ymin, xmax, ymax.
        keypoints: ``(D, 4, 2)``: 0 hip centre, 1 full-body scale point, 2 shoulder centre,
            3 upper-body scale point.

    Units: normalised [0, 1] detector-input coordinates from :func:`decode_detections`; image
    pixels after :meth:`Letterbox.detections_to_image`.
    """

    scores: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray

    def __post_init__(self) -> None:
        d = len(self.scores)
        check_shape("boxes", self.boxes, f"({d}, 4)", self.boxes.shape == (d, 4))
        check_shape("keypoints", self.keypoints, f"({d}, K, 2)", self.keypoints.ndim == 3 and len(self.keypoints) == d)

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, index) -> "Detections":
        return Detections(self.scores[index], self.boxes[index], self.keypoints[index])


def decode_detections(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    *,
    input_size: int = DETECTOR_SIZE,
    min_score: float = 0.5,
    score_clip: float = 100.0,
) -> Detections:
    """Decode one image's raw detector output (before NMS).

    Args:
        raw_boxes: ``(N, 12)``: box x centre, y centre, width, height, then 4 keypoints (x, y),
            all in input pixels, centres relative to the anchor centre.
        raw_scores: ``(N,)`` or ``(N, 1)`` logits.
        anchors: ``(N, 4)`` from :func:`ssd_anchors`.

    Returns:
        Detections above ``min_score``, normalised coordinates, sorted by score.
    """
    n = len(anchors)
    check_shape("raw_boxes", raw_boxes, f"({n}, 4 + 2K)", raw_boxes.shape[0] == n and raw_boxes.ndim == 2)
    raw_scores = np.asarray(raw_scores).reshape(-1)
    check_shape("raw_scores", raw_scores, f"({n},)", raw_scores.shape == (n,))
    scores = sigmoid(np.clip(raw_scores, -score_clip, score_clip))
    keep = np.flatnonzero(scores >= min_score)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    raw = raw_boxes[keep].astype(np.float64)  # (D, 12)
    a = anchors[keep].astype(np.float64)  # (D, 4)
    cx = raw[:, 0] / input_size * a[:, 2] + a[:, 0]
    cy = raw[:, 1] / input_size * a[:, 3] + a[:, 1]
    w = raw[:, 2] / input_size * a[:, 2]
    h = raw[:, 3] / input_size * a[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)  # (D, 4)
    kp = raw[:, 4:].reshape(len(keep), (raw_boxes.shape[1] - 4) // 2, 2)  # (D, K, 2)
    kp = kp / input_size * a[:, None, 2:4] + a[:, None, 0:2]
    return Detections(scores[keep], boxes, kp)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of ``box (4,)`` with each of ``boxes (D, 4)`` (xmin, ymin, xmax, ymax)."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(detections: Detections, iou_threshold: float = 0.3) -> Detections:
    """MediaPipe's weighted non-maximum suppression.

    Take the best remaining detection; every remaining detection overlapping it by IoU above
    ``iou_threshold`` (itself included) is merged into it: box and keypoints become the
    score-weighted mean of the group, the score stays the best one's.
    """
    order = np.argsort(-detections.scores, kind="stable")
    remaining = list(order)
    scores, boxes, keypoints = [], [], []
    while remaining:
        top = remaining[0]
        rest = np.array(remaining)
        overlap = _iou(detections.boxes[top], detections.boxes[rest]) > iou_threshold
        overlap[0] = True
        group = rest[overlap]
        weights = detections.scores[group]
        total = weights.sum()
        scores.append(detections.scores[top])
        boxes.append((detections.boxes[group] * weights[:, None]).sum(0) / total)
        keypoints.append((detections.keypoints[group] * weights[:, None, None]).sum(0) / total)
        remaining = list(rest[~overlap])
    k = detections.keypoints.shape[1]
    if not scores:
        return Detections(np.zeros(0), np.zeros((0, 4)), np.zeros((0, k, 2)))
    return Detections(np.array(scores), np.array(boxes), np.array(keypoints))


# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Letterbox:
    """An image resized into a square model input keeping its aspect ratio, zeros around.

    ``input = image * scale + pad`` in continuous coordinates (per axis).

    Attributes:
        image_width, image_height: the source image size, px.
        size: the square input size, px.
        scale_x, scale_y: input px per image px (equal up to rounding of the resized size).
        pad_x, pad_y: the zero border left and above, input px.
    """

    image_width: int
    image_height: int
    size: int
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int

    @classmethod
    def fit(cls, image_width: int, image_height: int, size: int = DETECTOR_SIZE) -> "Letterbox":
        scale = size / max(image_width, image_height)
        resized_width = max(1, min(size, round(image_width * scale)))
        resized_height = max(1, min(size, round(image_height * scale)))
        return cls(
            image_width, image_height, size,
            resized_width / image_width, resized_height / image_height,
            (size - resized_width) // 2, (size - resized_height) // 2,
        )

    @property
    def resized_width(self) -> int:
        return round(self.image_width * self.scale_x)

    @property
    def resized_height(self) -> int:
        return round(self.image_height * self.scale_y)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 image -> ``(size, size, 3)`` uint8 letterboxed (area resampling)."""
        check_shape("image", image, f"({self.image_height}, {self.image_width}, 3)",
                    image.shape[:2] == (self.image_height, self.image_width))
        out = np.zeros((self.size, self.size) + image.shape[2:], dtype=image.dtype)
        resized = cv2.resize(image, (self.resized_width, self.resized_height), interpolation=cv2.INTER_AREA)
        out[self.pad_y:self.pad_y + self.resized_height, self.pad_x:self.pad_x + self.resized_width] = resized
        return out

    def to_image(self, normalized: np.ndarray) -> np.ndarray:
        """``(..., 2)`` normalised input coordinates -> image pixels (OpenCV convention)."""
        continuous = np.asarray(normalized, dtype=np.float64) * self.size  # (..., 2) input px
        x = (continuous[..., 0] - self.pad_x) / self.scale_x - 0.5
        y = (continuous[..., 1] - self.pad_y) / self.scale_y - 0.5
        return np.stack([x, y], axis=-1)

    def detections_to_image(self, detections: Detections) -> Detections:
        """The same detections in image pixels (letterbox removed)."""
        corners = self.to_image(detections.boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        return Detections(detections.scores, corners, self.to_image(detections.keypoints))


# ------------------------------------------------------------------------------------------------
def normalize_radians(angle: float) -> float:
    """``angle`` wrapped to [-pi, pi)."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


@dataclass(frozen=True, slots=True)
class Roi:
    """A square, rotated region of interest around the person.

    Attributes:
        center_x, center_y: centre, image px (OpenCV convention).
        size: side length, image px.
        rotation: radians; the crop's "up" points along ``(sin r, -cos r)`` in the image
            (0: upright; pi/2: the person's head to the image's right).
    """

    center_x: float
    center_y: float
    size: float
    rotation: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.center_x) and math.isfinite(self.center_y) and math.isfinite(self.rotation)):
            raise ValueError(f"ROI with a non-finite centre or rotation: {self}")
        if not (self.size > 0 and math.isfinite(self.size)):
            raise ValueError(f"ROI size must be positive, got {self.size}")

    def inside(self, width: int, height: int) -> bool:
        """Whether the centre lies in a ``width`` x ``height`` image."""
        return -0.5 <= self.center_x < width - 0.5 and -0.5 <= self.center_y < height - 0.5


def roi_from_alignment(
    center: np.ndarray,
    scale_point: np.ndarray,
    *,
    scale: float = ROI_SCALE,
    target_angle: float = math.pi / 2,
) -> Roi | None:
    """The ROI MediaPipe derives from two alignment points.

    Args:
        center: ``(2,)`` hip centre, image px.
        scale_point: ``(2,)`` a point on the circle around the body (its direction from the
            centre is the body's "up"), image px.
        scale: enlargement of the circle's bounding square (MediaPipe 1.25).
        target_angle: the direction "up" should have in the crop, radians.

    Returns:
        ``Roi`` with size ``2 |scale_point - center| * scale`` and rotation
        ``target_angle - atan2(-(y1 - y0), x1 - x0)`` wrapped to [-pi, pi); None when the points
        are not finite or coincide.
    """
    x0, y0 = float(center[0]), float(center[1])
    x1, y1 = float(scale_point[0]), float(scale_point[1])
    radius = math.hypot(x1 - x0, y1 - y0)
    if not (math.isfinite(radius) and radius > 0):
        return None
    rotation = normalize_radians(target_angle - math.atan2(-(y1 - y0), x1 - x0))
    # square_long: the box is already square in pixels, so it only scales.
    return Roi(x0, y0, 2 * radius * scale, rotation)


def crop_to_image_matrix(roi: Roi, crop_size: int = LANDMARK_SIZE) -> np.ndarray:
    """``(2, 3)`` affine taking crop pixels to image pixels (both OpenCV convention).

    ``image = center + k R (crop + 0.5 - crop_size / 2)`` with ``k = size / crop_size`` and
    ``R`` the rotation by ``roi.rotation`` (image y down).
    """
    k = roi.size / crop_size
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    linear = k * np.array([[c, -s], [s, c]])
    offset = np.array([roi.center_x, roi.center_y]) - linear @ np.full(2, crop_size / 2 - 0.5)
    return np.hstack([linear, offset[:, None]])


def crop_roi(image: np.ndarray, roi: Roi, crop_size: int = LANDMARK_SIZE) -> np.ndarray:
    """The rotated square crop of ``image`` (H, W, C) under ``roi``: ``(crop_size, crop_size, C)``,
    same dtype, bilinear, borders replicated (MediaPipe's default for the landmark crop).

    Like MediaPipe it samples the full-resolution image directly, even when the ROI is several
    times larger than the crop. Shrinking the region by area averaging first (no aliasing) was
    tried and did not help: on the Pose2Sim demo (4 views, 40 frames, ROIs 4-5 times the crop)
    the mean reprojection error of the triangulated landmarks went from 15.7 to 16.5 px.
    """
    matrix = crop_to_image_matrix(roi, crop_size)
    return cv2.warpAffine(
        image, matrix, (crop_size, crop_size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )


def crop_to_image(points: np.ndarray, roi: Roi, crop_size: int = LANDMARK_SIZE) -> np.ndarray:
    """``(..., 2)`` model crop coordinates (continuous, [0, crop_size]) -> image px (OpenCV)."""
    matrix = crop_to_image_matrix(roi, crop_size)
    cv_points = np.asarray(points, dtype=np.float64) - 0.5  # continuous -> OpenCV crop pixels
    return cv_points @ matrix[:, :2].T + matrix[:, 2]


def refine_from_heatmap(
    landmarks: np.ndarray,
    heatmap: np.ndarray,
    *,
    kernel_size: int = 7,
    min_confidence: float = 0.5,
) -> np.ndarray:
    """MediaPipe's landmark refinement from the heatmaps.

    Around each landmark's heatmap cell, the ``kernel_size`` window's sigmoid values weight the
    cell indices; the landmark moves to that weighted mean when the window's best value reaches
    ``min_confidence``. As in MediaPipe the new position is ``index / heatmap size`` (the cell's
    corner, not its centre) and cells are found by truncation.

    Args:
        landmarks: ``(B, L, 2)`` normalised crop coordinates [0, 1].
        heatmap: ``(B, Hh, Wh, L)`` logits.

    Returns:
        ``(B, L, 2)`` refined normalised coordinates.
    """
    check_shape("landmarks", landmarks, "(B, L, 2)", landmarks.ndim == 3 and landmarks.shape[-1] == 2)
    b, n = landmarks.shape[:2]
    check_shape("heatmap", heatmap, f"({b}, H, W, {n})", heatmap.ndim == 4 and heatmap.shape[0] == b and heatmap.shape[3] == n)
    hm_h, hm_w = heatmap.shape[1:3]
    with np.errstate(invalid="ignore"):
        col = np.trunc(landmarks[..., 0] * hm_w)  # (B, L)
        row = np.trunc(landmarks[..., 1] * hm_h)
    inside = (col >= 0) & (col < hm_w) & (row >= 0) & (row < hm_h)  # NaN compares False
    col = np.where(inside, col, 0).astype(np.int64)
    row = np.where(inside, row, 0).astype(np.int64)
    offsets = np.arange(kernel_size) - (kernel_size - 1) // 2  # (k,)
    rows = row[..., None, None] + offsets[:, None]  # (B, L, k, 1)
    cols = col[..., None, None] + offsets[None, :]  # (B, L, 1, k)
    valid = (rows >= 0) & (rows < hm_h) & (cols >= 0) & (cols < hm_w)  # (B, L, k, k)
    rc, cc = np.clip(rows, 0, hm_h - 1), np.clip(cols, 0, hm_w - 1)
    bi = np.arange(b)[:, None, None, None]
    li = np.arange(n)[None, :, None, None]
    conf = sigmoid(heatmap[bi, rc, cc, li]) * valid  # (B, L, k, k)
    total = conf.sum(axis=(2, 3))
    best = conf.max(axis=(2, 3))
    safe = np.where(total > 0, total, 1.0)
    new_x = (conf * cc).sum(axis=(2, 3)) / safe / hm_w
    new_y = (conf * rc).sum(axis=(2, 3)) / safe / hm_h
    refine = inside & (best >= min_confidence) & (total > 0)
    out = np.array(landmarks, dtype=np.float64)
    out[..., 0] = np.where(refine, new_x, out[..., 0])
    out[..., 1] = np.where(refine, new_y, out[..., 1])
    return out
