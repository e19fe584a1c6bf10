"""Frame sources (camera, video file, image folder) and the thread that hands their frames over.

Each frame is stamped once, here, and never again: a camera frame with the monotonic clock at
capture, a file frame with its media time (`index / fps`), so a replay of a file gives the same
timestamps, and so the same alerts, on any machine at any speed.

The hand-off is a slot of one frame. In real-time mode the newest frame overwrites an untaken one:
a slow consumer sees fresh frames and memory never grows. In fast mode (offline analysis) the
reader waits for the consumer instead, so every frame is processed.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from monitor.config import CaptureSettings

log = logging.getLogger(__name__)
# OpenCV prints a warning line per failed camera open; a missing camera gets one clear error of ours.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
JOIN_TIMEOUT_S = 1.0        # stop() promises to return within about this long
CAMERA_BUFFER_FRAMES = 1    # the driver keeps only the newest frame, so none is stale when read


@dataclass(frozen=True, eq=False)   # eq on arrays is ambiguous: frames compare by identity
class Frame:
    t: float            # capture time in seconds: monotonic clock (camera) or media time (files)
    index: int          # position in the source, bad frames included, so t = index / fps for files
    image: np.ndarray   # BGR uint8, H x W x 3
    wall: float         # monotonic clock when handed over, to measure latency


class SourceError(RuntimeError):
    """A source that cannot be opened, or a camera that stopped and did not come back."""


class EndOfSource(Exception):
    """Raised by `Source.read` when no frame will come any more; `warning` is set if the end is abnormal."""

    def __init__(self, warning: str | None = None) -> None:
        super().__init__(warning or "end of source")
        self.warning = warning


class Source(ABC):
    """Where frames come from. Not thread-safe: one thread reads it, and that thread closes it."""

    name: str
    fps: float | None                # None where the source does not know its rate (some cameras)
    frame_size: tuple[int, int]      # (width, height) of the first frame
    is_live: bool                    # a camera: frames are stamped with the clock and never paced

    @abstractmethod
    def read(self) -> np.ndarray | None:
        """The next image; None for a bad frame to skip (it still uses up an index); EndOfSource at the end."""

    @abstractmethod
    def close(self) -> None:
        """Release the device or file; safe to call twice."""


def open_source(spec: str | int | os.PathLike[str], settings: CaptureSettings) -> Source:
    """A camera for an int or an all-digit string, an image folder for a directory, else a video file."""
    if isinstance(spec, str) and not spec.strip():
        raise SourceError("no source given (allowed: a camera index, a video file or an image folder)")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return CameraSource(int(spec), settings)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path, settings)
    return VideoFileSource(path, settings)


class CameraSource(Source):
    """A webcam. Opening, and reading after it stops delivering, are retried for `camera_retry_s`."""

    is_live = True

    def __init__(self, index: int, settings: CaptureSettings) -> None:
        if index < 0:
            raise SourceError(f"camera index {index} is not allowed (allowed: 0 or more)")
        self.index = index
        self.name = f"camera {index}"
        self.settings = settings
        self._failing_since: float | None = None
        deadline = time.monotonic() + settings.camera_retry_s
        while True:
            self._cap = self._open()
            if self._cap is not None:
                break
            if time.monotonic() >= deadline:
                raise SourceError(f"camera {index} could not be opened after retrying for "
                                  f"{settings.camera_retry_s} s (is it plugged in and not used by "
                                  f"another program?)")
            time.sleep(settings.camera_retry_every_s)
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps > 0 else None

    def _open(self) -> cv2.VideoCapture | None:
        """An opened camera that has delivered one frame (some open but never deliver), or None."""
        cap = cv2.VideoCapture(self.index)
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.settings.camera_width_px)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.settings.camera_height_px)
            cap.set(cv2.CAP_PROP_FPS, self.settings.camera_fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, CAMERA_BUFFER_FRAMES)
            ok, image = cap.read()
            if ok and image is not None:
                self.frame_size = (image.shape[1], image.shape[0])
                return cap
        cap.release()
        return None

    def read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        if ok and image is not None:
            self._failing_since = None
            return image
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            log.warning("%s stopped delivering frames; retrying for %s s", self.name,
                        self.settings.camera_retry_s)
        if now - self._failing_since >= self.settings.camera_retry_s:
            raise SourceError(f"{self.name} stopped delivering frames and did not come back within "
                              f"{self.settings.camera_retry_s} s (was it unplugged?)")
        time.sleep(self.settings.camera_retry_every_s)
        self._cap.release()             # an unplugged camera only comes back when reopened
        reopened = self._open()
        self._cap = reopened if reopened is not None else cv2.VideoCapture()   # an empty one fails fast
        return None

    def close(self) -> None:
        self._cap.release()


class VideoFileSource(Source):
    """A video file read through OpenCV. A read that fails before the known last frame is a bad frame."""

    is_live = False

    def __init__(self, path: Path, settings: CaptureSettings) -> None:
        self.name = str(path)
        if not path.is_file():
            raise SourceError(f"video file {path} does not exist (a source is a camera index, "
                              f"a video file or an image folder)")
        self._cap = cv2.VideoCapture(str(path))
        ok, first = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok or first is None:
            self._cap.release()
            raise SourceError(f"{path} is not a readable video (OpenCV could not decode it)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        if not fps > 0:
            self._cap.release()
            raise SourceError(f"{path} does not say its frame rate (OpenCV reports {fps}), so its "
                              f"frames cannot be timed; re-encode it with a frame rate")
        self.fps = float(fps)
        self.frame_size = (first.shape[1], first.shape[0])
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None   # unknown in a file without an index
        self.max_bad_in_row = settings.max_bad_frames_in_row
        self._pending: np.ndarray | None = first
        self._position = 0
        self._bad_in_row = 0

    def read(self) -> np.ndarray | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
        else:
            ok, image = self._cap.read()
            if not ok or image is None:
                image = None
        self._position += 1
        if image is not None:
            self._bad_in_row = 0
            return image
        if self.frame_count is None or self._position > self.frame_count:
            raise EndOfSource()         # without a frame count the first failure is the end
        self._bad_in_row += 1
        if self._bad_in_row >= self.max_bad_in_row:
            raise EndOfSource(f"{self.name}: {self._bad_in_row} unreadable frames in a row at frame "
                              f"{self._position - 1} of {self.frame_count}; treating the video as ended")
        return None

    def close(self) -> None:
        self._cap.release()


class ImageFolderSource(Source):
    """The images of a folder in natural name order (frame2 before frame10), at `image_folder_fps`."""

    is_live = False

    def __init__(self, path: Path, settings: CaptureSettings) -> None:
        self.name = str(path)
        self.paths = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                            key=_natural_key)
        if not self.paths:
            raise SourceError(f"image folder {path} holds no images (allowed: {' '.join(IMAGE_SUFFIXES)})")
        first = next((image for image in map(_imread, self.paths) if image is not None), None)
        if first is None:
            raise SourceError(f"image folder {path} holds no readable images ({len(self.paths)} files "
                              f"could not be decoded)")
        self.fps = settings.image_folder_fps
        self.frame_size = (first.shape[1], first.shape[0])
        self._next = 0

    def read(self) -> np.ndarray | None:
        if self._next >= len(self.paths):
            raise EndOfSource()
        path = self.paths[self._next]
        self._next += 1
        image = _imread(path)
        if image is None:
            log.warning("skipping %s: not a readable image", path)
        return image

    def close(self) -> None:
        self._next = len(self.paths)


def _imread(path: Path) -> np.ndarray | None:
    # imdecode instead of imread: it also reads non-ASCII paths and never raises on a broken file
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def _natural_key(path: Path) -> list[int | str]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class _Slot:
    """A hand-off of at most one frame; closing it means the producer is done."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.closed = False

    def put(self, frame: Frame, wait: bool) -> bool:
        """Store the frame; True if it overwrote an untaken one. With wait, first wait for the slot to empty."""
        with self._cond:
            if wait:
                self._cond.wait_for(lambda: self._frame is None or self.closed)
            if self.closed:
                return False
            dropped = self._frame is not None
            self._frame = frame
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float) -> Frame | None:
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self.closed, timeout)
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame

    def close(self, discard: bool = False) -> None:
        with self._cond:
            self.closed = True
            if discard:
                self._frame = None
            self._cond.notify_all()

    @property
    def empty(self) -> bool:
        with self._cond:
            return self._frame is None


