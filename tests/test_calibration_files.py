"""Calibration files: exact round trips, unit inference, format detection, atomic writes, and the
two real calibrations in ../shared/data checked against their own footage."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
import tomllib
import yaml

from models.synthetic.mocap import shared_data_dir
from calibration import CalibrationError, CrossviewError, Rig, look_at
from calibration.camera import Camera
from calibration.files import (
    METRES_BELOW_SPACING,
    ROTATION_CONVENTION,
    infer_units,
    load_rig,
    read_anipose,
    read_rig,
    save_rig,
)




def shared_file(*parts: str) -> Path:
    path = shared_data_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def random_rig(rng: np.random.Generator, *, num_cameras: int = 4, model: str = "pinhole", num_dist: int = 5) -> Rig:
    """Cameras on a ~3 m circle looking at the origin, with deliberately 'ugly' floats everywhere."""
    cameras = []
    for i in range(num_cameras):
        angle = 2 * np.pi * i / num_cameras + rng.uniform(-0.3, 0.3)
        center = np.array([3000 * np.cos(angle), 3000 * np.sin(angle), rng.uniform(1200, 2500)])
        base = look_at(f"cam{i:02d}", center, rng.normal(0, 200, 3) + [0, 0, 1000],
                       width=int(rng.choice([1280, 1920, 1088])), height=int(rng.choice([720, 1080, 1920])),
                       focal_px=rng.uniform(800, 1800))
        K = base.K.copy()
        K[0, 0] *= 1 + rng.normal(0, 1e-3)
        K[1, 1] *= 1 + rng.normal(0, 1e-3)
        K[:2, 2] += rng.normal(0, 5, 2)
        K[0, 1] = rng.normal(0, 1e-3)
        dist = rng.normal(0, 0.05, num_dist) * np.logspace(0, -3, num_dist)
        cameras.append(Camera(name=base.name, width=base.width, height=base.height, K=K, dist=dist,
                              R=base.R, t=base.t + rng.normal(0, 1e-6, 3), model=model))
    return Rig(tuple(cameras))


def assert_identical(a: Rig, b: Rig) -> None:
    assert a.names == b.names
    for ca, cb in zip(a, b):
        assert (ca.width, ca.height, ca.model) == (cb.width, cb.height, cb.model)
        for field in ("K", "dist", "R", "t"):
            assert np.array_equal(getattr(ca, field), getattr(cb, field)), (ca.name, field)


def max_difference(a: Rig, b: Rig, field: str) -> float:
    return max(float(np.abs(getattr(ca, field) - getattr(cb, field)).max()) for ca, cb in zip(a, b))


def caliscope_text(rig: Rig) -> str:
    """``rig`` as caliscope writes a camera_array.toml (rotation 3x3, translation in metres)."""
    import tomli_w

    cameras = {}
    for index, cam in enumerate(rig):
        cameras[str(index)] = {
            "cam_id": index, "rotation_count": 0, "error": 0.4, "exposure": -7, "grid_count": 30,
            "ignore": False, "size": [cam.width, cam.height], "matrix": cam.K.tolist(),
            "distortions": cam.dist.tolist(), "verified_resolutions": [[640, 480], [cam.width, cam.height]],
            "translation": (cam.t / 1000).tolist(), "rotation": cam.R.tolist(),
        }
    return tomli_w.dumps({"cameras": cameras})


def qualisys_text(rig: Rig) -> str:
    """``rig`` as a Qualisys .qca.txt: the exact inverse of the reader's documented convention."""

    def attributes(**values: float) -> str:
        return " ".join(f'{key}="{float(value)!r}"' for key, value in values.items())

    flip = np.diag([1.0, -1.0, -1.0])
    cameras = []
    for cam in rig:
        M = flip @ cam.R  # rows: the camera's axes in Qualisys' camera frame
        k1, k2, p1, p2, k3 = cam.dist
        rotation = attributes(**{f"r{i + 1}{j + 1}": M[i, j] for i in range(3) for j in range(3)})
        position = attributes(x=cam.center[0], y=cam.center[1], z=cam.center[2])
        intrinsic = attributes(
            centerPointU=cam.K[0, 2] * 64, centerPointV=cam.K[1, 2] * 64, focalLengthU=cam.K[0, 0] * 64,
            focalLengthV=cam.K[1, 1] * 64, focallength=9.3, skew=cam.K[0, 1] * 64, sensorMinU=0, sensorMinV=0,
            sensorMaxU=cam.width * 64, sensorMaxV=cam.height * 64, radialDistortion1=k1, radialDistortion2=k2,
            radialDistortion3=k3, tangentalDistortion1=p1, tangentalDistortion2=p2,
        )
        cameras.append(
            f'    <camera active="1" avg-residual="0.4" model="Miqus Video" serial="{cam.name}" viewrotation="0">\n'
            f'      <fov_video bottom="{cam.height - 1}" left="0" right="{cam.width - 1}" top="0"/>\n'
            f"      <transform {rotation} {position}/>\n"
            f"      <intrinsic {intrinsic}/>\n"
            "    </camera>"
        )
    return (
        "<?xml version='1.0' encoding='ASCII'?>\n<calibration type=\"regular\">\n  <cameras>\n"
        + "\n".join(cameras)
        + "\n  </cameras>\n</calibration>\n"
    )


