"""Feet and pelvis trajectories for procedural stepping, hopping and standing on the H36M-17 body.

Used by :mod:`models.synthetic.motion`. Conventions (world Z up, mm, heading 0 faces +Y, side index
0 = left) are those of :mod:`models.synthetic.body_kinematics`. Ankle trajectories are planned on the
floor first - a planted foot does not move, a stepping foot lifts with its heel rising about the toes,
swings on a quintic and lands on its heel - and the pelvis height is then fitted so the legs can
reach them (:func:`fit_pelvis_height`); the legs are solved afterwards by inverse kinematics.
"""

from __future__ import annotations

import logging

import numpy as np

from models.synthetic.body_kinematics import LEGS, SIDE_SIGN, BodyShape, JointAngles, forward_kinematics_frames

_LOG = logging.getLogger(__name__)


def smootherstep(x) -> np.ndarray:
    """0 -> 1 with zero velocity and acceleration at both ends; clipped outside [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return x**3 * (10 - 15 * x + 6 * x**2)


def quintic(p0, v0, a0, p1, v1, a1, tau, duration):
    """Quintic Hermite interpolation over ``duration`` s.

    Args:
        p0, v0, a0, p1, v1, a1: position, velocity (per s) and acceleration (per s^2) at the start
            and the end; scalars or (D,) arrays.
        tau: (N,) normalised time in [0, 1].

    Returns:
        (N,) or (N, D) positions.
    """
    tau = np.asarray(tau)[..., None] if np.ndim(p0) else np.asarray(tau)
    t2, t3, t4, t5 = tau**2, tau**3, tau**4, tau**5
    h = duration
    return (
        (1 - 10 * t3 + 15 * t4 - 6 * t5) * p0 + (10 * t3 - 15 * t4 + 6 * t5) * p1
        + (tau - 6 * t3 + 8 * t4 - 3 * t5) * v0 * h + (-4 * t3 + 7 * t4 - 3 * t5) * v1 * h
        + (0.5 * t2 - 1.5 * t3 + 1.5 * t4 - 0.5 * t5) * a0 * h * h + (0.5 * t3 - t4 + 0.5 * t5) * a1 * h * h
    )  # fmt: skip


def right_vector(heading) -> np.ndarray:
    """(..., 2) the person's right on the floor for headings (...) rad."""
    return np.stack([np.cos(heading), np.sin(heading)], -1)


def stance_ankles(xy: np.ndarray, heading: np.ndarray, half_width_mm, shape: BodyShape) -> np.ndarray:
    """(N, 2, 3) mm flat-footed left and right ankles ``half_width_mm`` (scalar or (N,)) either side
    of floor points ``xy (N, 2)`` mm for a person facing ``heading (N,)`` rad."""
    right = right_vector(heading) * np.asarray(half_width_mm, dtype=np.float64)[..., None]
    ankles = np.empty((len(xy), 2, 3))
    for side in (0, 1):
        ankles[:, side, :2] = xy + SIDE_SIGN[side] * right
    ankles[:, :, 2] = shape.ankle_height_mm
    return ankles


def _rolled(pivot, forward, along: float, up: float, angle):
    """Ankles (N, 3) of a foot rolled by ``angle (N,)`` rad (> 0 lifts the toes) about the floor
    point ``pivot (3,)``, the flat foot's ankle being ``along`` mm ahead of it and ``up`` above."""
    angle = np.asarray(angle, dtype=np.float64)
    out = pivot + np.outer(along * np.cos(angle) - up * np.sin(angle), forward)
    out[:, 2] = along * np.sin(angle) + up * np.cos(angle)
    return out


