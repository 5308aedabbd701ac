"""Virtual camera rigs around a capture volume, for synthetic multi-view data.

The capture volume is a vertical cylinder around the target's vertical axis: radius
``volume_radius_mm`` (1 m by default: a person standing within ~1 m of the target, arms included
when they stand near its middle) and heights ``volume_z_mm`` (0 to 2 m above the floor at z = 0; see
:func:`models.synthetic.mocap.centre_on_floor`). Cameras stand around it and look at it.

:func:`random_rig` draws the kind of rig people build: cameras spread in azimuth, at least 30
degrees apart by default and never all on one line through the subject (two cameras closer than
that, or facing each other within it, triangulate depth poorly: with the ``medium`` detector, two
views 30-40 degrees apart give ~1.4x the MPJPE of views 90 degrees apart), 0.5-2.5 m high,
2.5-6 m away, with consumer image sizes. The focal length is chosen so the whole volume fits in the image, then
narrowed at random (the volume fills 70-100 % of the limiting image side) and kept within a
30-100 degree horizontal field of view (a 1080-px-wide phone at 36 degrees, as in the Pose2Sim
demo, up to wide webcams at ~90 degrees, as in the caliscope sample). Half the cameras get mild
lens distortion in the range of those two real calibrations: k1 in [-0.30, 0.15], k2 in
[-0.15, 0.15], k3 in [-0.02, 0.10], p1, p2 ~ N(0, 0.0015) (both calibrations: |p| < 0.005).
A draw whose radial model folds back within the field of view is rejected.

:func:`ring_rig` is the deterministic rig for benchmarks.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from calibration.camera import Camera, look_at
from calibration.errors import CrossviewError
from calibration.rig import Rig

#: (width, height) choices: VGA webcam, 720p, 1080p, portrait 1080p phone.
IMAGE_SIZES: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720), (1920, 1080), (1080, 1920))
DEFAULT_TARGET_MM = (0.0, 0.0, 900.0)
_VOLUME_AZIMUTHS = 24
_VOLUME_LEVELS = 3
_FIT_MARGIN = 0.03  # fraction of the half image kept free around the volume


def volume_points(target=DEFAULT_TARGET_MM, radius_mm: float = 1000.0, z_mm=(0.0, 2000.0)) -> np.ndarray:
    """``(N, 3)`` mm points on the capture cylinder's surface (rims and a middle ring) and axis."""
    target = np.asarray(target, dtype=np.float64)
    angles = np.linspace(0.0, 2 * np.pi, _VOLUME_AZIMUTHS, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1) * radius_mm + target[:2]  # (A, 2)
    levels = np.linspace(z_mm[0], z_mm[1], _VOLUME_LEVELS)
    rim = np.concatenate([np.column_stack([ring, np.full(len(ring), z)]) for z in levels])
    axis = np.column_stack([np.tile(target[:2], (len(levels), 1)), levels])
    return np.concatenate([rim, axis])


def fit_focal(camera: Camera, points: np.ndarray, *, margin: float = _FIT_MARGIN) -> float:
    """The largest focal length (px) at which every point of ``points (N, 3)`` mm projects inside
    the image (pinhole, principal point unchanged), keeping ``margin`` of each half side free.

    Returns 0 when a point is behind the camera.
    """
    cam = camera.to_camera(points)  # (N, 3)
    if np.any(cam[:, 2] <= 1.0):
        return 0.0
    norm = cam[:, :2] / cam[:, 2:3]  # (N, 2) normalised
    cx, cy = camera.K[0, 2], camera.K[1, 2]
    limits = []
    for axis, (low, high) in enumerate(((cx, camera.width - 1 - cx), (cy, camera.height - 1 - cy))):
        pos = norm[:, axis].max()
        neg = -norm[:, axis].min()
        for extent, room in ((pos, high), (neg, low)):
            if extent > 1e-12:
                limits.append(room * (1 - margin) / extent)
    return float(min(limits)) if limits else float("inf")


