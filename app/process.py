"""``crossview process``: 2D keypoints + calibration -> 3D poses on disk.

The steps: read the calibration and the keypoints, match cameras by name, map the keypoints to
H36M-17, triangulate every joint of every frame robustly (one vectorised call per chunk of
frames), and write ``poses3d.npz`` / ``poses3d.csv``. The refiner and the single-view lifter plug
in here (``refiner`` / ``lifter`` arguments; only ``"none"`` exists until trained models ship).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration import read_rig
from calibration.errors import CrossviewError, InputFileError
from calibration.rig import Rig
from models.keypoint_io import Poses2D, load_poses2d, save_poses3d

logger = logging.getLogger(__name__)

#: Frames triangulated per vectorised call; bounds memory on long takes (C x chunk x J points).
CHUNK_FRAMES = 2048
CALIBRATION_NAMES = ("calibration.yaml", "calibration.yml", "calibration.toml", "Calib.qca.txt")


@dataclass(frozen=True, slots=True, eq=False)
class ProcessResult:
    """3D poses for a take.

    Attributes:
        points: (T, 17, 3) mm, H36M-17, world frame of the calibration; NaN where unknown.
        reprojection_error_px: (T, 17) RMS reprojection error over the views used.
        views_used: (T, 17) number of views each joint came from.
        camera_names: the cameras used, in view order.
        timestamps: (T,) seconds or None.
    """

    points: np.ndarray
    reprojection_error_px: np.ndarray
    views_used: np.ndarray
    camera_names: tuple[str, ...]
    timestamps: np.ndarray | None

    def summary(self) -> dict:
        """Figures a user checks first: coverage, reprojection error, views per joint."""
        valid = np.isfinite(self.points).all(axis=-1)
        err = self.reprojection_error_px[valid]
        return {
            "frames": int(self.points.shape[0]),
            "joints_triangulated_pct": float(100.0 * valid.mean()) if valid.size else 0.0,
            "reprojection_error_median_px": float(np.median(err)) if err.size else float("nan"),
            "reprojection_error_p95_px": float(np.percentile(err, 95)) if err.size else float("nan"),
            "views_used_mean": float(self.views_used[valid].mean()) if err.size else 0.0,
        }


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


def triangulate_poses(rig: Rig, poses: Poses2D, *, robust: bool = True) -> ProcessResult:
    """Triangulate every H36M-17 joint of every frame.

    Args:
        rig: cameras in the same order as ``poses.camera_names``.
        poses: 2D keypoints in any joint set (mapped to H36M-17 here).
        robust: outlier-robust triangulation (default) or plain confidence-weighted DLT.
    """
    poses = poses.to_h36m17()
    if tuple(rig.names) != tuple(poses.camera_names):
        raise CrossviewError(f"rig cameras {rig.names} are not in the keypoints' order {poses.camera_names}")
    T = poses.num_frames
    points = np.full((T, 17, 3), np.nan)
    error = np.full((T, 17), np.nan)
    views = np.zeros((T, 17), dtype=np.int64)
    for start in range(0, T, CHUNK_FRAMES):
        stop = min(T, start + CHUNK_FRAMES)
        kp = np.moveaxis(poses.keypoints[start:stop], 1, 0)  # (C, t, 17, 2)
        conf = np.moveaxis(poses.confidence[start:stop], 1, 0)  # (C, t, 17)
        result = rig.triangulate(kp, conf, robust=robust)
        points[start:stop] = result.points
        error[start:stop] = result.reprojection_error_px
        views[start:stop] = result.views_used
    return ProcessResult(points, error, views, tuple(rig.names), poses.timestamps)


def process(
    keypoints_path: str | Path,
    *,
    calibration_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    refiner: str = "none",
    lifter: str = "none",
    robust: bool = True,
    calibration_units: str | None = None,
) -> tuple[ProcessResult, Path]:
    """Read, triangulate and write; returns the result and the output folder.

    ``keypoints_path`` may be a take folder; the calibration is then found inside it when
    ``calibration_path`` is not given, and the output goes into it when ``out_dir`` is not given.
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
    if refiner != "none":
        raise CrossviewError(
            f"refiner {refiner!r} is not available: no refiner model is installed in this version; use --refiner none"
        )
    if lifter != "none":
        raise CrossviewError(
            f"lifter {lifter!r} is not available: no lifter model is installed in this version; use --lifter none"
        )
    rig_file = read_rig(calibration_path, units=calibration_units)
    logger.info("%s", rig_file.describe())
    rig = rig_file.rig
    poses = load_poses2d(keypoints_path, camera_names=rig.names)
    rig = match_rig(rig, poses, calibration_path=calibration_path)
    logger.info("triangulating %d frames from %d cameras (%s)", poses.num_frames, poses.num_cameras, ", ".join(rig.names))
    result = triangulate_poses(rig, poses, robust=robust)
    if out_dir is None:
        out_dir = keypoints_path if keypoints_path.is_dir() else keypoints_path.parent
    out_dir = Path(out_dir)
    save_poses3d(out_dir, result.points, result.reprojection_error_px, result.views_used, timestamps=result.timestamps)
    return result, out_dir


