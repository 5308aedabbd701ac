"""Calibration solvers against a known truth: intrinsics, extrinsics with bundle adjustment for 2 to
8 cameras, sync-shift detection, the quality report, the command on rendered videos, and the errors
for bad input (no board, wrong board, cameras that share no view)."""

from __future__ import annotations

import argparse
from dataclasses import replace

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from calibration import CalibrationError, Camera, CrossviewError, Rig, load_rig, look_at
from calibration.board_synthesis import project_board, random_board_poses, render_board_view
from calibration.boards import Board, save_board
from calibration.extrinsics import calibrate_extrinsics
from calibration.intrinsics import calibrate_intrinsics, coverage_cells, principal_point_constrained, select_views
from calibration.quality import assess_calibration
from calibration.sync_check import estimate_frame_shifts, shift_frames
from calibration.video_views import collect_board_views, find_videos

BOARD = Board("charuco", 7, 5, 60.0, dictionary="DICT_4X4_50")
FLIP = np.diag([1.0, -1.0, -1.0])


def ring_rig(num_cameras: int, *, distorted: bool = True) -> Rig:
    """Cameras on a 2.5 m circle, 1.8 m up, looking at the middle of the floor; odd ones with distortion."""
    cameras = []
    for i in range(num_cameras):
        angle = 2 * np.pi * i / num_cameras
        camera = look_at(f"cam{i}", [2500 * np.cos(angle), 2500 * np.sin(angle), 1800], [0, 0, 700],
                         width=1280, height=720, focal_px=900 + 40 * i)
        if distorted and i % 2:
            camera = replace(camera, dist=np.array([-0.2, 0.05, 0.001, -0.001, 0.0]))
        cameras.append(camera)
    return Rig(tuple(cameras))


def truth_in_board_frame(rig: Rig, R_board: np.ndarray, t_board: np.ndarray) -> list[Camera]:
    """The true cameras in the world the calibration defines: the origin board, Z flipped up."""
    cameras = []
    for camera in rig:
        R = camera.R @ R_board @ FLIP
        t = camera.R @ t_board + camera.t
        cameras.append(replace(camera, R=R, t=t))
    return cameras


def pose_errors(found: Rig, truth: list[Camera]) -> tuple[float, float]:
    """Largest camera-centre distance (mm) and orientation difference (degrees)."""
    centre = max(np.linalg.norm(a.center - b.center) for a, b in zip(found, truth))
    angle = max(np.degrees(Rotation.from_matrix(a.R @ b.R.T).magnitude()) for a, b in zip(found, truth))
    return float(centre), float(angle)


def views_covering(camera: Camera, rng: np.random.Generator, count: int, *, spread=(0.1, 0.9),
                   depth_mm=(700, 1300)) -> tuple[np.ndarray, np.ndarray]:
    """Board poses (board -> world) in front of ``camera``, their centres spread over the ``spread``
    fraction of its image, tilted up to 35 degrees."""
    R_list, t_list = [], []
    for _ in range(count):
        depth = rng.uniform(*depth_mm)
        u, v = rng.uniform(*spread) * camera.width, rng.uniform(*spread) * camera.height
        centre_cam = depth * np.linalg.solve(camera.K, [u, v, 1.0])
        R_cam = Rotation.from_rotvec(np.append(rng.uniform(-0.6, 0.6, 2), rng.uniform(-0.3, 0.3))).as_matrix()
        t_cam = centre_cam - R_cam @ np.array([BOARD.size_mm[0] / 2, BOARD.size_mm[1] / 2, 0.0])
        R_list.append(camera.R.T @ R_cam)
        t_list.append(camera.R.T @ (t_cam - camera.t))
    return np.array(R_list), np.array(t_list)


