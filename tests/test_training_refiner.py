"""The CV-UGCN refiner: shapes, missing joints, any view count, training, overfitting, ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calibration.rig import Rig  # noqa: E402
from models.synthetic import make_multiview, random_rig  # noqa: E402
from models.synthetic.mocap import shared_data_dir  # noqa: E402
from training.cvugcn import CVUGCN, CVUGCNConfig, count_parameters, fuse_views  # noqa: E402
from training.data import DataConfig, RefinerDataset, build_arrays, loader, sample_arrays  # noqa: E402
from training.losses import refiner_losses  # noqa: E402

TINY = CVUGCNConfig(widths=(16, 24, 32), spatial_units=1)
STANDING = np.array(
    [[0, 0, 950], [130, 0, 950], [130, 0, 520], [130, -20, 90], [-130, 0, 950], [-130, 0, 520],
     [-130, -20, 90], [0, 0, 1180], [0, 0, 1430], [0, 20, 1530], [0, 0, 1700], [-180, 0, 1420],
     [-200, 0, 1150], [-210, 30, 900], [180, 0, 1420], [200, 0, 1150], [210, 30, 900]], dtype=float)
CMU_PATH = shared_data_dir() / "cmu_mocap" / "cmu_mocap.npz"


def _motion(rng, frames: int) -> np.ndarray:
    """``(T, 17, 3)`` mm: the standing pose (symmetric bones) turning, leaning and moving about."""
    yaw, lean = rng.uniform(0, 2 * np.pi, frames), rng.normal(0, 0.15, frames)
    cy, sy, cl, sl = np.cos(yaw), np.sin(yaw), np.cos(lean), np.sin(lean)
    zero, one = np.zeros(frames), np.ones(frames)
    turn = np.stack([np.stack([cy, -sy, zero], -1), np.stack([sy, cy, zero], -1), np.stack([zero, zero, one], -1)], -2)
    tilt = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cl, -sl], -1), np.stack([zero, sl, cl], -1)], -2)
    pelvis = STANDING[0]
    posed = np.einsum("tcd,jd->tjc", turn @ tilt, STANDING - pelvis) + pelvis
    return posed + rng.uniform(-500, 500, (frames, 1, 3)) * [1, 1, 0]


def _dataset(seed: int, frames: int = 48, views=(2, 3)) -> RefinerDataset:
    """A small in-memory dataset without the shared data: random rigs, the medium detector."""
    rng = np.random.default_rng(seed)
    groups: dict[int, dict[str, list]] = {}
    for V in views:
        sample = make_multiview(_motion(rng, frames), random_rig(rng, V), "medium", rng)
        arrays = sample_arrays(sample, "detections", "medium", rng)
        keep = np.isfinite(arrays["coarse_world"]).all(-1).sum(-1) >= 9
        groups[V] = {k: np.asarray(v, dtype=np.float32)[keep] for k, v in arrays.items()}
    return RefinerDataset(groups)


def _loss(model, batch):
    refined = model(batch["points_cam"], batch["confidence"])
    return refiner_losses(refined, batch["target_keypoints"], batch["target_confidence"],
                          batch["K"], batch["dist"], batch["R"], batch["t"])["total"]


def test_untrained_model_returns_the_triangulation_and_fills_missing_joints() -> None:
    torch.manual_seed(0)
    model = CVUGCN(TINY).eval()
    batch = _dataset(0, frames=8)[[0, 1, 2]]
    points = batch["points_cam"].clone()
    points[0, :, 13] = float("nan")  # a joint no view triangulated
    out = model(points, batch["confidence"])
    assert out.shape == points.shape
    assert torch.isfinite(out).all()
    finite = torch.isfinite(points)
    assert torch.allclose(out[finite], points[finite])  # zero-initialised head: residual 0


@pytest.mark.parametrize("views", [2, 3, 5])
def test_any_number_of_views(views: int) -> None:
    torch.manual_seed(0)
    model = CVUGCN(TINY).eval()
    torch.nn.init.normal_(model.head.weight, std=0.1)
    points = torch.randn(4, views, 17, 3) * 300 + torch.tensor([0.0, 0.0, 4000.0])
    out = model(points, torch.rand(4, views, 17))
    assert out.shape == (4, views, 17, 3)
    R = torch.eye(3).expand(4, views, 3, 3)
    world = fuse_views(out, torch.rand(4, views, 17), R, torch.zeros(4, views, 3))
    assert world.shape == (4, 17, 3)


def test_default_model_is_under_25_mb() -> None:
    """Default widths 128/192/256: 1.2 M parameters, 4.8 MB in float32."""
    assert count_parameters(CVUGCN()) * 4 < 25e6


def test_a_few_training_steps_lower_the_loss() -> None:
    """60 Adam steps (lr 3e-3, batches of 24) on a small synthetic set lower the weak loss over the
    whole set by more than 5 % (measured: 887.6 -> 825.0)."""
    torch.manual_seed(0)
    dataset = _dataset(1, frames=24)
    model = CVUGCN(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def mean_loss() -> float:
        with torch.no_grad():
            return float(np.mean([float(_loss(model, batch)) for batch in loader(dataset, 64, shuffle=False)]))

    before = mean_loss()
    for epoch in range(30):
        for batch in loader(dataset, 24, seed=epoch):
            loss = _loss(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    after = mean_loss()
    assert after < 0.95 * before


def test_overfits_one_batch() -> None:
    """100 steps on one batch of 8 frames cut the weak loss to under half (measured: 1039.6 -> 244.9)."""
    torch.manual_seed(0)
    batch = _dataset(2, frames=8, views=(2,))[list(range(8))]
    model = CVUGCN(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(_loss(model, batch))
    for _ in range(100):
        loss = _loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss) < 0.5 * first


def test_onnx_parity(tmp_path) -> None:
    """torch and onnxruntime agree within 1e-2 mm on both outputs, for 2, 3 and 5 views from one
    exported file (dynamic batch and view axes; measured <= 5e-4 mm, float32 at ~4 m)."""
    pytest.importorskip("onnxruntime")
    from training.export import export_onnx, parity, write_model_card

    torch.manual_seed(0)
    model = CVUGCN(TINY)
    for p in model.parameters():  # make every layer matter, the head included
        torch.nn.init.normal_(p, std=0.2)
    model.eval()
    path = export_onnx(model, tmp_path / "refiner.onnx")
    for views, batch in ((2, 5), (3, 1), (5, 3)):
        assert parity(model, path, batch=batch, views=views) < 1e-2
    card = write_model_card(path, model)
    import yaml

    data = yaml.safe_load(card.read_text())
    assert data["inputs"][0]["name"] == "points_cam" and data["joint_set"] == "h36m17"


@pytest.mark.skipif(not CMU_PATH.is_file(), reason=f"shared CMU motion capture not found at {CMU_PATH}")
def test_cmu_data_groups_by_view_count() -> None:
    groups = build_arrays(DataConfig(passes=1, max_sequences=2, num_cameras=(2, 3)))
    assert set(groups) <= {2, 3}
    for V, g in groups.items():
        n = len(g["points3d"])
        assert g["confidence"].shape == (n, V, 17) and g["coarse_world"].shape == (n, 17, 3)
        assert g["target_keypoints"].shape == (n, V, 17, 2)
    dataset = RefinerDataset(groups)
    for batch in loader(dataset, 64):
        assert batch["points_cam"].shape[1] == batch["K"].shape[1]


@pytest.mark.skipif(not CMU_PATH.is_file(), reason=f"shared CMU motion capture not found at {CMU_PATH}")
def test_train_writes_a_resumable_run(tmp_path) -> None:
    """train() writes config, checkpoint, metrics CSV and loss plot; a second call resumes."""
    from training.train_refiner import TrainConfig, load_refiner, train

    config = TrainConfig(out_dir=str(tmp_path), run_name="tiny", epochs=1, batch_size=64, model=TINY,
                         data=DataConfig(passes=1, max_sequences=1, num_cameras=(2, 2)), max_steps_per_epoch=2)
    run_dir = train(config)
    for name in ("config.json", "checkpoint.pt", "metrics.csv", "loss.png"):
        assert (run_dir / name).is_file(), name
    from dataclasses import replace

    train(replace(config, epochs=2))
    lines = (run_dir / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 3 and lines[2].startswith("1,")  # header, epoch 0, epoch 1 (resumed)
    model, loaded = load_refiner(run_dir)
    assert loaded.epochs == 2 and loaded.model == TINY
    assert not model.training
