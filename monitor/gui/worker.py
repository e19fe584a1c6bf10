"""The window's worker: capture, inference, audio and recording on one thread off the GUI thread.

The engine and the recorder are touched only by this thread. The GUI asks for things (new
thresholds, calibrate, record) by queueing commands that run between two frames, and gets its
results through a `Mailbox` plus a Qt signal. The mailbox keeps only the newest picture but every
frame's timeline point and alert event, and signals only when it goes from empty to full: a GUI
that falls behind skips pictures instead of queueing them, so latency never grows.

The thread is a daemon `threading.Thread`, not a QThread: opening a missing camera retries for
seconds inside OpenCV and cannot be interrupted, and a daemon thread never keeps the process
alive once the window has closed. Qt signals emitted from it are queued to the GUI thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from monitor.alerts import AudioAlerts
from monitor.attention import AlertEvent, PoseSample, State
from monitor.capture import CaptureThread, SourceError, open_source
from monitor.config import Config
from monitor.gui.history import RateMeter
from monitor.headless import pose_row, summary
from monitor.overlay import draw_face
from monitor.pipeline import FrameResult, MonitorEngine
from monitor.recorder import RecorderError, SessionRecorder

log = logging.getLogger(__name__)

EngineFactory = Callable[[Config], MonitorEngine]


@dataclass(frozen=True)
class FrameView:
    """One processed frame as the window shows it; built on the worker thread."""

    rgb: np.ndarray                                 # annotated picture, RGB, C-contiguous
    t: float                                        # stream time
    wall: float                                     # monotonic time of capture, for display latency
    state: State
    calibration_progress: float
    neutral: tuple[float, float] | None
    angles: tuple[float, float, float] | None       # smoothed yaw, pitch, roll of the driver
    deviation: tuple[float, float] | None           # (Δyaw, Δpitch) from neutral, for the timeline
    face: bool


@dataclass
class Delivery:
    """What the GUI takes from the mailbox: the newest view, and every point and event since the last take."""

    view: FrameView | None = None
    points: list[tuple[float, tuple[float, float] | None]] = field(default_factory=list)
    events: list[AlertEvent] = field(default_factory=list)


class Mailbox:
    """Newest picture wins; timeline points and events all arrive. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._box = Delivery()
        self._full = False

    def put(self, view: FrameView, events: list[AlertEvent]) -> bool:
        """Store; True when the box was empty, i.e. the GUI must be told (it will take all of it)."""
        with self._lock:
            self._box.view = view
            self._box.points.append((view.t, view.deviation))
            self._box.events.extend(events)
            was_empty, self._full = not self._full, True
            return was_empty

    def put_events(self, events: list[AlertEvent]) -> bool:
        """Events without a new picture (the alerts closed at the end of a source)."""
        if not events:
            return False
        with self._lock:
            self._box.events.extend(events)
            was_empty, self._full = not self._full, True
            return was_empty

    def take(self) -> Delivery:
        with self._lock:
            box, self._box, self._full = self._box, Delivery(), False
            return box


@dataclass(frozen=True)
class WorkerStats:
    fps: float | None
    latency_ms: float | None
    process_ms: float | None
    frames: int
    dropped: int
    bad: int
    recording: Path | None
    recording_s: float


class WorkerSignals(QObject):
    """Qt signals of a worker; they live in the GUI thread and are emitted from the worker thread."""

    frames_ready = pyqtSignal()              # the mailbox went from empty to full
    opened = pyqtSignal(str, bool)           # source name, head pose available
    failed = pyqtSignal(str)                 # the source could not be opened: why
    ended = pyqtSignal(str, str)             # the source ended or broke: a short note, and why ("" if normal)
    recording_started = pyqtSignal(str)      # folder
    recording_stopped = pyqtSignal(str, str) # folder, error ("" when stopped normally, finalised)


class _Recording:
    """A session recorder and the counts its summary needs."""

    def __init__(self, recorder: SessionRecorder) -> None:
        self.recorder = recorder
        self.frames = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.alerts: Counter = Counter()


