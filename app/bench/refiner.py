"""``crossview bench refiner``: the shipped CV-UGCN refiner's speed on the CPU, 2 and 4 views.

Input: a synthetic exercise routine (:func:`models.synthetic.motion.demo_routine`) seen by a
random rig through the medium simulated detector and triangulated (robust), so the poses, the
confidences and the missing joints are what the app feeds the refiner. Every figure times the
whole :meth:`models.refiner.Refiner.refine` call: the transforms into the camera frames, the ONNX
Runtime inference and the fusion back into the world frame.

- single frame: one ``refine`` call per frame (a live capture's case); wall-clock median and 95th
  percentile, the median process CPU time, and the median CPU time of the ONNX Runtime call
  alone (the network, without the NumPy transforms and fusion).
- batch: ``refine`` on 256 frames at once (processing a recorded take); the best of a few
  repeats, as milliseconds per frame (wall-clock and CPU) and frames per second.

Two paths in the same run, both on one ONNX Runtime thread (the app's default), taking turns in
blocks of frames so that the machine's load hits both alike:

- what the app runs: :class:`models.refiner.Refiner` with the export's fixed-view model for the
  rig's view count (``refiner.v4.onnx``, :mod:`training.fused_refiner`); the dynamic model when
  the export has none (the table names the file);
- the dynamic model before: ``refiner.onnx`` with dynamic batch and view axes, the only model
  before the fixed-view export (``Refiner.load(..., fixed_views=False)``).

With one thread the CPU time is one core's work and does not count time spent waiting for a core
that other processes hold, so it is the figure to compare on a busy machine.
"""

from __future__ import annotations

import time

import numpy as np

from calibration.triangulation import triangulate
from models.refiner import Refiner, to_cameras
from models.synthetic import make_multiview, random_rig
from models.synthetic.motion import demo_routine

VIEWS = (2, 4)
BATCH = 256
#: Single frames: the paths take turns in blocks of this many frames, the first few not counted.
BLOCK = 40
WARMUP_PER_BLOCK = 4


def bench_inputs(views: int, frames: int, *, seed: int = 0):
    """``points3d (T, 17, 3)`` mm, ``confidence (T, C, 17)`` and the rig: a triangulated synthetic take."""
    rng = np.random.default_rng([seed, views])
    rig = random_rig(rng, views)
    sample = make_multiview(demo_routine(max(8.0, frames / 30.0), 30.0, seed=seed)[:frames], rig, "medium", rng)
    tri = triangulate(rig, sample.keypoints, sample.confidence, robust=True)
    confidence = np.moveaxis(np.where(tri.inliers, sample.confidence, 0.0), 0, 1)  # (T, C, J)
    return tri.points, confidence, rig


def _single_frame_ms(refiners: dict[str, Refiner], points, confidence, rig) -> dict[str, np.ndarray]:
    """Per path: ``(3, n)`` ms, the wall-clock and process CPU times of one ``refine`` call per frame,
    and the CPU time of the network call alone on the same frame.

    The paths take turns in blocks of :data:`BLOCK` frames (the order alternating), so a change in
    the machine's load hits them alike while each block runs with its model's weights in the cache
    (a live loop's steady state); the first :data:`WARMUP_PER_BLOCK` frames of a block are not
    counted.
    """
    R = np.stack([c.R for c in rig])
    t = np.stack([c.t for c in rig])
    cam = to_cameras(points, R, t).astype(np.float32)  # (T, C, J, 3)
    conf = np.nan_to_num(confidence).clip(0.0, 1.0).astype(np.float32)  # (T, C, J), as refine cleans it
    times = {path: [] for path in refiners}
    paths = list(refiners)
    for block, first in enumerate(range(0, len(points), BLOCK)):
        for path in paths if block % 2 else paths[::-1]:
            refiner = refiners[path]
            model = refiner.model_for(len(rig))
            for i in range(first, min(first + BLOCK, len(points))):
                start, start_cpu = time.perf_counter(), time.process_time()
                refiner.refine(points[i:i + 1], confidence[i:i + 1], rig)
                stop_cpu = time.process_time()
                stop = time.perf_counter()
                model.run(cam[i:i + 1], conf[i:i + 1])
                if i - first >= WARMUP_PER_BLOCK:
                    times[path].append((1e3 * (stop - start), 1e3 * (stop_cpu - start_cpu),
                                        1e3 * (time.process_time() - stop_cpu)))
    return {path: np.asarray(rows).T for path, rows in times.items()}


