"""The refiner at run time (models.refiner): parity with the torch model (the dynamic model and the
fixed-view models of training.fused_refiner), missing data, bad files, the export command, and the
shipped default model on the CMU test split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from calibration.errors import CrossviewError, ShapeError
from calibration.triangulation import triangulate
from models.refiner import DEFAULT_MODEL_DIR, Refiner, card_path_for, fuse_views, load_refiner, to_cameras
from models.synthetic import random_rig
from models.synthetic.mocap import shared_data_dir

DEFAULT_ONNX = DEFAULT_MODEL_DIR / "refiner.onnx"
needs_default = pytest.mark.skipif(not DEFAULT_ONNX.is_file(), reason=f"the shipped refiner {DEFAULT_ONNX} is missing")
CMU_PATH = shared_data_dir() / "cmu_mocap" / "cmu_mocap.npz"
STANDING = np.array(
    [[0, 0, 950], [130, 0, 950], [130, 0, 520], [130, -20, 90], [-130, 0, 950], [-130, 0, 520],
     [-130, -20, 90], [0, 0, 1180], [0, 0, 1430], [0, 20, 1530], [0, 0, 1700], [-180, 0, 1420],
     [-200, 0, 1150], [-210, 30, 900], [180, 0, 1420], [200, 0, 1150], [210, 30, 900]], dtype=float)


def _poses(rng: np.random.Generator, frames: int, views: int) -> tuple[np.ndarray, np.ndarray]:
    """``points3d (T, 17, 3)`` mm (the standing pose moved about, 30 mm noise) and ``confidence (T, C, 17)``."""
    points = STANDING + rng.uniform(-400, 400, (frames, 1, 3)) * [1, 1, 0] + rng.normal(0, 30, (frames, 17, 3))
    return points, rng.uniform(0.2, 1.0, (frames, views, 17))


def _random_model(spatial_units: int = 1):
    """A small CV-UGCN with random weights and BatchNorm statistics (every layer and fold matters), eval mode."""
    import torch
    from training.cvugcn import CVUGCN, CVUGCNConfig

    torch.manual_seed(0)
    model = CVUGCN(CVUGCNConfig(widths=(16, 24, 32), spatial_units=spatial_units))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.normal_(0.0, 0.3)
        elif name.endswith("running_var"):
            buffer.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """:func:`_random_model` exported with its fixed-view models (2-4 views) and card; and the torch model."""
    pytest.importorskip("torch")
    from training.export import export_models, write_model_card

    model = _random_model()
    written = export_models(model, tmp_path_factory.mktemp("tiny"), trained_views=(2, 4))
    write_model_card(written["onnx"], model, trained_views=(2, 4), fixed_view_models=written["fixed_view_models"])
    return written["onnx"], model


@pytest.mark.parametrize("fixed_views", [True, False], ids=["fixed-view", "dynamic"])
def test_numpy_runtime_matches_torch_model_and_fuse_views(tiny_export, fixed_views) -> None:
    """Refiner.refine (NumPy transforms + ONNX Runtime + NumPy fusion) equals the torch model followed by
    training.cvugcn.fuse_views within 1e-3 mm, for 2, 3, 4 and 5 views, one frame and six: with the
    fixed-view models for 2-4 views (5 falls back to the dynamic model), and with the dynamic model
    alone (measured <= 1.1e-4 mm; the network moves joints by up to 37 mm)."""
    import torch
    from training.cvugcn import fuse_views as torch_fuse

    path, model = tiny_export
    refiner = Refiner.load(path, fixed_views=fixed_views)
    rng = np.random.default_rng(0)
    for views in (2, 3, 4, 5):
        used = refiner.model_for(views).path.name
        assert used == (f"refiner.v{views}.onnx" if fixed_views and views <= 4 else "refiner.onnx")
        rig = random_rig(rng, views)
        points, confidence = _poses(rng, 6, views)
        points[1, 13] = np.nan  # a joint triangulation could not place
        points[3, 0] = np.nan  # the root (pelvis) missing: the centroid stands in
        confidence[2, 0] = 0.0  # a view that did not see the person
        confidence[4, 1, 3] = np.nan  # NaN confidence counts as 0
        got = refiner.refine(points, confidence, rig)
        assert np.allclose(refiner.refine(points[:1], confidence[:1], rig), got[:1], atol=1e-3, equal_nan=True)

        R = np.stack([c.R for c in rig])
        t = np.stack([c.t for c in rig])
        with torch.no_grad():
            cam = torch.from_numpy(to_cameras(points, R, t)).float()
            refined = model(cam, torch.from_numpy(confidence).float())
            expected = torch_fuse(refined.double(), torch.from_numpy(confidence),
                                  torch.from_numpy(R).expand(6, views, 3, 3), torch.from_numpy(t).expand(6, views, 3))
        expected = np.where(np.isfinite(points), expected.numpy(), np.nan)
        assert np.array_equal(np.isnan(got), np.isnan(points))
        assert np.nanmax(np.abs(got - expected)) < 1e-3
        assert np.nanmax(np.abs(got - points)) > 1.0  # the network changed the pose: the check has teeth


def test_fixed_view_rewrite_computes_the_same_function_in_torch() -> None:
    """training.fused_refiner.FixedViewRefiner (BatchNorm and biases folded, cross-view means and skip
    concatenations rearranged) equals CVUGCN within 1e-3 mm on awkward inputs: NaN and infinite
    coordinates, a missing root, a view with no joints at all, NaN / negative / > 1 confidence; 2 and 3
    views, two S-GCN units (one with a shortcut). Measured <= 2.5e-4 mm (float32 rounding of ~4 m
    camera-frame coordinates). The trained model is unchanged."""
    import torch
    from training.export import example_inputs
    from training.fused_refiner import FixedViewRefiner

    model = _random_model(spatial_units=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for views in (2, 3):
        points, confidence, _, _ = example_inputs(4, views, seed=views)
        points[1, 0, 3, 1] = float("inf")
        points[1, 1, 4, 0] = -float("inf")
        points[2, :, 0] = float("nan")  # the root
        points[3, 1] = float("nan")  # a view with nothing
        confidence[0, 0, :3] = torch.tensor([float("nan"), -0.5, 1.7])
        fixed = FixedViewRefiner(model, views)
        assert not list(fixed.parameters())
        with torch.no_grad():
            expected, got = model(points, confidence), fixed(points, confidence)
        assert torch.isfinite(got).all()
        assert float((got - expected).abs().max()) < 1e-3
        assert float((expected - torch.nan_to_num(points, nan=0.0, posinf=0.0, neginf=0.0)).abs().max()) > 1.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="at least 2 views"):
        FixedViewRefiner(model, 1)


def test_fixed_view_models_are_checked_against_the_card(tiny_export, tmp_path) -> None:
    """A fixed-view model that is missing, another file than the card's digest, or fixed at another view
    count than the card says, is a clear error naming the card or the file."""
    path, _ = tiny_export
    for name in ("refiner.onnx", "refiner.v2.onnx", "refiner.v3.onnx", "refiner.card.yaml"):
        shutil.copy(path.parent / name, tmp_path / name)
    card_file = tmp_path / "refiner.card.yaml"
    card = yaml.safe_load(card_file.read_text())
    assert [f["views"] for f in card["fixed_view_models"]] == [2, 3, 4]
    with pytest.raises(CrossviewError, match=r"card.yaml: lists the 4-view model refiner.v4.onnx, which is missing"):
        Refiner.load(tmp_path)
    assert Refiner.load(tmp_path, fixed_views=False).fixed_models == {}  # the dynamic model alone still loads
    card["fixed_view_models"] = card["fixed_view_models"][:2]
    card["fixed_view_models"][1]["file"] = "refiner.v2.onnx"  # listed for 3 views, fixed at 2
    card_file.write_text(yaml.safe_dump(card))
    with pytest.raises(CrossviewError, match="sha256 differs"):
        Refiner.load(tmp_path)
    card["fixed_view_models"][1]["sha256"] = None
    card_file.write_text(yaml.safe_dump(card))
    with pytest.raises(CrossviewError, match=r"refiner.v2.onnx: the card lists it for 3 views"):
        Refiner.load(tmp_path)
    card["fixed_view_models"][1] = {"views": 1, "file": "refiner.v2.onnx"}
    card_file.write_text(yaml.safe_dump(card))
    with pytest.raises(CrossviewError, match="fixed_view_models.*outside views.min/max"):
        Refiner.load(tmp_path)


def test_fixed_batch_or_views_export_is_refused(tiny_export, tmp_path) -> None:
    import torch
    from training.export import example_inputs, write_model_card

    _, model = tiny_export
    path = tmp_path / "refiner.onnx"
    with torch.no_grad():  # no dynamic axes: batch 2, 3 views baked in
        torch.onnx.export(model, example_inputs(2, 3)[:2], str(path), input_names=["points_cam", "confidence"],
                          output_names=["refined_cam"], opset_version=17, dynamo=False)
    write_model_card(path, model)
    with pytest.raises(CrossviewError, match=r"fixed batch or view count \(points_cam \(2, 3, 17, 3\)"):
        Refiner.load(path)


def test_numpy_fusion_is_the_confidence_weighted_mean_in_the_world() -> None:
    rng = np.random.default_rng(1)
    rig = random_rig(rng, 3)
    R, t = np.stack([c.R for c in rig]), np.stack([c.t for c in rig])
    world = rng.normal(0, 500, (4, 17, 3))
    confidence = rng.uniform(0, 1, (4, 3, 17))
    # the same pose in every view fuses back to itself, whatever the weights
    assert np.allclose(fuse_views(to_cameras(world, R, t), confidence, R, t), world, atol=1e-9)
    # a view with a shifted pose pulls the mean by its weight share
    cam = to_cameras(world, R, t)
    cam[:, 0] += R[0] @ np.array([30.0, 0.0, 0.0])  # +30 mm along world x, seen by view 0
    weight = confidence + 0.01
    share = weight[:, 0] / weight.sum(axis=1)  # (T, J)
    assert np.allclose(fuse_views(cam, confidence, R, t)[..., 0] - world[..., 0], 30.0 * share, atol=1e-9)


@needs_default
def test_missing_joints_and_frames() -> None:
    """NaN in -> NaN out; frames with too few joints unchanged; NaN confidence counts as 0."""
    refiner = load_refiner("default")
    rng = np.random.default_rng(2)
    rig = random_rig(rng, 2)
    points, confidence = _poses(rng, 5, 2)
    points[0, 3] = np.nan
    points[1, 5, 2] = np.nan  # a partly-NaN joint is a missing joint
    points[2] = np.nan  # nothing triangulated
    points[3, :10] = np.nan  # 7 joints: fewer than the card's min_coarse_joints (9)
    confidence[4, 1, :] = 0.0
    out = refiner.refine(points, confidence, rig)
    missing = ~np.isfinite(points).all(axis=-1)
    assert np.array_equal(~np.isfinite(out).all(axis=-1), missing)
    assert np.isnan(out[1, 5]).all()
    assert np.array_equal(out[3], points[3], equal_nan=True)
    nan_confidence = confidence.copy()
    nan_confidence[4, 1, :] = np.nan
    assert np.allclose(refiner.refine(points, nan_confidence, rig), out, equal_nan=True)
    assert refiner.refine(np.empty((0, 17, 3)), np.empty((0, 2, 17)), rig).shape == (0, 17, 3)


@needs_default
def test_wrong_rig_and_shapes_are_clear_errors() -> None:
    refiner = Refiner.load("default")
    rng = np.random.default_rng(3)
    points, confidence = _poses(rng, 2, 2)
    with pytest.raises(CrossviewError, match="takes 2 or more views, the rig has 1"):
        refiner.refine(points, confidence[:, :1], random_rig(rng, 1))
    with pytest.raises(ShapeError, match=r"confidence: expected shape \(T=2, C=3, 17\)"):
        refiner.refine(points, confidence, random_rig(rng, 3))
    with pytest.raises(ShapeError, match="points3d"):
        refiner.refine(points[:, :16], confidence, random_rig(rng, 2))


def test_load_specs() -> None:
    assert load_refiner("none") is None
    assert load_refiner(None) is None
    with pytest.raises(CrossviewError, match="no such file"):
        Refiner.load("/nonexistent/refiner.onnx")


def test_run_folder_without_export_says_how_to_export(tmp_path) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(CrossviewError, match="crossview train export"):
        Refiner.load(tmp_path)


@needs_default
def test_bad_files_are_clear_errors(tmp_path) -> None:
    from tests.tiny_onnx import constant_model

    card = yaml.safe_load(card_path_for(DEFAULT_ONNX).read_text())
    # a model with other tensors: the error names the file and lists expected and actual tensors
    wrong = constant_model(tmp_path / "wrong.onnx", "pose", (None, 17, 3), {"out": np.zeros((1, 17, 3))})
    card_path_for(wrong).write_text(yaml.safe_dump({**card, "file": "wrong.onnx", "sha256": None}))
    expected = r"wrong\.onnx: expected input points_cam \(\?, \?, 17, 3\).*pose \(batch, 17, 3\)"
    with pytest.raises(CrossviewError, match=expected):
        Refiner.load(wrong)
    # not an ONNX file at all
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    card_path_for(garbage).write_text(yaml.safe_dump({**card, "file": "garbage.onnx", "sha256": None}))
    with pytest.raises(CrossviewError, match="cannot load this file"):
        Refiner.load(garbage)
    # the card is missing, or describes another file
    copy = tmp_path / "copy.onnx"
    shutil.copy(DEFAULT_ONNX, copy)
    with pytest.raises(CrossviewError, match="copy.card.yaml is missing"):
        Refiner.load(copy)
    card_path_for(copy).write_text(yaml.safe_dump({**card, "file": "copy.onnx", "sha256": "0" * 64}))
    with pytest.raises(CrossviewError, match="sha256 differs"):
        Refiner.load(copy)
    # a card with a typo or another model's family
    card_path_for(copy).write_text(yaml.safe_dump({**card, "file": "copy.onnx", "view": 2}))
    with pytest.raises(CrossviewError, match="unknown key.*view"):
        Refiner.load(copy)
    card_path_for(copy).write_text(yaml.safe_dump({**card, "file": "copy.onnx", "family": "rtmpose"}))
    with pytest.raises(CrossviewError, match="key 'family'"):
        Refiner.load(copy)


def test_export_command_writes_model_and_card(tmp_path) -> None:
    """``crossview train export RUN --out DIR`` on a run folder: refiner.onnx + refiner.card.yaml with the
    run's config, the evaluation's metrics and the parity figure; the runtime loads the pair."""
    torch = pytest.importorskip("torch")
    from training.cvugcn import CVUGCN, CVUGCNConfig
    from training.data import DataConfig
    from training.export import main
    from training.train_refiner import TrainConfig

    config = TrainConfig(model=CVUGCNConfig(widths=(16, 24, 32), spatial_units=1), data=DataConfig(num_cameras=(2, 3)))
    run = tmp_path / "run"
    (run / "evaluation").mkdir(parents=True)
    torch.manual_seed(0)
    rows = [{"epoch": 0, "epoch_s": 12.5, "val_refined_mpjpe_mm": 40.0}]
    torch.save({"model": CVUGCN(config.model).state_dict(), "rows": rows, "epoch": 0, "config": config.to_dict()},
               run / "checkpoint.pt")
    results = {"V=2/medium": {"views": 2, "noise": "medium", "num_frames": 100, "mpjpe_ratio": 0.9,
                              "triangulation": {"mpjpe_mm": 50.0}, "refined": {"mpjpe_mm": 45.0}}}
    (run / "evaluation" / "results.json").write_text(json.dumps(results))
    main([str(run), "--out", str(tmp_path / "models")])

    onnx_path = tmp_path / "models" / "refiner.onnx"
    import onnx

    def input_dims(path):
        return [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in onnx.load(path).graph.input]

    graph = onnx.load(onnx_path)
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert input_dims(onnx_path) == [["batch", "views", 17, 3], ["batch", "views", 17]]  # dynamic batch and views
    assert onnx_path.stat().st_size < 25e6
    for views in (2, 3, 4):  # fixed-view models up to max(4, trained views)
        fixed = onnx_path.with_name(f"refiner.v{views}.onnx")
        assert input_dims(fixed) == [["batch", views, 17, 3], ["batch", views, 17]]
    card = yaml.safe_load((tmp_path / "models" / "refiner.card.yaml").read_text())
    assert card["opset"] >= 17 and card["joint_set"] == "h36m17"
    assert [i["name"] for i in card["inputs"]] == ["points_cam", "confidence"] and card["inputs"][0]["units"] == "mm"
    assert card["views"] == {"min": 2, "max": None, "trained": [2, 3]}
    assert card["training"]["config"]["model"]["widths"] == [16, 24, 32]
    assert card["metrics"]["cmu_test"]["V=2/medium"]["refined_mpjpe_mm"] == 45.0
    assert card["metrics"]["torch_onnx_max_abs_difference_mm"] < 1e-2
    listed = [(f["views"], f["file"]) for f in card["fixed_view_models"]]
    assert listed == [(v, f"refiner.v{v}.onnx") for v in (2, 3, 4)]
    assert all(f["torch_onnx_max_abs_difference_mm"] < 1e-2 for f in card["fixed_view_models"])
    refiner = Refiner.load(onnx_path.parent)
    assert sorted(refiner.fixed_models) == [2, 3, 4] and refiner.model_for(3).path.name == "refiner.v3.onnx"
    assert refiner.card.trained_views == (2, 3) and refiner.card.metrics["cmu_test"]["V=2/medium"]["mpjpe_ratio"] == 0.9
    with pytest.raises(CrossviewError, match="no checkpoint.pt"):
        main([str(tmp_path / "models"), "--out", str(tmp_path / "x")])


@needs_default
@pytest.mark.skipif(not CMU_PATH.is_file(), reason=f"shared CMU motion capture not found at {CMU_PATH}")
def test_default_model_beats_triangulation_on_cmu_test() -> None:
    """The shipped model lowers root-relative MPJPE on CMU test motion (the 6 test sequences, up to 90
    frames each at 30 fps, random rigs, medium detector noise) below the robust triangulation's, for 2
    and 4 views. Measured (491 frames) with the model exported from refiner-v1 after 7 epochs:
    2 views 66.6 -> 42.6 mm, 4 views 34.2 -> 23.2 mm (after 3 epochs: 66.6 -> 60.9 and 34.2 -> 30.7)."""
    from models.metrics import mpjpe, root_relative
    from models.synthetic import synthetic_dataset
    from models.synthetic.mocap import MotionSequence, load_cmu

    refiner = Refiner.load("default")
    sequences = [MotionSequence(s.name, s.fps, s.points[:90]) for s in load_cmu(CMU_PATH, split="test", fps=30.0)]
    for views in (2, 4):
        coarse, refined, truth = [], [], []
        for sample in synthetic_dataset(sequences=sequences, num_cameras=views, noise="medium", seed=11):
            tri = triangulate(sample.rig, sample.keypoints, sample.confidence, robust=True)
            confidence = np.moveaxis(np.where(tri.inliers, sample.confidence, 0.0), 0, 1)  # (T, C, J)
            coarse.append(tri.points)
            refined.append(refiner.refine(tri.points, confidence, sample.rig))
            truth.append(sample.points3d)
        coarse, refined, truth = (np.concatenate(a) for a in (coarse, refined, truth))
        assert np.array_equal(np.isnan(coarse), np.isnan(refined))
        before = mpjpe(root_relative(coarse), root_relative(truth))
        after = mpjpe(root_relative(refined), root_relative(truth))
        print(f"{views} views, {len(truth)} frames: MPJPE {before:.1f} -> {after:.1f} mm")
        assert after < before
