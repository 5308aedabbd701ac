"""CMU motion capture sequences (Human3.6M 17-joint skeleton) for synthetic multi-view data.

The shared file ``cmu_mocap/cmu_mocap.npz`` (see ``../shared/data/README.md``) holds 38 sequences,
40,331 frames at 120 Hz, named ``train/<action>_<n>`` and ``test/<action>_<n>`` (32 train, 6 test).
Each ``<name>/h36m17`` is ``(T, 17, 3)`` float32 millimetres in a right-handed world frame with Z up.

The floor is not at z = 0. Measured on the file (2026-11): the 5th percentile over frames of the
lower ankle's height ranges from 12 mm (``train/walking_5``) to 135 mm (``train/jumping_5``); one
sequence (``train/basketball_signal_5``) has the ankles *below* zero (-33 mm at its lowest). The
ankle joint centre of a standing adult sits about 0.039 x stature above the sole (Winter,
*Biomechanics and Motor Control of Human Movement*, anthropometric table), ~70 mm for these
subjects, so the floor of the recordings lies between roughly -95 mm and +65 mm. The clips also
wander: the pelvis of the walking, running, basketball and soccer clips covers 1.5-4.8 m of floor,
that of the signalling, traffic-directing, window-washing and some jumping clips stays within
~0.7 m. :func:`centre_on_floor` puts the estimated floor at z = 0 and the middle of the
pelvis's horizontal range at the origin, which is what :mod:`models.synthetic.rigs` assumes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from calibration.errors import CrossviewError, InputFileError, check_shape

log = logging.getLogger(__name__)

#: Environment variable naming the shared data directory (the one holding ``cmu_mocap/``).
SHARED_DATA_ENV = "CROSSVIEW_SHARED_DATA"
CMU_RELATIVE_PATH = Path("cmu_mocap") / "cmu_mocap.npz"
SPLITS = ("train", "test")

#: Height of the ankle joint centre above the sole for a ~1.75 m adult (0.039 x stature), mm.
ANKLE_HEIGHT_MM = 70.0
_PELVIS, _R_ANKLE, _L_ANKLE = 0, 3, 6


@dataclass(frozen=True, slots=True, eq=False)
class MotionSequence:
    """One motion clip: 3D joint positions over time.

    Attributes:
        name: identifier, e.g. ``"train/walking_1"``.
        fps: frames per second of ``points``.
        points: ``(T, J, 3)`` joint positions in mm (world frame, Z up), float32 or float64;
            NaN for a missing joint. Stored read-only.
    """

    name: str
    fps: float
    points: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise CrossviewError(f"a motion sequence needs a non-empty name, got {self.name!r}")
        fps = float(self.fps)
        if not np.isfinite(fps) or fps <= 0:
            raise CrossviewError(f"sequence {self.name!r}: fps must be positive, got {self.fps!r}")
        points = np.asarray(self.points)
        dtype = points.dtype if points.dtype in (np.float32, np.float64) else np.float64
        check_shape("points", points, "(T, J, 3)", points.ndim == 3 and points.shape[2] == 3)
        points = np.array(points, dtype=dtype, copy=True)  # our own read-only copy
        points.setflags(write=False)
        object.__setattr__(self, "fps", fps)
        object.__setattr__(self, "points", points)

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    @property
    def split(self) -> str | None:
        """``"train"`` or ``"test"`` from the name's prefix, else None."""
        prefix = self.name.split("/", 1)[0]
        return prefix if prefix in SPLITS else None

    def __repr__(self) -> str:
        return f"MotionSequence({self.name!r}, {self.num_frames} frames at {self.fps:g} fps)"


