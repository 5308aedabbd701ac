"""Where the BlazePose ONNX models come from: download, extract, convert, cache.

MediaPipe's pose models (Apache-2.0) ship inside the ``mediapipe`` wheel on PyPI. We never install
mediapipe: ``pip download`` fetches the wheel, the two ``.tflite`` files are read out of it (a wheel
is a zip file), checked against known SHA-256 digests, and converted to ONNX by
:mod:`models.tflite`. The ONNX files, a YAML model card beside each and the ``.tflite`` sources are
kept in the model folder:

* ``$CROSSVIEW_MODEL_DIR`` when set, else
* ``$XDG_DATA_HOME/crossview/models``, else ``~/.local/share/crossview/models``.

Everything is idempotent: a model whose card records the expected source digest, the current
converter version and the ONNX file's own digest is used as it is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from calibration.errors import CrossviewError
from calibration.files.atomic import write_bytes_atomic

logger = logging.getLogger(__name__)

MEDIAPIPE_REQUIREMENT = "mediapipe==0.10.21"
#: The wheel ``pip download`` picks with the flags below (informational: the tflite digests decide).
MEDIAPIPE_WHEEL = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
MEDIAPIPE_WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
# The tflite files are the same in every platform's wheel; ask for one fixed wheel so that the
# download does not depend on the Python running us (mediapipe 0.10.21 has no wheel for 3.13).
_PIP_PLATFORM = ("--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "--implementation", "cp")
CARD_SCHEMA_VERSION = 1
ProgressCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model to obtain: where it sits in the wheel, its digest and what its card says."""

    name: str
    member: str
    tflite_sha256: str
    output_names: tuple[str, ...]
    card: dict[str, Any]

    def __post_init__(self) -> None:
        if len(self.tflite_sha256) != 64:
            raise ValueError(f"{self.name}: tflite_sha256 must be 64 hex digits")


POSE_DETECTION = ModelSpec(
    name="pose_detection",
    member="mediapipe/modules/pose_detection/pose_detection.tflite",
    tflite_sha256="9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    output_names=("boxes", "scores"),
    card={
        "role": "person detector (SSD, one class)",
        "input": {
            "name": "input_1",
            "shape": ["batch", 224, 224, 3],
            "layout": "NHWC",
            "dtype": "float32",
            "channels": "RGB",
            "range": [-1.0, 1.0],
            "resize": "keep aspect ratio, pad with zeros (letterbox)",
        },
        "outputs": {
            "boxes": {
                "shape": ["batch", 2254, 12],
                "meaning": "per anchor: face box centre x, y, width, height, then 4 keypoints (x, y): "
                "mid-hip centre, a point on the circle around the whole body, mid-shoulder centre, "
                "a point on the circle around the upper body; input pixels, centres as offsets from "
                "the anchor centre (anchor size fixed to 1, scale 224)",
            },
            "scores": {"shape": ["batch", 2254, 1], "meaning": "per anchor: logit; sigmoid gives the score"},
        },
        "anchors": {
            "num_layers": 5,
            "strides": [8, 16, 32, 32, 32],
            "min_scale": 0.1484375,
            "max_scale": 0.75,
            "anchor_offset": 0.5,
            "aspect_ratios": [1.0],
            "fixed_anchor_size": True,
            "anchors_per_cell": [2, 2, 6],
            "grid_sizes": [28, 14, 7],
        },
    },
)

POSE_LANDMARK_FULL = ModelSpec(
    name="pose_landmark_full",
    member="mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
    tflite_sha256="e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    output_names=("landmarks", "pose_flag", "segmentation", "heatmaps", "world_landmarks"),
    card={
        "role": "pose landmarks in a person crop (33 body keypoints + 6 auxiliary)",
        "input": {
            "name": "input_1",
            "shape": ["batch", 256, 256, 3],
            "layout": "NHWC",
            "dtype": "float32",
            "channels": "RGB",
            "range": [0.0, 1.0],
            "resize": "rotated crop around the person (ROI from the detector or the previous frame)",
        },
        "outputs": {
            "landmarks": {
                "shape": ["batch", 195],
                "meaning": "39 x (x, y, z, visibility, presence); x, y, z in input pixels, "
                "visibility and presence are logits",
            },
            "pose_flag": {"shape": ["batch", 1], "meaning": "probability that a person is in the crop"},
            "segmentation": {"shape": ["batch", 256, 256, 1], "meaning": "person mask logits"},
            "heatmaps": {"shape": ["batch", 64, 64, 39], "meaning": "per-landmark heatmaps"},
            "world_landmarks": {"shape": ["batch", 117], "meaning": "39 x (x, y, z) in metres, hip-centred"},
        },
        "keypoints": {"joint_set": "blazepose33"},
    },
)

