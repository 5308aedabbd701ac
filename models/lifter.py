"""The single-view lifter at run time: one camera's 2D joints in, a 3D pose in the world out (NumPy + ONNX Runtime).

Public API::

    lifter = Lifter.load("default")            # assets/models/lifter.onnx + lifter.card.yaml
    lifter = Lifter.load("runs/x/lifter.onnx") or Lifter.load("runs/x")   # a folder holding lifter.onnx
    world = lifter.lift(keypoints, confidence, camera)   # (T, 17, 2) px, (T, 17) -> (T, 17, 3) mm world
    relative = lifter.lift_relative(keypoints, confidence, camera)  # (T, 17, 3) mm, camera frame, pelvis at 0
    lifter.card                                # LifterCard: joint set, training, metrics
    load_lifter("none") is None                # the --lifter option: "default" | "none" | PATH

    fit_root_translation(relative (T, J, 3) mm, normalized (T, J, 2), weight (T, J)) -> (T, 3) mm

What :meth:`Lifter.lift` does (all frames in batched ONNX Runtime calls):

1. the keypoints are undistorted with the camera's lens model (``camera.undistort_points``);
2. the exported network (:mod:`training.lifter`: undistorted ``keypoints (B, 17, 2)`` px,
   ``confidence (B, 17)``, ``K (B, 3, 3)`` in; ``points_cam (B, 17, 3)`` mm out, root-relative in
   the camera frame; the normalisation is inside the graph) lifts each frame;
3. the root's position is the translation ``T`` that best reprojects the lifted pose onto the
   keypoints (:func:`fit_root_translation`: linear least squares, confidence-weighted);
4. the pose goes to the world frame: ``x_world = R^T (x_cam - t)``.

Missing data: joints with confidence 0 (or NaN keypoints) are inputs the network knows to be
missing; it still predicts them from the rest of the body, and they are returned (the pipeline
marks the frame ``"lifted"``). Frames where fewer than the card's ``min_seen_joints`` joints were
seen (the training data never held such views) come back all NaN, as do frames whose root cannot
be placed in front of the camera.

The absolute position is the weak part of any single-view estimate: the distance follows from the
pose's size in the image and the size the network expects of a person (the training subjects' own
skeletons), so a child or a very tall person is placed too close or too far, by the ratio of the
statures; the pose's shape and its orientation relative to the camera are what the lifter gets
right (see the card's N-MPJPE).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from calibration.camera import Camera
from calibration.errors import CrossviewError, check_shape
from models.model_files import (CARD_SCHEMA_VERSION, CARD_SUFFIX, DEFAULT_MODEL_DIR, ExportedModel, card_int,
                                card_mapping, card_path_for, card_text)
from models.onnx_session import OnnxModel, TensorSpec, create_session
from models.skeleton import H36M17

logger = logging.getLogger(__name__)

NUM_JOINTS = 17
MODEL_NAME = "lifter"
CARD_FAMILY = "transform-reprojection-lifter"
#: Frames per ONNX Runtime call.
MAX_BATCH = 4096

INPUTS = (TensorSpec("keypoints", (None, NUM_JOINTS, 2)), TensorSpec("confidence", (None, NUM_JOINTS)),
          TensorSpec("K", (None, 3, 3)))
OUTPUTS = (TensorSpec("points_cam", (None, NUM_JOINTS, 3)),)

_CARD_KEYS = {
    "schema_version", "family", "name", "file", "sha256", "description", "opset", "parameters", "architecture",
    "joint_set", "joints", "min_seen_joints", "frames", "inputs", "outputs", "training", "metrics",
}
#: The lifter's files: ``lifter.onnx`` (shipped in :data:`DEFAULT_MODEL_DIR`), its card, the export command.
FILES = ExportedModel(MODEL_NAME, CARD_FAMILY, frozenset(_CARD_KEYS), export_out="FILE.onnx")
_MIN_DEPTH_MM = 1.0


@dataclass(frozen=True, slots=True)
class LifterCard:
    """What a lifter's model card (``lifter.card.yaml``, written by :mod:`training.lifter`) says.

    Attributes:
        path: the card file.
        name: display name.
        file: the ONNX file's name, beside the card.
        sha256: the ONNX file's digest, or None (then not checked).
        joint_set: always ``"h36m17"``.
        min_seen_joints: fewest seen joints of a frame the model lifts.
        description: one line on the model.
        training: how it was trained, read-only.
        metrics: parity and test-split figures, read-only.
    """

    path: Path
    name: str
    file: str
    sha256: str | None
    joint_set: str
    min_seen_joints: int
    description: str = ""
    training: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    metrics: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.joint_set != H36M17.name:
            raise CrossviewError(f"{self.path}: key 'joint_set': the lifter works on {H36M17.name}, "
                                 f"the card says {self.joint_set!r}")
        if not 1 <= self.min_seen_joints <= NUM_JOINTS:
            raise CrossviewError(f"{self.path}: key 'min_seen_joints': must be in 1..{NUM_JOINTS}, "
                                 f"got {self.min_seen_joints}")
        object.__setattr__(self, "training", MappingProxyType(dict(self.training)))
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))

    @property
    def onnx_path(self) -> Path:
        """The ONNX file the card describes (beside the card)."""
        return self.path.parent / self.file


def load_lifter_card(path: str | Path) -> LifterCard:
    """Read and validate a lifter card.

    Raises:
        CrossviewError: unreadable file, bad YAML, wrong schema_version or family, an unknown key,
            a missing or mistyped value; the message names the file and the key.
    """
    path = Path(path)
    data = FILES.read_card(path, required=("file", "joint_set", "min_seen_joints"))
    sha256 = data.get("sha256")
    return LifterCard(path=path, name=str(data.get("name", path.name.removesuffix(CARD_SUFFIX))),
                      file=card_text(data["file"], "file", path),
                      sha256=None if sha256 is None else card_text(sha256, "sha256", path),
                      joint_set=card_text(data["joint_set"], "joint_set", path),
                      min_seen_joints=card_int(data["min_seen_joints"], "min_seen_joints", path),
                      description=str(data.get("description", "")),
                      training=card_mapping(data.get("training") or {}, "training", path),
                      metrics=card_mapping(data.get("metrics") or {}, "metrics", path))


# ------------------------------------------------------------------------------------------------
def fit_root_translation(relative: np.ndarray, normalized: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The translation that places a root-relative pose where it reprojects onto the keypoints.

    For joint j with pose point ``P_j`` (camera frame) and undistorted normalised observation
    ``(x_j, y_j)``, ``(P_j + T)`` projects onto it when ``T_x - x_j T_z = x_j P_jz - P_jx`` and
    ``T_y - y_j T_z = y_j P_jz - P_jy``: linear in ``T``. The weighted least-squares solution of
    these 2J equations is refined once with weights divided by the squared depth (the algebraic
    residual is the image residual times the depth), which brings it close to the reprojection
    least squares. Exact for noise-free, consistent inputs.

    Args:
        relative: ``(T, J, 3)`` mm, root-relative poses in the camera frame.
        normalized: ``(T, J, 2)`` undistorted normalised coordinates ``(x/z, y/z)``; NaN = missing.
        weight: ``(T, J)`` >= 0 (the confidence); 0 = not used.

    Returns:
        ``(T, 3)`` mm; NaN where fewer than two joints carry weight, the system is degenerate or the
        root lands behind the camera.
    """
    relative = np.asarray(relative, dtype=np.float64)
    check_shape("relative", relative, "(T, J, 3)", relative.ndim == 3 and relative.shape[-1] == 3)
    T, J = relative.shape[:2]
    normalized = np.asarray(normalized, dtype=np.float64)
    check_shape("normalized", normalized, f"(T={T}, J={J}, 2)", normalized.shape == (T, J, 2))
    weight = np.asarray(weight, dtype=np.float64)
    check_shape("weight", weight, f"(T={T}, J={J})", weight.shape == (T, J))
    usable = np.isfinite(normalized).all(axis=-1) & np.isfinite(relative).all(axis=-1) & (weight > 0)
    w = np.where(usable, weight, 0.0)  # (T, J)
    x = np.where(usable, normalized[..., 0], 0.0)
    y = np.where(usable, normalized[..., 1], 0.0)
    P = np.where(usable[..., None], relative, 0.0)  # (T, J, 3)
    translation = np.full((T, 3), np.nan)
    ok = (usable.sum(axis=1) >= 2)
    for _ in range(2):  # algebraic fit, then once reweighted by 1 / depth^2
        # Rows [1, 0, -x] and [0, 1, -y]: the normal equations A^T W A T = A^T W b, summed over joints.
        sw, swx, swy = w.sum(1), (w * x).sum(1), (w * y).sum(1)
        swxx = (w * (x * x + y * y)).sum(1)
        bx, by = x * P[..., 2] - P[..., 0], y * P[..., 2] - P[..., 1]  # (T, J)
        normal = np.zeros((T, 3, 3))
        normal[:, 0, 0] = normal[:, 1, 1] = sw
        normal[:, 0, 2] = normal[:, 2, 0] = -swx
        normal[:, 1, 2] = normal[:, 2, 1] = -swy
        normal[:, 2, 2] = swxx
        rhs = np.stack([(w * bx).sum(1), (w * by).sum(1), -(w * (x * bx + y * by)).sum(1)], axis=1)  # (T, 3)
        good = ok & (np.abs(np.linalg.det(normal)) > 1e-12 * np.maximum(sw, 1e-12) ** 3)
        solution = np.full((T, 3), np.nan)
        if np.any(good):
            solution[good] = np.linalg.solve(normal[good], rhs[good][..., None])[..., 0]
        translation = solution
        depth = P[..., 2] + translation[:, 2:3]  # (T, J)
        with np.errstate(invalid="ignore"):
            w = np.where(usable & (depth > _MIN_DEPTH_MM), weight / np.maximum(depth, _MIN_DEPTH_MM) ** 2, 0.0)
        w = w * 1e6  # keep the sums well scaled (depths are metres)
        ok = good & ((w > 0).sum(axis=1) >= 2)
    with np.errstate(invalid="ignore"):
        translation[~(translation[:, 2] > _MIN_DEPTH_MM)] = np.nan
    return translation


