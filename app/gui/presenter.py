"""The playback presenter: which take is open, which frame is shown, whether it plays, how fast.

Widgets never hold playback state; they call the presenter's commands (``open_take``, ``play``,
``pause``, ``step``, ``seek``, ``set_speed``) and redraw on its signals. Playback follows the
clock: each timer tick shows the frame that *should* be on screen at the chosen speed, so a slow
redraw drops frames instead of slowing the take down.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PyQt6.QtCore import QElapsedTimer, QObject, QTimer, pyqtSignal

from app.take import Take
from calibration.errors import CrossviewError

logger = logging.getLogger(__name__)

#: Playback speeds offered to the user (multiples of real time).
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: The fastest the timer ticks, in Hz: more would only redraw frames the screen cannot show.
MAX_TICK_HZ = 60.0


class PlaybackPresenter(QObject):
    """Playback state of one take, exposed as commands and signals (GUI thread only).

    Signals:
        take_opened(Take): a take was opened (the previous one is closed).
        frame_changed(int): the frame to show changed.
        playing_changed(bool): playback started or stopped.
        speed_changed(float): the speed changed.
        error(str): a message for the user (a take that could not be opened, a frame that failed).
    """

    take_opened = pyqtSignal(object)
    frame_changed = pyqtSignal(int)
    playing_changed = pyqtSignal(bool)
    speed_changed = pyqtSignal(float)
    error = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._take: Take | None = None
        self._frame = 0
        self._speed = 1.0
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._clock = QElapsedTimer()
        self._clock_frame = 0  # the frame shown when the clock was (re)started

    # ----------------------------------------------------------------------------------------
    # State (read-only; change it through the commands)
    @property
    def take(self) -> Take | None:
        return self._take

    @property
    def frame(self) -> int:
        return self._frame

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    @property
    def num_frames(self) -> int:
        return 0 if self._take is None else self._take.num_frames

    # ----------------------------------------------------------------------------------------
    # Commands
    def open_take(self, folder: str | Path) -> bool:
        """Open the take in ``folder`` and show its first frame; on failure emit :attr:`error`
        (the open take, if any, stays) and return False."""
        try:
            take = Take.open(folder)
        except CrossviewError as exc:
            logger.warning("cannot open take %s: %s", folder, exc)
            self.error.emit(f"Cannot open the take: {exc}")
            return False
        self.pause()
        if self._take is not None:
            self._take.close()
        self._take = take
        self._frame = 0
        logger.info("opened take %s: %d frames, %d cameras, %.2f fps", folder, take.num_frames,
                    len(take.camera_names), take.fps)
        self.take_opened.emit(take)
        self.frame_changed.emit(0)
        return True

    def close_take(self) -> None:
        self.pause()
        if self._take is not None:
            self._take.close()

    def play(self) -> None:
        """Play from the current frame (from the start when at the end)."""
        if self._take is None or self.playing or self._take.num_frames < 2:
            return
        if self._frame >= self._take.num_frames - 1:
            self.seek(0)
        self._restart_clock()
        rate_hz = min(self._take.fps * self._speed, MAX_TICK_HZ)
        self._timer.start(max(1, int(1000.0 / rate_hz)))
        self.playing_changed.emit(True)

    def pause(self) -> None:
        if self.playing:
            self._timer.stop()
            self.playing_changed.emit(False)

    def toggle_play(self) -> None:
        if self.playing:
            self.pause()
        else:
            self.play()

    def step(self, frames: int) -> None:
        """Pause and move ``frames`` frames (negative: back)."""
        self.pause()
        self.seek(self._frame + int(frames))

    def seek(self, frame: int) -> None:
        """Show ``frame`` (clamped to the take); playback, if on, goes on from there."""
        if self._take is None:
            return
        frame = max(0, min(int(frame), self._take.num_frames - 1))
        if frame == self._frame:
            return
        self._frame = frame
        if self.playing:
            self._restart_clock()
        self.frame_changed.emit(frame)

    def set_speed(self, speed: float) -> None:
        """Play at ``speed`` times real time (one of :data:`SPEEDS`)."""
        if speed not in SPEEDS:
            self.error.emit(f"speed {speed:g}x is not offered; choose one of {', '.join(f'{s:g}x' for s in SPEEDS)}")
            return
        if speed == self._speed:
            return
        self._speed = float(speed)
        if self.playing:
            self.pause()
            self.play()
        self.speed_changed.emit(self._speed)

    # ----------------------------------------------------------------------------------------
    def _restart_clock(self) -> None:
        self._clock.start()
        self._clock_frame = self._frame

    def _tick(self) -> None:
        if self._take is None:
            self.pause()
            return
        elapsed_s = self._clock.elapsed() / 1000.0
        target = self._clock_frame + int(elapsed_s * self._take.fps * self._speed)
        last = self._take.num_frames - 1
        if target >= last:
            self.pause()
            target = last
        if target != self._frame:
            self._frame = target
            self.frame_changed.emit(target)