# ------------------------------------------------------------------------------------------------
# Videos -> 2D (BlazePose) -> 3D
def match_videos(rig: Rig, videos: dict[str, Path], *, source: Path) -> tuple[Rig, dict[str, Path]]:
    """The cameras that have a video, in calibration order, and their videos.

    Raises:
        InputFileError: a video whose name is not a camera of the calibration (listing both), or
            fewer than two cameras with a video.
    """
    unknown = [name for name in videos if name not in rig.names]
    if unknown:
        raise InputFileError(
            f"{source}: video(s) {', '.join(videos[n].name for n in unknown)} match no camera of the calibration "
            f"({', '.join(rig.names)}); name each video after its camera (e.g. {rig.names[0]}.mp4)"
        )
    names = [n for n in rig.names if n in videos]
    missing = [n for n in rig.names if n not in videos]
    if missing:
        logger.warning("no video for camera(s) %s; using %s", ", ".join(missing), ", ".join(names))
    if len(names) < 2:
        raise InputFileError(f"{source}: videos for {len(names)} camera(s); triangulation needs at least 2")
    return rig.select(names), {n: videos[n] for n in names}


def detect_videos(
    rig: Rig,
    videos: dict[str, Path],
    *,
    device: str = "auto",
    model: str | Path = "blazepose",
    progress: bool = True,
) -> tuple[Poses2D, Rig, dict]:
    """Run the 2D detector on lockstep video frames of every camera.

    Args:
        rig: the cameras, in the order of ``videos``.
        videos: camera name -> video file.
        device: ONNX Runtime device (``auto``, ``cpu``, ``cuda``, ``tensorrt``).
        model: ``"blazepose"`` or a model card (see :func:`app.detection.open_detector`).

    Returns:
        The 2D keypoints (``(T, C, J, 2)`` px: BlazePose-33, or H36M-17 for card models), the rig fitted to the videos'
        frame sizes, and run statistics (provider, per-view detection rate, timings, problems).
    """
    from tqdm import tqdm

    from app.capture.video_files import LockstepVideos
    from app.detection import open_detector

    reader = LockstepVideos(videos)
    cameras = []
    for name in rig.names:
        info = reader.infos[name]
        camera = rig[name]
        if (info.width, info.height) != (camera.width, camera.height):
            logger.warning(
                "camera %s: video %s is %dx%d px, the calibration %dx%d px; assuming the calibrated image "
                "was scaled to fit (and letterboxed)", name, info.path.name, info.width, info.height,
                camera.width, camera.height,
            )
        cameras.append(camera.fitted_to_image(info.width, info.height))
    rig = Rig(tuple(cameras))
    detector = open_detector(model, device)
    logger.info("2D keypoints from %s on %s", model, detector.provider)
    J = 33 if detector.joint_set == "blazepose33" else 17
    T, C = len(reader), len(rig)
    keypoints = np.full((T, C, J, 2), np.nan)
    confidence = np.zeros((T, C, J))
    found = np.zeros((T, C), dtype=bool)
    timings: list[float] = []
    frames_done = 0
    for t, frames in tqdm(reader, total=T, desc="detecting", unit="frame", disable=not progress):
        result = detector(frames, rig)
        keypoints[t] = result.keypoints
        confidence[t] = result.confidence
        found[t] = result.found
        timings.append(result.milliseconds)
        frames_done = t + 1
    keypoints, confidence, found = keypoints[:frames_done], confidence[:frames_done], found[:frames_done]
    fps = reader.fps or 30.0
    poses = Poses2D(
        keypoints=keypoints,
        confidence=np.clip(confidence, 0.0, 1.0),
        camera_names=rig.names,
        joint_set=detector.joint_set,
        timestamps=np.arange(frames_done) / fps,
        source=str(model),
    )
    stats = {
        "provider": detector.provider,
        "frames": frames_done,
        "detection_rate": {name: float(found[:, c].mean()) if frames_done else 0.0 for c, name in enumerate(rig.names)},
        "detector_ms_median": float(np.nanmedian(timings)) if timings else float("nan"),
        "problem": reader.problem,
    }
    return poses, rig, stats


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
) -> tuple[ProcessResult, Path, dict]:
    """Detect, triangulate and write ``poses2d.npz``, ``poses3d.npz`` and ``poses3d.csv``."""
    from app.capture.video_files import find_videos
    from models.keypoint_io import save_poses2d

    videos_dir = Path(videos_dir)
    rig_file = read_rig(calibration_path, units=calibration_units)
    logger.info("%s", rig_file.describe())
    rig, videos = match_videos(rig_file.rig, find_videos(videos_dir), source=videos_dir)
    poses, rig, stats = detect_videos(rig, videos, device=device, model=model, progress=progress)
    if poses.num_frames == 0:
        raise InputFileError(f"{videos_dir}: no frame could be read from the videos ({stats['problem']})")
    out_dir = Path(out_dir)
    save_poses2d(poses, out_dir / "poses2d.npz")
    result = triangulate_poses(rig, poses, robust=robust)
    save_poses3d(out_dir, result.points, result.reprojection_error_px, result.views_used, timestamps=result.timestamps)
    return result, out_dir, stats
