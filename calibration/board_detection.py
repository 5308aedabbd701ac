"""Finding a calibration board in an image, and saying why when it is not found.

:class:`BoardDetector` returns the board's inner corners at sub-pixel precision as an ``(N, 2)``
array in board-corner order (NaN where a corner was not seen), so views from many frames and
cameras stack into ``(C, F, N, 2)`` arrays. ChArUco corners come from ``cv2.aruco.CharucoDetector``
(markers found, then the chessboard corners between them interpolated and refined with
``cornerSubPix``); checkerboard corners from ``cv2.findChessboardCornersSB`` (sub-pixel by design).

:func:`explain_missing_board` looks at images where nothing was found and names the likely cause:
a different ArUco dictionary, an inverted board, a wrong number of squares or the legacy layout.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Iterable

import cv2
import numpy as np

from calibration.boards import CHARUCO, Board
from calibration.errors import check_shape

logger = logging.getLogger(__name__)

# Fewest ChArUco corners kept from one image: fewer cannot constrain a pose (4 are the minimum for a
# planar homography; 6 leave a margin against a wrong interpolation).
MIN_CHARUCO_CORNERS = 6
# The largest dictionary of each family: the smaller ones (``_50``, ``_100``, ``_250``) are its first ids.
_PROBE_DICTIONARIES = (
    "DICT_4X4_1000",
    "DICT_5X5_1000",
    "DICT_6X6_1000",
    "DICT_7X7_1000",
    "DICT_ARUCO_ORIGINAL",
    "DICT_APRILTAG_36H11",
    "DICT_APRILTAG_25H9",
    "DICT_APRILTAG_16H5",
    "DICT_ARUCO_MIP_36H12",
)


@dataclass(frozen=True, slots=True, eq=False)
class Detection:
    """The board as found in one image.

    Attributes:
        corners: ``(N, 2)`` float64 inner-corner pixels in board-corner order; NaN rows were not seen.
        markers: ArUco markers found (ChArUco; 0 for a checkerboard).
    """

    corners: np.ndarray
    markers: int = 0

    @property
    def count(self) -> int:
        """Corners found."""
        return int(np.isfinite(self.corners[:, 0]).sum())

    @property
    def found(self) -> bool:
        return self.count > 0


def as_gray(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` BGR or ``(H, W)`` gray uint8 -> ``(H, W)`` gray uint8."""
    image = np.asarray(image)
    check_shape("image", image, "(H, W) or (H, W, 3)", image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)))
    if image.ndim == 2:
        return image if image.dtype == np.uint8 else cv2.convertScaleAbs(image)
    code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
    return cv2.cvtColor(image, code)


class BoardDetector:
    """Detects one board in images; build once, call :meth:`detect` per frame (not thread-safe)."""

    def __init__(self, board: Board, *, min_corners: int = MIN_CHARUCO_CORNERS) -> None:
        self.board = board
        self.min_corners = min(int(min_corners), board.corner_count)
        self._charuco = None
        if board.kind == CHARUCO:
            # The board holds ids 0..count-1 only: the smallest dictionary of its family with those ids
            # finds the same markers (the smaller sets are the first ids of the larger ones), several
            # times faster and with fewer false candidates.
            fast = _smallest_dictionary(board.dictionary, board.marker_count() - 1)
            self._charuco = cv2.aruco.CharucoDetector(replace(board, dictionary=fast).opencv_board())

    def detect(self, image: np.ndarray) -> Detection:
        """Find the board in ``image`` (``(H, W, 3)`` BGR or ``(H, W)`` gray uint8).

        Returns:
            A :class:`Detection`; its ``corners`` are all NaN when fewer than ``min_corners`` were
            found (a checkerboard is found whole or not at all).
        """
        gray = as_gray(image)
        if self.board.inverted:
            gray = 255 - gray
        corners = np.full((self.board.corner_count, 2), np.nan)
        if self._charuco is None:
            found, points = cv2.findChessboardCornersSB(gray, self.board.inner_size, flags=cv2.CALIB_CB_ACCURACY)
            if found:
                corners[:] = points.reshape(-1, 2)
            return Detection(corners)
        charuco_corners, charuco_ids, _, marker_ids = self._charuco.detectBoard(gray)
        markers = 0 if marker_ids is None else len(marker_ids)
        if charuco_ids is not None and len(charuco_ids) >= self.min_corners:
            corners[charuco_ids.ravel()] = charuco_corners.reshape(-1, 2)
        return Detection(corners, markers)


