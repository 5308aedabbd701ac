"""``crossview calibrate`` on a real session: caliscope's 4-webcam ChArUco recording (1280x720,
inverted board, real timestamps), compared with caliscope's own solution (camera_array.toml) after a
similarity alignment of the camera centres.

The footage shows the board only mid-image (8-27 % of each image's grid cells), so the principal
points it yields differ from caliscope's (which came from separate intrinsic footage) by up to
31 px; a principal-point shift is indistinguishable from a small camera rotation, so orientations
are compared at 2 degrees with caliscope's intrinsics and at 4 degrees with our own. The footage also
has camera cam_1 one frame out of step with the timestamps: the calibration finds and corrects it.

Variants tried to bring our own intrinsics closer (worst camera; centres mm / orientations deg /
RMS px), none adopted as the default because none is better on this footage:

- fitted principal point (the default): 12.2 mm, 3.47 deg, 0.83 px
- principal point held at the image centre (``--principal-point centre``, and what ``auto`` does
  here, every camera being under 50 % coverage): 11.4 mm, 4.06 deg, 1.01 px
- fitted, square pixels (fx = fy): 13.0 mm, 3.02 deg, 0.80 px
- fitted, k3 = 0 and no tangential distortion: 11.1 mm, 4.30 deg, 0.80 px
- fitted from all frames with the board instead of 40 chosen views: 11.0 mm, 3.58 deg, 0.83 px
- intrinsics refined in the bundle adjustment (``--refine-intrinsics``): 28.1 mm, 8.50 deg, 0.67 px
- centre-held, the rest refined in the adjustment: 27.6 mm, 4.57 deg, 0.70 px
- fitted, only the focal lengths refined in the adjustment: 21.3 mm, 3.96 deg, 0.79 px

caliscope's principal points lie 20-32 px from the image centre, so holding them there is no
better than fitting them; refining intrinsics against these mid-image views drifts (cam_1's cx
moves to 702 px). Square pixels look better here but not on other subsets of the same frames
(even frames 3.75 -> 2.91 deg, odd frames 6.06 -> 6.94 deg). The 2 degree target needs intrinsics
from footage that covers the image (as caliscope's were), or known intrinsics (second test).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from calibration import CalibrationError, load_rig
from calibration.files import read_rig
from calibration.quality import compare_rigs
from models.synthetic.mocap import shared_data_dir


def session() -> Path:
    folder = shared_data_dir() / "caliscope_charuco"
    if not (folder / "extrinsic" / "cam_0.mp4").is_file():
        pytest.skip(f"shared data not available: {folder}")
    return folder


def run_cli(*argv) -> int:
    from app.calibrate_cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["calibrate", "--no-progress", *map(str, argv)])
    return args.func(args)


def compare_with_reference(path: Path, reference: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per camera: centre distance (mm) and orientation difference (deg) after aligning the centres."""
    return compare_rigs(load_rig(path), load_rig(reference))


def test_calibrate_real_session(tmp_path, capsys):
    """The plain command, intrinsics from the same footage. Measured: RMS 0.66-0.83 px; centres
    within 8.0-12.2 mm of caliscope's, orientations within 1.34-3.47 deg (see the module docstring).
    Without the sync correction (--no-sync-fix) cam_1's RMS is 1.68 px."""
    data = session()
    out = tmp_path / "rig.yaml"
    assert run_cli("--board", data / "charuco.toml", "--videos", data / "extrinsic", "--out", out) == 0
    printed = capsys.readouterr().out
    assert "cam_1: frames shifted by +1" in printed
    metadata = read_rig(out).metadata
    rms = metadata["quality"]["rms_px"]
    assert set(rms) == {"cam_0", "cam_1", "cam_2", "cam_3"}
    assert max(rms.values()) < 1.0
    centres, angles = compare_with_reference(out, data / "camera_array.toml")
    assert centres.max() < 20.0
    assert angles.max() < 4.0
    assert np.all(load_rig(out).centers[:, 2] > 0)  # the cameras are above the origin board


