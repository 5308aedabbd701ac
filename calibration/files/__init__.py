"""Calibration files: read a rig from any supported format, write crossview YAML or anipose TOML.

Reading picks the format from the file's content, not its name:

========================  ==================================================  ==========
format                    recognised by                                       units
========================  ==================================================  ==========
crossview YAML (native)   a YAML mapping with ``schema_version`` / ``cameras``  stated
anipose TOML              tables ``[cam_0]`` ... with ``matrix``, ``rotation``  inferred*
caliscope                 a ``[cameras.N]`` table per camera                  metres
Qualisys ``.qca.txt``     XML ``<calibration><cameras><camera>``              mm
========================  ==================================================  ==========

\\* unless ``[metadata] units`` says so (crossview writes it) or the caller passes ``units``.

Every problem (missing file, broken syntax, wrong shape or type, NaN, a matrix that is not a
rotation, duplicate names) is a :class:`~calibration.errors.CalibrationError` whose message names
the file, and where known the camera and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from calibration.errors import CalibrationError
from calibration.files.anipose import dump_anipose, is_anipose, parse_anipose, read_anipose
from calibration.files.atomic import write_text_atomic
from calibration.files.caliscope import is_caliscope, parse_caliscope
from calibration.files.documents import decode_text, looks_like_xml, parse_toml, parse_xml, parse_yaml, read_bytes
from calibration.files.fields import check_unit
from calibration.files.native import ROTATION_CONVENTION, SCHEMA_VERSION, dump_native, is_native, parse_native
from calibration.files.qualisys import is_qualisys, parse_qualisys
from calibration.files.rigfile import (
    ANIPOSE,
    CALISCOPE,
    FORMAT_NAMES,
    METRES_BELOW_SPACING,
    NATIVE,
    QUALISYS,
    RigFile,
    infer_units,
)
from calibration.rig import Rig

__all__ = [
    "load_rig",
    "save_rig",
    "read_rig",
    "read_anipose",
    "RigFile",
    "infer_units",
    "FORMAT_NAMES",
    "METRES_BELOW_SPACING",
    "ROTATION_CONVENTION",
    "SCHEMA_VERSION",
]

_YAML_SUFFIXES = (".yaml", ".yml")
_TOML_SUFFIXES = (".toml",)
_WRITE_FORMATS = {"native": NATIVE, "yaml": NATIVE, "anipose": ANIPOSE, "toml": ANIPOSE}


def load_rig(path: str | Path, *, units: str | None = None) -> Rig:
    """The rig in a calibration file (any format in the module table), world in millimetres.

    Args:
        path: the calibration file.
        units: ``"mm"``, ``"cm"`` or ``"m"``: the unit of a file that does not state one (anipose
            TOML, caliscope). An error when it contradicts a unit the file or format states.

    Raises:
        CalibrationError: naming the file (and camera, field) for anything wrong with it.
    """
    return read_rig(path, units=units).rig


def read_rig(path: str | Path, *, units: str | None = None) -> RigFile:
    """Like :func:`load_rig`, but also says which format and unit were used (``.describe()``)."""
    path = Path(path)
    units = check_unit(units, path=path)
    data = read_bytes(path)
    if looks_like_xml(data):
        root = parse_xml(data, path)
        if is_qualisys(root):
            return parse_qualisys(root, path, units=units)
        raise _unknown(path, f"an XML document with root <{root.tag}>, not a Qualisys <calibration>")
    text = decode_text(data, path)
    parsers = [("YAML", parse_yaml), ("TOML", parse_toml)]
    if path.suffix.lower() not in _YAML_SUFFIXES:
        parsers.reverse()  # TOML first: it rejects YAML outright, while YAML half-accepts TOML syntax
    preferred_failure: CalibrationError | None = None  # the error of the language the name suggests
    parsed_but_unknown = []
    for attempt, (language, parse) in enumerate(parsers):
        try:
            document = parse(text, path)
        except CalibrationError as exc:
            if attempt == 0:
                preferred_failure = exc
            continue
        if language == "TOML" and is_caliscope(document):
            return parse_caliscope(document, path, units=units)
        if language == "TOML" and is_anipose(document):
            return parse_anipose(document, path, units=units)
        if language == "YAML" and _claims_native(document):
            return parse_native(document, path, units=units)
        parsed_but_unknown.append(language)
    if preferred_failure is not None and path.suffix.lower() in _YAML_SUFFIXES + _TOML_SUFFIXES:
        raise preferred_failure
    if parsed_but_unknown:
        raise _unknown(path, f"valid {' and '.join(parsed_but_unknown)} but no camera calibration in a known layout")
    raise _unknown(path, "neither YAML, TOML nor XML")


def save_rig(
    rig: Rig,
    path: str | Path,
    *,
    format: str | None = None,
    units: str = "mm",
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``rig`` to ``path`` atomically (a failed write leaves any previous file intact).

    Args:
        rig: the cameras to write.
        path: the output file; ``.yaml``/``.yml`` writes crossview YAML, ``.toml`` anipose TOML.
        format: ``"native"`` (or ``"yaml"``) or ``"anipose"`` (or ``"toml"``) to choose regardless of
            the extension.
        units: ``"mm"`` (default), ``"cm"`` or ``"m"`` for the translations in the file.
        metadata: free-form key/values stored in the file (``metadata:`` / ``[metadata]``).

    Returns:
        The path written.
    """
    if not isinstance(rig, Rig):
        raise TypeError(f"save_rig needs a Rig, got {type(rig).__name__}")
    path = Path(path)
    units = check_unit(units, path=path) or "mm"
    if format is None:
        suffix = path.suffix.lower()
        if suffix in _YAML_SUFFIXES:
            chosen = NATIVE
        elif suffix in _TOML_SUFFIXES:
            chosen = ANIPOSE
        else:
            raise CalibrationError(
                f"cannot tell the format from the extension {suffix or '(none)'!r}; use .yaml or .toml, "
                "or pass format='native' or format='anipose'",
                path=path,
            )
    elif format in _WRITE_FORMATS:
        chosen = _WRITE_FORMATS[format]
    else:
        raise CalibrationError(
            f"cannot write format {format!r}; crossview writes 'native' (YAML) and 'anipose' (TOML)", path=path
        )
    try:
        text = dump_native(rig, units=units, metadata=metadata) if chosen == NATIVE else dump_anipose(
            rig, units=units, metadata=metadata
        )
    except CalibrationError as exc:
        raise exc.in_file(path) from None
    return write_text_atomic(path, text)


def _claims_native(document: Any) -> bool:
    """A YAML mapping with any of the native top-level keys (a broken native file is reported as one)."""
    native_keys = ("schema_version", "rotation_convention", "cameras")
    return is_native(document) or (isinstance(document, Mapping) and any(k in document for k in native_keys))


def _unknown(path: Path, what: str) -> CalibrationError:
    known = ", ".join(FORMAT_NAMES[f] for f in (NATIVE, ANIPOSE, CALISCOPE, QUALISYS))
    return CalibrationError(f"not a calibration file crossview reads: {what}. It reads {known}", path=path)
