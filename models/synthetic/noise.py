"""A 2D keypoint detector simulator: turns exact projections into detector-like keypoints.

Why these numbers
-----------------
Detector errors scale with the person's size in the image (a top-down detector sees a crop
resized to a fixed input, e.g. 256 x 192), so every length here is a fraction of the *person
size* s: the longer side of the box around the projected joints (~0.93 x stature for a standing
person). Reference points, all for good, frontal-ish footage:

- CPN/HRNet on Human3.6M (1000 x 1000 images, people ~350-450 px tall): mean 2D errors of
  ~5-10 px, i.e. ~1.2-2.5 % of s; triangulating CPN from two views gives ~36 mm MPJPE (CV-UGCN,
  ``docs/methods.md``).
- BlazePose on our rendered figure (~350 px tall, ``docs/sample-take.md``): median 7.6 px
  (2.2 % of s), p90 21 px (6 %), 0-0.4 % left/right swapped with a face drawn, 7 % without.
- For a 2D Gaussian with per-axis sigma, the error's median is 1.18 sigma and its p90 2.15 sigma:
  BlazePose's median gives sigma ~ 1.9 % of s, and its p90 (3.6 x sigma rather than 1.8 x)
  shows a heavy tail, which here comes from occluded joints, outliers and swaps.

The model, per view c, frame t, joint j (each step can be switched off):

1. Left/right swaps: the whole body's labels flip with ``body_swap_probability`` per view and
   frame (front/back confusion); independently the distal ends of a limb pair (elbows + wrists,
   or knees + ankles) swap with ``limb_swap_probability`` per pair (crossed legs, arms). A swapped
   label reports the other joint's position, and its confidence is as high as the other joint's:
   a mirrored pose looks plausible to a detector, which is why swaps survive confidence
   thresholds and why triangulation needs to be robust to them.
2. Self-occlusion (:mod:`models.synthetic.occlusion`): a joint hidden behind another body
   part gets ``occluded_sigma_scale`` x the noise, its confidence times
   ``occluded_confidence_scale``, and is dropped with ``occluded_drop_probability``.
3. Gaussian noise, per axis: ``sigma = hypot(sigma_rel x s, sigma_px) x joint_sigma_scale[j]``
   (x the occlusion factor). ``sigma_px`` is a floor from image resolution and blur that matters
   only for small people (1 px for medium: a 100 px person gets 1.6 px rather than 1.2).
   ``joint_sigma_scale`` (mean 1.0) makes wrists (1.35) and ankles (1.2) the noisiest (small,
   fast, far from the torso), then hips (1.1: hidden by clothing, the joint with the largest
   COCO annotator spread, kappa 0.107), elbows and knees (1.0), shoulders and the derived trunk
   joints (0.85), and thorax and neck the least (0.75). With ``correlation_time_s`` > 0 the
   noise is an AR(1) process over frames with that time constant and the same marginal sigma
   (errors on consecutive, nearly identical frames are correlated); the presets leave it at 0,
   as the per-frame consumers (triangulation, refiner, lifter) do not care.
4. Outliers: with ``outlier_probability`` a joint lands ``outlier_range_rel`` x s away in a
   random direction (a jump to another limb, the background, another person). A fraction
   ``outlier_confident_fraction`` of them keep the confidence of an ordinary detection
   (confidently wrong); the rest get the confidence their error deserves.
5. Confidence from the error e against the position the detector aimed at (the swapped source
   for a swapped label): ``confidence_max x exp(-(e / (confidence_error_rel x s))^2 / 2)``
   (x the occlusion factor) ``+ N(0, confidence_noise)``, clipped to [0.01, 1] (0 is reserved for
   missing joints): an OKS-like score, so confidence falls as the error grows, with scatter.
6. Missing data is NaN with confidence 0: the person missed in a view (``miss_probability`` per
   view and frame), occluded joints dropped, confidences below ``drop_below_confidence``,
   joints outside the image or behind the camera. Detections inside the image are clipped to
   it (a heatmap cannot point outside the frame).

Presets (per-axis ``sigma_rel``; ``medium`` is the default and meant to be realistic):
``clean`` no corruption at all, confidence 1; ``low`` 0.8 % (a strong detector on easy footage);
``medium`` 1.2 % with 1 % outliers and 0.5 % swaps; ``high`` 2.5 % with 4 % outliers and 2 %
swaps (a fast mobile model on hard footage). For a 400 px person medium's sigma is 4.9 px per
axis. Measured on the CMU test clips in random rigs (tests/test_synthetic_noise.py): median 2D
error 1.65 % of s (6.6 px at 400 px), p90 4.0 %, between CPN on Human3.6M and BlazePose on the
rendered figure; 16 % of the joint views self-occluded, 3.6 % missing. ``sigma_rel`` was tuned
so that plain two-view DLT lands where triangulated CPN does on Human3.6M (tests/test_synthetic.py):
an H36M-like pair (90 degrees apart, 4.5 m, 1000 x 1000 px) gives 36.6 mm MPJPE (the paper: ~36
mm); random two-camera rigs, whose pairs may be only 30 degrees apart, 43-49 mm; four cameras
30 mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from calibration.errors import CrossviewError, check_shape
from calibration.rig import Rig
from models.skeleton import H36M17
from models.synthetic.occlusion import H36M17_CAPSULES, BodyCapsules, self_occlusion
from models.synthetic.rigs import visible_in_image

#: Per-joint sigma factors for the H36M-17 joints (order of models.skeleton.H36M17), mean 1.0.
H36M17_SIGMA_SCALE: tuple[float, ...] = (
    0.85,  # pelvis (the hips' midpoint: less than either hip)
    1.1, 1.0, 1.2,  # r_hip, r_knee, r_ankle
    1.1, 1.0, 1.2,  # l_hip, l_knee, l_ankle
    0.85, 0.75, 0.75, 0.8,  # spine, thorax, neck, head
    0.85, 1.0, 1.35,  # l_shoulder, l_elbow, l_wrist
    0.85, 1.0, 1.35,  # r_shoulder, r_elbow, r_wrist
)
#: Least confidence of a detection that is not missing: confidence 0 means "not seen" downstream.
MIN_DETECTED_CONFIDENCE = 0.01
#: Limb pairs that swap together: (left joints, right joints) of the forearms and the shanks.
H36M17_LIMB_SWAPS: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((12, 13), (15, 16)),
    ((5, 6), (2, 3)),
)


@dataclass(frozen=True, slots=True)
class DetectorNoise:
    """How a simulated 2D detector corrupts exact keypoints; see the module docstring.

    Lengths ending in ``_rel`` are fractions of the person's size in the image (px / px).
    """

    sigma_rel: float = 0.012
    sigma_px: float = 1.0
    joint_sigma_scale: tuple[float, ...] = H36M17_SIGMA_SCALE
    correlation_time_s: float = 0.0
    outlier_probability: float = 0.01
    outlier_range_rel: tuple[float, float] = (0.1, 0.4)
    outlier_confident_fraction: float = 0.5
    body_swap_probability: float = 0.005
    limb_swap_probability: float = 0.005
    occlusion: bool = True
    occluded_sigma_scale: float = 2.5
    occluded_confidence_scale: float = 0.6
    occluded_drop_probability: float = 0.2
    miss_probability: float = 0.005
    confidence_max: float = 0.95
    confidence_error_rel: float = 0.05
    confidence_noise: float = 0.08
    drop_below_confidence: float = 0.0
    capsules: BodyCapsules = field(default=H36M17_CAPSULES, repr=False)

    def __post_init__(self) -> None:
        for name in (
            "outlier_probability", "outlier_confident_fraction", "body_swap_probability",
            "limb_swap_probability", "occluded_drop_probability", "miss_probability",
            "confidence_max", "drop_below_confidence", "occluded_confidence_scale",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise CrossviewError(f"DetectorNoise.{name} must be within [0, 1], got {value!r}")
        for name in ("sigma_rel", "sigma_px", "correlation_time_s", "occluded_sigma_scale", "confidence_noise"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise CrossviewError(f"DetectorNoise.{name} must be a non-negative number, got {value!r}")
        if not self.confidence_error_rel > 0:
            raise CrossviewError(
                f"DetectorNoise.confidence_error_rel must be positive, got {self.confidence_error_rel!r}"
            )
        low, high = self.outlier_range_rel
        if not 0 <= low <= high:
            raise CrossviewError(
                "DetectorNoise.outlier_range_rel must be (low, high) with 0 <= low <= high, "
                f"got {self.outlier_range_rel!r}"
            )
        scale = tuple(float(v) for v in self.joint_sigma_scale)
        if any(not (np.isfinite(v) and v >= 0) for v in scale):
            raise CrossviewError("DetectorNoise.joint_sigma_scale must hold non-negative numbers")
        object.__setattr__(self, "joint_sigma_scale", scale)
        object.__setattr__(self, "outlier_range_rel", (float(low), float(high)))

    @classmethod
    def preset(cls, name: str) -> "DetectorNoise":
        """``"clean"``, ``"low"``, ``"medium"`` (the default) or ``"high"``."""
        try:
            return PRESETS[name]
        except KeyError:
            raise CrossviewError(f"unknown noise preset {name!r}; choose one of {', '.join(PRESETS)}") from None

    def simulate(
        self,
        rng: np.random.Generator,
        points3d: np.ndarray,
        rig: Rig,
        *,
        points2d: np.ndarray | None = None,
        fps: float | None = None,
    ) -> "Detections":
        """Simulate the detector on every view and frame.

        Args:
            rng: random generator; the result is a deterministic function of its state.
            points3d: ``(T, J, 3)`` true joints, mm, world frame (NaN: joint absent).
            rig: the C cameras.
            points2d: ``(C, T, J, 2)`` exact projections ``rig.project(points3d)``, px, if at hand.
            fps: frame rate of ``points3d``; needed only when ``correlation_time_s`` > 0.

        Returns:
            :class:`Detections` with the corrupted keypoints, confidences and what happened.
        """
        points3d = np.asarray(points3d, dtype=np.float64)
        check_shape("points3d", points3d, "(T, J, 3)", points3d.ndim == 3 and points3d.shape[2] == 3)
        num_frames, num_joints, _ = points3d.shape
        num_cameras = len(rig)
        if points2d is None:
            points2d = rig.project(points3d)
        points2d = np.asarray(points2d, dtype=np.float64)
        check_shape(
            "points2d", points2d, f"(C={num_cameras}, T={num_frames}, J={num_joints}, 2)",
            points2d.shape == (num_cameras, num_frames, num_joints, 2),
        )
        if len(self.joint_sigma_scale) != num_joints:
            raise CrossviewError(
                f"DetectorNoise.joint_sigma_scale has {len(self.joint_sigma_scale)} factors for {num_joints} joints"
            )
        if self.correlation_time_s > 0 and fps is None:
            raise CrossviewError("DetectorNoise.correlation_time_s > 0 needs the frame rate: pass fps")
        shape = (num_cameras, num_frames, num_joints)
        in_image = visible_in_image(rig, points3d, points2d)  # (C, T, J)
        size = person_size_px(points2d)  # (C, T)
        if self.occlusion:
            occluded = self_occlusion(points3d, rig.centers, capsules=self.capsules)  # (C, T, J)
        else:
            occluded = np.zeros(shape, dtype=bool)

        # 1. Swaps: reported joint j shows source joint perm[c, t, j].
        perm = self._swap_permutation(rng, shape)  # (C, T, J)
        swapped = perm != np.arange(num_joints)
        source = np.take_along_axis(points2d, perm[..., None], axis=2)  # (C, T, J, 2)
        occluded = np.take_along_axis(occluded, perm, axis=2)
        in_image = np.take_along_axis(in_image, perm, axis=2)

        # 2-3. Gaussian noise, larger for occluded joints.
        size_sigma = self.sigma_rel * size[..., None]  # (C, T, 1) px
        sigma = np.hypot(size_sigma, self.sigma_px) * np.asarray(self.joint_sigma_scale)  # (C, T, J) px
        sigma = np.where(occluded, sigma * self.occluded_sigma_scale, sigma)
        jitter = self._standard_noise(rng, (num_cameras, num_frames, num_joints, 2), fps)
        jitter *= sigma[..., None]  # (C, T, J, 2) px
        keypoints = source + jitter

        # 4. Outliers: drawn only where they happen (the arrays are large).
        outlier = rng.random(shape) < self.outlier_probability
        where = np.nonzero(outlier)
        count = len(where[0])
        angle = rng.uniform(0.0, 2 * np.pi, count)
        reach = rng.uniform(*self.outlier_range_rel, count) * size[where[:2]]  # (n,) px
        keypoints[where] += np.stack([np.cos(angle), np.sin(angle)], axis=-1) * reach[:, None]
        confident = np.zeros(shape, dtype=bool)
        confident[where] = rng.random(count) < self.outlier_confident_fraction
        _clip_to_images(keypoints, rig)

        # 5. Confidence from the error against the aimed-at position (for a confident outlier,
        # the error its jitter alone would have had).
        error = np.linalg.norm(np.where(confident[..., None], jitter, keypoints - source), axis=-1)  # (C, T, J) px
        del jitter
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = error / (self.confidence_error_rel * size[..., None])
        confidence = self.confidence_max * np.exp(-0.5 * relative**2)
        confidence = np.where(occluded, confidence * self.occluded_confidence_scale, confidence)
        confidence += self.confidence_noise * rng.standard_normal(shape)
        np.clip(confidence, MIN_DETECTED_CONFIDENCE, 1.0, out=confidence)  # 0 is kept for "missing"

        # 6. Missing data.
        missed = rng.random(shape[:2]) < self.miss_probability  # (C, T)
        occluded_drop = occluded & (rng.random(shape) < self.occluded_drop_probability)
        dropped = (
            ~in_image
            | missed[..., None]
            | occluded_drop
            | (confidence < self.drop_below_confidence)
            | ~np.all(np.isfinite(keypoints), axis=-1)
        )
        keypoints[dropped] = np.nan
        confidence = np.where(dropped, 0.0, confidence)
        return Detections(
            keypoints=keypoints,
            confidence=confidence,
            occluded=occluded,
            outlier=outlier & ~dropped,
            swapped=swapped,
            dropped=dropped,
            in_image=in_image,
            person_size_px=size,
        )

    def apply(
        self,
        rng: np.random.Generator,
        points3d: np.ndarray,
        rig: Rig,
        *,
        points2d: np.ndarray | None = None,
        fps: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`simulate`, returning only ``keypoints (C, T, J, 2)`` px and ``confidence (C, T, J)``."""
        detections = self.simulate(rng, points3d, rig, points2d=points2d, fps=fps)
        return detections.keypoints, detections.confidence

    # ----------------------------------------------------------------------------------------
    def _swap_permutation(self, rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
        num_cameras, num_frames, num_joints = shape
        identity = np.arange(num_joints)
        perm = np.broadcast_to(identity, shape).copy()
        body = rng.random(shape[:2]) < self.body_swap_probability  # (C, T)
        if num_joints == H36M17.num_joints:
            perm[body] = H36M17.flip_permutation
            for left, right in H36M17_LIMB_SWAPS:  # tiny loop over limb pairs
                limb = rng.random(shape[:2]) < self.limb_swap_probability  # (C, T)
                pair_perm = identity.copy()
                pair_perm[list(left)], pair_perm[list(right)] = right, left
                perm[limb] = perm[limb][:, pair_perm]  # compose: reported j shows perm[pair_perm[j]]
        elif self.body_swap_probability > 0 or self.limb_swap_probability > 0:
            raise CrossviewError(f"left/right swaps are defined for the H36M-17 skeleton, not {num_joints} joints")
        return perm

    def _standard_noise(self, rng: np.random.Generator, shape: tuple[int, ...], fps: float | None) -> np.ndarray:
        """Unit-variance noise of ``shape (C, T, J, 2)``, AR(1)-correlated along T when asked."""
        white = rng.standard_normal(shape)
        if self.correlation_time_s <= 0 or shape[1] < 2:
            return white
        a = float(np.exp(-1.0 / (fps * self.correlation_time_s)))
        b = np.sqrt(1.0 - a * a)
        # Stationary from the first frame: the filter starts from a unit-variance state.
        start = a * rng.standard_normal((shape[0], 1, *shape[2:]))  # (C, 1, J, 2)
        return lfilter([b], [1.0, -a], white, axis=1, zi=start)[0]


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """The simulated detector's output and what happened to each keypoint.

    Attributes:
        keypoints: ``(C, T, J, 2)`` float64 px, NaN where dropped.
        confidence: ``(C, T, J)`` in [0, 1], 0 where dropped.
        occluded: ``(C, T, J)`` bool, the reported position is hidden by another body part.
        outlier: ``(C, T, J)`` bool, a gross error was added (and the joint was not dropped).
        swapped: ``(C, T, J)`` bool, the label shows another joint (left/right swap).
        dropped: ``(C, T, J)`` bool, missing (NaN, confidence 0) for any reason.
        in_image: ``(C, T, J)`` bool, the reported joint's true position is inside the image.
        person_size_px: ``(C, T)`` the longer side of the person's box, px (NaN: not seen).
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    occluded: np.ndarray
    outlier: np.ndarray
    swapped: np.ndarray
    dropped: np.ndarray
    in_image: np.ndarray
    person_size_px: np.ndarray


def person_size_px(points2d: np.ndarray) -> np.ndarray:
    """The longer side of the box around each view's projected joints.

    Args:
        points2d: ``(C, T, J, 2)`` px, NaN for unprojectable joints.

    Returns:
        ``(C, T)`` px; NaN where fewer than two joints project.
    """
    check_shape("points2d", points2d, "(C, T, J, 2)", points2d.ndim == 4 and points2d.shape[-1] == 2)
    finite = np.all(np.isfinite(points2d), axis=-1)  # (C, T, J)
    high = np.where(finite[..., None], points2d, -np.inf).max(axis=2)  # (C, T, 2)
    low = np.where(finite[..., None], points2d, np.inf).min(axis=2)
    with np.errstate(invalid="ignore"):
        size = (high - low).max(axis=-1)  # (C, T)
    return np.where(finite.sum(axis=2) >= 2, size, np.nan)


def _clip_to_images(keypoints: np.ndarray, rig: Rig) -> None:
    """Clip ``(C, T, J, 2)`` px into each camera's image, in place (NaN stays NaN)."""
    upper = np.array([[c.width - 1, c.height - 1] for c in rig.cameras], dtype=np.float64)  # (C, 2)
    np.clip(keypoints, 0.0, upper[:, None, None, :], out=keypoints)


PRESETS: dict[str, DetectorNoise] = {
    "clean": DetectorNoise(
        sigma_rel=0.0, sigma_px=0.0, outlier_probability=0.0,
        body_swap_probability=0.0, limb_swap_probability=0.0,
        occlusion=False, occluded_drop_probability=0.0, miss_probability=0.0,
        confidence_max=1.0, confidence_noise=0.0,
    ),
    "low": DetectorNoise(
        sigma_rel=0.008, sigma_px=0.5, outlier_probability=0.003,
        body_swap_probability=0.001, limb_swap_probability=0.001,
        occluded_sigma_scale=2.0, occluded_drop_probability=0.1, miss_probability=0.001,
        confidence_noise=0.05,
    ),
    "medium": DetectorNoise(),
    "high": DetectorNoise(
        sigma_rel=0.025, sigma_px=1.5, outlier_probability=0.04,
        body_swap_probability=0.02, limb_swap_probability=0.02,
        occluded_sigma_scale=3.0, occluded_drop_probability=0.3, miss_probability=0.02,
        confidence_noise=0.12,
    ),
}
#: The preset names, mildest first.
PRESET_NAMES = tuple(PRESETS)


def resolve_noise(noise: "DetectorNoise | str | None") -> DetectorNoise:
    """A :class:`DetectorNoise` from a preset name, an instance, or None (``"medium"``)."""
    if noise is None:
        return PRESETS["medium"]
    if isinstance(noise, DetectorNoise):
        return noise
    if isinstance(noise, str):
        return DetectorNoise.preset(noise)
    raise CrossviewError(f"noise must be a DetectorNoise or a preset name, got {type(noise).__name__}")


__all__ = [
    "DetectorNoise",
    "Detections",
    "H36M17_SIGMA_SCALE",
    "PRESETS",
    "PRESET_NAMES",
    "person_size_px",
    "resolve_noise",
]