# --------------------------------------------------------------------------------------------
# Round trips
@pytest.mark.parametrize("model, num_dist", [("pinhole", 0), ("pinhole", 4), ("pinhole", 5), ("pinhole", 8),
                                             ("pinhole", 14), ("fisheye", 4)])
def test_native_yaml_round_trip_is_bit_exact(tmp_path: Path, model: str, num_dist: int) -> None:
    """Crossview YAML writes floats in shortest round-trip repr: every value comes back bit for bit."""
    rig = random_rig(np.random.default_rng(num_dist), model=model, num_dist=num_dist)
    path = save_rig(rig, tmp_path / "rig.yaml", metadata={"solver": "test", "rms_px": np.float64(0.25)})
    loaded = read_rig(path)
    assert loaded.format == "native" and loaded.units == "mm" and loaded.units_source == "file"
    assert dict(loaded.metadata) == {"solver": "test", "rms_px": 0.25}
    assert_identical(rig, loaded.rig)
    # ... and the file is the documented, human-readable layout.
    document = yaml.safe_load(path.read_text())
    assert list(document) == ["schema_version", "units", "rotation_convention", "metadata", "cameras"]
    assert document["rotation_convention"] == ROTATION_CONVENTION
    assert path.read_text().startswith("# Crossview camera calibration")


def test_native_yaml_round_trip_exact_for_extreme_floats(tmp_path: Path) -> None:
    """Tiny, huge and subnormal-looking values survive YAML (PyYAML needs '1.0e-05', not '1e-05')."""
    K = np.array([[1e16 + 2, 1e-300, 5e-324 * 3], [0.0, 1.0000000000000002, 0.1 + 0.2], [0, 0, 1]])
    cam = Camera("odd", 10, 10, K, dist=[1e-5, -1e-17, 123456789.123, 0.0, -0.0], t=[1e-5, 1e17, -3.3e-7])
    path = save_rig(Rig((cam,)), tmp_path / "odd.yml")
    assert_identical(Rig((cam,)), load_rig(path))


def test_native_yaml_in_metres(tmp_path: Path) -> None:
    """units: m divides t by 1000 on write and multiplies back on read (relative error <= 1e-15)."""
    rig = random_rig(np.random.default_rng(1))
    path = save_rig(rig, tmp_path / "rig.yaml", units="m")
    assert yaml.safe_load(path.read_text())["units"] == "m"
    back = load_rig(path)
    assert max_difference(rig, back, "t") <= 1e-15 * 5000
    with pytest.raises(CalibrationError, match="states units: m"):
        load_rig(path, units="mm")
    assert load_rig(path, units="m").isclose(back, atol=0)


