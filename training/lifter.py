"""Seed 001's single-view lifter (Li et al.): one view's 2D joints -> root-relative 3D in that camera.

The network (:class:`Lifter`) and, for training only, the root position branch
(:class:`RootBranch`); export to ONNX with a model card (:func:`export_onnx`, :func:`write_card`,
:func:`export_run`). Training: :mod:`training.lifter_train`; losses: :mod:`training.lifter_losses`.

Input and output (also the exported ONNX model's):

- ``keypoints (B, J, 2)`` float32 px, *undistorted* (ideal pinhole with the same ``K``:
  ``camera.undistort_points``; the runtime does it); NaN where missing.
- ``confidence (B, J)`` in [0, 1], 0 = missing.
- ``K (B, 3, 3)`` float32 px, the camera's intrinsic matrix as the calibration holds it.
- output ``points_cam (B, J, 3)`` float32 mm: the pose relative to the pelvis (joint 0, exactly 0)
  in the camera frame (x right, y down, z forward). J = 17, H36M-17 order.

Architecture (the paper's: Martinez et al.'s residual MLP): Linear(in -> W), BatchNorm, ReLU,
Dropout, then ``blocks`` residual blocks of two (Linear W -> W, BatchNorm, ReLU, Dropout) with an
identity skip, then Linear(W -> 3J). The paper uses W = 1024 and four blocks (~8.5 M parameters
per branch); both are configurable (:class:`LifterConfig`).

Choices the paper leaves open (documented here, measured in the run folders):

- Normalisation, inside the graph (so the app feeds pixels and its ``K``): pixels -> normalised
  camera coordinates ``K^-1 [u, v, 1]``; centred on the mean ``c`` of the seen joints and divided
  by their RMS distance ``s`` from it (the 2D pose's size), so the network sees the pose's shape
  whatever the lens, image size or distance. It also sees each joint's confidence (0 for a missing
  joint, whose coordinates enter as 0: the paper has no missing joints, detectors do) and ``c``
  itself (where the person is in the field of view, which changes the camera-frame pose under
  perspective). 3J + 2 = 53 inputs.
- Output: the last layer's 3J values times ``output_scale_mm`` (1 m), minus the pelvis's, so the
  pose is root-relative by construction.
- Root branch (training only, same architecture, separate weights, as the paper): its input is the
  lifter's plus ``log s``; its 3 outputs ``(dx, dy, dz)`` place the root at depth
  ``z = body_radius_mm / s * exp(dz)`` on the ray through ``c + s (dx, dy)``. Its last layer starts
  at zero, so before training every root sits where a body of RMS radius ``body_radius_mm``
  (~0.45 m) would appear with the observed size: seed 001's pitfall "initialise the root branch
  near a typical distance" (positive depth by construction).
- The lifting branch's last layer starts tiny (std 1e-3): the first poses are nearly a point at
  the root, so the first reprojection errors are the 2D pose's own size rather than those of a
  random metre-sized pose (which made the first run's transform term explode).
- Dropout 0.2 (Martinez uses 0.5 with 3D labels; the weak losses and the short CPU budget train
  better with less). BatchNorm folds into the linear layers at export (eval mode).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from calibration.errors import CrossviewError
from models.skeleton import H36M17

log = logging.getLogger(__name__)

NUM_JOINTS = H36M17.num_joints
ROOT_JOINT = 0
OPSET = 17
INPUT_NAMES = ("keypoints", "confidence", "K")
OUTPUT_NAMES = ("points_cam",)
CARD_SCHEMA_VERSION = 1
#: The run's config.json says what it trained; ``crossview train export`` dispatches on it.
RUN_KIND = "lifter"
_MIN_SCALE = 1e-6


@dataclass(frozen=True, slots=True)
class LifterConfig:
    """Architecture of the lifting (and root) branch; see the module docstring."""

    width: int = 1024
    blocks: int = 4
    dropout: float = 0.2
    root_width: int = 1024
    root_blocks: int = 4
    output_scale_mm: float = 1000.0
    body_radius_mm: float = 450.0

    def __post_init__(self) -> None:
        for name in ("width", "root_width"):
            if getattr(self, name) < 1:
                raise CrossviewError(f"LifterConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("blocks", "root_blocks"):
            if getattr(self, name) < 0:
                raise CrossviewError(f"LifterConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise CrossviewError(f"LifterConfig.dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def normalised_coordinates(keypoints: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Undistorted pixels ``(B, J, 2)`` -> normalised camera coordinates ``(x/z, y/z)`` ``(B, J, 2)``.

    ``K (B, 3, 3)``: ``u = fx x + skew y + cx``, ``v = fy y + cy``.
    """
    fx, skew, cx = K[:, 0, 0, None], K[:, 0, 1, None], K[:, 0, 2, None]
    fy, cy = K[:, 1, 1, None], K[:, 1, 2, None]
    y = (keypoints[..., 1] - cy) / fy
    x = (keypoints[..., 0] - cx - skew * y) / fx
    return torch.stack([x, y], dim=-1)


