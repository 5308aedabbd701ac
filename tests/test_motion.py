"""Procedural motion on the H36M-17 body (models/synthetic/motion.py, body_kinematics.py, gait.py).

Figures measured at 30 fps for the default 1.75 m body are quoted in each test's docstring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.synthetic.mocap import shared_data_dir
from calibration.errors import ShapeError
from models.skeleton import H36M17
from models.synthetic.body_kinematics import JointAngles, forward_kinematics, restore_bone_lengths, solve_legs
from models.synthetic.motion import (
    BodyShape,
    compose,
    demo_routine,
    jumping_jacks,
    place_after,
    reach,
    squat,
    turn,
    walk,
)

FPS = 30.0
BONES = np.array(H36M17.bones)
SHAPE = BodyShape()




def _bone_lengths(points: np.ndarray) -> np.ndarray:
    """(T, 16) mm."""
    return np.linalg.norm(points[:, BONES[:, 1]] - points[:, BONES[:, 0]], axis=-1)


def _heading(frame: np.ndarray) -> float:
    right = frame[1] - frame[4] + frame[14] - frame[11]
    return float(np.arctan2(right[1], right[0]))


def _knee_angle_deg(points: np.ndarray, hip: int, knee: int, ankle: int) -> np.ndarray:
    """Interior knee angle (T,): 180 = straight."""
    u, v = points[:, hip] - points[:, knee], points[:, ankle] - points[:, knee]
    cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _acceleration_m_s2(points: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(T-2, 17) finite-difference acceleration magnitudes, m/s^2."""
    return np.linalg.norm(np.diff(points, 2, axis=0), axis=-1) * fps**2 / 1000.0


MOTIONS = {
    "walk": lambda shape: walk(4.0, FPS, shape=shape),
    "walk_steady": lambda shape: walk(4.0, FPS, speed_mm_s=1300, ramp_s=0, shape=shape),
    "walk_fast": lambda shape: walk(4.0, FPS, speed_mm_s=1800, ramp_s=0, shape=shape),
    "walk_circle": lambda shape: walk(4.0, FPS, speed_mm_s=1100, turn_radius_mm=-1500, shape=shape),
    "jumping_jacks": lambda shape: jumping_jacks(3.0, FPS, shape=shape),
    "squat": lambda shape: squat(2.4, FPS, shape=shape),
    "reach": lambda shape: reach(3.0, FPS, shape=shape),
    "turn": lambda shape: turn(1.8, FPS, angle_rad=-2.5, shape=shape),
    "routine": lambda shape: demo_routine(10.0, FPS, seed=3, shape=shape),
}


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    return {name: make(SHAPE) for name, make in MOTIONS.items()}


def test_body_shape_is_anthropometric_and_scales():
    """Default 1.75 m body: thigh 429, shank 431, upper arm 301, forearm 256 mm; the neutral stance puts
    the head joint at 0.955 x stature (1672 mm) with the ankles 70 mm above the floor."""
    lengths = dict(zip(("hip", "thigh", "shank"), SHAPE.bone_lengths_mm[:3]))
    assert 400 < lengths["thigh"] < 460 and 400 < lengths["shank"] < 460
    assert 115 < lengths["hip"] < 145
    assert 0.55 < SHAPE.bone_lengths_mm[-2:].sum() / (lengths["thigh"] + lengths["shank"]) < 0.75  # arm / leg
    small = BodyShape.for_height(1500.0)
    np.testing.assert_allclose(small.bone_lengths_mm, SHAPE.bone_lengths_mm * 1500 / 1750, rtol=1e-12)
    head = squat(1.0, FPS)[0, 10, 2]  # the first frame of a squat is the neutral stance
    assert abs(head / SHAPE.height_mm - 0.955) < 0.01
    with pytest.raises(ValueError, match="thigh_mm"):
        BodyShape(thigh_mm=-1.0)


def test_bone_scale_matches_cmu_capture():
    """Legs (thigh + shank) within 5 % of the CMU capture's medians (836 and 840 mm vs our 859 mm: +2.8 and
    +2.3 %), upper arms within 10 % of the left/right mean (279 vs 301 mm: +7.8 %). CMU's forearms
    (190 mm) are shorter than anthropometry's (256 mm)."""
    path = shared_data_dir() / "cmu_mocap" / "cmu_mocap.npz"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    data = np.load(path)
    medians = np.median([np.median(_bone_lengths(data[f"{name}/h36m17"].astype(np.float64)), axis=0)
                         for name in data["sequences"]], axis=0)  # fmt: skip
    ours = SHAPE.bone_lengths_mm
    assert abs((ours[1] + ours[2]) / (medians[1] + medians[2]) - 1) < 0.05
    assert abs((ours[4] + ours[5]) / (medians[4] + medians[5]) - 1) < 0.05
    assert abs(2 * ours[11] / (medians[11] + medians[14]) - 1) < 0.10


