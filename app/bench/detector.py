"""``crossview bench detector``: BlazePose latency per frame set for 1, 2 and 4 views.

Real frames: the Pose2Sim demo's four 1080x1920 videos (``../shared/data``). For each view count
the detector runs over the same frames twice: in tracking mode (the ROI comes from the previous
frame's landmarks, so only the landmark model runs: the steady state of a live capture) and with
detection forced on every frame (person detector + landmark model). All views of a frame set go
through each model in one batched ONNX Runtime call. Figures are wall-clock milliseconds per
frame set (median and 95th percentile) after a warm-up, including pre- and post-processing.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from calibration.errors import CrossviewError
from models.synthetic.mocap import shared_data_dir

VIEWS = (1, 2, 4)
FRAMES = 40
WARMUP = 5


def _load_frames(count: int) -> list[list[np.ndarray]]:
    """``count`` frame sets of the 4 demo videos (list over time of lists over views)."""
    folder = shared_data_dir() / "pose2sim_demo_single" / "videos"
    paths = [folder / f"cam0{i}.mp4" for i in range(1, 5)]
    if not all(p.is_file() for p in paths):
        raise CrossviewError(f"{folder}: the Pose2Sim demo videos are needed for this benchmark")
    captures = [cv2.VideoCapture(str(p)) for p in paths]
    frames = []
    try:
        for _ in range(count):
            frame_set = []
            for capture in captures:
                ok, frame = capture.read()
                if not ok:
                    raise CrossviewError("a demo video ended early")
                frame_set.append(frame)
            frames.append(frame_set)
    finally:
        for capture in captures:
            capture.release()
    return frames


def _time(detector, frames: list[list[np.ndarray]], views: int, *, track: bool) -> np.ndarray:
    detector.reset()
    times = []
    for index, frame_set in enumerate(frames):
        if not track:
            detector.reset()
        start = time.perf_counter()
        detector.detect(frame_set[:views])
        if index >= WARMUP:
            times.append(1000.0 * (time.perf_counter() - start))
    return np.asarray(times)


def run(quick: bool = False) -> dict:
    from models.blazepose import BlazePoseDetector
    from models.model_store import ensure_blazepose_models

    paths = ensure_blazepose_models()
    detector = BlazePoseDetector(paths["pose_detection"], paths["pose_landmark_full"], device="auto")
    frames = _load_frames(WARMUP + (10 if quick else FRAMES))
    rows = []
    for views in VIEWS:
        for track in (True, False):
            times = _time(detector, frames, views, track=track)
            rows.append([
                views,
                "tracking (landmarks only)" if track else "detector + landmarks",
                float(np.median(times)),
                float(np.percentile(times, 95)),
                float(np.median(times) / views),
            ])
    return {
        "name": "detector",
        "title": f"BlazePose latency per frame set ({detector.provider})",
        "columns": ["views", "mode", "median (ms)", "p95 (ms)", "median per view (ms)"],
        "rows": rows,
        "notes": (
            f"ONNX Runtime {detector.provider}, default threads; Pose2Sim demo frames (1080x1920); "
            "one batched call per model for all views; includes cropping, colour conversion and decoding."
        ),
    }
