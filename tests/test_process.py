"""``crossview process`` end to end: files in, 3D out, clear errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.process import process
from calibration import Rig, look_at, save_rig
from models.keypoint_io import Poses2D, save_poses2d


def _rig(num_cameras: int = 3) -> Rig:
    cameras = []
    for i in range(num_cameras):
        angle = 2 * np.pi * i / num_cameras + 0.3
        center = [3500 * np.cos(angle), 3500 * np.sin(angle), 1400 + 200 * i]
        cameras.append(
            look_at(f"cam{i + 1}", center, [0, 0, 900], width=1280, height=720, focal_px=1100,
                    dist=[-0.05 * i, 0.01, 0.0005, -0.0003, 0.0])
        )
    return Rig(tuple(cameras))


def _take(tmp_path: Path, rng, T: int = 20, noise_px: float = 0.0) -> tuple[Path, np.ndarray, Rig]:
    """A take folder with calibration.yaml and poses2d.npz (H36M-17) of a moving random pose."""
    rig = _rig()
    base = rng.normal(scale=250, size=(17, 3)) + [0, 0, 1000]
    drift = np.linspace(0, 400, T)[:, None, None] * np.array([1.0, 0.5, 0.0])
    truth = base[None] + drift  # (T, 17, 3) mm
    kp = np.moveaxis(rig.project(truth), 0, 1)  # (T, C, 17, 2)
    kp = kp + rng.normal(scale=noise_px, size=kp.shape) if noise_px else kp
    conf = np.ones(kp.shape[:-1])
    folder = tmp_path / "take"
    save_rig(rig, folder / "calibration.yaml")
    save_poses2d(Poses2D(kp, conf, rig.names, "h36m17", timestamps=np.arange(T) / 30), folder / "poses2d.npz")
    return folder, truth, rig


def test_process_take_folder_recovers_truth(tmp_path: Path) -> None:
    """Noise-free keypoints (stored as float32 px) triangulate back to within 0.05 mm."""
    folder, truth, _ = _take(tmp_path, np.random.default_rng(0))
    result, out = process(folder)
    assert out == folder
    assert np.nanmax(np.linalg.norm(result.points - truth, axis=-1)) < 0.05
    with np.load(folder / "poses3d.npz") as data:
        assert data["points"].shape == (20, 17, 3)
        assert data["views_used"].min() == 3
    header = (folder / "poses3d.csv").read_text().splitlines()[0]
    assert header.startswith("frame,time_s,pelvis_x")


def test_cli_process_prints_summary(tmp_path: Path, capsys) -> None:
    folder, _, _ = _take(tmp_path, np.random.default_rng(1), noise_px=1.0)
    out = tmp_path / "out"
    assert main(["process", str(folder / "poses2d.npz"), "--calibration", str(folder / "calibration.yaml"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "100.0 % of joints triangulated" in text and "reprojection error: median" in text
    assert (out / "poses3d.csv").exists()


def test_camera_names_must_match(tmp_path: Path, capsys) -> None:
    """A calibration for other cameras is refused with both name lists in the message."""
    folder, _, rig = _take(tmp_path, np.random.default_rng(2))
    renamed = Rig(tuple(c.__class__(f"other{i}", c.width, c.height, c.K, c.dist, c.R, c.t) for i, c in enumerate(rig)))
    save_rig(renamed, tmp_path / "other.yaml")
    code = main(["process", str(folder), "--calibration", str(tmp_path / "other.yaml"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "cam1" in err and "other0" in err and "other.yaml" in err
    assert not (tmp_path / "o" / "poses3d.npz").exists()


def test_a_refiner_that_cannot_be_loaded_is_a_clear_error(tmp_path: Path, capsys) -> None:
    folder, _, _ = _take(tmp_path, np.random.default_rng(3))
    assert main(["process", str(folder), "--refiner", str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr().err
    assert "refiner" in err and "Traceback" not in err
    assert not (folder / "poses3d.npz").exists()


def test_missing_calibration_is_a_clear_error(tmp_path: Path, capsys) -> None:
    folder, _, _ = _take(tmp_path, np.random.default_rng(4))
    (folder / "calibration.yaml").unlink()
    assert main(["process", str(folder)]) == 2
    assert "no calibration found" in capsys.readouterr().err


def test_cli_errors_are_not_tracebacks(tmp_path: Path) -> None:
    """Run the real console entry point on a corrupt file: one line on stderr, exit status 2."""
    bad = tmp_path / "poses2d.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "calibration.yaml").write_text("schema_version: 1\ncameras: []\n")
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "process", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")


def test_output_folder_that_cannot_be_written(tmp_path: Path, capsys) -> None:
    folder, _, _ = _take(tmp_path, np.random.default_rng(5))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(["process", str(folder), "--out", str(blocker / "sub")]) == 2
    assert "error:" in capsys.readouterr().err
