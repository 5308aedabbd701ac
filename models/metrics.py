"""3D pose accuracy metrics: MPJPE, P-MPJPE, N-MPJPE, PCK, AUC and the Pose Structure Score.

Shapes and units. ``pred`` and ``target`` are ``(N, J, 3)`` millimetres: N samples (frames,
people), J joints, in the same coordinate frame and joint order. Any ``(..., J, 3)`` is accepted;
the leading axes are flattened into N.

Missing joints. A joint counts only where it is finite in both ``pred`` and ``target``; others are
left out (never counted as zero error). Means are pooled over all counted (sample, joint) pairs,
so a sample with fewer valid joints weighs less; with no missing data this is the usual mean over
N x J. A metric with nothing to count is NaN. The alignments of P-MPJPE and N-MPJPE are
estimated from each sample's valid joints only.

Conventions, chosen where the literature differs:

- P-MPJPE (Protocol 2): per sample, the similarity transform (rotation, translation, one uniform
  scale) that best maps ``pred`` onto ``target`` in the least-squares sense (Umeyama's solution
  via SVD), with the reflection excluded (det R = +1). Samples with fewer than 3 valid joints
  (the transform is not determined) or with all predicted joints in one point are left out.
- N-MPJPE: per sample, ``pred`` is multiplied by the least-squares optimal scale
  ``s = sum(pred . target) / sum(pred . pred)``, with no centring, as VideoPose3D's ``n_mpjpe``
  does (Rhodin et al.'s normalised MPJPE). Pass root-relative poses (e.g. both minus their
  pelvis), as that code receives: on absolute coordinates the scale would be dominated by the
  camera distance.
- PCK: percentage of valid joints whose error is at most the threshold (150 mm by default, as on
  MPI-INF-3DHP). AUC: the mean PCK over ``steps`` evenly spaced thresholds from 0 to ``max_mm``
  (0, 5, ..., 150 mm by default), in percent. "At most" rather than "below" changes nothing for
  real errors; it makes identical poses score 100 rather than 30/31 of it.
- PSS (Pose Structure Score, Kocabas et al., EpipolarPose): k-means (k = 50 or 100) on normalised
  ground-truth poses; a prediction scores 1 when it falls in the same cluster as its ground
  truth. Normalisation (the digest leaves it to a figure): subtract the root joint (pelvis),
  divide by the Frobenius norm of the root-centred pose, so the score ignores position and size.
  Orientation is kept: ``pred`` and ``target`` must be in the same frame. Only samples complete
  in both (every joint finite) are scored. Reported as a fraction in [0, 1].
- :func:`evaluate` subtracts the root joint (pelvis) from both poses first, as Human3.6M's
  protocols do, and also reports the MPJPE of the positions as given (``absolute_mpjpe_mm``),
  which is what a calibrated multi-camera system is ultimately judged on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.cluster.vq import kmeans2

from calibration.errors import CrossviewError, check_shape

logger = logging.getLogger(__name__)


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes; return pred, target as (N, J, 3) float64 and valid (N, J) bool."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    check_shape("pred", pred, "(N, J, 3)", pred.ndim >= 2 and pred.shape[-1] == 3)
    check_shape(
        "target", target, f"{pred.shape} (the shape of pred)", target.shape == pred.shape
    )
    num_joints = pred.shape[-2]
    pred = pred.reshape(-1, num_joints, 3)  # (N, J, 3)
    target = target.reshape(-1, num_joints, 3)  # (N, J, 3)
    valid = np.isfinite(pred).all(axis=-1) & np.isfinite(target).all(axis=-1)  # (N, J)
    return pred, target, valid


def _distances(pred: np.ndarray, target: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(N, J) Euclidean distances, NaN where not valid."""
    dist = np.linalg.norm(pred - target, axis=-1)
    return np.where(valid, dist, np.nan)


def _pooled_mean(values: np.ndarray) -> float:
    """Mean of the non-NaN entries; NaN when there are none."""
    finite = ~np.isnan(values)
    count = int(finite.sum())
    return float(values[finite].sum() / count) if count else float("nan")


