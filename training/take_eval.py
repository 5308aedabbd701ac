"""Does training on a take (no 3D) help on that take's held-out frames? A fair measure, and synthetic takes.

Why not the plain reprojection error. Triangulation nearly minimises the reprojection error
against the very detections it triangulated, so no refinement can beat it on that number, and a
refiner that beat it would be fitting the detector's noise. The measure must compare both
methods against 2D evidence that the triangulation did not use:

- **Leave one camera out** (``loco``, any take of >= 3 cameras, no truth needed): for every
  held-out frame and every camera c, triangulate from the other C - 1 cameras, refine that (the
  model is given camera c's position, with confidence 0: it sees nothing of c's image), project
  both poses into camera c and measure the distance to camera c's detections (those with
  confidence > 0). Detector noise adds the same floor to both methods; what differs is how well
  each 3D pose explains a view it never saw.
- **Against the truth's projections** (synthetic takes, ``ground_truth.npz``): the same leave-one-
  camera-out poses projected into camera c against the exact projection of the true joints into
  c (``loco_clean``), and the all-camera poses against the exact projections into every camera
  (``all_views_clean``). Only joints whose true projection lies inside the image count (what a
  detector could have seen).

Both methods are scored on the same joints (where the triangulation placed the joint); the
figures are pooled over frames, joints and cameras: mean and median, px.

:func:`write_synthetic_take` writes a take folder exactly as a user's (``calibration.yaml``,
``poses2d.npz``) plus ``ground_truth.npz``, from CMU motion, a random rig and the simulated
detector, so the measure runs through the user's path (:func:`training.take_data.read_take`).

Command line (the figure reported in the README)::

    python -m training.take_eval --init runs/refiner-v1 --out /tmp/take_eval --cameras 3 4 --seeds 0 --steps 100

Measured 2026-11-23 (CMU test session, 1637 frames at 30 fps, medium detector, last 20 % held out
after a 1 s gap; mean px, leave-one-camera-out vs detections / vs truth projections / all cameras
vs truth projections). 3 cameras: triangulation 6.03 / 4.23 / 2.32; the CMU-trained refiner
(run refiner-v1, epoch 6) untouched 5.25 / 3.31 / 1.87; fine-tuned on the take, 100 steps,
5.15 / 3.16 / 1.89; trained on the take alone from scratch (200 steps, lr 3e-3) 5.92 / 4.08 /
2.30. 4 cameras: triangulation 5.51 / 3.43 / 2.01; untouched 4.92 / 2.69 / 1.68; fine-tuned
4.95 / 2.71 / 1.71.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from calibration import save_rig
from calibration.rig import Rig
from models.keypoint_io import Poses2D, atomic_write_bytes, npz_bytes, save_poses2d
from models.synthetic import centre_on_floor, load_cmu, make_multiview, random_placement, random_rig
from training.cvugcn import CVUGCN
from training.data import RefinerDataset
from training.evaluate import refine_dataset
from training.take_data import TakeDataConfig, TakeInputs, read_take, take_arrays, take_groups, take_split

log = logging.getLogger(__name__)

TAKE_FPS = 30.0
_RIG_TARGET_MM = (0.0, 0.0, 900.0)


# ------------------------------------------------------------------------------------------------
# Synthetic takes
def write_synthetic_take(folder: str | Path, points3d: np.ndarray, rig: Rig, *, noise: str = "medium",
                         seed: int = 0, fps: float = TAKE_FPS) -> Path:
    """Simulate the detector on ``points3d`` seen by ``rig`` and write a take folder.

    Args:
        folder: created if needed; ``calibration.yaml``, ``poses2d.npz`` (H36M-17 detections) and
            ``ground_truth.npz`` (``points (T, 17, 3)`` mm) are written atomically.
        points3d: ``(T, 17, 3)`` mm world (Z up, floor at z = 0).
        rig: the cameras.
        noise: detector preset (:mod:`models.synthetic.noise`).
        seed: seeds the detector simulation.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sample = make_multiview(points3d, rig, noise, np.random.default_rng([seed, 11]), fps=fps)
    timestamps = np.arange(sample.num_frames) / fps
    poses = Poses2D(np.moveaxis(sample.keypoints, 0, 1), np.moveaxis(sample.confidence, 0, 1),  # (T, C, J, 2), (T, C, J)
                    rig.names, "h36m17", timestamps=timestamps)
    save_rig(rig, folder / "calibration.yaml", metadata={"source": f"synthetic take (noise {noise}, seed {seed})"})
    save_poses2d(poses, folder / "poses2d.npz")
    atomic_write_bytes(folder / "ground_truth.npz", npz_bytes(points=sample.points3d, timestamps=timestamps,
                                                              units=np.array("mm"), noise=np.array(noise)))
    return folder


