"""Export a trained refiner to ONNX with a model card beside it, and check torch/ONNX parity.

The ONNX model is :class:`training.cvugcn.RefinerWithFusion` (opset 17, TorchScript exporter,
BatchNorm folded into eval mode), with dynamic batch *and* view axes:

========================  ====================  =========  =============================================
name                      shape                 units      meaning
========================  ====================  =========  =============================================
points_cam (in)           (B, V, J, 3) float32  mm         triangulated pose in each camera's frame, NaN = missing
confidence (in)           (B, V, J) float32     [0, 1]     detector confidence, 0 = not seen / outlier view
R_cam_from_world (in)     (B, V, 3, 3) float32  -          each camera's rotation (x_cam = R x_world + t)
t_cam_from_world (in)     (B, V, 3) float32     mm         each camera's translation
refined_cam (out)         (B, V, J, 3) float32  mm         refined pose in each camera's frame
refined_world (out)       (B, J, 3) float32     mm         confidence-weighted fusion of the views, world frame
========================  ====================  =========  =============================================

J = 17 (H36M-17 order, :data:`models.skeleton.H36M17`), V >= 2.

Command line::

    python -m training.export runs/cvugcn --out runs/cvugcn/cvugcn_refiner.onnx
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
import yaml

from models.skeleton import H36M17
from training.cvugcn import CVUGCN, RefinerWithFusion, count_parameters

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAMES = ("points_cam", "confidence", "R_cam_from_world", "t_cam_from_world")
OUTPUT_NAMES = ("refined_cam", "refined_world")
CARD_SCHEMA_VERSION = 1


def example_inputs(batch: int = 2, views: int = 3, *, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Plausible random inputs: a ~1.7 m pose 3-5 m in front of ``views`` cameras; one joint missing."""
    g = torch.Generator().manual_seed(seed)
    angles = torch.rand(batch, views, generator=g) * 2 * np.pi
    c, s, zero, one = torch.cos(angles), torch.sin(angles), torch.zeros_like(angles), torch.ones_like(angles)
    R = torch.stack([torch.stack([c, -s, zero], -1), torch.stack([zero, zero, -one], -1),
                     torch.stack([s, c, zero], -1)], -2)  # (B, V, 3, 3), camera looking horizontally
    t = torch.stack([zero, 900 * one, 3000 + 2000 * torch.rand(batch, views, generator=g)], -1)  # (B, V, 3)
    world = torch.randn(batch, 17, 3, generator=g) * torch.tensor([200.0, 200.0, 450.0]) + torch.tensor([0, 0, 900.0])
    points_cam = torch.einsum("bvcd,bjd->bvjc", R, world) + t[:, :, None, :]
    points_cam[0, :, 5] = float("nan")
    confidence = torch.rand(batch, views, 17, generator=g)
    confidence[0, :, 5] = 0.0
    return points_cam, confidence, R, t


def export_onnx(model: CVUGCN, path: str | Path) -> Path:
    """Write ``model`` (with the world fusion) to ``path`` as ONNX; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = RefinerWithFusion(model).eval().cpu()
    dynamic = {"points_cam": {0: "batch", 1: "views"}, "confidence": {0: "batch", 1: "views"},
               "R_cam_from_world": {0: "batch", 1: "views"}, "t_cam_from_world": {0: "batch", 1: "views"},
               "refined_cam": {0: "batch", 1: "views"}, "refined_world": {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(wrapper, example_inputs(), str(path), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), opset_version=OPSET, dynamic_axes=dynamic,
                          dynamo=False, do_constant_folding=True)
    log.info("exported %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


def onnx_session(path: str | Path):
    """An onnxruntime session on the CPU provider (named explicitly; no provider probing)."""
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def parity(model: CVUGCN, path: str | Path, *, batch: int = 4, views: int = 3, seed: int = 1) -> float:
    """Largest absolute difference, mm, between torch and onnxruntime on random inputs (both outputs)."""
    inputs = example_inputs(batch, views, seed=seed)
    with torch.no_grad():
        expected = RefinerWithFusion(model).eval().cpu()(*inputs)
    session = onnx_session(path)
    got = session.run(list(OUTPUT_NAMES), {n: x.numpy() for n, x in zip(INPUT_NAMES, inputs)})
    return max(float(np.nanmax(np.abs(e.numpy() - g))) for e, g in zip(expected, got))


def write_model_card(onnx_path: str | Path, model: CVUGCN, *, training: dict | None = None,
                     metrics: dict | None = None) -> Path:
    """Write ``<model>.yaml`` beside the ONNX file: I/O, units, joint set, views, training data, metrics."""
    onnx_path = Path(onnx_path)
    card = {
        "schema_version": CARD_SCHEMA_VERSION,
        "name": "cvugcn_refiner",
        "file": onnx_path.name,
        "description": "CV-UGCN cross-view refiner (Hua et al., seed 000): refines a triangulated 3D pose "
                       "from 2+ calibrated views; trained without 3D labels.",
        "opset": OPSET,
        "parameters": count_parameters(model),
        "architecture": model.config.to_dict(),
        "joint_set": H36M17.name,
        "joints": list(H36M17.joints),
        "views": "any number >= 2 (dynamic axis)",
        "frames": "camera frames x_cam = R_cam_from_world @ x_world + t_cam_from_world; world and t in mm",
        "inputs": [
            {"name": "points_cam", "shape": ["B", "V", 17, 3], "dtype": "float32", "units": "mm",
             "meaning": "triangulated pose in each camera's frame; NaN = joint not triangulated"},
            {"name": "confidence", "shape": ["B", "V", 17], "dtype": "float32", "units": "[0, 1]",
             "meaning": "detector confidence per view; 0 = not seen or rejected by triangulation"},
            {"name": "R_cam_from_world", "shape": ["B", "V", 3, 3], "dtype": "float32", "units": "-",
             "meaning": "camera rotations"},
            {"name": "t_cam_from_world", "shape": ["B", "V", 3], "dtype": "float32", "units": "mm",
             "meaning": "camera translations"},
        ],
        "outputs": [
            {"name": "refined_cam", "shape": ["B", "V", 17, 3], "dtype": "float32", "units": "mm",
             "meaning": "refined pose in each camera's frame (missing joints predicted)"},
            {"name": "refined_world", "shape": ["B", 17, 3], "dtype": "float32", "units": "mm",
             "meaning": "confidence-weighted mean of the views' refined poses, world frame"},
        ],
        "training": training or {},
        "metrics": metrics or {},
    }
    path = onnx_path.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(json.loads(json.dumps(card)), sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> None:
    from training.train_refiner import load_refiner

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", default=None)
    parser.add_argument("--metrics", default=None, help="results.json from training.evaluate for the card")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model, config = load_refiner(args.run_dir)
    out = Path(args.out or Path(args.run_dir) / "cvugcn_refiner.onnx")
    export_onnx(model, out)
    difference = parity(model, out)
    state = torch.load(Path(args.run_dir) / "checkpoint.pt", map_location="cpu", weights_only=False)
    rows = state["rows"]
    training = {"config": config.to_dict(), "epochs_trained": len(rows),
                "training_time_s": float(sum(r["epoch_s"] for r in rows)),
                "last_epoch": rows[-1] if rows else {}}
    metrics = {"torch_onnx_max_abs_difference_mm": difference}
    if args.metrics:
        metrics["cmu_test"] = json.loads(Path(args.metrics).read_text())
    card = write_model_card(out, model, training=training, metrics=metrics)
    print(f"{out}\n{card}\nparity: max |torch - onnx| = {difference:.2e} mm")


if __name__ == "__main__":
    main()
