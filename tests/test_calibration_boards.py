"""Calibration boards: definitions and files, printable images, detection in rendered views, and the
messages that explain a board that is not found."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from calibration import CalibrationError, Rig, look_at
from calibration.board_detection import BoardDetector, explain_missing_board
from calibration.board_synthesis import project_board, render_board_view
from calibration.boards import Board, board_image, load_board, save_board, save_board_pdf, save_board_png

FACE_UP = Rotation.from_rotvec([np.pi, 0.0, 0.0]).as_matrix()  # board lying on the floor, printed side up
CHARUCO = Board("charuco", 7, 5, 40.0, dictionary="DICT_5X5_100")


def shared_data() -> Path:
    env = os.environ.get("CROSSVIEW_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def camera_over_board(dist=None):
    """A 960x540 camera 0.8 m from a 280 x 200 mm board lying at the origin."""
    return look_at("top", [150, -450, 650], [140, 100, 0], width=960, height=540, focal_px=800,
                   dist=None if dist is None else np.asarray(dist, float))


def rendered(board: Board, camera, R=FACE_UP, t=np.zeros(3)):
    image = render_board_view(camera, board, R, t)
    truth = project_board(Rig((camera,)), board, R[None], t[None])[0, 0]  # (N, 2)
    return image, truth


# ------------------------------------------------------------------------------------------------
# Definitions and files
def test_caliscope_board_file_is_read():
    path = shared_data() / "caliscope_charuco" / "charuco.toml"
    if not path.is_file():
        pytest.skip(f"shared data not available: {path}")
    board = load_board(path)
    assert (board.kind, board.columns, board.rows) == ("charuco", 4, 5)
    assert board.square_mm == pytest.approx(54.0)
    assert board.marker_mm == pytest.approx(40.5)
    assert board.dictionary == "DICT_4X4_1000" and board.inverted and not board.legacy


def test_caliscope_board_size_from_printed_size(tmp_path):
    path = tmp_path / "charuco.toml"
    path.write_text('columns = 4\nrows = 5\nboard_height = 11.0\nboard_width = 8.5\ndictionary = "DICT_4X4_50"\nunits = "inch"\n')
    assert load_board(path).square_mm == pytest.approx(min(8.5 / 4, 11 / 5) * 25.4)


def test_yaml_round_trip_and_errors(tmp_path):
    board = Board("charuco", 6, 8, 30.0, marker_ratio=0.7, dictionary="DICT_6X6_250", legacy=True, inverted=True)
    path = save_board(board, tmp_path / "board.yaml")
    assert load_board(path) == board
    checker = Board("checkerboard", 9, 6, 25.0)
    assert load_board(save_board(checker, tmp_path / "checker.yaml")) == checker

    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nkind: charuco\ncolumns: 4\nrows: 5\nsquare_mm: 54\nsquare_size: 3\n")
    with pytest.raises(CalibrationError, match=r"bad\.yaml.*square_size"):
        load_board(bad)
    bad.write_text("kind: charuco\ncolumns: 4\nrows: 5\nsquare_mm: 54\n")
    with pytest.raises(CalibrationError, match="schema_version"):
        load_board(bad)
    bad.write_text("schema_version: 1\nkind: charuco\ncolumns: 4\nrows: 5\nsquare_mm: 54\ndictionary: DICT_9X9_50\n")
    with pytest.raises(CalibrationError, match="unknown ArUco dictionary"):
        load_board(bad)
    bad.write_text("schema_version: 1\nkind: charuco\ncolumns: four\nrows: 5\nsquare_mm: 54\n")
    with pytest.raises(CalibrationError, match="columns"):
        load_board(bad)
    bad.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(CalibrationError, match="YAML"):
        load_board(bad)
    with pytest.raises(CalibrationError, match="not found"):
        load_board(tmp_path / "missing.yaml")


@pytest.mark.parametrize("legacy", [False, True])
def test_object_points_follow_opencv_ids(legacy):
    board = Board("charuco", 5, 6, 30.0, legacy=legacy)
    opencv = np.asarray(board.opencv_board().getChessboardCorners())
    np.testing.assert_allclose(board.object_points(), opencv, atol=1e-9)


def test_smaller_dictionaries_are_prefixes():
    """The detector swaps DICT_4X4_1000 for DICT_4X4_50 on a 10-marker board: same first ids."""
    big = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_1000).bytesList
    small = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50).bytesList
    np.testing.assert_array_equal(big[:50], small)


def test_printable_png_and_pdf(tmp_path):
    board = replace(CHARUCO, inverted=True)
    png = save_board_png(board, tmp_path / "board.png", dpi=150, margin_mm=10)
    image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    px_per_mm = 150 / 25.4
    assert image.shape == (round(220 * px_per_mm), round(300 * px_per_mm))
    normal = board_image(CHARUCO, pixels_per_mm=px_per_mm, margin_mm=10)
    margin = round(10 * px_per_mm)
    assert image[0, 0] == 255 == normal[0, 0]  # the margin stays white
    np.testing.assert_array_equal(image[margin:-margin, margin:-margin], 255 - normal[margin:-margin, margin:-margin])
    truth = np.array([(x + 10) * px_per_mm - 0.5 for x in board.object_points()[:, 0]])
    found = BoardDetector(board).detect(image).corners
    assert np.nanmax(np.abs(found[:, 0] - truth)) < 1.0  # the printed geometry is where the definition says
    pdf = save_board_pdf(board, tmp_path / "board.pdf", page_mm=(297, 210), dpi=100)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with pytest.raises(CalibrationError, match="does not fit"):
        save_board_pdf(board, tmp_path / "small.pdf", page_mm=(100, 100))


# ------------------------------------------------------------------------------------------------
# Detection in rendered views
@pytest.mark.parametrize(
    "board, dist, mean_px, max_px",
    [
        (CHARUCO, None, 0.6, 1.0),  # measured 0.38 mean, 0.66 max
        (replace(CHARUCO, inverted=True), (-0.25, 0.08, 0.001, 0.0005, 0.0), 0.6, 1.0),  # measured 0.38, 0.76
        (Board("checkerboard", 7, 5, 40.0), (-0.1, 0.02, 0.0, 0.0, 0.0), 0.3, 0.6),  # measured 0.17, 0.42
    ],
    ids=["charuco", "charuco-inverted-distorted", "checkerboard-distorted"],
)
def test_detection_matches_projected_corners(board, dist, mean_px, max_px):
    image, truth = rendered(board, camera_over_board(dist))
    detection = BoardDetector(board).detect(image)
    assert detection.count >= 0.7 * board.corner_count
    error = np.linalg.norm(detection.corners - truth, axis=1)
    assert np.nanmean(error) < mean_px and np.nanmax(error) < max_px


def test_partial_view_gives_nan_for_hidden_corners():
    camera = camera_over_board()
    image, truth = rendered(CHARUCO, camera, t=np.array([400.0, 0.0, 0.0]))  # 9 of 24 corners out of the image
    assert np.isnan(truth[:, 0]).any()
    detection = BoardDetector(CHARUCO).detect(image)
    found = np.isfinite(detection.corners[:, 0])
    assert 6 <= found.sum() < CHARUCO.corner_count
    assert not np.any(found & np.isnan(truth[:, 0]))  # nothing invented where the board is out of view
    assert np.nanmax(np.linalg.norm(detection.corners - truth, axis=1)) < 1.0


def test_nothing_found_in_an_empty_image():
    detection = BoardDetector(CHARUCO).detect(np.full((480, 640, 3), 128, np.uint8))
    assert not detection.found and detection.corners.shape == (CHARUCO.corner_count, 2)


# ------------------------------------------------------------------------------------------------
# Explaining a board that is not found
@pytest.fixture(scope="module")
def board_images():
    image, _ = rendered(CHARUCO, camera_over_board())
    return [image]


@pytest.mark.parametrize(
    "wrong, expected",
    [
        (replace(CHARUCO, dictionary="DICT_4X4_50"), "set dictionary: DICT_5X5_50"),
        (replace(CHARUCO, inverted=True), "set inverted: false"),
        (replace(CHARUCO, columns=5), "more squares than the definition says"),
        (replace(CHARUCO, columns=5, rows=7), "columns: 7, rows: 5"),
    ],
    ids=["dictionary", "inverted", "too-few-squares", "columns-rows-swapped"],
)
def test_missing_board_is_explained(board_images, wrong, expected):
    assert not BoardDetector(wrong).detect(board_images[0]).found
    assert expected in explain_missing_board(wrong, board_images)


def test_checkerboard_counted_by_inner_corners_is_explained():
    image, _ = rendered(Board("checkerboard", 7, 5, 40.0), camera_over_board())
    wrong = Board("checkerboard", 6, 4, 40.0)  # the user counted inner corners
    assert not BoardDetector(wrong).detect(image).found
    assert "set columns: 7, rows: 5" in explain_missing_board(wrong, [image])


def test_explanation_when_no_markers_at_all():
    blank = [np.full((240, 320), 200, np.uint8)]
    assert "no ArUco markers of any dictionary" in explain_missing_board(CHARUCO, blank)
