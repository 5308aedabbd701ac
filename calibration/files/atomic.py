"""Atomic file writes: the target holds either its old content or the complete new one, never half."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from calibration.errors import CalibrationError

_NEW_FILE_MODE = 0o644


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder.

    The temporary file is flushed and fsynced, then renamed over ``path`` with ``os.replace`` (atomic
    on POSIX and Windows within one file system). If anything fails, the temporary file is removed
    and ``path`` keeps its previous content. An existing file keeps its permission bits; missing
    parent folders are created.

    Raises:
        CalibrationError: naming ``path`` when the folder cannot be created or written.
    """
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)  # an output folder named on the command line may be new
    except OSError as exc:
        raise CalibrationError(f"cannot create the folder {str(folder)!r}: {exc.strerror or exc}", path=path) from None
    mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else _NEW_FILE_MODE
    data = text.encode("utf-8")
    try:
        handle, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CalibrationError(f"cannot write in {str(folder)!r}: {exc.strerror}", path=path) from None
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
        raise CalibrationError(f"cannot write: {exc.strerror or exc}", path=path) from None
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