# ------------------------------------------------------------------------------------------------
# Intrinsics
@pytest.mark.parametrize(
    "model, dist",
    [("pinhole", [-0.25, 0.08, 0.001, -0.0015, -0.01]), ("fisheye", [0.05, -0.02, 0.01, -0.003])],
)
def test_intrinsics_recovered(model, dist):
    """0.2 px noise, 30 views. Measured: focal within 0.04 %, principal point within 2.0 px (pinhole)
    and 1.7 px (fisheye); the pixel map across the field of view within 2.8 px and 2.0 px, mostly
    the principal-point shift (which a small camera rotation absorbs in a rig)."""
    rng = np.random.default_rng(1)
    truth = Camera("cam", 1280, 720, K=[[950, 0, 650], [0, 945, 350], [0, 0, 1]], dist=dist, model=model)
    R, t = views_covering(truth, rng, 30)
    corners = project_board(Rig((truth,)), BOARD, R, t)[0]  # (F, N, 2)
    corners += rng.normal(0, 0.2, corners.shape)
    corners[3] += rng.normal(0, 4.0, corners[3].shape)  # one view with gross errors (misdetections): dropped
    result = calibrate_intrinsics(corners, BOARD, name="cam", width=1280, height=720, model=model)
    assert not result.used[3]
    assert result.rms_px < 0.35
    K = result.camera.K
    assert abs(K[0, 0] / 950 - 1) < 0.005 and abs(K[1, 1] / 945 - 1) < 0.005
    assert np.abs(K[:2, 2] - [650, 350]).max() < 3.0
    grid = np.stack(np.meshgrid(np.linspace(-0.6, 0.6, 9), np.linspace(-0.35, 0.35, 7)), -1).reshape(-1, 2)
    rays = np.concatenate([grid, np.ones((len(grid), 1))], axis=1) * 1000.0  # points across the field of view
    assert np.abs(result.camera.project(rays) - truth.project(rays)).max() < 3.5


def test_view_selection_covers_the_image():
    rng = np.random.default_rng(2)
    camera = Camera("cam", 1280, 720, K=[[900, 0, 640], [0, 900, 360], [0, 0, 1]])
    R, t = views_covering(camera, rng, 60)
    corners = project_board(Rig((camera,)), BOARD, R, t)[0]
    chosen = select_views(corners, 1280, 720, max_views=12)
    assert len(chosen) == 12
    first12 = coverage_cells(corners[:12], 1280, 720).mean()
    assert coverage_cells(corners[chosen], 1280, 720).mean() > first12


def test_principal_point_held_when_the_board_stays_mid_image():
    """Boards only mid-image (10 % of the grid covered): ``auto`` holds the principal point at the
    image centre ((W - 1) / 2, (H - 1) / 2); views across the image (96 %) leave it fitted. Measured
    (truth 10 px from the centre): mid-image views fitted freely put it 29 px off, held 10 px off, RMS
    0.27 px either way; covering views fit it within 0.7 px."""
    rng = np.random.default_rng(8)
    truth = Camera("cam", 1280, 720, K=[[950, 0, 650], [0, 950, 350], [0, 0, 1]])
    R, t = views_covering(truth, rng, 30)
    corners = project_board(Rig((truth,)), BOARD, R, t)[0] + rng.normal(0, 0.2, (30, BOARD.corner_count, 2))
    assert principal_point_constrained(corners, 1280, 720)
    R, t = views_covering(truth, rng, 30, spread=(0.42, 0.58), depth_mm=(2000, 2600))
    mid_views = project_board(Rig((truth,)), BOARD, R, t)[0] + rng.normal(0, 0.2, (30, BOARD.corner_count, 2))
    assert not principal_point_constrained(mid_views, 1280, 720)
    held = calibrate_intrinsics(mid_views, BOARD, name="cam", width=1280, height=720, principal_point="auto")
    assert held.principal_point_fixed
    np.testing.assert_allclose(held.camera.K[:2, 2], [639.5, 359.5])
    assert held.rms_px < 0.4
    fitted = calibrate_intrinsics(corners, BOARD, name="cam", width=1280, height=720, principal_point="auto")
    assert not fitted.principal_point_fixed and np.abs(fitted.camera.K[:2, 2] - [650, 350]).max() < 3.0
    with pytest.raises(CalibrationError, match="principal_point must be one of"):
        calibrate_intrinsics(corners, BOARD, name="cam", width=1280, height=720, principal_point="middle")