def pose_features(keypoints: torch.Tensor, confidence: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
    """The normalised 2D pose the branches read (see the module docstring).

    Args:
        keypoints: ``(B, J, 2)`` undistorted px, NaN = missing; confidence: ``(B, J)``; K: ``(B, 3, 3)``.

    Returns:
        dict: ``features (B, 3J + 2)``, ``centre (B, 2)`` and ``scale (B,)`` (normalised camera
        coordinates), ``seen (B, J)`` float 0/1.
    """
    finite = torch.isfinite(keypoints).all(dim=-1)
    confidence = torch.nan_to_num(confidence, nan=0.0).clamp(0.0, 1.0)
    seen = (finite & (confidence > 0)).to(keypoints.dtype)  # (B, J)
    safe = torch.where(seen[..., None] > 0, keypoints, torch.zeros_like(keypoints))
    xy = normalised_coordinates(safe, K)  # (B, J, 2)
    count = seen.sum(dim=1).clamp(min=1.0)  # (B,)
    centre = (xy * seen[..., None]).sum(dim=1) / count[:, None]  # (B, 2)
    offset = (xy - centre[:, None, :]) * seen[..., None]  # (B, J, 2)
    scale = torch.sqrt((offset * offset).sum(dim=(1, 2)) / count).clamp(min=_MIN_SCALE)  # (B,)
    shape = offset / scale[:, None, None]  # (B, J, 2)
    features = torch.cat([shape.flatten(1), confidence * seen, centre], dim=1)  # (B, 3J + 2)
    return {"features": features, "centre": centre, "scale": scale, "seen": seen}


class ResidualMLP(nn.Module):
    """Martinez et al.'s lifter: Linear, BN, ReLU, Dropout; ``blocks`` residual pairs; Linear out."""

    def __init__(self, in_features: int, out_features: int, width: int, blocks: int, dropout: float):
        super().__init__()

        def unit(n_in: int) -> list[nn.Module]:
            return [nn.Linear(n_in, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout)]

        self.stem = nn.Sequential(*unit(in_features))
        self.blocks = nn.ModuleList(nn.Sequential(*unit(width), *unit(width)) for _ in range(blocks))
        self.head = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


class Lifter(nn.Module):
    """The lifting branch: ``(keypoints px, confidence, K) -> points_cam (B, J, 3)`` mm, root-relative."""

    def __init__(self, config: LifterConfig = LifterConfig()):
        super().__init__()
        self.config = config
        self.net = ResidualMLP(3 * NUM_JOINTS + 2, 3 * NUM_JOINTS, config.width, config.blocks, config.dropout)
        nn.init.normal_(self.net.head.weight, std=1e-3)  # start near a point: calm first reprojections
        nn.init.zeros_(self.net.head.bias)

    def forward(self, keypoints: torch.Tensor, confidence: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        return self.lift(pose_features(keypoints, confidence, K)["features"])

    def lift(self, features: torch.Tensor) -> torch.Tensor:
        """``features (B, 3J + 2)`` from :func:`pose_features` -> ``(B, J, 3)`` mm, pelvis at 0."""
        out = self.net(features).view(-1, NUM_JOINTS, 3) * self.config.output_scale_mm
        return out - out[:, ROOT_JOINT : ROOT_JOINT + 1]


class RootBranch(nn.Module):
    """Seed 001's position branch (training only): the root's position in the camera frame, mm."""

    def __init__(self, config: LifterConfig = LifterConfig()):
        super().__init__()
        self.config = config
        self.net = ResidualMLP(3 * NUM_JOINTS + 3, 3, config.root_width, config.root_blocks, config.dropout)
        nn.init.zeros_(self.net.head.weight)
        nn.init.zeros_(self.net.head.bias)

    def forward(self, normalised: dict[str, torch.Tensor]) -> torch.Tensor:
        """``normalised`` from :func:`pose_features` -> ``root (B, 3)`` mm, always in front of the camera."""
        scale = normalised["scale"]
        x = torch.cat([normalised["features"], torch.log(scale)[:, None]], dim=1)
        d = self.net(x)  # (B, 3)
        depth = self.config.body_radius_mm / scale * torch.exp(d[:, 2].clamp(-3.0, 3.0))  # (B,) mm
        ray = normalised["centre"] + scale[:, None] * d[:, :2]  # (B, 2)
        return torch.cat([ray, torch.ones_like(depth)[:, None]], dim=1) * depth[:, None]


class TwoBranch(nn.Module):
    """Both branches, as trained: ``Y~ = Y + r`` per view (seed 001, Fig. 3)."""

    def __init__(self, config: LifterConfig = LifterConfig()):
        super().__init__()
        self.config = config
        self.lifter = Lifter(config)
        self.root = RootBranch(config)

    def forward(self, keypoints: torch.Tensor, confidence: torch.Tensor, K: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``relative (B, J, 3)`` mm (root-relative), ``root (B, 3)`` mm (camera frame) and the
        2D pose size ``scale (B,)`` (normalised camera coordinates) that the losses measure errors in."""
        normalised = pose_features(keypoints, confidence, K)
        return self.lifter.lift(normalised["features"]), self.root(normalised), normalised["scale"]


# ---------------------------------------------------------------------------------------------
# Export


def example_inputs(batch: int = 4, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plausible random inputs: a ~1.7 m person 3-6 m away seen by 1280 x 720 to 1920 x 1080
    cameras, jittered; joint 5 missing in the first sample. Returns keypoints, confidence, K."""
    g = torch.Generator().manual_seed(seed)
    body = torch.randn(batch, NUM_JOINTS, 3, generator=g) * torch.tensor([200.0, 450.0, 150.0])
    depth = 3000.0 + 3000.0 * torch.rand(batch, 1, generator=g)
    focal = 900.0 + 600.0 * torch.rand(batch, generator=g)
    K = torch.zeros(batch, 3, 3)
    K[:, 0, 0], K[:, 1, 1], K[:, 2, 2] = focal, focal, 1.0
    K[:, 0, 2], K[:, 1, 2] = 640.0 + 320.0 * torch.rand(batch, generator=g), 360.0 + 180.0 * torch.rand(batch, generator=g)
    z = body[..., 2] + depth
    keypoints = torch.stack([focal[:, None] * body[..., 0] / z + K[:, 0, 2, None],
                             focal[:, None] * body[..., 1] / z + K[:, 1, 2, None]], dim=-1)
    confidence = 0.3 + 0.7 * torch.rand(batch, NUM_JOINTS, generator=g)
    keypoints[0, 5] = float("nan")
    confidence[0, 5] = 0.0
    return keypoints, confidence, K


def export_onnx(model: Lifter, path: str | Path) -> Path:
    """Write the lifting branch (eval mode, BatchNorm folded) to ``path`` as ONNX, dynamic batch."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    dynamic = {name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES}
    tmp = path.with_name(path.name + ".tmp")
    with torch.no_grad():
        torch.onnx.export(model, example_inputs(), str(tmp), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), opset_version=OPSET, dynamic_axes=dynamic,
                          dynamo=False, do_constant_folding=True)
    tmp.replace(path)
    log.info("exported %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


def parity(model: Lifter, path: str | Path, *, batch: int = 8, seed: int = 1) -> float:
    """Largest absolute difference, mm, between torch and onnxruntime (CPU) on random inputs."""
    import onnxruntime

    inputs = example_inputs(batch, seed=seed)
    with torch.no_grad():
        expected = model.eval().cpu()(*inputs).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(list(OUTPUT_NAMES), {n: x.numpy() for n, x in zip(INPUT_NAMES, inputs)})
    return float(np.max(np.abs(expected - got)))


def card_dict(onnx_path: Path, model: Lifter, *, training: dict, metrics: dict) -> dict:
    """The model card's content (read by :class:`models.lifter.LifterCard`)."""
    import hashlib

    from models.lifter import CARD_FAMILY
    from training.lifter_data import MIN_SEEN_JOINTS

    return {
        "schema_version": CARD_SCHEMA_VERSION,
        "family": CARD_FAMILY,
        "name": "transform_reprojection_lifter",
        "file": onnx_path.name,
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "description": "Single-view 2D-to-3D lifter (Li et al., seed 001: transform re-projection training, "
                       "warm-up and confidence weights), trained WITHOUT 3D labels on synthetic multi-view "
                       "CMU motion seen through random calibrated rigs and a simulated 2D detector.",
        "opset": OPSET,
        "parameters": count_parameters(model),
        "architecture": model.config.to_dict(),
        "joint_set": H36M17.name,
        "joints": list(H36M17.joints),
        "min_seen_joints": MIN_SEEN_JOINTS,
        "frames": "camera frame: x right, y down, z forward (OpenCV); root-relative (pelvis = joint 0 at 0)",
        "inputs": [
            {"name": "keypoints", "shape": ["B", NUM_JOINTS, 2], "dtype": "float32", "units": "px",
             "meaning": "2D joints, undistorted (camera.undistort_points); NaN = missing"},
            {"name": "confidence", "shape": ["B", NUM_JOINTS], "dtype": "float32", "units": "[0, 1]",
             "meaning": "detector confidence; 0 = missing"},
            {"name": "K", "shape": ["B", 3, 3], "dtype": "float32", "units": "px",
             "meaning": "camera intrinsic matrix (normalisation happens inside the graph)"},
        ],
        "outputs": [
            {"name": "points_cam", "shape": ["B", NUM_JOINTS, 3], "dtype": "float32", "units": "mm",
             "meaning": "root-relative 3D pose in the camera frame (missing joints are predicted)"},
        ],
        "training": training,
        "metrics": metrics,
    }


def write_card(path: str | Path, card: dict) -> Path:
    """Write a card (``<name>.card.yaml``) atomically; the dict goes through JSON to plain types."""
    from models.keypoint_io import atomic_write_bytes

    path = Path(path)
    text = yaml.safe_dump(json.loads(json.dumps(card)), sort_keys=False)
    atomic_write_bytes(path, text.encode())
    return path


def export_run(run_dir: str | Path, out: str | Path | None = None) -> tuple[Path, Path, float]:
    """Export a training run: ONNX, parity check, model card (metrics from the run's evaluation).

    Returns:
        ``(onnx path, card path, max |torch - onnx| mm)``.
    """
    from models.lifter import card_path_for
    from training.lifter_train import load_run

    run_dir = Path(run_dir)
    model, config, rows = load_run(run_dir)
    out = Path(out) if out is not None else run_dir / "lifter.onnx"
    export_onnx(model, out)
    difference = parity(model, out)
    if difference > 0.5:
        raise CrossviewError(f"{out}: torch and ONNX Runtime differ by {difference:.3f} mm; export is broken")
    evaluation = run_dir / "evaluation" / "results.json"
    metrics = {"torch_onnx_max_abs_difference_mm": difference}
    if evaluation.is_file():
        metrics["cmu_test_single_view"] = json.loads(evaluation.read_text())
    training = {"objective": config.objective, "config": config.to_dict(), "epochs_trained": len(rows),
                "training_time_s": float(sum(r["epoch_s"] for r in rows)),
                "data": "CMU mocap train split (../shared/data/cmu_mocap), random calibrated rigs of 2-4 cameras, "
                        "simulated detector (models.synthetic.noise presets); no 3D labels used by the loss"
                        if config.objective == "weak" else "CMU train split, FULLY SUPERVISED (3D L1) baseline",
                "last_epoch": rows[-1] if rows else {}}
    card = write_card(card_path_for(out), card_dict(out, model, training=training, metrics=metrics))
    return out, card, difference


def main_export(argv: list[str] | None = None) -> None:
    """``crossview train export RUN`` for a lifter run (dispatched on the run's config.json)."""
    parser = argparse.ArgumentParser(description="Export a lifter run to ONNX with its model card")
    parser.add_argument("run_dir")
    parser.add_argument("--out", default=None, help="ONNX path (default RUN/lifter.onnx; card beside it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out, card, difference = export_run(args.run_dir, args.out)
    print(f"{out}\n{card}\nparity: max |torch - onnx| = {difference:.2e} mm")


def is_lifter_run(run_dir: str | Path) -> bool:
    """True when ``run_dir/config.json`` names a lifter run."""
    path = Path(run_dir) / "config.json"
    try:
        return json.loads(path.read_text()).get("kind") == RUN_KIND
    except (OSError, ValueError, AttributeError):
        return False


__all__ = ["Lifter", "LifterConfig", "RootBranch", "TwoBranch", "card_dict", "example_inputs",
           "export_onnx", "export_run", "is_lifter_run", "main_export", "normalised_coordinates", "parity",
           "pose_features", "write_card"]
