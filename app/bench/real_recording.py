"""``crossview bench real-recording``: the whole offline pipeline on a real 4-camera recording.

The Pose2Sim single-person demo (``../shared/data/pose2sim_demo_single``: 4 synchronised 1080x1920
videos, 100 frames at 60 fps, Qualisys calibration; a second person stands in the background of
some views) through ``crossview process --videos``: BlazePose on every view, plain or robust
triangulation, then the shipped refiner and the One-Euro filter. There is no 3D ground truth, so the figures are the ones that show detector and calibration
quality together: the share of frames in which each view found the subject, the reprojection
error of the triangulated joints (px), and how steady the bone lengths are over time (a rigid
skeleton keeps them constant: their standard deviation is noise).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from calibration.errors import CrossviewError
from models.skeleton import H36M17, bone_lengths
from models.synthetic.mocap import shared_data_dir


VARIANTS = (  # label, robust triangulation, refiner, One-Euro filter
    ("plain DLT", False, "none", False),
    ("robust", True, "none", False),
    ("robust + refiner", True, "default", False),
    ("robust + refiner + filter", True, "default", True),
)


def detection_distance_px(points: np.ndarray, out_dir: Path, rig) -> np.ndarray:
    """Distances (px) between the final 3D joints ``(T, 17, 3)`` mm projected into every view and
    that view's detections (``poses2d.npz`` in ``out_dir``, mapped to H36M-17), where detected."""
    from models.keypoint_io import load_poses2d
    from models.skeleton import to_h36m17

    poses = load_poses2d(out_dir / "poses2d.npz")
    keypoints, confidence = to_h36m17(poses.keypoints, poses.confidence, poses.joint_set)  # (T, C, 17, 2), (T, C, 17)
    projected = np.moveaxis(rig.select(poses.camera_names).project(points), 0, 1)  # (T, C, 17, 2)
    distance = np.linalg.norm(projected - keypoints, axis=-1)
    return distance[(confidence > 0) & np.isfinite(distance)]


def run(quick: bool = False) -> dict:
    from app.capture.video_files import find_videos, probe_video
    from app.process import process_videos
    from calibration import load_rig
    from calibration.rig import Rig

    demo = shared_data_dir() / "pose2sim_demo_single"
    if not (demo / "videos").is_dir():
        raise CrossviewError(f"{demo}: the Pose2Sim demo is needed for this benchmark")
    calibration = demo / "calibration" / "Calib.qca.txt"
    videos = find_videos(demo / "videos")
    rig = load_rig(calibration)
    rig = Rig(tuple(c.fitted_to_image(probe_video(videos[c.name]).width, probe_video(videos[c.name]).height)
                    if c.name in videos else c for c in rig))
    rows = []
    with tempfile.TemporaryDirectory(prefix="crossview-bench-") as out:
        for label, robust, refiner, smooth in VARIANTS:
            result, _, stats = process_videos(demo / "videos", calibration_path=calibration, out_dir=Path(out),
                                              robust=robust, refiner=refiner, smooth=smooth, progress=False)
            valid = np.isfinite(result.points).all(axis=-1)
            error = result.reprojection_error_px[valid]
            lengths = bone_lengths(result.points, H36M17)  # (T, B) mm
            std = np.nanstd(lengths, axis=0)  # (B,)
            to_detections = detection_distance_px(result.points, Path(out), rig)
            rows.append([
                label,
                " / ".join(f"{100 * stats['detection_rate'][n]:.0f}" for n in result.camera_names),
                float(np.median(error)),
                float(np.percentile(error, 95)),
                float(np.median(to_detections)),
                float(np.nanmedian(std)),
                float(np.nanmax(std)),
                float(100.0 * valid.mean()),
            ])
    return {
        "name": "real-recording",
        "title": "Pose2Sim demo, 4 real cameras, 100 frames: BlazePose + triangulation (+ refiner, filter)",
        "columns": [
            "triangulation",
            "subject found, % of frames (cam01 / 02 / 03 / 04)",
            "reprojection error median (px)",
            "reprojection error p95 (px)",
            "final 3D vs detections, median (px)",
            "bone length std, median bone (mm)",
            "bone length std, worst bone (mm)",
            "joints triangulated (%)",
        ],
        "rows": rows,
        "notes": (
            "Videos 1080x1920 (cam01, cam02 letterboxed from the 1088x1920 calibration), BlazePose full, "
            "H36M-17 joints derived from the 33 landmarks. Reprojection error: of the triangulated joints over "
            "the views used; 'final 3D vs detections': the output pose (refined, filtered) projected into every "
            "view against that view's detections. The calibration itself reprojects the subject's cap "
            "with a median 18 px (tests/test_calibration_files.py), which bounds what detection can reach."
        ),
    }
