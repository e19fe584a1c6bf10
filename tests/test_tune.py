"""Tuning: grid parsing, scoring against labels, and a recommendation checked by hand."""

import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import Config, ConfigError
from monitor.session_metrics import LabelScore, Span, score_labels
from monitor.sessions import Label, load_session
from monitor.tune import GridAxis, apply_setting, parse_grid, recommend, settings_grid, tune
from session_factory import snapshot, write_session

ROAD, TURN = 0.0, 60.0
# Calibration (10 s by default) and three head turns, each followed by enough road time to
# clear the attention-sharing count: a 2.5 s mirror check, then 3.5 s and 6 s true distractions.
SEGMENTS = [(12.0, ROAD, 0.0, True), (2.5, TURN, 0.0, True), (8.0, ROAD, 0.0, True),
            (3.5, TURN, 0.0, True), (8.0, ROAD, 0.0, True), (6.0, TURN, 0.0, True), (8.0, ROAD, 0.0, True)]
LABELS = [(22.5, 26.0, "distraction"), (34.0, 40.0, "distraction")]
DURATION_S = 48.0 - 0.1       # samples from t = 0.1 to t = 48.0 at 10 fps
GRID = "attention.looking_away_s=2:5:1"


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    return write_session(tmp_path / "labelled", SEGMENTS, labels=LABELS)


def test_recommendation_matches_the_hand_calculation(labelled: Path) -> None:
    """looking_away_s = 2 catches all three turns: recall 1 but the mirror check is a false alert
    (75 per hour over 48 s); 3 catches the 3.5 s and 6 s turns only: recall 1, no false alert;
    4 and 5 catch only the 6 s turn: recall 0.5. So 3 it is."""
    result = tune([load_session(labelled)], Config(), [parse_grid(GRID)])
    by_value = {row.setting["attention.looking_away_s"]: row for row in result.rows}
    assert sorted(by_value) == [2.0, 3.0, 4.0, 5.0]
    expected = {2.0: (1.0, 1, 3), 3.0: (1.0, 0, 2), 4.0: (0.5, 0, 1), 5.0: (0.5, 0, 1)}
    for value, (recall, false_alerts, alerts) in expected.items():
        row = by_value[value]
        assert row.score.recall == recall, value
        assert row.score.false_alerts == false_alerts, value
        assert row.alerts_per_hour["looking_away"] == pytest.approx(alerts * 3600 / DURATION_S), value
        assert row.alerts_per_hour["attention_sharing"] == 0
    assert by_value[2.0].score.false_per_hour == pytest.approx(3600 / DURATION_S)
    assert result.recommended is by_value[3.0]
    assert by_value[3.0].score.median_latency_s == pytest.approx(3.0, abs=0.3)


def test_unlabelled_sessions_count_alerts_but_recommend_nothing(tmp_path: Path) -> None:
    plain = write_session(tmp_path / "plain", SEGMENTS)
    result = tune([load_session(plain)], Config(), [parse_grid(GRID)])
    assert result.recommended is None
    assert all(row.score is None for row in result.rows)
    assert result.rows[0].alerts_per_hour["looking_away"] == pytest.approx(3 * 3600 / DURATION_S)


def test_labelled_and_unlabelled_sessions_add_up(labelled: Path, tmp_path: Path) -> None:
    plain = write_session(tmp_path / "plain", SEGMENTS)
    sessions = [load_session(labelled), load_session(plain)]
    row = tune(sessions, Config(), [GridAxis("attention.looking_away_s", (3.0,))]).rows[0]
    assert row.alerts_per_hour["looking_away"] == pytest.approx((2 + 2) * 3600 / (2 * DURATION_S))
    assert row.score.duration_s == pytest.approx(DURATION_S)      # scored on the labelled one only


def test_score_labels_by_hand() -> None:
    spans = [Span("looking_away", 10.0, 13.0, 15.0),      # answers the distraction at 9..14
             Span("nodding_off", 30.0, 31.0, 33.0),       # overlaps no true label: false
             Span("no_face", 50.0, 53.0, 60.0),           # neither hit nor false
             Span("nodding_off", 70.0, 71.0, 72.0)]       # inside a reviewed false alert: false
    labels = [Label(9.0, 14.0, "distraction"), Label(40.0, 45.0, "drowsiness"), Label(69.0, 73.0, "false_alert")]
    score = score_labels(spans, labels, 3600.0)
    assert (score.true_labels, score.detected, score.false_alerts) == (2, 1, 2)
    assert score.recall == 0.5 and score.false_per_hour == 2.0
    assert score.latencies == (4.0,)
    assert (score + score).median_latency_s == 4.0 and (score + score).recall == 0.5


