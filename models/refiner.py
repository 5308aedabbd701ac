"""The CV-UGCN refiner at run time: a triangulated pose in, a cleaner one out (NumPy + ONNX Runtime).

Public API::

    refiner = Refiner.load("default")          # assets/models/refiner.onnx + refiner.card.yaml
    refiner = Refiner.load("runs/x/refiner.onnx") or Refiner.load("runs/x")  # a folder with refiner.onnx
    refined = refiner.refine(points3d, confidence, rig)   # (T, 17, 3) mm world -> (T, 17, 3) mm world
    refiner.card                               # RefinerCard: joint set, views, training, metrics
    refiner.provider                           # "CPUExecutionProvider", ...
    refiner.refine_cameras(points_cam (B, V, 17, 3), confidence (B, V, 17)) -> (B, V, 17, 3) mm  # network alone
    refiner.check_views(num_views)             # CrossviewError when the model cannot take that many views
    refiner.model_for(num_views)               # the session that runs that many views (fixed-view or dynamic)
    load_refiner("none") is None               # the --refiner option: "default" | "none" | PATH
    load_refiner(spec, device="cpu", threads=1) -> Refiner | None
    Refiner.load(spec, fixed_views=False)      # the dynamic model only (comparisons, benchmarks)

    to_cameras(points3d (T, J, 3), R (C, 3, 3), t (C, 3)) -> (T, C, J, 3) mm
    fuse_views(refined_cam (T, C, J, 3), confidence (T, C, J), R, t) -> (T, J, 3) mm world
    load_refiner_card(path) -> RefinerCard; card_path_for(onnx_path) -> Path

What :meth:`Refiner.refine` does, per frame (all frames in batched ONNX Runtime calls):

1. the world pose is expressed in each camera's frame, ``x_cam = R_cam_from_world x + t``;
2. the exported network (:mod:`training.export`: ``points_cam (B, V, 17, 3)`` mm and
   ``confidence (B, V, 17)`` in, ``refined_cam (B, V, 17, 3)`` mm out; its normalisation is inside
   the graph) refines the pose in every view;
3. the views' outputs go back to the world frame and are averaged with weights ``confidence +
   0.01`` (exactly :func:`training.cvugcn.fuse_views`, here in float64).

Missing data, as in training (:mod:`training.data`): a joint the triangulation could not place is
NaN in every view's input (the graph fills it in from the rest of the body) and NaN in the output
(there is nothing to check the guess against); a view that did not see a joint, or that the
triangulation rejected as an outlier, has confidence 0 there. Frames with fewer than the card's
``min_coarse_joints`` (9) triangulated joints were never in the training data and are returned
unchanged.

Speed (the issue asks for well under a millisecond per 4-view frame on the CPU). An export holds
two kinds of model with the same weights (:mod:`training.export`):

- ``refiner.onnx``: batch and view axes dynamic. Keeping V dynamic costs ~510 ONNX nodes, many of
  them shape arithmetic, ~0.5 ms per call on one core before any multiply-add.
- ``refiner.v2.onnx``, ``refiner.v3.onnx``, ``refiner.v4.onnx`` (the card's ``fixed_view_models``):
  V fixed, batch dynamic, built by :class:`training.fused_refiner.FixedViewRefiner` (BatchNorm and
  biases folded into the weights, the cross-view mean taken once per frame, coarse halves of the
  skip connections multiplied before upsampling, constant shapes): ~100 nodes after ONNX
  Runtime's optimiser, ~11 million multiply-adds per 4-view frame instead of ~15 million.

:meth:`Refiner.refine` runs the fixed-view model for the rig's view count when the export has one
(:meth:`Refiner.model_for`) and the dynamic model otherwise, for single frames and batches alike:
the fixed-view model was also faster on batches of 256 frames. A fixed batch of 1 measured no
faster than a dynamic batch, so there is no third kind. Sessions use one intra-op thread by
default (``threads=1``): a frame is too little work to split, and ONNX Runtime's default (one
thread per core) took ~25 % more CPU time and ~45 % more wall time per live 4-view frame on a
loaded 2-core machine.
The NumPy work around the network (camera transforms, fusion) is ~60 us per frame, the checks
done once per call. The refiner runs on the CPU by default: a frame's work is smaller than a GPU
call's launch and copy overhead; ``device="auto"`` or ``"cuda"`` is there for large offline
batches. ``crossview bench refiner`` measures both models in the same run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from calibration.errors import CrossviewError, check_shape
from calibration.rig import Rig
from models.model_files import (CARD_SCHEMA_VERSION, CARD_SUFFIX, DEFAULT_MODEL_DIR, ExportedModel, card_int,
                                card_mapping, card_path_for, card_text)
from models.onnx_session import OnnxModel, TensorSpec, create_session
from models.skeleton import H36M17

logger = logging.getLogger(__name__)

NUM_JOINTS = 17
MODEL_NAME = "refiner"
CARD_FAMILY = "cvugcn-refiner"
#: Weight added to every view's confidence in the fusion (training.cvugcn.fuse_views).
FUSION_EPSILON = 0.01
#: Frames per ONNX Runtime call (bounds the memory of long takes; ~3 MB of input at 4 views).
MAX_BATCH = 4096

INPUTS = (TensorSpec("points_cam", (None, None, NUM_JOINTS, 3)), TensorSpec("confidence", (None, None, NUM_JOINTS)))
OUTPUTS = (TensorSpec("refined_cam", (None, None, NUM_JOINTS, 3)),)

_CARD_KEYS = {
    "schema_version", "family", "name", "file", "sha256", "description", "opset", "parameters",
    "architecture", "joint_set", "joints", "views", "min_coarse_joints", "frames", "inputs", "outputs",
    "training", "metrics", "fixed_view_models", "speed",
}
_FIXED_KEYS = {"views", "file", "sha256", "torch_onnx_max_abs_difference_mm"}
_VIEW_KEYS = {"min", "max", "trained"}
#: The refiner's files: ``refiner.onnx`` (shipped in :data:`DEFAULT_MODEL_DIR`), its card, the export command.
FILES = ExportedModel(MODEL_NAME, CARD_FAMILY, frozenset(_CARD_KEYS), export_out="DIR")


@dataclass(frozen=True, slots=True)
class RefinerCard:
    """What a refiner's model card (``refiner.card.yaml``, written by :mod:`training.export`) says.

    Attributes:
        path: the card file.
        name: display name.
        file: the ONNX file's name, beside the card.
        sha256: the ONNX file's digest, or None (then not checked).
        joint_set: always ``"h36m17"``.
        min_views: fewest views the model takes (2).
        max_views: most views, or None for any number.
        trained_views: ``(low, high)`` view counts seen in training, or None when not stated.
        min_coarse_joints: fewest triangulated joints of a frame the model refines.
        description: one line on the model.
        training: how it was trained (data, objective, config, history), read-only.
        metrics: parity and test-split figures, read-only.
        fixed_views: view count -> ``(file, sha256 or None)`` of the fixed-view models beside the
            card (``refiner.v4.onnx``; see the module docstring), read-only; empty for old exports.
    """

    path: Path
    name: str
    file: str
    sha256: str | None
    joint_set: str
    min_views: int
    max_views: int | None
    trained_views: tuple[int, int] | None
    min_coarse_joints: int
    description: str = ""
    training: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    metrics: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    fixed_views: Mapping[int, tuple[str, str | None]] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        def fail(key: str, message: str) -> None:
            raise CrossviewError(f"{self.path}: key {key!r}: {message}")

        if self.joint_set != H36M17.name:
            fail("joint_set", f"the refiner works on {H36M17.name}, the card says {self.joint_set!r}")
        if self.min_views < 2:
            fail("views.min", f"a cross-view refiner needs at least 2 views, the card says {self.min_views}")
        if self.max_views is not None and self.max_views < self.min_views:
            fail("views.max", f"{self.max_views} is below views.min {self.min_views}")
        if self.trained_views is not None and not 2 <= self.trained_views[0] <= self.trained_views[1]:
            fail("views.trained", f"must be [low, high] with 2 <= low <= high, got {list(self.trained_views)}")
        if not 0 <= self.min_coarse_joints <= NUM_JOINTS:
            fail("min_coarse_joints", f"must be in 0..{NUM_JOINTS}, got {self.min_coarse_joints}")
        object.__setattr__(self, "training", MappingProxyType(dict(self.training)))
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))
        for views, (file, _) in self.fixed_views.items():
            if views < self.min_views or (self.max_views is not None and views > self.max_views):
                fail("fixed_view_models", f"{file} is for {views} views, outside views.min/max")
            if file == self.file:
                fail("fixed_view_models", f"{file} is the dynamic model's file")
        object.__setattr__(self, "fixed_views", MappingProxyType(dict(self.fixed_views)))

    @property
    def onnx_path(self) -> Path:
        """The ONNX file the card describes (beside the card)."""
        return self.path.parent / self.file


def load_refiner_card(path: str | Path) -> RefinerCard:
    """Read and validate a refiner card.

    Raises:
        CrossviewError: unreadable file, bad YAML, wrong schema_version or family, an unknown key,
            a missing or mistyped value; the message names the file and the key.
    """
    path = Path(path)
    data = FILES.read_card(path, required=("file", "joint_set", "views", "min_coarse_joints"))
    views = card_mapping(data["views"], "views", path)
    unknown = sorted(set(map(str, views)) - _VIEW_KEYS)
    if unknown:
        raise CrossviewError(f"{path}: unknown key(s) views.{', views.'.join(unknown)}; allowed: min, max, trained")
    max_views = views.get("max")
    trained = views.get("trained")
    if trained is not None and (not isinstance(trained, list) or len(trained) != 2):
        raise CrossviewError(f"{path}: key 'views.trained': must be [low, high], got {trained!r}")
    sha256 = data.get("sha256")
    fixed: dict[int, tuple[str, str | None]] = {}
    entries = data.get("fixed_view_models") or []
    if not isinstance(entries, list):
        raise CrossviewError(f"{path}: key 'fixed_view_models': must be a list, got {type(entries).__name__}")
    for entry in entries:
        entry = card_mapping(entry, "fixed_view_models", path)
        unknown = sorted(set(map(str, entry)) - _FIXED_KEYS)
        if unknown or "views" not in entry or "file" not in entry:
            raise CrossviewError(f"{path}: key 'fixed_view_models': each entry has views, file and optionally "
                                 f"sha256 (got keys {sorted(map(str, entry))})")
        count = card_int(entry["views"], "fixed_view_models.views", path)
        if count in fixed:
            raise CrossviewError(f"{path}: key 'fixed_view_models': two models for {count} views")
        digest = entry.get("sha256")
        fixed[count] = (card_text(entry["file"], "fixed_view_models.file", path),
                        None if digest is None else card_text(digest, "fixed_view_models.sha256", path))
    return RefinerCard(
        path=path,
        name=card_text(data.get("name", path.name.removesuffix(CARD_SUFFIX)), "name", path),
        file=card_text(data["file"], "file", path),
        sha256=None if sha256 is None else card_text(sha256, "sha256", path),
        joint_set=card_text(data["joint_set"], "joint_set", path),
        min_views=card_int(views.get("min", 2), "views.min", path),
        max_views=None if max_views is None else card_int(max_views, "views.max", path),
        trained_views=None if trained is None else tuple(card_int(v, "views.trained", path) for v in trained),
        min_coarse_joints=card_int(data["min_coarse_joints"], "min_coarse_joints", path),
        description=str(data.get("description", "")),
        training=card_mapping(data.get("training") or {}, "training", path),
        metrics=card_mapping(data.get("metrics") or {}, "metrics", path),
        fixed_views=fixed,
    )


# ------------------------------------------------------------------------------------------------
def _clean_confidence(confidence: np.ndarray) -> np.ndarray:
    """Confidence in [0, 1] with NaN as 0 (one pass; np.nan_to_num is several times slower)."""
    return np.where(confidence > 0.0, np.minimum(confidence, 1.0), 0.0)


def _rig_arrays(rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """``R (C, 3, 3)`` and ``t (C, 3)`` mm (``R_cam_from_world``, ``t_cam_from_world``), float64."""
    return (np.stack([np.asarray(c.R, dtype=np.float64) for c in rig]),
            np.stack([np.asarray(c.t, dtype=np.float64) for c in rig]))


def to_cameras(points3d: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """World points in each camera's frame.

    Args:
        points3d: ``(T, J, 3)`` mm, world frame; NaN stays NaN.
        R: ``(C, 3, 3)`` ``R_cam_from_world``.
        t: ``(C, 3)`` mm ``t_cam_from_world``.

    Returns:
        ``(T, C, J, 3)`` mm, ``x_cam = R x + t``.
    """
    check_shape("points3d", points3d, "(T, J, 3)", points3d.ndim == 3 and points3d.shape[-1] == 3)
    check_shape("R", R, "(C, 3, 3)", R.ndim == 3 and R.shape[1:] == (3, 3))
    check_shape("t", t, f"(C={len(R)}, 3)", t.shape == (len(R), 3))
    return _to_cameras(points3d, R.transpose(0, 2, 1), t)


def _to_cameras(points3d: np.ndarray, R_transposed: np.ndarray, t: np.ndarray) -> np.ndarray:
    """:func:`to_cameras` without the checks, ``R_transposed (C, 3, 3)`` = ``R^T``: the refiner's hot path."""
    return np.matmul(points3d[:, None], R_transposed[None]) + t[None, :, None, :]  # (T, C, J, 3)


