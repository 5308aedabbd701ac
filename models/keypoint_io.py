"""Reading 2D keypoints and writing 3D poses.

2D keypoints (one subject) are held as :class:`Poses2D`:

- ``keypoints (T, C, J, 2)`` float64 pixels (distorted, as detected), NaN where missing;
- ``confidence (T, C, J)`` in [0, 1], 0 where missing;
- ``camera_names (C,)``, ``joint_set`` (``h36m17``, ``coco17`` or ``blazepose33``) and optional
  ``timestamps (T,)`` in seconds.

Readers, chosen by :func:`load_poses2d` from what the path holds:

- ``poses2d.npz`` — the project's own file (the arrays above);
- a folder of OpenPose-style JSON folders, one per camera (``<camera>_json/`` or ``<camera>/``,
  one ``*.json`` per frame with ``people[i].pose_keypoints_2d = [x, y, c, ...]``), as OpenPose,
  Pose2Sim and rtmlib write them; 17 (COCO), 25 (OpenPose BODY_25), 26 (HALPE_26) and 33
  (BlazePose) keypoints per person;
- a FreeMoCap ``mediapipe*2d*.npy`` array ``(C, T, P, 2|3)`` pixels, whose first 33 points are the
  BlazePose body;
- a folder of DeepLabCut-style CSV files, one per camera (``<camera>.csv`` with the three header
  rows scorer / bodyparts / coords and ``x, y, likelihood`` columns), as anipose reads them; the
  body part names must be those of one of the joint sets.

3D output (:func:`save_poses3d`) is ``poses3d.npz`` and ``poses3d.csv`` in H36M-17 order.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from calibration.errors import InputFileError
from calibration.files.atomic import write_bytes_atomic
from models.skeleton import H36M17, get_skeleton, to_h36m17

logger = logging.getLogger(__name__)

#: OpenPose BODY_25 index of each COCO-17 keypoint (COCO order).
BODY25_TO_COCO17 = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
#: Joint sets the readers accept, by keypoints per person; BODY_25 and HALPE_26 become COCO-17.
_JOINT_SET_BY_COUNT = {17: "coco17", 25: "body25", 26: "halpe26", 33: "blazepose33"}
KNOWN_JOINT_SETS = ("h36m17", "coco17", "blazepose33")


@dataclass(frozen=True, slots=True, eq=False)
class Poses2D:
    """One subject's 2D keypoints in every camera over time.

    Attributes:
        keypoints: (T, C, J, 2) float64 pixels; NaN where missing.
        confidence: (T, C, J) float64 in [0, 1]; 0 where missing.
        camera_names: (C,) names matching the calibration's cameras.
        joint_set: ``"h36m17"``, ``"coco17"`` or ``"blazepose33"``.
        timestamps: (T,) seconds, or None.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    camera_names: tuple[str, ...]
    joint_set: str
    timestamps: np.ndarray | None = None
    source: str = field(default="")

    def __post_init__(self) -> None:
        where = self.source or "2D keypoints"
        kp = np.asarray(self.keypoints, dtype=np.float64)
        if kp.ndim != 4 or kp.shape[-1] != 2:
            raise InputFileError(f"{where}: 'keypoints' must have shape (T, C, J, 2), got {kp.shape}")
        T, C, J, _ = kp.shape
        conf = np.asarray(self.confidence, dtype=np.float64)
        if conf.shape != (T, C, J):
            raise InputFileError(
                f"{where}: 'confidence' must have shape (T, C, J) = {(T, C, J)} to match 'keypoints', got {conf.shape}"
            )
        if self.joint_set not in KNOWN_JOINT_SETS:
            raise InputFileError(
                f"{where}: unknown joint_set {self.joint_set!r}; use one of {', '.join(KNOWN_JOINT_SETS)}"
            )
        expected_j = get_skeleton(self.joint_set).num_joints
        if J != expected_j:
            raise InputFileError(f"{where}: joint_set {self.joint_set!r} has {expected_j} joints, the keypoints have {J}")
        names = tuple(str(n) for n in self.camera_names)
        if len(names) != C:
            raise InputFileError(f"{where}: {len(names)} camera names for {C} cameras in 'keypoints'")
        if len(set(names)) != C:
            raise InputFileError(f"{where}: camera names repeat: {list(names)}")
        if np.isinf(kp).any():
            raise InputFileError(f"{where}: 'keypoints' contains infinite values")
        if np.isnan(conf).any() or conf.min(initial=0.0) < 0 or conf.max(initial=0.0) > 1:
            raise InputFileError(f"{where}: 'confidence' must lie in [0, 1] with no NaN")
        # Missing is NaN with confidence 0, both ways round.
        missing = np.isnan(kp).any(axis=-1) | (conf <= 0)
        kp = kp.copy()
        kp[missing] = np.nan
        conf = np.where(missing, 0.0, conf)
        ts = None
        if self.timestamps is not None:
            ts = np.asarray(self.timestamps, dtype=np.float64)
            if ts.shape != (T,):
                raise InputFileError(f"{where}: 'timestamps' must have shape (T,) = ({T},), got {ts.shape}")
            if not np.all(np.isfinite(ts)):
                raise InputFileError(f"{where}: 'timestamps' contains NaN or infinity")
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "camera_names", names)
        object.__setattr__(self, "timestamps", ts)

    @property
    def num_frames(self) -> int:
        return self.keypoints.shape[0]

    @property
    def num_cameras(self) -> int:
        return self.keypoints.shape[1]

    def to_h36m17(self) -> "Poses2D":
        """The same keypoints mapped to H36M-17 (see :func:`models.skeleton.to_h36m17`)."""
        if self.joint_set == "h36m17":
            return self
        kp, conf = to_h36m17(self.keypoints, self.confidence, self.joint_set)
        return replace(self, keypoints=kp, confidence=conf, joint_set="h36m17")

    def select_cameras(self, names) -> "Poses2D":
        """The cameras named ``names``, in that order."""
        index = [self.camera_names.index(n) for n in names]
        return replace(
            self,
            keypoints=self.keypoints[:, index],
            confidence=self.confidence[:, index],
            camera_names=tuple(names),
        )


