"""A procedurally rendered mannequin that 2D pose detectors (BlazePose) recognise as a person.

The sample take's videos are drawn here from an H36M-17 pose: solid, Lambert-shaded capsule limbs in
skin tone, a shirt (torso and short sleeves), dark shorts, light shoes, an ellipsoid head with eyes,
nose, mouth, ears and hair, standing in a room (checkered floor, walls) with a soft shadow.

Why it looks like this (a trial with BlazePose, ``docs/sample-take.md`` of the project notes): a
solid shaded body with skin/clothing contrast is found in every frame where a stick figure is found
in ~1 %; a face (eyes, nose, hair) stops front/back and left/right confusions; square shoulders (a
shoulder-to-shoulder capsule over a chest that does not rise above it) keep BlazePose's shoulders
on the joints; tight shorts keep its hips on them.

How it is drawn: every body surface is sampled as points ~``spacing_mm`` apart (capsules, a lofted
torso of elliptic cross-sections, ellipsoids), back faces are culled, each point is shaded
(ambient + Lambert) and the points are splatted as anti-aliased discs far-to-near, so occlusion is
right per point (a painter's algorithm on surface samples). Rendering happens in an ideal pinhole
image with a margin; cameras with lens distortion get it by one ``cv2.remap`` (maps cached per
camera), so the figure lands where :meth:`calibration.Camera.project` puts the joints.

Example::

    renderer = MannequinRenderer(camera)
    frames = [renderer.render(pose) for pose in points]  # points (T, 17, 3) mm
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import cv2
import numpy as np

from calibration.camera import Camera
from calibration.errors import CrossviewError, check_shape

logger = logging.getLogger(__name__)

# H36M-17 joint indices (models.skeleton.H36M17 order).
PELVIS, R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE = 0, 1, 2, 3, 4, 5, 6
SPINE, THORAX, NECK, HEAD = 7, 8, 9, 10
L_SHOULDER, L_ELBOW, L_WRIST, R_SHOULDER, R_ELBOW, R_WRIST = 11, 12, 13, 14, 15, 16

_SHIFT = 3  # sub-pixel bits for OpenCV drawing
_SCALE = 1 << _SHIFT
_UP = np.array([0.0, 0.0, 1.0])
_MAP_STEP = 8  # px between exactly undistorted nodes of the lens map


@dataclass(frozen=True, slots=True)
class MannequinStyle:
    """Colours (BGR, 0-255), sizes (mm) and scene of the mannequin.

    Attributes:
        skin, shirt, shorts, shoes, hair: body colours.
        spacing_mm: distance between surface samples; smaller is finer and slower.
        room_half_size_mm: the walls stand this far from the origin (square room).
        wall_height_mm: height of the walls (the ceiling above).
        tile_mm: checker size of the floor.
        shadow_strength: darkening under the person, 0 (none) to 1 (black).
    """

    skin: tuple[int, int, int] = (120, 158, 212)
    shirt: tuple[int, int, int] = (165, 95, 40)
    shorts: tuple[int, int, int] = (48, 42, 40)
    shoes: tuple[int, int, int] = (228, 228, 232)
    hair: tuple[int, int, int] = (32, 45, 70)
    spacing_mm: float = 16.0
    room_half_size_mm: float = 5500.0
    wall_height_mm: float = 3000.0
    tile_mm: float = 600.0
    shadow_strength: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                if len(value) != 3 or not all(0 <= int(c) <= 255 for c in value):
                    raise CrossviewError(f"MannequinStyle.{f.name} must be three 0-255 BGR values, got {value!r}")
                object.__setattr__(self, f.name, tuple(int(c) for c in value))
            elif not (np.isfinite(value) and value > 0):
                raise CrossviewError(f"MannequinStyle.{f.name} must be a positive number, got {value!r}")
        if not 3.0 <= self.spacing_mm <= 60.0:
            raise CrossviewError(f"MannequinStyle.spacing_mm must be 3 to 60 mm, got {self.spacing_mm:g}")
        if self.shadow_strength > 1.0:
            raise CrossviewError(f"MannequinStyle.shadow_strength must be at most 1, got {self.shadow_strength:g}")


# ------------------------------------------------------------------------------------------------
# Surface samples. Each builder returns (points (N, 3) mm, normals (N, 3) unit).
def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-9)


def _perpendicular_basis(axis: np.ndarray, hint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to ``axis`` (3,) and each other; the first close to ``hint``."""
    v = hint - axis * np.dot(hint, axis)
    if np.linalg.norm(v) < 1e-6:
        v = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    v = _unit(v)
    return v, np.cross(axis, v)


