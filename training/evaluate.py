"""Triangulation alone versus triangulation + CV-UGCN on the CMU test split.

For each number of views (2, 3, 4) and detector preset (low, medium, high) the test motion is
placed in random rigs, the detector simulated, the frames triangulated (robust triangulation) and
refined; both are scored against the truth with :func:`models.metrics.evaluate` (root-relative
MPJPE, P-MPJPE, N-MPJPE, PCK@150 mm, AUC, PSS). The refined pose is the confidence-weighted fusion
of the per-view outputs in the world frame. Joints the triangulation could not place are left out
of both scores (the refiner fills them in, but there is nothing to compare them with).

Command line::

    python -m training.evaluate runs/cvugcn --out runs/cvugcn/evaluation
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from models.metrics import evaluate, mpjpe, root_relative
from training.cvugcn import CVUGCN, fuse_views
from training.data import DataConfig, RefinerDataset

log = logging.getLogger(__name__)

VIEWS = (2, 3, 4)
NOISES = ("low", "medium", "high")
TEST_SEED = 2026


@torch.no_grad()
def refine_dataset(model: CVUGCN, dataset: RefinerDataset, *, batch_size: int = 1024,
                   device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the refiner over every frame of ``dataset``.

    Returns:
        ``coarse (N, J, 3)``, ``refined (N, J, 3)`` (fused world pose, NaN where the coarse joint is
        NaN) and ``truth (N, J, 3)``, float64 mm, frames in the dataset's order.
    """
    was_training = model.training
    model.eval()
    coarse, refined, truth = [], [], []
    for V in dataset.views:
        indices = dataset.group_indices(V)
        for start in range(0, len(indices), batch_size):
            batch = {k: v.to(device) for k, v in dataset.__getitems__(indices[start:start + batch_size]).items()}
            out = model(batch["points_cam"], batch["confidence"])
            world = fuse_views(out, batch["confidence"], batch["R"], batch["t"]).double().cpu().numpy()
            c = batch["coarse_world"].double().cpu().numpy()
            refined.append(np.where(np.isfinite(c), world, np.nan))
            coarse.append(c)
            truth.append(batch["points3d"].double().cpu().numpy())
    model.train(was_training)
    return np.concatenate(coarse), np.concatenate(refined), np.concatenate(truth)


def score(pred: np.ndarray, truth: np.ndarray, *, full: bool = False) -> dict:
    """Root-relative MPJPE (``{"mpjpe_mm": ...}``), or every metric of :func:`models.metrics.evaluate`."""
    if full:
        return {k: v for k, v in evaluate(pred, truth).items() if np.isscalar(v)}
    return {"mpjpe_mm": mpjpe(root_relative(pred), root_relative(truth))}


def evaluate_refiner(model: CVUGCN, *, baseline: CVUGCN | None = None, views=VIEWS, noises=NOISES,
                     passes: int = 1, seed: int = TEST_SEED, device: str = "cpu",
                     max_sequences: int | None = None) -> dict:
    """The test-split comparison.

    ``baseline`` (optional) is the fully supervised model of the table's labelled baseline column,
    scored on the very same frames.

    Returns:
        ``{"V=2/medium": {"views", "noise", "num_frames", "triangulation": metrics, "refined": metrics,
        "mpjpe_ratio"[, "supervised": metrics]}, ...}`` (metrics from :func:`score` with ``full=True``).
    """
    results = {}
    for V in views:
        for noise in noises:
            config = DataConfig(split="test", num_cameras=(V, V), noise=noise, seed=seed, passes=passes,
                                max_sequences=max_sequences)
            dataset = RefinerDataset.build(config)
            coarse, refined, truth = refine_dataset(model, dataset, device=device)
            tri, ref = score(coarse, truth, full=True), score(refined, truth, full=True)
            entry = {"views": V, "noise": noise, "num_frames": len(truth), "triangulation": tri, "refined": ref,
                     "mpjpe_ratio": ref["mpjpe_mm"] / tri["mpjpe_mm"]}
            if baseline is not None:
                entry["supervised"] = score(refine_dataset(baseline, dataset, device=device)[1], truth, full=True)
            results[f"V={V}/{noise}"] = entry
            log.info("V=%d %s: MPJPE %.1f -> %.1f mm (x%.3f)", V, noise, tri["mpjpe_mm"], ref["mpjpe_mm"],
                     ref["mpjpe_mm"] / tri["mpjpe_mm"])
    return results


