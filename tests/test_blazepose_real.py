"""BlazePose with the real converted models on real images (skips without the models or data).

The models come from ``crossview models fetch`` (:func:`models.model_store.ensure_blazepose_models`);
this test never downloads them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from calibration.rig import Rig  # noqa: E402
from models import model_store  # noqa: E402
from models.blazepose import BlazePoseDetector  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CROSSVIEW_SHARED_DATA", REPO.parent / "shared" / "data"))
MANNEQUIN = REPO.parent / "shared" / "docs" / "img" / "mannequin_detected.png"
DEMO = SHARED / "pose2sim_demo_single"


@pytest.fixture(scope="module")
def detector_paths():
    folder = model_store.model_dir()
    if any(model_store.model_status(spec, folder) != "ready" for spec in model_store.BLAZEPOSE_MODELS):
        pytest.skip(f"BlazePose models not in {folder}: run `crossview models fetch` first")
    return folder / "pose_detection.onnx", folder / "pose_landmark_full.onnx"


def test_mannequin_image(detector_paths):
    """A rendered figure (1280x720): found, confident, anatomically ordered; then tracked.

    Measured: pose flag 0.99997, mean confidence 0.86, tracking ROI on the same image moves the
    landmarks by at most 15 px."""
    if not MANNEQUIN.is_file():
        pytest.skip(f"{MANNEQUIN} not found")
    image = cv2.imread(str(MANNEQUIN))
    detector = BlazePoseDetector(*detector_paths, device="cpu")
    first = detector.detect([image])
    assert first.status == ("detected",) and first.pose_flag[0] > 0.9
    kp = first.keypoints[0]
    assert np.isfinite(kp).all() and first.confidence.mean() > 0.6
    height, width = image.shape[:2]
    assert (kp[:, 0] > 0).all() and (kp[:, 0] < width).all() and (kp[:, 1] > 0).all() and (kp[:, 1] < height).all()
    shoulders_y, hips_y, ankles_y = kp[[11, 12], 1].mean(), kp[[23, 24], 1].mean(), kp[[27, 28], 1].mean()
    assert kp[0, 1] < shoulders_y < hips_y < ankles_y
    second = detector.detect([image])
    assert second.status == ("tracked",)
    assert np.abs(second.keypoints - first.keypoints).max() < 40
    lost = detector.detect([np.zeros_like(image)])
    assert lost.status == ("lost",) and lost.pose_flag[0] < 0.5


def test_pose2sim_demo_four_views(detector_paths):
    """Four real 1080x1920 views with a bystander: the subject is tracked in every view and the
    views agree in 3D; a view that loses the person for a frame is re-seeded from the 3D pose.

    Measured over the first 30 frames: all views tracked after the first frame; median
    reprojection error of confident landmarks 14.0 / 8.5 / 16.8 / 10.2 px (cam01-cam04)."""
    if not DEMO.is_dir():
        pytest.skip(f"{DEMO} not found (set CROSSVIEW_SHARED_DATA)")
    from calibration.files import load_rig

    rig = load_rig(DEMO / "calibration" / "Calib.qca.txt")
    captures = [cv2.VideoCapture(str(DEMO / "videos" / f"{name}.mp4")) for name in rig.names]
    frames = [[capture.read()[1] for capture in captures] for _ in range(5)]
    for capture in captures:
        capture.release()
    rig = Rig(tuple(c.fitted_to_image(f.shape[1], f.shape[0]) for c, f in zip(rig, frames[0])))
    detector = BlazePoseDetector(*detector_paths, device="cpu")
    errors = []
    frames[2][0] = np.zeros_like(frames[2][0])  # cam01 goes dark for one frame
    expected = [("detected",) * 4, ("tracked",) * 4, ("lost",) + ("tracked",) * 3,
                ("seeded",) + ("tracked",) * 3, ("tracked",) * 4]
    for t, frame_set in enumerate(frames):
        result = detector.detect(frame_set, rig=rig)
        assert result.status == expected[t]
        if t == 2:
            continue
        projected = rig.project(result.points3d)  # (4, 33, 2)
        error = np.linalg.norm(projected - result.keypoints, axis=-1)  # (4, 33)
        errors.append(np.where(result.confidence > 0.5, error, np.nan))
    median = np.nanmedian(np.concatenate(errors, axis=1), axis=1)
    assert (median < 30).all(), median


def test_batched_inference_matches_single(detector_paths):
    """The converted models take a real batch: batched outputs equal one-at-a-time outputs.

    Measured: identical (max difference 0.0) for both models, 3 random inputs."""
    from models.blazepose import DETECTOR_INPUTS, DETECTOR_OUTPUTS, LANDMARK_INPUTS, LANDMARK_OUTPUTS
    from models.onnx_session import create_session

    rng = np.random.default_rng(0)
    for path, inputs, outputs in zip(detector_paths, (DETECTOR_INPUTS, LANDMARK_INPUTS), (DETECTOR_OUTPUTS, LANDMARK_OUTPUTS)):
        model = create_session(path, "cpu", inputs=inputs, outputs=outputs)
        assert model.fixed_batch is None
        x = rng.uniform(-1, 1, size=(3, *inputs[0].shape[1:])).astype(np.float32)
        batched = model.run(x)
        for i in range(3):
            for together, alone in zip(batched, model.run(x[i:i + 1])):
                np.testing.assert_allclose(together[i], alone[0], atol=1e-5)
