"""Reading a file and parsing it as TOML, YAML or XML, with every failure a CalibrationError.

The parsers' own exceptions (``tomllib.TOMLDecodeError``, ``yaml.YAMLError``, ``ParseError``,
``UnicodeDecodeError``, ``OSError``) never escape: they become messages that name the file and,
where the parser knows it, the line.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

from calibration.errors import CalibrationError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 needs the tomli backport
    import tomli as tomllib

_BOM = b"\xef\xbb\xbf"


def read_bytes(path: str | Path) -> bytes:
    """The content of ``path``; a missing, unreadable or empty file is a CalibrationError."""
    path = Path(path)
    if not path.exists():
        raise CalibrationError("calibration file not found; check the path (or pass --calibration FILE)", path=path)
    if path.is_dir():
        raise CalibrationError("is a folder, not a calibration file", path=path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CalibrationError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if not data.strip():
        raise CalibrationError("the file is empty", path=path)
    return data


def decode_text(data: bytes, path: str | Path) -> str:
    """UTF-8 text (a leading byte-order mark is dropped); binary content is a CalibrationError."""
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CalibrationError(
            f"not a text file (byte {exc.start} is not UTF-8); a calibration is YAML, TOML or XML text",
            path=path,
        ) from None
    if "\x00" in text:
        raise CalibrationError("not a text file (it contains NUL bytes)", path=path)
    return text


def looks_like_xml(data: bytes) -> bool:
    return data.lstrip(_BOM + b" \t\r\n").startswith(b"<")


def parse_toml(text: str, path: str | Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CalibrationError(f"not valid TOML: {exc}", path=path) from None
    except RecursionError:
        raise CalibrationError("not valid TOML: nested too deeply", path=path) from None


def parse_yaml(text: str, path: str | Path) -> Any:
    """``yaml.safe_load`` of ``text`` (plain data only: no tags that build Python objects)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CalibrationError(f"not valid YAML{where}: {problem}", path=path) from None
    except RecursionError:
        raise CalibrationError("not valid YAML: nested too deeply", path=path) from None
    except (ValueError, OverflowError) as exc:  # PyYAML builds dates with datetime: "2001-13-45" lands here
        raise CalibrationError(f"not valid YAML: {exc}", path=path) from None


def parse_xml(data: bytes, path: str | Path) -> ET.Element:
    """The root element of an XML document; documents with a DTD (entity tricks) are refused."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise CalibrationError("XML with a DOCTYPE or ENTITY declaration is not accepted", path=path)
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        line, column = getattr(exc, "position", (None, None))
        where = f" at line {line}, column {column}" if line is not None else ""
        raise CalibrationError(f"not valid XML{where} (truncated or corrupted?)", path=path) from None
    except (ValueError, LookupError) as exc:  # e.g. an encoding declaration expat cannot use
        raise CalibrationError(f"not valid XML: {exc}", path=path) from None