@pytest.mark.parametrize("model, num_dist", [("pinhole", 4), ("pinhole", 5), ("pinhole", 8), ("fisheye", 4)])
def test_anipose_toml_round_trip(tmp_path: Path, model: str, num_dist: int) -> None:
    """anipose stores R as a Rodrigues vector: R comes back within 1e-14 (measured <= 8.9e-16 over 800 random rigs), the
    other fields bit for bit."""
    rig = random_rig(np.random.default_rng(10 + num_dist), model=model, num_dist=num_dist)
    path = save_rig(rig, tmp_path / "calibration.toml", metadata={"error": 0.3})
    loaded = read_rig(path)
    assert loaded.format == "anipose" and loaded.units == "mm" and loaded.units_source == "file"
    assert loaded.metadata["error"] == 0.3
    assert max_difference(rig, loaded.rig, "R") < 1e-14
    for ca, cb in zip(rig, loaded.rig):
        assert ca.name == cb.name and ca.model == cb.model and (ca.width, ca.height) == (cb.width, cb.height)
        for field in ("K", "dist", "t"):
            assert np.array_equal(getattr(ca, field), getattr(cb, field))
    document = tomllib.loads(path.read_text())
    assert document["cam_0"]["fisheye"] is (model == "fisheye")
    assert len(document["cam_0"]["distortions"]) == num_dist


def test_anipose_rotation_precision_near_180_degrees(tmp_path: Path) -> None:
    """Rotations within 1e-12..1e-1 rad of 180 degrees survive the Rodrigues vector to 1e-14
    (measured 8.6e-16; cv2.Rodrigues matrix->vector would lose up to 2e-5 there)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(12)
    cameras = []
    for i in range(50):
        axis = rng.normal(size=3)
        angle = np.pi - 10 ** rng.uniform(-12, -1)
        R = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
        cameras.append(Camera(f"c{i}", 640, 480, np.diag([500.0, 500.0, 1.0]), R=R, t=rng.normal(0, 1000, 3)))
    rig = Rig(tuple(cameras))
    assert max_difference(rig, load_rig(save_rig(rig, tmp_path / "near_pi.toml")), "R") < 1e-14


def test_synthetic_caliscope_and_qualisys_files_read_back(tmp_path: Path) -> None:
    """Files written in the two read-only layouts (by the helpers above) give the rig back: caliscope
    to 1e-12 mm (metres -> mm), Qualisys to 1e-9 (subpixel units and the axis flip)."""
    rig = random_rig(np.random.default_rng(9))
    caliscope = tmp_path / "camera_array.toml"
    caliscope.write_text(caliscope_text(rig))
    loaded = read_rig(caliscope)
    assert loaded.format == "caliscope" and loaded.rig.names == ("cam_0", "cam_1", "cam_2", "cam_3")
    for a, b in zip(rig, loaded.rig):
        assert np.array_equal(a.K, b.K) and np.array_equal(a.R, b.R) and np.abs(a.t - b.t).max() < 1e-12
    qualisys = tmp_path / "rig.qca.txt"
    qualisys.write_text(qualisys_text(rig))
    loaded = read_rig(qualisys)
    assert loaded.format == "qualisys" and loaded.rig.isclose(rig, atol=1e-9)


def test_save_format_choice(tmp_path: Path) -> None:
    rig = random_rig(np.random.default_rng(3))
    save_rig(rig, tmp_path / "as_toml.yaml", format="anipose")
    assert tomllib.loads((tmp_path / "as_toml.yaml").read_text())["metadata"]["units"] == "mm"
    save_rig(rig, tmp_path / "native.txt", format="native")
    with pytest.raises(CalibrationError, match="extension"):
        save_rig(rig, tmp_path / "rig.txt")
    with pytest.raises(CalibrationError, match="cannot write format"):
        save_rig(rig, tmp_path / "rig.toml", format="qualisys")
    with pytest.raises(CalibrationError, match="unknown length unit"):
        save_rig(rig, tmp_path / "rig.toml", units="inch")


def test_load_picks_the_reader_from_content_not_name(tmp_path: Path) -> None:
    """A TOML named .yaml and a YAML named .toml (or .txt) both load."""
    rig = random_rig(np.random.default_rng(4))
    yaml_text = (save_rig(rig, tmp_path / "a.yaml")).read_text()
    toml_text = (save_rig(rig, tmp_path / "a.toml")).read_text()
    (tmp_path / "yaml_named.toml").write_text(yaml_text)
    (tmp_path / "toml_named.yaml").write_text(toml_text)
    (tmp_path / "yaml_named.txt").write_text(yaml_text)
    assert read_rig(tmp_path / "yaml_named.toml").format == "native"
    assert read_rig(tmp_path / "yaml_named.txt").format == "native"
    assert read_rig(tmp_path / "toml_named.yaml").format == "anipose"
    assert load_rig(tmp_path / "toml_named.yaml").isclose(rig, atol=1e-9)


# --------------------------------------------------------------------------------------------
# Units of anipose files
def _strip_units(path: Path) -> Path:
    """The same anipose file without crossview's [metadata] units, as other tools write it."""
    text = path.read_text()
    stripped = path.with_name(path.stem + "_nounits.toml")
    stripped.write_text(text.replace('units = "m"\n', "").replace('units = "mm"\n', ""))
    assert "units" not in tomllib.loads(stripped.read_text()).get("metadata", {})
    return stripped