def field_radius(camera: Camera) -> float:
    """Largest normalised (undistorted) radius ``|(x/z, y/z)|`` that lands inside the image.

    Beyond it a polynomial distortion model may fold points far outside the view back into the
    image; :func:`visible_in_image` uses this bound to reject them.
    """
    corners = np.array(
        [[0.0, 0.0], [camera.width - 1, 0.0], [0.0, camera.height - 1], [camera.width - 1, camera.height - 1]]
    )
    edges = np.array(
        [
            [(camera.width - 1) / 2, 0.0],
            [(camera.width - 1) / 2, camera.height - 1],
            [0.0, (camera.height - 1) / 2],
            [camera.width - 1, (camera.height - 1) / 2],
        ]
    )
    norm = camera.undistort_points(np.concatenate([corners, edges]), normalized=True)  # (8, 2)
    return float(np.nanmax(np.linalg.norm(norm, axis=1)))


def visible_in_image(rig: Rig, points: np.ndarray, pixels: np.ndarray | None = None) -> np.ndarray:
    """Which world points each camera images inside its frame.

    Args:
        rig: the cameras.
        points: ``(..., 3)`` world points, mm.
        pixels: ``(C, ..., 2)`` their projections (``rig.project(points)``), if already computed.

    Returns:
        ``(C, ...)`` bool: in front of the camera, within the field of view (see
        :func:`field_radius`) and within ``[0, width - 1] x [0, height - 1]`` px.
    """
    points = np.asarray(points, dtype=np.float64)
    if pixels is None:
        pixels = rig.project(points)
    out = np.zeros(pixels.shape[:-1], dtype=bool)
    for c, camera in enumerate(rig.cameras):  # tiny loop over cameras
        cam = camera.to_camera(points)  # (..., 3)
        with np.errstate(invalid="ignore", divide="ignore"):
            radius = np.linalg.norm(cam[..., :2] / cam[..., 2:3], axis=-1)
            u, v = pixels[c, ..., 0], pixels[c, ..., 1]
            out[c] = (
                (cam[..., 2] > 0)
                & (radius <= field_radius(camera) * 1.001)
                & (u >= 0)
                & (u <= camera.width - 1)
                & (v >= 0)
                & (v <= camera.height - 1)
            )
    return out


def _rotate_about_optical_axis(camera: Camera, roll_rad: float) -> Camera:
    c, s = math.cos(roll_rad), math.sin(roll_rad)
    roll = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    center = camera.center
    R = roll @ camera.R
    return camera.with_pose(R, -R @ center)


def _distortion_is_monotonic(dist: np.ndarray, max_radius: float) -> bool:
    """True when the radial map r -> r (1 + k1 r^2 + k2 r^4 + k3 r^6) keeps increasing to ``max_radius``."""
    k1, k2, _, _, k3 = dist
    r2 = np.linspace(0.0, max_radius**2, 200)
    slope = 1 + 3 * k1 * r2 + 5 * k2 * r2**2 + 7 * k3 * r2**3
    return bool(np.all(slope > 0.2))


def _sample_distortion(rng: np.random.Generator) -> np.ndarray:
    k1 = rng.uniform(-0.30, 0.15)
    k2 = rng.uniform(-0.15, 0.15)
    p1, p2 = np.clip(rng.normal(0.0, 0.0015, size=2), -0.005, 0.005)
    k3 = rng.uniform(-0.02, 0.10)
    return np.array([k1, k2, p1, p2, k3])


def _sample_azimuths(
    rng: np.random.Generator, num_cameras: int, span_deg: float, min_separation_deg: float, max_tries: int
) -> np.ndarray:
    """Azimuths (deg) spread over ``span_deg`` with neighbours at least ``min_separation_deg`` apart.

    Uniform over the admissible configurations: the free angle is split by a flat Dirichlet draw.
    A set whose lines of sight are all parallel (e.g. two cameras facing each other) is redrawn.
    """
    full_circle = span_deg >= 360.0 - 1e-9
    gaps_needed = num_cameras if full_circle else num_cameras - 1
    free = span_deg - gaps_needed * min_separation_deg
    if free < 0:
        raise CrossviewError(
            f"{num_cameras} cameras cannot be {min_separation_deg:g} degrees apart within {span_deg:g} degrees; "
            "lower min_separation_deg or widen azimuth_span_deg"
        )
    for _ in range(max_tries):
        start = rng.uniform(0.0, 360.0)
        if full_circle:
            gaps = rng.dirichlet(np.ones(num_cameras)) * free + min_separation_deg
            azimuths = start + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
        else:
            parts = rng.dirichlet(np.ones(num_cameras + 1)) * free  # slack before, between, after
            azimuths = start + parts[0] + np.concatenate([[0.0], np.cumsum(parts[1:-1] + min_separation_deg)])
        if num_cameras == 1:
            return azimuths % 360.0
        diff = np.abs(azimuths[:, None] - azimuths[None, :]) % 180.0
        line_angle = np.minimum(diff, 180.0 - diff)  # angle between lines of sight, folded to [0, 90]
        if line_angle.max() >= min(min_separation_deg, 90.0) - 1e-9:
            return azimuths % 360.0
    raise CrossviewError(f"could not place {num_cameras} cameras after {max_tries} tries")