def test_recommend_prefers_recall_then_fewer_false_alerts() -> None:
    from monitor.tune import TuneRow
    rows = [TuneRow({"k": 1}, {}, LabelScore(4, 4, 2, 3600.0)),        # too many false alerts
            TuneRow({"k": 2}, {}, LabelScore(4, 3, 1, 3600.0, (2.0,))),
            TuneRow({"k": 3}, {}, LabelScore(4, 3, 0, 3600.0, (2.5,))),
            TuneRow({"k": 4}, {}, LabelScore(4, 2, 0, 3600.0, (1.0,)))]
    assert recommend(rows, 1.0).setting == {"k": 3}
    assert recommend(rows, 2.0).setting == {"k": 1}
    assert recommend(rows[:1], 1.0) is None


@pytest.mark.parametrize("text, values", [
    ("attention.looking_away_s=2:4:0.5", (2.0, 2.5, 3.0, 3.5, 4.0)),
    ("attention.hysteresis_deg=0.1:0.3:0.1", (0.1, 0.2, 0.3)),
    ("attention.nod_count=1:3:1", (1, 2, 3)),
    ("attention.yaw_away_deg=25,30,35", (25.0, 30.0, 35.0)),
    ("smoother.beta = 0:0:1", (0.0,)),
])
def test_parse_grid(text: str, values: tuple) -> None:
    axis = parse_grid(text)
    assert axis.values == values
    assert [type(v) for v in axis.values] == [type(v) for v in values]


@pytest.mark.parametrize("text, message", [
    ("attention.looking_away=1:2:1", "has no key 'looking_away'"),
    ("nosuch.key=1:2:1", "SECTION one of capture"),
    ("attention.looking_away_s=0:2:1", "out of range"),
    ("attention.nod_count=1:2:0.5", "whole number"),
    ("attention.looking_away_s=3:2:1", "STOP >= START"),
    ("attention.looking_away_s=1:2:0", "STEP > 0"),
    ("attention.looking_away_s", "KEY=START:STOP:STEP"),
    ("attention.looking_away_s=1:2", "three numbers"),
])
def test_parse_grid_errors_name_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_grid(text)


def test_grid_is_every_combination_and_clashing_settings_are_marked(labelled: Path) -> None:
    axes = [parse_grid("attention.sharing_total_s=20,40"), parse_grid("attention.looking_away_s=3,4")]
    assert settings_grid(axes) == [{"attention.sharing_total_s": 20.0, "attention.looking_away_s": 3.0},
                                   {"attention.sharing_total_s": 20.0, "attention.looking_away_s": 4.0},
                                   {"attention.sharing_total_s": 40.0, "attention.looking_away_s": 3.0},
                                   {"attention.sharing_total_s": 40.0, "attention.looking_away_s": 4.0}]
    result = tune([load_session(labelled)], Config(), axes)
    assert [row.error is None for row in result.rows] == [True, True, False, False]
    assert "sharing_window_s" in result.rows[2].error
    with pytest.raises(ConfigError):
        apply_setting(Config(), {"attention.sharing_total_s": 40.0})


def test_tune_command_prints_json_writes_the_config_and_leaves_the_session(labelled: Path, tmp_path: Path,
                                                                           capsys) -> None:
    base = Config().replace("attention", yaw_away_deg=35.0)
    base.save(labelled / "config.toml")
    before = snapshot(labelled)
    out = tmp_path / "tuned.toml"
    assert main(["tune", str(labelled), "--grid", GRID, "--json", "--write-config", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recommended"] == {"attention.looking_away_s": 3.0}
    assert len(data["rows"]) == 4 and data["rows"][1]["recall"] == 1.0
    tuned = Config.load(out)
    assert tuned.attention.looking_away_s == 3.0
    assert tuned.attention.yaw_away_deg == 35.0          # the rest is the session's own configuration
    assert snapshot(labelled) == before


def test_tune_command_table_and_its_errors(labelled: Path, tmp_path: Path, capsys) -> None:
    assert main(["tune", str(labelled), "--grid", GRID]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "recall" in lines[0] and "false/h" in lines[0]
    assert [line.split()[0] for line in lines if line.endswith("<- recommended")] == ["3.0"]
    assert main(["tune", str(labelled), "--grid", "attention.nope=1:2:1"]) == 2
    assert main(["tune", str(tmp_path / "missing"), "--grid", GRID]) == 3
    plain = write_session(tmp_path / "plain", SEGMENTS)
    assert main(["tune", str(plain), "--grid", GRID, "--write-config", str(tmp_path / "x.toml")]) == 2
    assert "nothing to recommend" in capsys.readouterr().out
    assert not (tmp_path / "x.toml").exists()
