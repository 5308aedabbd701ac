"""Training the refiner from a recorded take without any 3D (training/take_data.py, training/take_eval.py).

Synthetic takes are written as real take folders (calibration.yaml, poses2d.npz, ground_truth.npz)
from the CMU test motion, a random rig and the simulated detector, and read back through the
user's path. The truth only scores; it never reaches a loss.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calibration.errors import CrossviewError, InputFileError  # noqa: E402
from models.synthetic.mocap import default_cmu_path  # noqa: E402
from training.data import FIELDS  # noqa: E402
from training.take_data import read_take, split_frames, take_arrays, take_groups, view_subsets  # noqa: E402
from training.take_eval import cmu_session, heldout_errors, session_rig, write_synthetic_take  # noqa: E402

needs_cmu = pytest.mark.skipif(not default_cmu_path().is_file(), reason="shared CMU motion data not found")


@pytest.fixture(scope="module")
def take(tmp_path_factory) -> Path:
    """A 3-camera synthetic take: the first 360 frames (12 s) of the CMU test session, "high" detector."""
    if not default_cmu_path().is_file():
        pytest.skip("shared CMU motion data not found")
    points = cmu_session(seed=1, max_frames=360)
    return write_synthetic_take(tmp_path_factory.mktemp("takes") / "take", points, session_rig(points, 3, 1),
                                noise="high", seed=1)


def test_split_is_contiguous_with_a_gap() -> None:
    train, held = split_frames(100, 0.2, gap_frames=5)
    assert train.tolist() == list(range(75)) and held.tolist() == list(range(80, 100))
    with pytest.raises(CrossviewError, match="holdout must be a fraction"):
        split_frames(100, 1.0)
    with pytest.raises(CrossviewError, match="too short"):
        split_frames(10, 0.5, gap_frames=10)


def test_view_subsets() -> None:
    assert view_subsets(2, True) == [(0, 1)]
    assert view_subsets(3, True) == [(0, 1, 2), (0, 1), (0, 2), (1, 2)]
    assert len(view_subsets(4, True)) == 1 + 4 + 6
    assert view_subsets(4, False) == [(0, 1, 2, 3)]


@needs_cmu
def test_take_arrays_are_the_takes_own_detections(take: Path) -> None:
    inputs = read_take(take)
    assert inputs.num_cameras == 3 and inputs.num_frames == 360 and inputs.truth is not None
    frames = np.arange(10, 40)
    full = take_arrays(inputs, frames)
    assert set(full) == set(FIELDS)
    assert full["coarse_world"].shape == (30, 17, 3) and full["target_keypoints"].shape == (30, 3, 17, 2)
    # the target is the detections themselves (float32), where they exist
    np.testing.assert_allclose(full["target_keypoints"], inputs.keypoints[frames].astype(np.float32))
    assert np.all(full["target_confidence"] <= inputs.confidence[frames] + 1e-6)
    # the coarse pose is the triangulation: a few cm from the truth
    assert np.nanmedian(np.linalg.norm(full["coarse_world"] - full["points3d"], axis=-1)) < 60.0
    # triangulated from views 0 and 2: view 1 gets confidence 0 as input, its raw detections as target
    pair = take_arrays(inputs, frames, views=(0, 2))
    assert np.all(pair["confidence"][:, 1] == 0)
    np.testing.assert_allclose(pair["target_confidence"][:, 1], inputs.confidence[frames, 1].astype(np.float32))
    assert not np.allclose(np.nan_to_num(pair["coarse_world"]), np.nan_to_num(full["coarse_world"]))
    cross_view = take_arrays(inputs, frames, views=(0, 2), fitted_weight=0.0)  # only view 1 is a target
    assert np.all(cross_view["target_confidence"][:, [0, 2]] == 0) and cross_view["target_confidence"][:, 1].any()
    groups = take_groups(inputs, frames)
    assert set(groups) == {3} and len(groups[3]["coarse_world"]) <= 4 * 30


@needs_cmu
def test_heldout_measure_without_a_model_is_the_triangulation(take: Path) -> None:
    """Without a model both columns are the triangulation; a camera left out of the triangulation is
    explained worse than the cameras it used (measured: 7.60 px against 4.45 px, mean)."""
    inputs = read_take(take)
    _, held = split_frames(inputs.num_frames, 0.2, gap_frames=30)
    errors = heldout_errors(None, inputs, held)
    assert set(errors) == {"loco", "loco_clean", "all_views_clean"}
    for entry in errors.values():
        assert entry["refined"] == entry["triangulation"] and entry["triangulation"]["count"] > 3000
    assert errors["loco_clean"]["triangulation"]["mean_px"] > 1.4 * errors["all_views_clean"]["triangulation"]["mean_px"]


def test_take_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not a take folder"):
        read_take(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no calibration found"):
        read_take(tmp_path / "empty")


@needs_cmu
def test_take_without_keypoints_says_to_process_it(take: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "calibration.yaml").write_bytes((take / "calibration.yaml").read_bytes())
    (bare / "ground_truth.npz").write_bytes((take / "ground_truth.npz").read_bytes())
    with pytest.raises(InputFileError, match="crossview process"):
        read_take(bare)


@needs_cmu
def test_training_on_a_take_lowers_heldout_reprojection_error(take: Path, tmp_path: Path, capsys) -> None:
    """``crossview train refiner --take``: trained on the take's first 80 % (its own detections, no 3D),
    scored on the last 20 % (after a 1 s gap) against 2D evidence the triangulation did not use.

    A bounded run: 6 epochs of 8 steps (batch 128, widths 32/48/64, lr 6e-3) from scratch. Measured
    (held-out frames 288-359, mean px, triangulation -> refined): leave-one-camera-out against the
    left-out camera's detections 10.81 -> 10.51 (x0.972), against the truth's projections in it
    7.60 -> 7.29 (x0.959); all cameras against the truth's projections 4.45 -> 4.41 (x0.991).
    (12 epochs at lr 3e-3: x0.949, x0.925, x0.966; each epoch also draws the loss plot, which
    dominates this test's time.)
    The full figure (longer runs, 3 and 4 cameras) comes from ``python -m training.take_eval``.
    """
    from app.cli import main

    runs = tmp_path / "runs"
    assert main(["train", "refiner", "--take", str(take), "--out", str(runs), "--name", "take", "--epochs", "6",
                 "--widths", "32", "48", "64", "--batch-size", "128", "--lr", "6e-3", "--threads", "1"]) == 0
    assert "held-out frames 288..359" in capsys.readouterr().out
    report = json.loads((runs / "take" / "heldout.json").read_text())
    assert report["heldout_frames"] == [288, 360]
    errors = report["errors"]
    ratio = {k: v["refined"]["mean_px"] / v["triangulation"]["mean_px"] for k, v in errors.items()}
    assert errors["loco"]["refined"]["count"] > 3000
    assert ratio["loco_clean"] < 0.975
    assert ratio["loco"] < 0.985
    assert ratio["all_views_clean"] < 1.0

    # --init: fine-tuning starts from that run's weights and architecture (not --widths)
    torch.manual_seed(0)
    assert main(["train", "refiner", "--take", str(take), "--init", str(runs / "take"), "--out", str(runs),
                 "--name", "finetune", "--epochs", "1", "--widths", "8", "8", "8", "--lr", "1e-12",
                 "--threads", "1"]) == 0
    start = torch.load(runs / "take" / "checkpoint.pt", weights_only=False)["model"]
    tuned = torch.load(runs / "finetune" / "checkpoint.pt", weights_only=False)["model"]
    for name, weight in start.items():
        if not name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.allclose(weight, tuned[name], atol=1e-6), name
