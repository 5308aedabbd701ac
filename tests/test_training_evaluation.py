"""Training options of the lead's results table: mixed noise, the supervised baseline, the table."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calibration.errors import CrossviewError  # noqa: E402
from models.synthetic.mocap import shared_data_dir  # noqa: E402
from training.cvugcn import CVUGCN, CVUGCNConfig  # noqa: E402
from training.data import DataConfig, MIXED_NOISE, RefinerDataset, build_arrays, loader  # noqa: E402
from training.evaluate import evaluate_refiner, markdown_table, results_table  # noqa: E402
from training.train_refiner import supervised_loss  # noqa: E402

CMU_PATH = shared_data_dir() / "cmu_mocap" / "cmu_mocap.npz"
needs_cmu = pytest.mark.skipif(not CMU_PATH.is_file(), reason=f"shared CMU motion capture not found at {CMU_PATH}")
TINY = CVUGCNConfig(widths=(16, 24, 32), spatial_units=1)


def test_unknown_noise_is_refused() -> None:
    with pytest.raises(CrossviewError, match="mixed or one of"):
        DataConfig(noise="loud")


@needs_cmu
def test_mixed_noise_walks_the_presets() -> None:
    """One pass per preset: the triangulation error grows from the low to the high pass."""
    errors = []
    for p, preset in enumerate(MIXED_NOISE):
        single = build_arrays(DataConfig(passes=1, max_sequences=2, num_cameras=(3, 3), noise=preset, seed=p))
        errors.append(np.nanmean(np.linalg.norm(single[3]["coarse_world"] - single[3]["points3d"], axis=-1)))
    by_preset = dict(zip(MIXED_NOISE, errors))
    assert by_preset["low"] < by_preset["medium"] < by_preset["high"]
    mixed = build_arrays(DataConfig(passes=3, max_sequences=2, num_cameras=(3, 3), noise="mixed"))
    err = np.nanmean(np.linalg.norm(mixed[3]["coarse_world"] - mixed[3]["points3d"], axis=-1))
    assert by_preset["low"] < err < by_preset["high"]


@needs_cmu
def test_supervised_loss_is_zero_at_the_truth_and_drives_training() -> None:
    """The baseline's L1 is 0 mm when the fused pose is the truth, and a few steps lower it."""
    groups = build_arrays(DataConfig(passes=1, max_sequences=1, num_cameras=(2, 2)))
    batch = next(iter(loader(RefinerDataset(groups), 64, shuffle=False)))
    truth_cam = torch.einsum("bvij,bkj->bvki", batch["R"], batch["points3d"]) + batch["t"][:, :, None, :]
    assert float(supervised_loss(truth_cam, batch)) < 1e-3
    torch.manual_seed(0)
    model = CVUGCN(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = supervised_loss(model(batch["points_cam"], batch["confidence"]), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.9 * losses[0]


@needs_cmu
def test_results_table_has_the_labelled_baseline_column() -> None:
    torch.manual_seed(0)
    model, baseline = CVUGCN(TINY).eval(), CVUGCN(TINY).eval()
    results = evaluate_refiner(model, baseline=baseline, views=(2,), noises=("low",), max_sequences=1)
    columns, rows = results_table(results)
    assert "MPJPE supervised baseline, 3D labels (mm)" in columns
    assert len(rows) == 1 and rows[0][:2] == [2, "low"]
    entry = results["V=2/low"]
    # an untrained refiner returns (almost) the triangulation
    assert entry["mpjpe_ratio"] == pytest.approx(1.0, abs=0.02)
    assert "| 2 | low |" in markdown_table(results)