def test_too_few_views_is_an_error():
    corners = np.full((10, BOARD.corner_count, 2), np.nan)
    with pytest.raises(CalibrationError, match="cam.*only 0 frame"):
        calibrate_intrinsics(corners, BOARD, name="cam", width=640, height=480)


# ------------------------------------------------------------------------------------------------
# Extrinsics and bundle adjustment
def relative_pose_errors(found: Rig, truth: Rig) -> tuple[float, float]:
    """Largest error over camera pairs of the relative pose: translation (mm), rotation (degrees)."""
    worst_t, worst_r = 0.0, 0.0
    for i in range(len(truth)):
        for j in range(i + 1, len(truth)):
            R_a, t_a = found[i].relative_to(found[j])
            R_b, t_b = truth[i].relative_to(truth[j])
            worst_t = max(worst_t, float(np.linalg.norm(t_a - t_b)))
            worst_r = max(worst_r, float(np.degrees(Rotation.from_matrix(R_a @ R_b.T).magnitude())))
    return worst_t, worst_r


@pytest.mark.parametrize("num_cameras, frames", [(2, 40), (3, 40), (5, 40), (8, 30)])
def test_extrinsics_recovered(num_cameras, frames):
    """0.3 px noise, odd cameras distorted. Measured: camera-to-camera poses within 1.0-1.6 mm and
    0.017-0.029 deg; the world frame (one noisy origin board) within 1.4-11.1 mm and 0.03-0.24 deg;
    RMS 0.41-0.42 px."""
    rng = np.random.default_rng(num_cameras)
    rig = ring_rig(num_cameras)
    R, t = random_board_poses(rng, frames, center_mm=(0, 0, 700), spread_mm=400)
    corners = project_board(rig, BOARD, R, t) + rng.normal(0, 0.3, (num_cameras, frames, BOARD.corner_count, 2))
    result = calibrate_extrinsics(list(rig), corners, BOARD)
    relative_mm, relative_deg = relative_pose_errors(result.rig, rig)
    assert relative_mm < 3.0 and relative_deg < 0.1
    truth = truth_in_board_frame(rig, R[result.origin_frame], t[result.origin_frame])
    centre, angle = pose_errors(result.rig, truth)
    assert centre < 20.0 and angle < 0.5
    assert result.rms_px < 0.5
    assert np.all(result.rig.centers[:, 2] > 0)  # Z up: the cameras are above the (tilted) origin board
    origin_corners = BOARD.object_points() @ result.board_R[result.origin_frame].T + result.board_t[result.origin_frame]
    assert np.abs(origin_corners).max(axis=0)[2] < 1e-6  # the origin board lies in Z = 0
    quality = assess_calibration(result, corners, BOARD)
    assert all(q.rms_px < 0.5 and q.error_mm < 1.5 for q in quality.cameras)
    assert len(result.tree) == num_cameras - 1


def test_refining_intrinsics_repairs_wrong_focal_lengths():
    """Intrinsics off by 2 % in focal length and 6-8 px in principal point. Measured: focal lengths
    back within 0.18-0.42 %, camera-to-camera poses within 28 mm / 0.53 deg (63 mm / 1.15 deg
    with the wrong intrinsics kept fixed)."""
    rng = np.random.default_rng(11)
    rig = ring_rig(4)
    R, t = random_board_poses(rng, 40, center_mm=(0, 0, 700), spread_mm=500)
    corners = project_board(rig, BOARD, R, t) + rng.normal(0, 0.3, (4, 40, BOARD.corner_count, 2))
    wrong = [replace(c, K=c.K * [[1.02, 1, 1], [1, 0.985, 1], [1, 1, 1]] + [[0, 0, 8], [0, 0, -6], [0, 0, 0]]) for c in rig]
    refined = calibrate_extrinsics(wrong, corners, BOARD, refine_intrinsics=True)
    fixed = calibrate_extrinsics(wrong, corners, BOARD)
    for camera, true in zip(refined.rig, rig):
        assert np.abs(np.diag(camera.K)[:2] / np.diag(true.K)[:2] - 1).max() < 0.008
    assert refined.rms_px < 0.45 < fixed.rms_px
    assert relative_pose_errors(refined.rig, rig)[0] < min(40.0, relative_pose_errors(fixed.rig, rig)[0])


