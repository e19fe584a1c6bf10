"""Capture: sources, their errors, and the thread's hand-off in fast and real-time mode.

Nothing here asserts on time: where a test must wait for the reader it polls with a generous
deadline, and every assertion is on counts, order and content.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.capture import (CaptureThread, EndOfSource, Frame, ImageFolderSource, Source, SourceError,
                             open_source)
from monitor.config import CaptureSettings
from tests.shared import DATA, needs_shared

POLL_DEADLINE_S = 30.0      # only reached if something is broken; never a timing assertion


def settings(**changes) -> CaptureSettings:
    return CaptureSettings(**{"camera_retry_s": 0.05, "camera_retry_every_s": 0.01, **changes})


def drain(capture: CaptureThread) -> list[Frame]:
    frames = []
    deadline = time.monotonic() + POLL_DEADLINE_S
    while not capture.ended:
        assert time.monotonic() < deadline, "capture never ended"
        frame = capture.get(0.1)
        if frame is not None:
            frames.append(frame)
    return frames


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + POLL_DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def corrupt_frames(path: Path, which: list[int]) -> Path:
    """Zero the JPEG data of some frames of an MJPG AVI, so OpenCV fails to decode exactly those."""
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    for k in which:
        data[starts[k]:starts[k + 1] - 16] = bytes(starts[k + 1] - 16 - starts[k])
    path.write_bytes(data)
    return path


# --- files, fast mode ---------------------------------------------------------------------------

def test_fast_mode_delivers_every_frame_in_order_stamped_with_media_time(make_video, marker):
    source = open_source(str(make_video(frames=24, fps=25.0)), settings())
    assert (source.fps, source.frame_size, source.is_live) == (25.0, (160, 120), False)
    capture = CaptureThread(source, realtime=False)
    capture.start()
    frames = drain(capture)
    assert [f.index for f in frames] == list(range(24))
    assert [marker(f.image) for f in frames] == list(range(24))
    assert [f.t for f in frames] == pytest.approx([i / 25.0 for i in range(24)])
    assert all(f.image.shape == (120, 160, 3) and f.image.dtype == np.uint8 for f in frames)
    assert (capture.frames_read, capture.frames_dropped, capture.bad_frames) == (24, 0, 0)
    assert capture.error is None


def test_fast_mode_reader_waits_for_the_consumer_instead_of_dropping(make_video):
    capture = CaptureThread(open_source(make_video(frames=24), settings()), realtime=False)
    capture.start()
    time.sleep(0.3)                 # gives a reader that did not wait the chance to run ahead
    assert capture.frames_read <= 1  # one frame in the slot, the reader blocked on the next
    assert len(drain(capture)) == 24
    assert capture.frames_dropped == 0


def test_a_video_frame_that_fails_to_decode_is_skipped_and_counted(make_video, marker):
    path = corrupt_frames(make_video(frames=24), [5, 6, 7])
    capture = CaptureThread(open_source(path, settings()), realtime=False)
    capture.start()
    frames = drain(capture)
    expected = [i for i in range(24) if i not in (5, 6, 7)]
    assert [f.index for f in frames] == expected
    assert [marker(f.image) for f in frames] == expected      # indices keep the media time right
    assert [f.t for f in frames] == pytest.approx([i / 25.0 for i in expected])
    assert capture.bad_frames == 3 and capture.error is None


def test_too_many_bad_video_frames_in_a_row_end_the_source_with_a_warning(make_video, caplog):
    path = corrupt_frames(make_video(frames=24), [5, 6, 7])
    capture = CaptureThread(open_source(path, settings(max_bad_frames_in_row=2)), realtime=False)
    with caplog.at_level(logging.WARNING, logger="monitor.capture"):
        capture.start()
        frames = drain(capture)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert capture.bad_frames == 1      # the second one in a row ends it instead
    assert capture.error is None
    assert "2 unreadable frames in a row" in caplog.text


def test_image_folder_in_natural_order_skips_and_counts_a_corrupt_image(tmp_path, face_frame, marker):
    folder = tmp_path / "images"
    folder.mkdir()
    for index, name in [(0, "f1.png"), (1, "f2.png"), (3, "f10.jpg")]:
        cv2.imwrite(str(folder / name), face_frame(index, (64, 48)))
    (folder / "f3.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image")
    source = open_source(str(folder), settings(image_folder_fps=5.0))
    assert isinstance(source, ImageFolderSource) and source.frame_size == (64, 48)
    capture = CaptureThread(source, realtime=False)
    capture.start()
    frames = drain(capture)
    assert [f.index for f in frames] == [0, 1, 3]
    assert [marker(f.image) for f in frames] == [0, 1, 3]
    assert [f.t for f in frames] == pytest.approx([0.0, 0.2, 0.6])
    assert capture.bad_frames == 1


@needs_shared
def test_the_real_clip_gives_all_139_frames_at_25_fps():
    source = open_source(str(DATA / "video" / "orlando_bloom.avi"), settings())
    assert (source.fps, source.frame_size) == (25.0, (320, 240))
    capture = CaptureThread(source, realtime=False)
    capture.start()
    frames = drain(capture)
    assert [f.index for f in frames] == list(range(139))
    assert frames[-1].t == pytest.approx(138 / 25.0)
    assert len({f.image.tobytes() for f in frames[:10]}) == 10     # real, distinct frames


# --- real-time mode -----------------------------------------------------------------------------

def test_realtime_newest_frame_wins_when_nobody_takes_frames(make_video, marker):
    capture = CaptureThread(open_source(make_video(frames=30, fps=200.0), settings()), realtime=True)
    capture.start()
    wait_until(lambda: capture.frames_read == 30, "all frames read")
    last = capture.get(0.0)
    assert last is not None and last.index == 29 and marker(last.image) == 29
    assert capture.frames_dropped == 29       # every other frame was overwritten: one held at a time
    assert capture.get(0.0) is None
    wait_until(lambda: capture.ended, "capture ended")
    assert capture.error is None


def test_realtime_with_a_slow_consumer_keeps_order_and_accounts_for_every_frame(make_video):
    capture = CaptureThread(open_source(make_video(frames=30, fps=100.0), settings()), realtime=True)
    capture.start()
    taken = []
    while not capture.ended:
        frame = capture.get(0.1)
        if frame is not None:
            taken.append(frame.index)
            time.sleep(0.03)
    assert taken == sorted(set(taken)) and taken[-1] == 29
    assert capture.frames_read == 30 == len(taken) + capture.frames_dropped


# --- stopping -----------------------------------------------------------------------------------

def capture_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("capture ")]


def test_stop_joins_a_paced_reader(make_video):
    capture = CaptureThread(open_source(make_video(frames=24, fps=1.0), settings()), realtime=True)
    capture.start()
    assert capture.get(POLL_DEADLINE_S).index == 0     # the next frame is due in a second
    capture.stop()
    assert capture.ended and capture_threads() == []


def test_stop_joins_a_fast_reader_blocked_on_the_full_slot(make_video):
    capture = CaptureThread(open_source(make_video(frames=24), settings()), realtime=False)
    capture.start()
    wait_until(lambda: capture.frames_read == 1, "first frame handed over")
    capture.stop()
    assert capture.ended and capture_threads() == []
    assert capture.get(0.0) is None      # the untaken frame was dropped


class Scripted(Source):
    """A file-like source of `count` black frames that records whether it was closed."""

    name, fps, frame_size, is_live = "scripted", 10.0, (4, 4), False

    def __init__(self, count: int) -> None:
        self.left, self.closed = count, False

    def read(self) -> np.ndarray | None:
        if self.left == 0:
            raise EndOfSource()
        self.left -= 1
        return np.zeros((4, 4, 3), np.uint8)

    def close(self) -> None:
        self.closed = True


def test_stop_before_start_releases_the_source():
    source = Scripted(3)
    CaptureThread(source, realtime=False).stop()
    assert source.closed


def test_the_reader_closes_the_source_when_it_ends():
    source = Scripted(3)
    capture = CaptureThread(source, realtime=False)
    capture.start()
    assert len(drain(capture)) == 3 and source.closed


# --- source errors ------------------------------------------------------------------------------

def test_missing_video_file_is_named(tmp_path):
    with pytest.raises(SourceError, match=r"video file .*nope\.avi does not exist"):
        open_source(str(tmp_path / "nope.avi"), settings())


def test_a_file_that_is_not_a_video_is_named(tmp_path):
    path = tmp_path / "fake.avi"
    path.write_text("this is not a video")
    with pytest.raises(SourceError, match=r"fake\.avi is not a readable video \(OpenCV could not decode it\)"):
        open_source(str(path), settings())


def test_an_empty_image_folder_lists_the_allowed_images(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(SourceError, match=r"holds no images \(allowed: \.jpg \.jpeg \.png \.bmp\)"):
        open_source(str(tmp_path), settings())


def test_an_image_folder_with_only_broken_images_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"broken")
    with pytest.raises(SourceError, match="holds no readable images"):
        open_source(str(tmp_path), settings())


def test_a_missing_camera_is_retried_then_named():
    with pytest.raises(SourceError, match=r"camera 7 could not be opened after retrying for 0\.05 s"):
        open_source("7", settings())


def test_an_empty_source_is_refused_rather_than_read_as_the_current_folder():
    with pytest.raises(SourceError, match="no source given"):
        open_source("", settings())


def test_a_negative_camera_index_is_refused():
    with pytest.raises(SourceError, match="allowed: 0 or more"):
        open_source(-1, settings())


# --- cameras, with OpenCV's VideoCapture replaced by a scripted fake -----------------------------

class FakeCamera:
    """A VideoCapture that fails to open `fail_opens` times, then delivers `frames` frames and dies."""

    script = {"fail_opens": 0, "frames": 0}
    opens = 0

    def __init__(self, index: int | None = None) -> None:
        self.opened = index is not None and FakeCamera.opens >= self.script["fail_opens"]
        if index is not None:
            FakeCamera.opens += 1
        self.left = self.script["frames"]

    def isOpened(self) -> bool:
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        return True

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.opened or self.left == 0:
            return False, None
        self.left -= 1
        return True, np.zeros((48, 64, 3), np.uint8)

    def release(self) -> None:
        self.opened = False


@pytest.fixture
def fake_camera(monkeypatch):
    FakeCamera.opens = 0
    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    return FakeCamera


def test_a_camera_that_appears_while_retrying_is_opened(fake_camera):
    fake_camera.script = {"fail_opens": 2, "frames": 10}
    source = open_source(0, settings(camera_retry_s=10.0))
    assert (source.is_live, source.fps, source.frame_size, fake_camera.opens) == (True, 30.0, (64, 48), 3)


def test_an_unplugged_camera_ends_the_capture_with_a_clear_error(fake_camera):
    fake_camera.script = {"fail_opens": 0, "frames": 6}     # one frame is used up checking the camera
    source = open_source(0, settings(camera_retry_s=0.05))
    fake_camera.script = {"fail_opens": 10 ** 6, "frames": 0}   # reopening fails from now on
    capture = CaptureThread(source, realtime=True)
    capture.start()
    indices = [f.index for f in drain(capture)]
    assert capture.frames_read == 5 and indices == sorted(indices)
    assert isinstance(capture.error, SourceError)
    assert "camera 0 stopped delivering frames and did not come back within 0.05 s" in str(capture.error)


def test_a_camera_cannot_run_in_fast_mode(fake_camera):
    fake_camera.script = {"fail_opens": 0, "frames": 5}
    with pytest.raises(ValueError, match="fast mode"):
        CaptureThread(open_source(0, settings()), realtime=False)


def test_an_unexpected_failure_in_a_source_reaches_the_consumer():
    class Broken(Scripted):
        def read(self) -> np.ndarray | None:
            raise OSError("device on fire")

    capture = CaptureThread(Broken(1), realtime=False)
    capture.start()
    assert drain(capture) == []
    assert isinstance(capture.error, OSError)