def shared_data_dir() -> Path:
    """The shared data directory: ``$CROSSVIEW_SHARED_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env).expanduser()
    repo_root = Path(__file__).resolve().parents[2]
    return repo_root.parent / "shared" / "data"


def default_cmu_path() -> Path:
    """Where :func:`load_cmu` looks when no path is given."""
    return shared_data_dir() / CMU_RELATIVE_PATH


def load_cmu(
    path: str | Path | None = None,
    split: str | None = "train",
    fps: float | None = None,
    *,
    detector_convention: bool = True,
) -> list[MotionSequence]:
    """Load the CMU sequences (H36M-17 joints) of one split.

    Args:
        path: the ``cmu_mocap.npz`` file; default :func:`default_cmu_path`.
        split: ``"train"``, ``"test"`` or None for every sequence.
        fps: resample to this frame rate (at most the file's 120 Hz). A whole divisor of the
            source rate keeps every k-th frame; any other rate interpolates linearly.
        detector_convention: rebuild the pelvis as the mid-point of the hips and the thorax as
            the mid-point of the shoulders (:func:`to_detector_convention`), as the app derives
            them from 2D detectors (see :mod:`models.skeleton`). The file's own pelvis sits
            ~108 mm above mid-hips (the CMU root) and its thorax ~44 mm off mid-shoulders; a
            model trained on those would learn offsets no detector can show it.

    Returns:
        The sequences in the file's order, ``points (T, 17, 3)`` float32 mm, world Z up, the
        floor *not* at z = 0 (see the module docstring and :func:`centre_on_floor`).

    Raises:
        InputFileError: the file is missing, unreadable or lacks a key.
        CrossviewError: an unknown split or an fps above the source rate.
    """
    if split is not None and split not in SPLITS:
        raise CrossviewError(f"unknown split {split!r}; use 'train', 'test' or None for all sequences")
    path = Path(path) if path is not None else default_cmu_path()
    if not path.is_file():
        raise InputFileError(
            f"{path}: CMU motion capture file not found. Put the shared data beside the repository "
            f"(../shared/data/{CMU_RELATIVE_PATH.as_posix()}) or set {SHARED_DATA_ENV} to the directory "
            "that holds cmu_mocap/."
        )
    sequences: list[MotionSequence] = []
    try:
        with np.load(path, allow_pickle=False) as data:
            source_fps = _read_key(data, path, "fps")
            names = [str(n) for n in _read_key(data, path, "sequences")]
            source_fps = float(np.asarray(source_fps).reshape(-1)[0])
            for name in names:
                if split is not None and not name.startswith(split + "/"):
                    continue
                points = _read_key(data, path, f"{name}/h36m17")
                if points.ndim != 3 or points.shape[1:] != (17, 3):
                    raise InputFileError(
                        f"{path}: '{name}/h36m17' should be (T, 17, 3), got {points.shape}"
                    )
                points = points.astype(np.float32, copy=False)
                if detector_convention:
                    points = to_detector_convention(points)
                sequences.append(MotionSequence(name, source_fps, points))
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot read the CMU motion file ({exc})") from None
    log.debug("loaded %d CMU sequences (split=%s) from %s", len(sequences), split, path)
    if fps is not None:
        sequences = [resample(s, fps) for s in sequences]
    return sequences


def to_detector_convention(points: np.ndarray) -> np.ndarray:
    """Pelvis := mid-hips and thorax := mid-shoulders, as :func:`models.skeleton.to_h36m17` maps detections.

    Args:
        points: ``(..., 17, 3)`` H36M-17 joints, mm.

    Returns:
        A copy with joints 0 (pelvis) and 8 (thorax) replaced.
    """
    out = np.array(points, copy=True)
    out[..., 0, :] = 0.5 * (points[..., 1, :] + points[..., 4, :])
    out[..., 8, :] = 0.5 * (points[..., 11, :] + points[..., 14, :])
    return out


def _read_key(data, path: Path, key: str) -> np.ndarray:
    if key not in data.files:
        raise InputFileError(f"{path}: key {key!r} missing; is this the shared cmu_mocap.npz?")
    return data[key]


def resample(sequence: MotionSequence, fps: float) -> MotionSequence:
    """The sequence at a lower (or equal) frame rate.

    When ``sequence.fps / fps`` is a whole number k, every k-th frame is kept (frame 0 first);
    otherwise positions are interpolated linearly at times ``n / fps`` within the clip.

    Raises:
        CrossviewError: ``fps`` not positive or above the sequence's rate.
    """
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise CrossviewError(f"target fps must be positive, got {fps!r}")
    if fps > sequence.fps * (1 + 1e-9):
        raise CrossviewError(
            f"sequence {sequence.name!r} is recorded at {sequence.fps:g} fps; cannot resample up to {fps:g} fps"
        )
    ratio = sequence.fps / fps
    if abs(ratio - round(ratio)) < 1e-6:
        points = sequence.points[:: int(round(ratio))]
    else:
        src = sequence.points
        num_out = int(np.floor((src.shape[0] - 1) / ratio)) + 1
        times = np.arange(num_out) * ratio  # (T',) positions in source frames
        lo = np.minimum(np.floor(times).astype(np.int64), src.shape[0] - 1)
        hi = np.minimum(lo + 1, src.shape[0] - 1)
        w = (times - lo).astype(src.dtype)[:, None, None]  # (T', 1, 1)
        points = (1 - w) * src[lo] + w * src[hi]  # (T', J, 3)
    return replace(sequence, fps=fps, points=points)


def estimate_floor_z(points: np.ndarray, *, ankle_height_mm: float = ANKLE_HEIGHT_MM) -> float:
    """Height of the floor under an H36M-17 motion, mm.

    The 5th percentile over frames of the lower ankle's z (robust to a few glitches, and to
    jumps: a foot touches the floor in far more than 5 % of the frames of every CMU clip), minus
    the ankle joint's height above the sole.

    Args:
        points: ``(T, 17, 3)`` mm, Z up.
    """
    points = np.asarray(points)
    check_shape("points", points, "(T, 17, 3)", points.ndim == 3 and points.shape[1:] == (17, 3))
    lower_ankle = np.fmin(points[:, _R_ANKLE, 2], points[:, _L_ANKLE, 2])  # (T,)
    lower_ankle = lower_ankle[np.isfinite(lower_ankle)]
    if lower_ankle.size == 0:
        raise CrossviewError("cannot estimate the floor: no frame has a finite ankle")
    return float(np.percentile(lower_ankle, 5.0)) - float(ankle_height_mm)


def centre_on_floor(
    sequence: MotionSequence, *, centre_xy: bool = True, ankle_height_mm: float = ANKLE_HEIGHT_MM
) -> MotionSequence:
    """The sequence moved so that its floor is z = 0 and (optionally) its path is centred.

    Args:
        sequence: an H36M-17 sequence, ``points (T, 17, 3)`` mm, Z up.
        centre_xy: also move the middle of the pelvis's horizontal range (the bounding box of its
            x, y path) to x = y = 0.
        ankle_height_mm: see :func:`estimate_floor_z`.

    Returns:
        A new sequence with the same dtype; only a translation is applied.
    """
    points = sequence.points
    offset = np.zeros(3)
    offset[2] = estimate_floor_z(points, ankle_height_mm=ankle_height_mm)
    if centre_xy:
        pelvis_xy = points[:, _PELVIS, :2]
        offset[:2] = 0.5 * (np.nanmin(pelvis_xy, axis=0) + np.nanmax(pelvis_xy, axis=0))
    return replace(sequence, points=(points - offset.astype(points.dtype)))
