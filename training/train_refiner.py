"""Train the CV-UGCN refiner with seed 000's weak objective (no 3D labels).

Reads top to bottom: config, data, model, optimiser, loop. ``train(config) -> run_dir``; the run
directory holds ``config.json``, ``checkpoint.pt`` (model, optimiser and scheduler state, the
config, the epoch: a run restarted with the same directory resumes), ``metrics.csv`` (one row per
epoch) and ``loss.png``.

Schedule (seed 000): Adam, lr 1e-3, batch 256, lr x 0.9 whenever the training loss has not
improved for 10 epochs. Validation each epoch is on *training-split motion* seen through new rigs
and new noise (a different seed): the CMU test split is kept for :mod:`training.evaluate`. The
3D truth is used only to report validation MPJPE, never by the loss.

Command line::

    python -m training.train_refiner --out runs --epochs 100 --widths 128 192 256 --device cuda
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from calibration.errors import CrossviewError
from training.cvugcn import CVUGCN, CVUGCNConfig, count_parameters, fuse_views
from training.data import DataConfig, RefinerDataset, loader
from training.evaluate import refine_dataset, score
from training.losses import LossWeights, refiner_losses
from training.run_folder import (budget_spent, config_from_dict, plot_losses, progress_bar, resume, save_epoch,
                                 start_run, to_device)

log = logging.getLogger(__name__)

LOSS_KEYS = ("total", "reprojection_px", "symmetry_mm", "transform_mm", "bone_direction")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    # where
    out_dir: str = "runs"
    run_name: str = "cvugcn"
    # data (train split; validation uses new rigs and noise on the same motion)
    data: DataConfig = field(default_factory=DataConfig)
    val_passes: int = 1
    val_seed: int = 100
    # model
    model: CVUGCNConfig = field(default_factory=CVUGCNConfig)
    # optimisation (seed 000)
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    lr_factor: float = 0.9
    lr_patience_epochs: int = 10
    weights: LossWeights = field(default_factory=LossWeights)
    grad_clip: float = 10.0
    # The clearly labelled fully supervised baseline of the results table: the same network trained
    # on the 3D truth (L1 on the fused world pose, mm) instead of the weak objective. Never the default.
    supervised: bool = False
    progress: bool = True  # a progress bar per epoch on stderr
    # Other data (None: the synthetic CMU data above). ``take``: a take folder, trained on its own
    # detections, its last ``holdout`` fraction for validation (training.take_data); ``h36m``: a
    # VideoPose3D data_3d_h36m.npz as the motion source instead of CMU (training.h36m); ``init``:
    # start from this run folder's (or checkpoint file's) weights (fine-tuning).
    take: str | None = None
    holdout: float = 0.2
    h36m: str | None = None
    init: str | None = None
    # limits (short runs, tests)
    max_steps_per_epoch: int | None = None
    max_minutes: float | None = None  # stop after the epoch that crosses this wall-clock budget
    # system
    device: str = "cpu"
    num_threads: int | None = None
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        return config_from_dict(cls, values, {"data": DataConfig, "model": CVUGCNConfig, "weights": LossWeights},
                                "training")


def supervised_loss(refined: torch.Tensor, batch: dict) -> torch.Tensor:
    """Mean L1 distance (mm) of the fused world pose to the 3D truth, over the joints the truth has.

    Used only by the fully supervised baseline (``TrainConfig.supervised``).
    """
    world = fuse_views(refined, batch["confidence"], batch["R"], batch["t"])  # (B, J, 3)
    truth = batch["points3d"]
    known = torch.isfinite(truth).all(dim=-1)  # (B, J)
    diff = (world - torch.nan_to_num(truth)).abs().sum(dim=-1)
    return (diff * known).sum() / known.sum().clamp(min=1)


def _plot(rows: list[dict], path: Path) -> None:
    plot_losses(rows, path, loss_keys=LOSS_KEYS, loss_title="training losses (weak, no 3D)",
                validation=(("val_triangulation_mpjpe_mm", "k--", "triangulation"),
                            ("val_refined_mpjpe_mm", "C3", "refined")),
                validation_label="MPJPE, mm (root-relative)")


def _datasets(config: TrainConfig) -> tuple[RefinerDataset, RefinerDataset]:
    """Training and validation data: a take (its end held out), H36M motion or CMU motion."""
    if config.take:
        from training.take_data import TakeDataConfig, take_datasets

        return take_datasets(TakeDataConfig(config.take, holdout=config.holdout, pretrained=config.init is not None))
    val_data = replace(config.data, seed=config.val_seed, passes=config.val_passes)
    if config.h36m:
        from training.h36m import h36m_arrays

        return RefinerDataset(h36m_arrays(config.h36m, config.data)), RefinerDataset(h36m_arrays(config.h36m, val_data))
    return RefinerDataset.build(config.data), RefinerDataset.build(val_data)


def read_checkpoint(spec: str | Path, device: str | torch.device = "cpu") -> dict:
    """The saved state of a run folder (its ``checkpoint.pt``) or of a checkpoint file."""
    path = Path(spec)
    path = path / "checkpoint.pt" if path.is_dir() else path
    if not path.is_file():
        raise CrossviewError(f"{spec}: no checkpoint found (give a run folder holding checkpoint.pt, or a .pt file)")
    # weights_only=False: our own checkpoints hold the config dict and metric rows besides tensors.
    state = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CrossviewError(f"{path}: not a crossview refiner checkpoint (no 'model' and 'config')")
    return state


def train(config: TrainConfig) -> Path:
    """Train (or resume) a refiner; returns the run directory."""
    # ---- setup
    run_dir, device = start_run(config)

    # ---- data: generated and triangulated once, in memory
    started = time.monotonic()
    train_set, val_set = _datasets(config)
    log.info("data: %d training and %d validation frames in %.1f s", len(train_set), len(val_set),
             time.monotonic() - started)
    batches = loader(train_set, config.batch_size, shuffle=True, seed=config.seed)

    # ---- model, optimiser, schedule
    model = CVUGCN(config.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    # seed 000: x0.9 whenever the training loss has not improved for 10 epochs.
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=config.lr_factor,
                                                           patience=config.lr_patience_epochs)
    log.info("CV-UGCN: %d parameters (%.1f MB float32) on %s", count_parameters(model),
             count_parameters(model) * 4 / 1e6, device)

    # ---- resume
    checkpoint_path = run_dir / "checkpoint.pt"
    if config.init and not checkpoint_path.exists():
        model.load_state_dict(read_checkpoint(config.init, device)["model"])
        log.info("initial weights from %s", config.init)
    rows, first_epoch = resume(checkpoint_path, device, model, optimizer, scheduler)

    # ---- loop
    run_started = time.monotonic()
    for epoch in range(first_epoch, config.epochs):
        epoch_started = time.monotonic()
        model.train()
        batches.batch_sampler.set_epoch(epoch)
        sums = {k: 0.0 for k in LOSS_KEYS}
        steps = 0
        for batch in progress_bar(batches, len(batches), config.progress, f"epoch {epoch}"):
            batch = to_device(batch, device)
            refined = model(batch["points_cam"], batch["confidence"])
            losses = refiner_losses(refined, batch["target_keypoints"], batch["target_confidence"],
                                    batch["K"], batch["dist"], batch["R"], batch["t"], weights=config.weights)
            if config.supervised:
                losses = dict(losses, total=supervised_loss(refined, batch))
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            for k in LOSS_KEYS:
                sums[k] += float(losses[k].detach())
            steps += 1
            if config.max_steps_per_epoch and steps >= config.max_steps_per_epoch:
                break
        train_means = {k: v / max(steps, 1) for k, v in sums.items()}
        scheduler.step(train_means["total"])

        # validation: MPJPE of the fused world pose against the truth (reporting only)
        coarse, refined_world, truth = refine_dataset(model, val_set, batch_size=1024, device=device)
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "steps": steps,
               **{f"train_{k}": v for k, v in train_means.items()},
               "val_triangulation_mpjpe_mm": score(coarse, truth)["mpjpe_mm"],
               "val_refined_mpjpe_mm": score(refined_world, truth)["mpjpe_mm"],
               "epoch_s": time.monotonic() - epoch_started}
        rows.append(row)
        log.info("epoch %d: loss %.3f (reproj %.2f px, sym %.2f mm, transf %.2f mm), val MPJPE %.1f -> %.1f mm, %.0f s",
                 epoch, train_means["total"], train_means["reprojection_px"], train_means["symmetry_mm"],
                 train_means["transform_mm"], row["val_triangulation_mpjpe_mm"], row["val_refined_mpjpe_mm"],
                 row["epoch_s"])

        # ---- checkpoint (atomic: a crash never leaves half a file), metrics, plot
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "epoch": epoch, "rows": rows, "config": config.to_dict()}
        save_epoch(run_dir, state, rows)
        _plot(rows, run_dir / "loss.png")
        if budget_spent(config.max_minutes, run_started, epoch):
            break
    return run_dir


def load_refiner(run_dir: str | Path, device: str = "cpu") -> tuple[CVUGCN, TrainConfig]:
    """The trained model (eval mode) and its config from a run directory's checkpoint."""
    state = torch.load(Path(run_dir) / "checkpoint.pt", map_location=device, weights_only=False)
    config = TrainConfig.from_dict(state["config"])
    model = CVUGCN(config.model)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs")
    parser.add_argument("--name", default="cvugcn")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--target", default="independent", choices=("detections", "independent", "clean"))
    parser.add_argument("--widths", type=int, nargs=3, default=(128, 192, 256))
    parser.add_argument("--noise", default="mixed", help="low, medium, high or mixed (one preset per pass)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (seed 000: 1e-3)")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--supervised", action="store_true",
                        help="train on the 3D truth instead of the weak objective (the baseline row of the results table)")
    parser.add_argument("--take", default=None, help="train on a take folder's own 2D detections (no 3D)")
    parser.add_argument("--holdout", type=float, default=0.2, help="with --take: fraction held out at its end")
    parser.add_argument("--h36m", default=None, help="a VideoPose3D data_3d_h36m.npz as the motion source")
    parser.add_argument("--init", default=None, help="start from a run folder's or checkpoint's weights "
                                                     "(its architecture replaces --widths)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model = CVUGCNConfig(widths=tuple(args.widths))
    if args.init:
        model = TrainConfig.from_dict(read_checkpoint(args.init)["config"]).model
    config = TrainConfig(out_dir=args.out, run_name=args.name, epochs=args.epochs, batch_size=args.batch_size,
                         data=DataConfig(passes=args.passes, target=args.target, noise=args.noise),
                         model=model, max_minutes=args.max_minutes,
                         device=args.device, num_threads=args.threads, supervised=args.supervised,
                         take=args.take, holdout=args.holdout, h36m=args.h36m, init=args.init, lr=args.lr)
    run_dir = train(config)
    if args.take:
        from training.take_eval import report_take_run

        print(report_take_run(run_dir, args.take, args.holdout))
    print(run_dir)


if __name__ == "__main__":
    main()
