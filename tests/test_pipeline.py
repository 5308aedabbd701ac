"""The shared pipeline: detector -> triangulation -> refiner | lifter -> filter, one frame set at a time.

The refiner, lifter and detector here are small real implementations of the agreed interfaces
(a refiner that applies a known shift, a lifter that back-projects at known depths, a detector that
projects a known pose), so every assertion checks what the pipeline did with them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pytest

import app.pipeline as pipeline_module
from app.pipeline import DEFAULT_MODELS, STAGES, Pipeline, PoseFrame, load_model
from calibration import Rig, look_at
from calibration.camera import Camera
from calibration.errors import CrossviewError
from models.filters import OneEuroFilter

FPS = 30.0


def _rig(num_cameras: int = 4) -> Rig:
    cameras = []
    for i in range(num_cameras):
        angle = 2 * np.pi * i / num_cameras + 0.4
        center = [3800 * np.cos(angle), 3800 * np.sin(angle), 1500]
        cameras.append(look_at(f"cam{i}", center, [0, 0, 900], width=1280, height=720, focal_px=1000,
                               dist=[-0.04 * (i % 2), 0.01 * (i % 2), 0, 0, 0]))
    return Rig(tuple(cameras))


def _pose(rng) -> np.ndarray:
    """(17, 3) mm: a random pose around a standing person's height."""
    return rng.normal(scale=[200, 200, 400], size=(17, 3)) + [0, 0, 1000]


@dataclass
class _Detected:
    keypoints: np.ndarray
    confidence: np.ndarray
    found: np.ndarray


class ProjectingDetector:
    """Detects ``pose`` (H36M-17) by projecting it; views listed in ``hidden`` do not see it;
    ``offset_px`` shifts one view's keypoints (a wrong detection)."""

    joint_set = "h36m17"
    provider = "ProjectingDetector"

    def __init__(self, rig: Rig, pose: np.ndarray, *, hidden=(), noise_px: float = 0.0, offset_px=None, seed=0):
        self.rig, self.pose, self.hidden, self.noise_px, self.offset_px = rig, pose, set(hidden), noise_px, offset_px
        self.rng = np.random.default_rng(seed)
        self.calls = []

    def __call__(self, frames, rig):
        self.calls.append([f is None for f in frames])
        kp = self.rig.project(self.pose)  # (C, 17, 2)
        kp = kp + self.rng.normal(scale=self.noise_px, size=kp.shape) if self.noise_px else kp
        if self.offset_px is not None:
            view, shift = self.offset_px
            kp[view] += shift
        conf = np.full(kp.shape[:2], 0.9)
        found = np.array([v not in self.hidden and frames[v] is not None for v in range(len(frames))])
        kp[~found], conf[~found] = np.nan, 0.0
        return _Detected(kp.astype(np.float32), conf, found)


class ShiftRefiner:
    """Moves every joint by ``shift_mm`` (a known transformation) and records its inputs."""

    def __init__(self, shift_mm=(0.0, 0.0, 25.0)):
        self.shift = np.asarray(shift_mm)
        self.inputs = []

    def refine(self, points3d, confidence, rig):
        assert points3d.shape == (1, 17, 3) and confidence.shape == (1, len(rig), 17)
        self.inputs.append((points3d.copy(), confidence.copy()))
        return points3d + self.shift


class DepthLifter:
    """Back-projects a view's keypoints at the true depths of ``pose`` in that camera."""

    def __init__(self, pose: np.ndarray):
        self.pose = pose
        self.cameras = []

    def lift(self, keypoints, confidence, camera: Camera):
        assert keypoints.shape == (1, 17, 2) and confidence.shape == (1, 17)
        self.cameras.append(camera.name)
        depth = camera.to_camera(self.pose)[:, 2]  # (17,) mm
        normalized = camera.undistort_points(keypoints[0].astype(np.float64), normalized=True)  # (17, 2)
        in_camera = np.concatenate([normalized * depth[:, None], depth[:, None]], axis=1)  # (17, 3)
        return ((in_camera - camera.t) @ camera.R)[None]  # R^T (x - t), (1, 17, 3)


