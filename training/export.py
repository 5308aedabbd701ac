"""Export a trained refiner to ONNX with a model card beside it, and check torch/ONNX parity.

``crossview train export RUN --out DIR`` writes ``DIR/refiner.onnx`` and ``DIR/refiner.card.yaml``
(the app's default model is ``assets/models/refiner.onnx``; :mod:`models.refiner` runs it). The
ONNX model is :class:`training.cvugcn.CVUGCN` alone (opset 17, TorchScript exporter, eval mode so
BatchNorm is a constant affine map), with dynamic batch *and* view axes:

=================  ====================  ======  ===============================================
name               shape                 units   meaning
=================  ====================  ======  ===============================================
points_cam (in)    (B, V, J, 3) float32  mm      triangulated pose in each camera's frame, NaN = missing
confidence (in)    (B, V, J) float32     [0, 1]  detector confidence, 0 = not seen / outlier view
refined_cam (out)  (B, V, J, 3) float32  mm      refined pose in each camera's frame
=================  ====================  ======  ===============================================

J = 17 (H36M-17 order, :data:`models.skeleton.H36M17`), V >= 2. The normalisation (root-relative,
scaled, missing joints filled) is inside the graph. The transforms into and out of the camera
frames and the fusion of the views into one world pose (:func:`training.cvugcn.fuse_views`) are
not: the app does them in float64 NumPy (:mod:`models.refiner`), where world coordinates metres
from the origin keep their sub-micrometre precision.

The card (YAML, ``schema_version`` 1) states the tensors, units, joint set, the view counts the
graph accepts and those it was trained on, the fewest triangulated joints of a training frame,
the ONNX file's SHA-256 (the runtime refuses a card that describes another file), the run's
config, its training history and, when ``RUN/evaluation/results.json`` exists, the evaluation.

Fixed-view models, for speed. Beside ``refiner.onnx`` the export writes ``refiner.v2.onnx``,
``refiner.v3.onnx``, ... up to the most views trained on (at least 4): the same weights, the same
tensors and a dynamic batch, but V fixed, built by :class:`training.fused_refiner.FixedViewRefiner`
(BatchNorm and biases folded, the cross-view mean computed once per frame, constant shapes). Its
graph has 127 ONNX nodes instead of ~510, with no shape arithmetic, and 24 % fewer multiply-adds;
``crossview bench refiner`` compares the two in one run. The card lists them under ``fixed_view_models`` (views, file,
sha256, parity); :class:`models.refiner.Refiner` runs the one for the rig's view count and the
dynamic model for any other count. Every model passes the torch parity check (1e-2 mm; measured
~5e-4 mm, float32 rounding at 4 m) before anything is written.

Command line::

    crossview train export /work/runs/refiner-v1 --out assets/models
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from calibration.errors import CrossviewError
from models.keypoint_io import atomic_write_bytes
from models.refiner import CARD_FAMILY, CARD_SCHEMA_VERSION, CARD_SUFFIX, MODEL_NAME, card_path_for
from models.skeleton import H36M17
from training.cvugcn import CVUGCN, count_parameters, fuse_views
from training.data import MIN_COARSE_JOINTS
from training.fused_refiner import FixedViewRefiner

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAMES = ("points_cam", "confidence")
OUTPUT_NAMES = ("refined_cam",)
MIN_VIEWS = 2
MAX_FILE_BYTES = 25_000_000
#: Fixed-view models are written for 2 views up to max(this, the most views trained on).
MIN_FIXED_VIEWS_UP_TO = 4
#: Largest torch/ONNX Runtime difference, mm, an export may have.
PARITY_LIMIT_MM = 1e-2


def fixed_view_name(num_views: int) -> str:
    """``refiner.v4.onnx``: the file of the model fixed at ``num_views`` views."""
    return f"{MODEL_NAME}.v{num_views}.onnx"


def example_inputs(batch: int = 2, views: int = 3, *, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Plausible random inputs: a ~1.7 m pose 3-5 m in front of ``views`` cameras; one joint missing.

    Returns:
        ``points_cam (B, V, 17, 3)`` mm, ``confidence (B, V, 17)``, ``R_cam_from_world (B, V, 3, 3)``
        and ``t_cam_from_world (B, V, 3)`` mm, float32.
    """
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


