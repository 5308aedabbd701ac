"""``crossview calibrate``: intrinsics and extrinsics of a camera rig from videos of a board.

    crossview calibrate --board board.yaml --videos session/ --out rig.yaml
    crossview calibrate --board charuco.toml --videos cam_0.mp4 cam_1.mp4 --intrinsics known.toml --out rig.yaml
    crossview calibrate --wizard [--board charuco.toml] [--videos session/]


Videos are matched to cameras by file stem. A ``timestamps.csv`` beside the videos (caliscope's
``sync_index, cam_id, frame_index, frame_time``) groups simultaneous frames; without one, frame i
of every video is taken as simultaneous. Put the board flat on the floor once, in view of as many
cameras as possible, and pass that frame as ``--origin-frame``: it defines the world (origin at the
board's corner, Z up). The rig file is written only when the whole calibration succeeded.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from calibration.boards import load_board
from calibration.errors import CrossviewError
from calibration.files import load_rig, save_rig
from calibration.rig_calibration import calibrate_rig
from calibration.video_views import collect_board_views, find_videos

logger = logging.getLogger(__name__)

TIMESTAMPS_NAME = "timestamps.csv"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``calibrate`` on an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "calibrate",
        help="calibrate cameras from videos of a ChArUco board or checkerboard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--board", type=Path, help="board file: crossview YAML or caliscope charuco.toml")
    parser.add_argument("--videos", nargs="+", type=Path, help="a folder of videos, or video files")
    parser.add_argument("--out", type=Path, help="rig file to write (.yaml native, .toml anipose)")
    parser.add_argument("--wizard", action="store_true",
                        help="open the calibration wizard (desktop) instead, with --board and --videos filled in")
    parser.add_argument("--intrinsics", type=Path, help="reuse the intrinsics in this calibration file (any format)")
    parser.add_argument("--timestamps", type=Path, help=f"sync table (default: {TIMESTAMPS_NAME} beside the videos)")
    parser.add_argument("--no-timestamps", action="store_true", help="ignore any timestamps table: frame i is simultaneous")
    parser.add_argument("--step", type=int, default=1, help="use every STEP-th synchronised frame (default 1)")
    parser.add_argument("--frames", type=_frame_range, help="START:STOP, the frames (sync index or frame number) to use")
    parser.add_argument("--origin-frame", type=int, help="frame (sync index or frame number) where the board lies on the floor")
    parser.add_argument("--fisheye", action="store_true", help="fisheye lens model for the intrinsics")
    parser.add_argument("--refine-intrinsics", action="store_true", help="refine intrinsics in the bundle adjustment")
    parser.add_argument("--principal-point", choices=("fit", "centre", "auto"), default="fit",
                        help="fit the principal point (default), hold it at the image centre, or hold it there "
                             "only when the board did not cover the image (auto)")
    parser.add_argument("--no-sync-fix", action="store_true", help="do not shift cameras found whole frames out of sync")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def _frame_range(text: str) -> tuple[int, int]:
    try:
        start, stop = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:STOP (two whole numbers), got {text!r}") from None
    if stop <= start:
        raise argparse.ArgumentTypeError(f"STOP must be greater than START, got {text!r}")
    return start, stop


def _timestamps(args: argparse.Namespace, videos: dict[str, Path]) -> Path | None:
    if args.no_timestamps:
        return None
    if args.timestamps is not None:
        return args.timestamps
    return find_timestamps(videos)


def find_timestamps(videos: dict[str, Path]) -> Path | None:
    """The ``timestamps.csv`` beside the videos, when they all lie in one folder that has one."""
    folders = {video.parent for video in videos.values()}
    candidates = [folder / TIMESTAMPS_NAME for folder in folders if (folder / TIMESTAMPS_NAME).is_file()]
    return candidates[0] if len(candidates) == 1 else None


def run(args: argparse.Namespace) -> int:
    """Run the calibration; CrossviewError propagates to the caller (``app.cli`` prints it)."""
    from tqdm import tqdm

    if args.wizard:
        from app.gui.calibration_wizard import run_wizard

        return run_wizard(videos=args.videos, board=args.board)
    missing = [f"--{name}" for name in ("board", "videos", "out") if getattr(args, name) is None]
    if missing:
        raise CrossviewError(f"crossview calibrate needs {', '.join(missing)} (or --wizard to be guided)")
    board = load_board(args.board)
    videos = find_videos(args.videos)
    timestamps = _timestamps(args, videos)
    known = load_rig(args.intrinsics) if args.intrinsics is not None else None
    print(f"board: {board.describe()}")
    print(f"videos: {', '.join(f'{name} ({path.name})' for name, path in videos.items())}")
    print(f"sync: {timestamps if timestamps is not None else 'frame index (no timestamps table)'}")
    with tqdm(desc="detecting board", unit="frame", disable=args.no_progress) as bar:
        views = collect_board_views(
            videos, board, timestamps=timestamps, step=args.step, frames=args.frames, on_frame=bar.update
        )
    calibration = calibrate_rig(
        views,
        board,
        intrinsics=known,
        model="fisheye" if args.fisheye else "pinhole",
        principal_point=args.principal_point,
        origin_label=args.origin_frame,
        refine_intrinsics=args.refine_intrinsics,
        fix_sync=not args.no_sync_fix,
    )
    if calibration.intrinsics is not None:
        for result in calibration.intrinsics:
            print(
                f"intrinsics {result.camera.name}: RMS {result.rms_px:.3f} px over {int(result.used.sum())} views, "
                f"coverage {100 * result.coverage:.0f} %"
            )
    print(f"world: board in frame {calibration.origin_label} (origin at its corner, Z up)")
    print(calibration.quality.format())
    path = save_rig(calibration.rig, args.out, metadata=calibration.metadata(board))
    print(f"wrote {path}")
    return 0
