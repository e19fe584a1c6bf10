"""Reading session folders back: complete, with files missing, truncated, with timestamps going
back, from another configuration version; labels written atomically."""

import logging
from pathlib import Path

import pytest

from monitor.config import Config
from monitor.sessions import (Label, SessionError, load_config_leniently, load_session, read_labels, replay,
                              replay_trace, write_labels)
from session_factory import samples_of, snapshot, write_session

SEGMENTS = [(12.0, 0.0, 0.0, True), (4.5, 45.0, 0.0, True), (3.0, 0.0, 0.0, True),
            (4.0, 0.0, 0.0, False), (3.0, 0.0, 0.0, True)]


@pytest.fixture
def session(tmp_path: Path) -> Path:
    return write_session(tmp_path / "s1", SEGMENTS, video=True)


def test_complete_session_reads_without_warnings_and_matches_its_run(session: Path) -> None:
    loaded = load_session(session)
    assert loaded.warnings == []
    assert len(loaded.trace.samples) == len(samples_of(SEGMENTS, 10.0))
    assert loaded.labels is None and loaded.video == session / "video.avi"
    kinds = sorted(e.kind for e in loaded.recorded_events if e.phase == "start")
    assert kinds == ["looking_away", "no_face"]
    assert loaded.recorded_events == [e.__class__(e.kind, e.phase, round(e.t, 3), round(e.onset, 3))
                                      for e in replay(loaded.trace.samples, loaded.config)]


def test_replay_trace_gives_replays_events_and_deviation_from_neutral(session: Path) -> None:
    loaded = load_session(session)
    result = replay_trace(loaded.trace.samples, loaded.config)
    assert result.events == replay(loaded.trace.samples, loaded.config)
    assert result.neutral == pytest.approx((8.0, -5.0))
    turned = [r for r in result.rows if 14.0 < r.t < 16.0]
    assert all(r.dyaw == pytest.approx(45.0, abs=1.0) for r in turned)
    assert all(r.dyaw is None for r in result.rows if not r.face)
    assert result.rows[0].dyaw is None      # calibrating: no neutral yet


def test_missing_files_are_named_in_warnings_and_skipped(session: Path) -> None:
    for name in ("events.jsonl", "config.toml", "summary.json", "video.avi"):
        (session / name).unlink()
    loaded = load_session(session)
    text = "\n".join(loaded.warnings)
    for name in ("events.jsonl", "config.toml", "summary.json", "video.avi"):
        assert f"no {name}" in text
    assert loaded.recorded_events == [] and loaded.summary == {} and loaded.video is None
    assert loaded.config == Config()


def test_missing_poses_is_a_clear_session_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SessionError, match="no poses.csv"):
        load_session(tmp_path / "empty")


def test_truncated_poses_skips_the_half_row_with_a_warning(session: Path, caplog) -> None:
    text = (session / "poses.csv").read_text()
    (session / "poses.csv").write_text(text[:-25])       # a crash in the middle of the last row
    before = snapshot(session)
    with caplog.at_level(logging.WARNING):
        loaded = load_session(session)
    assert sum(loaded.trace.skipped.values()) == 1
    assert len(loaded.trace.samples) == len(samples_of(SEGMENTS, 10.0)) - 1
    assert "skipped 1 row(s)" in caplog.text
    assert snapshot(session) == before


def test_timestamps_going_back_are_skipped_and_rows_keep_their_video_frames(session: Path) -> None:
    lines = (session / "poses.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    rows[5] = rows[2]                                   # t goes back at data row 5
    (session / "poses.csv").write_text("\n".join([header] + rows) + "\n")
    loaded = load_session(session)
    assert loaded.trace.skipped == {"timestamp not after the previous row": 1}
    assert any("timestamp not after" in w for w in loaded.warnings)
    assert loaded.trace.rows[:6] == [0, 1, 2, 3, 4, 6]   # the sample after the gap is video frame 6


def test_config_of_another_version_keeps_what_it_can(session: Path) -> None:
    (session / "config.toml").write_text(
        'version = 2\n[attention]\nyaw_away_deg = 25.0\nlooking_away_s = 999.0\nnew_rule_s = 1.0\n'
        '[future]\nx = 1\n')
    loaded = load_session(session)
    text = "\n".join(loaded.warnings)
    assert "version 2" in text
    assert "looking_away_s" in text and "out of range" in text
    assert "new_rule_s" in text and "[future]" in text
    assert loaded.config.attention.yaw_away_deg == 25.0
    assert loaded.config.attention.looking_away_s == Config().attention.looking_away_s


def test_config_whose_kept_keys_clash_falls_back_to_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[attention]\nsharing_total_s = 40.0\nsharing_window_s = 20.0\n")
    config, warnings = load_config_leniently(path)
    assert config == Config()
    assert "sharing_total_s" in warnings[-1] and "default" in warnings[-1]


def test_broken_event_line_is_skipped(session: Path) -> None:
    with (session / "events.jsonl").open("a") as fh:
        fh.write('{"type": "alert", "kind": "looking_aw')
    loaded = load_session(session)
    assert any("1 unreadable event line" in w for w in loaded.warnings)
    assert len(loaded.recorded_events) == 4


def test_labels_round_trip_atomically_and_bad_rows_are_skipped(session: Path) -> None:
    labels = [Label(20.0, 25.0, "drowsiness"), Label(12.0, 16.5, "distraction")]
    path = write_labels(session, labels)
    assert path == session / "labels.csv"
    assert [p.name for p in session.iterdir() if p.name.endswith(".tmp")] == []
    assert read_labels(path) == (sorted(labels, key=lambda label: label.start), [])
    with path.open("a") as fh:
        fh.write("30,29,distraction\n31,32,bored\n")
    read, warnings = read_labels(path)
    assert len(read) == 2 and "skipped 2 bad label row(s)" in warnings[0]
    assert load_session(session).labels == read


def test_label_rejects_bad_kind_and_empty_interval() -> None:
    with pytest.raises(ValueError, match="allowed: distraction, drowsiness, false_alert"):
        Label(1.0, 2.0, "bored")
    with pytest.raises(ValueError, match="start < end"):
        Label(2.0, 2.0, "distraction")


def test_labels_file_without_the_columns_is_ignored_with_a_warning(session: Path) -> None:
    (session / "labels.csv").write_text("from,to\n1,2\n")
    loaded = load_session(session)
    assert loaded.labels == []
    assert any("lacks the columns start, end, kind" in w for w in loaded.warnings)