def test_refining_intrinsics_can_hold_some_fixed():
    """``fixed_intrinsics`` keeps the named intrinsics exactly while the others are refined."""
    rng = np.random.default_rng(12)
    rig = ring_rig(3, distorted=False)
    R, t = random_board_poses(rng, 25, center_mm=(0, 0, 700), spread_mm=400)
    corners = project_board(rig, BOARD, R, t) + rng.normal(0, 0.3, (3, 25, BOARD.corner_count, 2))
    wrong = [replace(c, K=c.K * [[1.02, 1, 1], [1, 1.02, 1], [1, 1, 1]] + [[0, 0, 8], [0, 0, -6], [0, 0, 0]]) for c in rig]
    result = calibrate_extrinsics(wrong, corners, BOARD, refine_intrinsics=True, fixed_intrinsics=("cx", "cy"))
    for camera, start, true in zip(result.rig, wrong, rig):
        np.testing.assert_array_equal(camera.K[:2, 2], start.K[:2, 2])
        assert abs(camera.K[0, 0] / true.K[0, 0] - 1) < abs(start.K[0, 0] / true.K[0, 0] - 1)
    with pytest.raises(CalibrationError, match="unknown intrinsic"):
        calibrate_extrinsics(wrong, corners, BOARD, refine_intrinsics=True, fixed_intrinsics=("skew",))


def test_origin_frame_and_mirror_ambiguity():
    """A chosen origin frame defines the world; cameras end up above it even when the board is seen
    from below its own z axis."""
    rng = np.random.default_rng(7)
    rig = ring_rig(3, distorted=False)
    R, t = random_board_poses(rng, 30, center_mm=(0, 0, 700), spread_mm=400)
    corners = project_board(rig, BOARD, R, t) + rng.normal(0, 0.2, (3, 30, BOARD.corner_count, 2))
    seen_by_all = np.flatnonzero((np.isfinite(corners[..., 0]).sum(axis=2) >= 6).all(axis=0))
    origin = int(seen_by_all[-1])
    result = calibrate_extrinsics(list(rig), corners, BOARD, origin_frame=origin)
    assert result.origin_frame == origin
    centre, angle = pose_errors(result.rig, truth_in_board_frame(rig, R[origin], t[origin]))
    assert centre < 8.0 and angle < 0.3
    assert np.all(result.rig.centers[:, 2] > 0)
    with pytest.raises(CalibrationError, match="origin frame"):
        calibrate_extrinsics(list(rig), corners, BOARD, origin_frame=10_000)


def test_cameras_sharing_no_view_are_an_error():
    rng = np.random.default_rng(3)
    rig = ring_rig(4, distorted=False)
    R, t = random_board_poses(rng, 20, center_mm=(0, 0, 700), spread_mm=300)
    corners = project_board(rig, BOARD, R, t)
    corners[:2, 10:] = np.nan  # cameras 0, 1 see frames 0-9, cameras 2, 3 frames 10-19
    corners[2:, :10] = np.nan
    with pytest.raises(CalibrationError, match=r"groups \{cam0, cam1\}; \{cam2, cam3\}"):
        calibrate_extrinsics(list(rig), corners, BOARD)