def _fibonacci_sphere(count: int) -> np.ndarray:
    """``(count, 3)`` unit vectors spread evenly over the sphere."""
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _capsule(a: np.ndarray, b: np.ndarray, ra: float, rb: float, spacing: float):
    """A tapered capsule from ``a`` to ``b`` (3,) mm with end radii ``ra``, ``rb`` mm: the side
    surface plus a hemisphere at each end."""
    axis = b - a
    length = float(np.linalg.norm(axis))
    axis = axis / max(length, 1e-9)
    v, w = _perpendicular_basis(axis, np.array([0.3, 0.5, 0.8]))
    n_s = max(2, int(np.ceil(length / spacing)) + 1)
    n_t = max(8, int(np.ceil(2 * np.pi * max(ra, rb) / spacing)))
    s = np.linspace(0.0, 1.0, n_s)[:, None]  # (S, 1)
    theta = np.linspace(0.0, 2 * np.pi, n_t, endpoint=False)[None, :]  # (1, Tn)
    radius = ra + (rb - ra) * s  # (S, 1)
    radial = np.cos(theta)[..., None] * v + np.sin(theta)[..., None] * w  # (1, Tn, 3)
    side = a + (s * length)[..., None] * axis + radius[..., None] * radial  # (S, Tn, 3)
    slope = (ra - rb) / max(length, 1e-9)
    side_n = _unit(radial + slope * axis)  # (1, Tn, 3)
    side_n = np.broadcast_to(side_n, side.shape)
    points, normals = [side.reshape(-1, 3)], [side_n.reshape(-1, 3)]
    for centre, r, outward in ((a, ra, -axis), (b, rb, axis)):  # hemispheres closing each end
        p, n = _ellipsoid(centre, np.eye(3), np.array([r, r, r]), spacing)
        cap = n @ outward > -0.1
        points.append(p[cap])
        normals.append(n[cap])
    return np.concatenate(points), np.concatenate(normals)


def _ellipsoid(centre: np.ndarray, axes: np.ndarray, radii: np.ndarray, spacing: float):
    """An ellipsoid: ``axes`` (3, 3) rows are its unit axes, ``radii`` (3,) mm its half-lengths."""
    a, b, c = radii
    area = 4 * np.pi * ((a * b) ** 1.6 + (a * c) ** 1.6 + (b * c) ** 1.6) ** (1 / 1.6) / 3 ** (1 / 1.6)
    unit = _fibonacci_sphere(max(24, int(np.ceil(area / spacing**2 * 1.2))))  # (N, 3) local
    points = centre + (unit * radii) @ axes
    normals = _unit((unit / radii) @ axes)
    return points, normals