def random_rig(
    rng: np.random.Generator,
    num_cameras: int,
    *,
    target: Sequence[float] = DEFAULT_TARGET_MM,
    volume_radius_mm: float = 1000.0,
    volume_z_mm: tuple[float, float] = (0.0, 2000.0),
    distance_mm: tuple[float, float] = (2500.0, 6000.0),
    height_mm: tuple[float, float] = (500.0, 2500.0),
    azimuth_span_deg: float = 360.0,
    min_separation_deg: float = 30.0,
    image_sizes: Sequence[tuple[int, int]] = IMAGE_SIZES,
    fill: tuple[float, float] = (0.7, 1.0),
    hfov_deg: tuple[float, float] = (30.0, 100.0),
    distortion_probability: float = 0.5,
    roll_deg: float = 3.0,
    aim_jitter_mm: float = 150.0,
    max_tries: int = 200,
) -> Rig:
    """A random rig of ``num_cameras`` cameras around the capture volume, named ``cam_0`` ...

    Args:
        rng: the random generator (the rig is a deterministic function of its state).
        num_cameras: C >= 1.
        target: ``(3,)`` mm, the point the cameras aim at (the volume's axis passes through it).
        volume_radius_mm, volume_z_mm: the capture cylinder that must project inside every image.
        distance_mm: horizontal camera-to-axis distance range; the lower end is raised to
            ``volume_radius_mm + 1000`` so no camera stands inside the volume.
        height_mm: camera height range above the floor (z = 0).
        azimuth_span_deg: arc over which cameras are spread (360: all around).
        min_separation_deg: least azimuth between neighbouring cameras.
        image_sizes: ``(width, height)`` px choices, drawn per camera.
        fill: range of the fraction of the largest fitting focal length that is used.
        hfov_deg: allowed horizontal field of view; a pose that needs a wider one is redrawn.
        distortion_probability: chance that a camera has lens distortion (5 coefficients).
        roll_deg: standard deviation of the roll about the optical axis.
        aim_jitter_mm: standard deviation of the aim point around ``target`` (per axis).
        max_tries: redraws allowed per camera before giving up.

    Returns:
        The rig. Every camera images the whole volume (checked with distortion applied).

    Raises:
        CrossviewError: impossible settings (too many cameras for the separation, a volume
            that no allowed camera can frame).
    """
    if num_cameras < 1:
        raise CrossviewError(f"num_cameras must be at least 1, got {num_cameras}")
    target = np.asarray(target, dtype=np.float64)
    volume = volume_points(target, volume_radius_mm, volume_z_mm)  # (N, 3)
    near = max(distance_mm[0], volume_radius_mm + 1000.0)
    far = max(distance_mm[1], near)
    azimuths = np.radians(_sample_azimuths(rng, num_cameras, azimuth_span_deg, min_separation_deg, max_tries))
    cameras = []
    for index, azimuth in enumerate(azimuths):  # tiny loop over cameras
        cameras.append(
            _random_camera(
                rng,
                f"cam_{index}",
                azimuth,
                target=target,
                volume=volume,
                near=near,
                far=far,
                height_mm=height_mm,
                image_sizes=image_sizes,
                fill=fill,
                hfov_deg=hfov_deg,
                distortion_probability=distortion_probability,
                roll_deg=roll_deg,
                aim_jitter_mm=aim_jitter_mm,
                max_tries=max_tries,
            )
        )
    return Rig(tuple(cameras))


