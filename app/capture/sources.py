"""Frame sources: USB/V4L2 cameras, IP streams (RTSP, HTTP/MJPEG), video files and image folders.

A source only opens, reads and closes; it knows nothing of threads. :class:`CameraThread`
(``camera_thread.py``) drives one source per thread, stamps live frames on arrival and reconnects.

Each source answers ``read()`` with ``(image, timestamp_s)``: ``image`` is ``(H, W, 3)`` uint8 BGR,
``timestamp_s`` the file's own time (frame index / fps) for recorded sources and ``None`` for live
ones, whose frames are stamped on arrival with ``time.monotonic()``. ``read()`` returns ``None`` when
no frame came: for a live source that is a failure (the thread reconnects), for a recorded one the
end of the file (``problem`` then says whether it ended early).

Nothing here imports Qt.
"""

from __future__ import annotations

import logging
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from app.capture.video_files import VIDEO_SUFFIXES
from calibration.errors import CaptureError, CrossviewError, InputFileError

logger = logging.getLogger(__name__)

MAX_PART_BYTES = 64 << 20  # one JPEG of an MJPEG stream; more means a broken or hostile server

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True, slots=True)
class Frame:
    """One image from one camera.

    Attributes:
        camera: camera name.
        index: frame number from this source, counting from 0, never repeated (a live source keeps
            counting across reconnections; a file uses its frame index).
        timestamp_s: seconds; ``time.monotonic()`` at arrival for live sources, frame index / fps for files.
        image: ``(H, W, 3)`` uint8 BGR.
    """

    camera: str
    index: int
    timestamp_s: float
    image: np.ndarray

    def __post_init__(self) -> None:
        if not self.camera:
            raise ValueError("Frame.camera must be a non-empty name")
        if self.index < 0:
            raise ValueError(f"Frame.index must be >= 0, got {self.index}")
        if not np.isfinite(self.timestamp_s):
            raise ValueError(f"Frame.timestamp_s must be finite, got {self.timestamp_s}")
        image = self.image
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
            shape = getattr(image, "shape", None)
            dtype = getattr(image, "dtype", None)
            raise ValueError(f"Frame.image must be (H, W, 3) uint8 BGR, got shape {shape} dtype {dtype}")


@runtime_checkable
class Source(Protocol):
    """What :class:`CameraThread` needs from a source.

    Attributes:
        name: camera name.
        live: True for cameras and streams (stamp on arrival, reconnect on failure); False for
            recorded sources (file time, stop at the end).
        problem: for recorded sources, why reading ended early (``None`` when it reached the end).
    """

    name: str
    live: bool
    problem: str | None

    def open(self) -> None:
        """Open (or reopen) the source; raise :class:`CaptureError` / ``InputFileError`` if it cannot."""

    def read(self) -> tuple[np.ndarray, float | None] | None:
        """Next ``((H, W, 3) uint8 BGR image, timestamp_s or None)``, or ``None`` when no frame came."""

    def close(self) -> None:
        """Release the device, socket or file; safe to call twice."""


