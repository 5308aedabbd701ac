"""Model cards: a small YAML file beside each ONNX model saying how to feed it and read it.

``pose_landmark_full.onnx`` has its card in ``pose_landmark_full.yaml``. A card for an RTMPose
export, say, reads::

    schema_version: 1
    family: rtmpose                 # blazepose | rtmpose | rtmo | yolo-pose
    name: rtmpose-m body 256x192    # optional; default: the file name
    file: rtmpose-m.onnx            # optional; default: the card's name with .onnx
    input:
      shape: [batch, 3, 256, 192]   # sizes; a string is a dynamic size
      layout: NCHW                  # NCHW | NHWC
      channels: RGB                 # RGB | BGR
      mean: [123.675, 116.28, 103.53]   # in 0-255 pixel units, per channel in 'channels' order
      std: [58.395, 57.12, 57.375]
      # or instead of mean/std: range: [0.0, 1.0]  (pixel / 255 mapped linearly onto the range)
    outputs:                        # optional: names and shapes, checked when the model loads
      simcc_x: {shape: [batch, 17, 384]}
      simcc_y: {shape: [batch, 17, 512]}
    keypoints:
      joint_set: coco17             # coco17 | halpe26 | body25 | blazepose33 | h36m17

Optional keys, kept as they are: ``sha256``, ``role``, ``description``, ``license``, and the
mappings ``anchors``, ``source`` and ``converter`` (the BlazePose cards written by
:mod:`models.model_store` use them); ``input`` may also carry ``name``, ``dtype`` and ``resize``,
and each output a ``meaning``. Any other key is an error naming the file and the key: a typo must
not silently change how a model is fed.

Keypoints map to the project's H36M-17 skeleton through :func:`models.skeleton.to_h36m17`;
HALPE-26 and OpenPose BODY-25 are first reordered to COCO-17 (HALPE-26 starts with the COCO-17
joints; BODY-25 is reordered as :mod:`models.keypoint_io` does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
import yaml

from calibration.errors import CrossviewError, check_shape
from models.keypoint_io import BODY25_TO_COCO17  # the one BODY-25 -> COCO-17 table in the project
from models.onnx_session import TensorSpec
from models.skeleton import to_h36m17

logger = logging.getLogger(__name__)

CARD_SCHEMA_VERSION = 1
FAMILIES = ("blazepose", "rtmpose", "rtmo", "yolo-pose")
#: Keypoints per joint set a card may name.
JOINT_SET_SIZES: Mapping[str, int] = MappingProxyType(
    {"coco17": 17, "halpe26": 26, "body25": 25, "blazepose33": 33, "h36m17": 17}
)
#: Source joint of each COCO-17 joint, for the joint sets that reorder to COCO-17.
_TO_COCO17: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {"halpe26": tuple(range(17)), "body25": tuple(BODY25_TO_COCO17)}
)

_TOP_KEYS = {
    "schema_version", "family", "name", "file", "sha256", "role", "description", "license",
    "input", "outputs", "keypoints", "anchors", "source", "converter",
}
_INPUT_KEYS = {"name", "shape", "layout", "channels", "mean", "std", "range", "dtype", "resize"}
_OUTPUT_KEYS = {"shape", "meaning"}
_KEYPOINT_KEYS = {"joint_set", "count"}


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What a model card says.

    Attributes:
        path: the card file.
        family: ``"blazepose"``, ``"rtmpose"``, ``"rtmo"`` or ``"yolo-pose"``.
        name: a display name.
        file: the ONNX file name, beside the card.
        input_name: the input tensor's name, or None (found by shape).
        input_shape: input sizes in the model's layout; None for a dynamic size.
        layout: ``"NCHW"`` or ``"NHWC"``.
        channels: ``"RGB"`` or ``"BGR"``.
        mean: (3,) per channel in ``channels`` order, 0-255 pixel units.
        std: (3,) likewise; the model input is ``(pixel - mean) / std``.
        outputs: ``(name, shape)`` per listed output; None sizes are dynamic.
        joint_set: the keypoint layout, or None for a model without keypoints (a detector).
        sha256: the ONNX file's digest, or None.
        extra: the optional descriptive keys (role, anchors, source, converter, ...), read-only.
    """

    path: Path
    family: str
    name: str
    file: str
    input_name: str | None
    input_shape: tuple[int | None, ...]
    layout: str
    channels: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    outputs: tuple[tuple[str, tuple[int | None, ...]], ...] = ()
    joint_set: str | None = None
    sha256: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        def fail(key: str, message: str) -> None:
            raise CrossviewError(f"{self.path}: key {key!r}: {message}")

        if self.family not in FAMILIES:
            fail("family", f"unknown family {self.family!r}; use one of {', '.join(FAMILIES)}")
        if self.layout not in ("NCHW", "NHWC"):
            fail("input.layout", f"must be NCHW or NHWC, got {self.layout!r}")
        if self.channels not in ("RGB", "BGR"):
            fail("input.channels", f"must be RGB or BGR, got {self.channels!r}")
        if len(self.input_shape) != 4:
            fail("input.shape", f"must have 4 sizes (batch and image), got {list(self.input_shape)}")
        channel_axis = 1 if self.layout == "NCHW" else 3
        if self.input_shape[channel_axis] != 3:
            fail(
                "input.shape",
                f"{list(self.input_shape)} has no 3 colour channels at axis {channel_axis} as layout "
                f"{self.layout} says: is the layout wrong?",
            )
        if any(s == 0 for s in self.std):
            fail("input.std", "must not contain 0")
        if self.joint_set is not None and self.joint_set not in JOINT_SET_SIZES:
            fail("keypoints.joint_set", f"unknown joint set {self.joint_set!r}; use one of {', '.join(JOINT_SET_SIZES)}")
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    # --------------------------------------------------------------------------------------------
    @property
    def onnx_path(self) -> Path:
        """The ONNX file the card describes (beside the card)."""
        return self.path.parent / self.file

    @property
    def input_height(self) -> int | None:
        return self.input_shape[2] if self.layout == "NCHW" else self.input_shape[1]

    @property
    def input_width(self) -> int | None:
        return self.input_shape[3] if self.layout == "NCHW" else self.input_shape[2]

    @property
    def num_keypoints(self) -> int | None:
        return None if self.joint_set is None else JOINT_SET_SIZES[self.joint_set]

    def input_spec(self) -> TensorSpec:
        """The input as :func:`models.onnx_session.create_session` checks it."""
        return TensorSpec(self.input_name, self.input_shape)

    def output_specs(self) -> tuple[TensorSpec, ...]:
        """The listed outputs, in card order, for :func:`models.onnx_session.create_session`."""
        return tuple(TensorSpec(name, shape) for name, shape in self.outputs)

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """Turn resized BGR images into the model's input.

        Args:
            images: ``(B, H, W, 3)`` uint8 (or float 0-255) BGR, already at the input size.

        Returns:
            ``(B, 3, H, W)`` or ``(B, H, W, 3)`` float32 as ``layout`` says, channels in
            ``channels`` order, ``(pixel - mean) / std``.
        """
        check_shape("images", images, "(B, H, W, 3)", images.ndim == 4 and images.shape[-1] == 3)
        x = images[..., ::-1] if self.channels == "RGB" else images
        x = (x.astype(np.float32) - np.float32(self.mean)) / np.float32(self.std)  # (B, H, W, 3)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)  # (B, 3, H, W)
        return np.ascontiguousarray(x)

    def to_h36m17(self, keypoints: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map the model's keypoints to H36M-17.

        Args:
            keypoints: ``(..., J, 2)`` px (or ``(..., J, 3)``), J = the joint set's size.
            confidence: ``(..., J)`` in [0, 1].

        Returns:
            ``(..., 17, 2)`` and ``(..., 17)``, see :func:`models.skeleton.to_h36m17`.
        """
        if self.joint_set is None:
            raise CrossviewError(f"{self.path}: the card names no keypoints.joint_set, so its keypoints cannot be mapped")
        joints = JOINT_SET_SIZES[self.joint_set]
        check_shape("keypoints", keypoints, f"(..., {joints}, 2 or 3)", keypoints.ndim >= 2 and keypoints.shape[-2] == joints)
        check_shape("confidence", confidence, f"(..., {joints})", confidence.shape == keypoints.shape[:-1])
        joint_set = self.joint_set
        if joint_set in _TO_COCO17:
            index = list(_TO_COCO17[joint_set])
            keypoints, confidence, joint_set = keypoints[..., index, :], confidence[..., index], "coco17"
        return to_h36m17(keypoints, confidence, joint_set)


# ------------------------------------------------------------------------------------------------
def _mapping(value: Any, where: str, path: Path, allowed: set[str] | None) -> dict:
    if not isinstance(value, dict):
        raise CrossviewError(f"{path}: key {where!r}: must be a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise CrossviewError(f"{path}: key {where!r}: keys must be text, got {key!r}")
        if allowed is not None and key not in allowed:
            raise CrossviewError(
                f"{path}: unknown key {(where + '.' + key) if where else key!r}; "
                f"allowed here: {', '.join(sorted(allowed))}"
            )
    return value


def _shape(value: Any, where: str, path: Path) -> tuple[int | None, ...]:
    if not isinstance(value, list) or not value:
        raise CrossviewError(f"{path}: key {where!r}: must be a list of sizes, got {value!r}")
    shape = []
    for size in value:
        if isinstance(size, str):
            shape.append(None)  # a named dynamic size, e.g. "batch"
        elif isinstance(size, int) and not isinstance(size, bool) and size > 0:
            shape.append(size)
        else:
            raise CrossviewError(f"{path}: key {where!r}: sizes must be positive integers or names, got {size!r}")
    return tuple(shape)


def _triple(value: Any, where: str, path: Path) -> tuple[float, float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise CrossviewError(f"{path}: key {where!r}: must be 3 numbers (one per channel), got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _text(value: Any, where: str, path: Path) -> str:
    if not isinstance(value, str) or not value:
        raise CrossviewError(f"{path}: key {where!r}: must be text, got {value!r}")
    return value


def _normalisation(spec: dict, path: Path) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    has_range = "range" in spec
    has_mean_std = "mean" in spec or "std" in spec
    if has_range and has_mean_std:
        raise CrossviewError(f"{path}: key 'input': give either 'range' or 'mean' and 'std', not both")
    if has_range:
        value = spec["range"]
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or value[0] == value[1]
        ):
            raise CrossviewError(f"{path}: key 'input.range': must be [low, high], got {value!r}")
        low, high = float(value[0]), float(value[1])
        # pixel / 255 * (high - low) + low == (pixel - mean) / std
        std = 255.0 / (high - low)
        mean = 0.0 - low * std + 0.0  # + 0.0: no -0.0 in messages
        return (mean, mean, mean), (std, std, std)
    if "mean" in spec and "std" in spec:
        return _triple(spec["mean"], "input.mean", path), _triple(spec["std"], "input.std", path)
    raise CrossviewError(
        f"{path}: key 'input': the normalisation is missing: give 'range: [0.0, 1.0]' (or [-1.0, 1.0]) "
        "or 'mean' and 'std' in 0-255 units"
    )


def load_model_card(path: str | Path) -> ModelCard:
    """Read and validate a model card.

    Raises:
        CrossviewError: unreadable file, bad YAML, a wrong schema_version, an unknown key, a
            missing or mistyped value; the message names the file and the key.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CrossviewError(f"{path}: cannot read the model card: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise CrossviewError(f"{path}: not valid YAML: {exc}") from None
    data = _mapping(data, "", path, _TOP_KEYS)
    version = data.get("schema_version")
    if version != CARD_SCHEMA_VERSION:
        raise CrossviewError(
            f"{path}: key 'schema_version': this version reads schema_version {CARD_SCHEMA_VERSION}, "
            f"the card has {version!r}"
        )
    for key in ("family", "input"):
        if key not in data:
            raise CrossviewError(f"{path}: key {key!r} is missing")
    spec = _mapping(data["input"], "input", path, _INPUT_KEYS)
    for key in ("shape", "layout", "channels"):
        if key not in spec:
            raise CrossviewError(f"{path}: key 'input.{key}' is missing")
    if spec.get("dtype", "float32") != "float32":
        raise CrossviewError(f"{path}: key 'input.dtype': only float32 inputs are supported, got {spec['dtype']!r}")
    mean, std = _normalisation(spec, path)
    outputs = []
    for name, output in _mapping(data.get("outputs", {}), "outputs", path, None).items():
        output = _mapping(output, f"outputs.{name}", path, _OUTPUT_KEYS)
        if "shape" not in output:
            raise CrossviewError(f"{path}: key 'outputs.{name}.shape' is missing")
        outputs.append((name, _shape(output["shape"], f"outputs.{name}.shape", path)))
    joint_set = None
    if "keypoints" in data:
        keypoints = _mapping(data["keypoints"], "keypoints", path, _KEYPOINT_KEYS)
        joint_set = _text(keypoints.get("joint_set"), "keypoints.joint_set", path)
        count = keypoints.get("count")
        if count is not None and JOINT_SET_SIZES.get(joint_set, count) != count:
            raise CrossviewError(
                f"{path}: key 'keypoints.count': {joint_set} has {JOINT_SET_SIZES[joint_set]} keypoints, the card says {count}"
            )
    extra = {}
    for key in ("role", "description", "license"):
        if key in data:
            extra[key] = _text(data[key], key, path)
    for key in ("anchors", "source", "converter"):
        if key in data:
            extra[key] = MappingProxyType(_mapping(data[key], key, path, None))
    sha256 = data.get("sha256")
    if sha256 is not None:
        sha256 = _text(sha256, "sha256", path)
    return ModelCard(
        path=path,
        family=_text(data["family"], "family", path),
        name=_text(data.get("name", path.stem), "name", path),
        file=_text(data.get("file", f"{path.stem}.onnx"), "file", path),
        input_name=None if spec.get("name") is None else _text(spec["name"], "input.name", path),
        input_shape=_shape(spec["shape"], "input.shape", path),
        layout=_text(spec["layout"], "input.layout", path),
        channels=_text(spec["channels"], "input.channels", path),
        mean=mean,
        std=std,
        outputs=tuple(outputs),
        joint_set=joint_set,
        sha256=sha256,
        extra=extra,
    )


@dataclass(frozen=True, slots=True)
class DiscoveredModel:
    """An ONNX file found in a models folder, with its card or the reason it has none.

    Attributes:
        onnx_path: the ONNX file.
        card: its card, or None.
        problem: '' when the card loaded; else what is wrong, in words (missing or invalid card).
    """

    onnx_path: Path
    card: ModelCard | None
    problem: str = ""

    @property
    def usable(self) -> bool:
        return self.card is not None and not self.problem


def discover_models(folder: str | Path) -> list[DiscoveredModel]:
    """Every ``*.onnx`` file in ``folder`` (not its subfolders), sorted by name, with its card.

    The card is the ``.yaml`` (or ``.yml``) file of the same name. A missing or invalid card does
    not stop the scan: the entry's ``problem`` says what is wrong (the app lists it greyed out).

    Raises:
        CrossviewError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CrossviewError(f"{folder}: no such models folder")
    found = []
    for onnx_path in sorted(folder.glob("*.onnx")):
        candidates = [onnx_path.with_suffix(s) for s in (".yaml", ".yml")]
        card_path = next((p for p in candidates if p.is_file()), None)
        if card_path is None:
            found.append(DiscoveredModel(onnx_path, None, f"no model card {onnx_path.stem}.yaml beside it"))
            continue
        try:
            card = load_model_card(card_path)
        except CrossviewError as exc:
            logger.warning("skipping %s: %s", onnx_path.name, exc)
            found.append(DiscoveredModel(onnx_path, None, str(exc)))
            continue
        if card.file != onnx_path.name:
            found.append(DiscoveredModel(onnx_path, card, f"{card_path}: key 'file' names {card.file!r}, not {onnx_path.name!r}"))
            continue
        found.append(DiscoveredModel(onnx_path, card))
    return found
