"""``crossview bench calibration``: ``crossview calibrate`` on a real 4-camera ChArUco session.

caliscope's test session (``../shared/data/caliscope_charuco``: four 1280x720 webcams, an inverted
4x5 ChArUco board, real per-frame timestamps), calibrated from scratch (intrinsics and
extrinsics from the same footage) and with caliscope's intrinsics reused; each result is compared
with caliscope's own solution after a similarity alignment of the camera centres. caliscope's
solution is a reference, not ground truth.

Every rig, caliscope's included, is also measured without ground truth
(:func:`calibration.quality.board_reconstruction_error`): the board's corners, triangulated from
the cameras that saw them in one frame, against the board's exact 54 mm grid, on the same
detections for all rigs, with the frames grouped by the timestamps and with the whole-frame shifts
our sync check found. The default calibration and caliscope's are also measured per camera pair.
"""

from __future__ import annotations

import tempfile
import time
from itertools import combinations
from pathlib import Path

from calibration import load_board, load_rig
from calibration.errors import CrossviewError
from calibration.files import read_rig
from calibration.quality import BoardReconstruction, board_reconstruction_error, compare_rigs
from calibration.video_views import collect_board_views, find_videos
from models.synthetic.mocap import shared_data_dir

_NA = "-"


def _cell(result: BoardReconstruction) -> str:
    return f"{result.median_rms_mm:.2f} / {result.p95_rms_mm:.2f}"


def _board_cells(rig, views, board, shifts: dict[str, int], cameras=None) -> list[str]:
    """Board RMS (timestamps; shifted) and distance error (shifted), as table cells."""
    plain = board_reconstruction_error(rig, views, board, cameras=cameras)
    shifted = board_reconstruction_error(rig, views, board, cameras=cameras, frame_shifts=shifts)
    return [
        _cell(plain),
        _cell(shifted),
        f"{shifted.distance_median_mm:.2f} / {shifted.distance_p95_mm:.2f}",
        f"{shifted.scale_error_percent:+.2f}",
    ]


def run(quick: bool = False) -> dict:
    from app.cli import main

    data = shared_data_dir() / "caliscope_charuco"
    if not (data / "extrinsic").is_dir():
        raise CrossviewError(f"{data}: the caliscope session is needed for this benchmark")
    reference = load_rig(data / "camera_array.toml")
    board = load_board(data / "charuco.toml")
    views = collect_board_views(
        find_videos([data / "extrinsic"]), board, timestamps=data / "extrinsic" / "timestamps.csv"
    )
    variants = [("intrinsics from the footage", [])]
    if not quick:
        variants.append(("from the footage, principal point held at the centre", ["--principal-point", "centre"]))
        variants.append(("caliscope's intrinsics reused", ["--intrinsics", str(data / "camera_array.toml")]))
    rows, shifts, default_rig = [], None, None
    with tempfile.TemporaryDirectory(prefix="crossview-bench-") as folder:
        for label, extra in variants:
            out = Path(folder) / "rig.yaml"
            start = time.perf_counter()
            code = main([
                "calibrate", "--board", str(data / "charuco.toml"), "--videos", str(data / "extrinsic"),
                "--out", str(out), "--no-progress", *extra,
            ])
            seconds = time.perf_counter() - start
            if code != 0:
                raise CrossviewError(f"crossview calibrate failed ({label})")
            found = read_rig(out)
            rms = found.metadata["quality"]["rms_px"]
            rig = load_rig(out)
            if shifts is None:
                shifts, default_rig = dict(found.metadata.get("frame_shifts", {})), rig
            centres, angles = compare_rigs(rig, reference)
            rows.append([
                label,
                " / ".join(f"{rms[n]:.2f}" for n in reference.names),
                float(centres.max()),
                float(angles.max()),
                *_board_cells(rig, views, board, shifts),
                float(seconds),
            ])
    rows.append(["caliscope's camera_array.toml", _NA, _NA, _NA, *_board_cells(reference, views, board, shifts), _NA])
    if not quick:
        for pair in combinations(views.names, 2):
            for label, rig in (("ours", default_rig), ("caliscope", reference)):
                rows.append([f"{label}, {pair[0]}-{pair[1]} only", _NA, _NA, _NA,
                             *_board_cells(rig, views, board, shifts, cameras=pair), _NA])
    shifted = ", ".join(f"{n} {s:+d}" for n, s in shifts.items() if s) or "none"
    return {
        "name": "calibration",
        "title": "crossview calibrate on caliscope's real 4-camera ChArUco session",
        "columns": [
            "solution (intrinsics)",
            "RMS reprojection px (cam_0 / 1 / 2 / 3)",
            "worst centre vs caliscope (mm)",
            "worst orientation vs caliscope (deg)",
            "board RMS mm, median / p95 (timestamp sync)",
            f"board RMS mm, median / p95 (shifted: {shifted})",
            "corner distance error mm, median / p95 (shifted)",
            "scale error % (shifted)",
            "time (s)",
        ],
        "rows": rows,
        "notes": (
            "The board stays mid-image in this footage (8-27 % of each image covered), so intrinsics from it "
            "fix the principal point poorly, which shows as a 2-3 degree rotation. Holding the principal point "
            "at the image centre is no better: these webcams' principal points lie 20-32 px off centre "
            "(tests/test_calibrate_real.py lists every variant tried). cam_1's video is one frame "
            "out of step with timestamps.csv and is shifted automatically. Board columns: the board's corners "
            "triangulated (plain DLT) from every camera (or the named pair) that saw them in a frame, the 4x5 "
            "board's 3x4 inner-corner grid fitted rigidly per frame; RMS residual over frames, error of all "
            "corner-to-corner distances against the exact ones. All rigs were fitted on this same footage "
            "(caliscope's extrinsics too); ours used the board model in its adjustment, caliscope's adjusts "
            "free 3D points."
        ),
    }