@pytest.mark.parametrize("height_mm", [1750.0, 1580.0])
def test_bone_lengths_constant_and_equal_to_shape(height_mm):
    """Every motion and the composed routine keep every bone at its BodyShape length; measured error
    below 1e-12 mm (the ceiling is 1e-6 mm)."""
    shape = BodyShape.for_height(height_mm)
    for name, make in MOTIONS.items():
        points = make(shape)
        assert points.dtype == np.float64 and points.shape[1:] == (17, 3), name
        error = np.abs(_bone_lengths(points) - shape.bone_lengths_mm).max()
        assert error < 1e-6, f"{name}: bone length error {error:.2e} mm"


def test_left_and_right_bones_match(clips):
    """Mirror bones (hip, thigh, shank, clavicle, upper arm, forearm) have equal lengths, to 1e-9 mm."""
    lengths = SHAPE.bone_lengths_mm
    np.testing.assert_allclose(lengths[0:3], lengths[3:6], atol=1e-12)
    np.testing.assert_allclose(lengths[10:13], lengths[13:16], atol=1e-12)
    for name, points in clips.items():
        measured = _bone_lengths(points)
        assert np.abs(measured[:, 0:3] - measured[:, 3:6]).max() < 1e-9, name
        assert np.abs(measured[:, 10:13] - measured[:, 13:16]).max() < 1e-9, name


def test_feet_on_or_above_the_floor(clips):
    """Ankles never go below ankle height (measured minimum 70.000 mm = ankle height, every motion) and
    no joint goes below the floor."""
    for name, points in clips.items():
        assert points[:, [3, 6], 2].min() >= SHAPE.ankle_height_mm - 1e-6, name
        assert points[..., 2].min() >= 0.0, name


def test_feet_do_not_slide(clips):
    """While an ankle is at floor height (within 1 mm) it moves < 50 mm/s horizontally (measured at most
    ~30 mm/s, the ends of the heel and toe rolls; a planted foot does not move at all)."""
    for name, points in clips.items():
        ankles = points[:, [3, 6]]
        low = ankles[..., 2] < SHAPE.ankle_height_mm + 1.0
        both = low[1:] & low[:-1]
        speed = np.linalg.norm(np.diff(ankles[..., :2], axis=0), axis=-1) * FPS
        assert speed[both].max(initial=0.0) < 50.0, f"{name}: {speed[both].max():.1f} mm/s"


@pytest.mark.parametrize("speed_mm_s", [900.0, 1300.0, 1700.0])
def test_walk_moves_forward_at_the_requested_speed(speed_mm_s):
    """A steady straight walk covers speed x time (measured within 0.01 %; the ceiling is 10 %) in the
    direction it faces; a ramped walk cruises at the speed (1200 mm/s requested: 1202 measured) and
    ends standing still."""
    heading = 0.7
    points = walk(6.0, FPS, speed_mm_s=speed_mm_s, ramp_s=0, heading_rad=heading)
    travel = points[-1, 0, :2] - points[0, 0, :2]
    speed = np.linalg.norm(travel) / ((len(points) - 1) / FPS)
    assert abs(speed / speed_mm_s - 1) < 0.10
    facing = np.array([-np.sin(heading), np.cos(heading)])
    assert np.dot(travel, facing) / np.linalg.norm(travel) > 0.999
    assert abs(_heading(points[0]) - heading) < np.radians(8)  # pelvis rotation swings it a little

    ramped = walk(6.0, FPS, speed_mm_s=1200.0)
    pelvis_speed = np.linalg.norm(np.diff(ramped[:, 0, :2], axis=0), axis=-1) * FPS
    assert abs(np.mean(pelvis_speed[70:110]) / 1200.0 - 1) < 0.10
    assert np.linalg.norm(ramped[-1] - ramped[-2], axis=-1).max() < 1e-6  # at rest at the end


