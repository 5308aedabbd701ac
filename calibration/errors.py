"""The project's exceptions, in one place.

Every error a user can cause (a bad file, a mismatched calibration, an array of the wrong shape)
is a :class:`CrossviewError`. The CLI catches that base class and prints its message, so a message
must say what was wrong, where (file, camera, field, key) and, when it can, what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class CrossviewError(Exception):
    """Base of every error the user can cause and fix. Its message is shown as it is."""


class CalibrationError(CrossviewError):
    """A calibration that is malformed, inconsistent or does not match the cameras.

    The message names the file, the camera and the field when they are known::

        rig.yaml: camera 'cam01', field 'R': not a rotation matrix (det = -1.000)
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        camera: str | None = None,
        field: str | None = None,
    ) -> None:
        self.detail = message
        self.path = None if path is None else str(path)
        self.camera = camera
        self.field = field
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = []
        if self.camera is not None:
            where.append(f"camera {self.camera!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        text = ", ".join(where)
        text = f"{text}: {self.detail}" if text else self.detail
        return f"{self.path}: {text}" if self.path else text

    def in_file(self, path: str | Path) -> "CalibrationError":
        """The same error, naming ``path`` (keeps a path that is already set)."""
        if self.path is not None:
            return self
        return CalibrationError(self.detail, path=path, camera=self.camera, field=self.field)


class Cancelled(CrossviewError):
    """The user stopped a long task (a calibration, a board search) before it finished; nothing was written."""


class InputFileError(CrossviewError):
    """A keypoint, pose or video file that cannot be read or holds inconsistent data."""


class CaptureError(CrossviewError):
    """A camera or stream that cannot be opened or read; the message names the source and what to do."""


class ShapeError(CrossviewError, ValueError):
    """An array argument whose shape is not the one documented."""


def check_shape(name: str, array, expected: str, ok: bool) -> None:
    """Raise :class:`ShapeError` showing expected and actual shapes when ``ok`` is false.

    Args:
        name: argument name as the caller knows it, e.g. ``"points2d"``.
        array: the array that was passed (its ``shape`` is shown).
        expected: the documented shape, e.g. ``"(C, ..., 2)"``.
        ok: the result of the caller's own check.
    """
    if not ok:
        shape = getattr(array, "shape", None)
        raise ShapeError(f"{name}: expected shape {expected}, got {shape}")
