"""The one-page report: its numbers are those of `replay` and of a hand count of the session."""

import json
import re
from pathlib import Path

import cv2
import pytest

from monitor.attention import State
from monitor.cli import main
from monitor.config import AttentionSettings
from monitor.report import build_report, write_report
from monitor.session_metrics import alert_counts, attentive_fraction, glances, head_drops, time_without_face
from monitor.sessions import ReplayRow, load_session, replay
from session_factory import snapshot, write_session

# Calibration, a 1.5 s mirror check, a 4.5 s head turn (looking away), 4 s without a face,
# then two quick head drops 3 s apart (nodding off by count).
SEGMENTS = [(12.0, 0.0, 0.0, True), (1.5, 45.0, 0.0, True), (5.0, 0.0, 0.0, True),
            (4.5, 45.0, 0.0, True), (5.0, 0.0, 0.0, True), (4.0, 0.0, 0.0, False), (3.0, 0.0, 0.0, True),
            (0.5, 0.0, -30.0, True), (3.0, 0.0, 0.0, True), (0.5, 0.0, -30.0, True), (6.0, 0.0, 0.0, True)]


@pytest.fixture
def session(tmp_path: Path) -> Path:
    return write_session(tmp_path / "drive", SEGMENTS)


def report_numbers(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert match, "the report carries its numbers as JSON"
    return json.loads(match.group(1))


def test_html_report_numbers_match_replay_and_the_hand_count(session: Path, tmp_path: Path, capsys) -> None:
    before = snapshot(session)
    out = tmp_path / "report.html"
    assert main(["report", str(session), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {"type": "report", "path": str(out)}
    html = out.read_text()
    data = report_numbers(html)
    loaded = load_session(session)
    events = replay(loaded.trace.samples, loaded.config)
    assert data["alerts"] == alert_counts(events)
    assert data["alerts"] == {"nodding_off": 1, "looking_away": 1, "attention_sharing": 0, "no_face": 1}
    assert data["alert_events"] == [e.to_json() for e in events]
    assert data["glance_count"] == 4                     # two head turns and two drops below the road
    assert data["longest_glance_s"] == pytest.approx(4.5, abs=0.2)
    assert data["head_drops"] == 2
    assert data["no_face_s"] == pytest.approx(4.0, abs=0.15)
    assert data["sharing_episodes"] == 0
    assert data["duration_s"] == pytest.approx(45.0 - 0.1)
    assert data["config"]["attention"]["looking_away_s"] == loaded.config.attention.looking_away_s
    assert 0.5 < data["attentive_fraction"] < 1.0
    assert "data:image/png;base64," in html and "Time attentive" in html
    assert f"{100 * data['attentive_fraction']:.1f} %" in html
    assert snapshot(session) == before


def test_attentive_share_is_the_monitored_time_without_an_alert(session: Path) -> None:
    data = build_report(load_session(session))
    alert_time = sum(s.end - s.start for s in data.spans)     # none of them overlap here
    assert data.stats.attentive_fraction == pytest.approx(1 - alert_time / data.stats.monitored_s, abs=0.01)


def test_report_uses_the_given_configuration(session: Path, tmp_path: Path) -> None:
    config = tmp_path / "strict.toml"
    config.write_text("[attention]\nlooking_away_s = 1.0\n")
    out = tmp_path / "strict.html"
    assert main(["report", str(session), "--config", str(config), "--out", str(out)]) == 0
    data = report_numbers(out.read_text())
    assert data["config"]["attention"]["looking_away_s"] == 1.0
    assert data["alerts"]["looking_away"] == 2          # the mirror check counts too now


def test_png_report_is_an_image(session: Path, tmp_path: Path) -> None:
    out = write_report(build_report(load_session(session)), tmp_path / "report.png")
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 400 and image.shape[1] > 400


def test_report_of_a_damaged_session_lists_its_warnings(session: Path, tmp_path: Path) -> None:
    (session / "events.jsonl").unlink()
    text = (session / "poses.csv").read_text()
    (session / "poses.csv").write_text(text[:-10])
    out = tmp_path / "r.html"
    assert main(["report", str(session), "--out", str(out)]) == 0
    warnings = report_numbers(out.read_text())["warnings"]
    assert any("no events.jsonl" in w for w in warnings)
    assert any("skipped 1 row(s)" in w for w in warnings)


def test_report_errors(session: Path, tmp_path: Path) -> None:
    assert main(["report", str(session), "--out", str(tmp_path / "r.pdf")]) == 2
    assert main(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.html")]) == 3
    with pytest.raises(ValueError, match=r"\.html or \.png"):
        write_report(build_report(load_session(session)), tmp_path / "r.txt")


def test_glances_drops_and_face_time_by_hand() -> None:
    def row(t, dyaw=0.0, dpitch=0.0, face=True, state=State.ATTENTIVE):
        return ReplayRow(t, face, dyaw if face else None, dpitch if face else None, state)

    s = AttentionSettings()       # road |dyaw| <= 30, back inside at 27; drops of 15 deg within 1 s
    rows = [row(0.0), row(1.0, 35.0), row(2.0, face=False), row(3.0, 28.0), row(4.0, 26.0),
            row(5.0, 40.0, state=State.LOOKING_AWAY), row(6.0, 40.0, state=State.LOOKING_AWAY)]
    assert glances(rows, s) == [(1.0, 4.0), (5.0, 6.0)]     # the lost face and 28 deg stay off the road
    assert time_without_face(rows) == 1.0
    assert attentive_fraction(rows) == 5.0 / 6.0
    assert attentive_fraction([row(0.0, state=State.CALIBRATING), row(1.0, state=State.CALIBRATING)]) is None
    pitches = [(10.0, 0.0), (10.5, -16.0), (11.0, -14.0), (11.5, -11.0), (12.0, -27.0), (14.0, -27.0)]
    # down at 10.5; -14 is not yet back up (needs -12); up at 11.5; down again at 12 (from -11)
    assert head_drops([row(t, dpitch=p) for t, p in pitches], s) == [10.5, 12.0]
