"""Training data for the refiner: synthetic multi-view detections, triangulated once, in memory.

:func:`build_refiner_data` walks :func:`models.synthetic.synthetic_dataset` (CMU motion, a random
rig of 2-4 cameras per chunk, the simulated detector), triangulates every chunk at once with the
project's robust triangulation (vectorised over frames and joints) and stores per frame:

- ``coarse_world (J, 3)`` mm, the triangulated pose (NaN where fewer than two views agreed);
- ``confidence (V, J)``, the detector's confidence, 0 where the view was missing or rejected by
  triangulation as an outlier (this is the model's confidence input);
- ``target_keypoints (V, J, 2)`` px and ``target_confidence (V, J)``: what the reprojection loss
  fits (see ``target`` below);
- the cameras: ``K (V, 3, 3)``, ``dist (V, 5)``, ``R (V, 3, 3)``, ``t (V, 3)`` mm;
- ``points3d (J, 3)`` mm, the truth: used for evaluation (and by the clearly labelled supervised
  baseline, ``TrainConfig.supervised``), never by the weak losses.

``target`` chooses the 2D that the reprojection loss fits:

- ``"detections"`` (default): the very keypoints that were triangulated, weighted by their
  confidence and the triangulation's inlier flags: pure self-supervision, what a user's own
  captures offer.
- ``"independent"``: a second, independent run of the simulated detector on the same frames and
  cameras. The synthetic stand-in for the paper's setting, where the 2D labels (Human3.6M's
  annotations) are independent of the detector whose output is triangulated; still no 3D.
- ``"clean"``: the exact projections (the paper's "2D ground truth"; an upper bound).

:class:`RefinerDataset` serves batches of one view count at a time (:class:`ViewBatchSampler`),
because the view axis of a batch must be uniform.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from calibration.errors import CrossviewError
from calibration.triangulation import triangulate
from models.synthetic import make_multiview, synthetic_dataset
from models.synthetic.noise import PRESET_NAMES
from training.losses import NUM_DIST

log = logging.getLogger(__name__)

TARGETS = ("detections", "independent", "clean")
MIXED_NOISE = ("medium", "low", "high")
#: A frame is kept when triangulation placed at least this many joints.
MIN_COARSE_JOINTS = 9
FIELDS = ("coarse_world", "confidence", "target_keypoints", "target_confidence", "K", "dist", "R", "t", "points3d")


@dataclass(frozen=True, slots=True)
class DataConfig:
    """What :func:`build_refiner_data` generates."""

    split: str = "train"
    num_cameras: tuple[int, int] = (2, 4)
    # A detector preset ("low", "medium", "high") or "mixed": pass p uses MIXED_NOISE[p % 3], so a
    # model trained on it sees the range of detectors it is evaluated on.
    noise: str = "medium"
    # "independent": the 2D targets come from a second simulated detector run on the same frames,
    # as a user's recording gives detections the triangulation did not already fit (the refiner
    # learned with it; "detections" gives it nothing new, "clean" is an upper bound).
    target: str = "independent"
    seed: int = 0
    passes: int = 4  # walks over the split, each with new rigs, placements and noise
    num_frames: int = 30  # frames per chunk (one rig per chunk)
    fps: float = 30.0
    max_sequences: int | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise CrossviewError(f"unknown reprojection target {self.target!r}; use one of {', '.join(TARGETS)}")
        if self.passes < 1:
            raise CrossviewError(f"passes must be >= 1, got {self.passes}")
        if self.noise != "mixed" and self.noise not in PRESET_NAMES:
            raise CrossviewError(f"unknown noise {self.noise!r}; use mixed or one of {', '.join(PRESET_NAMES)}")


def camera_arrays(rig) -> dict[str, np.ndarray]:
    """``K (C, 3, 3)``, ``dist (C, 5)``, ``R (C, 3, 3)``, ``t (C, 3)`` of a pinhole rig."""
    dist = np.zeros((len(rig), NUM_DIST))
    for c, camera in enumerate(rig):
        if camera.model != "pinhole" or np.any(camera.dist[NUM_DIST:] != 0):
            raise CrossviewError(f"camera {camera.name}: the refiner's losses take pinhole cameras with at most "
                                 f"{NUM_DIST} distortion coefficients (k1, k2, p1, p2, k3)")
        dist[c, : min(camera.dist.size, NUM_DIST)] = camera.dist[:NUM_DIST]
    return {"K": np.stack([c.K for c in rig]), "dist": dist,
            "R": np.stack([c.R for c in rig]), "t": np.stack([c.t for c in rig])}


def sample_arrays(sample, target: str, noise: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One :class:`~models.synthetic.MultiviewSample` (C views, T frames) -> per-frame arrays, frames first."""
    tri = triangulate(sample.rig, sample.keypoints, sample.confidence, robust=True)
    confidence = np.where(tri.inliers, sample.confidence, 0.0)  # (C, T, J)
    if target == "detections":
        target_keypoints, target_confidence = sample.keypoints, confidence
    elif target == "independent":
        second = make_multiview(sample.points3d, sample.rig, noise, rng, fps=sample.fps)
        target_keypoints, target_confidence = second.keypoints, second.confidence
    else:
        # Exact projections, where a detector could see them: in front of the camera and inside
        # the image (far outside it the distortion polynomial sends points to absurd pixels).
        target_keypoints = sample.keypoints_clean
        size = np.array([[c.width - 1, c.height - 1] for c in sample.rig], dtype=np.float64)[:, None, None, :]
        inside = np.isfinite(target_keypoints).all(axis=-1) & np.all(
            (target_keypoints >= 0) & (target_keypoints <= size), axis=-1)
        target_confidence = inside.astype(np.float64)
    T = sample.num_frames
    cams = {k: np.broadcast_to(v, (T,) + v.shape) for k, v in camera_arrays(sample.rig).items()}
    return {
        "coarse_world": tri.points,  # (T, J, 3)
        "confidence": np.moveaxis(confidence, 0, 1),  # (T, C, J)
        "target_keypoints": np.moveaxis(target_keypoints, 0, 1),  # (T, C, J, 2)
        "target_confidence": np.moveaxis(target_confidence, 0, 1),  # (T, C, J)
        **cams,
        "points3d": sample.points3d,  # (T, J, 3)
    }


