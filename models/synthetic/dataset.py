"""Synthetic multi-view samples: 3D motion, a camera rig, and simulated 2D detections.

:func:`make_multiview` projects one motion into one rig and corrupts the projections with a
:class:`~models.synthetic.noise.DetectorNoise`. :func:`synthetic_dataset` walks the CMU sequences
of a split (or sequences you pass), cuts them into chunks, places each chunk at random on the
floor (a random turn about the vertical axis and a shift of up to ``max_offset_mm``), draws a new
random rig around it and simulates the detector. Everything is drawn from a generator seeded with
``(seed, sequence index, chunk index)``, so a sample does not depend on which other samples were
asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from calibration.errors import CrossviewError, check_shape
from calibration.rig import Rig
from models.synthetic.mocap import MotionSequence, centre_on_floor, load_cmu, resample
from models.synthetic.noise import DetectorNoise, resolve_noise
from models.synthetic.rigs import DEFAULT_TARGET_MM, random_rig

log = logging.getLogger(__name__)

_PELVIS = 0
_BODY_HALF_WIDTH_MM = 100.0  # room kept around the outermost joint when sizing the volume
_MIN_VOLUME_RADIUS_MM = 1000.0


@dataclass(frozen=True, slots=True, eq=False)
class MultiviewSample:
    """One synthetic multi-view clip.

    Attributes:
        points3d: ``(T, J, 3)`` float64 true joints, mm, world frame (Z up, floor at z = 0).
        keypoints: ``(C, T, J, 2)`` float64 simulated detections, px (distorted image
            coordinates); NaN where missing.
        confidence: ``(C, T, J)`` float64 in [0, 1]; 0 where missing.
        keypoints_clean: ``(C, T, J, 2)`` float64 exact projections, px; NaN behind a camera.
        rig: the C cameras, in view order.
        occluded: ``(C, T, J)`` bool, the detection is of a self-occluded joint.
        name: where it came from, e.g. ``"train/walking_1[0:240]"``.
        fps: frame rate, or None when the frames are not a time series.
    """

    points3d: np.ndarray
    keypoints: np.ndarray
    confidence: np.ndarray
    keypoints_clean: np.ndarray
    rig: Rig
    occluded: np.ndarray
    name: str = ""
    fps: float | None = None

    def __post_init__(self) -> None:
        num_frames, num_joints = self.points3d.shape[:2]
        num_cameras = len(self.rig)
        check_shape("points3d", self.points3d, "(T, J, 3)", self.points3d.ndim == 3 and self.points3d.shape[2] == 3)
        views = (num_cameras, num_frames, num_joints)
        expected = f"(C={num_cameras}, T={num_frames}, J={num_joints}"
        check_shape("keypoints", self.keypoints, expected + ", 2)", self.keypoints.shape == (*views, 2))
        check_shape(
            "keypoints_clean", self.keypoints_clean, expected + ", 2)", self.keypoints_clean.shape == (*views, 2)
        )
        check_shape("confidence", self.confidence, expected + ")", self.confidence.shape == views)
        check_shape("occluded", self.occluded, expected + ")", self.occluded.shape == views)
        for name in ("points3d", "keypoints", "confidence", "keypoints_clean", "occluded"):
            getattr(self, name).setflags(write=False)

    @property
    def num_cameras(self) -> int:
        return len(self.rig)

    @property
    def num_frames(self) -> int:
        return int(self.points3d.shape[0])

    def __repr__(self) -> str:
        return f"MultiviewSample({self.name!r}, {self.num_cameras} views x {self.num_frames} frames)"


def _as_rng(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def make_multiview(
    motion: MotionSequence | np.ndarray,
    rig: Rig,
    noise: DetectorNoise | str | None = "medium",
    rng: np.random.Generator | int = 0,
    *,
    fps: float | None = None,
    name: str | None = None,
) -> MultiviewSample:
    """Project a motion into a rig and simulate a 2D detector on every view.

    Args:
        motion: a :class:`MotionSequence` or its ``points (T, J, 3)`` mm, world frame.
        rig: the C cameras.
        noise: a :class:`DetectorNoise`, a preset name (``"clean"``, ``"low"``, ``"medium"``,
            ``"high"``) or None for ``"medium"``.
        rng: a generator or an integer seed.
        fps: frame rate of a bare array (a :class:`MotionSequence` brings its own).
        name: label for the sample (default: the sequence's name).

    Returns:
        The :class:`MultiviewSample`.
    """
    if isinstance(motion, MotionSequence):
        points3d = np.asarray(motion.points, dtype=np.float64)
        fps = motion.fps if fps is None else fps
        name = motion.name if name is None else name
    else:
        points3d = np.asarray(motion, dtype=np.float64)
        check_shape("points3d", points3d, "(T, J, 3)", points3d.ndim == 3 and points3d.shape[2] == 3)
    if not isinstance(rig, Rig):
        raise CrossviewError(f"rig must be a calibration.Rig, got {type(rig).__name__}")
    noise = resolve_noise(noise)
    clean = rig.project(points3d)  # (C, T, J, 2)
    detections = noise.simulate(_as_rng(rng), points3d, rig, points2d=clean, fps=fps)
    return MultiviewSample(
        points3d=np.array(points3d),
        keypoints=detections.keypoints,
        confidence=detections.confidence,
        keypoints_clean=clean,
        rig=rig,
        occluded=detections.occluded,
        name=name or "",
        fps=fps,
    )


def random_placement(
    rng: np.random.Generator, points3d: np.ndarray, *, max_offset_mm: float = 1000.0, rotate: bool = True
) -> np.ndarray:
    """The motion turned about the vertical (Z) axis through the origin and shifted on the floor.

    Args:
        rng: random generator.
        points3d: ``(T, J, 3)`` mm, Z up, centred near the origin (see
            :func:`models.synthetic.mocap.centre_on_floor`).
        max_offset_mm: the shift is uniform over a disc of this radius.
        rotate: draw a uniform yaw in [0, 360) degrees (else no turn).

    Returns:
        ``(T, J, 3)`` float64 mm; heights are unchanged.
    """
    points3d = np.asarray(points3d, dtype=np.float64)
    check_shape("points3d", points3d, "(..., 3)", points3d.ndim >= 1 and points3d.shape[-1] == 3)
    yaw = rng.uniform(0.0, 2 * np.pi) if rotate else 0.0
    radius = max_offset_mm * np.sqrt(rng.uniform())
    heading = rng.uniform(0.0, 2 * np.pi)
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    offset = np.array([radius * np.cos(heading), radius * np.sin(heading), 0.0])
    return points3d @ R.T + offset


def _chunks(num_frames: int, num_chunk_frames: int | None) -> list[tuple[int, int]]:
    """``[start, stop)`` windows; a tail shorter than half a chunk is left out."""
    if num_chunk_frames is None or num_frames <= num_chunk_frames:
        return [(0, num_frames)]
    spans = [(s, min(s + num_chunk_frames, num_frames)) for s in range(0, num_frames, num_chunk_frames)]
    if spans[-1][1] - spans[-1][0] < num_chunk_frames // 2:
        spans.pop()
    return spans


def synthetic_dataset(
    split: str | None = "train",
    num_cameras: int | tuple[int, int] = 2,
    noise: DetectorNoise | str | None = "medium",
    seed: int = 0,
    *,
    num_frames: int | None = None,
    fps: float | None = None,
    max_sequences: int | None = None,
    sequences: Sequence[MotionSequence] | None = None,
    data_path: str | None = None,
    max_offset_mm: float = 1000.0,
    rotate: bool = True,
    rig_options: Mapping[str, Any] | None = None,
) -> Iterator[MultiviewSample]:
    """Synthetic multi-view samples from motion capture, one random rig per chunk.

    Args:
        split: CMU split, ``"train"``, ``"test"`` or None for both (ignored with ``sequences``).
        num_cameras: C, or an inclusive ``(low, high)`` range drawn per chunk.
        noise: detector model or preset name (see :func:`make_multiview`).
        seed: the whole dataset is a deterministic function of it.
        num_frames: chunk length in frames (after resampling); None keeps whole sequences.
        fps: resample the CMU sequences (120 Hz) to this rate.
        max_sequences: use only the first sequences of the split.
        sequences: motions to use instead of CMU (H36M-17, Z up); they are centred on the floor
            (and resampled when ``fps`` is given).
        data_path: the CMU file (default: the shared data, see :func:`load_cmu`).
        max_offset_mm: placement shift radius on the floor (see :func:`random_placement`).
        rotate: turn each chunk by a random yaw.
        rig_options: extra keyword arguments for :func:`models.synthetic.rigs.random_rig`.

    Returns:
        An iterator of :class:`MultiviewSample`, in sequence then chunk order, made as it is
        consumed (arguments are checked and the motion loaded at once). Each chunk's horizontal
        path is centred before placement; the rig's volume radius grows to hold the whole path.
    """
    if isinstance(num_cameras, (tuple, list)):
        low, high = (int(v) for v in num_cameras)
    else:
        low = high = int(num_cameras)
    if not 1 <= low <= high:
        raise CrossviewError(f"num_cameras must be >= 1 (or a (low, high) range), got {num_cameras!r}")
    if int(seed) < 0:
        raise CrossviewError(f"seed must be a non-negative integer, got {seed!r}")
    if num_frames is not None and num_frames < 1:
        raise CrossviewError(f"num_frames must be positive, got {num_frames}")
    noise = resolve_noise(noise)
    options = dict(rig_options or {})
    for reserved in ("volume_radius_mm", "target"):
        if reserved in options:
            raise CrossviewError(f"rig_options may not set {reserved!r}: the dataset sizes the volume per chunk")
    if sequences is None:
        sequences = load_cmu(data_path, split=split, fps=fps)
    elif fps is not None:
        sequences = [resample(s, fps) for s in sequences]
    sequences = list(sequences)[:max_sequences]
    return _samples(sequences, (low, high), noise, int(seed), num_frames, max_offset_mm, rotate, options)


def _samples(sequences, camera_range, noise, seed, num_frames, max_offset_mm, rotate, options):
    low, high = camera_range
    target = np.asarray(DEFAULT_TARGET_MM)
    for index, sequence in enumerate(sequences):
        sequence = centre_on_floor(sequence)
        for chunk_index, (start, stop) in enumerate(_chunks(sequence.num_frames, num_frames)):
            rng = np.random.default_rng([seed, index, chunk_index])
            points = np.asarray(sequence.points[start:stop], dtype=np.float64)  # (t, J, 3)
            pelvis = points[:, _PELVIS, :2]
            centre = 0.5 * (np.nanmin(pelvis, axis=0) + np.nanmax(pelvis, axis=0))
            points = points - np.array([centre[0], centre[1], 0.0])
            points = random_placement(rng, points, max_offset_mm=max_offset_mm, rotate=rotate)
            reach = np.nanmax(np.linalg.norm(points[..., :2] - target[:2], axis=-1))
            volume_radius = max(_MIN_VOLUME_RADIUS_MM, float(reach) + _BODY_HALF_WIDTH_MM)
            count = int(rng.integers(low, high + 1))
            rig = random_rig(rng, count, target=target, volume_radius_mm=volume_radius, **options)
            yield make_multiview(
                points, rig, noise, rng, fps=sequence.fps, name=f"{sequence.name}[{start}:{stop}]"
            )