def _as_bgr(image: np.ndarray | None) -> np.ndarray | None:
    """A decoded image as ``(H, W, 3)`` uint8 BGR (grey and BGRA are converted); ``None`` stays ``None``."""
    if image is None:
        return None
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class OpenCVSource:
    """A USB/V4L2 camera (index or ``/dev/videoN``) or a stream URL read through ``cv2.VideoCapture``.

    Args:
        target: camera index (int), device path or URL (``rtsp://``, ``http://``).
        name: camera name.
        width, height, fps: requested capture format (``None`` = the device's default); the device may
            grant something else, which is logged.
        timeout_s: open and read time-out for network streams (OpenCV's FFmpeg backend).
    """

    live = True

    def __init__(
        self,
        target: int | str,
        name: str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.target = target
        self.name = name
        self.width, self.height, self.fps = width, height, fps
        self.timeout_s = float(timeout_s)
        self.problem: str | None = None
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        timeout_ms = int(self.timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        if isinstance(self.target, int):
            capture = cv2.VideoCapture(self.target, cv2.CAP_ANY)
        else:
            capture = cv2.VideoCapture(self.target, cv2.CAP_ANY, params)
        if not capture.isOpened():
            capture.release()
            raise CaptureError(
                f"camera {self.name!r}: cannot open {self.target!r} (is it plugged in / reachable, "
                "and not used by another program?)"
            )
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                            (cv2.CAP_PROP_FPS, self.fps)):
            if value is not None:
                capture.set(prop, float(value))
        granted = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT),
                   capture.get(cv2.CAP_PROP_FPS))
        logger.info("camera %r: opened %r at %gx%g %g fps (backend %s)", self.name, self.target, *granted,
                    capture.getBackendName())
        self._capture = capture

    def read(self) -> tuple[np.ndarray, float | None] | None:
        if self._capture is None:
            return None
        ok, image = self._capture.read()
        if not ok or image is None:
            return None
        return _as_bgr(image), None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class MjpegHttpSource:
    """An HTTP ``multipart/x-mixed-replace`` MJPEG stream (IP cameras, phone apps, ``mjpg-streamer``).

    Read with the standard library and ``cv2.imdecode`` so time-outs and reconnection are ours, not
    the video backend's. Each part is read by its ``Content-Length`` when the server sends one,
    otherwise up to the next boundary line.

    Args:
        url: ``http://host:port/path``.
        name: camera name.
        timeout_s: connect and read time-out; a stalled stream counts as a failed read.
    """

    live = True

    def __init__(self, url: str, name: str, *, timeout_s: float = 2.0) -> None:
        self.url = url
        self.name = name
        self.timeout_s = float(timeout_s)
        self.problem: str | None = None
        self._response = None
        self._boundary = b""
        self._after_boundary = False

    def open(self) -> None:
        self.close()
        try:
            response = urllib.request.urlopen(self.url, timeout=self.timeout_s)  # noqa: S310 (user's URL)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise CaptureError(f"camera {self.name!r}: cannot connect to {self.url} ({reason}); "
                               "check the address and that the camera is streaming") from None
        content_type = response.headers.get("Content-Type", "")
        match = re.search(r"boundary=\"?([^\";]+)\"?", content_type)
        if not content_type.startswith("multipart/") or match is None:
            response.close()
            raise CaptureError(f"camera {self.name!r}: {self.url} is not an MJPEG stream "
                               f"(Content-Type {content_type!r}, expected multipart/x-mixed-replace)")
        self._boundary = match.group(1).strip().lstrip("-").encode("latin-1")
        self._response = response
        self._after_boundary = False
        logger.info("camera %r: connected to MJPEG stream %s", self.name, self.url)

    def _is_boundary(self, line: bytes) -> bool:
        return line.startswith(b"--") and line.strip().lstrip(b"-").rstrip(b"-") == self._boundary

    def _read_part(self) -> bytes | None:
        response = self._response
        if not self._after_boundary:
            for _ in range(64):  # a few blank lines or a preamble may precede the boundary
                line = response.readline(4096)
                if not line:
                    return None
                if self._is_boundary(line):
                    break
            else:
                return None
        self._after_boundary = False
        length = -1
        for _ in range(32):
            line = response.readline(4096)
            if not line:
                return None
            line = line.strip()
            if not line:
                break
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value.strip() or -1)
        if length > MAX_PART_BYTES:
            raise ValueError(f"a part announces {length} bytes, more than {MAX_PART_BYTES}")
        if length >= 0:
            data = response.read(length)
            return data if len(data) == length else None
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_PART_BYTES:  # a JPEG without Content-Length: read up to the next boundary
            line = response.readline(1 << 16)
            if not line:
                return None
            if self._is_boundary(line):
                self._after_boundary = True
                break
            chunks.append(line)
            size += len(line)
        else:
            raise ValueError(f"no boundary within {MAX_PART_BYTES} bytes")
        return b"".join(chunks).rstrip(b"\r\n")

    def read(self) -> tuple[np.ndarray, float | None] | None:
        if self._response is None:
            return None
        try:
            data = self._read_part()
        except (OSError, socket.timeout, ValueError, AttributeError) as error:
            logger.info("camera %r: stream read failed (%s)", self.name, error)
            return None
        if not data:
            return None
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            logger.info("camera %r: a part of %d bytes is not a decodable JPEG", self.name, len(data))
            return None
        return _as_bgr(image), None

    def close(self) -> None:
        if self._response is not None:
            try:
                self._response.close()
            except OSError:
                pass
            self._response = None