def test_calibrate_real_session_known_intrinsics(tmp_path):
    """Caliscope's intrinsics reused (--intrinsics), frames from sync index 86 on (the board enters
    the views at 92). Measured: RMS 0.65-0.81 px, centres within 5.0-7.9 mm, orientations within
    0.73-1.83 deg."""
    data = session()
    out = tmp_path / "rig.yaml"
    assert run_cli(
        "--board", data / "charuco.toml", "--videos", data / "extrinsic", "--out", out,
        "--intrinsics", data / "camera_array.toml", "--frames", "86:137",
    ) == 0
    assert max(read_rig(out).metadata["quality"]["rms_px"].values()) < 1.0
    centres, angles = compare_with_reference(out, data / "camera_array.toml")
    assert centres.max() < 20.0
    assert angles.max() < 2.0


# ------------------------------------------------------------------------------------------------
# Board reconstruction: a rig's error in mm without ground truth (calibration.quality)
def test_board_reconstruction_exact_and_sensitive():
    """Synthetic: a 4-camera ring (cameras ~3 m from the board) and a 4x5 board of 54 mm squares
    moving ~60 mm per frame. Measured: noise-free corners rebuild the grid exactly (< 1e-12 mm);
    0.2 px noise gives 0.60 mm median RMS (p95 0.71); one camera's focal length 5 % long gives
    1.16 mm and a -1.1 % scale error; a camera one frame late gives 20 mm, and ``frame_shifts``
    putting it back restores 0.60 mm. (A 2 degree turn of one camera barely shows here, 0.63 mm:
    the board is small and far, so the error moves it almost rigidly; on the real session's closer
    boards a 2 degree turn shows, see ``test_board_reconstruction_real_session``.)"""
    from dataclasses import replace

    from calibration.board_synthesis import project_board, random_board_poses
    from calibration.boards import Board
    from calibration.camera import look_at
    from calibration.quality import board_reconstruction_error
    from calibration.rig import Rig
    from calibration.sync_check import shift_frames

    board = Board("charuco", 4, 5, 54.0, dictionary="DICT_4X4_1000")
    rig = Rig(tuple(
        look_at(f"cam_{i}", [2500 * np.cos(a), 2500 * np.sin(a), 1800], [0, 0, 700], width=1280, height=720,
                focal_px=900.0)
        for i, a in enumerate(np.linspace(0, 2 * np.pi, 4, endpoint=False))
    ))
    rng = np.random.default_rng(7)
    frames = 40
    R, _ = random_board_poses(rng, frames, center_mm=(0, 0, 700), spread_mm=0, tilt_deg=25)
    s = np.linspace(0, 2 * np.pi, frames)
    t = np.stack([400 * np.cos(s), 400 * np.sin(s), 700 + 150 * np.sin(2 * s)], axis=1)
    exact = project_board(rig, board, R, t)  # (4, F, 12, 2) px
    result = board_reconstruction_error(rig, exact, board)
    assert result.frames == frames and result.p95_rms_mm < 1e-6 and np.abs(result.distance_errors_mm).max() < 1e-6
    noisy = exact + rng.normal(0, 0.2, exact.shape)
    base = board_reconstruction_error(rig, noisy, board)
    assert 0.3 < base.median_rms_mm < 0.9 and abs(base.scale_error_percent) < 0.2
    cameras = list(rig)
    cameras[1] = replace(cameras[1], K=cameras[1].K * np.array([[1.05], [1.05], [1.0]]))
    long_focal = board_reconstruction_error(Rig(tuple(cameras)), noisy, board)
    assert long_focal.median_rms_mm > 1.5 * base.median_rms_mm and long_focal.scale_error_percent < -0.7
    late = noisy.copy()
    late[3] = shift_frames(noisy[3], -1)  # camera 3's frame f shows the board of frame f - 1
    assert board_reconstruction_error(rig, late, board).median_rms_mm > 10 * base.median_rms_mm
    fixed = board_reconstruction_error(rig, late, board, frame_shifts={"cam_3": 1})
    assert fixed.median_rms_mm < 1.1 * base.median_rms_mm
    pair = board_reconstruction_error(rig, noisy, board, cameras=("cam_0", "cam_1"))
    assert pair.cameras == ("cam_0", "cam_1") and 0 < pair.frames <= frames and pair.median_rms_mm < 2.0
    with pytest.raises(CalibrationError):
        board_reconstruction_error(rig, noisy, board, cameras=("cam_0",))