def _loft(centres: np.ndarray, half_widths: np.ndarray, half_depths: np.ndarray, rights: np.ndarray,
          fronts: np.ndarray, spacing: float):
    """A tube through K elliptic rings (``centres`` (K, 3) mm; half-widths/depths (K,) mm along
    ``rights``/``fronts`` (K, 3)), rings linearly blended, with a cap on the last ring.

    Returns points (N, 3), normals (N, 3) and each point's position along the tube (N,) in [0, K-1].
    """
    seg = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    n_h = max(2, int(np.ceil(seg.sum() / spacing)) + 1)
    n_t = max(12, int(np.ceil(2 * np.pi * np.max(half_widths) / spacing)))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    pos = np.interp(np.linspace(0.0, cum[-1], n_h), cum, np.arange(len(centres)))  # (H,) ring index
    i0 = np.minimum(np.floor(pos).astype(int), len(centres) - 2)
    f = (pos - i0)[:, None]
    lerp = lambda x: x[i0] * (1 - f) + x[i0 + 1] * f  # noqa: E731 - (H, ...) blend of ring values
    c, r, fr = lerp(centres), _unit(lerp(rights)), _unit(lerp(fronts))
    aw, ad = lerp(half_widths[:, None]), lerp(half_depths[:, None])  # (H, 1)
    theta = np.linspace(0.0, 2 * np.pi, n_t, endpoint=False)
    cos, sin = np.cos(theta)[None, :, None], np.sin(theta)[None, :, None]  # (1, Tn, 1)
    pts = c[:, None] + cos * (aw[:, None] * r[:, None]) + sin * (ad[:, None] * fr[:, None])  # (H, Tn, 3)
    nrm = _unit(cos * r[:, None] / aw[:, None] + sin * fr[:, None] / ad[:, None])
    along = np.broadcast_to(pos[:, None], pts.shape[:2])
    # Cap: concentric ellipses filling the top ring.
    up = _unit(np.cross(rights[-1], fronts[-1]))
    rings = np.linspace(0.0, 1.0, max(2, int(np.ceil(half_widths[-1] / spacing))) + 1)[:-1]
    top_ring = cos * half_widths[-1] * rights[-1] + sin * half_depths[-1] * fronts[-1]  # (1, Tn, 3)
    cap = centres[-1] + rings[:, None, None] * top_ring
    cap = cap.reshape(-1, 3)
    return (
        np.concatenate([pts.reshape(-1, 3), cap]),
        np.concatenate([nrm.reshape(-1, 3), np.broadcast_to(up, cap.shape)]),
        np.concatenate([along.reshape(-1), np.full(len(cap), len(centres) - 1.0)]),
    )


# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Body:
    """The mannequin's surface samples for one pose: points (N, 3) mm, normals (N, 3), colours
    (N, 3) BGR float, sample size (N,) mm, and the floor shadow's capsules."""

    points: np.ndarray
    normals: np.ndarray
    colours: np.ndarray
    sizes: np.ndarray
    shadow_capsules: tuple[tuple[np.ndarray, np.ndarray, float], ...]


