"""Keypoint sources for ``crossview process --videos``: the subject the views agree on, and
ONNX models dropped in with a model card."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from app.cli import main
from app.detection import choose_consistent
from calibration import Rig, look_at, save_rig
from models.keypoint_io import load_poses2d
from tiny_onnx import constant_model


def _rig() -> Rig:
    return Rig(tuple(
        look_at(f"cam{i}", (3500 * np.cos(a), 3500 * np.sin(a), 1500), (0, 0, 900), width=640, height=480, focal_px=500)
        for i, a in enumerate((0.0, 1.9, 4.0))
    ))


def test_the_subject_is_the_person_the_views_agree_on() -> None:
    """Each view sees the subject and a bystander who stands somewhere else in every view (people
    in the background of one view are not the ones in another's): the subject's pelvis is chosen in
    every view even though the bystanders score higher."""
    rig = _rig()
    rng = np.random.default_rng(0)
    for trial in range(20):
        subject = rng.uniform([-500, -500, 800], [500, 500, 1000])
        pelvis, scores, truth = [], [], []
        for camera in rig:
            bystander = subject + rng.uniform([-2500, -2500, -200], [2500, 2500, 200])
            subject_px, bystander_px = camera.project(np.stack([subject, bystander]))  # (2,) px each
            if rng.random() < 0.5:
                pelvis.append(np.stack([subject_px, bystander_px]))
                scores.append(np.array([0.6, 0.9]))
                truth.append(0)
            else:
                pelvis.append(np.stack([bystander_px, subject_px]))
                scores.append(np.array([0.9, 0.6]))
                truth.append(1)
        assert choose_consistent(rig, pelvis, scores) == truth, trial


def test_two_people_seen_by_every_view_are_told_apart_by_score() -> None:
    rig = _rig()
    a, b = np.array([0.0, 0.0, 900.0]), np.array([1500.0, -800.0, 950.0])
    pelvis = [camera.project(np.stack([a, b])) for camera in rig]
    scores = [np.array([0.5, 0.95])] * 3
    assert choose_consistent(rig, pelvis, scores) == [1, 1, 1]


def test_without_a_rig_the_best_score_wins() -> None:
    assert choose_consistent(None, [np.zeros((2, 2)), np.zeros((0, 2))], [np.array([0.2, 0.7]), np.zeros(0)]) == [1, None]


def test_rtmo_card_model_runs_through_process_videos(tmp_path: Path, capsys) -> None:
    """A model dropped into a folder with its card (here a tiny RTMO-signature ONNX whose output is
    fixed) drives ``crossview process --videos --model CARD``; its COCO keypoints arrive as H36M-17."""
    rig = _rig()
    save_rig(rig, tmp_path / "calibration.yaml")
    videos = tmp_path / "videos"
    videos.mkdir()
    for camera in rig:
        writer = cv2.VideoWriter(str(videos / f"{camera.name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
        for _ in range(3):
            writer.write(np.full((480, 640, 3), 90, np.uint8))
        writer.release()
    rng = np.random.default_rng(1)
    dets = np.array([[[100, 80, 300, 400, 0.9]]], np.float32)
    kpts = np.concatenate([rng.uniform(120, 280, (1, 1, 17, 2)), np.full((1, 1, 17, 1), 0.8)], -1).astype(np.float32)
    (tmp_path / "models").mkdir()
    constant_model(tmp_path / "models" / "rtmo.onnx", "input", (None, 3, 640, 640), {"dets": dets, "keypoints": kpts})
    card = {
        "schema_version": 1,
        "family": "rtmo",
        "input": {"shape": ["batch", 3, 640, 640], "layout": "NCHW", "channels": "BGR", "range": [0, 255]},
        "keypoints": {"joint_set": "coco17"},
    }
    (tmp_path / "models" / "rtmo.yaml").write_text(yaml.safe_dump(card))
    code = main([
        "process", "--videos", str(videos), "--calibration", str(tmp_path / "calibration.yaml"),
        "--out", str(tmp_path / "out"), "--model", str(tmp_path / "models" / "rtmo.yaml"), "--device", "cpu",
    ])
    assert code == 0, capsys.readouterr().err
    poses = load_poses2d(tmp_path / "out" / "poses2d.npz")
    assert poses.joint_set == "h36m17" and poses.keypoints.shape == (3, 3, 17, 2)
    # H36M pelvis = mid-hips of COCO (11, 12); the 640x480 frame sits unscaled at the canvas top-left.
    expected_pelvis = (kpts[0, 0, 11, :2] + kpts[0, 0, 12, :2]) / 2
    np.testing.assert_allclose(poses.keypoints[0, 0, 0], expected_pelvis, atol=1e-3)
    assert "person found in" in capsys.readouterr().out