def _random_camera(
    rng, name, azimuth, *, target, volume, near, far, height_mm, image_sizes, fill, hfov_deg,
    distortion_probability, roll_deg, aim_jitter_mm, max_tries,
) -> Camera:
    """One camera at ``azimuth`` (rad) that frames ``volume (N, 3)`` mm; see :func:`random_rig`."""
    for _ in range(max_tries):
        width, height = image_sizes[rng.integers(len(image_sizes))]
        distance = rng.uniform(near, far)
        center = np.array(
            [
                target[0] + distance * math.cos(azimuth),
                target[1] + distance * math.sin(azimuth),
                rng.uniform(*height_mm),
            ]
        )
        aim = target + rng.normal(0.0, aim_jitter_mm, size=3)
        roll = math.radians(rng.normal(0.0, roll_deg))
        draft = _rotate_about_optical_axis(look_at(name, center, aim, width=width, height=height, focal_px=1.0), roll)
        focal_fit = fit_focal(draft, volume)
        focal_widest = (width / 2) / math.tan(math.radians(hfov_deg[1]) / 2)
        focal_narrowest = (width / 2) / math.tan(math.radians(hfov_deg[0]) / 2)
        if focal_fit < focal_widest:
            continue  # the volume needs a wider lens than allowed: redraw the pose
        focal = min(focal_fit * rng.uniform(*fill), focal_narrowest)
        focal = max(focal, focal_widest)
        K = draft.K.copy()
        K[0, 0] = K[1, 1] = focal
        pinhole = Camera(name, width, height, K, np.zeros(5), draft.R, draft.t)
        if rng.random() >= distortion_probability:
            return pinhole
        max_radius = 1.2 * math.hypot(width / 2, height / 2) / focal
        for _ in range(max_tries):
            dist = _sample_distortion(rng)
            if not _distortion_is_monotonic(dist, max_radius):
                continue
            distorted = Camera(name, width, height, K, dist, draft.R, draft.t)
            if np.all(visible_in_image(Rig((distorted,)), volume)):
                return distorted
        return pinhole
    raise CrossviewError(
        f"{name}: no camera {near:.0f}-{far:.0f} mm away frames the volume within a "
        f"{hfov_deg[1]:g} degree field of view; move the cameras further out or shrink the volume"
    )


def ring_rig(
    num_cameras: int,
    radius_mm: float = 4000.0,
    height_mm: float = 1500.0,
    *,
    target: Sequence[float] = DEFAULT_TARGET_MM,
    width: int = 1280,
    height: int = 720,
    focal_px: float | None = None,
    spacing_deg: float | None = None,
    start_deg: float = 0.0,
    volume_radius_mm: float = 1000.0,
    volume_z_mm: tuple[float, float] = (0.0, 2000.0),
) -> Rig:
    """A deterministic ring of identical pinhole cameras around ``target``, named ``cam_0`` ...

    Args:
        num_cameras: C >= 1.
        radius_mm: horizontal distance from the target's vertical axis.
        height_mm: camera height above the floor (z = 0).
        target: ``(3,)`` mm aim point.
        width, height: image size, px.
        focal_px: focal length; default: 90 % of the focal that fits the volume in the first
            camera (all cameras are alike).
        spacing_deg: azimuth between neighbours; default ``360 / C`` for three or more cameras
            and 90 degrees for two (two cameras facing each other cannot triangulate depth along
            their shared line of sight).
        start_deg: azimuth of ``cam_0`` (0 = on the +X axis).
    """
    if num_cameras < 1:
        raise CrossviewError(f"num_cameras must be at least 1, got {num_cameras}")
    if spacing_deg is None:
        spacing_deg = 90.0 if num_cameras == 2 else 360.0 / num_cameras
    target = np.asarray(target, dtype=np.float64)
    centers = []
    for index in range(num_cameras):
        azimuth = math.radians(start_deg + index * spacing_deg)
        centers.append(
            (target[0] + radius_mm * math.cos(azimuth), target[1] + radius_mm * math.sin(azimuth), height_mm)
        )
    if focal_px is None:
        draft = look_at("cam_0", centers[0], target, width=width, height=height, focal_px=1.0)
        focal_px = 0.9 * fit_focal(draft, volume_points(target, volume_radius_mm, volume_z_mm))
        if not focal_px > 0:
            raise CrossviewError("ring_rig: the cameras are too close to frame the volume")
    return Rig(
        tuple(
            look_at(f"cam_{i}", c, target, width=width, height=height, focal_px=focal_px)
            for i, c in enumerate(centers)
        )
    )