# ------------------------------------------------------------------------------------------------
# Atomic writes
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename): all or nothing.

    Raises:
        InputFileError: naming the path when it cannot be written (a full disk, no permission).
    """
    write_bytes_atomic(path, data, error=lambda message: InputFileError(f"{path}: {message}"))


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------
# The project's own files
def save_poses2d(poses: Poses2D, path: str | Path) -> None:
    """Write ``poses`` as a ``poses2d.npz`` file (atomically)."""
    arrays = {
        "keypoints": poses.keypoints.astype(np.float32),
        "confidence": poses.confidence.astype(np.float32),
        "camera_names": np.array(poses.camera_names),
        "joint_set": np.array(poses.joint_set),
    }
    if poses.timestamps is not None:
        arrays["timestamps"] = poses.timestamps
    atomic_write_bytes(Path(path), npz_bytes(**arrays))


def _read_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputFileError(f"{path}: not a readable .npz file ({exc})") from None


def read_poses2d_npz(path: Path) -> Poses2D:
    data = _read_npz(path)
    missing = [k for k in ("keypoints", "confidence", "camera_names", "joint_set") if k not in data]
    if missing:
        raise InputFileError(
            f"{path}: missing array(s) {', '.join(missing)}; a poses2d.npz needs keypoints (T, C, J, 2), "
            "confidence (T, C, J), camera_names (C,) and joint_set"
        )
    joint_set = str(data["joint_set"].item() if data["joint_set"].ndim == 0 else data["joint_set"])
    names = data["camera_names"]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise InputFileError(f"{path}: 'camera_names' must be a 1-D array of strings, got {names.dtype} {names.shape}")
    for key in ("keypoints", "confidence") + (("timestamps",) if "timestamps" in data else ()):
        if data[key].dtype.kind not in "fiu":
            raise InputFileError(f"{path}: '{key}' must be numeric, got dtype {data[key].dtype}")
    return Poses2D(
        keypoints=data["keypoints"],
        confidence=data["confidence"],
        camera_names=tuple(str(n) for n in names),
        joint_set=joint_set,
        timestamps=data.get("timestamps"),
        source=str(path),
    )


# ------------------------------------------------------------------------------------------------
# OpenPose-style JSON folders (OpenPose, Pose2Sim, rtmlib)
def _frame_number(path: Path) -> int:
    numbers = re.findall(r"\d+", path.stem)
    return int(numbers[-1]) if numbers else -1


def _to_common_joint_set(points: np.ndarray, scores: np.ndarray, count_set: str) -> tuple[np.ndarray, np.ndarray, str]:
    """BODY_25 and HALPE_26 -> COCO-17 (keypoints (..., J, 2), scores (..., J))."""
    if count_set == "body25":
        index = list(BODY25_TO_COCO17)
        return points[..., index, :], scores[..., index], "coco17"
    if count_set == "halpe26":  # HALPE_26 starts with the 17 COCO keypoints in COCO order
        return points[..., :17, :], scores[..., :17], "coco17"
    return points, scores, count_set


def _camera_json_folders(root: Path) -> list[tuple[str, Path]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*.json")))
    cameras = []
    for folder in folders:
        name = folder.name[: -len("_json")] if folder.name.endswith("_json") else folder.name
        cameras.append((name, folder))
    return cameras


def read_openpose_folders(root: Path) -> Poses2D:
    """Read ``root/<camera>[_json]/*.json``; frames are ordered by the last number in each file name.

    With several people in a view, the person with the highest summed confidence is kept (and the
    count of such frames is logged).
    """
    cameras = _camera_json_folders(root)
    if not cameras:
        raise InputFileError(f"{root}: no sub-folders with OpenPose .json files (expected <camera>_json/*.json)")
    per_camera: list[list[Path]] = []
    for name, folder in cameras:
        files = sorted(folder.glob("*.json"), key=_frame_number)
        per_camera.append(files)
    counts = {name: len(files) for (name, _), files in zip(cameras, per_camera)}
    num_frames = min(counts.values())
    if len(set(counts.values())) > 1:
        logger.warning("%s: cameras have different frame counts %s; using the first %d frames", root, counts, num_frames)
    num_joints = None
    keypoints = None
    confidence = None
    crowded = 0
    for c, files in enumerate(per_camera):
        for t, file in enumerate(files[:num_frames]):
            try:
                people = json.loads(file.read_text()).get("people", [])
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
                raise InputFileError(f"{file}: not a readable OpenPose JSON file ({exc})") from None
            best = None
            for person in people:
                if not isinstance(person, dict):
                    continue
                try:
                    flat = np.asarray(person.get("pose_keypoints_2d", []), dtype=np.float64).ravel()
                except (TypeError, ValueError):
                    raise InputFileError(f"{file}: pose_keypoints_2d holds non-numeric values") from None
                if flat.size == 0:
                    continue
                if flat.size % 3:
                    raise InputFileError(f"{file}: pose_keypoints_2d has {flat.size} values, not a multiple of 3 (x, y, c)")
                if num_joints is None:
                    num_joints = flat.size // 3
                    if num_joints not in _JOINT_SET_BY_COUNT:
                        raise InputFileError(
                            f"{file}: {num_joints} keypoints per person; supported: 17 (COCO), 25 (BODY_25), "
                            "26 (HALPE_26), 33 (BlazePose)"
                        )
                    keypoints = np.full((num_frames, len(cameras), num_joints, 2), np.nan)
                    confidence = np.zeros((num_frames, len(cameras), num_joints))
                if flat.size // 3 != num_joints:
                    raise InputFileError(f"{file}: {flat.size // 3} keypoints per person, other files have {num_joints}")
                triples = flat.reshape(num_joints, 3)
                if best is None or triples[:, 2].sum() > best[:, 2].sum():
                    best = triples
            if len(people) > 1:
                crowded += 1
            if best is not None:
                keypoints[t, c] = best[:, :2]
                confidence[t, c] = np.clip(best[:, 2], 0.0, 1.0)
    if num_joints is None:
        raise InputFileError(f"{root}: no person found in any JSON file")
    if crowded:
        logger.info("%s: %d view-frames held several people; kept the most confident one in each", root, crowded)
    # OpenPose writes (0, 0, 0) for undetected joints.
    undetected = confidence <= 0
    keypoints[undetected] = np.nan
    points, scores, joint_set = _to_common_joint_set(keypoints, confidence, _JOINT_SET_BY_COUNT[num_joints])
    return Poses2D(points, scores, tuple(n for n, _ in cameras), joint_set, source=str(root))


# ------------------------------------------------------------------------------------------------
# FreeMoCap
def read_freemocap_npy(path: Path, camera_names=None) -> Poses2D:
    """FreeMoCap's ``mediapipe...2d...npy``: (C, T, P, 2|3) pixels; points 0-32 are the BlazePose body.

    FreeMoCap stores no camera names in this file; its calibration lists the cameras in the same
    order, so cameras are named ``cam_0 ... cam_{C-1}`` unless ``camera_names`` is given.
    """
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: not a readable .npy file ({exc})") from None
    if data.ndim != 4 or data.shape[-1] not in (2, 3) or data.shape[2] < 33:
        raise InputFileError(
            f"{path}: expected FreeMoCap 2D data of shape (cameras, frames, points >= 33, 2 or 3), got {data.shape}"
        )
    body = np.transpose(data[:, :, :33, :2], (1, 0, 2, 3)).astype(np.float64)  # (T, C, 33, 2)
    if data.shape[-1] == 3:
        conf = np.clip(np.nan_to_num(np.transpose(data[:, :, :33, 2], (1, 0, 2)), nan=0.0), 0.0, 1.0)
    else:
        conf = np.isfinite(body).all(axis=-1).astype(np.float64)
    names = tuple(camera_names) if camera_names else tuple(f"cam_{i}" for i in range(data.shape[0]))
    return Poses2D(body, conf, names, "blazepose33", source=str(path))


# ------------------------------------------------------------------------------------------------
# DeepLabCut-style CSV folders (anipose)
def _joint_set_from_names(names: list[str], where: Path) -> tuple[str, list[int]]:
    """Find the joint set whose joint names cover ``names`` and the index of each in that set."""
    normalised = [n.strip().lower().replace(" ", "_") for n in names]
    for joint_set in KNOWN_JOINT_SETS:
        joints = [j.lower() for j in get_skeleton(joint_set).joints]
        if set(joints) <= set(normalised):
            return joint_set, [normalised.index(j) for j in joints]
    raise InputFileError(
        f"{where}: body parts {names} do not name all joints of any known joint set "
        f"({', '.join(KNOWN_JOINT_SETS)}); rename the columns to one of them"
    )


def read_dlc_csv_folder(root: Path) -> Poses2D:
    """Read ``root/<camera>.csv`` files with DeepLabCut's three header rows (scorer, bodyparts, coords)."""
    files = sorted(root.glob("*.csv"))
    if not files:
        raise InputFileError(f"{root}: no .csv files")
    per_camera = []
    joint_set = None
    for file in files:
        try:
            rows = list(csv.reader(file.read_text().splitlines()))
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(f"{file}: cannot read ({exc})") from None
        if len(rows) < 4 or len(rows[1]) < 4 or rows[2][1:4] != ["x", "y", "likelihood"]:
            raise InputFileError(
                f"{file}: not a DeepLabCut-style CSV (expected header rows scorer / bodyparts / coords with "
                "x, y, likelihood columns)"
            )
        parts = rows[1][1::3]
        this_set, index = _joint_set_from_names(parts, file)
        if joint_set not in (None, this_set):
            raise InputFileError(f"{file}: joint set {this_set} differs from the other cameras' {joint_set}")
        joint_set = this_set
        try:
            values = np.array([[float(v) if v.strip() else np.nan for v in row[1:]] for row in rows[3:] if row], dtype=np.float64)
        except ValueError as exc:
            raise InputFileError(f"{file}: non-numeric value ({exc})") from None
        if values.ndim != 2 or values.shape[1] != 3 * len(parts):
            raise InputFileError(f"{file}: rows have {values.shape[-1] if values.ndim == 2 else '?'} values, expected {3 * len(parts)}")
        triples = values.reshape(len(values), len(parts), 3)[:, index]  # (T, J, 3)
        per_camera.append(triples)
    num_frames = min(len(t) for t in per_camera)
    stacked = np.stack([t[:num_frames] for t in per_camera], axis=1)  # (T, C, J, 3)
    conf = np.clip(np.nan_to_num(stacked[..., 2], nan=0.0), 0.0, 1.0)
    return Poses2D(stacked[..., :2], conf, tuple(f.stem for f in files), joint_set, source=str(root))


# ------------------------------------------------------------------------------------------------
def load_poses2d(path: str | Path, *, camera_names=None) -> Poses2D:
    """Read 2D keypoints from any supported file or folder (see the module docstring).

    Args:
        path: a ``.npz`` file, a FreeMoCap ``.npy`` file, or a folder (a take or capture folder
            holding ``poses2d.npz``, OpenPose JSON folders, or DeepLabCut-style CSV files).
        camera_names: names for files that carry none (FreeMoCap).

    Raises:
        InputFileError: naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "poses2d.npz").is_file():
            return read_poses2d_npz(path / "poses2d.npz")
        if _camera_json_folders(path):
            return read_openpose_folders(path)
        if any(path.glob("*.csv")):
            return read_dlc_csv_folder(path)
        npys = sorted(path.glob("**/mediapipe*2d*.npy"))
        if npys:
            return read_freemocap_npy(npys[0], camera_names)
        raise InputFileError(
            f"{path}: no 2D keypoints found (looked for poses2d.npz, <camera>_json/ folders of OpenPose JSON, "
            "DeepLabCut-style .csv files and a FreeMoCap mediapipe*2d*.npy)"
        )
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_poses2d_npz(path)
    if suffix == ".npy":
        return read_freemocap_npy(path, camera_names)
    raise InputFileError(f"{path}: unsupported keypoint file type {suffix!r}; use .npz, .npy or a folder")


