"""The desktop window: its pure presentation logic, then the window itself on generated videos.

Most window tests run the real engine (driver finder, smoother, attention, recorder) around a
scripted cascade whose face and head pose the test sets, so they can provoke alerts on a
synthetic clip; one test runs the real cascade on a clip cut from `../shared` (skipped without it).
Nothing waits with sleeps: `qtbot.waitUntil` polls the window's state.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytest.importorskip("PyQt6")
pytest.importorskip("pytestqt")

from PyQt6.QtCore import Qt  # noqa: E402

from monitor.attention import AlertEvent, State  # noqa: E402
from monitor.cascade import Face  # noqa: E402
from monitor.config import CascadeSettings, Config, ConfigError, describe  # noqa: E402
from monitor.gui.app import MonitorWindow, new_session_folder  # noqa: E402
from monitor.gui.history import CpuMeter, RateMeter, Timeline  # noqa: E402
from monitor.gui.present import SHORTCUTS, Status, banner, neutral_text, pose_text, status_parts  # noqa: E402
from monitor.gui.tuning import SliderScale, apply_knob, decimals_for, knobs, reset_tuned, snap  # noqa: E402
from monitor.gui.worker import FrameView, Mailbox  # noqa: E402
from monitor.overlay import BOX_COLOUR  # noqa: E402
from monitor.pipeline import MonitorEngine  # noqa: E402
from monitor.recorder import RecorderError, SessionRecorder  # noqa: E402
from tests.shared import DATA, needs_shared  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WAIT_MS = 20000          # generous: the box is shared and slow; waitUntil returns as soon as it holds
BOX_RGB = BOX_COLOUR[::-1]


# ---- pure presentation ------------------------------------------------------------------------

def test_every_state_has_its_own_banner_text_and_colour():
    banners = [banner(state, 1.0) for state in State]
    assert len({b.text for b in banners}) == len(State)
    assert len({b.background for b in banners}) == len(State)
    assert banner(State.LOOKING_AWAY, 1.0).text == "LOOKING AWAY"
    assert banner(State.NOT_VISIBLE, 1.0).text == "DRIVER NOT VISIBLE"
    assert banner(State.NODDING_OFF, 1.0).background != banner(State.ATTENTIVE, 1.0).background


def test_banner_calibration_countdown_and_idle():
    assert banner(State.CALIBRATING, 0.42).text == "CALIBRATING 42%"
    assert banner(State.ATTENTIVE, 1.0, countdown_s=2.2).text == "CALIBRATING IN 3"
    # an alert is never hidden behind a countdown
    assert banner(State.NODDING_OFF, 1.0, countdown_s=2.0).text == "NODDING OFF"
    assert banner(State.ATTENTIVE, 1.0, idle="no camera").text == "NO CAMERA"
    # without head pose calibration cannot progress: say so rather than show 0% forever
    assert "NO HEAD POSE" in banner(State.CALIBRATING, 0.0, pose_available=False).text
    assert banner(State.NOT_VISIBLE, 0.0, pose_available=False).text == "DRIVER NOT VISIBLE"


def test_pose_and_neutral_texts():
    assert "unavailable" in pose_text(False, (1.0, 2.0, 3.0))
    assert "no face" in pose_text(True, None)
    assert pose_text(True, (12.34, -4.0, 0.5)) == "yaw +12.3°   pitch -4.0°   roll +0.5°"
    assert neutral_text(None, 0.5) == "neutral pose: calibrating (50%)"
    assert neutral_text((8.0, -5.0), 1.0) == "neutral pose: yaw +8.0°, pitch -5.0°"
    assert "needs head pose" in neutral_text(None, 0.0, pose_available=False)


def test_status_line_shows_every_figure():
    status = Status(source="camera 0", note=None, fps=29.5, latency_ms=12.4, dropped=3, cpu_percent=61.0, cpus=2,
                    recording=Path("/s/session-1"), recording_s=75.0, muted=True, volume=0.8)
    text = " | ".join(status_parts(status))
    for part in ("camera 0", "29.5 fps", "latency 12 ms", "dropped 3", "CPU 61% of 2 cores",
                 "REC 1:15 /s/session-1", "audio muted"):
        assert part in text
    idle = status_parts(Status("", "no camera", None, None, 0, None, 2, None, 0.0, False, 0.5))
    assert "no camera" in idle and "not recording" in idle and "audio on (50%)" in idle


def test_shortcuts_cover_the_issue_keys():
    assert [key for key, _ in SHORTCUTS] == ["C", "R", "M", "F", "Q"]


def test_slider_scale_round_trips_and_clamps():
    scale = SliderScale(1.0, 90.0, 1000)
    assert scale.to_position(1.0) == 0 and scale.to_position(90.0) == 1000
    assert scale.to_position(500.0) == 1000 and scale.to_position(-3.0) == 0
    for value in (1.0, 30.0, 47.3, 90.0):
        assert abs(scale.to_value(scale.to_position(value)) - value) <= (90.0 - 1.0) / 1000
    with pytest.raises(ValueError, match="empty"):
        SliderScale(2.0, 2.0, 10)


def test_knobs_cover_attention_and_smoother_with_units():
    made = {(k.section, k.key): k for k in knobs(1000)}
    expected = {(s, k) for s, k, d, *_ in describe()
                if s in ("attention", "smoother") and not isinstance(d, bool)}
    assert set(made) == expected
    yaw = made[("attention", "yaw_away_deg")]
    assert (yaw.unit, yaw.label, yaw.lo, yaw.hi) == ("°", "yaw away", 1.0, 90.0)
    assert made[("attention", "looking_away_s")].unit == "s"
    assert made[("smoother", "min_cutoff_hz")].unit == "Hz"
    assert made[("attention", "nod_count")].integer and made[("attention", "nod_count")].decimals == 0
    assert decimals_for(0.01, 30.0, False, 1000) == 2          # the lower bound must be reachable
    assert snap(made[("attention", "nod_count")], 2.6) == 3


def test_apply_knob_refuses_invalid_values_and_keeps_the_config():
    config = Config()
    by_key = {k.key: k for k in knobs(1000)}
    assert apply_knob(config, by_key["yaw_away_deg"], 40.0).attention.yaw_away_deg == 40.0
    with pytest.raises(ConfigError, match=r"attention.yaw_away_deg.*1.0 to 90.0"):
        apply_knob(config, by_key["yaw_away_deg"], 500.0)
    with pytest.raises(ConfigError, match="hysteresis_deg"):
        apply_knob(config, by_key["hysteresis_deg"], 19.0)      # >= nod_drop 15: the head could never return
    with pytest.raises(ConfigError, match="sharing_total_s"):
        apply_knob(config, by_key["sharing_total_s"], 40.0)     # more than the 30 s window
    assert config == Config()


def test_reset_tuned_keeps_other_sections():
    config = Config().replace("attention", yaw_away_deg=50).replace("alerts", volume=0.3)
    reset = reset_tuned(config)
    assert reset.attention == Config().attention and reset.alerts.volume == 0.3


def _event(kind, phase, t, onset):
    return AlertEvent(kind, phase, t, onset)


def test_timeline_keeps_its_window_gaps_and_alert_spans():
    timeline = Timeline(10.0)
    for i in range(200):                            # 8 fps: exact binary times up to 24.875 s
        timeline.add(i / 8, (float(i), -float(i)))
    timeline.on_events([_event("looking_away", "start", 20.0, 12.0)])
    view = timeline.view()
    assert view.t[0] == -10.0 and view.t[-1] == 0.0 and len(view.t) == 81
    assert view.yaw[-1] == 199.0 and view.pitch[-1] == -199.0
    assert view.spans == [("looking_away", -10.0, 0.0)]           # onset clipped to the window
    timeline.on_events([_event("looking_away", "end", 22.0, 12.0)])
    assert timeline.view().spans == [("looking_away", -10.0, 22.0 - 24.875)]
    for i in range(200, 400):
        timeline.add(i / 8, (0.0, 0.0))
    assert timeline.view().spans == []             # the span scrolled out of the window
    gaps = Timeline(100.0)
    for i in range(10):
        gaps.add(float(i), None if i == 4 else (1.0, 2.0))
    assert np.isnan(gaps.view().yaw[4]) and not np.isnan(gaps.view().yaw[5])
    gaps.add(0.0, (1.0, 1.0))                       # a new source restarts the clock
    assert len(gaps.view().t) == 1


def test_rate_and_cpu_meters():
    meter = RateMeter(1.0)
    assert meter.rate() is None and meter.mean() is None
    for i in range(100):
        meter.add(i / 25, 10.0 + i % 2)
    assert meter.rate() == pytest.approx(25.0)
    assert meter.mean() == pytest.approx(10.5, abs=0.1)
    cpu = CpuMeter(2, min_interval_s=1.0)
    assert cpu.update(1.0, 100.0) is None
    assert cpu.update(1.4, 100.5) is None                   # too soon: keeps measuring from 100.0
    assert cpu.update(2.0, 101.0) == pytest.approx(50.0)    # one core busy of two
    assert cpu.update(2.0, 101.0) is None
    assert cpu.update(2.5, 102.0) == pytest.approx(25.0)
    with pytest.raises(ValueError):
        CpuMeter(0)


def _view(t):
    return FrameView(np.zeros((2, 2, 3), np.uint8), t, 0.0, State.ATTENTIVE, 1.0, (0.0, 0.0), None, (t, -t), True)


def test_mailbox_newest_picture_wins_but_every_point_arrives():
    box = Mailbox()
    assert box.put(_view(1.0), []) is True          # empty -> full: tell the GUI
    assert box.put(_view(2.0), [_event("no_face", "start", 2.0, 1.0)]) is False
    assert box.put(_view(3.0), []) is False
    got = box.take()
    assert got.view.t == 3.0
    assert [t for t, _ in got.points] == [1.0, 2.0, 3.0]
    assert [e.kind for e in got.events] == ["no_face"]
    assert box.take().view is None
    assert box.put(_view(4.0), []) is True


def test_new_session_folder_never_reuses_one(tmp_path):
    now = datetime(2026, 1, 2, 3, 4, 5)
    first = new_session_folder(tmp_path, now)
    assert first.name == "session-20260102-030405"
    first.mkdir()
    assert new_session_folder(tmp_path, now).name == "session-20260102-030405-2"


# ---- the window -------------------------------------------------------------------------------

class ScriptedCascade:
    """Stands in for the networks: one face in the middle, with the pose the test sets."""

    pose_trained = True

    def __init__(self) -> None:
        self.settings = CascadeSettings()
        self.face = True
        self.yaw, self.pitch, self.roll = 0.0, 0.0, 0.0

    def _faces(self, image):
        if not self.face:
            return []
        h, w = image.shape[:2]
        box = np.array([w * 0.3, h * 0.2, w * 0.7, h * 0.8], np.float32)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        landmarks = np.array([[cx - 10, cy - 8], [cx + 10, cy - 8], [cx, cy], [cx - 8, cy + 10], [cx + 8, cy + 10]])
        rotation = None if self.yaw is None else np.eye(3)     # only the angles are read downstream
        return [Face(box, 0.99, landmarks, rotation, self.yaw, self.pitch, self.roll)]

    def detect(self, image):
        return self._faces(image)

    def follow(self, image, crop_boxes):
        return self._faces(image)


FAST = Config().replace("attention", calibration_s=0.3, looking_away_s=0.4, no_face_s=0.5) \
               .replace("gui", calibration_countdown_s=0.0)


@pytest.fixture
def scripted():
    cascade = ScriptedCascade()
    return cascade, (lambda config: MonitorEngine(config, cascade))


@pytest.fixture
def window_on(qtbot, tmp_path, scripted):
    """window_on(source, config=FAST) -> a shown window on the scripted engine."""
    _, make_engine = scripted
    made = []

    def make(source, config=FAST):
        window = MonitorWindow(config, source=str(source), record_root=tmp_path / "sessions", audio=False,
                               make_engine=make_engine)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)     # single-key shortcuts need focus
        made.append(window)
        return window

    yield make
    for window in made:
        window.close()


def _worker_threads():
    return [t for t in threading.enumerate() if t.name.startswith(("monitor worker", "capture "))]


def _has_box_colour(rgb: np.ndarray) -> bool:
    return bool(np.any(np.all(np.abs(rgb.astype(int) - BOX_RGB) <= 2, axis=-1)))


def test_window_shows_frames_with_the_overlay(qtbot, window_on, make_video):
    window = window_on(make_video(frames=150, fps=25.0))
    qtbot.waitUntil(lambda: window.last_view is not None and window.last_view.state is State.ATTENTIVE,
                    timeout=WAIT_MS)
    assert _has_box_colour(window.last_view.rgb)                  # box drawn by the worker
    assert not window.video.picture.pixmap().isNull()
    shown = window.video.picture.grab().toImage()
    centre = shown.pixelColor(shown.width() // 2, shown.height() // 2)
    assert (centre.red(), centre.green(), centre.blue()) != (0, 0, 0)   # the picture, not the black backdrop
    assert window.banner.text() == "ATTENTIVE"
    assert window.pose_label.text().startswith("yaw +0.0°")
    assert "neutral pose: yaw +0.0°" in window.neutral_label.text()
    view = window.last_view          # the timeline plots what the rules judge: smoothed minus neutral
    assert view.deviation == pytest.approx((view.angles[0] - view.neutral[0], view.angles[1] - view.neutral[1]))
    qtbot.waitUntil(lambda: "fps" in window.status_label.text() and "– fps" not in window.status_label.text(),
                    timeout=WAIT_MS)


def test_threshold_widgets_change_the_engine_live(qtbot, window_on, make_video, scripted):
    cascade, _ = scripted
    window = window_on(make_video(frames=400, fps=25.0))
    qtbot.waitUntil(lambda: window.last_view is not None and window.last_view.state is State.ATTENTIVE,
                    timeout=WAIT_MS)
    cascade.yaw = 45.0
    qtbot.waitUntil(lambda: window.banner.text() == "LOOKING AWAY", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.plot.span_count == 1, timeout=WAIT_MS)
    row = window.panel.row("attention", "yaw_away_deg")
    row.spin.setValue(60.0)                                       # what typing into the spin box does
    assert window.config.attention.yaw_away_deg == 60.0
    qtbot.waitUntil(lambda: window.worker.engine.config.attention.yaw_away_deg == 60.0, timeout=WAIT_MS)
    assert window.worker.engine.tracker.attention._settings.yaw_away_deg == 60.0
    assert row.slider.value() == row.scale.to_position(60.0)
    qtbot.waitUntil(lambda: window.banner.text() == "ATTENTIVE", timeout=WAIT_MS)   # 45° is on the road now
    row.slider.setValue(row.scale.to_position(20.0))              # dragging the slider applies too
    assert window.config.attention.yaw_away_deg == pytest.approx(20.0, abs=0.1)
    assert row.spin.value() == pytest.approx(20.0, abs=0.1)
    qtbot.waitUntil(lambda: window.banner.text() == "LOOKING AWAY", timeout=WAIT_MS)


def test_invalid_values_are_refused(qtbot, window_on, make_video):
    window = window_on(make_video(frames=100, fps=25.0))
    yaw = window.panel.row("attention", "yaw_away_deg")
    yaw.spin.setValue(500.0)                                      # the box cannot hold more than the range
    assert yaw.spin.value() == 90.0 and window.config.attention.yaw_away_deg == 90.0
    yaw.spin.lineEdit().selectAll()
    qtbot.keyClicks(yaw.spin, "abc")                              # letters are not a number
    assert window.config.attention.yaw_away_deg == 90.0
    hysteresis = window.panel.row("attention", "hysteresis_deg")
    hysteresis.spin.setValue(18.0)                                # >= nod_drop_deg 15: rejected by the engine
    assert window.config.attention.hysteresis_deg == 3.0
    assert hysteresis.spin.value() == 3.0                         # the refused value is put back
    assert "hysteresis_deg" in window.panel.error.text() and "nod_drop_deg" in window.panel.error.text()
    assert window.load_config(_write(window, "[attention]\nyaw_away_deg = 500\n")) is False
    assert "1.0 to 90.0" in window.panel.error.text()
    assert window.config.attention.yaw_away_deg == 90.0


def _write(window, text):
    path = window.record_root.parent / "bad.toml"
    path.write_text(text)
    return path


def test_save_load_and_reset(qtbot, window_on, make_video, tmp_path):
    window = window_on(make_video(frames=100, fps=25.0))
    window.panel.row("attention", "looking_away_s").spin.setValue(2.5)
    window.save_config(tmp_path / "tuned.toml")
    assert Config.load(tmp_path / "tuned.toml").attention.looking_away_s == 2.5
    window.reset_thresholds()
    assert window.config.attention == Config().attention
    assert window.panel.row("attention", "looking_away_s").spin.value() == 3.0
    assert window.load_config(tmp_path / "tuned.toml")
    assert window.panel.row("attention", "looking_away_s").spin.value() == 2.5
    qtbot.waitUntil(lambda: window.worker.engine is not None
                    and window.worker.engine.config.attention.looking_away_s == 2.5, timeout=WAIT_MS)


def test_calibrate_shortcut_learns_a_new_neutral(qtbot, window_on, make_video, scripted):
    cascade, _ = scripted
    window = window_on(make_video(frames=400, fps=25.0))
    qtbot.waitUntil(lambda: window.last_view is not None and window.last_view.neutral is not None,
                    timeout=WAIT_MS)
    assert window.last_view.neutral == pytest.approx((0.0, 0.0), abs=0.5)
    cascade.yaw, cascade.pitch = 12.0, -6.0                       # the camera was moved
    qtbot.keyClick(window, Qt.Key.Key_C)
    qtbot.waitUntil(lambda: window.last_view.neutral is not None
                    and window.last_view.neutral[0] == pytest.approx(12.0, abs=1.0), timeout=WAIT_MS)
    assert window.last_view.neutral[1] == pytest.approx(-6.0, abs=1.0)
    assert "yaw +12" in window.neutral_label.text() or "yaw +11" in window.neutral_label.text()


def test_calibration_countdown_shows_in_the_banner(qtbot, window_on, make_video):
    window = window_on(make_video(frames=300, fps=25.0), FAST.replace("gui", calibration_countdown_s=1.0))
    qtbot.waitUntil(lambda: window.banner.text() == "ATTENTIVE", timeout=WAIT_MS)
    window.calibrate()
    qtbot.waitUntil(lambda: window.banner.text() == "CALIBRATING IN 1", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.banner.text().startswith("CALIBRATING ") and "%" in window.banner.text(),
                    timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.banner.text() == "ATTENTIVE", timeout=WAIT_MS)


def test_mute_full_screen_and_help_shortcuts(qtbot, window_on, make_video):
    window = window_on(make_video(frames=100, fps=25.0))
    qtbot.keyClick(window, Qt.Key.Key_M)
    assert window.muted and window.mute_box.isChecked() and window.audio._policy.muted
    window.refresh()
    assert "audio muted" in window.status_label.text()
    qtbot.keyClick(window, Qt.Key.Key_M)
    assert not window.muted and not window.audio._policy.muted
    window.volume.setValue(25)
    assert window.config.alerts.volume == 0.25 and window.audio._policy.settings.volume == 0.25
    qtbot.keyClick(window, Qt.Key.Key_F)
    qtbot.waitUntil(window.isFullScreen, timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_F)
    qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=WAIT_MS)
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    listed = " ".join(a.text() for a in help_menu.actions())
    for key, text in SHORTCUTS:
        assert f"{key}    {text}" in listed
    qtbot.keyClick(window, Qt.Key.Key_Q)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=WAIT_MS)
    assert _worker_threads() == []


def test_record_toggle_writes_a_session_folder(qtbot, window_on, make_video):
    window = window_on(make_video(frames=300, fps=25.0))
    qtbot.waitUntil(lambda: window.last_view is not None, timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: window.recording is not None, timeout=WAIT_MS)
    folder = window.recording
    assert window.record_button.isChecked() and str(folder) in window.record_label.text()
    qtbot.waitUntil(lambda: window.worker.stats().recording_s > 0.5, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "REC 0:0" in window.status_label.text(), timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: window.recording is None, timeout=WAIT_MS)
    assert "Saved session" in window.record_label.text() and not window.record_button.isChecked()
    summary = json.loads((folder / "summary.json").read_text())
    with (folder / "poses.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert summary["frames"] == len(rows) > 10
    assert rows[-1]["face"] == "1" and rows[-1]["state"] == "attentive"
    assert (folder / "config.toml").is_file() and (folder / "events.jsonl").is_file()
    video = cv2.VideoCapture(str(folder / "video.avi"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == len(rows)
    assert new_session_folder(window.record_root, datetime.now()) != folder


def test_full_disk_stops_recording_and_monitoring_goes_on(qtbot, window_on, make_video, monkeypatch):
    written = []

    def failing_write(self, image):
        written.append(1)
        if len(written) > 5:
            raise RecorderError(f"recording stopped: disk full at {self.folder / 'video.avi'} (No space left)")

    monkeypatch.setattr(SessionRecorder, "write_frame", failing_write)
    window = window_on(make_video(frames=300, fps=25.0))
    qtbot.waitUntil(lambda: window.last_view is not None, timeout=WAIT_MS)
    window.toggle_recording()
    qtbot.waitUntil(lambda: len(written) > 5 and window.recording is None, timeout=WAIT_MS)
    assert "disk full" in window.record_label.text()
    assert window.notice is not None and "disk full" in window.notice.text()
    assert not window.record_button.isChecked()
    seen = window.worker.stats().frames
    qtbot.waitUntil(lambda: window.worker.stats().frames > seen + 5, timeout=WAIT_MS)   # still monitoring


def test_no_camera_says_so_and_offers_a_video(qtbot, window_on, make_video):
    window = window_on(7, FAST.replace("capture", camera_retry_s=0.0))
    qtbot.waitUntil(lambda: window.video.showing_message and window.banner.text() == "NO CAMERA", timeout=WAIT_MS)
    assert "No camera" in window.video.message.text() and "video file" in window.video.message.text()
    window.refresh()
    assert window.status_label.text().startswith("camera 7") and "no camera" in window.status_label.text()
    window.open_source(str(make_video(frames=100, fps=25.0)))
    qtbot.waitUntil(lambda: window.last_view is not None and not window.video.showing_message, timeout=WAIT_MS)


def test_end_of_video_is_reported(qtbot, window_on, make_video):
    window = window_on(make_video(frames=20, fps=25.0))
    qtbot.waitUntil(lambda: window.banner.text() == "END OF VIDEO", timeout=WAIT_MS)
    window.refresh()
    assert "end of video" in window.status_label.text()
    qtbot.waitUntil(lambda: not window.worker.is_alive(), timeout=WAIT_MS)


def test_a_failing_frame_is_reported_and_the_window_lives_on(qtbot, window_on, make_video, scripted):
    cascade, _ = scripted
    window = window_on(make_video(frames=300, fps=25.0))
    qtbot.waitUntil(lambda: window.last_view is not None, timeout=WAIT_MS)

    def broken(image, boxes=None):
        raise RuntimeError("the network fell over")

    cascade.detect = cascade.follow = broken
    qtbot.waitUntil(lambda: window.banner.text() == "MONITORING STOPPED", timeout=WAIT_MS)
    assert "RuntimeError: the network fell over" in window.notice.text()
    qtbot.waitUntil(lambda: not window.worker.is_alive(), timeout=WAIT_MS)
    cascade.detect = cascade.follow = lambda image, boxes=None: cascade._faces(image)
    window.open_source(str(make_video(frames=100, fps=25.0, name="again.avi")))
    qtbot.waitUntil(lambda: window.source_note is None and window.banner.text() != "MONITORING STOPPED",
                    timeout=WAIT_MS)


def test_closing_stops_every_thread(qtbot, window_on, make_video):
    window = window_on(make_video(frames=300, fps=25.0))
    qtbot.waitUntil(lambda: window.last_view is not None, timeout=WAIT_MS)
    window.toggle_recording()
    qtbot.waitUntil(lambda: window.recording is not None, timeout=WAIT_MS)
    folder = window.recording
    worker = window.worker
    assert _worker_threads()
    window.close()
    assert not worker.is_alive()
    assert _worker_threads() == []
    assert (folder / "summary.json").is_file()                    # closing finalised the recording


def test_head_pose_unavailable_is_said_plainly(qtbot, window_on, make_video, scripted):
    cascade, _ = scripted
    cascade.pose_trained = False
    cascade.yaw = cascade.pitch = cascade.roll = None
    window = window_on(make_video(frames=100, fps=25.0))
    qtbot.waitUntil(lambda: window.last_view is not None, timeout=WAIT_MS)
    assert "Head pose unavailable" in window.pose_label.text()
    assert "NO HEAD POSE" in window.banner.text()


# ---- the real cascade on a real face ------------------------------------------------------------

@needs_shared
def test_real_face_is_found_and_drawn(qtbot, tmp_path):
    clip = DATA / "video" / "webcam_office_head_motion.avi"
    if not clip.is_file():
        pytest.skip(f"{clip} is not present")
    source = cv2.VideoCapture(str(clip))
    path = tmp_path / "face.avi"
    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (320, 240))
    for _ in range(60):
        ok, image = source.read()
        assert ok
        writer.write(image)
    writer.release()
    window = MonitorWindow(FAST, source=str(path), record_root=tmp_path / "s", audio=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.last_view is not None and window.last_view.face, timeout=60000)
    assert _has_box_colour(window.last_view.rgb)
    window.close()
    assert _worker_threads() == []


# ---- the command line -------------------------------------------------------------------------

def test_no_command_opens_the_window_and_help_needs_no_qt(monkeypatch):
    import monitor.gui.commands as commands
    from monitor import cli

    seen = {}
    monkeypatch.setattr(commands, "cmd_gui", lambda args, config: seen.update(source=args.source, config=config) or 0)
    assert cli.main(["--source", "clip.avi"]) == 0
    assert seen == {"source": "clip.avi", "config": None}
    code = ("import sys\nfrom monitor.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('QT' if 'PyQt6' in sys.modules else 'NO-QT')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith("NO-QT") and "gui" in out.stdout


def test_no_display_is_a_clear_error_not_a_crash(monkeypatch, caplog):
    from monitor.gui import commands
    from monitor.gui.commands import has_display

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert has_display() is False
    args = SimpleNamespace(source="0", config=None)
    assert commands.cmd_gui(args, None) == 2
    assert "no display" in caplog.text and "headless" in caplog.text
    monkeypatch.setenv("DISPLAY", ":0")
    assert has_display() is True


def test_stats_command_measures_a_generated_video(make_video):
    video = make_video(frames=60, fps=30.0, size=(320, 240))
    out = subprocess.run([sys.executable, "run_monitor.py", "gui", "--source", str(video), "--no-audio",
                          "--max-seconds", "30", "--stats"], cwd=REPO, capture_output=True, text=True, timeout=240,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["type"] == "gui_stats" and stats["frames"] > 0
    assert stats["latency_ms"]["p50"] >= stats["process_ms"]["p50"] >= 0
    assert math.isfinite(stats["fps"])
