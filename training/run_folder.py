"""A training run's folder and device: what the refiner's and the lifter's training loops share.

A run folder (``<out_dir>/<run_name>``) holds ``config.json``, ``checkpoint.pt`` (written
atomically each epoch: a crash never leaves half a file; a run restarted in the same folder
resumes from it), ``metrics.csv`` (one row per epoch) and ``loss.png``. Used by
:mod:`training.train_refiner` and :mod:`training.lifter_train`::

    config = config_from_dict(TrainConfig, values, {"data": DataConfig}, "training")
    run_dir, device = start_run(config)                       # folder, threads, seed, device, config.json
    rows, first_epoch = resume(run_dir / "checkpoint.pt", device, model, optimizer, scheduler)
    batch = to_device(batch, device)
    save_epoch(run_dir, state, rows)                          # checkpoint.pt + metrics.csv
    plot_losses(rows, run_dir / "loss.png", loss_keys=..., loss_title=..., validation=..., validation_label=...)
    if budget_spent(config.max_minutes, run_started, epoch): break
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol, Sequence, TypeVar

import torch

from calibration.errors import CrossviewError

log = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT")


class RunConfig(Protocol):
    """What :func:`start_run` reads of a training config."""

    out_dir: str
    run_name: str
    device: str
    num_threads: int | None
    seed: int

    def to_dict(self) -> dict: ...


def config_from_dict(cls: type[ConfigT], values: dict, nested: dict[str, type], what: str) -> ConfigT:
    """A training config dataclass from its ``to_dict()`` (a checkpoint's or ``config.json``'s).

    Args:
        cls: the config dataclass.
        values: its fields; JSON lists inside the ``nested`` fields become tuples.
        nested: field name -> dataclass of the fields that are configs themselves.
        what: the config's name in the message, e.g. ``"lifter training"``.

    Raises:
        CrossviewError: a key that is not a field of ``cls``.
    """
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise CrossviewError(f"unknown {what} config keys: {', '.join(sorted(unknown))}")
    kwargs = {}
    for key, value in values.items():
        if key in nested:
            value = nested[key](**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
        kwargs[key] = value
    return cls(**kwargs)


def torch_device(name: str) -> torch.device:
    """The requested device; asking for CUDA without one is an error, never a silent CPU fall-back."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CrossviewError(f"device {name!r} requested but torch sees no CUDA device; use --device cpu")
    return device


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of ``batch`` on ``device`` (non-blocking copies)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def start_run(config: RunConfig) -> tuple[Path, torch.device]:
    """Create (or reopen) the run folder, set torch's threads and seed, write ``config.json``.

    Returns:
        ``(run folder, device)``.
    """
    run_dir = Path(config.out_dir) / config.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    device = torch_device(config.device)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    return run_dir, device


def resume(checkpoint_path: Path, device: torch.device, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           scheduler: Any = None) -> tuple[list[dict], int]:
    """Load a run's checkpoint into ``model``, ``optimizer`` (and ``scheduler``) when there is one.

    Returns:
        ``(rows so far, first epoch to run)``; ``([], 0)`` when ``checkpoint_path`` does not exist.
    """
    if not checkpoint_path.exists():
        return [], 0
    # weights_only=False: our own checkpoints hold the config dict and metric rows besides tensors.
    state = torch.load(checkpoint_path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    first_epoch = state["epoch"] + 1
    log.info("resumed %s at epoch %d", checkpoint_path, first_epoch)
    return state["rows"], first_epoch


def save_epoch(run_dir: Path, state: dict, rows: list[dict]) -> None:
    """Write ``checkpoint.pt`` (atomic: temporary file, then rename) and ``metrics.csv`` (one row per epoch)."""
    checkpoint_path = run_dir / "checkpoint.pt"
    tmp = checkpoint_path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(checkpoint_path)
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def budget_spent(max_minutes: float | None, run_started: float, epoch: int) -> bool:
    """True (and logged) when the run, started at ``time.monotonic()`` = ``run_started``, is past ``max_minutes``."""
    if max_minutes is None or time.monotonic() - run_started <= 60 * max_minutes:
        return False
    log.info("stopping after epoch %d: the %.1f-minute budget is spent", epoch, max_minutes)
    return True


def plot_losses(rows: list[dict], path: Path, *, loss_keys: Sequence[str], loss_title: str,
                validation: Sequence[tuple[str, str, str]], validation_label: str) -> None:
    """``loss.png``: training losses per epoch (log scale) on the left, validation errors on the right.

    Args:
        rows: the per-epoch rows (``epoch``, ``train_<key>`` for each loss key, the validation keys).
        path: the image to write.
        loss_keys: losses to draw (row key ``train_<key>``); values are floored at 1e-9 for the log scale.
        loss_title: the left panel's title.
        validation: ``(row key, matplotlib style, label)`` per validation curve.
        validation_label: the right panel's y label (units).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key in loss_keys:
        left.plot(epochs, [max(r[f"train_{key}"], 1e-9) for r in rows], label=key)
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_title(loss_title)
    left.legend(fontsize=8)
    for key, style, label in validation:
        right.plot(epochs, [r[key] for r in rows], style, label=label)
    right.set_xlabel("epoch")
    right.set_ylabel(validation_label)
    right.set_title("validation (new rigs and noise)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def progress_bar(iterable, total: int, enabled: bool, description: str):
    """``iterable`` with a tqdm progress bar on stderr (refreshed at most every 5 s), or as it is."""
    if not enabled:
        return iterable
    import sys

    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=description, file=sys.stderr, mininterval=5.0, leave=False)


__all__ = ["budget_spent", "config_from_dict", "plot_losses", "progress_bar", "resume", "save_epoch", "start_run",
           "to_device", "torch_device"]