def stepping_ankles(t, base, envelope, cadence_hz, half_width_mm, stride_mm, shape, first_lift_s):
    """Ankle trajectories of feet stepping under a moving pelvis.

    The right foot lifts at ``first_lift_s`` and every 2 steps after, the left one step later; a swing
    takes 0.8 step and lands where the pelvis will pass 0.4 step later, ``half_width_mm`` beside the
    path when ``envelope`` is 1 and under the hips when it is 0. A foot lands on its heel, toes up,
    and rolls flat over 0.2 step; it then stays put until its heel rises about the toes over the
    0.6 step before lift-off (up to 55 degrees, more for long strides). Swings shorter than 2 % of
    stature are skipped, so a foot already in place does not step.

    Args:
        t: (T,) frame times, s.
        base: ``base(times (N,)) -> (xy (N, 2) mm, heading (N,) rad)``: the pelvis path on the floor,
            defined before and after the clip too.
        envelope: ``envelope(times (N,)) -> (N,)`` in [0, 1], how much the person is stepping.
        cadence_hz: steps per second.
        half_width_mm: ankle distance from the path when stepping fully.
        stride_mm: a normal stride (two steps), the scale of heel rise and foot clearance.
        shape: body sizes.
        first_lift_s: time of the first right toe-off.

    Returns:
        (T, 2, 3) left and right ankles, world mm, never below ``shape.ankle_height_mm``.
    """
    step = 1.0 / cadence_hz
    swing_s, rise_s, roll_s = 0.8 * step, 0.6 * step, 0.2 * step
    h, toe, heel = shape.ankle_height_mm, shape.ankle_to_toe_mm, shape.ankle_to_heel_mm
    ankles = np.empty((len(t), 2, 3))

    def footprint(times, sign):
        xy, heading = base(times)
        half = shape.hip_half_width_mm + (half_width_mm - shape.hip_half_width_mm) * envelope(times)
        return xy + sign * half[:, None] * right_vector(heading), heading

    for side in (0, 1):
        sign, first = SIDE_SIGN[side], first_lift_s + (1 - side) * step
        span = np.floor((t[0] - first) / (2 * step)) - 1, np.ceil((t[-1] - first) / (2 * step)) + 1
        strides = np.arange(*span)
        lifts = first + 2 * step * strides  # covers the clip with a stride to spare
        lands = lifts + swing_s
        prints, headings = footprint(np.concatenate([lands[:1] - 2 * step, lands]) + 0.4 * step, sign)
        out = ankles[:, side]
        out[:] = (*prints[0], h)
        where, facing = prints[0], headings[0]
        for lift, land, target, target_heading in zip(lifts, lands, prints[1:], headings[1:]):
            distance = np.linalg.norm(target - where)
            if distance < 0.02 * shape.height_mm:
                continue
            size = min(1.0, distance / stride_mm)
            forward = np.array([-np.sin(facing), np.cos(facing), 0.0])
            toes = np.array([*where, 0.0]) + toe * forward
            behind = float(np.dot(base(np.array([lift]))[0][0] - where, forward[:2]))  # pelvis at lift-off
            toe_off = np.radians(55.0) * min(1.25, max(size, behind / (0.4 * stride_mm)))
            rising = (t >= lift - rise_s) & (t < lift)
            heel_up = toe_off * ((t[rising] - lift + rise_s) / rise_s) ** 2
            out[rising] = _rolled(toes, forward, -toe, h, -heel_up)
            p0 = _rolled(toes, forward, -toe, h, [-toe_off])[0]
            v0 = 2 * toe_off / rise_s * (toe * np.sin(toe_off) + h * np.cos(toe_off)) * forward
            v0[2] = 2 * toe_off / rise_s * (toe * np.cos(toe_off) - h * np.sin(toe_off))
            forward = np.array([-np.sin(target_heading), np.cos(target_heading), 0.0])
            heels = np.array([*target, 0.0]) - heel * forward
            strike = np.radians(20.0) * size
            p1, zero = _rolled(heels, forward, heel, h, [strike])[0], np.zeros(3)
            swinging = (t >= lift) & (t < land)
            tau = (t[swinging] - lift) / swing_s
            out[swinging] = quintic(p0, v0, zero, p1, zero, zero, tau, swing_s)
            clearance = shape.height_mm * (0.01 + 0.02 * size)
            out[swinging, 2] += clearance * 64 * tau**3 * (1 - tau) ** 3
            out[t >= land] = (*target, h)
            rolling = (t >= land) & (t < land + roll_s)
            toes_up = strike * (1 - smootherstep((t[rolling] - land) / roll_s))
            out[rolling] = _rolled(heels, forward, heel, h, toes_up)
            where, facing = target, target_heading
    return ankles