def cmu_session(split: str = "test", *, seed: int = 0, max_frames: int | None = None,
                fps: float = TAKE_FPS) -> np.ndarray:
    """The CMU clips of ``split`` one after another, as one person's session in one room.

    Each clip is centred on the floor, turned by a random yaw and shifted up to 0.5 m.

    Returns:
        ``(T, 17, 3)`` float64 mm, at most ``max_frames`` frames.
    """
    rng = np.random.default_rng([seed, 5])
    clips = [random_placement(rng, centre_on_floor(s).points, max_offset_mm=500.0) for s in load_cmu(split=split, fps=fps)]
    points = np.concatenate(clips)
    return points[:max_frames] if max_frames else points


def session_rig(points3d: np.ndarray, num_cameras: int, seed: int) -> Rig:
    """A random rig (:func:`models.synthetic.random_rig`) whose volume holds the whole session."""
    rng = np.random.default_rng([seed, 3])
    reach = np.nanmax(np.linalg.norm(points3d[..., :2] - np.asarray(_RIG_TARGET_MM[:2]), axis=-1))
    return random_rig(rng, num_cameras, target=_RIG_TARGET_MM, volume_radius_mm=max(1000.0, float(reach) + 100.0))


# ------------------------------------------------------------------------------------------------
# The held-out measure
def refine_views(model: CVUGCN | None, inputs: TakeInputs, frames: np.ndarray,
                 views: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate ``frames`` from ``views`` and refine them (all cameras given to the model, the
    others with confidence 0).

    Returns:
        ``coarse (N, 17, 3)`` and ``refined (N, 17, 3)`` mm world (``refined = coarse`` without a
        model; NaN where the triangulation placed nothing).
    """
    arrays = take_arrays(inputs, frames, views)
    coarse = arrays["coarse_world"].astype(np.float64)
    if model is None:
        return coarse, coarse.copy()
    _, refined, _ = refine_dataset(model, RefinerDataset({inputs.num_cameras: arrays}))
    return coarse, refined


def _inside(camera, pixels: np.ndarray) -> np.ndarray:
    return np.isfinite(pixels).all(-1) & np.all((pixels >= 0) & (pixels <= [camera.width - 1, camera.height - 1]), -1)


def _summary(errors: list[np.ndarray]) -> dict:
    e = np.concatenate([x.ravel() for x in errors]) if errors else np.zeros(0)
    e = e[np.isfinite(e)]
    if not e.size:
        return {"count": 0, "mean_px": float("nan"), "median_px": float("nan")}
    return {"count": int(e.size), "mean_px": float(e.mean()), "median_px": float(np.median(e))}


def heldout_errors(model: CVUGCN | None, inputs: TakeInputs, frames: np.ndarray) -> dict:
    """Reprojection errors of ``frames`` (see the module docstring), triangulation versus refined.

    Returns:
        ``{"loco": {"triangulation": {...}, "refined": {...}}, "loco_clean": ..., "all_views_clean":
        ...}`` with ``count``, ``mean_px``, ``median_px`` each (the ``*_clean`` entries only with a
        truth, ``loco*`` only with three or more cameras).
    """
    frames = np.asarray(frames, dtype=np.int64)
    rig, C = inputs.rig, inputs.num_cameras
    clean = None
    if inputs.truth is not None:
        clean = [camera.project(inputs.truth[frames]) for camera in rig]  # C x (N, J, 2)
    collected: dict[str, dict[str, list]] = {}

    def add(name: str, coarse_px, refined_px, target_px, valid):
        entry = collected.setdefault(name, {"triangulation": [], "refined": []})
        valid = valid & np.isfinite(coarse_px).all(-1) & np.isfinite(refined_px).all(-1)
        entry["triangulation"].append(np.linalg.norm(coarse_px - target_px, axis=-1)[valid])
        entry["refined"].append(np.linalg.norm(refined_px - target_px, axis=-1)[valid])

    if C >= 3:
        for c, camera in enumerate(rig):
            coarse, refined = refine_views(model, inputs, frames, tuple(v for v in range(C) if v != c))
            coarse_px, refined_px = camera.project(coarse), camera.project(refined)  # (N, J, 2)
            detections, seen = inputs.keypoints[frames, c], inputs.confidence[frames, c] > 0
            add("loco", coarse_px, refined_px, detections, seen)
            if clean is not None:
                add("loco_clean", coarse_px, refined_px, clean[c], _inside(camera, clean[c]))
    if clean is not None:
        coarse, refined = refine_views(model, inputs, frames)
        for c, camera in enumerate(rig):
            add("all_views_clean", camera.project(coarse), camera.project(refined), clean[c], _inside(camera, clean[c]))
    return {name: {method: _summary(e) for method, e in entry.items()} for name, entry in collected.items()}


def format_errors(errors: dict) -> str:
    """One line per measure: mean (median) px, triangulation -> refined."""
    lines = []
    for name, entry in errors.items():
        t, r = entry["triangulation"], entry["refined"]
        lines.append(f"{name:16s} triangulation {t['mean_px']:6.2f} px (median {t['median_px']:5.2f}) -> refined "
                     f"{r['mean_px']:6.2f} px (median {r['median_px']:5.2f}), {t['count']} joint-views")
    return "\n".join(lines)


def report_take_run(run_dir: str | Path, take: str | Path, holdout: float) -> str:
    """Score a run trained with ``--take`` on that take's held-out frames; writes ``heldout.json``
    into the run folder and returns the lines to print."""
    from training.train_refiner import load_refiner

    model, _ = load_refiner(run_dir)
    inputs = read_take(take)
    _, held = take_split(inputs, TakeDataConfig(str(take), holdout=holdout))
    errors = heldout_errors(model, inputs, held)
    atomic_write_bytes(Path(run_dir) / "heldout.json", json.dumps(
        {"take": str(take), "heldout_frames": [int(held[0]), int(held[-1]) + 1], "errors": errors}, indent=2).encode())
    if not errors:
        return "held-out frames: no measure (leave-one-camera-out needs 3 or more cameras, the others a ground truth)"
    return f"held-out frames {held[0]}..{held[-1]} (reprojection error, px):\n" + format_errors(errors)


# ------------------------------------------------------------------------------------------------
# The measurement behind the README figure
def measure(out_dir: str | Path, *, cameras=(3, 4), seeds=(0, 1), noise: str = "medium", init: str | None = None,
            steps: int = 200, batch_size: int = 256, holdout: float = 0.2, threads: int = 1,
            lr: float | None = None) -> dict:
    """Synthetic takes (CMU test motion as one session, a random rig per take), trained through
    :func:`training.train_refiner.train` exactly as ``crossview train refiner --take`` does, then
    scored on the held-out frames: triangulation, the ``init`` model untouched, and after training."""
    from training.cvugcn import CVUGCNConfig
    from training.train_refiner import TrainConfig, load_refiner, read_checkpoint, train

    out_dir = Path(out_dir)
    results = {}
    if init:
        # A frozen copy: the run may still be training and replace its checkpoint meanwhile.
        state = read_checkpoint(init)
        (out_dir / "init").mkdir(parents=True, exist_ok=True)
        torch.save(state, out_dir / "init" / "checkpoint.pt")
        results["init"] = {"from": str(init), "epoch": int(state.get("epoch", -1))}
        init = str(out_dir / "init")
    for C in cameras:
        for seed in seeds:
            name = f"C{C}_seed{seed}"
            points = cmu_session(seed=seed)
            folder = write_synthetic_take(out_dir / "takes" / name, points, session_rig(points, C, seed), noise=noise,
                                          seed=seed)
            inputs = read_take(folder)
            train_frames, held = take_split(inputs, TakeDataConfig(str(folder), holdout=holdout))
            entry = {"cameras": C, "seed": seed, "noise": noise, "train_frames": len(train_frames),
                     "heldout_frames": len(held), "triangulation_only": heldout_errors(None, inputs, held)}
            model_config = CVUGCNConfig(widths=(64, 96, 128))
            if init:
                model_config = TrainConfig.from_dict(read_checkpoint(init)["config"]).model
                model, _ = load_refiner(init)
                entry["init_untrained_on_take"] = heldout_errors(model, inputs, held)
            rows = len(RefinerDataset(take_groups(inputs, train_frames)))
            epochs = max(1, round(steps * batch_size / rows))
            config = TrainConfig(out_dir=str(out_dir / "runs"), run_name=name, model=model_config, epochs=epochs,
                                 batch_size=batch_size, take=str(folder), holdout=holdout, init=init,
                                 num_threads=threads, lr=lr or (1e-3 if init is None else 3e-4))
            model, _ = load_refiner(train(config))
            entry["trained_on_take"] = heldout_errors(model, inputs, held)
            entry["epochs"] = epochs
            results[name] = entry
            log.info("%s:\n%s", name, format_errors(entry["trained_on_take"]))
    return results


__all__ = ["cmu_session", "format_errors", "heldout_errors", "measure", "refine_views", "report_take_run",
           "session_rig", "write_synthetic_take"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for the synthetic takes, runs and take_eval.json")
    parser.add_argument("--init", default=None, help="fine-tune from this run folder or checkpoint")
    parser.add_argument("--cameras", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--noise", default="medium")
    parser.add_argument("--steps", type=int, default=200, help="about this many training steps per take")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr", type=float, default=None, help="default 1e-3 from scratch, 3e-4 with --init")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    results = measure(args.out, cameras=args.cameras, seeds=args.seeds, noise=args.noise, init=args.init,
                      steps=args.steps, threads=args.threads, lr=args.lr)
    atomic_write_bytes(Path(args.out) / "take_eval.json", json.dumps(results, indent=2).encode())
    for name, entry in results.items():
        if name == "init":
            print(f"initial weights: {entry['from']} (epoch {entry['epoch']})")
            continue
        print(f"== {name} ({entry['heldout_frames']} held-out frames)")
        for key in ("triangulation_only", "init_untrained_on_take", "trained_on_take"):
            if key in entry:
                print(f"-- {key}\n" + format_errors(entry[key]))


if __name__ == "__main__":
    main()