def test_anipose_unit_inference_metres_and_millimetres(tmp_path: Path) -> None:
    """Pose2Sim-style files (metres) and FreeMoCap-style files (mm) both come back in mm."""
    rig = random_rig(np.random.default_rng(5))
    in_m = _strip_units(save_rig(rig, tmp_path / "metres.toml", units="m"))
    in_mm = _strip_units(save_rig(rig, tmp_path / "millimetres.toml", units="mm"))

    from_m = read_anipose(in_m)
    assert (from_m.units, from_m.units_source) == ("m", "inferred")
    assert from_m.units_note.startswith("assumed metres from camera spacing")
    assert from_m.rig.isclose(rig, atol=1e-9)

    from_mm = read_rig(in_mm)
    assert (from_mm.units, from_mm.units_source) == ("mm", "inferred")
    assert from_mm.rig.isclose(rig, atol=1e-9)

    # An override wins over the guess: the same metre file read as centimetres is 10x smaller.
    as_cm = read_rig(in_m, units="cm")
    assert (as_cm.units, as_cm.units_source) == ("cm", "caller")
    np.testing.assert_allclose(as_cm.rig.centers * 100, rig.centers, rtol=1e-12)
    assert as_cm.describe().startswith("metres_nounits.toml: 4 cameras, anipose TOML")

    # A unit the file states cannot be overridden into something else.
    with pytest.raises(CalibrationError, match="states units"):
        load_rig(tmp_path / "metres.toml", units="mm")


def test_infer_units_threshold() -> None:
    """The rule: median spacing under 50 -> metres; 0.3-20 m rigs are metres, 300-20000 mm rigs mm."""
    assert METRES_BELOW_SPACING == 50.0
    for spacing, expected in [(0.3, "m"), (2.0, "m"), (20.0, "m"), (300.0, "mm"), (2000.0, "mm"), (20000.0, "mm")]:
        centers = np.array([[0, 0, 0], [spacing, 0, 0], [0, spacing, 0]], dtype=float)
        assert infer_units(centers)[0] == expected, spacing
    assert infer_units(np.array([[0.0, 0.0, 2.5]]))[0] == "m"  # one camera: its distance from the origin
    assert infer_units(np.zeros((1, 3)))[0] == "mm"