def test_board_reconstruction_real_session():
    """The real session, ground-truth free: the board's corners triangulated from every camera that
    saw them in a frame, against the exact 54 mm grid, on the same detections for our rig (calibrated
    here as ``crossview calibrate`` does) and caliscope's camera_array.toml. Both were fitted on
    this footage (no held-out frames exist: the solver uses every frame two cameras saw); ours used
    the board model in its adjustment, caliscope's adjusts free 3D points. Fitting our extrinsics
    on even frames and measuring on odd ones (and the reverse) gave 0.32-0.34 mm median on the
    held-out frames (0.31-0.35 with all frames fitted): not the adjustment fitting its own frames.

    Measured, median / p95 rigid-fit RMS over 45 frames (mm):
    with cam_1 shifted +1 (our sync check): ours 0.32 / 0.70, caliscope 0.70 / 1.40;
    frames as the timestamps group them: ours 0.61 / 1.25, caliscope 0.63 / 1.35.
    Scale error (shifted): ours +0.03 %, caliscope -0.14 %. Turning our cam_1 or cam_2 by 2 degrees
    about the camera's x or y axis gives 0.49-1.88 mm median (p95 2.5-6.1), but only 0.35-0.44
    (p95 0.71-1.00) when the principal point moves by f x 2 degrees with it: on this footage the
    board cannot tell a camera rotation from a principal-point shift."""
    from dataclasses import replace

    from scipy.spatial.transform import Rotation

    from calibration import Rig, load_board
    from calibration.quality import board_reconstruction_error
    from calibration.rig_calibration import calibrate_rig
    from calibration.video_views import collect_board_views, find_videos

    data = session()
    board = load_board(data / "charuco.toml")
    views = collect_board_views(find_videos([data / "extrinsic"]), board, timestamps=data / "extrinsic" / "timestamps.csv")
    ours = calibrate_rig(views, board)
    shifts = dict(zip(ours.rig.names, ours.frame_shifts))
    assert shifts == {"cam_0": 0, "cam_1": 1, "cam_2": 0, "cam_3": 0}
    reference = load_rig(data / "camera_array.toml")
    mine = board_reconstruction_error(ours.rig, views, board, frame_shifts=shifts)
    theirs = board_reconstruction_error(reference, views, board, frame_shifts=shifts)
    assert mine.frames == theirs.frames >= 40
    assert mine.median_rms_mm < 0.45 and mine.p95_rms_mm < 1.0
    assert abs(mine.scale_error_percent) < 0.3
    assert theirs.median_rms_mm < 1.0  # caliscope's rig is sub-millimetre too ...
    assert mine.median_rms_mm < 0.7 * theirs.median_rms_mm  # ... and ours rebuilds the board more exactly
    unshifted = board_reconstruction_error(ours.rig, views, board)
    assert unshifted.median_rms_mm > 1.5 * mine.median_rms_mm  # the sync shift is real: without it ours is worse
    pair = board_reconstruction_error(ours.rig, views, board, cameras=("cam_1", "cam_2"), frame_shifts=shifts)
    assert pair.frames >= 20 and pair.median_rms_mm < 0.5  # measured 0.33 (caliscope's 0.93)
    cameras = list(ours.rig)
    turn = np.radians(2.0)
    R = Rotation.from_rotvec([0.0, turn, 0.0]).as_matrix() @ cameras[2].R
    turned = cameras[2].with_pose(R, -R @ cameras[2].center)  # cam_2 turned 2 degrees about its y axis
    K = turned.K.copy()
    K[0, 2] -= K[0, 0] * turn  # the same turn absorbed by the principal point
    for camera, low, high in ((turned, 4.0, np.inf), (replace(turned, K=K), 0.0, 1.5)):
        cameras[2] = camera
        worse = board_reconstruction_error(Rig(tuple(cameras)), views, board, frame_shifts=shifts)
        assert low * mine.p95_rms_mm < worse.p95_rms_mm < high * mine.p95_rms_mm  # measured 4.92; 0.80 (vs 0.70)
