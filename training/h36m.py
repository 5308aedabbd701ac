"""Human3.6M motion from VideoPose3D's ``.npz`` files, as a motion source for synthetic refiner data.

Files (as VideoPose3D's ``prepare_data_h36m.py`` writes them; the user makes them from their own
licensed copy of Human3.6M, we ship nothing):

- ``data_3d_h36m.npz``: ``positions_3d`` = ``{subject: {action: (T, 32, 3) float32}}``, world
  coordinates in metres (Z up), 50 frames per second, the 32 joints of the original skeleton.
- ``data_2d_h36m_<detector>.npz``: ``positions_2d`` = ``{subject: {action: [one (T_c, 17, 2) array
  per camera]}}`` px, and ``metadata`` = ``{"layout_name", "num_joints", "keypoints_symmetry"}``.

Why pickle, and how it is guarded. Both files store Python dicts as numpy *object* arrays, which
numpy can only read by unpickling (``np.load(..., allow_pickle=True)``), and unpickling a hostile
file can run any code. There is no pickle-free form of this format. So: these readers open only
the file the user names, never search for one; they check the name, the zip structure and the
array headers first; and they never call ``np.load(allow_pickle=True)``: the pickle stream is read
by :class:`_ArrayUnpickler`, which resolves only numpy's array-rebuilding functions (``ndarray``,
``dtype``, ``_reconstruct``, ``scalar``) and refuses every other global, so a file that tries
anything else fails with :class:`InputFileError` before any of its code can run.

Mapping. The 32 joints become the project's H36M-17 (:data:`H36M32_TO_17`, the same 17 joints
VideoPose3D keeps, already in our order); metres become millimetres; pelvis and thorax are then
rebuilt as the mid-hips and mid-shoulders (:func:`models.synthetic.mocap.to_detector_convention`),
as for the CMU data, so a model never learns offsets no 2D detector can show it. Subjects S1, S5,
S6, S7 and S8 are the training split, S9 and S11 the test split (the usual protocol).

:func:`h36m_arrays` is :func:`training.data.build_arrays` with this motion instead of CMU's: random
rigs and the simulated detector; ``crossview train refiner --h36m data_3d_h36m.npz``.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calibration.errors import CrossviewError, InputFileError
from models.synthetic import synthetic_dataset
from models.synthetic.mocap import MotionSequence, to_detector_convention
from training.data import FIELDS, MIN_COARSE_JOINTS, MIXED_NOISE, DataConfig, sample_arrays

log = logging.getLogger(__name__)

H36M_FPS = 50.0
#: Index in the 32-joint Human3.6M skeleton of each H36M-17 joint (pelvis, r_hip, r_knee, r_ankle,
#: l_hip, l_knee, l_ankle, spine, thorax, neck, head, l_shoulder, l_elbow, l_wrist, r_shoulder,
#: r_elbow, r_wrist): VideoPose3D's kept joints.
H36M32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
SUBJECTS = {"train": ("S1", "S5", "S6", "S7", "S8"), "test": ("S9", "S11")}
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dicts, lists and plain values; refuses any other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_object(path: Path, key: str, what: str) -> Any:
    """The Python object stored under ``key`` (a 0-d object array) in the npz ``path``."""
    if path.suffix.lower() != ".npz" or not path.is_file():
        raise InputFileError(f"{path}: not an .npz file; give the {what} file VideoPose3D's prepare_data_h36m.py writes")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if f"{key}.npy" not in names:
                found = ", ".join(n.removesuffix(".npy") for n in names) or "nothing"
                raise InputFileError(f"{path}: no '{key}' array (it holds {found}); is this the {what} file?")
            with archive.open(f"{key}.npy") as stream:
                version = np.lib.format.read_magic(stream)
                shape, _, dtype = (np.lib.format.read_array_header_1_0(stream) if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0(stream))
                if not (dtype.hasobject and shape == ()):
                    raise InputFileError(f"{path}: '{key}' is a {dtype} array of shape {shape}, not the dict "
                                         f"VideoPose3D stores; is this the {what} file?")
                value = _ArrayUnpickler(stream).load()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputFileError(f"{path}: not a readable .npz file ({exc})") from None
    except pickle.UnpicklingError as exc:
        raise InputFileError(f"{path}: '{key}' holds more than arrays and dicts ({exc}); not loaded") from None
    return value.item() if isinstance(value, np.ndarray) and value.shape == () else value


def _nested(path: Path, value: Any, key: str) -> dict:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise InputFileError(f"{path}: '{key}' must be {{subject: {{action: ...}}}}, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True, eq=False)
class H36MMotion:
    """One subject's action from ``data_3d_h36m.npz``.

    Attributes:
        subject: e.g. ``"S1"``; action: e.g. ``"Walking 1"``.
        points: ``(T, 17, 3)`` float32 mm, H36M-17 (detector convention), world Z up, 50 fps.
    """

    subject: str
    action: str
    points: np.ndarray

    def sequence(self) -> MotionSequence:
        return MotionSequence(f"{self.subject}/{self.action}", H36M_FPS, self.points)


def load_h36m_3d(path: str | Path, split: str | None = None) -> list[H36MMotion]:
    """Read ``data_3d_h36m.npz`` (see the module docstring).

    Args:
        path: the file.
        split: ``"train"`` (S1, S5-S8), ``"test"`` (S9, S11) or None for every subject.

    Returns:
        One :class:`H36MMotion` per subject and action, in the file's order.

    Raises:
        InputFileError: not an npz, no ``positions_3d``, anything but arrays and dicts inside, or
            an action that is not ``(T, 32, 3)``; CrossviewError: an unknown split, or no subject
            of the split in the file.
    """
    path = Path(path)
    if split is not None and split not in SUBJECTS:
        raise CrossviewError(f"unknown split {split!r}; use 'train', 'test' or None")
    positions = _nested(path, _read_object(path, "positions_3d", "data_3d_h36m.npz"), "positions_3d")
    motions = []
    for subject, actions in positions.items():
        if split is not None and subject not in SUBJECTS[split]:
            continue
        for action, array in actions.items():
            array = np.asarray(array)
            if array.ndim != 3 or array.shape[1:] != (32, 3) or array.dtype.kind != "f":
                raise InputFileError(f"{path}: positions_3d[{subject!r}][{action!r}] must be (T, 32, 3) metres, "
                                     f"got {array.dtype} {array.shape}")
            points = array[:, list(H36M32_TO_17)].astype(np.float32) * np.float32(1000.0)  # (T, 17, 3) m -> mm
            motions.append(H36MMotion(str(subject), str(action), to_detector_convention(points)))
    if not motions:
        wanted = ", ".join(SUBJECTS[split]) if split else "any subject"
        raise CrossviewError(f"{path}: no motion of {wanted} in the file (it has {', '.join(map(str, positions))})")
    log.info("H36M: %d actions (%s) from %s", len(motions), split or "all subjects", path)
    return motions


def load_h36m_2d(path: str | Path) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict]:
    """Read ``data_2d_h36m_<detector>.npz``.

    Returns:
        ``positions {subject: {action: [(T_c, 17, 2) float32 px per camera]}}`` and the metadata dict.

    Raises:
        InputFileError: not an npz, missing ``positions_2d`` or ``metadata``, a keypoint count
            other than the metadata's ``num_joints`` (17 for H36M-17), or arrays not ``(T, J, 2)``.
    """
    path = Path(path)
    positions = _nested(path, _read_object(path, "positions_2d", "data_2d_h36m_<detector>.npz"), "positions_2d")
    metadata = _read_object(path, "metadata", "data_2d_h36m_<detector>.npz")
    if not isinstance(metadata, dict) or "num_joints" not in metadata:
        raise InputFileError(f"{path}: 'metadata' must be a dict with 'num_joints', got {metadata!r:.80}")
    joints = int(metadata["num_joints"])
    if joints != 17:
        raise InputFileError(f"{path}: {joints} keypoints per person (metadata 'num_joints'); crossview reads the "
                             "17-joint Human3.6M layout")
    result: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, actions in positions.items():
        for action, cameras in actions.items():
            if not isinstance(cameras, (list, tuple)) or not cameras:
                raise InputFileError(f"{path}: positions_2d[{subject!r}][{action!r}] must be a list of per-camera arrays")
            views = [np.asarray(c) for c in cameras]
            for c, view in enumerate(views):
                if view.ndim != 3 or view.shape[1:] != (joints, 2) or view.dtype.kind != "f":
                    raise InputFileError(f"{path}: positions_2d[{subject!r}][{action!r}][{c}] must be (T, {joints}, 2) "
                                         f"px, got {view.dtype} {view.shape}")
            result.setdefault(str(subject), {})[str(action)] = [v.astype(np.float32) for v in views]
    return result, metadata


def h36m_arrays(path: str | Path, config: DataConfig) -> dict[int, dict[str, np.ndarray]]:
    """:func:`training.data.build_arrays` on H36M motion: ``{V: {field: (N_V, ...) float32}}``."""
    sequences = [m.sequence() for m in load_h36m_3d(path, config.split)]
    groups: dict[int, dict[str, list]] = {}
    for p in range(config.passes):
        noise = MIXED_NOISE[p % len(MIXED_NOISE)] if config.noise == "mixed" else config.noise
        samples = synthetic_dataset(sequences=sequences, num_cameras=config.num_cameras, noise=noise,
                                    seed=config.seed * 1000 + p, num_frames=config.num_frames, fps=config.fps,
                                    max_sequences=config.max_sequences)
        for i, sample in enumerate(samples):
            arrays = sample_arrays(sample, config.target, noise, np.random.default_rng([config.seed, p, i, 7]))
            group = groups.setdefault(sample.num_cameras, {f: [] for f in FIELDS})
            for f in FIELDS:
                group[f].append(arrays[f])
    result = {}
    for V, group in sorted(groups.items()):
        arrays = {f: np.concatenate(group[f]).astype(np.float32) for f in FIELDS}
        keep = np.isfinite(arrays["coarse_world"]).all(axis=-1).sum(axis=-1) >= MIN_COARSE_JOINTS
        result[V] = {f: a[keep] for f, a in arrays.items()}
    return result


__all__ = ["H36M32_TO_17", "H36M_FPS", "H36MMotion", "SUBJECTS", "h36m_arrays", "load_h36m_2d", "load_h36m_3d"]