def test_pose2sim_style_anipose_file(tmp_path: Path) -> None:
    """Float sizes, 4 distortion coefficients, metres, [metadata] without units: as Pose2Sim writes."""
    text = """
[cam_01]
name = "cam_01"
size = [ 1088.0, 1920.0]
matrix = [ [ 1681.5, 0.0, 533.25], [ 0.0, 1681.0, 948.5], [ 0.0, 0.0, 1.0]]
distortions = [ -0.0007, 0.0021, 1e-05, 1.5e-05]
rotation = [ 1.6, 1.0, -0.4]
translation = [ 0.32, 0.95, 2.9]
fisheye = false

[cam_02]
name = "cam_02"
size = [ 1088.0, 1920.0]
matrix = [ [ 1673.0, 0.0, 534.0], [ 0.0, 1673.5, 963.0], [ 0.0, 0.0, 1.0]]
distortions = [ -0.0007, 0.0021, 1e-05, 4e-06]
rotation = [ 1.3, 1.6, -1.2]
translation = [ -0.11, 0.77, 3.07]
fisheye = false

[metadata]
adjusted = false
error = 0.0
"""
    path = tmp_path / "Calib_pose2sim.toml"
    path.write_text(text)
    loaded = read_rig(path)
    assert loaded.units == "m" and loaded.rig.names == ("cam_01", "cam_02")
    np.testing.assert_allclose(loaded.rig["cam_01"].t, [320.0, 950.0, 2900.0])
    assert loaded.rig["cam_01"].width == 1088 and loaded.rig["cam_01"].dist.shape == (4,)


# --------------------------------------------------------------------------------------------
# Atomic writes and errors
def test_failed_write_leaves_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = random_rig(np.random.default_rng(6))
    path = save_rig(rig, tmp_path / "rig.yaml")
    os.chmod(path, 0o640)
    before = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(CalibrationError, match="rig.yaml: cannot write: No space left on device"):
        save_rig(rig.select(["cam00"]), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rig.yaml"]  # no temporary file left
    save_rig(rig.select(["cam00"]), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # permissions kept across the rename
    assert load_rig(path).names == ("cam00",)
    assert load_rig(save_rig(rig, tmp_path / "new" / "folder" / "rig.yaml")).names == rig.names
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(CalibrationError, match="cannot create the folder"):
        save_rig(rig, tmp_path / "a_file" / "rig.yaml")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.yaml", b"", "the file is empty"),
        ("blank.toml", b"  \n\n", "the file is empty"),
        ("binary.yaml", bytes(range(256)) * 4, "not a text file"),
        ("list.yaml", b"- 1\n- 2\n", "no camera calibration in a known layout"),
        ("other.toml", b"[tool]\nx = 1\n", "no camera calibration in a known layout"),
        ("broken.toml", b"[cam_0]\nname = \n", "not valid TOML"),
        ("broken.yaml", b"schema_version: 1\ncameras: [\n", "not valid YAML"),
        ("page.xml", b"<html><body/></html>", "root <html>"),
        ("bomb.qca.txt", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><calibration/>', "DOCTYPE"),
        ("notes.txt", b"just some words: [ unbalanced", "not a calibration file crossview reads"),
    ],
)
def test_unreadable_files_raise_calibration_error_naming_the_file(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CalibrationError, match=message) as info:
        load_rig(path)
    assert str(info.value).startswith(str(path))
    assert isinstance(info.value, CrossviewError)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="calibration file not found"):
        load_rig(tmp_path / "nope.yaml")
    with pytest.raises(CalibrationError, match="is a folder"):
        load_rig(tmp_path)