def build_arrays(config: DataConfig, *, num_cameras: int | tuple[int, int] | None = None,
                 noise: str | None = None) -> dict[int, dict[str, np.ndarray]]:
    """Generate and triangulate ``config``'s data: ``{V: {field: (N_V, ...) float32}}`` by view count."""
    noise = noise or config.noise
    cameras = num_cameras if num_cameras is not None else config.num_cameras
    groups: dict[int, dict[str, list]] = {}
    for p in range(config.passes):
        pass_noise = MIXED_NOISE[p % len(MIXED_NOISE)] if noise == "mixed" else noise
        samples = synthetic_dataset(config.split, num_cameras=cameras, noise=pass_noise, seed=config.seed * 1000 + p,
                                    num_frames=config.num_frames, fps=config.fps, max_sequences=config.max_sequences)
        for i, sample in enumerate(samples):
            rng = np.random.default_rng([config.seed, p, i, 7])
            arrays = sample_arrays(sample, config.target, pass_noise, rng)
            group = groups.setdefault(sample.num_cameras, {f: [] for f in FIELDS})
            for f in FIELDS:
                group[f].append(arrays[f])
    result = {}
    for V, g in sorted(groups.items()):
        arrays = {f: np.concatenate(g[f]).astype(np.float32) for f in FIELDS}
        # Frames whose coarse pose is mostly missing (the person missed in a view of a 2-view rig)
        # carry nothing to refine; they are left out (the evaluation counts them as missing).
        keep = np.isfinite(arrays["coarse_world"]).all(axis=-1).sum(axis=-1) >= MIN_COARSE_JOINTS
        result[V] = {f: a[keep] for f, a in arrays.items()}
    log.info("refiner data %s/%s: %s frames by view count", config.split, noise,
             {V: len(g["points3d"]) for V, g in result.items()})
    return result