def test_walk_in_a_circle():
    """Turning left with R = 2 m keeps the pelvis 1982-2018 mm from the centre (the lateral sway)."""
    points = walk(6.0, FPS, speed_mm_s=1100, turn_radius_mm=2000, ramp_s=0)
    distance = np.linalg.norm(points[:, 0, :2] - np.array([-2000.0, 0.0]), axis=-1)
    assert np.abs(distance - 2000).max() < 40


def test_walking_gait_is_plausible(clips):
    """Steady 1.3 m/s walking: knee flexion 8-75 degrees (peak in swing), pelvis 965-1007 mm (42 mm of
    bob, 29 mm below the relaxed stance on average), each wrist swinging opposite its ankle (correlation
    of their fore-aft offsets -0.96)."""
    points = clips["walk_steady"]
    flexion = 180 - _knee_angle_deg(points, 1, 2, 3)
    assert 50 < flexion.max() < 85 and flexion.min() < 15
    bob = np.ptp(points[:, 0, 2])
    assert 25 < bob < 60
    assert 0 < SHAPE.standing_pelvis_z_mm - points[:, 0, 2].mean() < 60
    forward = np.array([0.0, 1.0])
    right_ankle = (points[:, 3, :2] - points[:, 0, :2]) @ forward
    right_wrist = (points[:, 16, :2] - points[:, 0, :2]) @ forward
    assert np.corrcoef(right_ankle, right_wrist)[0, 1] < -0.5  # counter-phase


def test_motion_is_smooth(clips):
    """Joint accelerations (second differences at 30 fps) stay below 80 m/s^2, about 8 g - what a foot or
    hand reaches in brisk exercise. Measured maxima: walking 34-36 (1.8 m/s: 57; at 60 fps: 34),
    jumping jacks 64 (the knees on landing), reach 39, squat 6, turn 16, routine 59 m/s^2."""
    for name, points in clips.items():
        peak = _acceleration_m_s2(points).max()
        assert peak < 80.0, f"{name}: {peak:.1f} m/s^2"
    assert _acceleration_m_s2(walk(3.0, 60.0, ramp_s=0), fps=60.0).max() < 80.0


def test_jumping_jack_arms_go_above_the_head(clips):
    """With the feet wide (595 mm apart) both wrists rise 229 mm above the head joint; the feet leave the
    floor between stances (ankles up to 91 mm, 21 mm above standing)."""
    points = clips["jumping_jacks"]
    wrists_above_head = points[:, [13, 16], 2].min(axis=1) - points[:, 10, 2]
    assert wrists_above_head.max() > 100.0
    top = int(np.argmax(wrists_above_head))
    assert np.linalg.norm(points[top, 3] - points[top, 6]) > 0.3 * SHAPE.height_mm
    assert points[:, 3, 2].max() > SHAPE.ankle_height_mm + 10


def test_squat_bends_the_knees(clips):
    """At the bottom the interior knee angle is 89 degrees (< 110), the pelvis 297 mm lower."""
    points = clips["squat"]
    assert _knee_angle_deg(points, 1, 2, 3).min() < 110
    assert _knee_angle_deg(points, 4, 5, 6).min() < 110
    assert SHAPE.standing_pelvis_z_mm - points[:, 0, 2].min() > 200


def test_reach_touches_targets_and_bends_at_the_hips():
    """A low target (0.6 m high, 0.5 m ahead) is touched exactly (error < 1e-9 mm) with the trunk 50
    degrees from vertical; a high one is reached standing upright."""
    low = np.array([200.0, 500.0, 700.0])
    points = reach(1.5, FPS, targets=[("right", tuple(low))])
    assert np.linalg.norm(points[:, 16] - low, axis=-1).min() < 1e-3
    trunk = points[:, 8] - points[:, 0]
    lean = np.degrees(np.arccos(trunk[:, 2] / np.linalg.norm(trunk, axis=-1)))
    assert lean.max() > 30
    high = np.array([-300.0, 200.0, 1800.0])
    points = reach(1.5, FPS, targets=[("left", tuple(high))], start_xy_mm=(0.0, 0.0))
    assert np.linalg.norm(points[:, 13] - high, axis=-1).min() < 1e-3
    with pytest.raises(ValueError, match="side"):
        reach(1.5, FPS, targets=[("middle", (0.0, 500.0, 1000.0))])


