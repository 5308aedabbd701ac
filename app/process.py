"""``crossview process``: videos or 2D keypoints + calibration -> 3D poses on disk.

Every frame goes through :class:`app.pipeline.Pipeline`, the code path live capture and playback
use (offline lockstep: every frame, none skipped):

- :func:`process_take`: a take folder with ``videos/`` and a calibration (as ``crossview record``
  writes it): detect, triangulate, refine, filter; ``poses2d.npz``, ``poses3d.npz`` and
  ``poses3d.csv`` go into the take. Time stamps come from the take's ``timestamps.csv`` when it
  has one (the median over cameras of each frame's ``t_s``), else from the videos' frame rate.
- :func:`process_videos`: the same for a folder of videos named after the cameras.
- :func:`process`: 2D keypoints from a file (``poses2d.npz``, OpenPose, CSV, FreeMoCap) enter the
  pipeline after the detector.

Output: ``poses3d.npz`` holds ``points (T, 17, 3)`` mm (after refiner and filter),
``reprojection_error (T, 17)`` px (RMS over the views used of the triangulated joints, NaN for
lifted frames), ``views_used (T, 17)``, ``timestamps (T,)`` s, and ``points_triangulated
(T, 17, 3)`` mm (before refiner and filter) and ``method (T,)`` (``triangulated``, ``refined``,
``lifted`` or ``none`` per frame). ``poses2d.npz`` holds the detector's keypoints.

If a video stops decoding (a truncated file) the frames before it are written and the problem is
reported; an error or an interrupt mid-way writes what was processed before it stops.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from app.pipeline import DEFAULT_MODELS, STAGES, Pipeline, PoseFrame, load_model
from calibration import read_rig
from calibration.errors import CrossviewError, InputFileError
from calibration.rig import Rig
from models.filters import OneEuroFilter
from models.keypoint_io import Poses2D, load_poses2d, save_poses2d, save_poses3d

logger = logging.getLogger(__name__)

CALIBRATION_NAMES = ("calibration.yaml", "calibration.yml", "calibration.toml", "Calib.qca.txt")
#: Frame rate assumed for keypoint files without time stamps (only the filter uses it).
DEFAULT_FPS = 30.0


@dataclass(frozen=True, slots=True, eq=False)
class ProcessResult:
    """3D poses for a take.

    Attributes:
        points: (T, 17, 3) mm, H36M-17, world frame of the calibration; NaN where unknown.
        reprojection_error_px: (T, 17) RMS reprojection error of the triangulated joints over the
            views used, px; NaN where not triangulated.
        views_used: (T, 17) number of views each joint came from.
        camera_names: the cameras used, in view order.
        timestamps: (T,) seconds or None.
        method: (T,) str per frame: ``triangulated``, ``refined``, ``lifted`` or ``none``; None = all triangulated.
        points_triangulated: (T, 17, 3) mm before refiner and filter, or None (= ``points``).
    """

    points: np.ndarray
    reprojection_error_px: np.ndarray
    views_used: np.ndarray
    camera_names: tuple[str, ...]
    timestamps: np.ndarray | None
    method: np.ndarray | None = None
    points_triangulated: np.ndarray | None = None

    def summary(self) -> dict:
        """Figures a user checks first: coverage, reprojection error, views per joint, methods."""
        valid = np.isfinite(self.points).all(axis=-1)
        err = self.reprojection_error_px[valid]
        err = err[np.isfinite(err)]
        methods = {}
        if self.method is not None and len(self.method):
            names, counts = np.unique(self.method, return_counts=True)
            methods = {str(n): float(100.0 * c / len(self.method)) for n, c in zip(names, counts)}
        return {
            "frames": int(self.points.shape[0]),
            "joints_triangulated_pct": float(100.0 * valid.mean()) if valid.size else 0.0,
            "reprojection_error_median_px": float(np.median(err)) if err.size else float("nan"),
            "reprojection_error_p95_px": float(np.percentile(err, 95)) if err.size else float("nan"),
            "views_used_mean": float(self.views_used[valid].mean()) if valid.any() else 0.0,
            "methods_pct": methods,
        }


class PoseSequence:
    """The pipeline's :class:`~app.pipeline.PoseFrame` objects of a take, gathered into arrays."""

    def __init__(self, camera_names: tuple[str, ...]) -> None:
        self.camera_names = tuple(camera_names)
        self.frames: list[PoseFrame] = []

    def __len__(self) -> int:
        return len(self.frames)

    def append(self, frame: PoseFrame) -> None:
        self.frames.append(frame)

    def result(self) -> ProcessResult:
        frames = self.frames
        return ProcessResult(
            points=np.array([f.points3d for f in frames]).reshape(-1, 17, 3),
            reprojection_error_px=np.array([f.triangulation_error_px for f in frames]).reshape(-1, 17),
            views_used=np.array([f.views_used for f in frames], dtype=np.int64).reshape(-1, 17),
            camera_names=self.camera_names,
            timestamps=np.array([f.t_s for f in frames], dtype=np.float64),
            method=np.array([f.method for f in frames], dtype=str),
            points_triangulated=np.array([f.points_triangulated for f in frames]).reshape(-1, 17, 3),
        )

    def poses2d(self, source: str) -> Poses2D:
        """The detector's keypoints ``(T, C, J, 2)`` px as :class:`Poses2D`."""
        return Poses2D(
            keypoints=np.array([f.keypoints for f in self.frames], dtype=np.float64),
            confidence=np.clip(np.array([f.confidence for f in self.frames], dtype=np.float64), 0.0, 1.0),
            camera_names=self.camera_names,
            joint_set=self.frames[0].joint_set,
            timestamps=np.array([f.t_s for f in self.frames], dtype=np.float64),
            source=source,
        )

    def stage_ms(self) -> dict[str, dict[str, float]]:
        """Per stage of :data:`app.pipeline.STAGES`: median and p95 milliseconds over the frames."""
        out = {}
        for stage in STAGES:
            values = np.array([f.timings_ms[stage] for f in self.frames])
            out[stage] = {"median": float(np.median(values)), "p95": float(np.percentile(values, 95))} \
                if len(values) else {"median": float("nan"), "p95": float("nan")}
        return out

    def write(self, out_dir: Path, *, poses2d_source: str | None = None) -> None:
        """``poses3d.npz`` / ``poses3d.csv`` (and ``poses2d.npz`` with ``poses2d_source``), atomically."""
        result = self.result()
        if poses2d_source is not None:
            save_poses2d(self.poses2d(poses2d_source), out_dir / "poses2d.npz")
        save_poses3d(out_dir, result.points, result.reprojection_error_px, result.views_used,
                     timestamps=result.timestamps,
                     extra={"points_triangulated": result.points_triangulated, "method": result.method})