def _frames(rig: Rig, missing=()) -> list:
    return [None if v in missing else np.zeros((c.height, c.width, 3), np.uint8) for v, c in enumerate(rig)]


def test_triangulated_pose_is_exact_on_exact_detections() -> None:
    rig = _rig()
    truth = _pose(np.random.default_rng(0))
    pipe = Pipeline(rig, ProjectingDetector(rig, truth))
    pose = pipe.process(_frames(rig), 0.0)
    assert pose.method == "triangulated" and pose.provider == "ProjectingDetector"
    assert np.abs(pose.points3d - truth).max() < 1e-3  # float32 keypoints
    assert pose.reprojection_error.shape == (4, 17) and np.nanmax(pose.reprojection_error) < 0.01
    assert (pose.views_used == 4).all() and pose.found.all()
    assert set(pose.timings_ms) == set(STAGES) and pose.timings_ms["triangulate"] > 0
    assert pose.timings_ms["total"] >= pose.timings_ms["detect"]


def test_refiner_gets_the_triangulation_and_its_output_is_the_pose() -> None:
    """A wrong view (300 px off) is rejected by the robust triangulation and reaches the refiner
    with confidence 0; the refiner's shift is what comes out."""
    rig = _rig()
    truth = _pose(np.random.default_rng(1))
    refiner = ShiftRefiner()
    pipe = Pipeline(rig, ProjectingDetector(rig, truth, offset_px=(2, [300.0, 0.0])), refiner=refiner)
    pose = pipe.process(_frames(rig), 0.0)
    assert pose.method == "refined"
    np.testing.assert_allclose(pose.points3d, pose.points_triangulated + [0, 0, 25.0])
    assert np.abs(pose.points_triangulated - truth).max() < 1e-3
    _, confidence = refiner.inputs[0]
    assert (confidence[0, 2] == 0).all() and (confidence[0, [0, 1, 3]] == pytest.approx(0.9))
    assert pose.timings_ms["refine"] > 0


def test_one_view_uses_the_lifter_on_the_best_view() -> None:
    rig = _rig()
    truth = _pose(np.random.default_rng(2))
    lifter = DepthLifter(truth)
    pipe = Pipeline(rig, ProjectingDetector(rig, truth, hidden={0, 1, 3}), refiner=ShiftRefiner(), lifter=lifter)
    pose = pipe.process(_frames(rig), 0.0)
    assert pose.method == "lifted" and lifter.cameras == ["cam2"]
    assert np.abs(pose.points3d - truth).max() < 1e-2
    assert np.isnan(pose.points_triangulated).all() and (pose.views_used == 1).all()
    assert pose.timings_ms["lift"] > 0 and pose.timings_ms["refine"] == 0


def test_one_view_without_lifter_and_nobody_give_none() -> None:
    rig = _rig(3)
    truth = _pose(np.random.default_rng(3))
    for hidden in ({0, 1}, {0, 1, 2}):
        pose = Pipeline(rig, ProjectingDetector(rig, truth, hidden=hidden)).process(_frames(rig), 0.0)
        assert pose.method == "none" and np.isnan(pose.points3d).all() and (pose.views_used == 0).all()


def test_missing_frames_reach_the_detector_as_none() -> None:
    """A camera without a frame in the set: the detector is told, the other views triangulate."""
    rig = _rig(3)
    truth = _pose(np.random.default_rng(4))
    detector = ProjectingDetector(rig, truth)
    pose = Pipeline(rig, detector).process(_frames(rig, missing={1}), 0.0)
    assert detector.calls == [[False, True, False]]
    assert pose.method == "triangulated" and list(pose.found) == [True, False, True]
    assert (pose.views_used == 2).all() and np.isnan(pose.reprojection_error[1]).all()
    with pytest.raises(CrossviewError, match="2 frames for a rig of 3"):
        Pipeline(rig, detector).process(_frames(rig)[:2], 0.0)


