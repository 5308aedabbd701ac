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
against the truth. (The rendered-video sample take of the desktop app builds on the same motion.)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from calibration import Rig, save_rig
from calibration.camera import Camera
from models.keypoint_io import Poses2D, atomic_write_bytes, npz_bytes, save_poses2d
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
) -> Path:
    """Write the sample take into ``out_dir`` and return its path.

    Args:
        out_dir: folder to create or overwrite (only the three sample files are written).
        seed: draws the routine and the detector noise; the same seed gives the same files.
        num_cameras: virtual cameras, >= 2.
        duration_s: length of the routine, 8 to 600 s, at 30 fps.
        noise: detector-noise preset (``clean``, ``low``, ``medium``, ``high``).
    """
    from calibration.errors import CrossviewError

    if num_cameras < 2:
        raise CrossviewError(f"the sample needs at least 2 cameras to triangulate, got {num_cameras}")
    if not 8.0 <= duration_s <= 600.0:
        raise CrossviewError(f"the sample's duration must be between 8 and 600 s, got {duration_s:g}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    truth = demo_routine(duration_s=duration_s, fps=SAMPLE_FPS, seed=seed)  # (T, 17, 3) mm
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
    logger.info("sample take: %d frames, %d cameras, noise %s -> %s", truth.shape[0], num_cameras, noise, out_dir)
    return out_dir
