"""Recording takes (app/recording.py): layout, gaps, a killed recording, a full disk, opening them.

Frames carry their frame number drawn as blocks (``mjpeg_server.encode_counter``), so a test reads
back from the finished MP4s which frameset every video frame is, and checks that videos and
``timestamps.csv`` agree frame by frame.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from mjpeg_server import decode_counter, encode_counter

import app.recording as recording
from app.capture.sources import Frame
from app.capture.synchronizer import FrameSet
from app.recording import TakeWriter, read_take_info, recover_take
from app.take import Take
from calibration import save_rig
from calibration.errors import CaptureError, CrossviewError, InputFileError
from calibration.rig import Rig
from models.synthetic.rigs import ring_rig

FPS = 30.0
SEGMENT_S = 0.25  # 8 frames at 30 fps
CAMERAS = ("a", "b")


def small_rig(names=CAMERAS) -> Rig:
    rig = ring_rig(len(names), width=80, height=40)
    return Rig(tuple(replace(camera, name=name) for camera, name in zip(rig, names)))


def frameset(i: int, missing: tuple[str, ...] = ()) -> FrameSet:
    """Frameset ``i`` at ``i / 30`` s (camera b 1 ms later); cameras in ``missing`` have no frame."""
    image = encode_counter(i)
    frames = tuple(None if name in missing else Frame(name, i, 100.0 + i / FPS + 0.001 * c, image)
                   for c, name in enumerate(CAMERAS))
    return FrameSet(CAMERAS, frames)


def check_take(folder: Path, frames: int) -> Take:
    """Open the take and check that videos, timestamps and take.yaml agree frame by frame."""
    take = Take.open(folder)
    assert take.info is not None and take.info.state == "complete" and take.info.frames == frames
    assert take.num_frames == frames and take.timestamps.shape == (frames, 2)
    assert not (folder / ".recording").exists()
    for c, name in enumerate(take.camera_names):
        assert len(take.videos[name]) == frames
        times = take.timestamps[:, c]
        present = np.isfinite(times)
        assert take.info.frames_per_camera[name] == int(present.sum())
        assert np.all(np.diff(times[present]) > 0)
        for t in range(frames):
            image = take.frame(name, t)
            if present[t]:
                assert decode_counter(image) == t, (name, t)
                assert times[t] == pytest.approx(t / FPS + 0.001 * c, abs=1e-5)
            else:
                assert image.mean() < 20  # a gap is a black frame
    return take


def test_take_layout_with_gaps(tmp_path: Path) -> None:
    """25 framesets, camera b missing in 5..12 (across a segment boundary): lockstep videos, NaN rows."""
    writer = TakeWriter(tmp_path / "take", small_rig(), FPS, CAMERAS, segment_s=SEGMENT_S)
    for i in range(25):
        assert writer.write(frameset(i, ("b",) if 5 <= i <= 12 else ())) == i
    assert writer.committed_frames == 24  # three 8-frame segments; the 25th is in the open one
    folder = writer.close()
    assert writer.close() == folder  # twice is fine
    take = check_take(folder, 25)
    assert np.isnan(take.timestamps[5:13, 1]).all() and np.isfinite(take.timestamps[:, 0]).all()
    assert take.info.frames_per_camera == {"a": 25, "b": 17}
    assert take.info.fps == FPS and take.fps == FPS and take.info.time_origin_s == pytest.approx(100.0)
    assert take.info.versions["opencv"] and "T" in take.info.start_time
    assert take.time_s(6) == pytest.approx(6 / FPS)
    assert take.camera_names == CAMERAS and (folder / "calibration.yaml").is_file()
    header = (folder / "timestamps.csv").read_text().splitlines()[:3]
    assert header == ["frame,camera,t_s", "0,a,0.000000", "0,b,0.001000"]
    take.close()


def test_camera_absent_from_the_start_gets_black_frames(tmp_path: Path) -> None:
    """b sends nothing for the first 10 framesets (more than a segment): its video still has every frame."""
    writer = TakeWriter(tmp_path / "take", small_rig(), FPS, CAMERAS, segment_s=SEGMENT_S)
    for i in range(20):
        writer.write(frameset(i, ("b",) if i < 10 else ()))
    check_take(writer.close(), 20).close()


def test_killed_recording_opens_with_the_committed_segments(tmp_path: Path) -> None:
    """A recording process is SIGKILLed mid-take; opening the take recovers every committed segment.

    Measured: the child commits 8-frame segments every ~0.1 s; the recovered take holds exactly the
    frames of the segments in the journal at the kill (a multiple of 8), nothing torn.
    """
    save_rig(small_rig(), tmp_path / "rig.yaml")
    folder = tmp_path / "take"
    tests = Path(__file__).resolve().parent
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(tests)!r})\n"
        "from test_recording import frameset\n"
        "from app.recording import TakeWriter\n"
        "from calibration import load_rig\n"
        "writer = TakeWriter(sys.argv[1], load_rig(sys.argv[2]), 30.0, ['a', 'b'], segment_s=0.25)\n"
        "for i in range(100000):\n"
        "    writer.write(frameset(i, ('b',) if i % 50 > 45 else ()))\n"
        "    time.sleep(0.003)\n"
    )
    repo = tests.parent
    child = subprocess.Popen([sys.executable, "-c", code, str(folder), str(tmp_path / "rig.yaml")], cwd=repo,
                             stderr=subprocess.PIPE)
    journal = folder / ".recording" / "journal.csv"
    try:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and child.poll() is None:
            if journal.is_file() and len(journal.read_text().splitlines()) >= 4:
                break
            time.sleep(0.02)
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
        child.stderr.close()
    committed = len(journal.read_text().splitlines())
    assert committed >= 4
    assert read_take_info(folder).state == "recording"
    take = check_take(folder, 8 * committed)
    assert take.info.recovered and "interrupted" in take.info.stop_reason
    assert np.isnan(take.timestamps[46:50, 1]).all()
    take.close()
    assert recover_take(folder).frames == 8 * committed  # a complete take is left as it is


def test_full_disk_stops_recording_and_keeps_what_was_written(tmp_path: Path, monkeypatch) -> None:
    """ENOSPC from the third durable write (the second segment's rows): a CaptureError says so, the
    first segment is finalised and opens."""
    calls = {"n": 0}
    real = recording._append_durably

    def append(path, text):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, text)

    monkeypatch.setattr(recording, "_append_durably", append)
    writer = TakeWriter(tmp_path / "take", small_rig(), FPS, CAMERAS, segment_s=SEGMENT_S)
    with pytest.raises(CaptureError, match=r"recording stopped: No space left on device .*keeps the 8 framesets"):
        for i in range(40):
            writer.write(frameset(i))
    assert i == 15  # the 16th frameset closed the second segment, whose commit failed
    with pytest.raises(CaptureError, match="recording has stopped: recording stopped: No space left"):
        writer.write(frameset(16))
    take = check_take(tmp_path / "take", 8)
    assert "No space left on device" in take.info.stop_reason
    take.close()


def test_nearly_full_disk_stops_before_it_is_full(tmp_path: Path, monkeypatch) -> None:
    """Less free space than finalising needs: recording stops after the segment that found it."""
    usage = recording.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(recording.shutil, "disk_usage", lambda path: usage._replace(free=10 << 20))
    writer = TakeWriter(tmp_path / "take", small_rig(), FPS, CAMERAS, segment_s=SEGMENT_S)
    with pytest.raises(CaptureError, match=r"disk is nearly full \(10 MB free"):
        for i in range(40):
            writer.write(frameset(i))
    monkeypatch.undo()
    check_take(tmp_path / "take", 8).close()


def test_segments_joined_without_ffmpeg(tmp_path: Path, monkeypatch) -> None:
    """Without the ffmpeg program the segments are re-encoded with OpenCV: same frames."""
    monkeypatch.setattr(recording.shutil, "which", lambda name: None)
    writer = TakeWriter(tmp_path / "take", small_rig(), FPS, CAMERAS, segment_s=SEGMENT_S)
    for i in range(20):
        writer.write(frameset(i))
    check_take(writer.close(), 20).close()


def test_bad_takes_are_refused_with_clear_messages(tmp_path: Path) -> None:
    """A calibration naming other cameras, a take.yaml with an unknown key, a video shorter than the
    timestamps, a folder that is not empty."""
    writer = TakeWriter(tmp_path / "take", small_rig(), FPS, CAMERAS, segment_s=SEGMENT_S)
    for i in range(10):
        writer.write(frameset(i))
    folder = writer.close()
    with pytest.raises(CaptureError, match="already exists and is not empty"):
        TakeWriter(folder, None, FPS, CAMERAS)

    save_rig(small_rig(("left", "right")), folder / "calibration.yaml")
    with pytest.raises(CrossviewError, match=r"videos .* name camera\(s\) a, b that the calibration "
                                             r"calibration.yaml does not have \(it has left, right\)"):
        Take.open(folder)
    save_rig(small_rig(), folder / "calibration.yaml")

    info = yaml.safe_load((folder / "take.yaml").read_text())
    (folder / "take.yaml").write_text(yaml.safe_dump({**info, "colour": "red"}))
    with pytest.raises(InputFileError, match=r"take.yaml: unknown key 'colour'"):
        Take.open(folder)
    (folder / "take.yaml").write_text(yaml.safe_dump(info))

    lines = (folder / "timestamps.csv").read_text().splitlines()
    (folder / "timestamps.csv").write_text("\n".join(lines + ["10,a,0.4", "10,b,0.401"]) + "\n")
    with pytest.raises(InputFileError, match=r"a.mp4: 10 frames, but .*timestamps.csv has 11"):
        Take.open(folder)
    (folder / "timestamps.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(InputFileError, match=r"frame 9 has no row for camera\(s\) b"):
        Take.open(folder)


def test_finalising_interrupted_half_way_is_completed_on_open(tmp_path: Path, monkeypatch) -> None:
    """The join of b's segments fails (a full disk) after a's video was written and a's segments were
    freed: close() reports it, and opening the take later finishes the job."""
    real = recording._concatenate

    def concatenate(segments, out, fps, expected):
        if out.stem == "b":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out))
        real(segments, out, fps, expected)

    monkeypatch.setattr(recording, "_concatenate", concatenate)
    writer = TakeWriter(tmp_path / "take", small_rig(), FPS, CAMERAS, segment_s=SEGMENT_S)
    for i in range(20):
        writer.write(frameset(i))
    with pytest.raises(CaptureError, match=r"cannot finalise the take \(No space left on device\)"):
        writer.close()
    assert (tmp_path / "take" / "videos" / "a.mp4").is_file() and not list((tmp_path / "take" / ".recording" / "a").iterdir())
    monkeypatch.undo()
    check_take(tmp_path / "take", 20).close()
