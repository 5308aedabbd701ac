"""BlazePose geometry: anchors, box decoding, weighted NMS, letterbox, ROIs and rotated crops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.blazepose_geometry import (
    Detections,
    Letterbox,
    Roi,
    crop_roi,
    crop_to_image,
    crop_to_image_matrix,
    decode_detections,
    refine_from_heatmap,
    roi_from_alignment,
    ssd_anchors,
    weighted_nms,
)


def test_anchor_count_and_positions():
    """Layers with the same stride merge: 28*28*2 + 14*14*2 + 7*7*6 = 2254 anchors, unit size."""
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 4)
    np.testing.assert_allclose(anchors[:, 2:], 1.0)
    # stride 8: two anchors per cell, row-major cells
    np.testing.assert_allclose(anchors[0, :2], [0.5 / 28, 0.5 / 28], atol=1e-7)
    np.testing.assert_allclose(anchors[1, :2], [0.5 / 28, 0.5 / 28], atol=1e-7)
    np.testing.assert_allclose(anchors[2, :2], [1.5 / 28, 0.5 / 28], atol=1e-7)
    np.testing.assert_allclose(anchors[2 * 28, :2], [0.5 / 28, 1.5 / 28], atol=1e-7)
    # stride 16 starts after 1568 anchors
    np.testing.assert_allclose(anchors[1568, :2], [0.5 / 14, 0.5 / 14], atol=1e-7)
    # stride 32: three layers merged, six anchors per cell
    start = 1568 + 392
    np.testing.assert_allclose(anchors[start:start + 6, :2], [[0.5 / 7, 0.5 / 7]] * 6, atol=1e-7)
    np.testing.assert_allclose(anchors[start + 6, :2], [1.5 / 7, 0.5 / 7], atol=1e-7)
    np.testing.assert_allclose(anchors[-1, :2], [6.5 / 7, 6.5 / 7], atol=1e-7)


def _raw_outputs(entries: dict[int, tuple[float, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.zeros((2254, 12), np.float32)
    scores = np.full((2254, 1), -50.0, np.float32)
    for index, (logit, raw) in entries.items():
        scores[index, 0] = logit
        boxes[index] = raw
    return boxes, scores


def test_decode_detections_exact():
    """Centres are anchor + raw / 224, sizes raw / 224, keypoints likewise; sigmoid scores, sorted."""
    anchors = ssd_anchors()
    raw_a = np.array([10, -20, 56, 112, 4, 8, 4, -60, 0, 0, 0, 0], np.float32)
    raw_b = np.array([0, 0, 22.4, 22.4, 0, 0, 0, 0, 0, 0, 0, 0], np.float32)
    boxes, scores = _raw_outputs({700: (2.0, raw_a), 2000: (1000.0, raw_b), 5: (-0.1, raw_b)})
    det = decode_detections(boxes, scores, anchors)
    assert len(det) == 2  # the logit -0.1 gives 0.475 < 0.5
    np.testing.assert_allclose(det.scores, [1 / (1 + math.exp(-100)), 1 / (1 + math.exp(-2))])  # clipped at 100
    ax, ay = anchors[700, :2]
    cx, cy, w, h = ax + 10 / 224, ay - 20 / 224, 56 / 224, 112 / 224
    np.testing.assert_allclose(det.boxes[1], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], atol=1e-7)
    np.testing.assert_allclose(det.keypoints[1, 0], [ax + 4 / 224, ay + 8 / 224], atol=1e-7)
    np.testing.assert_allclose(det.keypoints[1, 1], [ax + 4 / 224, ay - 60 / 224], atol=1e-7)
    np.testing.assert_allclose(det.keypoints[1, 2:], [[ax, ay], [ax, ay]], atol=1e-7)


def test_weighted_nms_merges_overlaps():
    """Overlapping boxes (IoU > 0.3) average by score; the best score is kept; others survive."""
    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9]])
    kp = np.zeros((3, 4, 2))
    kp[:, 0] = [[0.3, 0.3], [0.34, 0.3], [0.7, 0.7]]
    det = Detections(np.array([0.6, 0.9, 0.8]), boxes, kp)
    out = weighted_nms(det, 0.3)
    assert len(out) == 2
    np.testing.assert_allclose(out.scores, [0.9, 0.8])
    np.testing.assert_allclose(out.boxes[0], (0.9 * boxes[1] + 0.6 * boxes[0]) / 1.5)
    np.testing.assert_allclose(out.keypoints[0, 0], [(0.9 * 0.34 + 0.6 * 0.3) / 1.5, 0.3])
    np.testing.assert_allclose(out.boxes[1], boxes[2])
    # Just below the threshold nothing merges.
    far = Detections(np.array([0.9, 0.8]), np.array([[0, 0, 1, 1], [0.8, 0, 1.8, 1]]), np.zeros((2, 4, 2)))
    assert len(weighted_nms(far, 0.3)) == 2


@pytest.mark.parametrize("width,height", [(640, 480), (480, 640), (1920, 1080), (224, 224)])
def test_letterbox_round_trip(width, height):
    """A blob drawn in the image is found at the same image pixel after letterbox and removal.

    Measured: at most 0.02 px (analytic) and 0.3 px (rendered blob centroid, 1920x1080)."""
    lb = Letterbox.fit(width, height)
    assert max(lb.resized_width, lb.resized_height) == 224
    rng = np.random.default_rng(1)
    points = rng.uniform([0, 0], [width - 1, height - 1], size=(20, 2))
    normalized = ((points + 0.5) * [lb.scale_x, lb.scale_y] + [lb.pad_x, lb.pad_y]) / 224
    np.testing.assert_allclose(lb.to_image(normalized), points, atol=1e-9)
    # Rendered: a Gaussian blob 12 px wide in a large image, centroid found in the 224 input.
    yy, xx = np.mgrid[0:height, 0:width]
    centre = np.array([0.37 * width, 0.61 * height])
    sigma = max(width, height) / 40
    image = (255 * np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))).astype(np.uint8)
    boxed = lb.apply(np.repeat(image[..., None], 3, axis=2))[..., 0].astype(np.float64)
    assert boxed[: lb.pad_y].max(initial=0) == 0 and boxed[:, : lb.pad_x].max(initial=0) == 0
    iy, ix = np.mgrid[0:224, 0:224]
    found = np.array([(ix * boxed).sum(), (iy * boxed).sum()]) / boxed.sum()  # OpenCV input px
    back = lb.to_image((found + 0.5) / 224)
    np.testing.assert_allclose(back, centre, atol=0.3 * max(width, height) / 224)


def test_detections_to_image_removes_letterbox():
    lb = Letterbox.fit(448, 336)  # scale 0.5, 28 rows of padding above
    assert (lb.scale_x, lb.pad_x, lb.pad_y) == (0.5, 0, 28)
    det = Detections(np.array([0.9]), np.array([[0.25, 0.25, 0.75, 0.75]]), np.array([[[0.5, 0.5]] * 4]))
    out = lb.detections_to_image(det)
    np.testing.assert_allclose(out.keypoints[0, 0], [(112 - 0) / 0.5 - 0.5, (112 - 28) / 0.5 - 0.5])
    np.testing.assert_allclose(out.boxes[0], [111.5, 55.5, 335.5, 279.5])


def test_roi_from_alignment_rules():
    """Size 2 |kp1 - kp0| x 1.25, rotation 90 deg - atan2(-(dy), dx) wrapped to [-pi, pi)."""
    upright = roi_from_alignment(np.array([100.0, 200.0]), np.array([100.0, 120.0]))
    assert upright.rotation == pytest.approx(0.0) and upright.size == pytest.approx(200.0)
    assert (upright.center_x, upright.center_y) == (100.0, 200.0)
    head_right = roi_from_alignment(np.array([0.0, 0.0]), np.array([10.0, 0.0]))
    assert head_right.rotation == pytest.approx(math.pi / 2)
    head_left = roi_from_alignment(np.array([0.0, 0.0]), np.array([-10.0, 0.0]))
    assert head_left.rotation == pytest.approx(-math.pi / 2)
    upside_down = roi_from_alignment(np.array([0.0, 0.0]), np.array([0.0, 10.0]))
    assert abs(upside_down.rotation) == pytest.approx(math.pi)
    assert roi_from_alignment(np.array([1.0, 1.0]), np.array([1.0, 1.0])) is None
    assert roi_from_alignment(np.array([np.nan, 1.0]), np.array([1.0, 1.0])) is None


@pytest.mark.parametrize("rotation", [0.0, 0.7, -2.3, math.pi / 2])
def test_crop_round_trip(rotation):
    """A blob at a known image pixel, cropped under a rotated ROI, maps back to that pixel.

    Measured: at most 0.05 px for a 4 px blob under a 500 px ROI (k ~ 2)."""
    height, width = 600, 800
    roi = Roi(410.0, 290.0, 500.0, rotation)
    target = np.array([480.3, 231.7])
    yy, xx = np.mgrid[0:height, 0:width]
    image = 255 * np.exp(-((xx - target[0]) ** 2 + (yy - target[1]) ** 2) / (2 * 4.0**2))
    crop = crop_roi(np.repeat(image[..., None], 3, axis=2).astype(np.float32), roi)[..., 0].astype(np.float64)
    iy, ix = np.mgrid[0:256, 0:256]
    found_cv = np.array([(ix * crop).sum(), (iy * crop).sum()]) / crop.sum()
    back = crop_to_image(found_cv + 0.5, roi)  # model coordinates are continuous
    np.testing.assert_allclose(back, target, atol=0.05)
    # The crop centre is the ROI centre; "up" in the crop is (sin r, -cos r) in the image.
    np.testing.assert_allclose(crop_to_image(np.array([128.0, 128.0]), roi), [410.0, 290.0], atol=1e-9)
    up = crop_to_image(np.array([128.0, 0.0]), roi) - [410.0, 290.0]
    np.testing.assert_allclose(up, 250.0 * np.array([math.sin(rotation), -math.cos(rotation)]), atol=1e-9)


def test_crop_matches_mediapipe_projection():
    """crop_to_image agrees with MediaPipe's LandmarkProjection written in normalised units."""
    width, height = 640, 480
    roi = Roi(300.0, 200.0, 180.0, 0.4)
    raw = np.array([[30.0, 200.0], [128.0, 128.0], [250.0, 5.0]])
    xn, yn = raw[:, 0] / 256 - 0.5, raw[:, 1] / 256 - 0.5
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    rect_w, rect_h = roi.size / width, roi.size / height
    cx, cy = (roi.center_x + 0.5) / width, (roi.center_y + 0.5) / height  # continuous, normalised
    x = (c * xn - s * yn) * rect_w + cx
    y = (s * xn + c * yn) * rect_h + cy
    expected = np.stack([x * width - 0.5, y * height - 0.5], axis=1)
    np.testing.assert_allclose(crop_to_image(raw, roi), expected, atol=1e-9)
    assert crop_to_image_matrix(roi).shape == (2, 3)


def test_refine_from_heatmap():
    """Weighted mean of the sigmoid window, index / size as MediaPipe; weak or outside: unchanged."""
    heatmap = np.full((1, 64, 64, 3), -20.0)
    heatmap[0, 20, 30, 0] = 3.0
    heatmap[0, 20, 31, 0] = 1.0
    heatmap[0, 40, 40, 1] = -1.0  # max sigmoid 0.27 < 0.5
    landmarks = np.array([[[30.2 / 64, 20.7 / 64], [40.5 / 64, 40.5 / 64], [1.2, 0.5]]])
    out = refine_from_heatmap(landmarks, heatmap)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    weights = {(20, 30): sig(3.0), (20, 31): sig(1.0)}
    background = sig(-20.0)
    total = sum(weights.values()) + background * (49 - 2)
    col = sum(c * w for (r, c), w in weights.items()) + background * (sum(range(27, 34)) * 7 - 30 - 31)
    row = sum(r * w for (r, c), w in weights.items()) + background * (sum(range(17, 24)) * 7 - 40)
    np.testing.assert_allclose(out[0, 0], [col / total / 64, row / total / 64], atol=1e-9)
    np.testing.assert_allclose(out[0, 1:], landmarks[0, 1:])