def points_in_cameras(coarse_world: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``coarse_world (N, J, 3)`` mm -> ``(N, V, J, 3)`` mm in each view's frame (``R (N, V, 3, 3)``, ``t (N, V, 3)``)."""
    return np.einsum("nvcd,njd->nvjc", R, coarse_world) + t[:, :, None, :]


class RefinerDataset(Dataset):
    """Frames grouped by view count; a batch (``__getitems__``) must come from one group.

    A batch is a dict of float32 tensors: ``points_cam (B, V, J, 3)`` mm (the model's input, from
    ``coarse_world`` and the cameras), ``confidence (B, V, J)``, ``target_keypoints (B, V, J, 2)``
    px, ``target_confidence (B, V, J)``, ``K``, ``dist``, ``R``, ``t``, ``coarse_world (B, J, 3)``
    and ``points3d (B, J, 3)`` mm (evaluation only).
    """

    def __init__(self, groups: dict[int, dict[str, np.ndarray]]):
        if not groups:
            raise CrossviewError("the refiner dataset is empty")
        self.groups = {int(V): g for V, g in groups.items()}
        self.views = sorted(self.groups)
        sizes = [len(self.groups[V]["points3d"]) for V in self.views]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])

    @classmethod
    def build(cls, config: DataConfig, **kwargs) -> "RefinerDataset":
        return cls(build_arrays(config, **kwargs))

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def group_indices(self, V: int) -> np.ndarray:
        k = self.views.index(V)
        return np.arange(self.offsets[k], self.offsets[k + 1])

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        indices = np.asarray(indices, dtype=np.int64)
        k = int(np.searchsorted(self.offsets, indices[0], side="right") - 1)
        local = indices - self.offsets[k]
        if np.any(local < 0) or np.any(local >= self.offsets[k + 1] - self.offsets[k]):
            raise CrossviewError("a refiner batch must hold frames of one view count (use ViewBatchSampler)")
        group = self.groups[self.views[k]]
        batch = {f: group[f][local] for f in FIELDS}
        batch["points_cam"] = points_in_cameras(batch["coarse_world"], batch["R"], batch["t"]).astype(np.float32)
        return {f: torch.from_numpy(np.ascontiguousarray(v)) for f, v in batch.items()}

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        """A batch: one frame (an int, as a batch of one) or a list of frames of one view count."""
        return self.__getitems__(np.atleast_1d(np.asarray(index, dtype=np.int64)))


class ViewBatchSampler(Sampler):
    """Batches of indices of one view count each; shuffled anew every epoch from ``(seed, epoch)``."""

    def __init__(self, dataset: RefinerDataset, batch_size: int, *, shuffle: bool = True, seed: int = 0):
        self.dataset, self.batch_size, self.shuffle, self.seed = dataset, int(batch_size), shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = []
        for V in self.dataset.views:
            idx = self.dataset.group_indices(V)
            if self.shuffle:
                idx = rng.permutation(idx)
            batches += [idx[s:s + self.batch_size] for s in range(0, len(idx), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return (b.tolist() for b in self._batches())

    def __len__(self) -> int:
        return sum(-(-len(self.dataset.group_indices(V)) // self.batch_size) for V in self.dataset.views)


def loader(dataset: RefinerDataset, batch_size: int, *, shuffle: bool = True, seed: int = 0):
    """A DataLoader over ``dataset`` with a :class:`ViewBatchSampler` (batches already collated)."""
    sampler = ViewBatchSampler(dataset, batch_size, shuffle=shuffle, seed=seed)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=lambda batch: batch)


__all__ = ["DataConfig", "FIELDS", "RefinerDataset", "TARGETS", "ViewBatchSampler", "build_arrays", "loader",
           "points_in_cameras", "sample_arrays"]
