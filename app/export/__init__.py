"""Export a take's 3D joints to files other tools read.

Formats (one module each):

- ``csv`` (:mod:`app.export.csv_json`): the ``poses3d.csv`` layout, empty cells where unknown;
- ``json`` (:mod:`app.export.csv_json`): a documented schema with units, joints, bones and fps;
- ``trc`` (:mod:`app.export.trc`): OpenSim / Motion Analysis marker trajectories;
- ``c3d`` (:mod:`app.export.c3d`): C3D points with residuals (needs the ``c3d`` package);
- ``bvh`` (:mod:`app.export.bvh`): an animation skeleton with a T rest pose, Y up, centimetres.

:func:`export_take` reads ``poses3d.npz`` from a take folder and writes one of them (atomically).
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.export.take_poses import TakePoses, load_take_poses
from calibration.errors import CrossviewError

logger = logging.getLogger(__name__)

FORMATS = ("csv", "json", "trc", "c3d", "bvh")


def write_poses(poses: TakePoses, format: str, path: str | Path, *, y_up: bool = False) -> Path:
    """Write ``poses`` in ``format`` to ``path``; ``y_up`` rotates Z up to Y up (BVH always is Y up)."""
    path = Path(path)
    if format not in FORMATS:
        raise CrossviewError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if format == "bvh":
        from app.export.bvh import write_bvh

        return write_bvh(poses, path)
    if format == "trc":
        from app.export.trc import write_trc

        return write_trc(poses, path, y_up=y_up)
    if format == "c3d":
        from app.export.c3d import write_c3d

        return write_c3d(poses, path, y_up=y_up)
    from app.export.csv_json import write_csv, write_json

    poses = poses.y_up() if y_up else poses
    return write_csv(poses, path) if format == "csv" else write_json(poses, path)


def export_take(
    take_folder: str | Path,
    format: str,
    out: str | Path | None = None,
    fps: float | None = None,
    *,
    y_up: bool = False,
) -> Path:
    """Export a take's ``poses3d.npz`` as ``format`` ("csv", "json", "trc", "c3d" or "bvh").

    Args:
        take_folder: the take's folder (holding poses3d.npz).
        out: the output file; default ``<take>/export/poses3d.<format>``.
        fps: frame rate; default 1 / the median timestamp step.
        y_up: rotate the Z-up world to Y up (csv, json, trc, c3d; BVH is always Y up).

    Returns:
        The path written.

    Raises:
        CrossviewError: unknown format, no poses3d.npz in the take, no frame rate.
    """
    format = format.lower().lstrip(".")
    if format not in FORMATS:
        raise CrossviewError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    poses = load_take_poses(take_folder, fps=fps)
    take_folder = Path(take_folder)
    folder = take_folder.parent if take_folder.suffix == ".npz" else take_folder
    path = Path(out) if out is not None else folder / "export" / f"poses3d.{format}"
    written = write_poses(poses, format, path, y_up=y_up)
    logger.info("exported %d frames at %.3g fps to %s", poses.num_frames, poses.fps, written)
    return written


__all__ = ["FORMATS", "TakePoses", "export_take", "load_take_poses", "write_poses"]