def _native_document(rig: Rig, tmp_path: Path) -> dict:
    return yaml.safe_load(save_rig(rig, tmp_path / "base.yaml").read_text())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["cameras"][1].pop("K"), "camera 'cam01', field 'K': missing"),
        (lambda d: d["cameras"][1].__setitem__("Kmatrix", 1), "camera 'cam01', field 'Kmatrix': unknown key"),
        (lambda d: d.__setitem__("colour", "red"), "field 'colour': unknown key"),
        (lambda d: d["cameras"][0].__setitem__("R", [[1, 0, 0], [0, 1, 0]]), "field 'R': expected a 3x3"),
        (lambda d: d["cameras"][0].__setitem__("R", [[1, 0, 0], [0, 1, 0], [0, 0, -1]]), "det = -1"),
        (lambda d: d["cameras"][0].__setitem__("R", [[2, 0, 0], [0, 1, 0], [0, 0, 1]]), "not a rotation"),
        (lambda d: d["cameras"][0]["t"].__setitem__(1, float("nan")), "field 't': contains NaN"),
        (lambda d: d["cameras"][0].__setitem__("width", "wide"), "field 'width': must be a whole number"),
        (lambda d: d["cameras"][0].__setitem__("name", 1), "must be a non-empty string"),
        (lambda d: d["cameras"][2].__setitem__("name", "cam00"), "repeated: cam00"),
        (lambda d: d["cameras"][0].__setitem__("model", "fish"), "field 'model': must be pinhole or fisheye"),
        (lambda d: d["cameras"][0].__setitem__("dist", [0.1, 0.2, 0.3]), "field 'dist': pinhole model takes"),
        (lambda d: d.__setitem__("schema_version", 2), "newer crossview"),
        (lambda d: d.__setitem__("units", "inch"), "unknown length unit"),
        (lambda d: d.__setitem__("rotation_convention", "R_world_from_cam"), "understands only"),
        (lambda d: d.__setitem__("cameras", []), "non-empty list"),
    ],
)
def test_native_errors_name_file_camera_and_field(tmp_path: Path, mutate, message: str) -> None:
    document = _native_document(random_rig(np.random.default_rng(7)), tmp_path)
    mutate(document)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(CalibrationError) as info:
        load_rig(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_anipose_errors_use_the_files_field_names(tmp_path: Path) -> None:
    text = save_rig(random_rig(np.random.default_rng(8)), tmp_path / "ok.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("fisheye = false", "fisheye = 0", 1))
    with pytest.raises(CalibrationError, match=r"bad.toml: camera 'cam00', field 'fisheye': must be true or false"):
        load_rig(bad)
    bad.write_text(text.replace("[0.0, 0.0, 1.0]]", "[0.0, 1.0, 1.0]]", 1))
    with pytest.raises(CalibrationError, match=r"camera 'cam00', field 'matrix': not an upper-triangular"):
        load_rig(bad)


# --------------------------------------------------------------------------------------------
# The real calibrations in ../shared/data
def test_qualisys_file_loads_and_every_camera_sees_the_volume() -> None:
    """Pose2Sim demo: 4 portrait cameras ~2.5-4.5 m from the capture volume, all facing it.

    The volume centre is taken as the mean camera position at 1 m height (world Z up, mm). Every
    camera has it in front (measured depths 2972-3540 mm) and inside its image (measured pixels
    (404-562, 744-804) in 1088x1920 images).
    """
    loaded = read_rig(shared_file("pose2sim_demo_single", "calibration", "Calib.qca.txt"))
    rig = loaded.rig
    assert loaded.format == "qualisys" and loaded.units == "mm"
    assert rig.names == ("cam01", "cam02", "cam03", "cam04")
    for cam in rig:
        assert (cam.width, cam.height) == (1088, 1920)
        assert 1600 < cam.K[0, 0] < 1700 and abs(cam.K[0, 2] - 543.5) < 40 and abs(cam.K[1, 2] - 959.5) < 40
    np.testing.assert_allclose(rig["cam01"].center, [1460.2323709212087, -1909.1590482454608, 1896.5058524092062])
    volume_centre = np.array([*rig.centers[:, :2].mean(axis=0), 1000.0])
    for cam, pixel in zip(rig, rig.project(volume_centre)):
        depth = cam.to_camera(volume_centre)[2]
        assert 2000 < depth < 5000, (cam.name, depth)
        assert 0 <= pixel[0] < cam.width and 0 <= pixel[1] < cam.height, (cam.name, pixel)


CAP_FRAMES = (0, 15, 30, 45, 60)


def _cap_pixels(video: Path, frames=CAP_FRAMES) -> np.ndarray:
    """``(F, 2)`` px: centroid of the largest teal blob (the person's swimming cap) in each frame."""
    capture = cv2.VideoCapture(str(video))
    out = np.full((len(frames), 2), np.nan)
    try:
        for index in range(max(frames) + 1):
            assert capture.grab(), f"{video.name}: ended before frame {index}"
            if index in frames:
                ok, frame = capture.retrieve()
                assert ok
                hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
                mask = cv2.inRange(hsv, (80, 100, 60), (100, 255, 255))  # teal; the blue mats are hue > 100
                count, _, stats, centroids = cv2.connectedComponentsWithStats(mask)
                assert count > 1, f"{video.name} frame {index}: no cap found"
                largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
                assert stats[largest, cv2.CC_STAT_AREA] > 1500  # measured 2900-8100 px
                out[frames.index(index)] = centroids[largest]
    finally:
        capture.release()
    return out


def _triangulate(cameras, pixels: np.ndarray) -> np.ndarray:
    """Linear (DLT) triangulation of one point: pixels ``(V, 2)`` -> ``(3,)`` mm."""
    rows = []
    for cam, pixel in zip(cameras, pixels):
        x, y = cam.undistort_points(pixel, normalized=True)
        P = np.hstack([cam.R, cam.t[:, None]])  # (3, 4), normalised coordinates
        rows += [x * P[2] - P[0], y * P[2] - P[1]]
    X = np.linalg.svd(np.array(rows))[2][-1]
    return X[:3] / X[3]


def _leave_one_out(rig: Rig, caps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate from 3 views, reproject into the 4th: errors ``(F*C,)`` px, heights ``(F,)`` mm."""
    errors, heights = [], []
    for f in range(caps.shape[1]):
        heights.append(_triangulate(list(rig), caps[:, f])[2])
        for held_out in range(len(rig)):
            others = [i for i in range(len(rig)) if i != held_out]
            point = _triangulate([rig[i] for i in others], caps[others, f])
            pixel = rig[held_out].project(point)
            errors.append(np.linalg.norm(pixel - caps[held_out, f]) if np.all(np.isfinite(pixel)) else np.inf)
    return np.array(errors), np.array(heights)


def test_qualisys_rotation_direction_by_reprojection_on_real_footage() -> None:
    """The verified Qualisys convention: a real point seen in all four videos is consistent.

    The person's teal swimming cap is found by colour in frames 0, 15, 30, 45 and 60 of each video.
    For every frame and every camera, the cap is triangulated from the other three views and
    reprojected into the held-out one. Measured: median 18.0 px, max 32.2 px (the centroid of the
    visible part of a ~20 cm cap differs between views by a few cm, i.e. ~10-20 px at 3 m); the
    cap triangulates 1453-1647 mm above the floor. The other reading that also keeps the cameras
    facing the volume (Qualisys axes flipped as diag(-1, 1, -1), an image turned 180 degrees)
    gives median 161 px and puts the cap 0.5-0.8 m *under* the floor.
    """
    folder = shared_file("pose2sim_demo_single")
    rig = load_rig(folder / "calibration" / "Calib.qca.txt")
    caps = np.stack([_cap_pixels(folder / "videos" / f"{name}.mp4") for name in rig.names])  # (C, F, 2)
    errors, heights = _leave_one_out(rig, caps)
    assert np.median(errors) < 30 and errors.max() < 60, errors.round(1)
    assert np.all((1200 < heights) & (heights < 2000)), heights

    flip = np.diag([-1.0, -1.0, 1.0])  # the 180-degree alternative
    flipped = Rig(tuple(c.with_pose(flip @ c.R, -(flip @ c.R) @ c.center) for c in rig))
    wrong_errors, wrong_heights = _leave_one_out(flipped, caps)
    assert np.median(wrong_errors) > 100 and np.all(wrong_heights < 0)


def test_qualisys_image_size_against_the_videos() -> None:
    """cam03/cam04 videos are 1088x1920 like the calibration. cam01/cam02 videos are 1080x1920: the
    1088x1920 image was scaled by 1080/1088 to 1080x1906 and padded with 7 black rows above and below
    (measured row means under 4 of 255 in the padding; the row at the
    bottom edge is blended, 13). The loader reports the calibration's own size; callers that
    process those videos must scale K by 1080/1088 and add 7 px to cy, or warn about the mismatch."""
    folder = shared_file("pose2sim_demo_single")
    rig = load_rig(folder / "calibration" / "Calib.qca.txt")
    for cam in rig:
        capture = cv2.VideoCapture(str(folder / "videos" / f"{cam.name}.mp4"))
        ok, frame = capture.read()
        capture.release()
        assert ok
        height, width = frame.shape[:2]
        if cam.name in ("cam03", "cam04"):
            assert (width, height) == (cam.width, cam.height)
        else:
            assert (width, height) == (1080, 1920) and (cam.width, cam.height) == (1088, 1920)
            rows = frame.mean(axis=(1, 2))
            assert rows[:7].max() < 10 and rows[-6:].max() < 10 and rows[8:-8].min() > 20


def test_caliscope_cameras_face_a_common_volume() -> None:
    """caliscope ChArUco sample: translations in metres, rotation world-to-camera.

    The point nearest to all four optical axes lies at depth 959-1107 mm in front of every camera (measured)
    and projects inside every 1280x720 image; camera centres are 0.43-1.43 m apart. Read as
    camera-to-world instead, every camera would have that point behind it.
    """
    loaded = read_rig(shared_file("caliscope_charuco", "camera_array.toml"))
    rig = loaded.rig
    assert loaded.format == "caliscope" and loaded.units == "m" and loaded.units_source == "format"
    assert rig.names == ("cam_0", "cam_1", "cam_2", "cam_3")
    axes = np.stack([cam.R[2] for cam in rig])  # (C, 3) viewing directions in the world
    projectors = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]  # (C, 3, 3)
    target = np.linalg.solve(projectors.sum(0), np.einsum("cij,cj->i", projectors, rig.centers))
    for cam, pixel in zip(rig, rig.project(target)):
        depth = cam.to_camera(target)[2]
        assert 500 < depth < 3000, (cam.name, depth)
        assert 0 <= pixel[0] < cam.width and 0 <= pixel[1] < cam.height
    spacing = np.linalg.norm(rig.centers[:, None] - rig.centers[None], axis=-1)[np.triu_indices(4, 1)]
    assert 300 < spacing.min() and spacing.max() < 3000
    # The transposed reading has every camera facing away.
    wrong_axes = np.stack([cam.R.T[2] for cam in rig])
    wrong_centres = np.stack([cam.t for cam in rig])  # camera-to-world: the centre is t itself
    wrong_projectors = np.eye(3)[None] - wrong_axes[:, :, None] * wrong_axes[:, None, :]
    wrong_target = np.linalg.solve(wrong_projectors.sum(0), np.einsum("cij,cj->i", wrong_projectors, wrong_centres))
    assert np.all(np.einsum("ci,ci->c", wrong_axes, wrong_target - wrong_centres) < 0)