def test_filter_smooths_a_still_person_over_time() -> None:
    """3 px detection noise on a still pose: the default One-Euro filter cuts the frame-to-frame
    jitter of the 3D joints to 19 % (measured: 18.0 mm -> 3.4 mm RMS step)."""
    rig = _rig()
    truth = _pose(np.random.default_rng(5))
    steps = {}
    for smooth in (False, True):
        pipe = Pipeline(rig, ProjectingDetector(rig, truth, noise_px=3.0, seed=1),
                        smoother=OneEuroFilter() if smooth else None)
        points = np.array([pipe.process(_frames(rig), t / FPS).points3d for t in range(60)])
        steps[smooth] = np.sqrt((np.diff(points[20:], axis=0) ** 2).sum(-1).mean())
    assert steps[True] < 0.5 * steps[False], steps


def test_keypoints_enter_at_the_triangulation() -> None:
    """Keypoints from a file in another joint set (BlazePose-33) go through the same stages."""
    from models.skeleton import BLAZEPOSE33

    rig = _rig(3)
    rng = np.random.default_rng(6)
    pose33 = rng.normal(scale=[200, 200, 400], size=(33, 3)) + [0, 0, 1000]
    kp = rig.project(pose33)  # (3, 33, 2)
    conf = np.ones((3, 33))
    pipe = Pipeline(rig, refiner=ShiftRefiner((10.0, 0, 0)))
    pose = pipe.process_keypoints(kp, conf, 0.5, joint_set=BLAZEPOSE33.name)
    assert pose.method == "refined" and pose.provider == "keypoints" and pose.keypoints.shape == (3, 33, 2)
    assert pose.joint_set == "blazepose33" and np.isfinite(pose.points3d).all()
    with pytest.raises(CrossviewError, match="no detector"):
        pipe.process(_frames(rig), 0.0)


def test_pose_frame_is_checked_and_read_only() -> None:
    ok = dict(keypoints=np.zeros((2, 17, 2)), confidence=np.ones((2, 17)), points3d=np.zeros((17, 3)),
              reprojection_error=np.zeros((2, 17)), views_used=np.full(17, 2), method="triangulated",
              timings_ms={"detect": 1.0}, provider="cpu")
    frame = PoseFrame(**ok)
    assert frame.num_views == 2 and frame.found.all()
    with pytest.raises(ValueError):
        frame.points3d[0, 0] = 1.0
    with pytest.raises(CrossviewError, match="method"):
        PoseFrame(**{**ok, "method": "guessed"})
    with pytest.raises(CrossviewError, match="reprojection_error"):
        PoseFrame(**{**ok, "reprojection_error": np.zeros((3, 17))})


def test_model_specs(tmp_path, monkeypatch, caplog) -> None:
    """none -> None; the command line's default -> None with an info line when nothing is
    installed; an explicit default that is not installed, or a missing file -> a clear error."""
    monkeypatch.setitem(pipeline_module.DEFAULT_MODELS, "refiner", tmp_path / "refiner.onnx")
    assert load_model("refiner", "none") is None
    with caplog.at_level(logging.INFO, logger="app.pipeline"):
        assert load_model("refiner", None) is None
    assert "no refiner installed" in caplog.text
    with pytest.raises(CrossviewError, match="no refiner is installed"):
        load_model("refiner", "default")
    with pytest.raises(CrossviewError):
        load_model("refiner", str(tmp_path / "missing.onnx"))
    with pytest.raises(CrossviewError, match="unknown model kind"):
        load_model("detector", "none")