def _build_body(pose: np.ndarray, style: MannequinStyle) -> _Body:
    """Surface samples of the mannequin in ``pose`` (17, 3) mm."""
    sp = style.spacing_mm
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = []  # points, normals, colours, size
    shadows = []

    def add(points, normals, colour, size=sp):
        colour = np.asarray(colour, dtype=np.float64)
        if colour.ndim == 1:
            colour = np.broadcast_to(colour, points.shape)
        parts.append((points, normals, colour, size))

    skin, shirt, shorts = (np.array(c, dtype=np.float64) for c in (style.skin, style.shirt, style.shorts))
    p = pose
    # Body frame: up along the spine, right from the person's left to right shoulder.
    up = _unit(p[THORAX] - p[PELVIS])
    right, front = _perpendicular_basis(up, p[R_SHOULDER] - p[L_SHOULDER])  # front = up x right
    hip_up = up
    hip_right, hip_front = _perpendicular_basis(hip_up, p[R_HIP] - p[L_HIP])
    mid_hip = 0.5 * (p[L_HIP] + p[R_HIP])
    hip_half = 0.5 * np.linalg.norm(p[R_HIP] - p[L_HIP])
    shoulder_half = 0.5 * np.linalg.norm(p[R_SHOULDER] - p[L_SHOULDER])
    mid_shoulder = 0.5 * (p[L_SHOULDER] + p[R_SHOULDER])

    # Torso: shorts from below the hip joints to the waistband, shirt up to a chest that stays
    # below the shoulder line (the shoulder capsule makes the square top).
    waist = p[PELVIS] + 0.4 * (p[SPINE] - p[PELVIS])
    centres = np.array([
        mid_hip - 20.0 * hip_up,
        p[PELVIS],
        waist,
        p[SPINE],
        p[SPINE] + 0.55 * (mid_shoulder - p[SPINE]),
        mid_shoulder - 10.0 * up,
    ])
    widths = np.array([hip_half + 66.0, hip_half + 62.0, 140.0, 145.0, shoulder_half - 5.0, shoulder_half - 30.0])
    depths = np.array([92.0, 95.0, 92.0, 100.0, 108.0, 85.0])
    blend = np.array([0.0, 0.2, 0.5, 0.7, 1.0, 1.0])[:, None]
    rights = _unit(hip_right * (1 - blend) + right * blend)
    fronts = _unit(hip_front * (1 - blend) + front * blend)
    pts, nrm, along = _loft(centres, widths, depths, rights, fronts, sp)
    colour = np.where((along < 1.45)[:, None], shorts, shirt)
    add(pts, nrm, colour)
    shadows.append((centres[0], centres[-1], float(np.max(widths))))

    def limb(a, b, ra, rb, split=None, upper=None, lower=skin):
        pts, nrm = _capsule(a, b, ra, rb, sp)
        if split is None:
            colour = lower
        else:
            t = (pts - a) @ _unit(b - a) / max(np.linalg.norm(b - a), 1e-9)
            colour = np.where((t < split)[:, None], upper, lower)
        add(pts, nrm, colour)
        shadows.append((a, b, max(ra, rb)))

    limb(p[L_SHOULDER] - 12.0 * up, p[R_SHOULDER] - 12.0 * up, 52.0, 52.0, lower=shirt)
    for sh, el, wr in ((L_SHOULDER, L_ELBOW, L_WRIST), (R_SHOULDER, R_ELBOW, R_WRIST)):
        limb(p[sh], p[el], 52.0, 40.0, split=0.55, upper=shirt)
        limb(p[el], p[wr], 39.0, 29.0)
        forearm = _unit(p[wr] - p[el])
        side, flat = _perpendicular_basis(forearm, right)
        hand = np.stack([forearm, side, flat])
        add(*_ellipsoid(p[wr] + 75.0 * forearm, hand, np.array([85.0, 42.0, 24.0]), sp), skin)
    for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
        limb(p[hip], p[knee], 76.0, 52.0, split=0.3, upper=shorts)
        limb(p[knee], p[ankle], 50.0, 36.0)
        foot = _unit(hip_front - hip_front @ _UP * _UP)
        foot_side = np.cross(foot, _UP)
        shoe = p[ankle] + 60.0 * foot - 42.0 * _UP
        add(*_ellipsoid(shoe, np.stack([foot, foot_side, _UP]), np.array([130.0, 50.0, 38.0]), sp), style.shoes)
        shadows.append((shoe - 80 * foot, shoe + 80 * foot, 50.0))

    # Neck and head: the head's frame follows the neck-head direction and the shoulders' facing.
    head_up = _unit(p[HEAD] - p[NECK])
    head_right, _ = _perpendicular_basis(head_up, right)
    head_front = np.cross(head_up, head_right)
    centre = p[HEAD] - 25.0 * head_up + 8.0 * head_front
    limb(p[THORAX] - 20.0 * up, centre - 40.0 * head_up, 50.0, 46.0)
    radii = np.array([78.0, 96.0, 112.0])  # right, front, up
    axes = np.stack([head_right, head_front, head_up])
    pts, nrm = _ellipsoid(centre, axes, radii, sp * 0.8)
    local = (pts - centre) @ axes.T / radii  # (N, 3) on the unit sphere: right, front, up
    # Hair: the crown (its line dropping towards the back) and the back of the head down to the
    # nape; the forehead and face stay free. Seen from behind, the hair tells back from front.
    back = np.clip(-local[:, 1], 0.0, 1.0)
    hair = (local[:, 2] > 0.35 - 0.9 * back) | ((local[:, 1] < -0.15) & (local[:, 2] > -0.45))
    hair &= ~((local[:, 1] > 0.55) & (local[:, 2] < 0.55))
    add(pts, nrm, np.where(hair[:, None], np.array(style.hair, float), skin), sp * 0.8)
    shadows.append((centre - 60 * head_up, centre + 60 * head_up, 90.0))

    def on_head(r_, f_, u_):
        """A point on the head's surface in the direction (right, front, up) and its normal."""
        d = _unit(np.array([r_, f_, u_]))
        return centre + (d * radii) @ axes, _unit((d / radii) @ axes)

    for side in (-1.0, 1.0):  # ears, eyes (white, iris), eyebrows
        ear, ear_n = on_head(side, -0.05, 0.0)
        add(*_ellipsoid(ear, np.stack([head_up, head_front, head_right]), np.array([26.0, 14.0, 9.0]), 6.0),
            skin * 0.9, 6.0)
        for colour, size, lift in (((235, 235, 235), 12.0, 1.0), ((45, 30, 25), 8.0, 3.0)):
            eye, eye_n = on_head(0.36 * side, 0.9, 0.16)
            add((eye + lift * eye_n)[None], eye_n[None], colour, size)
        brow, brow_n = on_head(0.36 * side, 0.88, 0.38)
        for k in (-1.0, 0.0, 1.0):
            add((brow + 2 * brow_n + 9 * k * head_right)[None], brow_n[None], style.hair, 7.0)
    nose, nose_n = on_head(0.0, 1.0, -0.12)
    add(*_ellipsoid(nose - 4 * nose_n, np.stack([head_up, head_front, head_right]), np.array([24.0, 16.0, 11.0]), 5.0),
        skin, 5.0)
    mouth, mouth_n = on_head(0.0, 0.92, -0.45)
    for k in (-1.0, 0.0, 1.0):
        add((mouth + 2 * mouth_n + 11 * k * head_right)[None], mouth_n[None], (80, 80, 165), 7.0)

    points = np.concatenate([x[0] for x in parts])
    normals = np.concatenate([x[1] for x in parts])
    colours = np.concatenate([x[2] for x in parts])
    sizes = np.concatenate([np.full(len(x[0]), x[3]) for x in parts])
    return _Body(points, normals, colours, sizes, tuple(shadows))


