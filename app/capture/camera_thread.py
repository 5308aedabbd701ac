"""One capture thread per camera: read, stamp on arrival, buffer, reconnect with back-off, stop cleanly.

The thread owns its :class:`Source`. Live frames are stamped with ``time.monotonic()`` the moment
``read()`` returns; recorded frames keep the file's time. Frames go into a bounded buffer: for a live
source a full buffer drops its oldest frame and counts it (the consumer always sees the newest
frames); for a recorded source the thread waits for room, so offline processing loses nothing.

When a live source fails (open error, failed or stalled read) the thread closes it and reopens it
after a back-off that doubles from ``backoff_initial_s`` to ``backoff_max_s``; after
``max_reconnects`` failed attempts in a row it gives up with state ``"failed"`` and a message in
:meth:`CameraThread.status`. It never spins: every retry waits, and every wait wakes on ``stop()``.

Consumers poll :meth:`get` / :meth:`latest` or pass ``on_frame`` (called on the capture thread).
No Qt here; a GUI bridges these calls into signals.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from app.capture.sources import Frame, Source
from calibration.errors import CrossviewError

logger = logging.getLogger(__name__)

STATES = ("idle", "connecting", "running", "reconnecting", "finished", "failed", "stopped")


@dataclass(frozen=True, slots=True)
class CaptureStatus:
    """A snapshot of one camera thread.

    Attributes:
        camera: camera name.
        state: one of ``idle, connecting, running, reconnecting, finished, failed, stopped``.
        message: what went wrong last (or why it finished); empty when all is well.
        frames: frames captured.
        dropped: frames pushed out of the full buffer before anyone took them.
        reconnects: successful reopenings after a failure.
        failed_attempts: failed open attempts in a row (reset by a successful open).
    """

    camera: str
    state: str
    message: str
    frames: int
    dropped: int
    reconnects: int
    failed_attempts: int

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {self.state!r}")


class CameraThread:
    """Capture one source on its own thread.

    Args:
        source: an unopened :class:`Source`.
        buffer_size: frames held for the consumer (>= 1).
        on_frame: optional callback ``(Frame) -> None``, called on the capture thread for every frame;
            an exception in it is logged and counted, not fatal.
        backoff_initial_s, backoff_max_s: reconnection delays, doubling from the first to the second.
        max_reconnects: failed open attempts in a row before giving up.
    """

    def __init__(
        self,
        source: Source,
        *,
        buffer_size: int = 4,
        on_frame: Callable[[Frame], None] | None = None,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
        max_reconnects: int = 8,
    ) -> None:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError(f"need 0 < backoff_initial_s <= backoff_max_s, got {backoff_initial_s}, {backoff_max_s}")
        if max_reconnects < 1:
            raise ValueError(f"max_reconnects must be >= 1, got {max_reconnects}")
        self.source = source
        self.name = source.name
        self.on_frame = on_frame
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_reconnects = int(max_reconnects)
        self._buffer: collections.deque[Frame] = collections.deque()
        self._buffer_size = int(buffer_size)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
        self._state = "idle"
        self._message = ""
        self._frames = self._dropped = self._reconnects = self._failed = 0
        self._next_index = 0

    # -- consumer side -------------------------------------------------------------------------

    def start(self) -> "CameraThread":
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Ask the thread to stop, wait up to ``timeout_s`` and say whether it ended."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the thread to end on its own (a finished file, a failed camera); True if it ended."""
        if self._thread.ident is not None:
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> CaptureStatus:
        with self._cond:
            return CaptureStatus(self.name, self._state, self._message, self._frames, self._dropped,
                                 self._reconnects, self._failed)

    def get(self, timeout_s: float = 0.0) -> Frame | None:
        """Take the oldest buffered frame, waiting up to ``timeout_s``; ``None`` if none came."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (not self._thread.is_alive() and self._thread.ident is not None):
                    return None
                self._cond.wait(remaining)
            frame = self._buffer.popleft()
            self._cond.notify_all()
            return frame

    def latest(self) -> Frame | None:
        """Take the newest buffered frame and discard (and count as dropped) the older ones."""
        with self._cond:
            if not self._buffer:
                return None
            frame = self._buffer.pop()
            self._dropped += len(self._buffer)
            self._buffer.clear()
            self._cond.notify_all()
            return frame

    # -- capture thread ------------------------------------------------------------------------

    def _set(self, state: str, message: str | None = None) -> None:
        with self._cond:
            self._state = state
            if message is not None:
                self._message = message
            self._cond.notify_all()

    def _open_with_backoff(self, first: bool) -> bool:
        """Open the source, retrying with back-off; False when stopped or out of attempts."""
        delay = self.backoff_initial_s
        while not self._stop.is_set():
            try:
                self.source.open()
            except CrossviewError as error:
                with self._cond:
                    self._failed += 1
                    failed = self._failed
                    self._message = str(error)
                if not self.source.live:
                    self._set("failed")
                    return False
                if failed >= self.max_reconnects:
                    self._set("failed", f"camera {self.name!r}: gave up after {failed} failed attempts to "
                                        f"{'open' if first else 'reconnect'}; last error: {error}")
                    logger.error("%s", self._message)
                    return False
                logger.warning("%s; retrying in %.1f s", error, delay)
                self._stop.wait(delay)
                delay = min(2 * delay, self.backoff_max_s)
                continue
            with self._cond:
                self._failed = 0
                if not first:
                    self._reconnects += 1
            self._set("running", "")
            return True
        return False

    def _push(self, frame: Frame) -> None:
        with self._cond:
            if self.source.live:
                if len(self._buffer) >= self._buffer_size:
                    self._buffer.popleft()
                    self._dropped += 1
            else:
                while len(self._buffer) >= self._buffer_size and not self._stop.is_set():
                    self._cond.wait(0.1)
            self._buffer.append(frame)
            self._frames += 1
            self._cond.notify_all()
        if self.on_frame is not None:
            try:
                self.on_frame(frame)
            except Exception:  # a consumer bug must not kill capture; it is logged with its traceback
                logger.exception("camera %r: on_frame callback failed", self.name)

    def _run(self) -> None:
        self._set("connecting")
        first = True
        try:
            while not self._stop.is_set():
                if not self._open_with_backoff(first):
                    break
                first = False
                while not self._stop.is_set():
                    result = self.source.read()
                    arrival_s = time.monotonic()
                    if result is None:
                        break
                    image, file_time_s = result
                    timestamp_s = arrival_s if file_time_s is None else file_time_s
                    self._push(Frame(self.name, self._next_index, timestamp_s, image))
                    self._next_index += 1
                self.source.close()
                if self._stop.is_set():
                    break
                if not self.source.live:
                    problem = self.source.problem
                    self._set("failed" if problem else "finished", problem or "end of recording")
                    return
                logger.warning("camera %r: stream lost after %d frames; reconnecting", self.name, self._frames)
                self._set("reconnecting", f"camera {self.name!r}: stream lost; reconnecting")
                self._stop.wait(self.backoff_initial_s)
        finally:
            self.source.close()
            if self._stop.is_set():
                self._set("stopped")