def test_sync_shift_is_found():
    """A board moving ~25 mm per frame; camera 2's video one frame late."""
    rng = np.random.default_rng(4)
    rig = ring_rig(4, distorted=False)
    frames = 40
    R, _ = random_board_poses(rng, frames, center_mm=(0, 0, 700), spread_mm=0, tilt_deg=25)
    s = np.linspace(0, 2 * np.pi, frames)
    t = np.stack([400 * np.cos(s), 400 * np.sin(s), 700 + 150 * np.sin(2 * s)], axis=1)
    corners = project_board(rig, BOARD, R, t) + rng.normal(0, 0.2, (4, frames, BOARD.corner_count, 2))
    corners[2] = shift_frames(corners[2], -1)
    shifts = estimate_frame_shifts(list(rig), corners, BOARD)
    np.testing.assert_array_equal(shifts, [0, 0, 1, 0])


# ------------------------------------------------------------------------------------------------
# Videos, the command, bad input
BIG_BOARD = Board("charuco", 8, 6, 80.0, dictionary="DICT_4X4_50")


def write_videos(folder, rig: Rig, board: Board, R, t, *, blank=False, seen=None):
    """Rendered board videos; ``blank`` frames everywhere, or where ``seen(camera index, frame)`` is False."""
    folder.mkdir(parents=True, exist_ok=True)
    for c, camera in enumerate(rig):
        writer = cv2.VideoWriter(str(folder / f"{camera.name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                                 (camera.width, camera.height))
        for f in range(len(R)):
            hidden = blank or (seen is not None and not seen(c, f))
            image = np.full((camera.height, camera.width), 128, np.uint8) if hidden else render_board_view(
                camera, board, R[f], t[f], pixels_per_mm=1.5)
            writer.write(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
        writer.release()
    return folder


def small_rig() -> Rig:
    cameras = []
    for i, angle in enumerate((0.0, 2.1, 4.2)):
        cameras.append(look_at(f"cam_{i}", [1100 * np.cos(angle), 1100 * np.sin(angle), 1000], [0, 0, 300],
                               width=640, height=360, focal_px=480))
    return Rig(tuple(cameras))


def run_cli(*argv: str) -> int:
    from app.calibrate_cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["calibrate", "--no-progress", *map(str, argv)])
    return args.func(args)


@pytest.fixture(scope="module")
def rendered_session(tmp_path_factory):
    rng = np.random.default_rng(5)
    rig = small_rig()
    R, t = random_board_poses(rng, 40, center_mm=(0, 0, 400), spread_mm=300, tilt_deg=30)
    folder = write_videos(tmp_path_factory.mktemp("session") / "videos", rig, BIG_BOARD, R, t)
    board_file = save_board(BIG_BOARD, folder.parent / "board.yaml")
    return rig, R, t, folder, board_file


def test_command_on_rendered_videos(rendered_session, tmp_path, capsys):
    """Intrinsics and extrinsics from 40 rendered 640x360 frames per camera (MJPG). Measured: focal
    within 0.6 %, principal points within 3.2 px, camera-to-camera poses within 13 mm and 0.52 deg,
    RMS 0.39-0.41 px."""
    rig, R, t, folder, board_file = rendered_session
    out = tmp_path / "rig.yaml"
    assert run_cli("--board", board_file, "--videos", folder, "--out", out) == 0
    printed = capsys.readouterr().out
    assert "RMS px" in printed and f"wrote {out}" in printed
    found = load_rig(out)
    assert found.names == rig.names
    relative_mm, relative_deg = relative_pose_errors(found, rig)
    assert relative_mm < 25.0 and relative_deg < 1.0
    assert np.all(found.centers[:, 2] > 0)
    for camera, true in zip(found, rig):
        assert abs(camera.K[0, 0] / true.K[0, 0] - 1) < 0.02
        assert np.abs(camera.K[:2, 2] - true.K[:2, 2]).max() < 8.0


def test_command_with_known_intrinsics(rendered_session, tmp_path):
    rig, R, t, folder, board_file = rendered_session
    known = tmp_path / "known.yaml"
    from calibration import save_rig

    save_rig(rig, known)
    out = tmp_path / "rig.toml"
    assert run_cli("--board", board_file, "--videos", folder, "--out", out, "--intrinsics", known, "--step", "2") == 0
    found = load_rig(out, units="mm")
    for camera, true in zip(found, rig):
        np.testing.assert_allclose(camera.K, true.K)


def test_board_never_seen(tmp_path):
    rig = small_rig()
    folder = write_videos(tmp_path / "videos", rig, BIG_BOARD, np.zeros((3, 3, 3)), np.zeros((3, 3)), blank=True)
    board_file = save_board(BIG_BOARD, tmp_path / "board.yaml")
    out = tmp_path / "rig.yaml"
    with pytest.raises(CalibrationError, match=r"cam_0\.avi: camera 'cam_0'.*not found in any of 3 frames.*no ArUco markers"):
        run_cli("--board", board_file, "--videos", folder, "--out", out)
    assert not out.exists()


def test_wrong_board_definition(rendered_session, tmp_path):
    _, _, _, folder, _ = rendered_session
    wrong = save_board(replace(BIG_BOARD, dictionary="DICT_5X5_50"), tmp_path / "wrong.yaml")
    out = tmp_path / "rig.yaml"
    with pytest.raises(CalibrationError, match="set dictionary: DICT_4X4_50"):
        run_cli("--board", wrong, "--videos", folder, "--out", out)
    assert not out.exists()


def test_videos_sharing_no_view(tmp_path):
    rng = np.random.default_rng(6)
    rig = small_rig()
    R, t = random_board_poses(rng, 12, center_mm=(0, 0, 400), spread_mm=300, tilt_deg=30)
    folder = write_videos(tmp_path / "videos", rig, BIG_BOARD, R, t)
    views = collect_board_views(find_videos([folder]), BIG_BOARD)
    corners = views.corners.copy()
    corners[0, :6] = np.nan
    corners[1:, 6:] = np.nan
    with pytest.raises(CalibrationError, match="do not all see the board at the same time"):
        calibrate_extrinsics(list(rig), corners, BIG_BOARD)


def test_command_cameras_sharing_no_view(tmp_path):
    """cam_0 sees the board in frames 0-19 only, cam_1 and cam_2 in frames 20-39 only: a clear message
    naming the groups, and no rig file."""
    rng = np.random.default_rng(5)
    R, t = random_board_poses(rng, 40, center_mm=(0, 0, 400), spread_mm=300, tilt_deg=30)
    folder = write_videos(tmp_path / "videos", small_rig(), BIG_BOARD, R, t, seen=lambda c, f: (f < 20) == (c == 0))
    board_file = save_board(BIG_BOARD, tmp_path / "board.yaml")
    out = tmp_path / "rig.yaml"
    with pytest.raises(CalibrationError, match=r"do not all see the board at the same time.*groups \{cam_0\}; \{cam_1, cam_2\}"):
        run_cli("--board", board_file, "--videos", folder, "--out", out)
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_command_needs_its_inputs(tmp_path):
    with pytest.raises(CrossviewError, match="needs --videos, --out .or --wizard"):
        run_cli("--board", tmp_path / "board.yaml")


def test_timestamps_table_groups_frames(tmp_path, rendered_session):
    rig, _, _, folder, _ = rendered_session
    table = tmp_path / "timestamps.csv"
    rows = ["sync_index,cam_id,frame_index,frame_time"]
    for sync in range(40):  # one row per video frame; frame_index counts from capture start (7)
        for cam in range(3):
            rows.append(f"{sync + 100},{cam},{sync + 7},{sync / 10 + cam / 1000:.4f}")
    table.write_text("\n".join(rows) + "\n")
    views = collect_board_views(find_videos([folder]), BIG_BOARD, timestamps=table, frames=(110, 118))
    np.testing.assert_array_equal(views.frame_labels, np.arange(110, 118))
    plain = collect_board_views(find_videos([folder]), BIG_BOARD, frames=(10, 18))
    np.testing.assert_array_equal(np.isnan(views.corners), np.isnan(plain.corners))
    bad = tmp_path / "bad.csv"
    bad.write_text("sync,cam\n1,2\n")
    with pytest.raises(CalibrationError, match="bad.csv.*columns"):
        collect_board_views(find_videos([folder]), BIG_BOARD, timestamps=bad)
