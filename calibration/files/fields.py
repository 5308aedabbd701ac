"""Typed access to the fields of a parsed calibration document, with errors that say where.

Every reader goes through these helpers so that a wrong type, a missing key or a matrix of the
wrong shape becomes a :class:`CalibrationError` naming the file, the camera and the field, never a
``KeyError`` or ``TypeError`` from deep inside numpy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from calibration.camera import Camera
from calibration.errors import CalibrationError

# Length units a calibration may be written in, and their size in millimetres.
MM_PER_UNIT = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
UNIT_WORDS = {"mm": "millimetres", "cm": "centimetres", "m": "metres"}


def check_unit(units: str | None, *, path: str | Path | None = None, field: str = "units") -> str | None:
    """``units`` if it is one of ``mm``, ``cm``, ``m`` (or None), else a CalibrationError."""
    if units is None:
        return None
    if not isinstance(units, str) or units not in MM_PER_UNIT:
        raise CalibrationError(f"unknown length unit {units!r}; use one of mm, cm, m", path=path, field=field)
    return units


class Fields:
    """Reads the fields of one mapping (a camera, or the whole document) of one file.

    Args:
        mapping: the parsed mapping; anything else raises a CalibrationError naming ``what``.
        path: the file, for messages.
        camera: the camera this mapping describes, for messages (None for the document).
        what: how to call the mapping in messages when it is not a mapping, e.g. ``"camera table [cam_0]"``.
    """

    def __init__(self, mapping: Any, *, path: str | Path, camera: str | None = None, what: str = "document") -> None:
        if not isinstance(mapping, Mapping):
            raise CalibrationError(
                f"{what} must be a mapping of keys to values, got {_type_name(mapping)}", path=path, camera=camera
            )
        self.mapping = mapping
        self.path = path
        self.camera = camera

    def error(self, key: str | None, message: str) -> CalibrationError:
        return CalibrationError(message, path=self.path, camera=self.camera, field=key)

    def has(self, key: str) -> bool:
        return key in self.mapping

    def raw(self, key: str) -> Any:
        """The value at ``key``; a missing key is an error that names it."""
        if key not in self.mapping:
            raise self.error(key, "missing")
        return self.mapping[key]

    def reject_unknown(self, known: Iterable[str]) -> None:
        """Raise for the first key that is not in ``known`` (for formats we own, where a typo must not pass)."""
        known = tuple(known)
        for key in self.mapping:
            if key not in known:
                raise self.error(
                    str(key), f"unknown key; the keys allowed here are {', '.join(known)}"
                )

    def unknown(self, known: Iterable[str]) -> list[str]:
        """The keys that are not in ``known``, in file order (for formats others own: logged, not fatal)."""
        known = set(known)
        return [str(key) for key in self.mapping if key not in known]

    def string(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value.strip():
            hint = " (quote it in YAML: name: \"01\")" if isinstance(value, (int, float, bool)) else ""
            raise self.error(key, f"must be a non-empty string, got {_describe(value)}{hint}")
        return value

    def boolean(self, key: str, default: bool | None = None) -> bool:
        if default is not None and key not in self.mapping:
            return default
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {_describe(value)}")
        return value

    def integer(self, key: str) -> int:
        return whole_number(self.raw(key), self.error_for(key))

    def array(self, key: str, shape: tuple[int | None, ...], *, default: Any = None) -> np.ndarray:
        """A float64 array of ``shape`` (None = any length) from nested lists of numbers.

        NaN and infinity are refused here, so every file format reports them the same way.
        """
        if default is not None and key not in self.mapping:
            value = default
        else:
            value = self.raw(key)
        return numeric_array(value, shape, self.error_for(key))

    def error_for(self, key: str):
        return lambda message: self.error(key, message)


def whole_number(value: Any, error) -> int:
    """An int from an int or an integral float (``1088.0`` is fine); bools and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"must be a whole number, got {_describe(value)}")
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise error(f"must be a whole number, got {value!r}")
        value = int(value)
    return value


def real_number(value: Any, error) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"must be a number, got {_describe(value)}")
    try:
        value = float(value)
    except OverflowError:
        raise error("a number too large for a 64-bit float") from None
    if not math.isfinite(value):
        raise error(f"must be a finite number, got {value!r}")
    return value


def numeric_array(value: Any, shape: tuple[int | None, ...], error) -> np.ndarray:
    """Nested lists of real numbers -> a float64 array of ``shape`` (None matches any length)."""
    expected = "x".join("N" if n is None else str(n) for n in shape)
    try:
        nested = _is_nested_numbers(value, len(shape))
        array = np.array(value, dtype=np.float64) if nested and _is_rectangular(value, len(shape)) else None
    except RecursionError:  # a YAML alias that contains itself
        raise error("a list that contains itself") from None
    except OverflowError:
        raise error("a number too large for a 64-bit float") from None
    if not nested:
        raise error(f"must be a {len(shape)}-level list of numbers ({expected}), got {_describe(value)}")
    if array is None or array.ndim != len(shape) or any(
        want is not None and got != want for want, got in zip(shape, array.shape)
    ):
        got = "ragged" if array is None else "x".join(map(str, array.shape)) or "scalar"
        raise error(f"expected a {expected} list of numbers, got {got}")
    if not np.all(np.isfinite(array)):
        raise error("contains NaN or infinity")
    return array


def _is_nested_numbers(value: Any, depth: int) -> bool:
    if depth == 0:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, (list, tuple)) and all(_is_nested_numbers(v, depth - 1) for v in value)


def _is_rectangular(value: Any, depth: int) -> bool:
    if depth <= 1:
        return True
    lengths = {len(v) for v in value}
    return len(lengths) <= 1 and all(_is_rectangular(v, depth - 1) for v in value)


def _type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "nothing (null)"}
    return names.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{_type_name(value)} {text}" if value is not None else "nothing (null)"


def build_camera(
    *,
    path: str | Path,
    name: str,
    width: int,
    height: int,
    K: np.ndarray,
    dist: np.ndarray,
    R: np.ndarray,
    t_mm: np.ndarray,
    model: str,
    field_names: Mapping[str, str],
) -> Camera:
    """A validated :class:`Camera`; its errors name the file and the field as the file spells it.

    Args:
        field_names: the file's name for each Camera field, e.g. ``{"K": "matrix", "R": "rotation"}``.
        K: (3, 3) px; dist: (D,); R: (3, 3) ``R_cam_from_world``; t_mm: (3,) mm.
    """
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # absurd values (1e308) are refused, not warned about
            return Camera(name=name, width=width, height=height, K=K, dist=dist, R=R, t=t_mm, model=model)
    except CalibrationError as exc:
        raise CalibrationError(
            exc.detail,
            path=path,
            camera=exc.camera if exc.camera is not None else name,
            field=field_names.get(exc.field, exc.field) if exc.field is not None else None,
        ) from None


def plain_data(value: Any) -> Any:
    """numpy scalars and arrays inside metadata -> plain Python values that YAML/TOML writers accept."""
    if isinstance(value, Mapping):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain_data(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
