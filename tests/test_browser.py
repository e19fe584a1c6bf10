"""The session browser: its review state as plain code, and the window offscreen (pytest-qt)."""

from pathlib import Path

import pytest
from PyQt6.QtWidgets import QMessageBox

from conftest import frame_marker
from monitor.cli import main
from monitor.config import Config
from monitor.gui.browser import SessionBrowser, VideoFrames
from monitor.session_review import SessionReview
from monitor.sessions import Label, SessionError, load_session, read_labels
from session_factory import snapshot, write_session

# Calibration, a 2 s mirror check (no alert at 3 s, an alert at 1.5 s), a 4.5 s head turn.
SEGMENTS = [(11.0, 0.0, 0.0, True), (2.0, 45.0, 0.0, True), (5.0, 0.0, 0.0, True),
            (4.5, 45.0, 0.0, True), (4.0, 0.0, 0.0, True)]


@pytest.fixture
def session(tmp_path: Path) -> Path:
    return write_session(tmp_path / "drive", SEGMENTS, video=True)


@pytest.fixture
def browser(qtbot, session: Path) -> SessionBrowser:
    window = SessionBrowser()
    qtbot.addWidget(window)
    window.open_session(session)
    return window


def strict_config(tmp_path: Path) -> Path:
    path = tmp_path / "strict.toml"
    Config().replace("attention", looking_away_s=1.5).save(path)
    return path


# ---- the review state -------------------------------------------------------------------------

def test_review_compares_fired_alerts_with_what_new_thresholds_would_fire(session: Path) -> None:
    review = SessionReview(load_session(session))
    assert [s.kind for s in review.fired] == ["looking_away"]
    assert [(s.kind, round(s.start, 2)) for s in review.would_fire] == [(s.kind, round(s.start, 2))
                                                                        for s in review.fired]
    review.set_config(Config().replace("attention", looking_away_s=1.5))
    assert [s.kind for s in review.would_fire] == ["looking_away", "looking_away"]
    assert len(review.fired) == 1                   # what fired in the run does not change


def test_review_seeks_by_time_and_maps_samples_to_video_frames(session: Path) -> None:
    review = SessionReview(load_session(session))
    assert review.index_at(0.0) == 0
    assert review.index_at(5.05) == 49              # t = 5.0 is sample 49 (t = (i + 1) / 10)
    assert review.index_at(1e9) == len(review) - 1
    assert review.video_frame(49) == 49


def test_review_labels_are_ordered_and_saved_atomically(session: Path) -> None:
    review = SessionReview(load_session(session))
    before = snapshot(session)
    review.add_label(25.0, 19.0, "distraction")     # marked end first: still a valid interval
    review.label_span(review.fired[0], "false_alert")
    assert review.unsaved
    assert [label.kind for label in review.labels] == ["false_alert", "distraction"]   # by start
    with pytest.raises(ValueError, match="start < end"):
        review.add_label(3.0, 3.0, "drowsiness")
    removed = review.remove_label(0)
    assert removed.kind == "false_alert"
    with pytest.raises(IndexError):
        review.remove_label(5)
    path = review.save_labels()
    assert not review.unsaved
    assert read_labels(path) == ([Label(19.0, 25.0, "distraction")], [])
    after = snapshot(session)
    assert after.pop("labels.csv").startswith(b"start,end,kind\n")
    assert after == before                          # nothing else in the folder changed