def _batch_ms(refiners: dict[str, Refiner], points, confidence, rig, repeats: int) -> dict[str, tuple[float, float]]:
    """Per path: best wall-clock and best CPU time, ms, of ``refine`` on the first :data:`BATCH` frames
    (the paths take turns)."""
    best = {path: (float("inf"), float("inf")) for path in refiners}
    for path, refiner in refiners.items():
        refiner.refine(points[:BATCH], confidence[:BATCH], rig)  # warm-up
    for _ in range(repeats):
        for path, refiner in refiners.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            refiner.refine(points[:BATCH], confidence[:BATCH], rig)
            wall, cpu = 1e3 * (time.perf_counter() - start), 1e3 * (time.process_time() - start_cpu)
            best[path] = (min(best[path][0], wall), min(best[path][1], cpu))
    return best


def run(quick: bool = False, spec: str = "default") -> dict:
    """Measure the refiner ``spec`` (see :meth:`Refiner.load`) and return the table (see :mod:`app.bench`)."""
    frames = BLOCK * (4 if quick else 16)
    repeats = 3 if quick else 10
    refiners = {"app": Refiner.load(spec, device="cpu", threads=1),
                "before": Refiner.load(spec, device="cpu", threads=1, fixed_views=False)}
    rows = []
    for views in VIEWS:
        points, confidence, rig = bench_inputs(views, max(frames, BATCH))
        single = _single_frame_ms(refiners, points[:frames], confidence[:frames], rig)
        batch = _batch_ms(refiners, points, confidence, rig, repeats)
        for path, refiner in refiners.items():
            wall, cpu, network = single[path]
            batch_wall, batch_cpu = batch[path]
            label = {"app": "what the app runs", "before": "dynamic model (before)"}[path]
            rows.append([views, f"{refiner.model_for(views).path.name}: {label}", float(np.median(wall)),
                         float(np.percentile(wall, 95)), float(np.median(cpu)), float(np.median(network)),
                         batch_wall / BATCH, batch_cpu / BATCH, BATCH / batch_wall * 1e3])
    refiner = refiners["app"]
    widths = "/".join(str(w) for w in refiner.card.training.get("config", {}).get("model", {}).get("widths", [])) or "?"
    missing = [v for v in VIEWS if v not in refiner.fixed_models]
    return {
        "name": "refiner",
        "title": "CV-UGCN refiner on the CPU, one ONNX Runtime thread (whole refine call)",
        "columns": ["views", "model", "1 frame median (ms)", "1 frame p95 (ms)", "1 frame CPU median (ms)",
                    "1 frame network CPU (ms)", f"batch {BATCH}: ms/frame", f"batch {BATCH}: CPU ms/frame",
                    f"batch {BATCH}: frames/s"],
        "rows": rows,
        "notes": (f"{refiner.path} (widths {widths}, {refiner.path.stat().st_size / 1e6:.1f} MB per model), "
                  "ONNX Runtime CPUExecutionProvider, intra-op threads 1; triangulated synthetic routine, medium "
                  "detector noise; whole refine call (camera transforms and fusion in NumPy included); network "
                  "CPU = the ONNX Runtime call alone. refiner.vV.onnx = the fixed-view model (training."
                  "fused_refiner: same weights, folded BatchNorm, constant shapes), what the app runs; refiner.onnx "
                  "= the dynamic model, the only one before. The two take turns in blocks of "
                  f"{BLOCK} frames (batches: repeat by repeat), so the machine's load hits both alike; single frame: "
                  f"medians over {frames - frames // BLOCK * WARMUP_PER_BLOCK} frames (the first "
                  f"{WARMUP_PER_BLOCK} of each block not counted); batch: best of {repeats}."
                  + (f" This export has no fixed-view model for {missing} views: re-export with "
                     "'crossview train export RUN --out DIR'." if missing else "")),
    }
