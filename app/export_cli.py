"""``crossview export TAKE --format csv|json|trc|c3d|bvh [--out FILE] [--fps N] [--y-up]``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand to an ``add_subparsers()`` object; returns its parser."""
    from app.export import FORMATS

    parser = subparsers.add_parser(
        "export", help="export a processed take's 3D joints as CSV, JSON, TRC, C3D or BVH (rest pose)"
    )
    parser.add_argument("take", type=Path, help="the take folder (holding poses3d.npz)")
    parser.add_argument("--format", required=True, choices=FORMATS, type=str.lower)
    parser.add_argument("--out", type=Path, help="output file (default: TAKE/export/poses3d.FORMAT)")
    parser.add_argument("--fps", type=float, help="frame rate (default: from the take's timestamps)")
    parser.add_argument(
        "--y-up", action="store_true", help="rotate the Z-up world to Y up (OpenSim); BVH is always Y up"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``crossview export``; ``args`` has ``take``, ``format``, ``out``, ``fps`` and ``y_up``."""
    from app.export import export_take

    path = export_take(args.take, args.format, out=args.out, fps=args.fps, y_up=args.y_up)
    print(path)
    return 0