def test_review_of_a_pose_csv_cannot_save_labels(session: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "poses.csv"
    csv_path.write_bytes((session / "poses.csv").read_bytes())
    review = SessionReview(load_session(csv_path))
    review.add_label(1.0, 2.0, "distraction")
    with pytest.raises(SessionError, match="not a session folder"):
        review.save_labels()


def test_video_frames_seek_and_read_on(session: Path) -> None:
    frames = VideoFrames(session / "video.avi")
    for number in (0, 1, 2, 40, 7, 8):
        assert frame_marker(frames.frame(number)) == number % 32
    assert VideoFrames(None).frame(0) is None
    frames.close()


# ---- the window -------------------------------------------------------------------------------

def test_window_scrubs_video_and_plot_in_step(browser: SessionBrowser) -> None:
    shown = []
    real = browser.video.frame
    browser.video.frame = lambda n: shown.append(n) or real(n)
    browser.slider.setValue(120)
    t = browser.review.times[120]
    assert shown[-1] == 120
    assert all(cursor.value() == pytest.approx(t) for cursor in browser.cursors)
    assert f"t = {t:.2f} s" in browser.position_label.text()
    assert not browser.video_label.pixmap().isNull()
    browser.seek(20.0)
    assert browser.slider.value() == browser.review.index_at(20.0)


def test_window_lists_fired_alerts_and_replays_loaded_thresholds(browser: SessionBrowser, tmp_path: Path) -> None:
    assert browser.fired_list.count() == 1 and browser.would_list.count() == 1
    browser.load_config(strict_config(tmp_path))
    assert browser.would_list.count() == 2 and browser.fired_list.count() == 1
    assert len(browser.lane_items) == 2              # one bar item per lane, redrawn not added
    assert browser.thresholds["Δyaw"][1].value() == Config().attention.yaw_away_deg


def test_window_labels_intervals_and_saves_them(browser: SessionBrowser, session: Path, tmp_path: Path) -> None:
    before = snapshot(session)
    browser.seek(19.0)
    browser.mark_here()
    browser.seek(24.0)
    browser.kind_box.setCurrentText("distraction")
    browser.add_label_here()
    assert browser.label_list.count() == 1
    assert browser.windowTitle().endswith("*")
    assert len(browser.lane_items) == 2 + 2          # the bars, and the label on both pose plots
    browser.load_config(strict_config(tmp_path))
    browser.would_list.setCurrentRow(0)              # the mirror check the strict setting catches
    browser.kind_box.setCurrentText("false_alert")
    browser.label_selected_alert()
    assert browser.label_list.count() == 2
    browser.save_labels()
    assert not browser.windowTitle().endswith("*")
    labels, _ = read_labels(session / "labels.csv")
    assert [label.kind for label in labels] == ["false_alert", "distraction"]
    assert labels[0].start == pytest.approx(browser.review.would_fire[0].onset)
    assert labels[1].start == pytest.approx(19.0, abs=0.1) and labels[1].end == pytest.approx(24.0, abs=0.1)
    browser.label_list.setCurrentRow(0)
    browser.delete_selected_label()
    assert browser.label_list.count() == 1
    browser.save_labels()
    after = snapshot(session)
    after.pop("labels.csv")
    assert after == before


def test_window_asks_before_dropping_unsaved_labels(browser: SessionBrowser, monkeypatch) -> None:
    browser.seek(19.0)
    browser.mark_here()
    browser.seek(20.0)
    browser.add_label_here()
    answers = [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Discard]
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args: asked.append(args) or answers.pop(0))
    browser.show()
    browser.close()
    assert browser.isVisible() and len(asked) == 1
    browser.close()
    assert not browser.isVisible()


def test_window_adds_nothing_without_a_marked_start(browser: SessionBrowser) -> None:
    browser.add_label_here()
    assert browser.label_list.count() == 0
    assert "mark the start" in browser.statusBar().currentMessage()


def test_window_opens_a_session_without_video_or_events(qtbot, session: Path) -> None:
    (session / "video.avi").unlink()
    (session / "events.jsonl").unlink()
    window = SessionBrowser()
    qtbot.addWidget(window)
    window.open_session(session)
    assert window.video_label.text() == "no video frame"
    assert "no video.avi" in window.statusBar().currentMessage()
    assert window.would_list.count() == 1


def test_browse_command_reports_an_unusable_session_before_starting_qt(tmp_path: Path) -> None:
    assert main(["browse", str(tmp_path / "nowhere")]) == 3
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "poses.csv").write_text("t,face,yaw_deg,pitch_deg,roll_deg\n")
    assert main(["browse", str(tmp_path / "empty")]) == 3          # no rows to browse


def test_alert_left_open_by_a_crash_lasts_to_the_last_row(session: Path) -> None:
    lines = (session / "events.jsonl").read_text().splitlines()
    (session / "events.jsonl").write_text(lines[0] + "\n")       # the start, and the run died
    review = SessionReview(load_session(session))
    assert len(review.fired) == 1 and review.fired[0].end == review.times[-1]