def onnx_bytes(model: CVUGCN | FixedViewRefiner) -> bytes:
    """``model`` as an ONNX file's bytes (see the module docstring for its tensors): batch and views
    dynamic for a :class:`CVUGCN`, the batch only for a :class:`FixedViewRefiner`."""
    model = model.eval().cpu()
    fixed = isinstance(model, FixedViewRefiner)
    axes = {0: "batch"} if fixed else {0: "batch", 1: "views"}
    dynamic = {name: axes for name in INPUT_NAMES + OUTPUT_NAMES}
    example = example_inputs(views=model.num_views if fixed else 3)[:2]
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, example, buffer, input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), opset_version=OPSET, dynamic_axes=dynamic,
                          dynamo=False, do_constant_folding=True)
    return buffer.getvalue()


def export_onnx(model: CVUGCN | FixedViewRefiner, path: str | Path) -> Path:
    """Write ``model`` to ``path`` as ONNX (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = onnx_bytes(model)
    if len(data) > MAX_FILE_BYTES:
        log.warning("%s is %.1f MB, over the %.0f MB the repository ships", path, len(data) / 1e6, MAX_FILE_BYTES / 1e6)
    atomic_write_bytes(path, data)
    log.info("exported %s (%.2f MB)", path, len(data) / 1e6)
    return path


def onnx_session(path: str | Path):
    """An onnxruntime session on the CPU provider (named explicitly; no provider probing)."""
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def parity(model: CVUGCN, path: str | Path, *, batch: int = 4, views: int = 3, seed: int = 1) -> float:
    """Largest absolute difference, mm, between torch (``model``, the trained network) and
    onnxruntime running ``path`` on random inputs: the camera-frame output, and the world pose
    fused from it (:func:`~training.cvugcn.fuse_views`)."""
    points_cam, confidence, R, t = example_inputs(batch, views, seed=seed)
    with torch.no_grad():
        expected = model.eval().cpu()(points_cam, confidence)
    (got,) = onnx_session(path).run(list(OUTPUT_NAMES), {"points_cam": points_cam.numpy(),
                                                         "confidence": confidence.numpy()})
    got = torch.from_numpy(got)
    double = [x.double() for x in (confidence, R, t)]
    world_expected, world_got = (fuse_views(x.double(), *double) for x in (expected, got))
    return max(float((expected - got).abs().max()), float((world_expected - world_got).abs().max()))


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_card(onnx_path: str | Path, model: CVUGCN, *, training: dict | None = None,
               metrics: dict | None = None, trained_views: tuple[int, int] | None = None,
               supervised: bool = False, fixed_view_models: list[dict] | None = None) -> dict:
    """The card's content for the ONNX file at ``onnx_path`` (read by :func:`models.refiner.load_refiner_card`).

    ``fixed_view_models``: ``[{"views": V, "file": name, "parity_mm": float}]``, files beside
    ``onnx_path`` (their sha256 is added here).
    """
    onnx_path = Path(onnx_path)
    fixed = [{"views": int(f["views"]), "file": f["file"], "sha256": file_sha256(onnx_path.parent / f["file"]),
              "torch_onnx_max_abs_difference_mm": float(f["parity_mm"])} for f in fixed_view_models or []]
    views = {"min": MIN_VIEWS, "max": None}
    if trained_views is not None:
        views["trained"] = [int(v) for v in trained_views]
    return {
        "schema_version": CARD_SCHEMA_VERSION,
        "family": CARD_FAMILY,
        "name": MODEL_NAME,
        "file": onnx_path.name,
        "sha256": file_sha256(onnx_path),
        "description": "CV-UGCN cross-view refiner (Hua et al., seed 000): refines a triangulated 3D pose "
                       "from 2+ calibrated views; " + ("FULLY SUPERVISED baseline, trained on 3D labels."
                                                       if supervised else
                                                       "trained without 3D labels (weak 2D supervision)."),
        "opset": OPSET,
        "parameters": count_parameters(model),
        "architecture": model.config.to_dict(),
        "joint_set": H36M17.name,
        "joints": list(H36M17.joints),
        "views": views,
        "min_coarse_joints": MIN_COARSE_JOINTS,
        "frames": "camera frames: x_cam = R_cam_from_world @ x_world + t_cam_from_world; world and t in mm",
        "inputs": [
            {"name": "points_cam", "shape": ["batch", "views", 17, 3], "dtype": "float32", "units": "mm",
             "meaning": "triangulated pose in each camera's frame; NaN = joint not triangulated"},
            {"name": "confidence", "shape": ["batch", "views", 17], "dtype": "float32", "units": "[0, 1]",
             "meaning": "detector confidence per view; 0 = not seen or rejected by triangulation"},
        ],
        "outputs": [
            {"name": "refined_cam", "shape": ["batch", "views", 17, 3], "dtype": "float32", "units": "mm",
             "meaning": "refined pose in each camera's frame (missing joints predicted); the world pose is "
                        "the mean over views of R^T (x - t) weighted by confidence + 0.01"},
        ],
        "fixed_view_models": fixed,
        "speed": ("the app runs the fixed-view model (same weights; BatchNorm and biases folded, constant shapes, "
                  "see training.fused_refiner) for the rig's view count and refiner.onnx for any other"
                  if fixed else "one model with dynamic batch and view axes"),
        "training": training or {},
        "metrics": metrics or {},
    }


def write_model_card(onnx_path: str | Path, model: CVUGCN, *, training: dict | None = None,
                     metrics: dict | None = None, trained_views: tuple[int, int] | None = None,
                     supervised: bool = False, fixed_view_models: list[dict] | None = None) -> Path:
    """Write ``<model>.card.yaml`` beside the ONNX file (atomically); returns its path."""
    card = model_card(onnx_path, model, training=training, metrics=metrics, trained_views=trained_views,
                      supervised=supervised, fixed_view_models=fixed_view_models)
    path = card_path_for(onnx_path)
    # json round trip: tuples and NumPy scalars become plain YAML lists and numbers
    text = yaml.safe_dump(json.loads(json.dumps(card)), sort_keys=False, allow_unicode=True)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def _summary_metrics(results: dict) -> dict:
    """From training.evaluate's results.json: MPJPE triangulation -> refined per view count and noise."""
    summary = {}
    for key, r in results.items():
        if not isinstance(r, dict) or "triangulation" not in r or "refined" not in r:
            continue
        summary[key] = {"frames": r.get("num_frames"),
                        "triangulation_mpjpe_mm": round(float(r["triangulation"]["mpjpe_mm"]), 2),
                        "refined_mpjpe_mm": round(float(r["refined"]["mpjpe_mm"]), 2),
                        "mpjpe_ratio": round(float(r["mpjpe_ratio"]), 4)}
        if "supervised" in r:  # the table's labelled baseline trained on 3D truth, for comparison
            summary[key]["supervised_baseline_mpjpe_mm"] = round(float(r["supervised"]["mpjpe_mm"]), 2)
    return summary


