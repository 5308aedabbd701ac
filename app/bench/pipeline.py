"""``crossview bench pipeline``: the whole pipeline's speed, end to end, for 2 and 4 views at 1080p.

Frames: the sample take's mannequin (:mod:`models.synthetic.mannequin`) walking through the
sample's routine, rendered beforehand by the sample's ring of cameras at 1920x1080 and held in
memory, so neither rendering nor video decoding is timed: the figures are for decoded frames
(the cost of decoding one 1080p MPEG-4 frame is measured separately and given in the notes).
Each configuration runs :class:`app.pipeline.Pipeline` (BlazePose with tracking, robust
triangulation, the refiner when present, the One-Euro filter) on one frame set after another, the
frames played forwards then backwards so the motion stays continuous; after a warm-up, per frame set:

- frame sets per second: 1000 / mean end-to-end milliseconds (one frame set at a time, as the
  live loop runs);
- latency median and p95, end to end and per stage (``PoseFrame.timings_ms``).

The device is ``auto``: CUDA where ONNX Runtime has it, else the CPU, with no change to the code.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from calibration.rig import Rig

logger = logging.getLogger(__name__)

WIDTH, HEIGHT = 1920, 1080
VIEWS = (2, 4)
RENDERED = 20  # distinct frame sets held in memory (~25 MB per 4-view set)
WARMUP = 5
MEASURED = 60
STAGES_SHOWN = ("detect", "triangulate", "refine", "filter")


def bench_rig(num_cameras: int = 4) -> Rig:
    """The sample's ring of cameras (:func:`app.sample.sample_rig`) at 1920x1080."""
    from app.sample import sample_rig

    return Rig(tuple(c.fitted_to_image(WIDTH, HEIGHT) for c in sample_rig(num_cameras)))


def render_frames(rig: Rig, count: int) -> list[list[np.ndarray]]:
    """``count`` frame sets (lists over the rig's cameras of ``(1080, 1920, 3)`` uint8 BGR)."""
    from models.synthetic.mannequin import MannequinRenderer
    from models.synthetic.motion import demo_routine

    motion = demo_routine(duration_s=8.0, fps=30.0, seed=0)[150:150 + count]  # (count, 17, 3) mm
    renderers = [MannequinRenderer(camera) for camera in rig]
    return [[renderer.render(pose) for renderer in renderers] for pose in motion]


def decode_ms(frames: list[np.ndarray]) -> float:
    """Median milliseconds to decode one frame of an MPEG-4 (mp4v) video of ``frames``."""
    with tempfile.TemporaryDirectory(prefix="crossview-bench-") as folder:
        path = Path(folder) / "view.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (WIDTH, HEIGHT))
        for frame in frames:
            writer.write(frame)
        writer.release()
        capture = cv2.VideoCapture(str(path))
        times = []
        while True:
            start = time.perf_counter()
            ok, _ = capture.read()
            if not ok:
                break
            times.append(1000.0 * (time.perf_counter() - start))
        capture.release()
    return float(np.median(times)) if times else float("nan")


def _play(frames: list, total: int):
    """Indices that play ``frames`` forwards then backwards, ``total`` of them."""
    cycle = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    return [cycle[i % len(cycle)] for i in range(total)]


def time_pipeline(pipeline, frames: list[list[np.ndarray]], measured: int, warmup: int = WARMUP) -> dict:
    """Run ``pipeline`` over ``frames`` (ping-pong) and return per-stage timings and methods."""
    pipeline.reset()
    poses, cpu_ms = [], []
    for step, index in enumerate(_play(frames, warmup + measured)):
        cpu_start = time.process_time()
        pose = pipeline.process(frames[index], step / 30.0)
        if step >= warmup:
            poses.append(pose)
            cpu_ms.append(1000.0 * (time.process_time() - cpu_start))
    stages = {s: np.array([p.timings_ms[s] for p in poses]) for s in poses[0].timings_ms}
    return {
        "fps": 1000.0 / float(stages["total"].mean()),
        "cpu_ms": float(np.median(cpu_ms)),
        "stages": {s: (float(np.median(v)), float(np.percentile(v, 95))) for s, v in stages.items()},
        "methods": sorted({p.method for p in poses}),
        "provider": poses[0].provider,
    }


def run(quick: bool = False) -> dict:
    from app.detection import open_detector
    from app.pipeline import DEFAULT_MODELS, Pipeline, load_model
    from models.filters import OneEuroFilter

    rendered = 8 if quick else RENDERED
    measured = 15 if quick else MEASURED
    rig = bench_rig(max(VIEWS))
    frames = render_frames(rig, rendered)
    decode = decode_ms([frame_set[0] for frame_set in frames])
    detector = open_detector("blazepose", "auto")
    refiner = load_model("refiner", "default") if DEFAULT_MODELS["refiner"].is_file() else None
    load = [os.getloadavg()[0]]
    rows = []
    for views in VIEWS:
        sub = Rig(rig.cameras[:views])
        sub_frames = [frame_set[:views] for frame_set in frames]
        for model in (None, refiner) if refiner is not None else (None,):
            pipeline = Pipeline(sub, detector, refiner=model, smoother=OneEuroFilter())
            figures = time_pipeline(pipeline, sub_frames, measured)
            stages = figures["stages"]
            rows.append([
                views,
                "yes" if model is not None else "no",
                figures["fps"],
                stages["total"][0],
                stages["total"][1],
                figures["cpu_ms"],
                *[f"{stages[s][0]:.1f} / {stages[s][1]:.1f}" for s in STAGES_SHOWN],
                ", ".join(figures["methods"]),
            ])
            logger.info("%d views, refiner %s: %.1f frame sets/s", views, model is not None, figures["fps"])
    load.append(os.getloadavg()[0])
    return {
        "name": "pipeline",
        "title": f"Pipeline end to end at 1920x1080, one frame set at a time ({detector.provider})",
        "columns": ["views", "refiner", "frame sets/s", "latency median (ms)", "latency p95 (ms)",
                    "CPU time median (ms, all threads)", *[f"{s} median / p95 (ms)" for s in STAGES_SHOWN], "3D from"],
        "rows": rows,
        "notes": (
            f"BlazePose full (tracking: the person detector runs only when a view loses the person), robust "
            f"triangulation, CV-UGCN refiner (ONNX, CPU), One-Euro filter; device auto. {rendered} frame sets of the "
            f"sample's mannequin rendered at 1080p by the sample's camera ring and held in memory, played back and "
            f"forth, {measured} timed after {WARMUP} warm-up. Frames are already decoded: decoding one 1080p MPEG-4 "
            f"frame takes {decode:.1f} ms more per view here (OpenCV, one thread per video in live capture). "
            f"1-minute load average {load[0]:.1f} before and {load[1]:.1f} after the run on {os.cpu_count()} "
            "cores: other jobs shared the CPU, so the figures are lower bounds of a quiet machine's."
        ),
    }
