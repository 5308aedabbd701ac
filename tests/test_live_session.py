"""LiveSession with synthetic live sources (no network): a camera that stalls without disconnecting,
a slow frameset consumer that must not slow the recording, a consumer that keeps failing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mjpeg_server import decode_counter, encode_counter, wait_for

from app.live import MAX_CALLBACK_FAILURES, LiveSession
from app.take import Take
from calibration import save_rig
from calibration.errors import CaptureError, CrossviewError
from test_live_recording import two_camera_rig

FPS = 30.0


class TimedSource:
    """A live source producing counter images at ``fps``; it goes silent (the read blocks, the
    connection stays up) while ``stall`` is set."""

    live = True

    def __init__(self, name: str, fps: float = FPS) -> None:
        self.name = name
        self.problem = None
        self.period_s = 1.0 / fps
        self.stall = threading.Event()
        self.counter = 0
        self._next_s = 0.0

    def open(self) -> None:
        self._next_s = time.monotonic()

    def read(self):
        while self.stall.is_set():
            time.sleep(0.01)
        self._next_s += self.period_s
        delay = self._next_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self.counter += 1
        return encode_counter(self.counter), None

    def close(self) -> None:
        pass


def test_silent_camera_becomes_a_gap_and_comes_back(tmp_path: Path) -> None:
    """b stops delivering for 0.8 s without dropping its connection: after ``absent_after_s`` the
    session records without it, then takes it back."""
    sources = {"a": TimedSource("a"), "b": TimedSource("b")}
    session = LiveSession(sources, two_camera_rig(), fps=FPS, absent_after_s=0.3)
    with session:
        assert wait_for(lambda: session.stats().framesets >= 3, 10.0), session.stats()
        session.start_recording(tmp_path / "take", segment_s=0.5)
        assert wait_for(lambda: session.stats().recorded_frames >= 15, 10.0), session.stats()
        sources["b"].stall.set()
        assert wait_for(lambda: session.stats().camera("b").absent, 10.0), session.stats()
        time.sleep(0.5)
        sources["b"].stall.clear()
        assert wait_for(lambda: not session.stats().camera("b").absent, 10.0), session.stats()
        back = session.stats().recorded_frames
        assert wait_for(lambda: session.stats().recorded_frames >= back + 10, 10.0), session.stats()
    absent = [e for e in session.events if e.subject == "b" and e.state == "absent"]
    assert absent and "no frame for" in absent[0].message and session.stats().camera("b").reconnects == 0
    take = Take.open(tmp_path / "take")
    try:
        present_b = np.isfinite(take.timestamps[:, 1])
        assert np.isfinite(take.timestamps[:, 0]).all() and (~present_b).sum() >= 5
        counters = [decode_counter(take.frame("b", t)) for t in np.flatnonzero(present_b)]
        assert all(y > x for x, y in zip(counters, counters[1:]))
    finally:
        take.close()


def test_slow_consumer_skips_framesets_but_the_recording_keeps_them(tmp_path: Path) -> None:
    """An ``on_frameset`` taking 0.1 s (3 frame periods) sees the newest framesets only; the take
    still holds every frameset delivered while recording."""
    seen = []

    def slow(frameset) -> None:
        seen.append(frameset.timestamp_s)
        time.sleep(0.1)

    session = LiveSession({"a": TimedSource("a"), "b": TimedSource("b")}, None, fps=FPS, on_frameset=slow)
    with session:
        assert wait_for(lambda: session.stats().framesets >= 2, 10.0)
        session.start_recording(tmp_path / "take", segment_s=1.0)
        start = session.stats().framesets
        assert wait_for(lambda: session.stats().recorded_frames >= 30, 10.0)
        with pytest.raises(CaptureError, match="already recording"):
            session.start_recording(tmp_path / "other")
        before = session.stats().framesets
        folder = session.stop_recording()
        after = session.stats().framesets
        stats = session.stats()
    assert folder == tmp_path / "take" and not stats.recording and stats.recording_dropped == 0
    assert before - start <= stats.recorded_frames <= after - start  # every frameset while recording
    assert stats.processing_skipped > stats.processed / 2 and all(b > a for a, b in zip(seen, seen[1:]))
    save_rig(two_camera_rig(), folder / "calibration.yaml")  # recorded without a calibration
    take = Take.open(folder)
    assert take.num_frames == stats.recorded_frames and take.info.frames_per_camera == {"a": take.num_frames,
                                                                                        "b": take.num_frames}
    take.close()


def test_failing_consumer_is_stopped_with_a_message() -> None:
    def broken(frameset) -> None:
        raise RuntimeError("pipeline bug")

    session = LiveSession({"a": TimedSource("a")}, None, fps=FPS, on_frameset=broken)
    with session:
        assert wait_for(lambda: any(e.subject == "processing" for e in session.events), 10.0)
    stats = session.stats()
    assert stats.processing_failures == MAX_CALLBACK_FAILURES and stats.processed == 0
    failed = [e for e in session.events if e.subject == "processing"]
    assert failed[0].state == "failed" and "failed 10 times in a row; it is stopped" in failed[0].message


def test_session_refuses_cameras_the_calibration_lacks() -> None:
    with pytest.raises(CrossviewError, match=r"live cameras names camera\(s\) c that the calibration does not have"):
        LiveSession({"a": TimedSource("a"), "c": TimedSource("c")}, two_camera_rig())