class MonitorWorker:
    """Runs one source through the engine until it ends or `stop()` is called."""

    def __init__(self, spec: str, config: Config, make_engine: EngineFactory, audio: AudioAlerts,
                 signals: WorkerSignals, keep_timings: bool = False) -> None:
        self.spec = spec
        self.signals = signals
        self.mailbox = Mailbox()
        self.engine: MonitorEngine | None = None
        self.capture: CaptureThread | None = None
        self._config = config
        self._make_engine = make_engine
        self._audio = audio
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._meter = RateMeter(config.gui.stats_window_s)
        self._process = RateMeter(config.gui.stats_window_s)
        self._stats_lock = threading.Lock()
        self._frames = 0
        self._recording: _Recording | None = None
        # every frame's (monotonic time, process_ms, latency_ms), for `--stats` only: it grows with the run
        self.timings: list[tuple[float, float, float]] | None = [] if keep_timings else None
        self._thread = threading.Thread(target=self._run, name=f"monitor worker {spec}", daemon=True)

    # ---- called from the GUI thread ---------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Ask the thread to finish (recording finalised) and wait; True if it has."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def set_config(self, config: Config) -> None:
        """Already validated by the caller; applied before the next frame."""
        self._commands.put(lambda: self._apply_config(config))

    def recalibrate(self) -> None:
        self._commands.put(self._recalibrate)

    def start_recording(self, folder: Path) -> None:
        self._commands.put(lambda: self._start_recording(folder))

    def stop_recording(self) -> None:
        self._commands.put(lambda: self._stop_recording(""))

    def stats(self) -> WorkerStats:
        with self._stats_lock:
            capture = self.capture
            recording = self._recording
            rec_path = recording.recorder.folder if recording else None
            rec_s = (recording.last_t - recording.first_t) if recording and recording.first_t is not None else 0.0
            return WorkerStats(self._meter.rate(), self._meter.mean(), self._process.mean(), self._frames,
                               capture.frames_dropped if capture else 0, capture.bad_frames if capture else 0,
                               rec_path, rec_s)

    # ---- the worker thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            source = open_source(self.spec, self._config.capture)
        except SourceError as exc:
            self.signals.failed.emit(str(exc))
            return
        if self._stop.is_set():
            source.close()
            return
        try:
            self.engine = self._make_engine(self._config)
        except Exception as exc:   # e.g. unreadable network weights: the window must say so, not hang
            log.exception("the engine could not start")
            source.close()
            self.signals.failed.emit(f"the monitoring engine could not start: {exc}")
            return
        self._source_fps = source.fps or self._config.capture.camera_fps
        self._frame_size = source.frame_size
        self.capture = CaptureThread(source, realtime=True)
        self.signals.opened.emit(source.name, self.engine.pose_available)
        self.capture.start()
        last_t: float | None = None
        note, detail = ("camera stopped" if source.is_live else "end of video"), ""
        try:
            while not self._stop.is_set():
                self._run_commands()
                frame = self.capture.get(self._config.gui.poll_s)
                if frame is None:
                    if self.capture.ended:
                        break
                    continue
                result = self.engine.process(frame)
                last_t = frame.t
                self._handle(result)
        except Exception as exc:   # the window must survive anything a frame can do; say what happened
            log.exception("monitoring stopped")
            note, detail = "monitoring stopped", f"{type(exc).__name__}: {exc}"
        finally:
            self.capture.stop()
            if last_t is not None:
                closing = self.engine.close(last_t)
                self._events(closing)
                if self.mailbox.put_events(closing):
                    self.signals.frames_ready.emit()
            self._stop_recording("")
        if self.capture.error is not None:
            note, detail = ("camera lost" if source.is_live else "video unreadable"), str(self.capture.error)
        if not self._stop.is_set():
            self.signals.ended.emit(note, detail)

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            command()

    def _recalibrate(self) -> None:
        if self.engine is not None:
            self.engine.tracker.attention.recalibrate()

    def _apply_config(self, config: Config) -> None:
        self._config = config
        if self.engine is not None:
            self.engine.set_config(config)

    def _handle(self, result: FrameResult) -> None:
        frame, update = result.frame, result.update
        attention = self.engine.tracker.attention
        self._events(update.events)
        self._audio.tick(frame.t)
        self._record(result)
        # the timeline shows what the rules judge: the smoothed angles, as the tracker feeds them
        judged = update.sample if update.smoothed is None else PoseSample(frame.t, True, *update.smoothed)
        image = frame.image.copy()
        for face in result.faces:
            draw_face(image, face, label=face is result.driver)
        view = FrameView(rgb=np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)), t=frame.t,
                         wall=frame.wall, state=update.state,
                         calibration_progress=attention.calibration_progress, neutral=attention.neutral,
                         angles=update.smoothed, deviation=attention.deviation(judged),
                         face=update.sample.face)
        with self._stats_lock:
            self._frames += 1
            now = time.monotonic()
            self._meter.add(now, result.latency_ms)
            self._process.add(now, result.process_ms)
            if self.timings is not None:
                self.timings.append((now, result.process_ms, result.latency_ms))
        if self.mailbox.put(view, update.events):
            self.signals.frames_ready.emit()

    def _events(self, events: list[AlertEvent]) -> None:
        self._audio.handle(events)
        recording = self._recording
        for event in events:
            if recording is not None:
                if event.phase == "start":
                    recording.alerts[event.kind] += 1
                self._guard(recording.recorder.write_event, event.to_json())

    def _record(self, result: FrameResult) -> None:
        recording = self._recording
        if recording is None:
            return
        with self._stats_lock:
            if recording.first_t is None:
                recording.first_t = result.frame.t
            recording.last_t = result.frame.t
        recording.frames += 1
        self._guard(recording.recorder.write_frame, result.frame.image)
        if self._recording is not None:
            self._guard(recording.recorder.write_pose, pose_row(result))

    def _start_recording(self, folder: Path) -> None:
        if self._recording is not None:
            return
        try:
            recorder = SessionRecorder(folder, self._config, self._source_fps, self._frame_size)
        except RecorderError as exc:
            self.signals.recording_stopped.emit(str(folder), str(exc))
            return
        with self._stats_lock:
            self._recording = _Recording(recorder)
        self.signals.recording_started.emit(str(folder))

    def _stop_recording(self, error: str) -> None:
        recording = self._recording
        if recording is None:
            return
        with self._stats_lock:
            self._recording = None
        folder = recording.recorder.folder
        if not error:
            capture = self.capture
            extra = {"pose_available": self.engine.pose_available, "source": self.spec,
                     "dropped_frames": capture.frames_dropped, "bad_frames": capture.bad_frames}
            try:
                recording.recorder.close(summary(recording.frames, recording.first_t, recording.last_t,
                                                 recording.alerts, extra))
            except RecorderError as exc:
                error = str(exc)
        self.signals.recording_stopped.emit(str(folder), error)

    def _guard(self, write: Callable[..., None], *args: object) -> None:
        """A failed write (a full disk) stops the recording, says why, and monitoring goes on."""
        try:
            write(*args)
        except RecorderError as exc:
            log.error("%s", exc)
            self._stop_recording(str(exc))
