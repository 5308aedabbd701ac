"""An MJPEG stream served on 127.0.0.1 for capture tests (not a test module).

The server draws its own frame counter into each image (16 bits as black/white blocks, robust to
JPEG and MPEG-4), so a test reads back which server frame every captured or recorded frame was.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time

import cv2
import numpy as np

BITS = 16
BLOCK = 10


def encode_counter(counter: int) -> np.ndarray:
    """A (40, 80, 3) uint8 BGR image with ``counter`` drawn as 16 blocks (2 rows of 8)."""
    image = np.full((2 * BLOCK + 20, 8 * BLOCK, 3), 128, np.uint8)
    for bit in range(BITS):
        row, col = divmod(bit, 8)
        value = 255 if (counter >> bit) & 1 else 0
        image[row * BLOCK:(row + 1) * BLOCK, col * BLOCK:(col + 1) * BLOCK] = value
    return image


def decode_counter(image: np.ndarray) -> int:
    counter = 0
    for bit in range(BITS):
        row, col = divmod(bit, 8)
        block = image[row * BLOCK + 2:(row + 1) * BLOCK - 2, col * BLOCK + 2:(col + 1) * BLOCK - 2]
        if block.mean() > 127:
            counter |= 1 << bit
    return counter


class MjpegServer:
    """A multipart/x-mixed-replace JPEG stream at ~``fps`` on 127.0.0.1, continuing one frame counter
    across restarts; at most ``max_frames`` frames in all."""

    def __init__(self, fps: float = 30.0, max_frames: int = 2000, port: int = 0,
                 content_length: bool = True) -> None:
        self.fps = fps
        self.content_length = content_length
        self.max_frames = max_frames
        self.port = port
        self.counter = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.httpd: http.server.ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> "MjpegServer":
        owner = self
        self.stopping.clear()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                if self.path != "/stream.mjpg":  # a web page, as a camera's home page would be
                    body = b"<html>camera home</html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                deadline = time.monotonic() + 30.0
                while not owner.stopping.is_set() and time.monotonic() < deadline:
                    with owner.lock:
                        if owner.counter >= owner.max_frames:
                            return
                        counter = owner.counter
                        owner.counter += 1
                    ok, jpeg = cv2.imencode(".jpg", encode_counter(counter), [cv2.IMWRITE_JPEG_QUALITY, 90])
                    length = b"Content-Length: %d\r\n" % len(jpeg) if owner.content_length else b""
                    part = (b"--frame\r\nContent-Type: image/jpeg\r\n" + length + b"\r\n"
                            + jpeg.tobytes() + b"\r\n")
                    try:
                        self.wfile.write(part)
                        self.wfile.flush()
                    except OSError:
                        return
                    owner.stopping.wait(1.0 / owner.fps)

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def cut(self) -> None:
        """Stop serving: open streams end, new connections are refused."""
        self.stopping.set()
        assert self.httpd is not None and self.thread is not None
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"


def wait_for(predicate, timeout_s: float, step_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