def find_calibration(folder: Path) -> Path | None:
    """The calibration file inside a take folder, if there is one."""
    for name in CALIBRATION_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def match_rig(rig: Rig, poses: Poses2D, *, calibration_path: Path | None = None) -> Rig:
    """The rig's cameras in the keypoints' camera order, with a clear error when names differ."""
    source = f"the keypoints ({poses.source})" if poses.source else "the keypoints"
    try:
        matched = rig.select(poses.camera_names, source=source)
    except CrossviewError as exc:
        if calibration_path is not None and hasattr(exc, "in_file"):
            raise exc.in_file(calibration_path) from None
        raise
    return matched


def _smoother(smooth: bool, min_cutoff_hz: float | None, beta: float | None) -> OneEuroFilter | None:
    if not smooth:
        return None
    options = {k: v for k, v in (("min_cutoff_hz", min_cutoff_hz), ("beta", beta)) if v is not None}
    return OneEuroFilter(**options)


def process(
    keypoints_path: str | Path,
    *,
    calibration_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    refiner: str | None = "none",
    lifter: str | None = "none",
    robust: bool = True,
    calibration_units: str | None = None,
    smooth: bool = False,
    min_cutoff_hz: float | None = None,
    beta: float | None = None,
) -> tuple[ProcessResult, Path]:
    """Read 2D keypoints, run them through the pipeline (after the detector) and write; returns
    the result and the output folder.

    ``keypoints_path`` may be a take folder; the calibration is then found inside it when
    ``calibration_path`` is not given, and the output goes into it when ``out_dir`` is not given.
    ``refiner`` / ``lifter``: see :func:`app.pipeline.load_model`; ``smooth``: One-Euro filter
    (``min_cutoff_hz``, ``beta``: its settings, default :class:`models.filters.OneEuroFilter`'s).
    """
    keypoints_path = Path(keypoints_path)
    if calibration_path is None:
        folder = keypoints_path if keypoints_path.is_dir() else keypoints_path.parent
        calibration_path = find_calibration(folder)
        if calibration_path is None:
            raise InputFileError(
                f"{folder}: no calibration found (looked for {', '.join(CALIBRATION_NAMES)}); pass --calibration FILE"
            )
    calibration_path = Path(calibration_path)
    rig_file = read_rig(calibration_path, units=calibration_units)
    logger.info("%s", rig_file.describe())
    rig = rig_file.rig
    poses = load_poses2d(keypoints_path, camera_names=rig.names)
    rig = match_rig(rig, poses, calibration_path=calibration_path)
    refiner_model, lifter_model = load_model("refiner", refiner), load_model("lifter", lifter)  # after the inputs' checks
    logger.info("3D from %d frames of %d cameras (%s)", poses.num_frames, poses.num_cameras, ", ".join(rig.names))
    pipeline = Pipeline(rig, None, refiner_model, lifter_model, _smoother(smooth, min_cutoff_hz, beta), robust)
    if poses.timestamps is None:
        logger.info("the keypoints have no time stamps: %g fps assumed", DEFAULT_FPS)
    times = poses.timestamps if poses.timestamps is not None else np.arange(poses.num_frames) / DEFAULT_FPS
    sequence = PoseSequence(rig.names)
    for t in range(poses.num_frames):
        sequence.append(pipeline.process_keypoints(poses.keypoints[t], poses.confidence[t], times[t],
                                                   joint_set=poses.joint_set))
    result = sequence.result()
    if poses.timestamps is None:
        result = replace(result, timestamps=None)
    if out_dir is None:
        out_dir = keypoints_path if keypoints_path.is_dir() else keypoints_path.parent
    out_dir = Path(out_dir)
    save_poses3d(out_dir, result.points, result.reprojection_error_px, result.views_used, timestamps=result.timestamps,
                 extra={"points_triangulated": result.points_triangulated, "method": result.method})
    return result, out_dir


