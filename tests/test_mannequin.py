"""The rendered mannequin of the sample take (models.synthetic.mannequin)."""

from __future__ import annotations

import numpy as np
import pytest

from app.sample import sample_rig
from calibration.camera import Camera, look_at
from calibration.errors import CrossviewError
from models.synthetic.mannequin import MannequinRenderer, MannequinStyle, render_frame
from models.synthetic.motion import demo_routine

PELVIS, HEAD, L_KNEE, R_ELBOW = 0, 10, 5, 15


@pytest.fixture(scope="module")
def motion() -> np.ndarray:
    return demo_routine(duration_s=10.0, fps=30.0, seed=0)  # (T, 17, 3) mm


def _small_camera(dist=None) -> Camera:
    """A 320x180 camera 4 m in front of the person (who faces +Y), looking at the chest."""
    return look_at("small", (0.0, 4000.0, 1300.0), (0.0, 0.0, 1000.0), width=320, height=180, focal_px=240.0,
                   dist=dist)


def test_render_size_dtype_and_determinism(motion) -> None:
    camera = _small_camera()
    first = render_frame(camera, motion[100])
    second = render_frame(camera, motion[100])
    assert first.shape == (180, 320, 3) and first.dtype == np.uint8
    assert np.array_equal(first, second)
    assert not np.array_equal(first, render_frame(camera, motion[160]))


def test_person_covers_projected_joints(motion) -> None:
    """Pixels at the projected pelvis, head, knee and elbow are the person's, not the empty room's."""
    rig = sample_rig(2)
    for camera in rig.cameras:
        renderer = MannequinRenderer(camera)
        for frame in (30, 150, 250):
            image = renderer.render(motion[frame]).astype(np.int16)
            empty = renderer.render(np.full((17, 3), np.nan)).astype(np.int16)
            uv = np.round(camera.project(motion[frame])).astype(int)  # (17, 2) px, with distortion
            for joint in (PELVIS, HEAD, L_KNEE):
                u, v = uv[joint]
                patch = np.abs(image[v - 1:v + 2, u - 1:u + 2] - empty[v - 1:v + 2, u - 1:u + 2]).sum(axis=-1)
                assert patch.min() > 30, f"{camera.name} frame {frame}: joint {joint} at {u, v} shows the room"
            changed = np.abs(image - empty).sum(axis=-1) > 30
            assert 0.01 < changed.mean() < 0.25  # a person-sized region, not the whole frame


def test_lens_distortion_is_honoured(motion) -> None:
    """With barrel distortion the figure moves where Camera.project puts the joints."""
    plain = _small_camera()
    barrel = _small_camera(dist=np.array([-0.3, 0.0, 0.0, 0.0, 0.0]))
    # Off-centre, where the distortion shifts it.
    pose = motion[150] + np.array([1800.0 - motion[150, 0, 0], 0.0, 0.0])
    shift = np.linalg.norm(barrel.project(pose) - plain.project(pose), axis=-1)
    assert shift[HEAD] > 3.0  # the test means something
    image = MannequinRenderer(barrel).render(pose).astype(np.int16)
    empty = MannequinRenderer(barrel).render(np.full((17, 3), np.nan)).astype(np.int16)
    person = np.abs(image - empty).sum(axis=-1) > 30
    for joint in (PELVIS, HEAD):
        u, v = np.round(barrel.project(pose)[joint]).astype(int)
        assert person[v, u], f"joint {joint}: no person at the distorted projection {u, v}"
    ys, xs = np.nonzero(person)
    centre_undistorted = plain.project(pose)[PELVIS]
    centre_distorted = barrel.project(pose)[PELVIS]
    # The silhouette's centre follows the distorted projection, not the pinhole one.
    assert abs(xs.mean() - centre_distorted[0]) < abs(xs.mean() - centre_undistorted[0])


def test_bad_input_is_reported() -> None:
    camera = _small_camera()
    with pytest.raises(CrossviewError, match=r"\(17, 3\)"):
        render_frame(camera, np.zeros((16, 3)))
    with pytest.raises(CrossviewError, match="spacing_mm"):
        MannequinStyle(spacing_mm=0.5)
    with pytest.raises(CrossviewError, match="shirt"):
        MannequinStyle(shirt=(0, 0, 300))


def test_blazepose_finds_the_mannequin(motion) -> None:
    """BlazePose (CPU) finds the figure in >= 90 % of frames with median joint error < 20 px.

    Measured (12 frames x 2 views, frames 90-200 of the routine): found 100 %, median 6.1 px.
    Over the whole 10 s routine (every 2nd frame x 3 views): found 100 %, median 5.9 px, p90 13.6 px,
    no left/right swaps.
    """
    from models.blazepose import BlazePoseDetector
    from models.model_store import BLAZEPOSE_MODELS, model_dir, model_status

    if any(model_status(spec) != "ready" for spec in BLAZEPOSE_MODELS):
        pytest.skip(f"BlazePose models not in {model_dir()}; run `crossview models fetch`")
    try:
        detector = BlazePoseDetector.from_folder(device="cpu", threads=2)
    except CrossviewError as exc:
        pytest.skip(str(exc))
    rig = sample_rig(2)
    renderers = [MannequinRenderer(camera) for camera in rig.cameras]
    # BlazePose-33 shoulders, elbows, wrists, hips, knees, ankles and the same H36M-17 joints.
    blazepose = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
    h36m = [11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3]
    found, errors = 0, []
    frames = range(90, 210, 10)
    for frame in frames:
        result = detector.detect([r.render(motion[frame]) for r in renderers])
        truth = rig.project(motion[frame])  # (C, 17, 2) px
        for view, status in enumerate(result.status):
            if status == "lost":
                continue
            found += 1
            errors.append(np.linalg.norm(result.keypoints[view, blazepose] - truth[view, h36m], axis=-1))
    rate = found / (len(frames) * len(rig))
    assert rate >= 0.9, f"BlazePose found the mannequin in {rate:.0%} of frames"
    assert np.median(np.concatenate(errors)) < 20.0


def test_sample_videos_are_written(tmp_path, motion) -> None:
    """write_sample_videos writes one readable video per camera, of the camera's size."""
    import cv2

    from app.sample import write_sample_videos

    rig = sample_rig(2)
    seen = []
    paths = write_sample_videos(tmp_path / "videos", rig, motion[:4], progress=lambda done, total: seen.append(total))
    assert [p.name for p in paths] == ["cam_0.mp4", "cam_1.mp4"] and seen == [8] * 8
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["cam_0.mp4", "cam_1.mp4"]
    for path, camera in zip(paths, rig.cameras):
        capture = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        capture.release()
        assert len(frames) == 4 and frames[0].shape == (camera.height, camera.width, 3)
        rendered = MannequinRenderer(camera).render(motion[0]).astype(np.int16)
        assert np.mean(np.abs(frames[0].astype(np.int16) - rendered)) < 6.0  # only compression error
    with pytest.raises(CrossviewError, match=r"\(T, 17, 3\)"):
        write_sample_videos(tmp_path / "bad", rig, motion[0])