# ------------------------------------------------------------------------------------------------
# 3D output
def save_poses3d(
    out_dir: str | Path,
    points: np.ndarray,
    reprojection_error: np.ndarray,
    views_used: np.ndarray,
    *,
    timestamps: np.ndarray | None = None,
    extra: dict | None = None,
) -> tuple[Path, Path]:
    """Write ``poses3d.npz`` and ``poses3d.csv`` into ``out_dir`` (each atomically).

    Args:
        points: (T, 17, 3) mm, H36M-17 order, in the calibration's world frame; NaN where unknown.
        reprojection_error: (T, 17) RMS reprojection error in px.
        views_used: (T, 17) number of views each joint was triangulated from.
        timestamps: (T,) seconds, or None (the CSV then has no time column).
        extra: more arrays to store in the npz (e.g. ``points_triangulated``).

    Returns:
        The paths of the npz and csv files.
    """
    out_dir = Path(out_dir)
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (17, 3):
        raise InputFileError(f"points must have shape (T, 17, 3), got {points.shape}")
    arrays = {
        "points": points,
        "reprojection_error": np.asarray(reprojection_error, dtype=np.float32),
        "views_used": np.asarray(views_used, dtype=np.int8),
        "joint_names": np.array(H36M17.joints),
        "units": np.array("mm"),
    }
    if timestamps is not None:
        arrays["timestamps"] = np.asarray(timestamps, dtype=np.float64)
    arrays.update(extra or {})
    npz_path = out_dir / "poses3d.npz"
    atomic_write_bytes(npz_path, npz_bytes(**arrays))

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    header = ["frame"] + (["time_s"] if timestamps is not None else [])
    header += [f"{joint}_{axis}" for joint in H36M17.joints for axis in ("x", "y", "z")]
    writer.writerow(header)
    flat = points.reshape(len(points), -1)
    for t, row in enumerate(flat):
        cells = [str(t)] + ([f"{timestamps[t]:.6f}"] if timestamps is not None else [])
        cells += ["" if np.isnan(v) else f"{v:.3f}" for v in row]
        writer.writerow(cells)
    csv_path = out_dir / "poses3d.csv"
    atomic_write_bytes(csv_path, text.getvalue().encode())
    return npz_path, csv_path