# ------------------------------------------------------------------------------------------------
# Videos -> pipeline -> 3D
def match_videos(rig: Rig, videos: dict[str, Path], *, source: Path, calibration_path: Path | None = None,
                 min_cameras: int = 2) -> tuple[Rig, dict[str, Path], list[str]]:
    """The cameras that have a video, in calibration order, their videos, and the cameras without one.

    Raises:
        InputFileError: a video whose name is not a camera of the calibration (listing both), or
            fewer than ``min_cameras`` cameras with a video.
    """
    calibration = f"the calibration {calibration_path.name}" if calibration_path is not None else "the calibration"
    unknown = [name for name in videos if name not in rig.names]
    if unknown:
        raise InputFileError(
            f"{source}: video(s) {', '.join(videos[n].name for n in unknown)} match no camera of {calibration} "
            f"({', '.join(rig.names)}); name each video after its camera (e.g. {rig.names[0]}.mp4), or use the "
            "calibration the videos were recorded with"
        )
    names = [n for n in rig.names if n in videos]
    missing = [n for n in rig.names if n not in videos]
    if missing:
        logger.warning("no video for camera(s) %s of %s; using %s", ", ".join(missing), calibration, ", ".join(names))
    if len(names) < min_cameras:
        raise InputFileError(
            f"{source}: videos for {len(names)} camera(s) ({', '.join(names) or 'none'}) of {calibration}; "
            f"triangulation needs at least 2 (a single view needs --lifter)"
        )
    return rig.select(names), {n: videos[n] for n in names}, missing