class VideoFileSource:
    """A recorded video, with timestamps ``index / fps`` from the file.

    Args:
        path: the video file.
        name: camera name (default: the file stem).
        realtime: pace reading at the file's frame rate (to replay a take as if live).
        fps: override the file's frame rate (needed when the container does not state it).
    """

    live = False

    def __init__(self, path: str | Path, name: str | None = None, *, realtime: bool = False,
                 fps: float | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self.realtime = realtime
        self.fps = fps
        self.frame_count = 0
        self.problem: str | None = None
        self._capture: cv2.VideoCapture | None = None
        self._index = 0
        self._start = 0.0

    def open(self) -> None:
        self.close()
        if not self.path.is_file():
            raise InputFileError(f"{self.path}: no such video file (camera {self.name!r})")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise InputFileError(f"{self.path}: cannot open the video (corrupt, truncated or an unsupported "
                                 f"codec; camera {self.name!r}) - re-export it as MP4/H.264")
        fps = self.fps or float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if not fps > 0:
            capture.release()
            raise InputFileError(f"{self.path}: the video does not state its frame rate; pass fps= for camera {self.name!r}")
        self.fps = fps
        self.frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._capture, self._index, self._start, self.problem = capture, 0, time.monotonic(), None

    def read(self) -> tuple[np.ndarray, float | None] | None:
        if self._capture is None:
            return None
        ok, image = self._capture.read()
        if not ok or image is None:
            if self._index == 0:
                self.problem = f"{self.path}: the video has no decodable frame (empty, truncated or corrupt)"
            elif self.frame_count and self._index < self.frame_count - 1:
                self.problem = (f"{self.path}: decoding failed at frame {self._index} of {self.frame_count} "
                                "(the file is truncated or damaged); the frames before it were kept")
            if self.problem:
                logger.warning("%s", self.problem)
            return None
        timestamp_s = self._index / self.fps
        self._index += 1
        if self.realtime:
            delay = self._start + timestamp_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return _as_bgr(image), timestamp_s

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageFolderSource:
    """Images of a folder in name order, as a recording at ``fps`` (timestamps ``index / fps``).

    An unreadable image ends the source with :attr:`problem` naming the file.
    """

    live = False

    def __init__(self, folder: str | Path, name: str | None = None, *, fps: float = 30.0) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.folder = Path(folder)
        self.name = name or self.folder.name
        self.fps = float(fps)
        self.problem: str | None = None
        self._paths: list[Path] = []
        self._index = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise InputFileError(f"{self.folder}: not a folder of images (camera {self.name!r})")
        self._paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self._paths:
            raise InputFileError(f"{self.folder}: no images ({', '.join(IMAGE_SUFFIXES)}) for camera {self.name!r}")
        self._index, self.problem = 0, None

    def read(self) -> tuple[np.ndarray, float | None] | None:
        if self._index >= len(self._paths):
            return None
        path = self._paths[self._index]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            self.problem = f"{path}: cannot read the image (corrupt or not an image); camera {self.name!r} stops here"
            logger.warning("%s", self.problem)
            self._index = len(self._paths)
            return None
        timestamp_s = self._index / self.fps
        self._index += 1
        return _as_bgr(image), timestamp_s

    def close(self) -> None:
        self._paths, self._index = [], 0


def open_source(spec: str, name: str, *, width: int | None = None, height: int | None = None,
                fps: float | None = None, timeout_s: float = 5.0) -> Source:
    """Build the source a user typed: ``"0"``, ``"/dev/video2"``, ``"rtsp://..."``, ``"http://..."``,
    a video file or a folder of images. The source is returned unopened (the camera thread opens it).

    ``http(s)://`` URLs ending in ``.mjpg``/``.mjpeg``/``.cgi`` or containing ``mjpg`` are read by
    :class:`MjpegHttpSource`; other URLs go to OpenCV's FFmpeg backend. ``fps`` is the rate requested
    from a camera, or the rate of an image folder (default 30).
    """
    text = spec.strip()
    if not text:
        raise CaptureError(f"camera {name!r}: empty source; give a camera index, device path, URL, video or folder")
    if text.isdigit():
        return OpenCVSource(int(text), name, width=width, height=height, fps=fps, timeout_s=timeout_s)
    lower = text.lower()
    if lower.startswith(("http://", "https://")) and re.search(r"mjpe?g|\.cgi(\?|$)", lower):
        return MjpegHttpSource(text, name, timeout_s=timeout_s)
    if re.match(r"^[a-z][a-z0-9+.-]*://", lower):
        return OpenCVSource(text, name, width=width, height=height, fps=fps, timeout_s=timeout_s)
    if lower.startswith("/dev/"):
        return OpenCVSource(text, name, width=width, height=height, fps=fps, timeout_s=timeout_s)
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, name, fps=fps or 30.0)
    if path.suffix.lower() in VIDEO_SUFFIXES or path.is_file():
        return VideoFileSource(path, name, fps=fps)
    raise CaptureError(f"camera {name!r}: {spec!r} is not a camera index, device path, URL, video file or "
                       "image folder")
