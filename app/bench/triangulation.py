"""``crossview bench triangulation``: joint-triangulations per second on one core.

A synthetic ring of eight 1920x1080 cameras 2.5-4.5 m around a person-sized volume; 2, 4 and 8
of them triangulate the same random points (2 px detector noise), plain DLT and robust, without
and with lens distortion. Each figure is the best of a few repeats of one vectorised
``triangulate`` call, and includes input checks, undistortion and the per-point reprojection
error. The triangulator is single-threaded NumPy (no BLAS or OpenCV calls on these models), so
the figures are per core.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from calibration.camera import look_at
from calibration.rig import Rig
from calibration.triangulation import normalized_from_pixels, triangulate

VIEWS = (2, 4, 8)
NOISE_PX = 2.0


def bench_rig(distortion: bool, *, cameras: int = 8, seed: int = 0) -> Rig:
    """A ring of ``cameras`` cameras 2.5-4.5 m from the centre of a 1.9 m tall volume."""
    rng = np.random.default_rng(seed)
    members = []
    for i in range(cameras):
        angle = 2 * np.pi * i / cameras + rng.uniform(-0.2, 0.2)
        radius = rng.uniform(2500.0, 4500.0)
        center = (radius * np.cos(angle), radius * np.sin(angle), rng.uniform(1000.0, 2500.0))
        dist = None
        if distortion:
            dist = (rng.uniform(-0.12, 0.05), rng.uniform(-0.02, 0.02), *rng.uniform(-5e-4, 5e-4, 2),
                    rng.uniform(-0.005, 0.005))
        members.append(
            look_at(f"cam{i}", center, (0.0, 0.0, 950.0), width=1920, height=1080,
                    focal_px=rng.uniform(1100.0, 1500.0), dist=dist)
        )
    return Rig(tuple(members))


def _best_time(function, repeats: int) -> float:
    """Least CPU time of the process over ``repeats`` calls, s (CPU time, so that other work on a
    shared machine does not count; the code is single-threaded, so it equals one core's time)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        function()
        best = min(best, time.process_time() - start)
    return best


def run(quick: bool = False) -> dict:
    """Measure and return the table (see :mod:`app.bench`)."""
    points = 10_000 if quick else 200_000
    repeats = 1 if quick else 5
    rng = np.random.default_rng(1)
    world = rng.uniform((-800.0, -800.0, 0.0), (800.0, 800.0, 1900.0), size=(points, 3))  # (N, 3) mm
    rows = []
    undistort_newton = undistort_opencv = float("nan")
    for distortion in (False, True):
        rig = bench_rig(distortion)
        pixels = rig.project(world) + rng.normal(0.0, NOISE_PX, (len(rig), points, 2))  # (8, N, 2)
        if distortion:
            camera, detected = rig[0], pixels[0]
            undistort_newton = _best_time(lambda: normalized_from_pixels(camera, detected), repeats) / points
            undistort_opencv = _best_time(lambda: camera.undistort_points(detected, normalized=True), repeats) / points
        for views in VIEWS:
            subset = Rig(rig.cameras[:views])
            observed = np.ascontiguousarray(pixels[:views])  # (views, N, 2)
            for mode in ("dlt", "robust"):
                robust = mode == "robust"
                triangulate(subset, observed[:, :1000], robust=robust)  # warm-up
                seconds = max(_best_time(lambda: triangulate(subset, observed, robust=robust), repeats), 1e-9)
                rows.append([views, mode, "yes" if distortion else "no", points / seconds, 1e6 * seconds / points])
    notes = (
        f"{points:,} points per call, {NOISE_PX:g} px noise and no outliers (robust: pair weights; "
        f"view rejection runs only for points over the threshold), best of {repeats} (process CPU time); "
        "one core (single-threaded NumPy). "
        "Distortion: OpenCV k1 k2 p1 p2 k3, undistorted by a vectorised Newton solve at "
        f"{1e6 * undistort_newton:.3f} us per camera-point (cv2.undistortPoints: {1e6 * undistort_opencv:.3f} us). "
        f"OpenCV {cv2.__version__}, NumPy {np.__version__}."
    )
    return {
        "name": "triangulation",
        "title": "Triangulation throughput (joint-triangulations per second, one core)",
        "columns": ["views", "mode", "distortion", "points / s", "us / point"],
        "rows": rows,
        "notes": notes,
    }
