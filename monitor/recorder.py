"""The session recorder: one folder per run, written so that a crash keeps nearly everything.

    video.avi      the frames; MJPG through OpenCV's own AVI writer by default
    poses.csv      one row per frame (POSE_COLUMNS); the raw angles make it a replay CSV as it stands
    events.jsonl   one JSON object per line, as given
    config.toml    the configuration used
    summary.json   written at close only, so its absence marks a session that did not end cleanly

Crash safety, checked by killing a recording process with SIGKILL (tests/test_recorder.py):
- OpenCV's AVI writers write the index only at close, but FFmpeg reads an AVI without an index
  frame by frame, so one file is enough. What a crash loses is what the writer still buffers: 32 KiB
  for OpenCV's MJPG writer (about one 640x480 frame), 256 KiB for FFmpeg's XVID/FMP4.
- Pose rows are kept in memory and written, whole rows in one write, whenever the row timestamps
  have advanced `flush_every_s` since the last write. Row time rather than a clock read here: for a
  camera it is the capture clock, and for a file the loss is then the same in stream time at any
  processing speed. A crash never leaves half a row, and loses at most `flush_every_s` of rows.
- Events are rare and matter most: each is written and flushed at once.
Any OSError while writing (a full disk above all) stops the recording with a RecorderError; the
caller drops the recorder and goes on monitoring.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
from collections import Counter
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, TextIO

import cv2
import numpy as np

from monitor.config import Config

VIDEO_FILE = "video.avi"
POSES_FILE = "poses.csv"
EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.toml"
SUMMARY_FILE = "summary.json"
DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}   # EDQUOT: quota, not on every OS


@dataclass(frozen=True)
class PoseRow:
    """One poses.csv row. None (or NaN) is written as an empty field: no face, or no pose for it."""

    t: float
    frame: int
    face: bool
    score: float | None = None
    x1: float | None = None
    y1: float | None = None
    x2: float | None = None
    y2: float | None = None
    yaw_deg: float | None = None            # raw, as measured: what a replay feeds the smoother
    pitch_deg: float | None = None
    roll_deg: float | None = None
    yaw_smooth_deg: float | None = None
    pitch_smooth_deg: float | None = None
    roll_smooth_deg: float | None = None
    state: str = ""


POSE_COLUMNS = tuple(f.name for f in fields(PoseRow))


class RecorderError(RuntimeError):
    """The session cannot be recorded (folder in use, disk full, ...); monitoring goes on without it."""


class SessionRecorder:
    """Writes one session folder. Used from one thread; `close` (or the with-block) finishes it."""

    def __init__(self, folder: Path, config: Config, fps: float, frame_size: tuple[int, int]) -> None:
        folder = Path(folder)
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps = {fps!r} must be a positive number of frames per second")
        if not (len(frame_size) == 2 and all(isinstance(v, (int, np.integer)) and v > 0 for v in frame_size)):
            raise ValueError(f"frame_size = {frame_size!r} must be (width, height) in positive whole pixels")
        if folder.exists() and not folder.is_dir():
            raise RecorderError(f"cannot record into {folder}: it is a file, not a folder")
        if folder.is_dir() and any(folder.iterdir()):
            raise RecorderError(f"session folder {folder} already exists and is not empty; a session is "
                                f"never overwritten (choose a new folder)")
        self.folder = folder
        self.fps = float(fps)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.flush_every_s = config.recorder.flush_every_s
        self.fourcc = config.recorder.video_fourcc
        self.frames = 0
        self.rows = 0
        self.face_rows = 0
        self.events = 0
        self.events_by_kind: dict[str, Counter] = {}
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._flushed_t: float | None = None
        self._pending = io.StringIO()
        self._pending_csv = csv.writer(self._pending, lineterminator="\n")
        self._failure: str | None = None
        self._closed = False
        self._video: cv2.VideoWriter | None = None
        self._poses: TextIO | None = None
        self._events: TextIO | None = None
        with self._writing(folder):
            folder.mkdir(parents=True, exist_ok=True)
        # OpenCV's own MJPG writer passes frames on in 32 KiB blocks; FFmpeg's holds 256 KiB back
        api = cv2.CAP_OPENCV_MJPEG if self.fourcc == "MJPG" else cv2.CAP_FFMPEG
        self._video = cv2.VideoWriter(str(folder / VIDEO_FILE), api, cv2.VideoWriter_fourcc(*self.fourcc),
                                      self.fps, self.frame_size)
        if not self._video.isOpened():
            self._release()
            raise RecorderError(f"cannot record video into {folder / VIDEO_FILE}: OpenCV could not open a "
                                f"{self.fourcc} writer (video_fourcc = \"MJPG\" is built into OpenCV and always works)")
        with self._writing(folder):
            config.save(folder / CONFIG_FILE)
            self._poses = open(folder / POSES_FILE, "w", newline="", encoding="utf-8")
            self._poses.write(",".join(POSE_COLUMNS) + "\n")
            self._poses.flush()
            self._events = open(folder / EVENTS_FILE, "w", encoding="utf-8")

    def __enter__(self) -> SessionRecorder:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.close({})
        else:
            self.close({"ended_by_error": repr(exc)})

    def write_frame(self, image: np.ndarray) -> None:
        """Add a frame. One of another size (an image folder of mixed sizes) ends the recording,
        with a summary saying why, and raises RecorderError: a video has one frame size."""
        self._check_open()
        width, height = self.frame_size
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3):
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"frame is {got} but the recording takes BGR uint8 images of shape "
                             f"({height}, {width}, 3)")
        if image.shape[:2] != (height, width):
            reason = (f"recording stopped at frame {self.frames}: it is {image.shape[1]}x{image.shape[0]} "
                      f"but the video is {width}x{height}")
            self.close({"stopped": reason})
            raise RecorderError(reason)
        self._video.write(image)
        self.frames += 1

    def write_pose(self, row: PoseRow) -> None:
        self._check_open()
        if not isinstance(row, PoseRow):
            raise TypeError(f"write_pose takes a PoseRow, not {type(row).__name__}")
        if not (isinstance(row.t, (int, float, np.floating)) and math.isfinite(row.t)):
            raise ValueError(f"pose row t = {row.t!r} must be a finite time in seconds")
        self._pending_csv.writerow(_cell(v) for v in astuple(row))
        self.rows += 1
        self.face_rows += bool(row.face)
        if self._first_t is None:
            self._first_t = row.t
        self._last_t = row.t
        # the first row is written at once; a clock that jumps back (a new source) also flushes
        if self._flushed_t is None or not 0 <= row.t - self._flushed_t < self.flush_every_s:
            self._flush_rows()
            self._flushed_t = row.t

    def write_event(self, obj: dict[str, Any]) -> None:
        self._check_open()
        if not isinstance(obj, dict):
            raise TypeError(f"write_event takes a dict, not {type(obj).__name__}")
        try:
            line = json.dumps(obj, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"event {obj!r} cannot be written as JSON: {exc}") from exc
        with self._writing(self.folder / EVENTS_FILE):
            self._events.write(line + "\n")
            self._events.flush()
        self.events += 1
        if "kind" in obj:
            self.events_by_kind.setdefault(str(obj["kind"]), Counter())[str(obj.get("phase", ""))] += 1

    def close(self, summary: dict[str, Any]) -> None:
        """Finish the files and write summary.json: the recorder's counts plus the caller's summary
        (the caller's keys win on a clash). Nothing happens if closed already or stopped by an error."""
        if self._closed or self._failure is not None:
            return
        self._flush_rows()
        self._release()
        duration = (self._last_t - self._first_t) if self._first_t is not None else 0.0
        data = {
            "duration_s": duration,
            "frames": self.frames,
            "fps": (self.rows - 1) / duration if duration > 0 else 0.0,   # rows per second, as processed
            "video_fps": self.fps,
            "frame_size": list(self.frame_size),
            "video_fourcc": self.fourcc,
            "pose_rows": self.rows,
            "face_rows": self.face_rows,
            "events": self.events,
            "events_by_kind": {kind: dict(phases) for kind, phases in self.events_by_kind.items()},
            **summary,
        }
        path = self.folder / SUMMARY_FILE
        tmp = path.with_name(path.name + ".tmp")
        with self._writing(path):
            tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
            os.replace(tmp, path)

    def _flush_rows(self) -> None:
        text = self._pending.getvalue()
        if text:
            with self._writing(self.folder / POSES_FILE):
                self._poses.write(text)     # one write of whole rows: a crash never splits one
                self._poses.flush()
            self._pending.seek(0)
            self._pending.truncate()

    def _check_open(self) -> None:
        if self._failure is not None:
            raise RecorderError(self._failure)
        if self._closed:
            raise RecorderError(f"the recording in {self.folder} is closed")

    @contextmanager
    def _writing(self, where: Path) -> Iterator[None]:
        """Turn an OSError into a RecorderError that ends the recording, keeping what is on disk."""
        try:
            yield
        except OSError as exc:
            if exc.errno in DISK_FULL_ERRNOS:
                self._failure = f"recording stopped: disk full at {where} ({exc.strerror})"
            else:
                self._failure = f"recording stopped: cannot write {where}: {exc}"
            self._release()
            raise RecorderError(self._failure) from exc

    def _release(self) -> None:
        """Close everything, ignoring errors: after a failure the files are as good as they will get."""
        self._closed = True
        if self._video is not None:
            self._video.release()
        for handle in (self._poses, self._events):
            if handle is not None:
                try:
                    handle.close()
                except OSError:
                    pass


def _cell(value: Any) -> str:
    """CSV text: floats in full (shortest exact) form, so a replay sees the very numbers of the run."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if math.isfinite(value) else ""
    return str(value)