class CaptureThread:
    """Reads a source on its own thread and hands frames over through a one-frame slot."""

    def __init__(self, source: Source, realtime: bool) -> None:
        if not realtime and source.is_live:
            raise ValueError(f"fast mode (realtime=False) is for files: {source.name} cannot wait "
                             f"for the consumer")
        self.source = source
        self.realtime = realtime
        self.frames_read = 0        # frames handed to the slot
        self.frames_dropped = 0     # overwritten before being taken (real-time mode only)
        self.bad_frames = 0         # unreadable frames skipped
        self._error: Exception | None = None
        self._slot = _Slot()
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture {source.name}", daemon=True)

    @property
    def ended(self) -> bool:
        """The reader has finished (end, error or stop) and no frame is left to take."""
        return self._finished.is_set() and self._slot.empty

    @property
    def error(self) -> Exception | None:
        """What ended the reading if it was not a normal end (e.g. a camera that was unplugged)."""
        return self._error

    def start(self) -> None:
        self._thread.start()

    def get(self, timeout: float) -> Frame | None:
        """The next frame, or None if none came within timeout (or none will come: see `ended`)."""
        return self._slot.get(timeout)

    def stop(self) -> None:
        """End reading and drop any untaken frame; returns within about JOIN_TIMEOUT_S."""
        self._stop.set()
        self._slot.close(discard=True)
        if self._thread.is_alive():
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("capture of %s did not stop within %s s (blocked in the driver?)",
                            self.source.name, JOIN_TIMEOUT_S)
        elif not self._finished.is_set():   # never started: release the source here
            self.source.close()
            self._finished.set()

    def _run(self) -> None:
        index = -1
        start_wall: float | None = None
        try:
            while not self._stop.is_set():
                try:
                    image = self.source.read()
                except EndOfSource as end:
                    if end.warning:
                        log.warning("%s", end.warning)
                    break
                index += 1
                if image is None:
                    self.bad_frames += 1
                    continue
                if self.source.is_live:
                    wall = t = time.monotonic()
                else:
                    t = index / self.source.fps
                    if start_wall is None:
                        start_wall = time.monotonic() - t
                    if self.realtime and self._stop.wait(start_wall + t - time.monotonic()):
                        break
                    wall = time.monotonic()
                if self._slot.put(Frame(t, index, image, wall), wait=not self.realtime):
                    self.frames_dropped += 1
                if self._stop.is_set():
                    break
                self.frames_read += 1
        except Exception as exc:   # handed to the consumer through `error` rather than lost with the thread
            if not isinstance(exc, SourceError):
                log.exception("capture of %s failed", self.source.name)
            self._error = exc
        finally:
            self.source.close()
            self._finished.set()    # before the slot closes, so a consumer woken by it sees `ended`
            self._slot.close()
