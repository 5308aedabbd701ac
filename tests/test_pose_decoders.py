"""RTMPose, RTMO and YOLO-pose decoding on tiny ONNX models with the real exports' signatures."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from tiny_onnx import constant_model

from calibration.errors import CrossviewError
from models.model_card import load_model_card
from models.pose_decoders import (
    RTMOModel,
    RTMPoseModel,
    YoloPoseModel,
    _crop_matrix,
    box_to_center_scale,
    load_pose_model,
    nms,
    place_on_canvas,
    simcc_decode,
)

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


def _card(tmp_path, name, family, shape, joint_set="coco17", normalisation=None, channels="RGB"):
    data = {
        "schema_version": 1,
        "family": family,
        "input": {"shape": shape, "layout": "NCHW", "channels": channels, **(normalisation or {"range": [0.0, 1.0]})},
        "keypoints": {"joint_set": joint_set},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_model_card(path)


# ------------------------------------------------------------------------------------------------
def test_simcc_decode_exact():
    x = np.zeros((1, 2, 384))
    y = np.zeros((1, 2, 512))
    x[0, 0, 101], y[0, 0, 300] = 0.9, 0.7
    x[0, 1, 5] = 0.4  # y has no positive peak: missing
    locs, scores = simcc_decode(x, y)
    np.testing.assert_allclose(locs[0, 0], [50.5, 150.0])
    np.testing.assert_allclose(scores[0], [0.7, 0.0])
    assert np.isnan(locs[0, 1]).all()


def test_rtmpose_crop_and_back():
    """A point mapped into the crop and decoded back lands where it started (exact)."""
    box = np.array([100.0, 50.0, 300.0, 550.0])
    center, scale = box_to_center_scale(box, 192 / 256)
    np.testing.assert_allclose(center, [200, 300])
    np.testing.assert_allclose(scale, [625 * 0.75, 625])  # the taller side decides
    matrix = _crop_matrix(center, scale, 192, 256)
    point = np.array([180.0, 420.0])
    inside = matrix[:, :2] @ point + matrix[:, 2]
    back = inside / [192, 256] * scale + center - scale / 2
    np.testing.assert_allclose(back, point, atol=1e-9)


def test_rtmpose_batched_decoding(tmp_path):
    """Every box of every view in one call; keypoints exact; the score shows the normalisation."""
    card = _card(tmp_path, "rtm", "rtmpose", ["batch", 3, 256, 192], normalisation={"mean": MEAN, "std": STD})
    x = np.full((1, 17, 384), -1.0, np.float32)
    y = np.full((1, 17, 512), -1.0, np.float32)
    bins_x = np.arange(17) * 20 + 10
    bins_y = np.arange(17) * 28 + 20
    x[0, np.arange(17), bins_x] = 0.5
    y[0, np.arange(17), bins_y] = 0.6
    constant_model(tmp_path / "rtm.onnx", "input", (None, 3, 256, 192), {"simcc_x": x, "simcc_y": y}, gain=0.1)
    model = RTMPoseModel(card, device="cpu")
    bgr = (30, 140, 220)
    images = [np.full((480, 640, 3), bgr, np.uint8), np.full((720, 1280, 3), bgr, np.uint8), np.zeros((10, 10, 3), np.uint8)]
    boxes = [np.array([[100, 50, 300, 450], [400, 100, 500, 300]]), np.array([[0, 0, 640, 360]]), np.zeros((0, 4))]
    out = model(images, boxes)
    assert [len(o) for o in out] == [2, 1, 0]
    rgb_norm = (np.array(bgr[::-1]) - MEAN) / STD
    expected_score = 0.5 + 0.1 * rgb_norm.mean()  # min(0.5, 0.6) + gain * mean of the input
    locs = np.stack([bins_x / 2.0, bins_y / 2.0], axis=1)
    for view, view_boxes in zip(out[:2], boxes[:2]):
        for n, box in enumerate(view_boxes):
            center, scale = box_to_center_scale(box.astype(float), 0.75)
            np.testing.assert_allclose(view.keypoints[n], locs / [192, 256] * scale + center - scale / 2, atol=1e-9)
            # the crop is a uniform colour, so its mean is exact away from the (replicated-zero) border
        assert view.confidence.shape == (len(view_boxes), 17)
    assert out[0].confidence[0, 0] == pytest.approx(expected_score, abs=0.02)
    assert out[2].keypoints.shape == (0, 17, 2)


# ------------------------------------------------------------------------------------------------
def test_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = np.array([0.8, 0.9, 0.7, 0.1])
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [1, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.99), [1, 0, 2])


def test_rtmo_decoding(tmp_path):
    """Threshold, NMS and the top-left placement removed: boxes and keypoints exact."""
    card = _card(tmp_path, "rtmo", "rtmo", ["batch", 3, 640, 640], normalisation={"range": [0, 255]}, channels="BGR")
    dets = np.zeros((1, 4, 5), np.float32)
    dets[0, :, :4] = [[100, 100, 200, 300], [105, 100, 205, 300], [400, 50, 500, 250], [10, 10, 50, 50]]
    dets[0, :, 4] = [0.9, 0.8, 0.75, 0.5]
    rng = np.random.default_rng(3)
    kpts = np.concatenate([rng.uniform(0, 640, (1, 4, 17, 2)), rng.uniform(0, 1, (1, 4, 17, 1))], -1).astype(np.float32)
    constant_model(tmp_path / "rtmo.onnx", "input", (None, 3, 640, 640), {"dets": dets, "keypoints": kpts})
    model = RTMOModel(card, device="cpu")
    out = model([np.zeros((960, 1280, 3), np.uint8), np.zeros((640, 320, 3), np.uint8)])
    first = out[0]  # ratio 0.5, top-left
    np.testing.assert_allclose(first.scores, [0.9, 0.75], rtol=1e-6)
    np.testing.assert_allclose(first.boxes, dets[0, [0, 2], :4] / 0.5, rtol=1e-6)
    np.testing.assert_allclose(first.keypoints, kpts[0, [0, 2], :, :2] / 0.5, rtol=1e-6)
    np.testing.assert_allclose(first.confidence, kpts[0, [0, 2], :, 2], rtol=1e-6)
    np.testing.assert_allclose(out[1].boxes, dets[0, [0, 2], :4] / 1.0, rtol=1e-6)  # 640 px tall: ratio 1


def test_yolo_pose_decoding(tmp_path):
    """(B, 56, 8400): centre boxes, NMS, the centred letterbox removed; keypoints exact."""
    card = _card(tmp_path, "yolo", "yolo-pose", ["batch", 3, 640, 640])
    raw = np.zeros((1, 56, 8400), np.float32)
    rng = np.random.default_rng(4)
    for anchor, (box, score) in {10: ((320, 300, 100, 200), 0.9), 11: ((322, 300, 100, 200), 0.85),
                                 500: ((100, 100, 50, 80), 0.6), 900: ((500, 500, 40, 40), 0.2)}.items():
        raw[0, :4, anchor] = box
        raw[0, 4, anchor] = score
        raw[0, 5:, anchor] = np.stack([rng.uniform(0, 640, 17), rng.uniform(0, 640, 17), rng.uniform(0, 1, 17)], 1).ravel()
    constant_model(tmp_path / "yolo.onnx", "images", (None, 3, 640, 640), {"output0": raw})
    model = YoloPoseModel(card, device="cpu")
    (result,) = model([np.zeros((1280, 960, 3), np.uint8)])  # ratio 0.5, 480 wide: 80 px left
    np.testing.assert_allclose(result.scores, [0.9, 0.6], rtol=1e-6)
    cx, cy, w, h = raw[0, :4, 10]
    np.testing.assert_allclose(result.boxes[0], (np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) - [80, 0, 80, 0]) / 0.5)
    kp = raw[0, 5:, 500].reshape(17, 3)
    np.testing.assert_allclose(result.keypoints[1], (kp[:, :2] - [80, 0]) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(result.confidence[1], kp[:, 2], rtol=1e-6)


def test_placement_and_dispatch(tmp_path):
    canvas, placement = place_on_canvas(np.full((100, 200, 3), 255, np.uint8), 640, 640, centered=True)
    assert (placement.ratio, placement.left, placement.top) == (3.2, 0, 160)
    assert canvas[0, 0, 0] == 114 and canvas[320, 320, 0] == 255
    np.testing.assert_allclose(placement.to_image(np.array([320.0, 320.0])), [100, 50])
    card = _card(tmp_path, "yolo", "yolo-pose", ["batch", 3, 640, 640])
    constant_model(tmp_path / "yolo.onnx", "images", (1, 3, 640, 640), {"output0": np.zeros((1, 56, 8400), np.float32)})
    model = load_pose_model(card, "cpu")
    assert isinstance(model, YoloPoseModel) and model.model.fixed_batch == 1
    assert [len(r) for r in model([np.zeros((64, 64, 3), np.uint8)] * 2)] == [0, 0]  # fixed batch 1: looped
    wrong = _card(tmp_path, "bp", "blazepose", ["batch", 3, 256, 256])
    with pytest.raises(CrossviewError):
        load_pose_model(wrong, "cpu")
    constant_model(tmp_path / "yolo.onnx", "images", (None, 3, 640, 640), {"output0": np.zeros((1, 57, 8400), np.float32)})
    with pytest.raises(CrossviewError, match=r"yolo\.onnx: expected output"):
        YoloPoseModel(card, "cpu")
