"""The desktop monitor window: shows what the worker computes and forwards what the user asks.

The window never waits on capture or inference. It owns the configuration (edits are validated
here, then queued to the worker), the audio player (shared by successive sources) and one cached
cascade (loading it costs seconds, and a new source needs a fresh engine: its clock restarts).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent, QKeySequence
from PyQt6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QMainWindow,
                             QMessageBox, QProgressBar, QPushButton, QScrollArea, QSlider, QVBoxLayout, QWidget)

from monitor.alerts import AudioAlerts
from monitor.attention import State
from monitor.cascade import Cascade
from monitor.config import Config, ConfigError
from monitor.gui.history import CpuMeter, Timeline
from monitor.headless import percentiles
from monitor.gui.present import SHORTCUTS, Status, banner, neutral_text, pose_text, status_parts
from monitor.gui.timeline import TimelinePlot
from monitor.gui.tuning import Knob, apply_knob, knobs, reset_tuned, validated
from monitor.gui.widgets import BannerLabel, ThresholdPanel, VideoView
from monitor.gui.worker import EngineFactory, FrameView, MonitorWorker, WorkerSignals
from monitor.pipeline import MonitorEngine

log = logging.getLogger(__name__)

DEFAULT_RECORD_ROOT = Path.home() / "driver-monitor-sessions"
VOLUME_STEPS = 100
PROGRESS_STEPS = 100
CONTROLS_WIDTH_PX = 430
WINDOW_SIZE_PX = (1280, 860)
VIDEO_STRETCH = 3
WINDOW_TITLE = "Driver attention monitor"
MS_PER_S = 1000
NOTICE_MS = 5000          # how long a passing notice stays in the status bar


class CachedEngines:
    """Makes a fresh engine per source around one cascade, loaded once (on the worker thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cascade: Cascade | None = None

    def __call__(self, config: Config) -> MonitorEngine:
        with self._lock:
            if self._cascade is None:
                self._cascade = Cascade(config.cascade)
        engine = MonitorEngine(config, self._cascade)
        engine.set_config(config)
        return engine


def new_session_folder(root: Path, now: datetime) -> Path:
    """root/session-YYYYmmdd-HHMMSS, with a suffix if that exists: a session is never overwritten."""
    base = root / now.strftime("session-%Y%m%d-%H%M%S")
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


class MonitorWindow(QMainWindow):
    source_ended = pyqtSignal(str)      # the source ended, broke or could not be opened: the note shown

    def __init__(self, config: Config | None = None, source: str | None = "0", config_path: Path | None = None,
                 record_root: Path = DEFAULT_RECORD_ROOT, audio: bool = True,
                 make_engine: EngineFactory | None = None, keep_timings: bool = False) -> None:
        super().__init__()
        self.config = validated(config or Config())
        self.config_path = config_path
        self.record_root = record_root
        self.audio = AudioAlerts.from_settings(self.config.alerts, enabled=audio and self.config.alerts.enabled)
        self.make_engine = make_engine or CachedEngines()
        self.keep_timings = keep_timings
        self.worker: MonitorWorker | None = None
        self.timings: list[tuple[float, float, float]] = []   # of stopped sources, see MonitorWorker.timings
        self.dropped = 0                                      # frames dropped by stopped sources
        self.source_spec = ""
        self.source_name = ""
        self.source_note: str | None = "starting"
        self.pose_available = True
        self.recording: Path | None = None
        self.muted = False
        self.countdown_until: float | None = None
        self.display_ms: list[float] = []
        self.last_view: FrameView | None = None
        self.notice: QMessageBox | None = None
        self.timeline = Timeline(self.config.gui.timeline_s)
        self.cpu = CpuMeter(os.cpu_count() or 1, self.config.gui.stats_window_s)
        self._last_cpu: float | None = None
        self._build()
        self.refresh_timer = QTimer(self)
        self.refresh_timer.timeout.connect(self.refresh)
        self.refresh_timer.start(round(self.config.gui.refresh_s * MS_PER_S))
        self.countdown_timer = QTimer(self)
        self.countdown_timer.setSingleShot(True)
        self.countdown_timer.timeout.connect(self._countdown_done)
        if source is not None:
            self.open_source(source)
        else:
            self._show_idle("no source", "No source is open. Open a video file or a camera from the File menu.")

    # ---- building ---------------------------------------------------------------------------

    def _build(self) -> None:
        self.setWindowTitle(WINDOW_TITLE)
        self.resize(*WINDOW_SIZE_PX)
        self.banner = BannerLabel()
        self.video = VideoView()
        self.video.open_video.connect(self.choose_video)
        self.video.retry_camera.connect(lambda: self.open_source(self.source_spec if self.camera else "0"))
        self.pose_label = QLabel()
        self.neutral_label = QLabel()
        self.plot = TimelinePlot(self.config.gui.timeline_s)
        self.plot.set_thresholds(self.config.attention)
        left = QVBoxLayout()
        left.addWidget(self.banner)
        left.addWidget(self.video, VIDEO_STRETCH)
        left.addWidget(self.pose_label)
        left.addWidget(self.neutral_label)
        left.addWidget(self.plot, 1)

        self.calibrate_button = QPushButton("Calibrate (C)")
        self.calibrate_button.clicked.connect(self.calibrate)
        self.calibration_bar = QProgressBar()
        self.calibration_bar.setRange(0, PROGRESS_STEPS)
        self.record_button = QPushButton("Record (R)")
        self.record_button.setCheckable(True)
        self.record_button.clicked.connect(lambda: self.toggle_recording())
        self.record_label = QLabel("not recording")
        self.record_label.setWordWrap(True)
        self.record_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.mute_box = QCheckBox("Mute (M)")
        self.mute_box.toggled.connect(self.set_muted)
        self.volume = QSlider(Qt.Orientation.Horizontal)
        self.volume.setRange(0, VOLUME_STEPS)
        self.volume.setValue(round(self.config.alerts.volume * VOLUME_STEPS))
        self.volume.valueChanged.connect(self.set_volume)
        self.panel = ThresholdPanel(knobs(self.config.gui.slider_steps), self.config.gui.slider_steps)
        self.panel.show_config(self.config)
        self.panel.edited.connect(self.edit_threshold)
        self.panel.save.connect(self.save_config_dialog)
        self.panel.load.connect(self.load_config_dialog)
        self.panel.reset.connect(self.reset_thresholds)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.panel)
        right = QVBoxLayout()
        for row in ((self.calibrate_button, self.calibration_bar), (self.record_button,), (self.record_label,),
                    (self.mute_box, QLabel("volume"), self.volume)):
            line = QHBoxLayout()
            for widget in row:
                line.addWidget(widget)
            right.addLayout(line)
        right.addWidget(scroll, 1)
        controls = QWidget()
        controls.setLayout(right)
        controls.setFixedWidth(CONTROLS_WIDTH_PX)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.addLayout(left, 1)
        layout.addWidget(controls)
        self.setCentralWidget(central)
        self.status_label = QLabel()
        self.statusBar().addWidget(self.status_label, 1)
        self._build_menus()

    def _build_menus(self) -> None:
        menus = self.menuBar()
        actions = {
            "C": self.calibrate, "R": self.toggle_recording, "M": lambda: self.mute_box.toggle(),
            "F": self.toggle_full_screen, "Q": self.close,
        }
        self.shortcut_actions: dict[str, QAction] = {}
        for key, text in SHORTCUTS:
            action = QAction(text.split(":")[0].split(" (")[0], self)
            action.setShortcut(QKeySequence(key))
            action.triggered.connect(lambda checked=False, run=actions[key]: run())
            self.addAction(action)       # shortcuts work even with the menu bar hidden (full screen)
            self.shortcut_actions[key] = action
        file_menu = menus.addMenu("&File")
        for text, shortcut, slot in (("Open &camera…", "Ctrl+K", self.choose_camera),
                                     ("Open &video file…", "Ctrl+O", self.choose_video),
                                     ("Recording &folder…", None, self.choose_record_root)):
            action = file_menu.addAction(text)
            if shortcut:
                action.setShortcut(QKeySequence(shortcut))
            action.triggered.connect(slot)
        file_menu.addSeparator()
        file_menu.addAction(self.shortcut_actions["Q"])
        monitor_menu = menus.addMenu("&Monitor")
        for key in "CRM":
            monitor_menu.addAction(self.shortcut_actions[key])
        settings_menu = menus.addMenu("&Settings")
        for text, slot in (("Save thresholds", self.save_config_dialog),
                           ("Load thresholds…", self.load_config_dialog),
                           ("Reset thresholds to defaults", self.reset_thresholds)):
            settings_menu.addAction(text).triggered.connect(slot)
        menus.addMenu("&View").addAction(self.shortcut_actions["F"])
        help_menu = menus.addMenu("&Help")
        help_menu.addAction("Keyboard shortcuts…").triggered.connect(self.show_shortcuts)
        help_menu.addSeparator()
        for key, text in SHORTCUTS:
            entry = help_menu.addAction(f"{key}    {text}")
            entry.setEnabled(False)      # a list to read, not a second way to trigger

    # ---- sources ----------------------------------------------------------------------------

    def open_source(self, spec: str) -> None:
        """Stop the current source (finalising any recording) and start monitoring `spec`."""
        self._stop_worker()
        self.timeline.clear()
        self.last_view = None
        self.source_spec = str(spec)
        self.source_name = f"camera {spec}" if self.camera else str(spec)
        self._show_idle("opening", f"Opening {self.source_name}…")
        signals = WorkerSignals()     # no Qt parent: a worker left running after closing may still emit
        signals.frames_ready.connect(self._take_frames)
        signals.opened.connect(self._opened)
        signals.failed.connect(self._failed)
        signals.ended.connect(self._ended)
        signals.recording_started.connect(self._recording_started)
        signals.recording_stopped.connect(self._recording_stopped)
        self.worker = MonitorWorker(str(spec), self.config, self.make_engine, self.audio, signals,
                                    keep_timings=self.keep_timings)
        self.worker.start()

    def choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video file", "",
                                              "Videos (*.avi *.mp4 *.mkv *.mov *.webm);;All files (*)")
        if path:
            self.open_source(path)

    def choose_camera(self) -> None:
        index, ok = QInputDialog.getInt(self, "Open camera", "Camera index:", 0, 0)
        if ok:
            self.open_source(str(index))

    @property
    def camera(self) -> bool:
        """Whether the source asked for is a camera (an index), as `capture.open_source` decides."""
        return self.source_spec.isdigit()

    def _current(self) -> bool:
        """Whether the signal being handled comes from the running worker, not one already replaced."""
        return self.worker is not None and self.sender() is self.worker.signals

    def _opened(self, name: str, pose_available: bool) -> None:
        if not self._current():
            return
        self.setWindowTitle(f"{WINDOW_TITLE} — {name}")
        self.source_name = name
        self.pose_available = pose_available
        self.source_note = None
        self.pose_label.setText(pose_text(pose_available, None))

    def _failed(self, message: str) -> None:
        if not self._current():
            return
        camera = self.camera
        note = "no camera" if camera else "cannot open source"
        offer = "\n\nYou can open a video file instead." if camera else ""
        self._show_idle(note, f"{'No camera' if camera else 'Cannot open the source'}: {message}{offer}")
        self.source_ended.emit(note)

    def _ended(self, note: str, detail: str) -> None:
        if not self._current():
            return
        self.source_note = note
        self.banner.show_banner(banner(State.ATTENTIVE, 1.0, idle=note))
        if detail:
            self.notify(note.capitalize(), f"{detail}\n\nOpen a camera or a video file from the File menu.")
        self.source_ended.emit(note)

    def _show_idle(self, note: str, message: str) -> None:
        self.source_note = note
        self.banner.show_banner(banner(State.ATTENTIVE, 1.0, idle=note))
        self.video.show_message(message)

    # ---- frames -----------------------------------------------------------------------------

    def _take_frames(self) -> None:
        if not self._current():
            return
        delivery = self.worker.mailbox.take()
        for t, deviation in delivery.points:
            self.timeline.add(t, deviation)
        self.timeline.on_events(delivery.events)
        view = delivery.view
        if view is None:
            return
        self.last_view = view
        self.video.show_frame(view.rgb)
        if self.keep_timings:
            self.display_ms.append((time.monotonic() - view.wall) * MS_PER_S)
        countdown = None if self.countdown_until is None else self.countdown_until - time.monotonic()
        self.banner.show_banner(banner(view.state, view.calibration_progress, countdown, idle=self.source_note,
                                       pose_available=self.pose_available))
        self.pose_label.setText(pose_text(self.pose_available, view.angles if view.face else None))
        self.neutral_label.setText(neutral_text(view.neutral, view.calibration_progress, self.pose_available))
        self.calibration_bar.setValue(round(view.calibration_progress * PROGRESS_STEPS))

    def refresh(self) -> None:
        """Timeline and status, at a steady pace independent of the frame rate."""
        self.plot.show_view(self.timeline.view())
        stats = self.worker.stats() if self.worker is not None else None
        cpu = self.cpu.update(time.process_time(), time.monotonic())
        self._last_cpu = cpu if cpu is not None else self._last_cpu
        status = Status(source=self.source_name, note=self.source_note,
                        fps=stats.fps if stats else None, latency_ms=stats.latency_ms if stats else None,
                        dropped=stats.dropped if stats else 0, cpu_percent=self._last_cpu, cpus=self.cpu.cpus,
                        recording=self.recording, recording_s=stats.recording_s if stats else 0.0,
                        muted=self.muted, volume=self.config.alerts.volume)
        self.status_label.setText("   ·   ".join(status_parts(status)))
        if self.countdown_until is not None and self.last_view is not None:
            remaining = self.countdown_until - time.monotonic()
            self.banner.show_banner(banner(self.last_view.state, self.last_view.calibration_progress, remaining,
                                           pose_available=self.pose_available))

    # ---- calibration ------------------------------------------------------------------------

    def calibrate(self) -> None:
        """A countdown (so the driver can face the road), then a new neutral pose is learned."""
        countdown = self.config.gui.calibration_countdown_s
        if countdown <= 0:
            self._countdown_done()
            return
        self.countdown_until = time.monotonic() + countdown
        self.countdown_timer.start(round(countdown * MS_PER_S))

    def _countdown_done(self) -> None:
        self.countdown_until = None
        if self.worker is not None:
            self.worker.recalibrate()

    # ---- thresholds -------------------------------------------------------------------------

    def edit_threshold(self, knob: Knob, value: float) -> None:
        try:
            config = apply_knob(self.config, knob, value)
        except ConfigError as exc:
            self.panel.error.setText(f"Not applied: {exc}")
            self.panel.show_config(self.config)        # put the refused value back
            return
        self.panel.error.clear()
        self.apply_config(config)

    def apply_config(self, config: Config) -> None:
        """Make a validated configuration current: widgets, plot bands and the engine."""
        self.config = config
        self.panel.show_config(config)
        self.plot.set_thresholds(config.attention)
        self.audio.set_settings(config.alerts)
        if self.worker is not None:
            self.worker.set_config(config)

    def save_config(self, path: Path) -> None:
        self.config.save(path)
        self.config_path = path
        self.statusBar().showMessage(f"thresholds saved to {path}", NOTICE_MS)

    def load_config(self, path: Path) -> bool:
        try:
            config = validated(Config.load(path))
        except ConfigError as exc:
            self.panel.error.setText(f"Not loaded: {exc}")
            return False
        self.config_path = path
        self.panel.error.clear()
        self.apply_config(config)
        self.volume.setValue(round(config.alerts.volume * VOLUME_STEPS))
        return True

    def reset_thresholds(self) -> None:
        self.panel.error.clear()
        self.apply_config(reset_tuned(self.config))

    def save_config_dialog(self) -> None:
        path = self.config_path
        if path is None:
            name, _ = QFileDialog.getSaveFileName(self, "Save the configuration", "monitor.toml", "TOML (*.toml)")
            if not name:
                return
            path = Path(name)
        try:
            self.save_config(path)
        except OSError as exc:
            self.notify("Not saved", f"The configuration could not be saved to {path}: {exc}")

    def load_config_dialog(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Load a configuration", "", "TOML (*.toml)")
        if name:
            self.load_config(Path(name))

    # ---- audio ------------------------------------------------------------------------------

    def set_muted(self, muted: bool) -> None:
        self.muted = bool(muted)
        self.audio.mute(self.muted)

    def set_volume(self, position: int) -> None:
        volume = position / VOLUME_STEPS
        self.audio.set_volume(volume)
        self.config = self.config.replace("alerts", volume=volume)
        if self.worker is not None:
            self.worker.set_config(self.config)

    # ---- recording --------------------------------------------------------------------------

    def toggle_recording(self) -> None:
        if self.recording is not None:
            self.worker.stop_recording()
            return
        if self.worker is None or self.source_note is not None:
            self.record_button.setChecked(False)
            self.record_label.setText("Nothing to record: no source is running.")
            return
        self.worker.start_recording(new_session_folder(self.record_root, datetime.now()))

    def choose_record_root(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Folder for recorded sessions", str(self.record_root))
        if name:
            self.record_root = Path(name)

    def _recording_started(self, folder: str) -> None:
        if not self._current():
            return
        self.recording = Path(folder)
        self.record_button.setChecked(True)
        self.record_label.setText(f"Recording to {folder}")

    def _recording_stopped(self, folder: str, error: str) -> None:
        self.recording = None
        self.record_button.setChecked(False)
        if error:
            self.record_label.setText(f"Recording stopped: {error}")
            self.notify("Recording stopped", f"{error}\n\nMonitoring goes on; what was recorded so far "
                        f"is in {folder}.")
        else:
            self.record_label.setText(f"Saved session: {folder}")

    # ---- window -----------------------------------------------------------------------------

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    def show_shortcuts(self) -> None:
        self.notify("Keyboard shortcuts", "\n".join(f"{k}    {t}" for k, t in SHORTCUTS), QMessageBox.Icon.Information)

    def notify(self, title: str, text: str, icon: QMessageBox.Icon = QMessageBox.Icon.Warning) -> None:
        """A message box that does not block: the video and the alerts go on while it is open."""
        self.notice = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        self.notice.setModal(False)
        self.notice.show()

    def _stop_worker(self) -> None:
        if self.worker is None:
            return
        worker, self.worker = self.worker, None
        if not worker.stop(self.config.gui.stop_wait_s):
            log.warning("the worker for %s did not stop within %s s", worker.spec, self.config.gui.stop_wait_s)
        self.timings += worker.timings or []
        self.dropped += worker.stats().dropped
        self.recording = None

    def measurements(self) -> dict:
        """Frame rate and latencies of everything processed so far (needs keep_timings=True)."""
        timings = self.timings + ((self.worker.timings or []) if self.worker is not None else [])
        dropped = self.dropped + (self.worker.stats().dropped if self.worker is not None else 0)
        span = timings[-1][0] - timings[0][0] if len(timings) > 1 else 0.0
        fps = round((len(timings) - 1) / span, 2) if span else 0.0
        return {"type": "gui_stats", "frames": len(timings), "fps": fps,
                "dropped_frames": dropped, "displayed_frames": len(self.display_ms),
                "process_ms": percentiles([p for _, p, _ in timings]),
                "latency_ms": percentiles([lat for _, _, lat in timings]),
                "display_latency_ms": percentiles(self.display_ms)}

    def closeEvent(self, event: QCloseEvent) -> None:
        self.refresh_timer.stop()
        self.countdown_timer.stop()
        self._stop_worker()
        self.audio.close()
        super().closeEvent(event)