def read_frame_times(path: str | Path, num_frames: int) -> np.ndarray | None:
    """Per-frame time stamps ``(num_frames,)`` s from a take's ``timestamps.csv`` (columns
    ``frame``, ``camera``, ``t_s``): the median over the cameras of each frame; None (with a
    warning) when the file does not cover every frame.

    Raises:
        InputFileError: the file is unreadable or lacks the ``frame`` / ``t_s`` columns.
    """
    path = Path(path)
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"frame", "t_s"} <= set(reader.fieldnames):
                raise InputFileError(f"{path}: expected the columns frame,camera,t_s, got {reader.fieldnames}")
            times: dict[int, list[float]] = {}
            for line, row in enumerate(reader, start=2):
                try:
                    times.setdefault(int(row["frame"]), []).append(float(row["t_s"]))
                except (TypeError, ValueError):
                    raise InputFileError(f"{path}, line {line}: frame and t_s must be numbers, got {row}") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the time stamps ({exc.strerror or exc})") from None
    if not all(t in times for t in range(num_frames)):
        logger.warning("%s covers %d of %d frames; using the videos' frame rate instead", path, len(times), num_frames)
        return None
    return np.array([np.median(times[t]) for t in range(num_frames)])


def _may_lift(lifter: str | None) -> bool:
    """Whether the ``lifter`` spec can give a lifter (so that one camera is enough)."""
    return lifter not in (None, "none") or (lifter is None and DEFAULT_MODELS["lifter"].is_file())


