"""Calibration boards: their definition, their files, and printable images.

Two kinds of board:

- ``checkerboard``: ``columns`` x ``rows`` squares; the detected points are the
  ``(columns - 1) x (rows - 1)`` inner corners, row by row (x fastest), as OpenCV returns them.
  A checkerboard must be seen whole to be detected.
- ``charuco``: a chessboard with ArUco markers in its white squares (OpenCV's ``CharucoBoard``),
  ``columns`` x ``rows`` squares; the points are the inner corners, numbered by OpenCV's ChArUco
  corner ids. Partial views work.

Board frame: origin at the top-left outer corner of the board image, x along the columns, y along the
rows (down the printed page), z = x cross y (into the page). Points are in millimetres.

Board files (YAML, ``yaml.safe_load``; unknown keys are errors)::

    schema_version: 1
    kind: charuco              # or checkerboard
    columns: 4                 # squares across
    rows: 5                    # squares down
    square_mm: 54.0            # printed side of one square; sets the metric scale of the calibration
    marker_ratio: 0.75         # ChArUco: marker side / square side
    dictionary: DICT_4X4_1000  # ChArUco: any cv2.aruco predefined dictionary name
    legacy: false              # ChArUco: OpenCV < 4.6 layout (matters for an even number of rows)
    inverted: false            # white and black swapped (markers white on black)

Caliscope's ``charuco.toml`` (``columns``, ``rows``, ``dictionary``, ``aruco_scale``, ``inverted``,
``square_size_override_cm`` or ``board_width``/``board_height`` with ``units``) is read as well.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from calibration.errors import CalibrationError
from calibration.files.atomic import write_text_atomic

SCHEMA_VERSION = 1
CHARUCO = "charuco"
CHECKERBOARD = "checkerboard"
KINDS = (CHARUCO, CHECKERBOARD)
MM_PER_INCH = 25.4
_CALISCOPE_UNITS_MM = {"inch": MM_PER_INCH, "inches": MM_PER_INCH, "cm": 10.0, "mm": 1.0}
_YAML_KEYS = ("schema_version", "kind", "columns", "rows", "square_mm", "marker_ratio", "dictionary", "legacy", "inverted")
_CALISCOPE_KEYS = (
    "columns", "rows", "board_height", "board_width", "dictionary", "units", "aruco_scale",
    "square_size_override_cm", "inverted",
)


def aruco_dictionary_names() -> tuple[str, ...]:
    """Every predefined ArUco dictionary name OpenCV knows (``DICT_4X4_50`` ...), upper case, no aliases."""
    names = sorted({n for n in dir(cv2.aruco) if n.startswith("DICT_") and n == n.upper()})
    return tuple(names)


@dataclass(frozen=True, slots=True)
class Board:
    """A planar calibration board.

    Attributes:
        kind: ``"charuco"`` or ``"checkerboard"``.
        columns: squares across the board (x); at least 2 (3 for a checkerboard).
        rows: squares down the board (y); at least 2 (3 for a checkerboard).
        square_mm: side of one printed square in millimetres (the calibration's metric scale).
        marker_ratio: ChArUco marker side / square side, in (0, 1).
        dictionary: ChArUco dictionary name, e.g. ``"DICT_4X4_50"``.
        legacy: ChArUco legacy layout (OpenCV < 4.6, e.g. boards printed by old tools).
        inverted: black and white swapped; images are inverted before detection.
    """

    kind: str
    columns: int
    rows: int
    square_mm: float
    marker_ratio: float = 0.75
    dictionary: str = "DICT_4X4_50"
    legacy: bool = False
    inverted: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise CalibrationError(f"unknown board kind {self.kind!r}; use 'charuco' or 'checkerboard'", field="kind")
        smallest = 3 if self.kind == CHECKERBOARD else 2
        for name in ("columns", "rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < smallest:
                raise CalibrationError(f"must be a whole number of squares >= {smallest}, got {value!r}", field=name)
            object.__setattr__(self, name, int(value))
        for name in ("square_mm", "marker_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
                raise CalibrationError(f"must be a number, got {value!r}", field=name)
            object.__setattr__(self, name, float(value))
        if self.square_mm <= 0:
            raise CalibrationError(f"must be positive, got {self.square_mm:g}", field="square_mm")
        if not 0 < self.marker_ratio < 1:
            raise CalibrationError(
                f"marker side / square side must be between 0 and 1, got {self.marker_ratio:g}", field="marker_ratio"
            )
        if self.kind == CHARUCO and self.dictionary not in aruco_dictionary_names():
            raise CalibrationError(
                f"unknown ArUco dictionary {self.dictionary!r}; use one of {', '.join(aruco_dictionary_names())}",
                field="dictionary",
            )
        for name in ("legacy", "inverted"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise CalibrationError(f"must be true or false, got {getattr(self, name)!r}", field=name)
            object.__setattr__(self, name, bool(getattr(self, name)))

    # ----------------------------------------------------------------------------------------
    @property
    def marker_mm(self) -> float:
        """ChArUco marker side in millimetres."""
        return self.square_mm * self.marker_ratio

    @property
    def inner_size(self) -> tuple[int, int]:
        """Inner corners ``(across, down)``: ``(columns - 1, rows - 1)``."""
        return self.columns - 1, self.rows - 1

    @property
    def corner_count(self) -> int:
        """N, the number of detectable points (inner corners)."""
        return (self.columns - 1) * (self.rows - 1)

    @property
    def size_mm(self) -> tuple[float, float]:
        """Printed board ``(width, height)`` in millimetres."""
        return self.columns * self.square_mm, self.rows * self.square_mm

    def object_points(self) -> np.ndarray:
        """``(N, 3)`` float64 inner-corner positions in the board frame, mm (z = 0), in detection id order."""
        across, down = self.inner_size
        ys, xs = np.mgrid[1 : down + 1, 1 : across + 1]  # (down, across): corner (i, j) at one square per step
        points = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1) * self.square_mm  # (N, 3)
        return points

    def opencv_board(self) -> "cv2.aruco.CharucoBoard":
        """The ``cv2.aruco.CharucoBoard`` (ChArUco only), in millimetres."""
        if self.kind != CHARUCO:
            raise CalibrationError(f"a {self.kind} has no ArUco markers", field="kind")
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        board = cv2.aruco.CharucoBoard((self.columns, self.rows), self.square_mm, self.marker_mm, dictionary)
        board.setLegacyPattern(self.legacy)
        return board

    def marker_count(self) -> int:
        """Number of ArUco markers on a ChArUco board (ids 0 .. count-1); 0 for a checkerboard."""
        return 0 if self.kind != CHARUCO else (self.columns * self.rows) // 2

    def describe(self) -> str:
        """One line: ``ChArUco 4x5 squares of 54.0 mm, DICT_4X4_1000 markers 0.75 of a square, inverted``."""
        if self.kind == CHECKERBOARD:
            text = f"checkerboard {self.columns}x{self.rows} squares of {self.square_mm:g} mm ({self.corner_count} inner corners)"
        else:
            text = (
                f"ChArUco {self.columns}x{self.rows} squares of {self.square_mm:g} mm, {self.dictionary} markers "
                f"{self.marker_ratio:g} of a square"
            )
            text += ", legacy layout" if self.legacy else ""
        return text + (", inverted" if self.inverted else "")

    def to_dict(self) -> dict[str, Any]:
        """The board-file mapping (see the module docstring)."""
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for f in fields(self):
            data[f.name] = getattr(self, f.name)
        if self.kind == CHECKERBOARD:
            for key in ("marker_ratio", "dictionary", "legacy"):
                data.pop(key)
        return data


# ------------------------------------------------------------------------------------------------
# Files
def load_board(path: str | Path) -> Board:
    """The board in a crossview board YAML or a caliscope ``charuco.toml``.

    Raises:
        CalibrationError: naming the file and the key for a missing file, bad syntax, an unknown or
            missing key, or a value of the wrong type.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CalibrationError("board file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"cannot read the board file ({exc})", path=path) from None
    try:
        if path.suffix.lower() == ".toml":
            try:
                document = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise CalibrationError(f"not valid TOML ({exc})") from None
            return _board_from_caliscope(document)
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CalibrationError(f"not valid YAML ({exc})") from None
        return board_from_dict(document)
    except CalibrationError as exc:
        raise exc.in_file(path) from None


def board_from_dict(document: Any) -> Board:
    """A :class:`Board` from a board-file mapping (see the module docstring)."""
    if not isinstance(document, dict):
        raise CalibrationError(f"a board file must be a mapping of keys, got {type(document).__name__}")
    unknown = sorted(set(map(str, document)) - set(_YAML_KEYS))
    if unknown:
        raise CalibrationError(
            f"unknown key(s) {', '.join(unknown)}; a board file has {', '.join(_YAML_KEYS)}", field=unknown[0]
        )
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CalibrationError(
            f"schema_version must be {SCHEMA_VERSION}, got {version!r} (add 'schema_version: 1')", field="schema_version"
        )
    for key in ("kind", "columns", "rows", "square_mm"):
        if key not in document:
            raise CalibrationError("missing; a board needs kind, columns, rows and square_mm", field=key)
    values = {k: v for k, v in document.items() if k != "schema_version"}
    if "dictionary" in values and not isinstance(values["dictionary"], str):
        raise CalibrationError(f"must be a dictionary name such as DICT_4X4_50, got {values['dictionary']!r}", field="dictionary")
    if "dictionary" in values:
        values["dictionary"] = values["dictionary"].upper()
    return Board(**values)


def _board_from_caliscope(document: dict[str, Any]) -> Board:
    """Caliscope's ``charuco.toml``: square size from ``square_size_override_cm`` or the board's printed size."""
    unknown = sorted(set(document) - set(_CALISCOPE_KEYS))
    if unknown:
        raise CalibrationError(
            f"unknown key(s) {', '.join(unknown)} for a caliscope charuco.toml (keys: {', '.join(_CALISCOPE_KEYS)})",
            field=unknown[0],
        )
    for key in ("columns", "rows", "dictionary"):
        if key not in document:
            raise CalibrationError("missing from the caliscope board file", field=key)
    columns, rows = document["columns"], document["rows"]
    override = document.get("square_size_override_cm")
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, (int, float)):
            raise CalibrationError(f"must be a number, got {override!r}", field="square_size_override_cm")
        square_mm = float(override) * 10.0
    else:
        unit = str(document.get("units", "inch")).lower()
        if unit not in _CALISCOPE_UNITS_MM:
            raise CalibrationError(f"unknown unit {unit!r}; use inch, cm or mm", field="units")
        try:
            width, height = float(document["board_width"]), float(document["board_height"])
        except KeyError as exc:
            raise CalibrationError("missing (needed when square_size_override_cm is absent)", field=exc.args[0]) from None
        except (TypeError, ValueError):
            raise CalibrationError("board_width and board_height must be numbers", field="board_width") from None
        square_mm = min(width / columns, height / rows) * _CALISCOPE_UNITS_MM[unit]
    dictionary = document["dictionary"]
    if not isinstance(dictionary, str):
        raise CalibrationError(f"must be a dictionary name, got {dictionary!r}", field="dictionary")
    return Board(
        kind=CHARUCO,
        columns=columns,
        rows=rows,
        square_mm=square_mm,
        marker_ratio=document.get("aruco_scale", 0.75),
        dictionary=dictionary.upper(),
        inverted=document.get("inverted", False),
    )


def save_board(board: Board, path: str | Path) -> Path:
    """Write ``board`` as a crossview board YAML, atomically."""
    text = "# crossview calibration board; lengths in millimetres\n" + yaml.safe_dump(board.to_dict(), sort_keys=False)
    return write_text_atomic(path, text)


# ------------------------------------------------------------------------------------------------
# Printable images
def board_image(board: Board, *, pixels_per_mm: float = 10.0, margin_mm: float = 10.0) -> np.ndarray:
    """The board as a ``(H, W)`` uint8 grayscale image at ``pixels_per_mm``, with a white margin.

    An inverted board comes out inverted (markers white on black) with the margin still white.
    The board itself spans pixels ``[margin, margin + size)``; a board point ``(x, y)`` mm sits at
    pixel ``((x + margin_mm) * pixels_per_mm - 0.5, (y + margin_mm) * pixels_per_mm - 0.5)``.
    """
    if pixels_per_mm <= 0 or margin_mm < 0:
        raise CalibrationError(f"need pixels_per_mm > 0 and margin_mm >= 0, got {pixels_per_mm:g}, {margin_mm:g}")
    width_px = int(round(board.columns * board.square_mm * pixels_per_mm))
    height_px = int(round(board.rows * board.square_mm * pixels_per_mm))
    if board.kind == CHARUCO:
        image = board.opencv_board().generateImage((width_px, height_px), marginSize=0, borderBits=1)
    else:
        ys, xs = np.mgrid[0:height_px, 0:width_px]
        square_px = board.square_mm * pixels_per_mm
        black = ((xs // square_px).astype(int) + (ys // square_px).astype(int)) % 2 == 0
        image = np.where(black, 0, 255).astype(np.uint8)
    if board.inverted:
        image = 255 - image
    margin_px = int(round(margin_mm * pixels_per_mm))
    return cv2.copyMakeBorder(image, margin_px, margin_px, margin_px, margin_px, cv2.BORDER_CONSTANT, value=255)


def save_board_png(board: Board, path: str | Path, *, dpi: float = 300.0, margin_mm: float = 10.0) -> Path:
    """Write a printable PNG of ``board`` at ``dpi`` (print it at 100 % scale, then measure a square)."""
    path = Path(path)
    image = board_image(board, pixels_per_mm=dpi / MM_PER_INCH, margin_mm=margin_mm)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise CalibrationError("cannot write the board image", path=path)
    return path


def save_board_pdf(
    board: Board, path: str | Path, *, page_mm: tuple[float, float] | None = None, dpi: float = 300.0
) -> Path:
    """Write a PDF of ``board`` at its true size, centred on a page of ``page_mm`` = (width, height) mm.

    The default page is the board plus a 10 mm margin. Print at "actual size" (no fit-to-page) and
    check one square with a ruler: it must measure ``square_mm``.

    Raises:
        CalibrationError: when the board does not fit the page, or Pillow is missing (``pip install pillow``).
    """
    try:
        from PIL import Image
    except ImportError:
        raise CalibrationError("writing a PDF needs Pillow: pip install pillow (or use save_board_png)") from None
    path = Path(path)
    board_w, board_h = board.size_mm
    page_w, page_h = page_mm if page_mm is not None else (board_w + 20.0, board_h + 20.0)
    if board_w > page_w or board_h > page_h:
        raise CalibrationError(
            f"a {board_w:g} x {board_h:g} mm board does not fit a {page_w:g} x {page_h:g} mm page; "
            "choose a larger page or a smaller square_mm",
            path=path,
        )
    pixels_per_mm = dpi / MM_PER_INCH
    art = board_image(board, pixels_per_mm=pixels_per_mm, margin_mm=0.0)
    page = np.full((int(round(page_h * pixels_per_mm)), int(round(page_w * pixels_per_mm))), 255, np.uint8)
    top = (page.shape[0] - art.shape[0]) // 2
    left = (page.shape[1] - art.shape[1]) // 2
    page[top : top + art.shape[0], left : left + art.shape[1]] = art
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        Image.fromarray(page).save(path, "PDF", resolution=dpi)
    except OSError as exc:
        raise CalibrationError(f"cannot write the PDF ({exc})", path=path) from None
    return path

