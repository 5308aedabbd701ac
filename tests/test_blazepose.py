"""BlazePoseDetector end to end on tiny ONNX models with the real models' signatures, and the
multi-view helpers (seeding ROIs from 3D, choosing the subject across views)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tiny_onnx import constant_model

from calibration.camera import look_at
from calibration.errors import CrossviewError
from calibration.rig import Rig
from models.blazepose import BlazePoseDetector
from models.blazepose_geometry import Detections, Letterbox, Roi, ssd_anchors
from models.blazepose_multiview import choose_subject, seed_rois_from_3d

ANCHOR = 700  # a stride-8 anchor
RAW_BOX = np.array([4, 8, 60, 60, 6, 10, 6, -50, 0, -20, 0, -30], np.float32)


def _detector(tmp_path, gain=0.0):
    boxes = np.zeros((1, 2254, 12), np.float32)
    scores = np.full((1, 2254, 1), -30.0, np.float32)
    boxes[0, ANCHOR] = RAW_BOX
    scores[0, ANCHOR] = 5.0
    # Outputs in the opposite order to the real model: they are found by shape.
    return constant_model(tmp_path / "det.onnx", "input_1", (None, 224, 224, 3), {"scores": scores, "boxes": boxes}, gain=gain)


def _landmark_raw(seed=0):
    rng = np.random.default_rng(seed)
    raw = np.zeros((39, 5), np.float32)
    raw[:, :2] = rng.uniform(30, 226, size=(39, 2))
    raw[33, :2] = (128, 140)  # hip centre near the crop centre
    raw[34, :2] = (128, 60)   # scale point above it
    raw[:, 2] = rng.normal(0, 10, 39)
    raw[:, 3:] = rng.normal(0, 2, size=(39, 2))
    return raw


def _landmarker(tmp_path, flag_gain=0.8, seed=0):
    outputs = {
        "landmarks": _landmark_raw(seed).reshape(1, 195),
        "pose_flag": np.zeros((1, 1), np.float32),  # + gain * mean(crop): white crop -> gain
        "segmentation": np.zeros((1, 256, 256, 1), np.float32),
        "heatmaps": np.full((1, 64, 64, 39), -20.0, np.float32),
        "world_landmarks": np.zeros((1, 117), np.float32),
    }
    return constant_model(tmp_path / "lm.onnx", "input_1", (None, 256, 256, 3), outputs, gain=flag_gain)


def _mediapipe_projection(raw_xy, roi, width, height):
    """MediaPipe's LandmarkProjection in normalised units (independent of the module's affine)."""
    xn, yn = raw_xy[:, 0] / 256 - 0.5, raw_xy[:, 1] / 256 - 0.5
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    x = (c * xn - s * yn) * roi.size / width + (roi.center_x + 0.5) / width
    y = (s * xn + c * yn) * roi.size / height + (roi.center_y + 0.5) / height
    return np.stack([x * width - 0.5, y * height - 0.5], axis=1)


def _expected_detection_roi(width, height):
    lb = Letterbox.fit(width, height)
    anchor = ssd_anchors()[ANCHOR]
    kp = RAW_BOX[4:8].reshape(2, 2) / 224 + anchor[:2]
    kp0, kp1 = lb.to_image(kp)
    size = 2 * math.hypot(*(kp1 - kp0)) * 1.25
    rotation = math.pi / 2 - math.atan2(-(kp1[1] - kp0[1]), kp1[0] - kp0[0])
    rotation = (rotation + math.pi) % (2 * math.pi) - math.pi
    return Roi(kp0[0], kp0[1], size, rotation)


def _assert_roi(actual, expected):
    np.testing.assert_allclose(
        [actual.center_x, actual.center_y, actual.size, actual.rotation],
        [expected.center_x, expected.center_y, expected.size, expected.rotation], atol=1e-6,
    )


def test_detect_track_and_lose(tmp_path):
    """Detect -> landmarks mapped back exactly; next frame tracks from landmarks 33/34; a dark
    crop (pose flag 0) loses the view, which then detects again."""
    detector = BlazePoseDetector(_detector(tmp_path), _landmarker(tmp_path), device="cpu")
    assert detector.provider == "CPUExecutionProvider" and not detector.gpu_fallback
    sizes = [(448, 336), (640, 480), (360, 640)]
    white = [np.full((h, w, 3), 255, np.uint8) for w, h in sizes]
    raw = _landmark_raw() + 0.8  # every output carries + gain * mean(crop), 1 for a white crop
    conf = 1 / (1 + np.exp(-raw[:, 3])) / (1 + np.exp(-raw[:, 4]))

    first = detector.detect(white)
    assert first.status == ("detected",) * 3
    for v, (w, h) in enumerate(sizes):
        roi = _expected_detection_roi(w, h)
        _assert_roi(first.rois[v], roi)
        expected = _mediapipe_projection(raw[:, :2].astype(np.float64), roi, w, h)
        np.testing.assert_allclose(first.keypoints[v], expected[:33], atol=1e-3)
        np.testing.assert_allclose(first.confidence[v], conf[:33], atol=1e-6)
    np.testing.assert_allclose(first.pose_flag, 0.8, atol=1e-6)
    assert set(first.timings_ms) >= {"detector", "landmarks", "total"}

    second = detector.detect(white)
    assert second.status == ("tracked",) * 3
    for v, (w, h) in enumerate(sizes):
        previous = _mediapipe_projection(raw[:, :2].astype(np.float64), first.rois[v], w, h)
        hip, scale_point = previous[33], previous[34]
        size = 2 * np.hypot(*(scale_point - hip)) * 1.25
        rotation = math.pi / 2 - math.atan2(-(scale_point[1] - hip[1]), scale_point[0] - hip[0])
        _assert_roi(second.rois[v], Roi(hip[0], hip[1], size, (rotation + math.pi) % (2 * math.pi) - math.pi))

    mixed = [white[0], np.zeros_like(white[1]), white[2]]
    third = detector.detect(mixed)
    assert third.status == ("tracked", "lost", "tracked")
    assert np.isnan(third.keypoints[1]).all() and (third.confidence[1] == 0).all()
    assert third.pose_flag[1] == pytest.approx(0.0)
    fourth = detector.detect(white)
    assert fourth.status == ("tracked", "detected", "tracked")
    h36m, h36m_conf = fourth.to_h36m17()
    assert h36m.shape == (3, 17, 2) and h36m_conf.shape == (3, 17)

    detector.reset()
    assert detector.detect(white).status == ("detected",) * 3


def test_no_person_and_bad_frames(tmp_path):
    """No detection above 0.5 -> lost with NaN keypoints; wrong frames -> clear errors."""
    # Detector score logit 5 + gain * mean(input): a white frame (mean 1 inside, -1 in the
    # letterbox) stays detected, a black one (-1 everywhere) drops to 5 - 6 = -1.
    detector = BlazePoseDetector(_detector(tmp_path, gain=6.0), _landmarker(tmp_path), device="cpu")
    result = detector.detect([np.zeros((224, 224, 3), np.uint8)])
    assert result.status == ("lost",) and np.isnan(result.keypoints).all()
    assert result.rois == (None,) and np.isnan(result.pose_flag).all()
    with pytest.raises(CrossviewError, match="uint8"):
        detector.detect([np.zeros((224, 224), np.uint8)])
    with pytest.raises(CrossviewError, match="at least one"):
        detector.detect([])
    rig = _rig()
    with pytest.raises(CrossviewError, match="2 frames for a rig of 3"):
        detector.detect([np.zeros((480, 640, 3), np.uint8)] * 2, rig=rig)
    with pytest.raises(CrossviewError, match="cam0"):
        detector.detect([np.zeros((100, 100, 3), np.uint8)] * 3, rig=rig)


def test_wrong_model_is_named(tmp_path):
    lm = _landmarker(tmp_path)
    with pytest.raises(CrossviewError, match=r"lm\.onnx.*expected input"):
        BlazePoseDetector(lm, lm, device="cpu")


# ------------------------------------------------------------------------------------------------
def _rig():
    cams = []
    for i, angle in enumerate((0.0, 2.1, 4.2)):
        position = (3500 * math.cos(angle), 3500 * math.sin(angle), 1200.0)
        cams.append(look_at(f"cam{i}", position, (0, 0, 900), width=640, height=480, focal_px=500))
    return Rig(tuple(cams))


def _standing_h36m(offset=(0.0, 0.0)):
    ox, oy = offset
    z = {"pelvis": 950, "hip": 950, "knee": 520, "ankle": 90, "spine": 1200, "thorax": 1420, "neck": 1550,
         "head": 1720, "shoulder": 1420, "elbow": 1150, "wrist": 900}
    joints = [
        (0, 0, z["pelvis"]), (0, -110, z["hip"]), (0, -110, z["knee"]), (0, -110, z["ankle"]),
        (0, 110, z["hip"]), (0, 110, z["knee"]), (0, 110, z["ankle"]), (0, 0, z["spine"]),
        (0, 0, z["thorax"]), (0, 0, z["neck"]), (0, 0, z["head"]), (0, 180, z["shoulder"]),
        (0, 200, z["elbow"]), (0, 210, z["wrist"]), (0, -180, z["shoulder"]), (0, -200, z["elbow"]),
        (0, -210, z["wrist"]),
    ]
    return np.array(joints, float) + [ox, oy, 0]


def test_seed_rois_from_3d():
    """Seeded ROIs: centred on the projected pelvis, upright, holding every projected joint."""
    rig = _rig()
    pose = _standing_h36m()
    rois = seed_rois_from_3d(rig, pose)
    projected = rig.project(pose)  # (3, 17, 2)
    for roi, pixels in zip(rois, projected):
        assert roi is not None
        np.testing.assert_allclose([roi.center_x, roi.center_y], pixels[0], atol=1e-9)
        assert abs(roi.rotation) < 0.05  # cameras level with an upright person
        reach = np.abs(pixels - pixels[0]).max()
        assert reach < roi.size / 2 < 2.0 * reach
    # A person far outside camera 0's view gets no ROI there.
    behind = seed_rois_from_3d(rig, _standing_h36m(offset=(9000.0, 0.0)))
    assert behind[0] is None
    # 33-landmark poses work too (hips 23/24, shoulders 11/12).
    pose33 = np.zeros((33, 3))
    pose33[:] = pose[0]
    pose33[[23, 24]] = pose[[4, 1]]
    pose33[[11, 12]] = pose[[11, 14]]
    pose33[0] = pose[10]
    pose33[[27, 28]] = pose[[6, 3]]
    assert all(r is not None for r in seed_rois_from_3d(rig, pose33))
    with pytest.raises(CrossviewError):
        seed_rois_from_3d(rig, np.zeros((5, 3)))


def test_choose_subject_across_views():
    """A bystander scored higher in one view loses to the detection consistent across views."""
    rig = _rig()
    subject = np.array([0.0, 0.0, 950.0])
    bystander = np.array([-1200.0, 1500.0, 950.0])
    pixels = rig.project(np.stack([subject, bystander]))  # (3, 2, 2)

    def dets(order):
        kp = np.full((len(order), 4, 2), np.nan)
        kp[:, 0] = pixels_v[order]
        return Detections(np.linspace(0.9, 0.6, len(order)), np.zeros((len(order), 4)), kp)

    views = []
    for v, order in enumerate(([1, 0], [0, 1], [0])):
        pixels_v = pixels[v]
        views.append(dets(order))
    assert choose_subject(rig, views) == [1, 0, 0]
    assert choose_subject(None, views) == [0, 0, 0]
    empty = Detections(np.zeros(0), np.zeros((0, 4)), np.zeros((0, 4, 2)))
    assert choose_subject(rig, [views[0], empty, views[2]]) == [1, None, 0]


def test_from_folder(tmp_path):
    with pytest.raises(CrossviewError, match="pose_detection.onnx or pose_landmark_full.onnx.*crossview models fetch"):
        BlazePoseDetector.from_folder(tmp_path, device="cpu")
    _detector(tmp_path).rename(tmp_path / "pose_detection.onnx")
    _landmarker(tmp_path).rename(tmp_path / "pose_landmark_full.onnx")
    detector = BlazePoseDetector.from_folder(tmp_path, device="cpu", min_pose_flag=0.9)
    assert detector.min_pose_flag == 0.9
    assert detector.detect([np.full((224, 224, 3), 255, np.uint8)]).status == ("lost",)  # flag 0.8 < 0.9