def process_videos(
    videos_dir: str | Path,
    *,
    calibration_path: str | Path,
    out_dir: str | Path,
    robust: bool = True,
    calibration_units: str | None = None,
    device: str = "auto",
    model: str | Path = "blazepose",
    progress: bool = True,
    refiner: str | None = "none",
    lifter: str | None = "none",
    smooth: bool = False,
    min_cutoff_hz: float | None = None,
    beta: float | None = None,
    timestamps_path: str | Path | None = None,
) -> tuple[ProcessResult, Path, dict]:
    """Run the pipeline on every frame of synchronised videos; write ``poses2d.npz``,
    ``poses3d.npz`` and ``poses3d.csv`` into ``out_dir``.

    Args:
        videos_dir: videos named after the calibration's cameras (``cam01.mp4``); frame t of each
            is the same instant.
        device: where the detector runs (``auto``, ``cpu``, ``cuda``, ``tensorrt``).
        model: ``"blazepose"`` or a model card (:func:`app.detection.open_detector`).
        refiner, lifter, smooth, min_cutoff_hz, beta: as for :func:`process`.
        timestamps_path: a take's ``timestamps.csv``; None: frame / fps.

    Returns:
        The result, the output folder and run statistics (provider, frames, per-view detection
        rate, per-stage latency, cameras without a video, a decoding problem).
    """
    from tqdm import tqdm

    from app.capture.video_files import LockstepVideos, find_videos
    from app.detection import open_detector

    videos_dir, out_dir, calibration_path = Path(videos_dir), Path(out_dir), Path(calibration_path)
    rig_file = read_rig(calibration_path, units=calibration_units)
    logger.info("%s", rig_file.describe())
    rig, videos, missing = match_videos(rig_file.rig, find_videos(videos_dir), source=videos_dir,
                                        calibration_path=calibration_path, min_cameras=1 if _may_lift(lifter) else 2)
    reader = LockstepVideos(videos)  # probes every video: an unreadable one stops here
    refiner_model, lifter_model = load_model("refiner", refiner), load_model("lifter", lifter)
    if len(rig) < 2 and lifter_model is None:
        raise InputFileError(f"{videos_dir}: a video for one camera ({rig.names[0]}) and no lifter installed; "
                             "triangulation needs at least 2")
    cameras = []
    for name in rig.names:
        info, camera = reader.infos[name], rig[name]
        if (info.width, info.height) != (camera.width, camera.height):
            logger.warning(
                "camera %s: video %s is %dx%d px, the calibration %dx%d px; assuming the calibrated image "
                "was scaled to fit (and letterboxed)", name, info.path.name, info.width, info.height,
                camera.width, camera.height,
            )
        cameras.append(camera.fitted_to_image(info.width, info.height))
    rig = Rig(tuple(cameras))
    pipeline = Pipeline(rig, open_detector(model, device), refiner_model, lifter_model,
                        _smoother(smooth, min_cutoff_hz, beta), robust)
    logger.info("2D keypoints from %s on %s", model, pipeline.provider)
    fps = reader.fps or DEFAULT_FPS
    times = read_frame_times(timestamps_path, len(reader)) if timestamps_path is not None else None
    if times is None:
        times = np.arange(len(reader)) / fps
    sequence = PoseSequence(rig.names)
    try:
        for t, frames in tqdm(reader, total=len(reader), desc="processing", unit="frame", disable=not progress):
            sequence.append(pipeline.process(frames, times[t]))
    except (CrossviewError, KeyboardInterrupt) as exc:
        if len(sequence):
            out_dir.mkdir(parents=True, exist_ok=True)
            sequence.write(out_dir, poses2d_source=str(model))
            logger.warning("stopped at frame %d; the %d frames before it were written to %s",
                           len(sequence), len(sequence), out_dir)
            if isinstance(exc, CrossviewError):
                raise CrossviewError(f"{exc} (stopped at frame {len(sequence)}; the frames before it were written "
                                     f"to {out_dir})") from exc
        raise
    if not len(sequence):
        raise InputFileError(f"{videos_dir}: no frame could be read from the videos ({reader.problem})")
    out_dir.mkdir(parents=True, exist_ok=True)
    sequence.write(out_dir, poses2d_source=str(model))
    result = sequence.result()
    found = np.array([f.found for f in sequence.frames])  # (T, C)
    stages = sequence.stage_ms()
    stats = {
        "provider": pipeline.provider,
        "frames": len(sequence),
        "detection_rate": {name: float(found[:, c].mean()) for c, name in enumerate(rig.names)},
        "detector_ms_median": stages["detect"]["median"],
        "stage_ms": stages,
        "missing_cameras": missing,
        "problem": reader.problem,
    }
    return result, out_dir, stats


def process_take(folder: str | Path, *, out_dir: str | Path | None = None, **options) -> tuple[ProcessResult, Path, dict]:
    """Process a recorded take: ``folder`` holds a calibration, ``videos/<camera>.mp4`` and
    optionally ``timestamps.csv``; the results go into ``folder`` (or ``out_dir``).

    ``options`` are those of :func:`process_videos` (``device``, ``refiner``, ``smooth``, ...).

    Raises:
        InputFileError: no calibration or no ``videos/`` folder in the take; see also
            :func:`process_videos`.
    """
    folder = Path(folder)
    calibration_path = options.pop("calibration_path", None) or find_calibration(folder)
    if calibration_path is None:
        raise InputFileError(
            f"{folder}: no calibration found (looked for {', '.join(CALIBRATION_NAMES)}); copy the rig's "
            "calibration into the take or pass --calibration FILE"
        )
    if not (folder / "videos").is_dir():
        raise InputFileError(f"{folder}: no videos/ folder; a take holds videos/<camera>.mp4 (or pass keypoints)")
    timestamps = folder / "timestamps.csv"
    return process_videos(folder / "videos", calibration_path=calibration_path, out_dir=out_dir or folder,
                          timestamps_path=timestamps if timestamps.is_file() else None, **options)
