"""Atomic file writes: the target holds either its old content or the complete new one, never half."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from typing import Callable

from calibration.errors import CalibrationError, CrossviewError

_NEW_FILE_MODE = 0o644


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`write_bytes_atomic`).

    Raises:
        CalibrationError: naming ``path`` when the folder cannot be created or written.
    """
    return write_bytes_atomic(
        path, text.encode("utf-8"), error=lambda message: CalibrationError(message, path=path)
    )


def write_bytes_atomic(
    path: str | Path, data: bytes, *, error: Callable[[str], Exception] | None = None
) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    The temporary file is flushed and fsynced, then renamed over ``path`` with ``os.replace`` (atomic
    on POSIX and Windows within one file system). If anything fails, the temporary file is removed
    and ``path`` keeps its previous content. An existing file keeps its permission bits; missing
    parent folders are created.

    Args:
        error: builds the exception raised when writing fails, from a message; the default is a
            :class:`CrossviewError` whose message starts with the path.
    """
    path = Path(path)
    if error is None:
        error = lambda message: CrossviewError(f"{path}: {message}")  # noqa: E731
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)  # an output folder named on the command line may be new
    except OSError as exc:
        raise error(f"cannot create the folder {str(folder)!r}: {exc.strerror or exc}") from None
    mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else _NEW_FILE_MODE
    try:
        handle, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise error(f"cannot write in {str(folder)!r}: {exc.strerror}") from None
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise error(f"cannot write: {exc.strerror or exc}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(folder)
    return path


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); folders cannot be opened on Windows, which is fine."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the data itself is already on disk
    finally:
        os.close(fd)