def per_joint_error(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Euclidean error of every joint of every sample.

    Args:
        pred: ``(N, J, 3)`` mm (or any ``(..., J, 3)``).
        target: same shape as ``pred``, mm.

    Returns:
        ``(N, J)`` float64 mm (the input's leading shape, without the last axis); NaN where
        the joint is missing in ``pred`` or ``target``.
    """
    shape = np.shape(pred)[:-1]
    p, t, valid = _pair(pred, target)
    return _distances(p, t, valid).reshape(shape)


def mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean per-joint position error (Protocol 1), mm.

    Args:
        pred: ``(N, J, 3)`` mm; target: same shape, mm. NaN joints are left out.

    Returns:
        Mean Euclidean distance over valid joints, mm; NaN if none is valid.
    """
    p, t, valid = _pair(pred, target)
    return _pooled_mean(_distances(p, t, valid))


def procrustes_align(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``pred`` moved by its per-sample best similarity transform onto ``target``.

    Rotation (no reflection), translation and one uniform scale, fitted by least squares on the
    joints valid in both (Umeyama 1991, SVD of the cross-covariance).

    Args:
        pred: ``(N, J, 3)`` mm (or any ``(..., J, 3)``).
        target: same shape, mm.

    Returns:
        Same shape as ``pred``, mm: every finite predicted joint transformed (also those whose
        target is missing); all NaN for samples with fewer than 3 valid joints or no spread.
    """
    shape = np.shape(pred)
    p, t, valid = _pair(pred, target)
    weight = valid[..., None].astype(np.float64)  # (N, J, 1)
    count = weight.sum(axis=1)  # (N, 1)
    p0 = np.where(valid[..., None], p, 0.0)  # (N, J, 3)
    t0 = np.where(valid[..., None], t, 0.0)  # (N, J, 3)
    mean_p = p0.sum(axis=1) / np.maximum(count, 1.0)  # (N, 3)
    mean_t = t0.sum(axis=1) / np.maximum(count, 1.0)  # (N, 3)
    x = (p0 - mean_p[:, None]) * weight  # (N, J, 3) centred pred, 0 where invalid
    y = (t0 - mean_t[:, None]) * weight  # (N, J, 3) centred target, 0 where invalid

    cov = np.einsum("nji,njk->nik", y, x)  # (N, 3, 3) sum_j y_j x_j^T
    u, sing, vt = np.linalg.svd(cov)  # cov = u diag(sing) vt
    sign = np.sign(np.linalg.det(u @ vt))  # (N,) -1 where the best orthogonal map reflects
    sign[sign == 0] = 1.0
    flip = np.ones((len(sign), 3))
    flip[:, 2] = sign
    rotation = (u * flip[:, None, :]) @ vt  # (N, 3, 3) u diag(1, 1, sign) vt, det +1
    spread = (x**2).sum(axis=(1, 2))  # (N,)
    trace = (sing * flip).sum(axis=1)  # (N,)
    ok = (count[:, 0] >= 3) & (spread > 0)
    scale = np.divide(trace, spread, out=np.full_like(trace, np.nan), where=ok)  # (N,)

    aligned = np.einsum("nik,njk->nji", rotation, p - mean_p[:, None])  # (N, J, 3)
    aligned = scale[:, None, None] * aligned + mean_t[:, None]
    aligned[~ok] = np.nan
    return aligned.reshape(shape)


def p_mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    """MPJPE after per-sample similarity Procrustes alignment (Protocol 2), mm.

    Args:
        pred: ``(N, J, 3)`` mm; target: same shape, mm. See :func:`procrustes_align`.

    Returns:
        Mean error over the valid joints of alignable samples, mm; NaN if none.
    """
    p, t, valid = _pair(pred, target)
    aligned = procrustes_align(p, t)
    return _pooled_mean(_distances(aligned, t, valid & np.isfinite(aligned).all(axis=-1)))


def n_mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    """MPJPE after scaling each predicted pose by its least-squares optimal factor, mm.

    The scale ``s = sum_j(pred_j . target_j) / sum_j(pred_j . pred_j)`` over valid joints, with
    no centring (VideoPose3D's ``n_mpjpe``): pass root-relative poses.

    Args:
        pred: ``(N, J, 3)`` mm; target: same shape, mm.

    Returns:
        Mean error over valid joints of samples with a defined scale, mm; NaN if none.
    """
    p, t, valid = _pair(pred, target)
    p0 = np.where(valid[..., None], p, 0.0)  # (N, J, 3)
    t0 = np.where(valid[..., None], t, 0.0)  # (N, J, 3)
    num = (p0 * t0).sum(axis=(1, 2))  # (N,)
    den = (p0 * p0).sum(axis=(1, 2))  # (N,)
    scale = np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)  # (N,)
    ok = np.isfinite(scale)
    return _pooled_mean(_distances(scale[:, None, None] * p, t, valid & ok[:, None]))


def pck(pred: np.ndarray, target: np.ndarray, threshold_mm: float = 150.0) -> float:
    """Percentage of valid joints with error at most ``threshold_mm``.

    Args:
        pred: ``(N, J, 3)`` mm; target: same shape, mm.
        threshold_mm: distance threshold, mm.

    Returns:
        PCK in percent [0, 100]; NaN if no joint is valid.
    """
    p, t, valid = _pair(pred, target)
    dist = _distances(p, t, valid)[valid]  # (V,)
    if dist.size == 0:
        return float("nan")
    return float(100.0 * np.mean(dist <= threshold_mm))


def auc(pred: np.ndarray, target: np.ndarray, max_mm: float = 150.0, steps: int = 31) -> float:
    """Area under the PCK curve: mean PCK over ``steps`` thresholds evenly spaced in [0, max_mm].

    Args:
        pred: ``(N, J, 3)`` mm; target: same shape, mm.
        max_mm: largest threshold, mm.
        steps: number of thresholds (31 gives 0, 5, ..., 150 mm).

    Returns:
        AUC in percent [0, 100]; NaN if no joint is valid.
    """
    if steps < 2:
        raise ValueError(f"auc: steps must be at least 2, got {steps}")
    p, t, valid = _pair(pred, target)
    dist = _distances(p, t, valid)[valid]  # (V,)
    if dist.size == 0:
        return float("nan")
    thresholds = np.linspace(0.0, max_mm, steps)  # (S,)
    curve = (dist[None, :] <= thresholds[:, None]).mean(axis=1)  # (S,)
    return float(100.0 * curve.mean())


def normalize_poses(poses: np.ndarray, root: int = 0) -> np.ndarray:
    """Root-centred, unit-Frobenius-norm poses, flattened: PSS's normalisation.

    Args:
        poses: ``(N, J, 3)`` mm (or any ``(..., J, 3)``).
        root: index of the root joint (0, the pelvis, for H36M-17).

    Returns:
        ``(N, J * 3)`` float64, unitless; NaN rows for poses with any missing joint or zero size.
    """
    poses = np.asarray(poses, dtype=np.float64)
    check_shape("poses", poses, "(N, J, 3)", poses.ndim >= 2 and poses.shape[-1] == 3)
    num_joints = poses.shape[-2]
    if not 0 <= root < num_joints:
        raise ValueError(f"root joint {root} is outside 0..{num_joints - 1}")
    poses = poses.reshape(-1, num_joints, 3)  # (N, J, 3)
    centred = (poses - poses[:, root : root + 1]).reshape(len(poses), num_joints * 3)  # (N, J*3)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)  # (N, 1)
    usable = np.isfinite(centred).all(axis=1, keepdims=True) & (norm > 0)
    return np.divide(centred, norm, out=np.full_like(centred, np.nan), where=usable)


@dataclass(frozen=True, slots=True)
class PoseStructureScorer:
    """Cluster centres of normalised ground-truth poses, for the Pose Structure Score.

    Build with :meth:`fit`; :meth:`assign` gives a pose's cluster; :func:`pss` scores.

    Attributes:
        centroids: ``(k, J * 3)`` float64 normalised pose centres (read-only).
        root: root joint index used in the normalisation.
    """

    centroids: np.ndarray
    root: int = 0

    def __post_init__(self) -> None:
        centroids = np.array(self.centroids, dtype=np.float64)  # a private copy
        if centroids.ndim != 2 or centroids.shape[1] % 3 or not np.isfinite(centroids).all():
            raise ValueError(
                f"centroids: expected finite (k, J * 3), got shape {np.shape(self.centroids)}"
            )
        centroids.setflags(write=False)
        object.__setattr__(self, "centroids", centroids)

    @property
    def k(self) -> int:
        return self.centroids.shape[0]

    @property
    def num_joints(self) -> int:
        return self.centroids.shape[1] // 3

    @classmethod
    def fit(
        cls,
        poses: np.ndarray,
        k: int = 50,
        seed: int = 0,
        root: int = 0,
        iterations: int = 30,
    ) -> PoseStructureScorer:
        """k-means (k-means++ start, ``scipy.cluster.vq.kmeans2``) on normalised poses.

        Args:
            poses: ``(N, J, 3)`` mm ground-truth poses (training poses for numbers comparable
                across methods); incomplete ones are left out.
            k: number of clusters (the paper reports 50 and 100).
            seed: seed of the k-means++ initialisation.
            root: root joint index (0, the pelvis, for H36M-17).
            iterations: k-means iterations.

        Raises:
            CrossviewError: fewer than ``k`` distinct complete poses.
        """
        data = normalize_poses(poses, root)  # (N, J*3)
        data = data[np.isfinite(data).all(axis=1)]
        distinct = len(np.unique(data, axis=0)) if len(data) >= k else len(data)
        if distinct < k:
            raise CrossviewError(
                f"PSS: k-means with k={k} needs at least {k} distinct complete poses, got"
                f" {distinct} (give more ground-truth poses or a smaller k)"
            )
        centroids, _ = kmeans2(
            data, k, iter=iterations, minit="++", seed=np.random.default_rng(seed)
        )
        return cls(centroids=centroids, root=root)

    def assign(self, poses: np.ndarray) -> np.ndarray:
        """Nearest cluster of each pose.

        Args:
            poses: ``(N, J, 3)`` mm, J matching the fitted poses.

        Returns:
            ``(N,)`` int64 cluster index; -1 for incomplete poses.
        """
        data = normalize_poses(poses, self.root)  # (N, J*3)
        check_shape(
            "poses",
            np.asarray(poses),
            f"(N, {self.num_joints}, 3)",
            data.shape[1] == self.centroids.shape[1],
        )
        usable = np.isfinite(data).all(axis=1)  # (N,)
        filled = np.where(usable[:, None], data, 0.0)
        # Squared distances without the per-row constant |x|^2: |c|^2 - 2 x.c   (N, k)
        score = (self.centroids**2).sum(axis=1)[None, :] - 2.0 * filled @ self.centroids.T
        labels = np.argmin(score, axis=1).astype(np.int64)
        labels[~usable] = -1
        return labels


def pss(
    pred: np.ndarray,
    target: np.ndarray,
    k: int = 50,
    seed: int = 0,
    scorer: PoseStructureScorer | None = None,
) -> float:
    """Pose Structure Score: fraction of predictions in their ground truth's cluster.

    Args:
        pred: ``(N, J, 3)`` mm; target: same shape, mm. Only samples complete in both count.
        k: clusters, used when ``scorer`` is None.
        seed: k-means seed, used when ``scorer`` is None.
        scorer: a fitted scorer (e.g. on training ground truth). None fits one on ``target``.

    Returns:
        PSS in [0, 1]; NaN if no sample is complete in both.
    """
    p, t, _ = _pair(pred, target)
    if scorer is None:
        scorer = PoseStructureScorer.fit(t, k=k, seed=seed)
    pred_labels = scorer.assign(p)  # (N,)
    target_labels = scorer.assign(t)  # (N,)
    counted = (pred_labels >= 0) & (target_labels >= 0)
    if not counted.any():
        return float("nan")
    return float(np.mean(pred_labels[counted] == target_labels[counted]))


def root_relative(poses: np.ndarray, root: int = 0) -> np.ndarray:
    """Poses with each sample's root joint subtracted (the usual Human3.6M protocol).

    Args:
        poses: ``(N, J, 3)`` mm (or any ``(..., J, 3)``).
        root: root joint index (0, the pelvis, for H36M-17).

    Returns:
        Same shape, mm; every joint NaN in samples whose root is missing.
    """
    poses = np.asarray(poses, dtype=np.float64)
    check_shape("poses", poses, "(N, J, 3)", poses.ndim >= 2 and poses.shape[-1] == 3)
    if not 0 <= root < poses.shape[-2]:
        raise ValueError(f"root joint {root} is outside 0..{poses.shape[-2] - 1}")
    return poses - poses[..., root : root + 1, :]


def evaluate(
    pred: np.ndarray,
    target: np.ndarray,
    *,
    root: int | None = 0,
    per_joint: bool = False,
    pck_threshold_mm: float = 150.0,
    pss_scorer: PoseStructureScorer | None = None,
    pss_k: int = 50,
    pss_seed: int = 0,
) -> dict:
    """Every metric of this module at once.

    Args:
        pred: ``(N, J, 3)`` mm; target: same shape, mm.
        root: joint subtracted from both before scoring (0, the pelvis, for H36M-17), as in
            Human3.6M's protocols; a sample whose root is missing is then left out. None scores
            the positions as given (N-MPJPE then needs root-relative input to mean anything).
            ``absolute_mpjpe_mm`` is always on the positions as given.
        per_joint: also return per-joint MPJPE and P-MPJPE.
        pck_threshold_mm: PCK threshold, mm; AUC spans 0 to it.
        pss_scorer: a fitted scorer; None fits one on ``target`` with ``pss_k`` clusters, or
            reports NaN (and logs why) when there are fewer distinct complete targets than
            ``pss_k``.
        pss_k, pss_seed: k-means settings used when ``pss_scorer`` is None.

    Returns:
        dict with ``num_samples``, ``num_valid_joints`` (valid in both, as given),
        ``absolute_mpjpe_mm``, ``mpjpe_mm``, ``p_mpjpe_mm``, ``n_mpjpe_mm``, ``pck_percent``,
        ``pck_threshold_mm``, ``auc_percent``, ``pss``, ``pss_k``; with ``per_joint``:
        ``per_joint_mpjpe_mm`` and ``per_joint_p_mpjpe_mm``, ``(J,)`` mm (NaN for a joint never
        valid).
    """
    p, t, valid = _pair(pred, target)
    absolute = mpjpe(p, t)
    if root is not None:
        p, t = root_relative(p, root), root_relative(t, root)
    result = {
        "num_samples": int(p.shape[0]),
        "num_valid_joints": int(valid.sum()),
        "absolute_mpjpe_mm": absolute,
        "mpjpe_mm": mpjpe(p, t),
        "p_mpjpe_mm": p_mpjpe(p, t),
        "n_mpjpe_mm": n_mpjpe(p, t),
        "pck_percent": pck(p, t, pck_threshold_mm),
        "pck_threshold_mm": float(pck_threshold_mm),
        "auc_percent": auc(p, t, max_mm=pck_threshold_mm),
    }
    scorer = pss_scorer
    if scorer is None:
        try:
            scorer = PoseStructureScorer.fit(t, k=pss_k, seed=pss_seed)
        except CrossviewError as error:
            logger.warning("PSS not computed: %s", error)
    result["pss"] = pss(p, t, scorer=scorer) if scorer is not None else float("nan")
    result["pss_k"] = scorer.k if scorer is not None else pss_k
    if per_joint:
        _, _, valid_now = _pair(p, t)
        errors = _distances(p, t, valid_now)  # (N, J)
        aligned = procrustes_align(p, t)  # (N, J, 3)
        aligned_errors = _distances(aligned, t, valid_now & np.isfinite(aligned).all(axis=-1))
        result["per_joint_mpjpe_mm"] = _column_means(errors)
        result["per_joint_p_mpjpe_mm"] = _column_means(aligned_errors)
    return result


def _column_means(values: np.ndarray) -> np.ndarray:
    """(J,) mean of each column of (N, J) over its non-NaN entries; NaN for empty columns."""
    finite = ~np.isnan(values)
    counts = finite.sum(axis=0)
    sums = np.where(finite, values, 0.0).sum(axis=0)
    return np.divide(sums, counts, out=np.full(values.shape[1], np.nan), where=counts > 0)
