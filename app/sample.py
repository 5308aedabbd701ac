"""The bundled sample take: a procedurally animated person seen by calibrated virtual cameras.

Nothing is downloaded and no recorded data is copied: the motion comes from
:func:`models.synthetic.motion.demo_routine` (walk in, jumping jacks, squats, reaching, turning),
the cameras form a ring around the person (:func:`models.synthetic.rigs.ring_rig`, 1280x720,
lens distortion on some cameras) and the 2D keypoints pass through the project's detector-noise
model (:class:`models.synthetic.noise.DetectorNoise`, preset ``medium``: jitter that grows with
the person's size in the image, occasional outliers and left/right swaps, self-occlusion,
confidences that drop with the error).

The folder holds ``calibration.yaml``, ``poses2d.npz`` (H36M-17, the noisy detections) and
``ground_truth.npz`` (``points (T, 17, 3)`` mm), so ``crossview process`` can report its error
against the truth. With ``videos=True`` it also holds ``videos/<camera>.mp4``: the same motion
rendered as a shaded mannequin (:mod:`models.synthetic.mannequin`) that BlazePose detects, for
running the whole pipeline from video. Its error against the truth mixes detector error with the
figure's shape offsets (a few pixels): show it as a demo, not as real-world accuracy.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from calibration import Rig, save_rig
from calibration.camera import Camera
from calibration.errors import CrossviewError, check_shape
from models.keypoint_io import Poses2D, atomic_write_bytes, npz_bytes, save_poses2d
from models.synthetic.mannequin import MannequinRenderer
from models.synthetic.mocap import to_detector_convention
from models.synthetic.motion import demo_routine
from models.synthetic.noise import DetectorNoise
from models.synthetic.rigs import ring_rig

logger = logging.getLogger(__name__)

SAMPLE_FPS = 30.0
#: Mild lens distortion (k1, k2, p1, p2, k3) given to every other camera, as consumer lenses have.
SAMPLE_DISTORTION = (-0.08, 0.02, 0.0005, -0.0004, 0.0)


def sample_rig(num_cameras: int = 3) -> Rig:
    """The sample's cameras: a ring 4 m from the person, 1.6 m high, 1280x720 px; every other
    camera has mild barrel distortion."""
    ring = ring_rig(num_cameras, radius_mm=4000.0, height_mm=1600.0, width=1280, height=720, start_deg=-90.0)
    cameras = []
    for index, cam in enumerate(ring):
        dist = np.asarray(SAMPLE_DISTORTION) if index % 2 else np.zeros(5)
        cameras.append(Camera(cam.name, cam.width, cam.height, cam.K, dist, cam.R, cam.t))
    return Rig(tuple(cameras))


def make_sample(
    out_dir: str | Path,
    *,
    seed: int = 0,
    num_cameras: int = 3,
    duration_s: float = 10.0,
    noise: str = "medium",
    videos: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the sample take into ``out_dir`` and return its path.

    Args:
        out_dir: folder to create or overwrite (only the three sample files are written).
        seed: draws the routine and the detector noise; the same seed gives the same files.
        num_cameras: virtual cameras, >= 2.
        duration_s: length of the routine, 8 to 600 s, at 30 fps.
        noise: detector-noise preset (``clean``, ``low``, ``medium``, ``high``).
        videos: also render ``videos/<camera>.mp4`` of the ground-truth motion
            (:func:`write_sample_videos`; ~0.1 s per frame and camera).
        progress: with ``videos``, called as ``progress(done, total)`` after each rendered frame.
    """
    if num_cameras < 2:
        raise CrossviewError(f"the sample needs at least 2 cameras to triangulate, got {num_cameras}")
    if not 8.0 <= duration_s <= 600.0:
        raise CrossviewError(f"the sample's duration must be between 8 and 600 s, got {duration_s:g}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    motion = demo_routine(duration_s=duration_s, fps=SAMPLE_FPS, seed=seed)  # (T, 17, 3) mm, the body's own joints
    # The truth uses the joints as the app derives them from detections (pelvis = mid-hips,
    # thorax = mid-shoulders); the body's skeleton keeps its pelvis ~90 mm higher, like CMU's.
    truth = to_detector_convention(motion)
    rig = sample_rig(num_cameras)
    keypoints, confidence = DetectorNoise.preset(noise).apply(rng, truth, rig, fps=SAMPLE_FPS)  # (C, T, J, 2), (C, T, J)
    timestamps = np.arange(truth.shape[0]) / SAMPLE_FPS
    poses = Poses2D(
        keypoints=np.moveaxis(keypoints, 0, 1),  # (T, C, J, 2)
        confidence=np.moveaxis(confidence, 0, 1),  # (T, C, J)
        camera_names=rig.names,
        joint_set="h36m17",
        timestamps=timestamps,
    )
    save_rig(rig, out_dir / "calibration.yaml", metadata={"source": "crossview sample (virtual cameras)"})
    save_poses2d(poses, out_dir / "poses2d.npz")
    atomic_write_bytes(
        out_dir / "ground_truth.npz",
        npz_bytes(points=truth, timestamps=timestamps, units=np.array("mm"), noise=np.array(noise), seed=np.array(seed)),
    )
    if videos:
        write_sample_videos(out_dir / "videos", rig, motion, fps=SAMPLE_FPS, progress=progress)
    logger.info("sample take: %d frames, %d cameras, noise %s -> %s", truth.shape[0], num_cameras, noise, out_dir)
    return out_dir


def write_sample_videos(
    videos_dir: str | Path,
    rig: Rig,
    points: np.ndarray,
    *,
    fps: float = SAMPLE_FPS,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Render ``points`` as the mannequin into one MPEG-4 video per camera, ``<camera>.mp4``.

    Args:
        videos_dir: folder to create; existing videos of the same names are replaced.
        rig: the cameras (each video has its camera's size and lens distortion).
        points: ``(T, 17, 3)`` H36M-17 joints, world millimetres.
        fps: frame rate written into the videos.
        progress: called as ``progress(done, total)`` after each frame (total = T x cameras).

    Returns:
        The video paths, in rig order.

    Raises:
        CrossviewError: OpenCV cannot write MPEG-4 video here.
    """
    points = np.asarray(points, dtype=np.float64)
    check_shape("points", points, "(T, 17, 3)", points.ndim == 3 and points.shape[1:] == (17, 3))
    videos_dir = Path(videos_dir)
    videos_dir.mkdir(parents=True, exist_ok=True)
    total, done, paths = points.shape[0] * len(rig), 0, []
    for camera in rig.cameras:
        renderer = MannequinRenderer(camera)
        path = videos_dir / f"{camera.name}.mp4"
        partial = videos_dir / f".{camera.name}.partial.mp4"  # renamed when complete
        size = (camera.width, camera.height)
        writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
        if not writer.isOpened():
            raise CrossviewError(
                f"{partial}: OpenCV cannot write MPEG-4 (mp4v) video here; check the folder is writable"
            )
        try:
            for pose in points:
                writer.write(renderer.render(pose))
                done += 1
                if progress is not None:
                    progress(done, total)
        finally:
            writer.release()
        os.replace(partial, path)
        paths.append(path)
        logger.info("rendered %d frames of %s -> %s", points.shape[0], camera.name, path)
    return paths