def test_turn_in_place():
    """Turning by -2.5 rad ends facing that way (to within 2 degrees) with the pelvis where it started."""
    points = turn(1.8, FPS, angle_rad=-2.5, start_xy_mm=(300.0, -200.0), heading_rad=0.4)
    change = (_heading(points[-1]) - _heading(points[0]) + np.pi) % (2 * np.pi) - np.pi
    assert abs(change + 2.5) < np.radians(2)
    assert np.linalg.norm(points[:, 0, :2] - [300.0, -200.0], axis=-1).max() < 1.0


def test_compose_aligns_and_blends():
    """Composed segments follow on where and as the previous one ends and keep the total length; around
    the joins no joint moves more than 60 mm a frame (measured 38 and 32 mm; a swinging foot in the walk
    moves up to 160 mm a frame)."""
    segments = [walk(3.0, FPS), jumping_jacks(2.0, FPS), squat(2.0, FPS)]
    points = compose(segments, FPS, transition_s=0.4)
    assert len(points) == sum(len(s) for s in segments)
    step = np.linalg.norm(np.diff(points, axis=0), axis=-1).max(axis=1)
    for join in np.cumsum([len(s) for s in segments[:-1]]):
        assert step[join - 8 : join + 8].max() < 60.0
    assert np.abs(_bone_lengths(points) - SHAPE.bone_lengths_mm).max() < 1e-6
    # the jacks start where the walk stopped, facing the same way
    boundary = len(segments[0])
    assert np.linalg.norm(points[boundary, 0, :2] - points[boundary - 1, 0, :2]) < 10.0
    assert abs(_heading(points[boundary]) - _heading(segments[0][-1])) < np.radians(2)
    with pytest.raises(ShapeError):
        compose([np.zeros((10, 16, 3))], FPS)
    with pytest.raises(ValueError, match="bone lengths"):
        compose([segments[1], squat(2.0, FPS, shape=BodyShape.for_height(1600.0))], FPS)


def test_place_after_turns_and_slides():
    """A segment placed after a pose starts at its floor position and heading."""
    previous = walk(2.0, FPS, heading_rad=1.0, start_xy_mm=(500.0, 400.0))[-1]
    placed = place_after(previous, squat(1.0, FPS))
    np.testing.assert_allclose(placed[0, 0, :2], previous[0, :2], atol=1e-9)
    assert abs(_heading(placed[0]) - _heading(previous)) < 1e-9


def test_routine_stays_in_the_capture_volume():
    """The 10 s routine (300 frames) keeps every joint within 1.5 m of the vertical through the origin
    (measured at most 0.92 m over 10 seeds) and under 2.3 m high; so does a 30 s routine of three
    blocks (longer ones measured at most 1.31 m, up to 120 s)."""
    for seed in range(4):
        points = demo_routine(10.0, FPS, seed=seed)
        assert points.shape == (300, 17, 3)
        assert np.linalg.norm(points[..., :2], axis=-1).max() < 1500.0
        assert points[..., 2].max() < 2300.0
    long = demo_routine(30.0, FPS, seed=1)
    assert long.shape == (900, 17, 3)
    assert np.linalg.norm(long[..., :2], axis=-1).max() < 1500.0


def test_routine_contains_each_motion(clips):
    """The routine walks in (the pelvis travels 0.84 m in the first 2.2 s), jumps with the hands above the
    head, squats (pelvis > 200 mm down) and turns (83 degrees in the last 1.5 s for seed 3)."""
    points = clips["routine"]
    first_second = points[: int(2.2 * FPS), 0, :2]
    assert np.linalg.norm(first_second[-1] - first_second[0]) > 600
    assert (points[:, [13, 16], 2].min(axis=1) - points[:, 10, 2]).max() > 100
    assert SHAPE.standing_pelvis_z_mm - points[:, 0, 2].min() > 200
    tail = points[-int(1.5 * FPS) :]
    change = (_heading(tail[-1]) - _heading(tail[0]) + np.pi) % (2 * np.pi) - np.pi
    assert abs(change) > np.radians(45)


def test_routine_is_deterministic_by_seed():
    """The same seed gives the same frames; another seed gives another routine."""
    np.testing.assert_array_equal(demo_routine(10.0, FPS, seed=7), demo_routine(10.0, FPS, seed=7))
    assert np.abs(demo_routine(10.0, FPS, seed=7) - demo_routine(10.0, FPS, seed=8)).max() > 100.0
    with pytest.raises(ValueError, match="duration_s"):
        demo_routine(2.0, FPS)


