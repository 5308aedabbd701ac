"""Synthetic multi-view data: motion capture, virtual rigs and a simulated 2D detector (numpy/OpenCV).

Typical use::

    from models.synthetic import load_cmu, random_rig, make_multiview
    sequence = load_cmu(split="test", fps=30)[0]
    sample = make_multiview(centre_on_floor(sequence), random_rig(rng, 4), "medium", rng)

or a whole dataset, one random rig per chunk::

    for sample in synthetic_dataset("train", num_cameras=(2, 4), seed=0, num_frames=240):
        ...
"""

from models.synthetic.dataset import MultiviewSample, make_multiview, random_placement, synthetic_dataset
from models.synthetic.mocap import (
    MotionSequence,
    centre_on_floor,
    default_cmu_path,
    estimate_floor_z,
    load_cmu,
    resample,
    shared_data_dir,
)
from models.synthetic.noise import PRESET_NAMES, PRESETS, Detections, DetectorNoise, person_size_px, resolve_noise
from models.synthetic.occlusion import H36M17_CAPSULES, BodyCapsules, self_occlusion
from models.synthetic.rigs import IMAGE_SIZES, random_rig, ring_rig, visible_in_image

from models.synthetic.body_kinematics import BodyShape
from models.synthetic.motion import compose, demo_routine, jumping_jacks, reach, squat, turn, walk

__all__ = [
    "BodyShape",
    "compose",
    "demo_routine",
    "jumping_jacks",
    "reach",
    "squat",
    "turn",
    "walk",
    "BodyCapsules",
    "Detections",
    "DetectorNoise",
    "H36M17_CAPSULES",
    "IMAGE_SIZES",
    "MotionSequence",
    "MultiviewSample",
    "PRESETS",
    "PRESET_NAMES",
    "centre_on_floor",
    "default_cmu_path",
    "estimate_floor_z",
    "load_cmu",
    "make_multiview",
    "person_size_px",
    "random_placement",
    "random_rig",
    "resample",
    "resolve_noise",
    "ring_rig",
    "self_occlusion",
    "shared_data_dir",
    "synthetic_dataset",
    "visible_in_image",
]