class Lifter:
    """A loaded lifter: ONNX session + card. Create with :meth:`load` (or :func:`load_lifter`).

    Attributes:
        model: the ONNX Runtime session wrapper (:class:`~models.onnx_session.OnnxModel`).
        card: the model card.
    """

    def __init__(self, model: OnnxModel, card: LifterCard) -> None:
        self.model = model
        self.card = card

    @classmethod
    def load(cls, spec: str | Path, *, device: str = "cpu", threads: int | None = None) -> "Lifter":
        """Open a lifter.

        Args:
            spec: ``"default"`` (``assets/models/lifter.onnx``), the path of an exported ``.onnx``
                (its card ``<name>.card.yaml`` beside it) or a folder holding ``lifter.onnx``.
            device: ``"cpu"`` (default: one frame is ~1 M multiply-adds), ``"auto"``, ``"cuda"``, ``"tensorrt"``.
            threads: ONNX Runtime intra-op threads (its default when None).

        Raises:
            CrossviewError: a missing file or card, a card that describes another file, a model
                whose tensors are not the lifter's (expected and actual listed), a broken file.
        """
        onnx_path = FILES.resolve(spec)
        card = FILES.open_card(onnx_path, load_lifter_card)
        model = create_session(onnx_path, device, inputs=INPUTS, outputs=OUTPUTS, threads=threads)
        logger.info("lifter %s on %s", onnx_path, model.provider)
        return cls(model, card)

    @property
    def path(self) -> Path:
        return self.model.path

    @property
    def provider(self) -> str:
        return self.model.provider

    def _inputs(self, keypoints: np.ndarray, confidence: np.ndarray, camera: Camera):
        keypoints = np.asarray(keypoints, dtype=np.float64)
        check_shape("keypoints", keypoints, f"(T, {NUM_JOINTS}, 2)",
                    keypoints.ndim == 3 and keypoints.shape[1:] == (NUM_JOINTS, 2))
        confidence = np.asarray(confidence, dtype=np.float64)
        check_shape("confidence", confidence, f"(T={len(keypoints)}, {NUM_JOINTS})",
                    confidence.shape == keypoints.shape[:2])
        if not isinstance(camera, Camera):
            raise CrossviewError(f"the lifter needs a calibration.Camera, got {type(camera).__name__}")
        undistorted = camera.undistort_points(keypoints)  # (T, J, 2) px, NaN stays NaN
        seen = np.isfinite(undistorted).all(axis=-1) & (confidence > 0)  # (T, J)
        confidence = np.where(seen, np.minimum(confidence, 1.0), 0.0)
        undistorted[~seen] = np.nan
        return undistorted, confidence, seen

    def _run(self, undistorted: np.ndarray, confidence: np.ndarray, K: np.ndarray) -> np.ndarray:
        """The network on ``(N, J, 2)`` px, ``(N, J)``: ``(N, J, 3)`` mm float64, in batches."""
        out = []
        for s in range(0, len(undistorted), MAX_BATCH):
            n = len(undistorted[s:s + MAX_BATCH])
            (points,) = self.model.run(undistorted[s:s + MAX_BATCH].astype(np.float32),
                                       confidence[s:s + MAX_BATCH].astype(np.float32),
                                       np.broadcast_to(K.astype(np.float32), (n, 3, 3)).copy())
            out.append(points.astype(np.float64))
        return np.concatenate(out) if out else np.zeros((0, NUM_JOINTS, 3))

    def lift_relative(self, keypoints: np.ndarray, confidence: np.ndarray, camera: Camera) -> np.ndarray:
        """The root-relative pose in the camera's frame.

        Args:
            keypoints: ``(T, 17, 2)`` px, distorted image coordinates (as detected), H36M-17; NaN = missing.
            confidence: ``(T, 17)`` in [0, 1]; 0 = missing.
            camera: the calibrated camera that saw them.

        Returns:
            ``(T, 17, 3)`` mm, camera frame, pelvis at 0; NaN rows for frames with fewer than
            ``card.min_seen_joints`` seen joints.
        """
        return self._relative(keypoints, confidence, camera)[0]

    def _relative(self, keypoints: np.ndarray, confidence: np.ndarray, camera: Camera):
        """:meth:`lift_relative`'s pose, the cleaned ``confidence (T, J)`` and ``seen (T, J)``."""
        undistorted, confidence, seen = self._inputs(keypoints, confidence, camera)
        relative = np.full(undistorted.shape[:2] + (3,), np.nan)
        frames = seen.sum(axis=1) >= self.card.min_seen_joints  # (T,)
        if np.any(frames):
            relative[frames] = self._run(undistorted[frames], confidence[frames], camera.K)
        return relative, confidence, seen

    def lift(self, keypoints: np.ndarray, confidence: np.ndarray, camera: Camera) -> np.ndarray:
        """The 3D pose in the world frame of ``camera``'s calibration.

        Args:
            keypoints: ``(T, 17, 2)`` px, distorted image coordinates (as detected), H36M-17; NaN = missing.
            confidence: ``(T, 17)`` in [0, 1]; 0 = missing.
            camera: the calibrated camera that saw them.

        Returns:
            ``(T, 17, 3)`` mm, world frame; NaN rows for frames that could not be lifted or placed
            (see the module docstring).
        """
        relative, confidence, seen = self._relative(keypoints, confidence, camera)
        keypoints = np.asarray(keypoints, dtype=np.float64)
        normalized = camera.undistort_points(np.where(seen[..., None], keypoints, np.nan), normalized=True)
        translation = fit_root_translation(relative, normalized, confidence)  # (T, 3) mm
        points_cam = relative + translation[:, None, :]  # (T, J, 3)
        return (points_cam - camera.t) @ camera.R  # R^T (x - t), as rows


def load_lifter(spec: str | Path | None, *, device: str = "cpu") -> Lifter | None:
    """The ``--lifter`` option: ``"none"`` (or None) -> None, ``"default"`` or a path -> :class:`Lifter`."""
    if spec is None or str(spec) == "none":
        return None
    return Lifter.load(spec, device=device)


__all__ = ["CARD_FAMILY", "CARD_SCHEMA_VERSION", "CARD_SUFFIX", "DEFAULT_MODEL_DIR", "FILES", "MODEL_NAME", "Lifter",
           "LifterCard", "card_path_for", "fit_root_translation", "load_lifter", "load_lifter_card"]
