"""Procedural human motion on the H36M-17 skeleton: walking, jumping jacks, squats, reaching, turning.

For the bundled sample take and the end-to-end benchmark. Every motion returns ``points (T, 17, 3)``
float64 millimetres in H36M-17 order (:data:`models.skeleton.H36M17`), world frame right-handed with
Z up and the floor at z = 0; at heading 0 the person faces +Y with their right towards +X, and a
positive heading or turn angle is to the left (counter-clockwise seen from above). Left/right are
the person's own. The body, its sizes and joint-angle conventions are in
:mod:`models.synthetic.body_kinematics`.

Each motion is a joint-angle track: the pelvis and the ankles follow designed trajectories - a planted
foot stays put, a stepping foot rolls over its heel and toes - and the legs are solved by analytic
two-bone inverse kinematics. So bones keep their lengths exactly, feet do not slide or sink into the
floor, and every trajectory is smooth (quintic or smootherstep blends; a hop is ballistic).
:func:`compose` plays motions one after another with blended transitions and :func:`demo_routine`
makes the ~10 s routine of the sample take.

Example::

    points = compose([walk(3.0, speed_mm_s=1100), jumping_jacks(2.0), squat(2.0)], fps=30)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from calibration.errors import check_shape
from models.skeleton import H36M17
from models.synthetic.body_kinematics import (
    ARMS,
    BodyShape,
    JointAngles,
    forward_kinematics,
    forward_kinematics_frames,
    restore_bone_lengths,
    rotation_z,
    solve_arm,
    solve_legs,
)
from models.synthetic.gait import (
    add_gait_upper_body,
    fit_pelvis_height,
    last_move_s,
    quintic,
    right_vector,
    smootherstep,
    stance_ankles,
    stepping_ankles,
)

__all__ = [
    "BodyShape",
    "JointAngles",
    "compose",
    "demo_routine",
    "forward_kinematics",
    "jumping_jacks",
    "place_after",
    "reach",
    "squat",
    "turn",
    "walk",
]

_LOG = logging.getLogger(__name__)
_GRAVITY_MM_S2 = 9810.0


def _frames(duration_s: float, fps: float) -> np.ndarray:
    """(T,) frame times in s, T = round(duration_s * fps) >= 2."""
    if not (duration_s > 0 and fps > 0):
        raise ValueError(f"duration_s and fps must be positive, got {duration_s!r} and {fps!r}")
    return np.arange(max(2, int(round(duration_s * fps)))) / fps


def _neutral(t: np.ndarray, xy, heading: float, shape: BodyShape) -> dict:
    """Joint-angle arrays (``JointAngles`` fields by name) of the relaxed stance for frames ``t (T,)``:
    the pelvis above floor point ``xy`` mm at standing height, facing ``heading`` rad, arms hanging
    slightly out with soft elbows (hips and knees are left for :func:`solve_legs`)."""
    n = len(t)
    dofs = JointAngles.zeros(n).as_dict()
    dofs["pelvis_mm"][:] = (*np.asarray(xy, dtype=np.float64), shape.standing_pelvis_z_mm)
    dofs["pelvis_rad"][:, 0] = heading
    dofs["neck_rad"][:, 0], dofs["head_rad"][:, 0] = 0.10, -0.10
    dofs["shoulder_rad"][:, :, 1] = 0.10
    dofs["elbow_rad"][:] = 0.20
    return dofs


# ----------------------------------------------------------------------------- motions


def _natural_step_length_mm(speed_mm_s: float, shape: BodyShape) -> float:
    """Step length at ``speed_mm_s`` from a constant walk ratio (step length / cadence, about
    0.0063 m per step/min at 1.75 m): 0.70 m at 1.3 m/s, 0.55 m at 0.8 m/s for the default body."""
    return float(np.sqrt(60 * 0.0036 * shape.height_mm * speed_mm_s))


def _walk_timing(duration_s, fps, speed_mm_s, step_length_mm, ramp_s, shape):
    """Frame times (T,) s, cadence (steps/s), first toe-off, stop time and ramp (s) of a :func:`walk`."""
    t = _frames(duration_s, fps)
    if not speed_mm_s > 0:
        raise ValueError(f"walk: speed_mm_s must be positive, got {speed_mm_s!r}")
    step_length = step_length_mm or _natural_step_length_mm(speed_mm_s, shape)
    cadence = speed_mm_s / step_length
    if not 0.8 <= cadence <= 3.5:
        raise ValueError(f"walk: {cadence:.2f} steps/s is not a walk; choose step_length_mm nearer "
                         f"{_natural_step_length_mm(speed_mm_s, shape):.0f} mm")  # fmt: skip
    first_lift = 0.1 if ramp_s > 0 else 0.0
    stop_s = last_move_s(first_lift, cadence, t[-1] - 0.05)  # the last steps bring the feet together
    if ramp_s > 0:
        if stop_s < 0.6:
            raise ValueError(f"walk: {duration_s} s is too short to start and stop; give at least "
                             f"{t[-1] - stop_s + 0.7:.1f} s or ramp_s=0")  # fmt: skip
        ramp_s = min(ramp_s, stop_s / 2)
    return t, cadence, first_lift, stop_s, ramp_s


def _walk_distance_mm(duration_s, fps, speed_mm_s, ramp_s, shape) -> float:
    """How far a :func:`walk` with ``ramp_s`` > 0 carries the pelvis (the ramps average half speed)."""
    _, _, _, stop_s, ramp_s = _walk_timing(duration_s, fps, speed_mm_s, None, ramp_s, shape)
    return speed_mm_s * (stop_s - ramp_s)


def walk(duration_s: float, fps: float = 30.0, *, speed_mm_s: float = 1300.0,
         step_length_mm: float | None = None, turn_radius_mm: float | None = None, ramp_s: float = 0.8,
         start_xy_mm: Sequence[float] = (0.0, 0.0), heading_rad: float = 0.0,
         shape: BodyShape | None = None) -> np.ndarray:  # fmt: skip
    """Walking along a straight line or a circle, feet planted during stance.

    The gait: 60 % stance, heel strike and toe-off rolls, the pelvis bobbing (+-21 mm, highest at
    mid-stance), swaying over the stance foot and rotating with the swing leg, the chest counter-rotating
    and each arm swinging forward with the opposite leg.

    Args:
        duration_s, fps: length and frame rate; T = round(duration_s * fps) frames.
        speed_mm_s: steady walking speed of the pelvis along the path.
        step_length_mm: heel-to-heel step length; default from a constant walk ratio (0.70 m at
            1.3 m/s for a 1.75 m body, 0.55 m at 0.8 m/s).
        turn_radius_mm: None walks straight; R > 0 walks a circle of radius R turning left, R < 0 right.
        ramp_s: > 0 starts from standing, speeds up over ``ramp_s``, slows down likewise and takes
            the last steps that bring the feet together before the end; 0 walks at full speed
            throughout (mid-stride at the first frame).
        start_xy_mm: floor position (x, y) of the pelvis at t = 0.
        heading_rad: initial heading (0 faces +Y).
        shape: body sizes; default ``BodyShape()``.

    Returns:
        points (T, 17, 3) float64 mm, world frame (Z up, floor z = 0).
    """
    shape = shape or BodyShape()
    if turn_radius_mm is not None and abs(turn_radius_mm) < 500.0:
        raise ValueError(f"walk: turn_radius_mm must be at least 500 mm (or None), got {turn_radius_mm!r}")
    timing = _walk_timing(duration_s, fps, speed_mm_s, step_length_mm, ramp_s, shape)
    t, cadence, first_lift, stop_s, ramp_s = timing

    def envelope(times):
        if ramp_s <= 0:
            return np.ones_like(times)
        return smootherstep(times / ramp_s) * smootherstep((stop_s - times) / ramp_s)

    # distance along the path, integrated on a fine grid that reaches past both ends (for footprints)
    grid = np.linspace(t[0] - 3.0 - 4 / cadence, t[-1] + 3.0 + 4 / cadence, int(600 * (t[-1] + 8)))
    speed = speed_mm_s * envelope(grid)
    arc = np.concatenate([[0.0], np.cumsum((speed[1:] + speed[:-1]) / 2 * np.diff(grid))])
    arc -= np.interp(0.0, grid, arc)
    start = np.asarray(start_xy_mm, dtype=np.float64)

    def base(times):
        s = np.interp(times, grid, arc)
        if not turn_radius_mm:
            heading = np.full_like(s, heading_rad)
            return start + s[:, None] * np.array([-np.sin(heading_rad), np.cos(heading_rad)]), heading
        heading = heading_rad + s / turn_radius_mm
        xy = np.stack([np.cos(heading) - np.cos(heading_rad), np.sin(heading) - np.sin(heading_rad)], -1)
        return start + turn_radius_mm * xy, heading

    env = envelope(t)
    phase = (t - first_lift) * cadence / 2  # stride cycles, 0 = right toe-off
    amount = env * np.clip(speed_mm_s / 1300.0, 0.4, 1.3)
    xy, heading = base(t)
    dofs = _neutral(t, start, heading_rad, shape)
    sway = 0.012 * shape.height_mm * amount * np.cos(2 * np.pi * (phase - 0.6))  # over the stance foot
    dofs["pelvis_mm"][:, :2] = xy + sway[:, None] * right_vector(heading)
    dofs["pelvis_rad"][:, 0] = heading
    if turn_radius_mm:  # lean into the turn
        dofs["pelvis_rad"][:, 2] = -np.arctan((speed_mm_s * env) ** 2 / (_GRAVITY_MM_S2 * turn_radius_mm))
    add_gait_upper_body(dofs, phase, amount, np.radians(20.0), np.radians(4.0))
    stride = 2 * _natural_step_length_mm(1300.0, shape)
    ankles = stepping_ankles(t, base, envelope, cadence, 0.035 * shape.height_mm, stride, shape, first_lift)
    bob = 0.012 * shape.height_mm * amount * np.cos(4 * np.pi * (phase - 0.1))  # high at mid-stance
    dofs["pelvis_mm"][:, 2] = fit_pelvis_height(JointAngles(**dofs), ankles, env, bob, shape, fps)
    return forward_kinematics(solve_legs(JointAngles(**dofs), ankles, shape), shape)


def turn(duration_s: float, fps: float = 30.0, *, angle_rad: float = np.pi / 2,
         start_xy_mm: Sequence[float] = (0.0, 0.0), heading_rad: float = 0.0,
         shape: BodyShape | None = None) -> np.ndarray:  # fmt: skip
    """Turning in place by ``angle_rad`` (> 0 to the left) with small steps, head and chest leading.

    The rotation runs from 0.1 s until ~0.5 s before the end (2.5 steps/s; the last steps then square
    the feet). Other arguments as :func:`walk`. Returns points (T, 17, 3) float64 mm, world frame.
    """
    shape = shape or BodyShape()
    t = _frames(duration_s, fps)
    cadence = 2.5
    begin = 0.1
    first_lift = begin - (1.0 / cadence if angle_rad > 0 else 0.0)  # step first with the leading foot
    end = last_move_s(first_lift, cadence, t[-1] - 0.05)
    if end - begin < 0.3:
        raise ValueError(f"turn: {duration_s} s is too short; give at least {t[-1] - end + 0.4:.1f} s")
    start = np.asarray(start_xy_mm, dtype=np.float64)

    def yaw(times):
        return heading_rad + angle_rad * smootherstep((times - begin) / (end - begin))

    def envelope(times):
        x = np.clip((times - begin) / (end - begin), 0.0, 1.0)
        return 16 * x**2 * (1 - x) ** 2  # normalised yaw rate of the smootherstep

    def base(times):
        return np.broadcast_to(start, (len(times), 2)), yaw(times)

    dofs = _neutral(t, start, heading_rad, shape)
    dofs["pelvis_rad"][:, 0] = yaw(t)
    lead = yaw(t + 0.25) - yaw(t)
    dofs["lumbar_rad"][:, 2] += 0.3 * lead
    dofs["thoracic_rad"][:, 2] += 0.3 * lead
    dofs["neck_rad"][:, 2] += 0.4 * lead
    env = envelope(t)
    add_gait_upper_body(dofs, (t - first_lift) * cadence / 2, 0.3 * env, np.radians(15.0), 0.0)
    stride = 2 * _natural_step_length_mm(1300.0, shape)
    ankles = stepping_ankles(t, base, envelope, cadence, shape.hip_half_width_mm, stride, shape, first_lift)
    dofs["pelvis_mm"][:, 2] = fit_pelvis_height(JointAngles(**dofs), ankles, env, np.zeros_like(t), shape, fps)
    return forward_kinematics(solve_legs(JointAngles(**dofs), ankles, shape), shape)


def jumping_jacks(duration_s: float, fps: float = 30.0, *, rate_hz: float = 1.1,
                  start_xy_mm: Sequence[float] = (0.0, 0.0), heading_rad: float = 0.0,
                  shape: BodyShape | None = None) -> np.ndarray:  # fmt: skip
    """Jumping jacks: hop to a wide stance with the arms overhead, hop back with the arms down.

    A whole number of jacks near ``rate_hz`` jacks per second fills the duration (0.1 s of standing
    at each end). Each hop is ballistic, 0.13 s in the air (the feet leave the floor by ~20 mm), the
    knees soft at take-off and absorbing the landing; the feet land 0.34 x stature apart, and the arms
    swing through the sides to about 165 degrees of abduction, hands above the head.
    Other arguments as :func:`walk`. Returns points (T, 17, 3) float64 mm, world frame.
    """
    shape = shape or BodyShape()
    t = _frames(duration_s, fps)
    pad = 0.1
    count = max(1, int(round((t[-1] - 2 * pad) * rate_hz - 0.3)))
    period = (t[-1] - 2 * pad) / (count + 0.3)
    if not 0.5 <= period <= 3.0:
        raise ValueError(f"jumping_jacks: {duration_s} s at {rate_hz} Hz gives {period:.2f} s per jack")
    flight, g = min(0.2 * period, 0.13), _GRAVITY_MM_S2
    contact = period / 2 - flight
    halves = (shape.hip_half_width_mm, 0.17 * shape.height_mm)  # feet apart: narrow, wide
    reach = shape.leg_length_mm(np.radians(25.0))  # soft knees at touch-down and take-off
    touch = [shape.ankle_height_mm + shape.hip_drop_mm + np.sqrt(reach**2 - (w - halves[0]) ** 2)
             for w in halves]  # pelvis heights at touch-down, legs straight down / spread  # fmt: skip
    stand = shape.standing_pelvis_z_mm
    z, half, lift = np.full_like(t, stand), np.full_like(t, halves[0]), np.zeros_like(t)
    land_v = 0.0
    for j in range(2 * count + 1):
        t0, here, there = pad + j * period / 2, j % 2, (j + 1) % 2
        on = (t >= t0) & (t < t0 + contact)
        if j == 2 * count:  # the last landing: back to standing
            z[on] = quintic(touch[0], land_v, 0.0, stand, 0.0, 0.0, (t[on] - t0) / contact, contact)
            break
        up_v = (touch[there] - touch[here]) / flight + g * flight / 2
        z0, v0 = (stand, 0.0) if j == 0 else (touch[here], land_v)
        z[on] = quintic(z0, v0, 0.0, touch[here], up_v, 0.0, (t[on] - t0) / contact, contact)
        half[on] = halves[here]
        air = (t >= t0 + contact) & (t < t0 + period / 2)
        dt = t[air] - t0 - contact
        z[air] = touch[here] + up_v * dt - g * dt**2 / 2
        lift[air] = 2 * g * flight**2 * (dt / flight) ** 2 * (1 - dt / flight) ** 2  # peak g tf^2 / 8
        half[air] = halves[here] + (halves[there] - halves[here]) * smootherstep(dt / flight)
        half[t >= t0 + period / 2] = halves[there]
        land_v = up_v - g * flight
    start = np.asarray(start_xy_mm, dtype=np.float64)
    dofs = _neutral(t, start, heading_rad, shape)
    dofs["pelvis_mm"][:, 2] = z
    arms_start = pad + contact / 2  # arms highest in the middle of the wide stance
    phase = np.clip((t - arms_start) / period, 0.0, count)
    up = (1 - np.cos(2 * np.pi * phase)) / 2
    dofs["shoulder_rad"][:, :, 0] += 0.15 * up[:, None]
    dofs["shoulder_rad"][:, :, 1] += 2.75 * up[:, None]
    dofs["elbow_rad"] += 0.15 * up[:, None]
    dofs["lumbar_rad"][:, 0] += 0.5 * (stand - z).clip(0) / shape.height_mm
    ankles = stance_ankles(np.broadcast_to(start, (len(t), 2)), np.full_like(t, heading_rad), half, shape)
    ankles[:, :, 2] += lift[:, None]
    return forward_kinematics(solve_legs(JointAngles(**dofs), ankles, shape), shape)


def squat(duration_s: float, fps: float = 30.0, *, depth_mm: float | None = None, period_s: float = 2.4,
          start_xy_mm: Sequence[float] = (0.0, 0.0), heading_rad: float = 0.0,
          shape: BodyShape | None = None) -> np.ndarray:  # fmt: skip
    """Bodyweight squats, feet hip-width apart, hips back, trunk leaning and arms raised forward.

    ``depth_mm`` is how far the pelvis drops (default 17 % of stature, knees ~95 degrees flexed);
    a whole number of squats near ``period_s`` each fills the duration (0.1 s standing at each end).
    Other arguments as :func:`walk`. Returns points (T, 17, 3) float64 mm, world frame.
    """
    shape = shape or BodyShape()
    t = _frames(duration_s, fps)
    depth = 0.17 * shape.height_mm if depth_mm is None else depth_mm
    if not 0 < depth <= 0.3 * shape.height_mm:
        raise ValueError(f"squat: depth_mm must be in (0, {0.3 * shape.height_mm:.0f}], got {depth!r}")
    pad = 0.1
    span = t[-1] - 2 * pad
    count = max(1, int(round(span / period_s)))
    down = (1 - np.cos(2 * np.pi * count * np.clip((t - pad) / span, 0.0, 1.0))) / 2
    start = np.asarray(start_xy_mm, dtype=np.float64)
    forward = np.array([-np.sin(heading_rad), np.cos(heading_rad)])
    dofs = _neutral(t, start, heading_rad, shape)
    dofs["pelvis_mm"][:, :2] -= np.outer(0.55 * depth * down, forward)
    dofs["pelvis_mm"][:, 2] -= depth * down
    dofs["pelvis_rad"][:, 1] += 0.40 * down
    dofs["lumbar_rad"][:, 0] += 0.20 * down
    dofs["thoracic_rad"][:, 0] += 0.10 * down
    dofs["neck_rad"][:, 0] -= 0.40 * down
    dofs["head_rad"][:, 0] -= 0.15 * down
    dofs["shoulder_rad"][:, :, 0] += 1.35 * down[:, None]
    ankles = stance_ankles(np.broadcast_to(start, (len(t), 2)), np.full_like(t, heading_rad),
                            shape.hip_half_width_mm, shape)  # fmt: skip
    return forward_kinematics(solve_legs(JointAngles(**dofs), ankles, shape), shape)


def _bend(dofs: dict, amount: np.ndarray, twist: np.ndarray, forward: np.ndarray, shape: BodyShape) -> None:
    """Bend forward at the hips and spine by ``amount (N,)`` in [0, 1] (1 = 70 deg of trunk flexion,
    hips back and knees soft) and turn the chest by ``twist (N,)`` rad."""
    dofs["pelvis_mm"][:, :2] -= np.outer(0.07 * shape.height_mm * amount, forward)
    dofs["pelvis_mm"][:, 2] -= 0.05 * shape.height_mm * amount
    dofs["pelvis_rad"][:, 1] += 0.65 * amount
    dofs["lumbar_rad"][:, 0] += 0.40 * amount
    dofs["thoracic_rad"][:, 0] += 0.17 * amount
    dofs["neck_rad"][:, 0] -= 0.5 * amount
    dofs["lumbar_rad"][:, 2] += 0.5 * twist
    dofs["thoracic_rad"][:, 2] += 0.5 * twist


def reach(duration_s: float, fps: float = 30.0, *,
          targets: Sequence[tuple[str, Sequence[float]]] | None = None,
          start_xy_mm: Sequence[float] = (0.0, 0.0), heading_rad: float = 0.0,
          shape: BodyShape | None = None) -> np.ndarray:  # fmt: skip
    """Reaching with one hand to each target in turn, bending at the hips for low or far ones.

    Args:
        targets: ``(side, (x, y, z))`` pairs, side ``"left"`` or ``"right"``, the target in mm in the
            person's frame (x right, y forward, z up from the floor under ``start_xy_mm``). Default:
            right hand forward and low (needs a bend), then left hand up and to the side.
        duration_s, fps, start_xy_mm, heading_rad, shape: as :func:`walk`.

    Each target gets an equal share of the time: 40 % going, 20 % holding (the wrist on the target
    when it is within reach), 40 % returning.
    Returns points (T, 17, 3) float64 mm, world frame.
    """
    shape = shape or BodyShape()
    t = _frames(duration_s, fps)
    h = shape.height_mm
    if targets is None:
        targets = (("right", (0.12 * h, 0.33 * h, 0.36 * h)), ("left", (-0.20 * h, 0.12 * h, 1.04 * h)))
    if len(targets) == 0:
        raise ValueError("reach: give at least one target")
    start = np.asarray(start_xy_mm, dtype=np.float64)
    forward, right = np.array([-np.sin(heading_rad), np.cos(heading_rad)]), right_vector(heading_rad)
    dofs = _neutral(t, start, heading_rad, shape)
    rest = {k: v[:1].copy() for k, v in dofs.items()}
    slot = (t[-1] + 1 / fps) / len(targets)
    candidates = np.linspace(0.0, 1.0, 26)
    for i, (side_name, local) in enumerate(targets):
        if side_name not in ("left", "right"):
            raise ValueError(f"reach: target {i} side must be 'left' or 'right', got {side_name!r}")
        x, y, z = np.asarray(local, dtype=np.float64)
        side = 0 if side_name == "left" else 1
        target = np.array([*(start + x * right + y * forward), z])
        twist = 0.25 if side == 1 else -0.25  # the reaching shoulder leads
        trial = {k: np.repeat(v, len(candidates), axis=0) for k, v in rest.items()}
        _bend(trial, candidates, np.full_like(candidates, twist), forward, shape)
        shoulder = forward_kinematics_frames(JointAngles(**trial), shape)[0][:, ARMS[side][0]]
        far = np.linalg.norm(shoulder - target, axis=-1) > 0.97 * (shape.upper_arm_mm + shape.forearm_mm)
        amount = candidates[np.argmin(far)] if not far.all() else 1.0
        if z > shoulder[0, 2]:  # above the shoulder: stretch up, do not bend
            amount = 0.0
        key = {k: v.copy() for k, v in rest.items()}
        _bend(key, np.array([amount]), np.array([twist]), forward, shape)
        key["shoulder_rad"][:, 1 - side] += (1.1 * amount, 0.15 * amount, 0.0)  # other arm hangs
        key = solve_arm(JointAngles(**key), side, target[None], shape).as_dict()
        tau = (t - i * slot) / slot
        weight = smootherstep(tau / 0.4) * smootherstep((1 - tau) / 0.4)
        for k in dofs:
            if k not in ("hip_rad", "knee_rad"):
                dofs[k] += np.multiply.outer(weight, (key[k] - rest[k])[0])
    ankles = stance_ankles(np.broadcast_to(start, (len(t), 2)), np.full_like(t, heading_rad),
                            shape.hip_half_width_mm, shape)  # fmt: skip
    return forward_kinematics(solve_legs(JointAngles(**dofs), ankles, shape), shape)


# ----------------------------------------------------------------------------- routines


def _heading(frame: np.ndarray) -> float:
    """Heading (rad) of one pose ``(17, 3)`` mm from its hip and shoulder lines."""
    right = frame[1] - frame[4] + frame[14] - frame[11]
    return float(np.arctan2(right[1], right[0]))


def place_after(previous: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """``segment (T, 17, 3)`` mm turned about the vertical and slid on the floor so that its first
    frame stands where, and faces the way, the pose ``previous (17, 3)`` mm does."""
    check_shape("previous", previous, "(17, 3)", np.shape(previous) == (17, 3))
    ok = np.ndim(segment) == 3 and np.shape(segment)[1:] == (17, 3)
    check_shape("segment", segment, "(T, 17, 3)", ok)
    rotation = rotation_z(_heading(previous) - _heading(segment[0]))
    pivot = np.array([*segment[0, 0, :2], 0.0])
    return (segment - pivot) @ rotation.T + np.array([*previous[0, :2], 0.0])


def compose(segments: Sequence[np.ndarray], fps: float = 30.0, transition_s: float = 0.4, *,
            align: bool = True) -> np.ndarray:  # fmt: skip
    """Motions played one after another, blended smoothly at each boundary.

    Args:
        segments: each ``(T_i, 17, 3)`` mm of one body (the bone lengths must agree).
        fps: the frame rate of the segments.
        transition_s: each boundary is blended over this long, half in each segment (the outgoing
            motion holds its last pose, the incoming one its first). Bones keep their lengths: the
            trunk is re-extended along the blended directions and each limb solved towards its
            blended end joint, so a foot that is on the floor in both motions stays on it.
        align: turn and slide each segment (:func:`place_after`) so it starts where the previous ends.

    Returns:
        points (sum T_i, 17, 3) float64 mm.
    """
    if len(segments) == 0:
        raise ValueError("compose: give at least one segment")
    placed = []
    for i, segment in enumerate(segments):
        segment = np.asarray(segment, dtype=np.float64)
        ok = segment.ndim == 3 and segment.shape[1:] == (17, 3)
        check_shape(f"segments[{i}]", segment, "(T, 17, 3)", ok)
        placed.append(place_after(placed[-1][-1], segment) if align and placed else segment)
    bones = np.array(H36M17.bones)
    lengths = [np.linalg.norm(s[0, bones[:, 1]] - s[0, bones[:, 0]], axis=-1) for s in placed]
    for i, other in enumerate(lengths[1:], start=1):
        if np.max(np.abs(other - lengths[0])) > 1.0:
            raise ValueError(f"compose: segment {i} has other bone lengths than segment 0 (another body?)")
    out = np.concatenate(placed)
    boundary = 0
    for before, after in zip(placed[:-1], placed[1:]):
        boundary += len(before)
        half = min(int(round(transition_s * fps / 2)), len(before) // 2, len(after) // 2)
        if half == 0:
            continue
        k = np.arange(-half, half)
        weight = smootherstep((k + half + 0.5) / (2 * half))[:, None, None]
        outgoing = before[np.minimum(len(before) + k, len(before) - 1)]
        incoming = after[np.maximum(k, 0)]
        out[boundary + k] = restore_bone_lengths((1 - weight) * outgoing + weight * incoming, lengths[0])
    return out


def _walk_for_distance(distance_mm: float, duration_s: float, fps: float, shape: BodyShape):
    """The speed (500-1400 mm/s) and ramp (0.3-0.9 s) of a :func:`walk` of ``duration_s`` that comes
    nearest to covering ``distance_mm``, preferring speeds near 1 m/s (a grid: the distance jumps
    with the number of steps). Returns ``(speed_mm_s, ramp_s)``."""
    best, best_cost = (1000.0, 0.6), np.inf
    for speed in np.arange(500.0, 1401.0, 20.0):
        for ramp in np.arange(0.3, 0.91, 0.05):
            miss = abs(_walk_distance_mm(duration_s, fps, speed, ramp, shape) - distance_mm)
            cost = miss + 0.02 * abs(speed - 1000.0)
            if cost < best_cost:
                best, best_cost = (float(speed), float(ramp)), cost
    return best


def demo_routine(duration_s: float = 10.0, fps: float = 30.0, seed: int = 0,
                 shape: BodyShape | None = None) -> np.ndarray:  # fmt: skip
    """A varied exercise routine near the origin for the sample take: walk in, jumping jacks, squat,
    reach, turn - repeated for longer takes (a block every 9-18 s), each later walk going from where
    the person stands to a point 0.6 m from the origin on the far side.

    The first walk starts at most 1.1 m from the origin and ends near it, every later one ends 0.6 m
    from it, so every joint stays within 1.5 m of the vertical axis through the origin. ``seed``
    draws the headings, speeds, jack rate, squat depth, reach targets and turn angles; the same seed
    gives the same routine.

    Args:
        duration_s: 8 to 600 s. fps: frame rate. shape: body sizes (default 1.75 m).

    Returns:
        points (round(duration_s * fps), 17, 3) float64 mm, world frame (Z up, floor z = 0).
    """
    if not 8.0 <= duration_s <= 600.0:
        raise ValueError(f"demo_routine: duration_s must be between 8 and 600 s, got {duration_s!r}")
    shape = shape or BodyShape()
    rng = np.random.default_rng(seed)
    height = shape.height_mm
    total = max(2, int(round(duration_s * fps)))
    blocks = max(1, int(duration_s // 9.0))
    block_s = duration_s / blocks
    walk_s = min(0.24 * block_s, 2.6)  # a longer walk would leave the volume
    block = np.concatenate([[walk_s], (block_s - walk_s) * np.array([0.25, 0.18, 0.16, 0.17]) / 0.76])
    ends = np.round(np.cumsum(np.tile(block, blocks)) / duration_s * total).astype(int)
    seconds = iter(np.diff(np.concatenate([[0], ends])) / fps)  # walk, jacks, squat, reach, turn
    shoulder_z = shape.standing_pelvis_z_mm + shape.spine_mm + shape.chest_mm - shape.shoulder_drop_mm
    shoulder_at_rest = np.array([shape.shoulder_half_width_mm, 0.0, shoulder_z])  # right, person's frame
    placed: list[np.ndarray] = []

    def add(points: np.ndarray) -> None:
        placed.append(place_after(placed[-1][-1], points) if placed else points)

    distance = 0.0  # of the next walk
    for index in range(blocks):
        duration = next(seconds)
        if index == 0:
            radius = rng.choice([-1.0, 1.0]) * rng.uniform(2500.0, 6000.0)
            path = walk(duration, fps, speed_mm_s=rng.uniform(900.0, 1150.0), turn_radius_mm=radius,
                        ramp_s=0.6, heading_rad=rng.uniform(-np.pi, np.pi), shape=shape)  # fmt: skip
            start, end = path[0, 0, :2], path[-1, 0, :2]
            length = np.linalg.norm(start - end)
            shift = -end - max(0.0, length - 1100.0) * (start - end) / max(length, 1e-9)
            placed.append(path + np.array([*shift, 0.0]))
        else:
            speed, ramp = _walk_for_distance(distance, duration, fps, shape)
            add(walk(duration, fps, speed_mm_s=speed, ramp_s=ramp, shape=shape))
        add(jumping_jacks(next(seconds), fps, rate_hz=rng.uniform(0.9, 1.1), shape=shape))
        add(squat(next(seconds), fps, depth_mm=rng.uniform(0.15, 0.19) * height, period_s=2.4, shape=shape))
        side = str(rng.choice(["left", "right"]))
        sign = 1.0 if side == "right" else -1.0
        if rng.random() < 0.5:  # low and forward: bend at the hips
            fractions = [sign * rng.uniform(0.05, 0.2), rng.uniform(0.28, 0.36), rng.uniform(0.33, 0.42)]
            target = height * np.array(fractions)
        else:  # up, forward and out, within reach of the standing shoulder
            up, out = rng.uniform(0.3, 1.0), rng.uniform(0.0, 1.0)
            direction = np.array([sign * np.sin(out) * np.cos(up), np.cos(out) * np.cos(up), np.sin(up)])
            arm = shape.upper_arm_mm + shape.forearm_mm
            target = shoulder_at_rest * [sign, 1.0, 1.0] + rng.uniform(0.8, 0.92) * arm * direction
        add(reach(next(seconds), fps, targets=[(side, tuple(target))], shape=shape))
        if index == blocks - 1:
            angle = rng.choice([-1.0, 1.0]) * rng.uniform(np.radians(70.0), np.radians(120.0))
        else:  # face the next walk's goal, 0.6 m from the origin on the far side
            here = placed[-1][-1, 0, :2]
            away = np.arctan2(-here[1], -here[0]) if np.linalg.norm(here) > 100 else rng.uniform(-np.pi, np.pi)
            away += rng.uniform(-1.0, 1.0)
            goal = 600.0 * np.array([np.cos(away), np.sin(away)])
            distance = float(np.linalg.norm(goal - here))
            facing = np.arctan2(-(goal - here)[0], (goal - here)[1])  # heading whose forward is (-sin, cos)
            angle = (facing - _heading(placed[-1][-1]) + np.pi) % (2 * np.pi) - np.pi
        add(turn(next(seconds), fps, angle_rad=angle, shape=shape))
    return compose(placed, fps, transition_s=0.4, align=False)