def export_run(run_dir: str | Path, out_dir: str | Path, *, metrics_path: str | Path | None = None) -> dict:
    """Export the run's checkpoint to ``out_dir/refiner.onnx`` + ``refiner.card.yaml``.

    Args:
        run_dir: a training run (``checkpoint.pt`` from :mod:`training.train_refiner`).
        out_dir: the folder to write to (created when missing).
        metrics_path: an evaluation ``results.json``; default ``run_dir/evaluation/results.json``
            when that exists.

    Returns:
        ``{"onnx": Path, "card": Path, "parity_mm": float, "size_mb": float, "fixed": [Path, ...]}``
        (``fixed``: the fixed-view models, see the module docstring; ``parity_mm`` covers them).

    Raises:
        CrossviewError: no checkpoint in ``run_dir``; an unreadable metrics file; an exported
            model disagreeing with torch (parity over 1e-2 mm).
    """
    from training.train_refiner import load_refiner

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    checkpoint = run_dir / "checkpoint.pt"
    if not checkpoint.is_file():
        raise CrossviewError(f"{run_dir}: no checkpoint.pt; is this a training run folder "
                             "(crossview train refiner --out ... --name ...)?")
    if out_dir.suffix == ".onnx":
        raise CrossviewError(f"--out {out_dir}: give a folder; the export writes {MODEL_NAME}.onnx and "
                             f"{MODEL_NAME}{CARD_SUFFIX} into it")
    model, config = load_refiner(run_dir)
    rows = torch.load(checkpoint, map_location="cpu", weights_only=False)["rows"]
    data = config.data
    supervised = config.supervised
    training = {
        "objective": ("FULLY SUPERVISED baseline: trained on 3D ground truth (not the weak objective)"
                      if supervised else
                      "weak (seed 000): reprojection, symmetry, 3D transform consistency, bone direction; "
                      "no 3D labels"),
        "data": f"CMU motion capture, {data.split} split, synthetic rigs of "
                f"{data.num_cameras[0]}-{data.num_cameras[1]} "
                f"cameras, simulated detector noise {data.noise!r}, 2D targets {data.target!r}",
        "run": str(run_dir),
        "epochs_trained": len(rows),
        "training_time_s": round(float(sum(r["epoch_s"] for r in rows)), 1),
        "last_epoch": rows[-1] if rows else {},
        "config": config.to_dict(),
    }
    metrics: dict = {}
    metrics_path = Path(metrics_path) if metrics_path else run_dir / "evaluation" / "results.json"
    if metrics_path.is_file():
        try:
            results = json.loads(metrics_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CrossviewError(f"{metrics_path}: cannot read the evaluation results ({exc})") from None
        metrics["cmu_test"] = {"source": str(metrics_path), **_summary_metrics(results)}
    else:
        log.info("no evaluation at %s: the card carries no test metrics", metrics_path)

    written = export_models(model, out_dir, trained_views=tuple(data.num_cameras), error_prefix=str(run_dir))
    metrics = {"torch_onnx_max_abs_difference_mm": written["parity_mm"], **metrics}
    card = write_model_card(written["onnx"], model, training=training, metrics=metrics,
                            trained_views=tuple(data.num_cameras), supervised=supervised,
                            fixed_view_models=written["fixed_view_models"])
    log.info("wrote %s, %d fixed-view models and %s", written["onnx"], len(written["fixed"]), card)
    return {"onnx": written["onnx"], "card": card, "parity_mm": written["parity_mm"],
            "size_mb": written["onnx"].stat().st_size / 1e6, "fixed": written["fixed"]}


def export_models(model: CVUGCN, out_dir: str | Path, *, trained_views: tuple[int, int] = (2, 4),
                  error_prefix: str = "export") -> dict:
    """Write ``out_dir/refiner.onnx`` (dynamic views) and the fixed-view models ``refiner.v{V}.onnx``
    for V = 2 .. max(4, the most views trained on), each checked against torch first.

    Everything is exported and checked in a scratch folder: a failed export never replaces a
    working model. The card is not written (see :func:`write_model_card`).

    Returns:
        ``{"onnx": Path, "fixed": [Path, ...], "fixed_view_models": [{"views", "file", "parity_mm"}],
        "parity_mm": float}`` (the largest difference over all models, mm).

    Raises:
        CrossviewError: a model disagreeing with torch by more than :data:`PARITY_LIMIT_MM`.
    """
    model = model.eval().cpu()
    out_dir = Path(out_dir)
    views = range(2, max(MIN_FIXED_VIEWS_UP_TO, int(trained_views[1])) + 1)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        dynamic = export_onnx(model, scratch / f"{MODEL_NAME}.onnx")
        differences = {None: max(parity(model, dynamic, views=v, batch=b) for v, b in ((2, 4), (4, 1)))}
        for v in views:
            path = export_onnx(FixedViewRefiner(model, v), scratch / fixed_view_name(v))
            differences[v] = max(parity(model, path, views=v, batch=b) for b in (1, 5))
        worst = max(differences.values())
        if worst > PARITY_LIMIT_MM:
            bad = ", ".join(f"{'dynamic' if v is None else f'{v} views'}: {d:.3g} mm" for v, d in differences.items()
                            if d > PARITY_LIMIT_MM)
            raise CrossviewError(f"{error_prefix}: ONNX Runtime disagrees with torch ({bad}); the export is broken "
                                 "(check the torch and onnx versions); nothing was written")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for v in views:
            atomic_write_bytes(out_dir / fixed_view_name(v), (scratch / fixed_view_name(v)).read_bytes())
            written.append(out_dir / fixed_view_name(v))
        onnx_path = out_dir / f"{MODEL_NAME}.onnx"
        atomic_write_bytes(onnx_path, dynamic.read_bytes())
    return {"onnx": onnx_path, "fixed": written, "parity_mm": worst,
            "fixed_view_models": [{"views": v, "file": fixed_view_name(v), "parity_mm": differences[v]} for v in views]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="training run folder (holds checkpoint.pt)")
    parser.add_argument("--out", default=None, help=f"folder for {MODEL_NAME}.onnx and {MODEL_NAME}{CARD_SUFFIX} "
                                                    "(default: the run folder)")
    parser.add_argument("--metrics", default=None,
                        help="results.json from training.evaluate (default: RUN/evaluation/results.json if present)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    written = export_run(args.run_dir, args.out or args.run_dir, metrics_path=args.metrics)
    print(f"{written['onnx']} ({written['size_mb']:.2f} MB)\n" + "".join(f"{p}\n" for p in written["fixed"])
          + f"{written['card']}\nparity: max |torch - onnx| = {written['parity_mm']:.2e} mm")


if __name__ == "__main__":
    main()