METRIC_COLUMNS = (("p_mpjpe_mm", "P-MPJPE"), ("n_mpjpe_mm", "N-MPJPE"), ("pck_percent", "PCK150 (%)"),
                  ("auc_percent", "AUC (%)"), ("pss", "PSS"))


def results_table(results: dict) -> tuple[list[str], list[list]]:
    """Column names and rows of the results table (mm unless stated; MPJPE is root-relative).

    The "supervised" column, when present, is the clearly labelled baseline trained on 3D truth.
    """
    has_baseline = all("supervised" in r for r in results.values())
    columns = ["views", "noise", "frames", "MPJPE tri (mm)", "MPJPE refined (mm)", "ratio"]
    if has_baseline:
        columns.append("MPJPE supervised baseline, 3D labels (mm)")
    for _, label in METRIC_COLUMNS:
        columns += [f"{label} tri", f"{label} refined"]
    rows = []
    for r in results.values():
        t, f = r["triangulation"], r["refined"]
        row = [r["views"], r["noise"], r["num_frames"], t["mpjpe_mm"], f["mpjpe_mm"], r["mpjpe_ratio"]]
        if has_baseline:
            row.append(r["supervised"]["mpjpe_mm"])
        for key, _ in METRIC_COLUMNS:
            row += [t[key], f[key]]
        rows.append(row)
    return columns, rows


def markdown_table(results: dict) -> str:
    """The results as a Markdown table (see :func:`results_table`)."""
    columns, rows = results_table(results)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) and abs(v) < 2 else
                                       f"{v:.1f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


def plot_results(results: dict, path: str | Path) -> None:
    """MPJPE against the noise preset, one panel per view count, triangulation dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = sorted({r["views"] for r in results.values()})
    fig, axes = plt.subplots(1, len(views), figsize=(4 * len(views), 3.5), sharey=True, squeeze=False)
    for ax, V in zip(axes[0], views):
        rows = [r for r in results.values() if r["views"] == V]
        x = np.arange(len(rows))
        ax.plot(x, [r["triangulation"]["mpjpe_mm"] for r in rows], "k--o", label="triangulation")
        ax.plot(x, [r["refined"]["mpjpe_mm"] for r in rows], "C3-o", label="+ CV-UGCN (no 3D labels)")
        if all("supervised" in r for r in rows):
            ax.plot(x, [r["supervised"]["mpjpe_mm"] for r in rows], "C0:s", label="supervised baseline (3D labels)")
        ax.set_xticks(x, [r["noise"] for r in rows])
        ax.set_title(f"{V} views, CMU test")
        ax.set_xlabel("detector noise preset")
    axes[0, 0].set_ylabel("MPJPE, mm (root-relative)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    from training.train_refiner import load_refiner

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", default=None, help="folder for results.json, results.md, error_vs_noise.png")
    parser.add_argument("--baseline", default=None, help="a run trained with --supervised: the labelled 3D-supervised column")
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--store", action="store_true",
                        help="also store the table in assets/results/benchmarks.json and refresh the README")
    parser.add_argument("--notes", default="", help="text stored under the table with --store")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model, _ = load_refiner(args.run_dir, args.device)
    baseline = load_refiner(args.baseline, args.device)[0] if args.baseline else None
    results = evaluate_refiner(model, baseline=baseline, passes=args.passes, device=args.device)
    out = Path(args.out or Path(args.run_dir) / "evaluation")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(markdown_table(results) + "\n")
    plot_results(results, out / "error_vs_noise.png")
    print(markdown_table(results))
    if args.store:
        import datetime

        from app.bench import machine_description, render_readme, store_result

        columns, rows = results_table(results)
        store_result({"name": "refiner-evaluation", "title": "CV-UGCN refiner vs triangulation, CMU test split",
                      "columns": columns, "rows": rows, "notes": args.notes, "quick": False,
                      "machine": machine_description(),
                      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
        render_readme()


if __name__ == "__main__":
    main()