# ------------------------------------------------------------------------------------------------
# Diagnosis
def _markers(gray: np.ndarray, dictionary: str) -> np.ndarray:
    """``(M,)`` ids of the ArUco markers of ``dictionary`` found in ``gray``."""
    detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary)))
    _, ids, _ = detector.detectMarkers(gray)
    return np.zeros(0, int) if ids is None else ids.ravel()


def _smallest_dictionary(name: str, max_id: int) -> str:
    """``DICT_4X4_1000`` and a largest id 30 -> ``DICT_4X4_50``: the smallest set of the family holding
    ``max_id`` (OpenCV's ``_50``, ``_100``, ``_250`` sets are the first ids of the ``_1000`` set)."""
    match = re.fullmatch(r"(DICT_\dX\d)_(50|100|250|1000)", name)
    if match is None:
        return name
    for size in (50, 100, 250, 1000):
        if max_id < size:
            return f"{match.group(1)}_{size}" if size <= int(match.group(2)) else name
    return name


def explain_missing_board(board: Board, images: Iterable[np.ndarray]) -> str:
    """The likely reason ``board`` is not found in ``images`` (a few frames where detection failed).

    Checks, in order: markers of the board's dictionary in the other polarity (inverted board);
    markers of another dictionary; markers found but no corners (wrong columns/rows, legacy layout,
    ids beyond the board's); a checkerboard described by inner corners instead of squares.

    Returns:
        One or two sentences for the user, naming the board-file key to change.
    """
    grays = [as_gray(image) for image in images]
    if not grays:
        return "no frames were read"
    if board.kind != CHARUCO:
        return _explain_checkerboard(board, grays)
    polarity = {False: "normal (black markers on white)", True: "inverted (white markers on black)"}
    counts = {inv: [_markers(255 - g if inv else g, board.dictionary) for g in grays] for inv in (False, True)}
    best_inverted = max((False, True), key=lambda inv: sum(len(ids) for ids in counts[inv]))
    ids = np.concatenate(counts[best_inverted])
    if ids.size == 0:
        for dictionary in _PROBE_DICTIONARIES:
            for inverted in (False, True):
                found = np.concatenate([_markers(255 - g if inverted else g, dictionary) for g in grays])
                if found.size >= 2:
                    suggestion = _smallest_dictionary(dictionary, int(found.max()))
                    flip = f" and inverted: {str(inverted).lower()}" if inverted != board.inverted else ""
                    return (
                        f"no {board.dictionary} markers found, but {found.size} {suggestion} markers (ids up to "
                        f"{int(found.max())}) were: set dictionary: {suggestion}{flip} in the board file"
                    )
        return (
            "no ArUco markers of any dictionary were found: the board may be out of view, too small in the "
            "image, blurred or badly lit; check the video shows the board"
        )
    if best_inverted != board.inverted:
        return (
            f"{board.dictionary} markers are found only when the image is read as {polarity[best_inverted]}: "
            f"set inverted: {str(best_inverted).lower()} in the board file"
        )
    too_large = ids[ids >= board.marker_count()]
    if too_large.size:
        return (
            f"markers with ids up to {int(too_large.max())} were found, but a {board.columns}x{board.rows} board has "
            f"ids 0-{board.marker_count() - 1}: the board has more squares than the definition says; count the "
            "squares across (columns) and down (rows) again"
        )
    for label, variant in (
        ("legacy: " + str(not board.legacy).lower(), replace(board, legacy=not board.legacy)),
        (f"columns: {board.rows}, rows: {board.columns}", replace(board, columns=board.rows, rows=board.columns)),
    ):
        detector = BoardDetector(variant)
        if any(detector.detect(g).found for g in grays):
            return f"markers are found but no corners fit the board as defined; with {label} they do: change the board file"
    return (
        f"{ids.size} markers were found but no consistent corners: check columns, rows, marker_ratio "
        f"({board.marker_ratio:g}) and legacy ({str(board.legacy).lower()}) against the printed board"
    )


def _explain_checkerboard(board: Board, grays: list[np.ndarray]) -> str:
    """A checkerboard not found: maybe described by inner corners rather than squares."""
    for columns, rows, note in (
        (board.columns + 1, board.rows + 1, "columns and rows count squares, not inner corners"),
        (board.columns - 1, board.rows - 1, "columns and rows count squares including the outer ones"),
    ):
        if min(columns, rows) < 3:
            continue
        size = (columns - 1, rows - 1)
        if any(cv2.findChessboardCornersSB(g, size)[0] for g in grays[:3]):
            return f"a checkerboard of {columns}x{rows} squares is found instead: set columns: {columns}, rows: {rows} ({note})"
    return (
        f"no checkerboard with {board.inner_size[0]}x{board.inner_size[1]} inner corners was found: the whole board "
        "must be in view, flat, sharp and evenly lit; check columns and rows count squares"
    )