def fuse_views(refined_cam: np.ndarray, confidence: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The world pose from every view's refined pose: NumPy twin of :func:`training.cvugcn.fuse_views`.

    Args:
        refined_cam: ``(T, C, J, 3)`` mm, each camera's frame.
        confidence: ``(T, C, J)`` in [0, 1] (NaN counts as 0).
        R: ``(C, 3, 3)`` ``R_cam_from_world``; t: ``(C, 3)`` mm.

    Returns:
        ``(T, J, 3)`` mm world: the mean over views of ``R^T (x - t)`` weighted by ``confidence + 0.01``
        (a joint no view saw gets the plain mean).
    """
    check_shape("refined_cam", refined_cam, "(T, C, J, 3)", refined_cam.ndim == 4 and refined_cam.shape[-1] == 3)
    check_shape("confidence", confidence, f"{refined_cam.shape[:3]} (T, C, J)",
                confidence.shape == refined_cam.shape[:3])
    check_shape("R", R, f"(C={refined_cam.shape[1]}, 3, 3)", R.shape == (refined_cam.shape[1], 3, 3))
    check_shape("t", t, f"(C={refined_cam.shape[1]}, 3)", t.shape == (refined_cam.shape[1], 3))
    return _fuse_views(refined_cam, _clean_confidence(confidence), R, t)


def _fuse_views(refined_cam: np.ndarray, clean_confidence: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """:func:`fuse_views` without the checks, confidence already in [0, 1]: the refiner's hot path."""
    world = np.matmul(refined_cam - t[None, :, None, :], R[None])  # (T, C, J, 3): rows (x - t)^T R = (R^T (x - t))^T
    weight = clean_confidence + FUSION_EPSILON  # (T, C, J)
    return (world * weight[..., None]).sum(axis=1) / weight.sum(axis=1)[..., None]


# ------------------------------------------------------------------------------------------------
class Refiner:
    """A loaded refiner: ONNX session + card. Create with :meth:`load` (or :func:`load_refiner`).

    Attributes:
        model: the ONNX Runtime session wrapper (:class:`~models.onnx_session.OnnxModel`) of the
            dynamic model (any view count).
        card: the model card.
        fixed_models: view count -> session of the fixed-view model (read-only; empty when the
            export has none or they were not asked for).
    """

    def __init__(self, model: OnnxModel, card: RefinerCard,
                 fixed_models: Mapping[int, OnnxModel] | None = None) -> None:
        self.model = model
        self.card = card
        self.fixed_models = MappingProxyType(dict(fixed_models or {}))
        self._warned_views: set[int] = set()
        self._rig_cache: tuple[Rig, np.ndarray, np.ndarray, np.ndarray] | None = None  # (rig, R, t, R^T), last rig

    @classmethod
    def load(cls, spec: str | Path, *, device: str = "cpu", threads: int | None = 1,
             fixed_views: bool = True) -> "Refiner":
        """Open a refiner.

        Args:
            spec: ``"default"`` (``assets/models/refiner.onnx``), the path of an exported
                ``.onnx`` (its card ``<name>.card.yaml`` beside it) or a folder holding ``refiner.onnx``.
            device: ``"cpu"`` (default, see the module docstring), ``"auto"``, ``"cuda"``, ``"tensorrt"``.
            threads: ONNX Runtime intra-op threads: 1 by default (see the module docstring), None
                for ONNX Runtime's default.
            fixed_views: also open the card's fixed-view models and run them for their view
                counts (default; False runs the dynamic model for everything, for comparisons).

        Raises:
            CrossviewError: a missing file or card, a card that describes another file, a model
                whose tensors are not the refiner's (expected and actual listed) or that fixes
                the batch or view count, a device that cannot be honoured.
        """
        onnx_path = FILES.resolve(spec)
        card = FILES.open_card(onnx_path, load_refiner_card)
        card_path = card.path
        model = create_session(onnx_path, device, inputs=INPUTS, outputs=OUTPUTS, threads=threads)
        fixed = [f"{name} {shape}" for name, shape in zip(model.input_names, model.input_shapes)
                 if shape[0] is not None or shape[1] is not None]
        if fixed:
            raise CrossviewError(f"{onnx_path}: exported with a fixed batch or view count ({', '.join(fixed)}); "
                                 "the app needs both dynamic: re-export with 'crossview train export RUN --out DIR'")
        fixed = {}
        for views, (file, digest) in sorted(card.fixed_views.items()) if fixed_views else ():
            path = onnx_path.parent / file
            if not path.is_file():
                raise CrossviewError(f"{card_path}: lists the {views}-view model {file}, which is missing beside it; "
                                     "re-export with 'crossview train export RUN --out DIR'")
            FILES.check_digest(card_path, path, digest)
            fixed[views] = create_session(path, device, inputs=INPUTS, outputs=OUTPUTS, threads=threads)
            shapes = fixed[views].input_shapes
            if any(shape[0] is not None or shape[1] != views for shape in shapes):
                raise CrossviewError(f"{path}: the card lists it for {views} views and a dynamic batch, its inputs "
                                     f"are {', '.join(map(str, shapes))}; re-export with 'crossview train export'")
        logger.info("refiner %s on %s%s", onnx_path, model.provider,
                    f" (fixed-view models for {sorted(fixed)} views)" if fixed else "")
        return cls(model, card, fixed)

    @property
    def path(self) -> Path:
        return self.model.path

    @property
    def provider(self) -> str:
        return self.model.provider

    def check_views(self, num_views: int) -> None:
        """Raise when the model cannot take ``num_views`` views; log once when it was not trained on them."""
        card = self.card
        if num_views < card.min_views or (card.max_views is not None and num_views > card.max_views):
            accepted = (f"{card.min_views}-{card.max_views}" if card.max_views is not None
                        else f"{card.min_views} or more")
            raise CrossviewError(f"refiner {self.path.name}: takes {accepted} views, the rig has {num_views}; "
                                 "run with --refiner none (the single-view lifter covers one camera)")
        trained = card.trained_views
        if trained is not None and not trained[0] <= num_views <= trained[1] and num_views not in self._warned_views:
            self._warned_views.add(num_views)
            logger.warning("refiner %s was trained on %d-%d views; running it on %d", self.path.name,
                           trained[0], trained[1], num_views)

    def model_for(self, num_views: int) -> OnnxModel:
        """The session that runs ``num_views`` views: the fixed-view model when there is one, else
        the dynamic model."""
        return self.fixed_models.get(num_views, self.model)

    def refine_cameras(self, points_cam: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """Run the network alone.

        Args:
            points_cam: ``(B, V, 17, 3)`` mm, the coarse pose in each camera's frame; NaN = missing.
            confidence: ``(B, V, 17)`` in [0, 1].

        Returns:
            ``(B, V, 17, 3)`` float64 mm, the refined pose in each camera's frame (never NaN).
        """
        check_shape("points_cam", points_cam, f"(B, V, {NUM_JOINTS}, 3)",
                    points_cam.ndim == 4 and points_cam.shape[2:] == (NUM_JOINTS, 3))
        check_shape("confidence", confidence, f"{points_cam.shape[:3]} (B, V, {NUM_JOINTS})",
                    confidence.shape == points_cam.shape[:3])
        self.check_views(points_cam.shape[1])
        return self._run_network(points_cam, confidence)

    def _run_network(self, points_cam: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """:meth:`refine_cameras` without the checks."""
        model = self.model_for(points_cam.shape[1])
        if len(points_cam) <= MAX_BATCH:  # one call (a live frame): no chunk copies
            return model.run(points_cam, confidence)[0].astype(np.float64)
        out = np.empty(points_cam.shape, dtype=np.float64)
        for start in range(0, len(points_cam), MAX_BATCH):
            chunk = slice(start, start + MAX_BATCH)
            out[chunk] = model.run(points_cam[chunk], confidence[chunk])[0]
        return out

    def refine(self, points3d: np.ndarray, confidence: np.ndarray, rig: Rig) -> np.ndarray:
        """Refine triangulated poses.

        Args:
            points3d: ``(T, 17, 3)`` mm world, H36M-17; NaN where triangulation placed no joint.
            confidence: ``(T, C, 17)`` in [0, 1], the detector's confidence per view, 0 where the
                view did not see the joint or the triangulation rejected it as an outlier (as in
                training: ``np.where(inliers, confidence, 0)``).
            rig: the C cameras, in the views' order.

        Returns:
            ``(T, 17, 3)`` float64 mm world; NaN exactly where ``points3d`` is; frames with fewer
            than ``card.min_coarse_joints`` joints unchanged.

        Raises:
            ShapeError: wrong shapes. CrossviewError: a rig with a view count the model does not take.
        """
        points3d = np.asarray(points3d, dtype=np.float64)
        confidence = np.asarray(confidence, dtype=np.float64)
        check_shape("points3d", points3d, f"(T, {NUM_JOINTS}, 3)",
                    points3d.ndim == 3 and points3d.shape[1:] == (NUM_JOINTS, 3))
        T, C = len(points3d), len(rig)
        check_shape("confidence", confidence, f"(T={T}, C={C}, {NUM_JOINTS})", confidence.shape == (T, C, NUM_JOINTS))
        self.check_views(C)
        valid = np.isfinite(points3d).all(axis=-1)  # (T, J)
        run = valid.sum(axis=-1) >= max(self.card.min_coarse_joints, 1)  # (T,)
        if not run.any():
            return points3d.copy()
        cached = self._rig_cache  # one read: safe if another thread swaps the rig
        if cached is None or cached[0] is not rig:  # a rig is frozen: its arrays are made once
            R, t = _rig_arrays(rig)
            cached = self._rig_cache = (rig, R, t, np.ascontiguousarray(R.transpose(0, 2, 1)))
        _, R, t, R_transposed = cached
        everything = bool(run.all())
        coarse = points3d if everything else points3d[run]  # (N, J, 3)
        valid = valid if everything else valid[run]  # (N, J)
        conf = _clean_confidence(confidence if everything else confidence[run])  # (N, C, J)
        # A joint with any NaN coordinate has a NaN camera coordinate, which the graph treats as missing.
        # Shapes are checked above: the unchecked helpers keep a live frame's NumPy work small.
        refined_cam = self._run_network(_to_cameras(coarse, R_transposed, t), conf)  # (N, C, J, 3)
        world = np.where(valid[..., None], _fuse_views(refined_cam, conf, R, t), np.nan)  # (N, J, 3)
        if everything:
            return world
        out = points3d.copy()
        out[run] = world
        return out

    def __repr__(self) -> str:
        return f"Refiner({self.path}, {self.provider})"


def load_refiner(spec: str | Path | None, *, device: str = "cpu", threads: int | None = 1) -> Refiner | None:
    """The ``--refiner`` option: ``"none"`` (or None) -> None; ``"default"`` or a path -> :meth:`Refiner.load`."""
    if spec is None or str(spec).strip().lower() == "none":
        return None
    return Refiner.load(spec, device=device, threads=threads)


__all__ = ["CARD_FAMILY", "CARD_SCHEMA_VERSION", "CARD_SUFFIX", "DEFAULT_MODEL_DIR", "FILES", "MODEL_NAME", "Refiner",
           "RefinerCard", "card_path_for", "fuse_views", "load_refiner", "load_refiner_card", "to_cameras"]