def test_real_detector_on_rendered_frames() -> None:
    """BlazePose on the mannequin rendered by two of the sample's cameras (1280x720): the pose
    triangulates within 60 mm of the truth (measured 33, 28 and 35 mm on frames 150-152)."""
    from app.sample import sample_rig
    from models.model_store import ensure_blazepose_models
    from models.synthetic.mannequin import MannequinRenderer
    from models.synthetic.mocap import to_detector_convention
    from models.synthetic.motion import demo_routine

    try:
        ensure_blazepose_models()
    except CrossviewError as exc:
        pytest.skip(f"BlazePose models unavailable: {exc}")
    rig = Rig(sample_rig(3).cameras[:2])
    motion = demo_routine(duration_s=8.0, fps=FPS, seed=0)[150:153]  # (3, 17, 3) mm
    renderers = [MannequinRenderer(camera) for camera in rig]
    pipe = Pipeline.build(rig, device="cpu", refiner="none", lifter="none", smooth=False)
    truth = to_detector_convention(motion)
    errors = []
    for t, pose3d in enumerate(motion):
        pose = pipe.process([r.render(pose3d) for r in renderers], t / FPS)
        assert pose.method == "triangulated" and pose.joint_set == "blazepose33" and pose.found.all()
        assert pose.provider == "CPUExecutionProvider" and pose.timings_ms["detect"] > 0
        errors.append(np.nanmean(np.linalg.norm(pose.points3d - truth[t], axis=-1)))
    assert np.max(errors) < 60.0, errors
    # A dropped frame in one view: that view is lost for the frame set, nothing is triangulated
    # (no lifter), and the next complete frame set is back to two views.
    frames = [r.render(motion[-1]) for r in renderers]
    pose = pipe.process([frames[0], None], 3 / FPS)
    assert list(pose.found) == [True, False] and pose.method == "none"
    assert np.isfinite(pose.keypoints[0]).all() and np.isnan(pose.keypoints[1]).all()
    assert pipe.process(frames, 4 / FPS).method == "triangulated"
    # With the bundled lifter the one remaining view gives a lifted pose that lands on that view's
    # keypoints (measured median 3.4 px, worst 7.9 px; the lifter fits its root to them).
    if DEFAULT_MODELS["lifter"].is_file():
        lifting = Pipeline(rig, pipe.detector, lifter=load_model("lifter", "default"))
        lifting.process(frames, 5 / FPS)
        pose = lifting.process([frames[0], None], 6 / FPS)
        assert pose.method == "lifted" and (pose.views_used == 1).all() and pose.timings_ms["lift"] > 0
        assert np.nanmedian(pose.reprojection_error[0]) < 15.0, pose.reprojection_error[0]


def test_reprojection_threshold_decides_which_views_are_dropped() -> None:
    """One view 40 px off: the default 60 px keeps it (4 views used), 20 px drops it (3 views),
    and the pose is then exact again; a threshold <= 0 is refused."""
    rig = _rig(4)
    truth = _pose(np.random.default_rng(3))
    kept = Pipeline(rig, ProjectingDetector(rig, truth, offset_px=(2, np.array([40.0, 0.0]))))
    dropped = Pipeline(rig, ProjectingDetector(rig, truth, offset_px=(2, np.array([40.0, 0.0]))),
                       max_reprojection_error_px=20.0)
    a, b = kept.process(_frames(rig), 0.0), dropped.process(_frames(rig), 0.0)
    assert (a.views_used == 4).all() and (b.views_used == 3).all()
    assert np.abs(b.points3d - truth).max() < 1e-2 < np.abs(a.points3d - truth).max()
    with pytest.raises(CrossviewError, match="rejection threshold"):
        Pipeline(rig, max_reprojection_error_px=0.0)


def test_frames_smaller_than_calibrated_use_the_scaled_calibration(caplog) -> None:
    """Cameras calibrated at 1280x720 delivering 640x360: the rig is scaled once and the pose is
    exact again (< 1e-2 mm), with one info line per camera."""
    rig = _rig(3)
    half = Rig(tuple(c.fitted_to_image(640, 360) for c in rig))
    truth = _pose(np.random.default_rng(4))
    pipe = Pipeline(rig, ProjectingDetector(half, truth))
    frames = [np.zeros((360, 640, 3), np.uint8) for _ in rig]
    with caplog.at_level(logging.INFO, logger="app.pipeline"):
        pose = pipe.process(frames, 0.0)
        pipe.process(frames, 0.033)
    assert np.abs(pose.points3d - truth).max() < 1e-2
    assert [c.width for c in pipe.rig] == [640] * 3
    assert sum("calibrated at 1280x720" in r.getMessage() for r in caplog.records) == 3
