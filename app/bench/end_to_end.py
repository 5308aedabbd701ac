"""``crossview bench end-to-end``: accuracy through the real detector, for any number of cameras.

The sample's generator end to end: the procedural routine (:func:`models.synthetic.motion.demo_routine`:
walking, jumping jacks, squats, reaching, turning) is rendered as the shaded mannequin by a ring of
2, 3 and 4 calibrated virtual cameras (:func:`app.sample.sample_rig`, 1280x720, mild distortion on
every other camera); every frame set goes through :class:`app.pipeline.Pipeline` — BlazePose on
the images, robust triangulation, then the shipped CV-UGCN refiner or not — and the 3D joints are
scored against the motion they were rendered from (the joints as the app derives them from
detections: pelvis = mid-hips, thorax = mid-shoulders). No filter, so the rows isolate detection,
triangulation and refinement.

The mannequin is not a person: the figures mix BlazePose's error with the mannequin's shape (its
joints are where the renderer puts them, not where a detector trained on people expects them), so
they compare the stages with each other, not with real-world accuracy.
"""

from __future__ import annotations

import logging

import numpy as np

from calibration.rig import Rig
from models.metrics import evaluate

logger = logging.getLogger(__name__)

VIEWS = (2, 3, 4)
FPS = 30.0
#: The routine is sampled every STRIDE-th frame so a short run still covers its activities.
STRIDE = 3


def render(rig: Rig, motion: np.ndarray) -> list[list[np.ndarray]]:
    """``motion (T, 17, 3)`` mm rendered by every camera: T lists of ``(H, W, 3)`` uint8 BGR images."""
    from models.synthetic.mannequin import MannequinRenderer

    renderers = [MannequinRenderer(camera) for camera in rig]
    return [[renderer.render(pose) for renderer in renderers] for pose in motion]


def run_pipeline(pipeline, frames: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """``(T, 17, 3)`` mm poses and ``(T, C)`` person-found flags of ``frames`` through ``pipeline``."""
    pipeline.reset()
    poses, found = [], []
    for index, frame_set in enumerate(frames):
        pose = pipeline.process(frame_set, index * STRIDE / FPS)
        poses.append(pose.points3d)
        found.append(pose.found)
    return np.asarray(poses, dtype=np.float64), np.asarray(found, dtype=bool)


def run(quick: bool = False) -> dict:
    from app.detection import open_detector
    from app.pipeline import DEFAULT_MODELS, Pipeline, load_model
    from app.sample import sample_rig
    from models.synthetic.mocap import to_detector_convention
    from models.synthetic.motion import demo_routine

    frames_per_config = 30 if quick else 120
    motion = demo_routine(duration_s=max(8.0, frames_per_config * STRIDE / FPS), fps=FPS, seed=7)
    motion = motion[::STRIDE][:frames_per_config]  # (T, 17, 3) mm, the body's own joints
    truth = to_detector_convention(motion)
    detector = open_detector("blazepose", "auto")
    refiner = load_model("refiner", "default") if DEFAULT_MODELS["refiner"].is_file() else None
    rows = []
    for views in VIEWS:
        rig = sample_rig(views)
        frames = render(rig, motion)
        variants = [("triangulation", None)] + ([("+ refiner", refiner)] if refiner is not None else [])
        for label, model in variants:
            poses, found = run_pipeline(Pipeline(rig, detector, refiner=model, smoother=None), frames)
            scores = evaluate(poses, truth)
            rows.append([views, label, len(truth), 100.0 * float(found.mean()), scores["absolute_mpjpe_mm"],
                         scores["mpjpe_mm"], scores["p_mpjpe_mm"], scores["pck_percent"]])
            logger.info("%d views, %s: MPJPE %.1f mm", views, label, scores["mpjpe_mm"])
    return {
        "name": "end-to-end",
        "title": "Rendered mannequin -> BlazePose -> triangulation -> refiner, against the rendered motion",
        "columns": ["views", "3D from", "frame sets", "person found (% of views)", "MPJPE absolute (mm)",
                    "MPJPE root-relative (mm)", "P-MPJPE (mm)", "PCK150 (%)"],
        "rows": rows,
        "notes": (f"The sample's routine (every {STRIDE}rd frame at {FPS:.0f} fps, seed 7) rendered at 1280x720 by "
                  "a ring of cameras 4 m away; BlazePose on the CPU with tracking; no temporal filter. The "
                  "mannequin's joints are not where a detector trained on people puts them, so read the "
                  "rows against each other, not as real-world accuracy."),
    }