BLAZEPOSE_MODELS = (POSE_DETECTION, POSE_LANDMARK_FULL)


def model_dir() -> Path:
    """The model folder: ``$CROSSVIEW_MODEL_DIR``, ``$XDG_DATA_HOME/crossview/models`` or ``~/.local/share/...``."""
    override = os.environ.get("CROSSVIEW_MODEL_DIR")
    if override:
        return Path(override).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "crossview" / "models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_status(spec: ModelSpec, folder: Path | None = None) -> str:
    """``"ready"``, ``"missing"`` or why a present model will be rebuilt (stale converter, bad digest)."""
    folder = model_dir() if folder is None else folder
    onnx_path, card_path = folder / f"{spec.name}.onnx", folder / f"{spec.name}.yaml"
    if not onnx_path.is_file() or not card_path.is_file():
        return "missing"
    try:
        card = yaml.safe_load(card_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        return f"unreadable card ({exc.__class__.__name__})"
    if not isinstance(card, dict):
        return "unreadable card"
    from models.tflite import CONVERTER_VERSION

    if str(card.get("converter", {}).get("version")) != CONVERTER_VERSION:
        return "converted by another converter version"
    if card.get("source", {}).get("tflite_sha256") != spec.tflite_sha256:
        return "converted from another source file"
    if card.get("sha256") != sha256_of(onnx_path):
        return "ONNX file does not match its card"
    return "ready"


def ensure_blazepose_models(
    progress: ProgressCallback | None = None, wheel: str | Path | None = None, folder: str | Path | None = None
) -> dict[str, Path]:
    """Make sure ``pose_detection.onnx`` and ``pose_landmark_full.onnx`` exist; return their paths.

    Models that are ready are used as they are. Otherwise the ``.tflite`` sources are taken from
    the model folder if present and intact, else from ``wheel`` (a downloaded mediapipe wheel) or
    a fresh ``pip download``; then converted, with a card written beside each ONNX file.

    Args:
        progress: called with one line of text per step (the CLI prints it); without it the
            steps are logged at INFO level.
        wheel: a mediapipe 0.10.21 wheel already on disk (for machines without network).
        folder: the model folder; default :func:`model_dir`.

    Returns:
        ``{"pose_detection": Path, "pose_landmark_full": Path}`` of the ONNX files.

    Raises:
        CrossviewError: the wheel cannot be downloaded or read, or holds files with other digests.
    """
    folder = model_dir() if folder is None else Path(folder).expanduser()

    def report(message: str) -> None:
        if progress is None:
            logger.info(message)
        else:
            progress(message)

    todo = [spec for spec in BLAZEPOSE_MODELS if model_status(spec, folder) != "ready"]
    if todo:
        _make_folder(folder)
        need_source = [spec for spec in todo if not _tflite_ok(spec, folder)]
        if need_source:
            _fetch_tflite(need_source, folder, wheel, report)
        for spec in todo:
            report(f"converting {spec.name}.tflite to ONNX")
            _convert(spec, folder)
        report(f"BlazePose models ready in {folder}")
    return {spec.name: folder / f"{spec.name}.onnx" for spec in BLAZEPOSE_MODELS}


# ------------------------------------------------------------------------------------------------
def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CrossviewError(
            f"cannot create the model folder {folder}: {exc.strerror or exc}; "
            "set CROSSVIEW_MODEL_DIR to a folder you can write"
        ) from None


def _tflite_ok(spec: ModelSpec, folder: Path) -> bool:
    path = folder / f"{spec.name}.tflite"
    return path.is_file() and sha256_of(path) == spec.tflite_sha256


def _fetch_tflite(specs: list[ModelSpec], folder: Path, wheel: str | Path | None, report: ProgressCallback) -> None:
    with tempfile.TemporaryDirectory(prefix="crossview-wheel-") as temp:
        if wheel is None:
            report(f"downloading {MEDIAPIPE_REQUIREMENT} from PyPI (about 36 MB, once) for its pose models")
            wheel_path = _download_wheel(Path(temp))
        else:
            wheel_path = Path(wheel).expanduser()
            if not wheel_path.is_file():
                raise CrossviewError(f"{wheel_path}: no such wheel file")
        wheel_sha256 = sha256_of(wheel_path)
        try:
            with zipfile.ZipFile(wheel_path) as archive:
                for spec in specs:
                    try:
                        data = archive.read(spec.member)
                    except KeyError:
                        raise CrossviewError(
                            f"{wheel_path}: has no {spec.member}; pass a {MEDIAPIPE_REQUIREMENT} wheel"
                        ) from None
                    digest = hashlib.sha256(data).hexdigest()
                    if digest != spec.tflite_sha256:
                        raise CrossviewError(
                            f"{wheel_path}: {spec.member} has SHA-256 {digest}, expected {spec.tflite_sha256}; "
                            f"pass a {MEDIAPIPE_REQUIREMENT} wheel"
                        )
                    write_bytes_atomic(folder / f"{spec.name}.tflite", data)
                    source = {"wheel": wheel_path.name, "wheel_sha256": wheel_sha256}
                    write_bytes_atomic(folder / f"{spec.name}.source.yaml", yaml.safe_dump(source).encode())
        except zipfile.BadZipFile:
            raise CrossviewError(f"{wheel_path}: not a wheel (zip) file") from None
        report(f"extracted {', '.join(spec.name for spec in specs)} from {wheel_path.name}")


def _download_wheel(temp: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *_PIP_PLATFORM,
        "--disable-pip-version-check", "--quiet", MEDIAPIPE_REQUIREMENT, "-d", str(temp),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CrossviewError(f"cannot run pip to download {MEDIAPIPE_REQUIREMENT}: {exc}") from None
    wheels = sorted(temp.glob("mediapipe-*.whl"))
    if done.returncode != 0 or not wheels:
        lines = (done.stderr or done.stdout or "").strip().splitlines()
        detail = [line for line in lines if line.startswith("ERROR")][-2:] or lines[-1:]
        raise CrossviewError(
            f"could not download {MEDIAPIPE_REQUIREMENT} from PyPI (needed once for the BlazePose models): "
            f"{' / '.join(detail) or 'pip gave no reason'}. Fix: run `crossview models fetch` when online, "
            f"or download {MEDIAPIPE_WHEEL} elsewhere (pip download --no-deps {MEDIAPIPE_REQUIREMENT}) and "
            "run `crossview models fetch --wheel PATH`"
        )
    return wheels[0]


def _convert(spec: ModelSpec, folder: Path) -> None:
    from models.tflite import CONVERTER_VERSION, OPSET, convert_tflite

    tflite_path = folder / f"{spec.name}.tflite"
    model = convert_tflite(tflite_path, output_names=spec.output_names)
    data = model.SerializeToString()
    onnx_path = folder / f"{spec.name}.onnx"
    write_bytes_atomic(onnx_path, data)
    source_path = folder / f"{spec.name}.source.yaml"
    try:
        wheel_info = yaml.safe_load(source_path.read_text()) if source_path.is_file() else {}
    except yaml.YAMLError:
        wheel_info = {}
    card = {
        "schema_version": CARD_SCHEMA_VERSION,
        "name": spec.name,
        "family": "blazepose",
        "file": onnx_path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        **spec.card,
        "source": {
            "package": MEDIAPIPE_REQUIREMENT,
            "license": "Apache-2.0",
            "wheel": (wheel_info or {}).get("wheel", "unknown"),
            "wheel_sha256": (wheel_info or {}).get("wheel_sha256", "unknown"),
            "member": spec.member,
            "tflite_sha256": spec.tflite_sha256,
        },
        "converter": {"name": "crossview models.tflite", "version": CONVERTER_VERSION, "opset": OPSET},
    }
    # The card is written last: a model without a valid card is rebuilt on the next call.
    write_bytes_atomic(folder / f"{spec.name}.yaml", yaml.safe_dump(card, sort_keys=False).encode())
