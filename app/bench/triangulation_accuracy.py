"""``crossview bench triangulation-accuracy``: 3D error of plain and robust triangulation.

The CMU test split (``../shared/data/cmu_mocap``, 30 fps), seen by random rigs of 2, 3, 4 and 8
cameras (a new rig every 4 s chunk) through the project's detector-noise presets (low, medium,
high: jitter, outliers, left/right swaps, self-occlusion, missing joints). Each row triangulates
the same detections with plain confidence-weighted DLT and with the robust default, and scores
both against the motion capture: MPJPE (absolute, mm), P-MPJPE (mm) and the share of joints that
got a 3D position. This is the baseline the learned refiner has to beat.
"""

from __future__ import annotations

import numpy as np

from calibration.errors import CrossviewError
from calibration.triangulation import triangulate
from models.metrics import mpjpe, p_mpjpe
from models.synthetic import synthetic_dataset
from models.synthetic.mocap import default_cmu_path

VIEWS = (2, 3, 4, 8)
PRESETS = ("low", "medium", "high")
FPS = 30.0
CHUNK_FRAMES = 120


def _score(samples, robust: bool) -> tuple[float, float, float]:
    predictions, truths = [], []
    for sample in samples:
        result = triangulate(sample.rig, sample.keypoints, sample.confidence, robust=robust)
        predictions.append(result.points)
        truths.append(sample.points3d)
    pred, truth = np.concatenate(predictions), np.concatenate(truths)  # (T, 17, 3) mm
    coverage = 100.0 * np.isfinite(pred).all(axis=-1).mean()
    return mpjpe(pred, truth), p_mpjpe(pred, truth), coverage


def run(quick: bool = False) -> dict:
    if not default_cmu_path().is_file():
        raise CrossviewError(f"{default_cmu_path()}: the CMU data is needed for this benchmark (see the README)")
    rows = []
    views = (2, 4) if quick else VIEWS
    presets = ("medium",) if quick else PRESETS
    for preset in presets:
        for num_cameras in views:
            samples = list(
                synthetic_dataset(
                    "test",
                    num_cameras=num_cameras,
                    noise=preset,
                    seed=num_cameras,
                    num_frames=CHUNK_FRAMES,
                    fps=FPS,
                    max_sequences=2 if quick else None,
                )
            )
            frames = sum(s.points3d.shape[0] for s in samples)
            plain = _score(samples, robust=False)
            robust = _score(samples, robust=True)
            rows.append([preset, num_cameras, frames, plain[0], robust[0], plain[1], robust[1], robust[2]])
    return {
        "name": "triangulation-accuracy",
        "title": "Triangulation accuracy on the CMU test split (synthetic detections)",
        "columns": [
            "noise",
            "views",
            "frames",
            "MPJPE plain DLT (mm)",
            "MPJPE robust (mm)",
            "P-MPJPE plain (mm)",
            "P-MPJPE robust (mm)",
            "joints triangulated (%)",
        ],
        "rows": rows,
        "notes": (
            f"CMU test split at {FPS:g} fps, a random rig per {CHUNK_FRAMES}-frame chunk (cameras 2.5-6 m away, "
            "30-100 degree fields of view, half with lens distortion), detector-noise presets of models/synthetic/noise.py."
        ),
    }