# ------------------------------------------------------------------------------------------------
class MannequinRenderer:
    """Renders the mannequin for one camera; the room background and the lens maps are computed once.

    Args:
        camera: the camera to render for (its size, intrinsics, distortion and pose).
        style: colours, sizes and scene; :class:`MannequinStyle` defaults when None.
    """

    def __init__(self, camera: Camera, style: MannequinStyle | None = None) -> None:
        if not isinstance(camera, Camera):
            raise CrossviewError(f"MannequinRenderer needs a calibration.Camera, got {type(camera).__name__}")
        self.camera = camera
        self.style = MannequinStyle() if style is None else style
        width, height = camera.width, camera.height
        if camera.has_distortion:
            # Where each output (distorted) pixel looks in the ideal pinhole image.
            # Undistorted on a grid every _MAP_STEP px, then interpolated (the lens is smooth).
            nodes_u = np.arange(0, width + _MAP_STEP, _MAP_STEP, dtype=np.float64)
            nodes_v = np.arange(0, height + _MAP_STEP, _MAP_STEP, dtype=np.float64)
            grid = np.stack(np.meshgrid(nodes_u, nodes_v), axis=-1)  # (Gv, Gu, 2) distorted px
            norm = camera.undistort_points(grid.reshape(-1, 2), normalized=True)
            coarse = (norm @ camera.K[:2, :2].T + camera.K[:2, 2]).reshape(grid.shape).astype(np.float32)
            u, v = np.meshgrid(np.arange(width, dtype=np.float32) / _MAP_STEP,
                               np.arange(height, dtype=np.float32) / _MAP_STEP)
            ideal = cv2.remap(coarse, u, v, cv2.INTER_LINEAR).astype(np.float64)  # (H, W, 2) ideal px
            low = np.floor(np.nanmin(ideal, axis=(0, 1))) - 4
            high = np.ceil(np.nanmax(ideal, axis=(0, 1))) + 4
            low = np.maximum(np.minimum(low, 0), -width)  # keep the canvas at most 3x the image
            high = np.minimum(np.maximum(high, [width - 1, height - 1]), [2 * width, 2 * height])
            self._offset = -low  # canvas px = ideal px + offset
            self._canvas_size = (int(high[0] - low[0]) + 1, int(high[1] - low[1]) + 1)  # width, height
            maps = (ideal + self._offset).astype(np.float32)
            self._maps = (np.ascontiguousarray(maps[..., 0]), np.ascontiguousarray(maps[..., 1]))
        else:
            self._offset = np.zeros(2)
            self._canvas_size = (width, height)
            self._maps = None
        to_person = np.array([0.0, 0.0, 900.0]) - camera.center
        side = _unit(np.cross(to_person, _UP))
        # Key light from above, behind the camera and a little to its side.
        self._light = _unit(1.3 * _UP - 0.6 * _unit(to_person * [1, 1, 0]) + 0.35 * side)
        self._shadow_dir = _unit(np.array([0.08, 0.05, 1.0]))  # towards the (overhead) shadow light
        self._background = self._room()

    # --- projection on the ideal canvas ---------------------------------------------------------
    def _project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World ``(N, 3)`` mm -> canvas px ``(N, 2)`` and depth ``(N,)`` mm (camera z)."""
        cam = points @ self.camera.R.T + self.camera.t
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = cam[:, :2] / z[:, None]
        return xy @ self.camera.K[:2, :2].T + self.camera.K[:2, 2] + self._offset, z

    def _room(self) -> np.ndarray:
        """The empty room seen from the camera on the ideal canvas, ``(Hc, Wc, 3)`` uint8 BGR."""
        s = self.style
        width, height = self._canvas_size
        # Ray-cast at half resolution (pixel i covers canvas pixels 2i, 2i+1), then upsampled:
        # 4x faster, and the upsampling anti-aliases the checker edges.
        half_w, half_h = (width + 1) // 2, (height + 1) // 2
        u, v = np.meshgrid(2.0 * np.arange(half_w) + 0.5 - self._offset[0],
                           2.0 * np.arange(half_h) + 0.5 - self._offset[1])
        rays = np.stack([(u - self.camera.K[0, 2]) / self.camera.K[0, 0],
                         (v - self.camera.K[1, 2]) / self.camera.K[1, 1], np.ones_like(u, dtype=float)], axis=-1)
        d = rays @ self.camera.R  # (Hc, Wc, 3) world directions (R^T applied to each ray)
        o = self.camera.center
        big = np.inf
        with np.errstate(divide="ignore", invalid="ignore"):
            t_floor = np.where(d[..., 2] < 0, -o[2] / d[..., 2], big)
            t_ceil = np.where(d[..., 2] > 0, (s.wall_height_mm - o[2]) / d[..., 2], big)
            t_walls = [np.where(d[..., a] * sign > 0, (sign * s.room_half_size_mm - o[a]) / d[..., a], big)
                       for a in (0, 1) for sign in (-1.0, 1.0)]
        hits = np.stack([t_floor, t_ceil, *t_walls])  # (6, Hc, Wc)
        which = np.argmin(hits, axis=0)
        t = np.min(hits, axis=0)
        t = np.where(np.isfinite(t), t, 1e5)
        x = o + d * t[..., None]  # (Hc, Wc, 3) hit points mm
        image = np.zeros((half_h, half_w, 3), np.float32)
        checker = (np.floor(x[..., 0] / s.tile_mm) + np.floor(x[..., 1] / s.tile_mm)) % 2
        floor = np.where(checker[..., None] > 0, [[[100, 106, 112]]], [[[160, 166, 170]]])
        fade = np.clip(np.hypot(x[..., 0], x[..., 1]) / (2.5 * s.room_half_size_mm), 0, 1)[..., None]
        image = np.where((which == 0)[..., None], floor * (1.0 - 0.25 * fade), image)
        image = np.where((which == 1)[..., None], [[[225, 228, 230]]], image)
        height_frac = np.clip(x[..., 2] / s.wall_height_mm, 0, 1)[..., None]
        for k, tone in zip(range(4), (0.86, 0.95, 0.90, 1.0)):
            wall = np.array([[[190, 205, 215]]]) * tone * (0.82 + 0.18 * height_frac)
            wall = np.where(x[..., 2:3] < 110.0, [[[70, 72, 78]]], wall)  # skirting board
            image = np.where((which == 2 + k)[..., None], wall, image)
        image = cv2.resize(image.astype(np.float32), (2 * half_w, 2 * half_h), interpolation=cv2.INTER_LINEAR)
        return np.clip(image[:height, :width], 0, 255).astype(np.uint8)

    # --- drawing --------------------------------------------------------------------------------
    def _draw_shadow(self, canvas: np.ndarray, body: _Body) -> None:
        """Darken the floor under the person (a blurred footprint, cast by an overhead light)."""
        L = self._shadow_dir
        segments = []
        for a, b, r in body.shadow_capsules:
            ends = np.stack([a, b])
            ends = ends - ends[:, 2:3] / L[2] * L  # onto the floor along the light
            px, z = self._project(ends)
            if np.all(np.isfinite(px)) and np.all(z > 0):
                segments.append((px, r * self.camera.K[0, 0] / z.mean()))
        if not segments:
            return
        ends = np.concatenate([px for px, _ in segments])
        pad = 40 + max(radius for _, radius in segments)
        height, width = canvas.shape[:2]
        x0, y0 = np.clip(np.floor(ends.min(axis=0) - pad), 0, [width, height]).astype(int)
        x1, y1 = np.clip(np.ceil(ends.max(axis=0) + pad), 0, [width, height]).astype(int)
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        for px, radius in segments:
            pa, pb = (tuple(int(c) for c in np.round((q - [x0, y0]) * _SCALE)) for q in px)
            cv2.line(mask, pa, pb, 1.0, int(np.clip(2 * radius, 1, 2000)), cv2.LINE_AA, _SHIFT)
        soft = cv2.GaussianBlur(mask, (0, 0), 9.0)
        region = canvas[y0:y1, x0:x1].astype(np.float32)
        darkening = 1.0 - self.style.shadow_strength * np.clip(soft, 0.0, 1.0)
        canvas[y0:y1, x0:x1] = (region * darkening[..., None]).astype(np.uint8)

    def _draw_body(self, canvas: np.ndarray, body: _Body) -> None:
        """Splat the visible, shaded surface samples far-to-near."""
        to_camera = self.camera.center - body.points
        visible = np.einsum("ij,ij->i", body.normals, to_camera) > 0
        px, z = self._project(body.points[visible])
        ok = (z > 1.0) & np.all(np.isfinite(px), axis=1)
        px, z = px[ok], z[ok]
        normals = body.normals[visible][ok]
        colours = body.colours[visible][ok]
        sizes = body.sizes[visible][ok]
        lambert = np.clip(normals @ self._light, 0.0, 1.0)
        facing = np.clip(np.einsum("ij,ij->i", normals, _unit(to_camera[visible][ok])), 0.0, 1.0)
        shade = 0.38 + 0.62 * lambert - 0.12 * (1.0 - facing) ** 2  # darker towards the silhouette
        bgr = np.clip(colours * shade[:, None], 0, 255)
        radius = np.maximum(0.85 * sizes * self.camera.K[0, 0] / z, 0.7)
        order = np.argsort(-z)
        centres = np.round(px[order] * _SCALE).astype(np.int64).tolist()
        radii = np.round(radius[order] * _SCALE).astype(np.int64).tolist()
        colour_list = bgr[order].tolist()
        circle, aa = cv2.circle, cv2.LINE_AA
        for c, r, col in zip(centres, radii, colour_list):
            circle(canvas, c, r, col, -1, aa, _SHIFT)

    def render(self, pose3d: np.ndarray) -> np.ndarray:
        """The mannequin in ``pose3d`` seen by the camera.

        Args:
            pose3d: ``(17, 3)`` H36M-17 joints in world millimetres (Z up, floor at z = 0).

        Returns:
            ``(H, W, 3)`` uint8 BGR image of the camera's size; the room alone if the pose has NaN.
        """
        pose3d = np.asarray(pose3d, dtype=np.float64)
        check_shape("pose3d", pose3d, "(17, 3)", pose3d.shape == (17, 3))
        canvas = self._background.copy()
        if np.all(np.isfinite(pose3d)):
            body = _build_body(pose3d, self.style)
            self._draw_shadow(canvas, body)
            self._draw_body(canvas, body)
        if self._maps is None:
            return canvas
        return cv2.remap(canvas, self._maps[0], self._maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def render_frame(camera: Camera, pose3d: np.ndarray, *, style: MannequinStyle | None = None) -> np.ndarray:
    """One frame of the mannequin in ``pose3d`` (17, 3) mm seen by ``camera``: ``(H, W, 3)`` uint8 BGR.

    Builds the room and lens maps each call; for a video use :class:`MannequinRenderer` once per camera.
    """
    return MannequinRenderer(camera, style).render(pose3d)
