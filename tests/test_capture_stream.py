"""Live capture for real: an MJPEG stream on 127.0.0.1 is captured, cut, restored and reconnected.

The server draws its own frame counter into each image (16 bits as black/white blocks, robust to
JPEG), so the test reads back which server frame every captured frame was and checks that nothing
is duplicated or reordered across the cut. Every loop is bounded in count and time.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from mjpeg_server import MjpegServer, closed_port, decode_counter, wait_for

from app.capture.camera_thread import CameraThread
from app.capture.sources import CaptureError, MjpegHttpSource, OpenCVSource, open_source


def test_mjpeg_stream_cut_and_restored() -> None:
    """Capture ~30 fps MJPEG, cut the server, restore it on the same port: the thread reconnects.

    Measured (2 cores): reconnection ~0.3-0.7 s after the server is back (back-off 0.1 s doubling),
    no duplicated or reordered server frame, stop() joins in well under a second.
    """
    server = MjpegServer(fps=30.0).start()
    captured: list[tuple[int, float, int]] = []  # (frame index, timestamp_s, server counter)
    states: list[str] = []
    thread = CameraThread(open_source(server.url, "ip0", timeout_s=1.0), buffer_size=4,
                          backoff_initial_s=0.1, backoff_max_s=0.4, max_reconnects=50)
    assert isinstance(thread.source, MjpegHttpSource)

    def drain() -> None:
        for _ in range(100):
            frame = thread.get()
            if frame is None:
                return
            captured.append((frame.index, frame.timestamp_s, decode_counter(frame.image)))

    def drain_until(predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            drain()
            states.append(thread.status().state)
            if predicate():
                return True
            time.sleep(0.01)
        return False

    thread.start()
    try:
        assert drain_until(lambda: len(captured) >= 20, 10.0), thread.status()
        before_cut = len(captured)
        server.cut()
        assert drain_until(lambda: thread.status().state == "reconnecting" or thread.status().failed_attempts > 0,
                           10.0), thread.status()
        time.sleep(0.5)  # stay down for a while: a few refused attempts
        drain()
        down = thread.status()
        assert down.state in ("reconnecting", "connecting", "running") and down.failed_attempts >= 1, down
        restored_at = time.monotonic()
        server.start()
        assert drain_until(lambda: thread.status().reconnects >= 1 and len(captured) >= before_cut + 20, 10.0), \
            thread.status()
        reconnect_s = time.monotonic() - restored_at
        assert reconnect_s < 10.0
    finally:
        stopped = thread.stop(timeout_s=5.0)
        server.cut()
    assert stopped, "the capture thread did not stop within 5 s"
    drain()  # frames still buffered when the thread stopped
    final = thread.status()
    assert final.state == "stopped"
    assert final.reconnects == 1
    indices = [c[0] for c in captured]
    times = [c[1] for c in captured]
    counters = [c[2] for c in captured]
    assert indices == sorted(set(indices)), "frame indices must strictly increase"
    assert all(b > a for a, b in zip(times, times[1:])), "arrival timestamps must strictly increase"
    assert all(b > a for a, b in zip(counters, counters[1:])), "a server frame was duplicated or reordered"
    # frames captured = frames delivered + frames dropped from the full buffer (all accounted for)
    assert final.frames == len(captured) + final.dropped
    assert "reconnecting" in states


def test_mjpeg_parts_without_content_length() -> None:
    """Servers that omit Content-Length: parts are read up to the next boundary line."""
    server = MjpegServer(fps=60.0, max_frames=100, content_length=False).start()
    source = MjpegHttpSource(server.url, "nolen", timeout_s=2.0)
    try:
        source.open()
        counters = []
        for _ in range(10):
            result = source.read()
            assert result is not None
            counters.append(decode_counter(result[0]))
        assert counters == list(range(counters[0], counters[0] + 10))
    finally:
        source.close()
        server.cut()


def test_not_an_mjpeg_url_is_a_clear_error() -> None:
    """An HTTP server that answers with something else than a multipart stream."""
    server = MjpegServer().start()
    source = MjpegHttpSource(f"http://127.0.0.1:{server.port}/", "web", timeout_s=1.0)
    try:
        with pytest.raises(CaptureError, match="is not an MJPEG stream"):
            source.open()
    finally:
        server.cut()


def test_opencv_backend_reads_the_same_stream() -> None:
    """OpenCV's FFmpeg backend (the path for RTSP and other URLs) also reads our MJPEG stream."""
    server = MjpegServer(fps=30.0, max_frames=200).start()
    source = OpenCVSource(server.url, "ff0", timeout_s=2.0)
    try:
        try:
            source.open()
        except Exception as error:  # a build of OpenCV without FFmpeg network support
            pytest.skip(f"OpenCV cannot open HTTP MJPEG here: {error}")
        counters = []
        for _ in range(10):
            result = source.read()
            assert result is not None
            image, file_time = result
            assert file_time is None and image.dtype == np.uint8 and image.shape[2] == 3
            counters.append(decode_counter(image))
        assert all(b > a for a, b in zip(counters, counters[1:]))
    finally:
        source.close()
        server.cut()


def test_unreachable_stream_fails_with_clear_status() -> None:
    """A URL on a closed local port: K refused attempts with back-off, then state 'failed' and a message."""
    url = f"http://127.0.0.1:{closed_port()}/stream.mjpg"
    thread = CameraThread(open_source(url, "gone", timeout_s=0.5), backoff_initial_s=0.02, backoff_max_s=0.05,
                          max_reconnects=3).start()
    assert thread.join(10.0), "the thread kept retrying"
    status = thread.status()
    assert status.state == "failed" and status.failed_attempts == 3 and status.frames == 0
    assert "gone" in status.message and "3 failed attempts" in status.message and "127.0.0.1" in status.message


def test_camera_that_disappears_gives_up_after_k_attempts() -> None:
    """The stream runs, then its server vanishes for good: reconnecting, then 'failed' with a message."""
    server = MjpegServer(fps=30.0, max_frames=500).start()
    thread = CameraThread(open_source(server.url, "cam9", timeout_s=0.5), backoff_initial_s=0.02,
                          backoff_max_s=0.05, max_reconnects=4).start()
    try:
        assert wait_for(lambda: thread.status().frames >= 5, 10.0), thread.status()
        server.cut()
        assert thread.join(10.0), thread.status()
    finally:
        thread.stop(2.0)
    status = thread.status()
    assert status.state == "failed" and status.reconnects == 0 and status.frames >= 5
    assert "reconnect" in status.message and "cam9" in status.message
