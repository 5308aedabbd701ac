"""The single-view lifter on the CMU test split: N-MPJPE, MPJPE, P-MPJPE, PCK and the placed pose.

For each detector preset (clean, low, medium, high) the test motion is placed in random rigs of
four cameras (one rig per 1 s chunk, a seed of its own), the detector simulated, and every view that
sees at least :data:`training.lifter_data.MIN_SEEN_JOINTS` joints lifted *on its own*. The
root-relative camera-frame pose is scored against the truth with :func:`models.metrics.evaluate`
(MPJPE, P-MPJPE, N-MPJPE, PCK@150 mm, AUC, PSS). ``placed_mpjpe_mm`` is the distance, without
any alignment, of the pose placed in the camera frame by :func:`models.lifter.fit_root_translation`
(what ``Lifter.lift`` returns, before the rigid map to the world).

Comparison with the papers (``docs/methods.md``) is indicative only: they report Human3.6M (CPN
detections, 4 fixed cameras, actors on a stage), we report CMU motion through simulated detectors
and random rigs; the motion, the cameras and the 2D errors all differ.

Command line (also ``crossview train evaluate RUN`` on a lifter run)::

    python -m training.lifter_evaluate runs/lifter --out runs/lifter/evaluation
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from models.lifter import fit_root_translation
from models.metrics import evaluate, mpjpe
from training.lifter import Lifter, normalised_coordinates
from training.lifter_data import LifterDataConfig, build_lifter_arrays, single_views

log = logging.getLogger(__name__)

NOISES = ("clean", "low", "medium", "high")
TEST_SEED = 2026
TEST_VIEWS = 4
#: The papers' single-view figures on Human3.6M (docs/methods.md), mm.
PAPERS = (
    {"method": "seed 001 transform re-projection (Li et al.), H36M, CPN 2D", "mpjpe_mm": 59.0, "p_mpjpe_mm": 45.7},
    {"method": "seed 001 + 8 virtual views, H36M", "mpjpe_mm": 57.0, "p_mpjpe_mm": 44.1},
    {"method": "seed 003 cross-view self-fusion (Kim et al.), H36M", "n_mpjpe_mm": 61.4, "p_mpjpe_mm": 45.9},
    {"method": "CanonPose (in seed 003), H36M", "n_mpjpe_mm": 74.3, "p_mpjpe_mm": 53.0},
    {"method": "seed 002 (Roy et al.), H36M, S1 labelled", "mpjpe_mm": 60.8, "n_mpjpe_mm": 60.4, "p_mpjpe_mm": 48.4},
)


def cmu_test_views(noise: str, *, seed: int = TEST_SEED, passes: int = 1, max_sequences: int | None = None) -> dict:
    """The CMU test split's single views at one detector preset (see :func:`training.lifter_data.single_views`)."""
    config = LifterDataConfig(split="test", num_cameras=(TEST_VIEWS, TEST_VIEWS), noise=noise, seed=seed,
                              passes=passes, max_sequences=max_sequences)
    return single_views(build_lifter_arrays(config, min_views=1))


def score_views(model: Lifter, views: dict, *, device: str = "cpu") -> dict:
    """Lift ``views`` and score them: :func:`models.metrics.evaluate`'s scalars plus ``placed_mpjpe_mm``."""
    from training.lifter_train import lift_views

    relative = lift_views(model, views, device=device)  # (M, J, 3) mm
    normalized = normalised_coordinates(torch.from_numpy(np.nan_to_num(views["keypoints"]).astype(np.float64)),
                                        torch.from_numpy(views["K"].astype(np.float64))).numpy()
    seen = np.isfinite(views["keypoints"]).all(axis=-1) & (views["confidence"] > 0)
    normalized[~seen] = np.nan
    placed = relative + fit_root_translation(relative, normalized, views["confidence"])[:, None, :]
    result = {k: v for k, v in evaluate(relative, views["truth_cam"]).items() if np.isscalar(v)}
    result["placed_mpjpe_mm"] = mpjpe(placed, views["truth_cam"])
    result["placed_fraction"] = float(np.isfinite(placed).all(axis=(1, 2)).mean())
    result.pop("absolute_mpjpe_mm", None)  # the network's output is root-relative: placed_mpjpe_mm is the absolute
    return result


def evaluate_lifter(model: Lifter, *, noises=NOISES, seed: int = TEST_SEED, device: str = "cpu",
                    max_sequences: int | None = None) -> dict:
    """``{"clean": {...}, "low": {...}, ...}``: :func:`score_views` per detector preset on the CMU test split."""
    results = {}
    for noise in noises:
        views = cmu_test_views(noise, seed=seed, max_sequences=max_sequences)
        results[noise] = {"noise": noise, "num_views": len(views["keypoints"]), **score_views(model, views, device=device)}
        r = results[noise]
        log.info("%s: N-MPJPE %.1f, MPJPE %.1f, P-MPJPE %.1f, placed %.1f mm (%d views)", noise, r["n_mpjpe_mm"],
                 r["mpjpe_mm"], r["p_mpjpe_mm"], r["placed_mpjpe_mm"], r["num_views"])
    return results


def markdown_table(results: dict, *, label: str = "", papers: bool = True) -> str:
    """The results (mm; PCK and AUC in %) as a Markdown table, the papers' Human3.6M figures below."""
    lines = ["| model | detector noise | views | N-MPJPE | MPJPE | P-MPJPE | PCK150 | AUC | placed MPJPE |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results.values():
        lines.append(f"| {label} | {r['noise']} | {r['num_views']} | {r['n_mpjpe_mm']:.1f} | {r['mpjpe_mm']:.1f} "
                     f"| {r['p_mpjpe_mm']:.1f} | {r['pck_percent']:.1f} | {r['auc_percent']:.1f} "
                     f"| {r['placed_mpjpe_mm']:.1f} |")
    if papers:
        for p in PAPERS:
            cell = lambda k: f"{p[k]:.1f}" if k in p else "-"  # noqa: E731
            lines.append(f"| {p['method']} | (Human3.6M) | - | {cell('n_mpjpe_mm')} | {cell('mpjpe_mm')} "
                         f"| {cell('p_mpjpe_mm')} | - | - | - |")
    return "\n".join(lines)


def evaluate_run(run_dir: str | Path, *, out: str | Path | None = None, device: str = "cpu",
                 max_sequences: int | None = None) -> str:
    """Evaluate a run's lifter; writes ``results.json`` and ``results.md`` to ``out`` (default
    ``RUN/evaluation``) and returns the Markdown table."""
    from models.keypoint_io import atomic_write_bytes
    from training.lifter_train import load_run

    model, config, rows = load_run(run_dir, device)
    results = evaluate_lifter(model, device=device, max_sequences=max_sequences)
    out = Path(out or Path(run_dir) / "evaluation")
    out.mkdir(parents=True, exist_ok=True)
    label = f"{Path(run_dir).name} ({'weak, no 3D' if config.objective == 'weak' else 'SUPERVISED 3D L1'})"
    payload = {"run": str(run_dir), "objective": config.objective, "epochs_trained": len(rows),
               "test_seed": TEST_SEED, "views_per_frame": TEST_VIEWS, "results": results}
    atomic_write_bytes(out / "results.json", json.dumps(payload, indent=2).encode())
    table = markdown_table(results, label=label)
    atomic_write_bytes(out / "results.md", (table + "\n").encode())
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", default=None, help="folder for results.json and results.md (default RUN/evaluation)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(evaluate_run(args.run_dir, out=args.out, device=args.device))


if __name__ == "__main__":
    main()
