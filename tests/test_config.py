import pytest

from monitor.config import Config, ConfigError, describe


def test_defaults_round_trip_through_toml(tmp_path):
    path = tmp_path / "c.toml"
    config = Config()
    config.attention.yaw_away_deg = 35.5
    config.save(path)
    assert Config.load(path) == config


def test_partial_file_takes_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[attention]\nlooking_away_s = 2\n")
    config = Config.load(path)
    assert config.attention.looking_away_s == 2.0 and isinstance(config.attention.looking_away_s, float)
    assert config.smoother == Config().smoother


@pytest.mark.parametrize("text, words", [
    ("[attention]\nyaw_away_deg = 500\n", ["attention.yaw_away_deg", "out of range", "1.0 to 90.0"]),
    ("[attention]\nyaw_away_deg = \"wide\"\n", ["attention.yaw_away_deg", "must be a number"]),
    ("[attention]\nyaw_away = 10\n", ["attention.yaw_away", "not a known key", "yaw_away_deg"]),
    ("[nonsense]\nx = 1\n", ["unknown section [nonsense]", "attention"]),
    ("[cascade]\nthreads = 1.5\n", ["cascade.threads", "whole number"]),
    ("[alerts]\nenabled = 1\n", ["alerts.enabled", "true or false"]),
    ("[recorder]\nvideo_fourcc = \"H264\"\n", ["recorder.video_fourcc", "MJPG"]),
    ("version = 7\n", ["version", "not supported"]),
    ("[attention\n", ["not valid TOML"]),
    # combinations under which a rule could never fire or end
    ("[attention]\nhysteresis_deg = 16\n", ["hysteresis_deg", "nod_drop_deg", "never come back"]),
    ("[attention]\nsharing_total_s = 40\n", ["sharing_total_s", "sharing_window_s"]),
])
def test_bad_values_name_the_key_and_what_is_allowed(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    for word in words:
        assert word in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Config.load(tmp_path / "none.toml")


def test_replace_validates():
    assert Config().replace("attention", looking_away_s=4).attention.looking_away_s == 4.0
    with pytest.raises(ConfigError):
        Config().replace("attention", looking_away_s=-1)


def test_every_key_has_a_range_or_type_and_help():
    for section, key, default, lo, hi, help_text in describe():
        assert help_text, f"{section}.{key} has no help"
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert lo is not None and hi is not None and lo <= default <= hi, f"{section}.{key}"
