"""`run_monitor.py scenarios`: the story suite as a command (its stories are tested one by one in
test_attention.py, which runs every entry of STORIES)."""

from pathlib import Path

import numpy as np
import pytest

from monitor.cli import main
from monitor.config import AttentionSettings, ConfigError
from monitor.scenarios import STORIES, run_scenario, run_suite
from monitor.session_tools import parse_fps, scenario_table

SETTINGS = AttentionSettings()


def test_all_stories_pass_at_the_default_frame_rates(capsys) -> None:
    assert main(["scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"{3 * len(STORIES)}/{3 * len(STORIES)} passed"
    rows = [line.split() for line in lines[1:-1]]
    assert {(row[0], row[1]) for row in rows} == {(name, fps) for name in STORIES for fps in ("10", "15", "30")}
    assert all(row[2] == "PASS" for row in rows)
    head_turned = next(line for line in lines if line.startswith("head_turned"))
    latency = float(head_turned.split("looking_away ")[1].rstrip("s"))
    assert SETTINGS.looking_away_s <= latency <= 3.5          # ADDW: a warning within 3.5 s


def test_a_configuration_that_breaks_a_story_fails_the_suite(tmp_path: Path, capsys) -> None:
    """Sharing after 3 s off the road makes every long look a sharing episode as well."""
    config = tmp_path / "c.toml"
    config.write_text("[attention]\nsharing_total_s = 3.0\n")
    assert main(["scenarios", "--fps", "10", "--config", str(config), "--only", "head_turned,mirror_checker"]) == 1
    out = capsys.readouterr().out
    assert "head_turned" in out and "FAIL" in out and "unexpected attention_sharing" in out
    assert out.splitlines()[-1] == "1/2 passed"


@pytest.mark.parametrize("args", [["--fps", "ten"], ["--fps", "0"], ["--fps", ""], ["--only", "nobody"]])
def test_bad_arguments_are_usage_errors(args: list[str], capsys) -> None:
    assert main(["scenarios", *args]) == 2


def test_parse_fps() -> None:
    assert parse_fps("10, 15,30") == [10.0, 15.0, 30.0]
    with pytest.raises(ConfigError, match="positive frame rates"):
        parse_fps("-5")


def test_run_suite_runs_each_story_at_each_rate_reproducibly() -> None:
    first = run_suite(SETTINGS, [10.0, 30.0], seed=3, names=["attention_sharer"])
    again = run_suite(SETTINGS, [10.0, 30.0], seed=3, names=["attention_sharer"])
    assert [fps for fps, _ in first] == [10.0, 30.0]
    assert [r.events for _, r in first] == [r.events for _, r in again]
    with pytest.raises(ValueError, match="allowed: attentive_driver"):
        run_suite(SETTINGS, [10.0], seed=0, names=["nobody"])


def test_table_shows_failures_and_missing_alerts() -> None:
    scenario = STORIES["head_turned"](SETTINGS, 10.0, np.random.default_rng(0))
    strict = AttentionSettings(looking_away_s=30.0, sharing_total_s=30.0)    # never alerts on this story
    result = run_scenario(scenario, strict)
    lines = scenario_table([(10.0, result)])
    assert "FAIL" in lines[1] and "looking_away -" in lines[1]
    assert any("no looking_away alert" in line for line in lines)
    assert lines[-1] == "0/1 passed"


@pytest.mark.parametrize("fps", [10.0, 15.0, 30.0])
def test_shoulder_check_turns_past_the_detector_and_does_not_alert(fps: float) -> None:
    scenario = STORIES["shoulder_checker"](SETTINGS, fps, np.random.default_rng(0))
    lost = [s for s in scenario.samples if not s.face]
    far = [s for s in scenario.samples if s.face and abs(s.yaw - 8.0) > SETTINGS.yaw_away_deg]
    assert lost and far                      # the face is lost at the far end, seen turning on the way
    result = run_scenario(scenario, SETTINGS)
    assert result.passed and result.events == []
