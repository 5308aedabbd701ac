"""One inference thread that owns the :class:`app.pipeline.Pipeline` and runs it on frame sets.

The GUI submits frame sets (:meth:`PoseWorker.submit`); the worker keeps only the newest one
waiting, so a slow pipeline skips frame sets instead of falling behind (live capture) or makes
playback show fewer, in-step frames. The pipeline is built inside the thread (loading ONNX models
takes seconds), and results and errors leave through callbacks that a Qt bridge turns into
signals. No Qt here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from calibration.errors import CrossviewError

logger = logging.getLogger(__name__)

#: Consecutive failing frame sets after which the worker stops with a message (one bad frame is
#: counted and skipped; a broken model would otherwise fail forever).
MAX_FAILURES_IN_A_ROW = 5


class PoseWorker:
    """Run a pipeline on submitted frame sets in a background thread.

    Args:
        make_pipeline: builds the pipeline (called once, in the worker thread).
        on_result: ``on_result(key, frames, pose_frame)`` after each processed frame set; ``key``
            is what :meth:`submit` was given (a frame index, a frame set), ``frames`` the images.
        on_error: ``on_error(message)`` when the pipeline cannot be built or keeps failing.
        on_ready: ``on_ready(provider)`` once the pipeline is built.
    """

    def __init__(
        self,
        make_pipeline: Callable[[], Any],
        on_result: Callable[[Any, Sequence[np.ndarray | None], Any], None],
        on_error: Callable[[str], None],
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        self._make_pipeline = make_pipeline
        self._on_result = on_result
        self._on_error = on_error
        self._on_ready = on_ready
        self._lock = threading.Condition()
        self._pending: tuple[Any, Sequence[np.ndarray | None], float] | None = None
        self._stop = False
        self._reset = False
        self.processed = 0
        self.skipped = 0  # frame sets replaced by a newer one before they were processed
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="pose-worker", daemon=True)
        self._thread.start()

    def submit(self, key: Any, frames: Sequence[np.ndarray | None], t_s: float) -> None:
        """Process ``frames`` (one ``(H, W, 3)`` uint8 BGR image or None per camera, rig order)
        taken at ``t_s`` seconds; replaces a frame set still waiting."""
        with self._lock:
            if self._pending is not None:
                self.skipped += 1
            self._pending = (key, frames, float(t_s))
            self._lock.notify_all()

    def reset(self) -> None:
        """Forget the pipeline's tracking and filter history before the next frame set (a seek)."""
        with self._lock:
            self._reset = True

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._pending is not None

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the thread and wait for it (a frame set being processed finishes first)."""
        with self._lock:
            self._stop = True
            self._pending = None
            self._lock.notify_all()
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        try:
            pipeline = self._make_pipeline()
        except CrossviewError as exc:
            self._on_error(f"Cannot start the pose pipeline: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 (a model library's own error): the user must see it
            logger.exception("pipeline construction failed")
            self._on_error(f"Cannot start the pose pipeline: {type(exc).__name__}: {exc}")
            return
        if self._on_ready is not None:
            self._on_ready(str(getattr(pipeline, "provider", "?")))
        in_a_row = 0
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._stop or self._pending is not None)
                if self._stop:
                    return
                key, frames, t_s = self._pending
                self._pending, reset, self._reset = None, self._reset, False
            if reset:
                pipeline.reset()
            start = time.perf_counter()
            try:
                pose = pipeline.process(frames, t_s)
            except CrossviewError as exc:
                self.failures += 1
                in_a_row += 1
                logger.warning("frame set %s failed: %s", key, exc)
                if in_a_row >= MAX_FAILURES_IN_A_ROW:
                    self._on_error(f"The pose pipeline failed on {in_a_row} frame sets in a row; stopped. Last: {exc}")
                    return
                continue
            except Exception as exc:  # noqa: BLE001 (a bug or a model library's error): show it, stop
                logger.exception("frame set %s failed", key)
                self._on_error(f"The pose pipeline stopped: {type(exc).__name__}: {exc}")
                return
            in_a_row = 0
            self.processed += 1
            logger.debug("frame set %s processed in %.1f ms", key, 1000 * (time.perf_counter() - start))
            self._on_result(key, frames, pose)