def test_joint_angle_conventions():
    """Zero angles: a person facing +Y with their right at +X; hip flexion swings the knee forward, a
    quarter-turn yaw makes them face -X, and mirrored angles give a mirrored pose."""
    angles = JointAngles.zeros(1).as_dict()
    angles["pelvis_mm"][:] = (0.0, 0.0, 1000.0)
    rest = forward_kinematics(JointAngles(**angles), SHAPE)[0]
    assert rest[1, 0] > 0 > rest[4, 0] and rest[14, 0] > 0 > rest[11, 0]  # right hip and shoulder at +X
    assert rest[10, 2] > rest[8, 2] > rest[0, 2] > rest[2, 2]
    flexed = {k: v.copy() for k, v in angles.items()}
    flexed["hip_rad"][:, 1, 0] = np.pi / 2
    assert forward_kinematics(JointAngles(**flexed), SHAPE)[0, 2, 1] > 400  # right knee forward
    flexed["shoulder_rad"][:, :, 1] = [0.4, 0.4]  # both arms abducted alike
    flexed["hip_rad"][:, 0, 0] = np.pi / 2
    pose = forward_kinematics(JointAngles(**flexed), SHAPE)[0]
    mirrored = pose[H36M17.flip_permutation] * [-1.0, 1.0, 1.0]
    np.testing.assert_allclose(pose, mirrored, atol=1e-9)
    turned = {k: v.copy() for k, v in angles.items()}
    turned["pelvis_rad"][:, 0] = np.pi / 2
    facing = forward_kinematics(JointAngles(**turned), SHAPE)[0]
    assert facing[1, 1] > 0  # the right hip is now at +Y: the person faces -X
    with pytest.raises(ShapeError):
        JointAngles(**{**angles, "knee_rad": np.zeros((1, 3))})


def test_leg_inverse_kinematics_reaches_targets():
    """Random ankle targets below the hips (within 25 degrees of vertical, 70-98 % of the leg's reach, the
    pelvis within 9 degrees of upright) are met to 1e-9 mm (measured ~1e-13), as are all the ankle
    targets of the motions; one out of reach gets a straight leg pointing at it."""
    rng = np.random.default_rng(0)
    num = 200
    angles = JointAngles.zeros(num).as_dict()
    angles["pelvis_mm"][:] = (0.0, 0.0, 950.0)
    angles["pelvis_rad"][:] = rng.uniform(-0.15, 0.15, (num, 3))  # pelvis near upright
    hips = forward_kinematics(JointAngles(**angles), SHAPE)[:, [4, 1]]
    polar, azimuth = np.radians(25) * np.sqrt(rng.random((num, 2))), rng.uniform(-np.pi, np.pi, (num, 2))
    down = np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), -np.cos(polar)], -1)
    reach = rng.uniform(0.7, 0.98, (num, 2, 1)) * (SHAPE.thigh_mm + SHAPE.shank_mm)
    targets = hips + reach * down
    solved = forward_kinematics(solve_legs(JointAngles(**angles), targets, SHAPE), SHAPE)
    np.testing.assert_allclose(solved[:, [6, 3]], targets, atol=1e-9)
    far = hips + 2000.0 * down
    straight = forward_kinematics(solve_legs(JointAngles(**angles), far, SHAPE), SHAPE)
    leg = np.linalg.norm(straight[:, 3] - hips[:, 1], axis=-1)
    np.testing.assert_allclose(leg, SHAPE.thigh_mm + SHAPE.shank_mm)


def test_restore_bone_lengths_after_averaging():
    """Averaging two poses shortens bones; restoring sets them back (to 1e-9 mm) and keeps the ankles."""
    points = walk(2.0, FPS, ramp_s=0)
    mean = (points[:-10] + points[10:]) / 2
    assert np.abs(_bone_lengths(mean) - SHAPE.bone_lengths_mm).max() > 1.0
    fixed = restore_bone_lengths(mean, SHAPE.bone_lengths_mm)
    assert np.abs(_bone_lengths(fixed) - SHAPE.bone_lengths_mm).max() < 1e-9
    reachable = np.linalg.norm(mean[:, 3] - fixed[:, 1], axis=-1) < SHAPE.thigh_mm + SHAPE.shank_mm
    np.testing.assert_allclose(fixed[reachable, 3], mean[reachable, 3], atol=1e-6)