def _running_max_smooth(values: np.ndarray, half_width: int) -> np.ndarray:
    """A smooth upper envelope of ``values (T,)``: a running maximum over +-half_width frames, then
    a Hann-weighted mean over the same window (so the result is >= values everywhere)."""
    if half_width < 1 or not np.any(values > 0):
        return values.copy()
    padded = np.pad(values, half_width, mode="edge")
    peak = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_width + 1).max(axis=-1)
    kernel = np.hanning(2 * half_width + 3)[1:-1]
    padded = np.pad(peak, half_width, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid")


def last_move_s(first_lift_s: float, cadence_hz: float, end_s: float) -> float:
    """The latest time the pelvis may stop so that the feet, stepping from ``first_lift_s``, have
    both landed and rolled flat by ``end_s``: the last footprints are the ones the pelvis reaches
    0.4 step after a landing (see :func:`stepping_ankles`)."""
    step = 1.0 / cadence_hz
    last = np.floor((end_s - first_lift_s - 1.0 * step) / step)  # index of the last landing
    return first_lift_s + (last + 0.2) * step


def fit_pelvis_height(
    angles: JointAngles, ankles: np.ndarray, envelope: np.ndarray, bob_mm: np.ndarray, shape: BodyShape, fps: float
) -> np.ndarray:
    """Pelvis heights that let both legs reach their ankles with the knees bent >= 8 degrees.

    The height is standing - ``envelope`` x drop + ``bob_mm``, with the smallest constant drop that
    suffices where the envelope is near 1, and lowered further (smoothly) wherever that is not enough.

    Args:
        angles: T frames; the pelvis position (x, y) and orientation are used, its height is not.
        ankles: (T, 2, 3) ankle targets, world mm.
        envelope: (T,) in [0, 1], how much the person is stepping.
        bob_mm: (T,) vertical oscillation to add, mm.
        shape: body sizes. fps: frame rate (the smoothing window is 0.3 s).

    Returns:
        (T,) pelvis heights, mm.
    """
    points, _, _ = forward_kinematics_frames(angles, shape)
    longest = shape.leg_length_mm(np.radians(8.0))
    allowed = np.full(len(envelope), np.inf)
    for side, (hip, _, _) in enumerate(LEGS):
        across = np.linalg.norm(points[:, hip, :2] - ankles[:, side, :2], axis=-1)
        hip_above_pelvis = points[:, hip, 2] - points[:, 0, 2]
        reach = np.sqrt(np.maximum(longest**2 - across**2, 0.0))
        allowed = np.minimum(allowed, ankles[:, side, 2] + reach - hip_above_pelvis)
    stand = shape.standing_pelvis_z_mm
    steady = envelope > (0.95 if np.any(envelope > 0.95) else 0.5)
    drop = float(np.max((stand + bob_mm - allowed)[steady] / envelope[steady], initial=0.0))
    z = stand - envelope * drop + bob_mm
    z -= _running_max_smooth(np.maximum(z - allowed, 0.0), int(round(0.15 * fps)))
    _LOG.debug("pelvis %.1f mm lower when stepping, up to %.1f mm more", drop, np.max(stand - z - drop))
    return z


def add_gait_upper_body(dofs: dict, phase, amount, arm_swing_rad: float, lean_rad: float) -> None:
    """Add walking's pelvis rotation and roll, trunk lean and counter-rotation and arm swing to the
    joint-angle arrays ``dofs`` (``JointAngles`` fields by name, edited in place).

    Args:
        phase: (T,) stride cycles, 0 = right toe-off, 0.4 right heel strike, 0.5 left toe-off.
        amount: (T,) scale, about 0 (standing) to 1 (normal walking).
        arm_swing_rad, lean_rad: shoulder flexion amplitude and forward trunk lean at amount 1.
    """
    rotation = np.radians(5.0) * amount * np.cos(2 * np.pi * (phase - 0.4))  # right hip forward at 0.4
    roll = -np.radians(4.0) * amount * np.cos(2 * np.pi * (phase - 0.7))  # swing side drops
    dofs["pelvis_rad"][:, 0] += rotation
    dofs["pelvis_rad"][:, 2] += roll
    dofs["lumbar_rad"][:, 0] += lean_rad * amount
    dofs["lumbar_rad"][:, 1] -= roll
    dofs["lumbar_rad"][:, 2] -= 1.2 * rotation
    dofs["thoracic_rad"][:, 2] -= 0.6 * rotation
    dofs["neck_rad"][:, 2] += 0.8 * rotation
    for side, lead in ((0, 0.4), (1, 0.9)):  # each arm forward when the opposite heel strikes
        swing = np.cos(2 * np.pi * (phase - lead))
        dofs["shoulder_rad"][:, side, 0] += arm_swing_rad * amount * swing
        dofs["elbow_rad"][:, side] += amount * (0.15 + 0.12 * swing)
