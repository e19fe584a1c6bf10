"""Audio alerts: the sound policy on synthetic timelines, the tones, and real playback through ALSA."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from monitor.alerts import PRIORITY, AlertSoundPolicy, AudioAlerts, ToneRequest, make_tone
from monitor.config import AlertSettings, ConfigError

REPO = Path(__file__).resolve().parents[1]
RATE = 44100
SETTINGS = AlertSettings(volume=0.8, repeat_s=2.0, escalate_after_s=6.0, escalated_repeat_factor=2.0,
                         calm_gain=0.5)


def event(kind: str, phase: str, t: float) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, phase=phase, t=t, onset=t)


def run_timeline(policy: AlertSoundPolicy, events: list[SimpleNamespace], start: float, stop: float,
                 step: float = 0.25) -> list[tuple[float, ToneRequest]]:
    """Tick the policy like a pipeline would, feeding each event at its time."""
    played = []
    pending = sorted(events, key=lambda e: e.t)
    for i in range(round((stop - start) / step) + 1):
        t = start + i * step
        while pending and pending[0].t <= t:
            policy.on_event(pending.pop(0))
        played += [(t, request) for request in policy.due(t)]
    return played


# --- policy ------------------------------------------------------------------------------------

def test_a_glance_away_beeps_at_once_then_every_repeat_s():
    policy = AlertSoundPolicy(SETTINGS)
    played = run_timeline(policy, [event("looking_away", "start", 10.0)], 9.0, 15.0)
    assert [t for t, _ in played] == [10.0, 12.0, 14.0]
    assert all(r == ToneRequest("looking_away", False, 0.8 * 0.5) for _, r in played)


def test_a_long_look_away_escalates_louder_and_faster():
    policy = AlertSoundPolicy(SETTINGS)
    played = run_timeline(policy, [event("looking_away", "start", 10.0)], 10.0, 19.0)
    assert [(t, r.urgent) for t, r in played] == [
        (10.0, False), (12.0, False), (14.0, False),
        (16.0, True), (17.0, True), (18.0, True), (19.0, True)]
    assert {r.volume for t, r in played if r.urgent} == {0.8}


def test_escalation_plays_at_once_even_between_repeats():
    policy = AlertSoundPolicy(dataclasses.replace(SETTINGS, escalate_after_s=5.0))
    played = run_timeline(policy, [event("no_face", "start", 10.0)], 10.0, 16.0)
    assert [(t, r.urgent) for t, r in played] == [
        (10.0, False), (12.0, False), (14.0, False), (15.0, True), (16.0, True)]


def test_looking_back_stops_the_beeps():
    policy = AlertSoundPolicy(SETTINGS)
    played = run_timeline(policy, [event("looking_away", "start", 10.0), event("looking_away", "end", 11.0)],
                          10.0, 30.0)
    assert [t for t, _ in played] == [10.0]
    assert not policy.audible and policy.active == ()


def test_a_repeated_start_does_not_postpone_escalation():
    policy = AlertSoundPolicy(SETTINGS)
    played = run_timeline(policy, [event("looking_away", "start", 10.0), event("looking_away", "start", 13.0)],
                          10.0, 16.0)
    assert (16.0, True) in [(t, r.urgent) for t, r in played]


def test_an_end_without_start_is_ignored():
    policy = AlertSoundPolicy(SETTINGS)
    policy.on_event(event("no_face", "end", 1.0))
    assert policy.due(1.0) == []


def test_muted_is_silent_and_unmuting_sounds_at_once():
    policy = AlertSoundPolicy(SETTINGS)
    policy.on_event(event("looking_away", "start", 10.0))
    assert len(policy.due(10.0)) == 1
    policy.muted = True
    assert policy.due(10.5) == [] and policy.due(12.0) == []
    policy.muted = False
    assert [r.kind for r in policy.due(12.5)] == ["looking_away"]
    policy.muted = True
    policy.due(13.0)
    policy.muted = False
    assert [r.kind for r in policy.due(13.0)] == ["looking_away"]  # before the next repeat was due


def test_a_new_look_away_soon_after_the_last_one_beeps_at_once():
    policy = AlertSoundPolicy(SETTINGS)
    events = [event("looking_away", "start", 10.0), event("looking_away", "end", 10.5),
              event("looking_away", "start", 11.0)]
    played = run_timeline(policy, events, 10.0, 13.0)
    assert [(t, r.urgent) for t, r in played] == [(10.0, False), (11.0, False), (13.0, False)]


def test_disabled_in_settings_is_silent():
    policy = AlertSoundPolicy(dataclasses.replace(SETTINGS, enabled=False))
    policy.on_event(event("nodding_off", "start", 0.0))
    assert policy.due(0.0) == [] and not policy.audible


def test_drowsiness_wins_over_distraction_and_distraction_resumes_after():
    policy = AlertSoundPolicy(SETTINGS)
    events = [event("attention_sharing", "start", 10.0), event("looking_away", "start", 10.5),
              event("nodding_off", "start", 11.0), event("nodding_off", "end", 13.0)]
    played = run_timeline(policy, events, 10.0, 14.0)
    assert [(t, r.kind) for t, r in played] == [
        (10.0, "attention_sharing"), (10.5, "looking_away"), (11.0, "nodding_off"), (13.0, "looking_away")]


def test_priority_order_puts_nodding_off_first_for_every_combination():
    policy = AlertSoundPolicy(SETTINGS)
    for kind in reversed(PRIORITY):
        policy.on_event(event(kind, "start", 0.0))
        assert [r.kind for r in policy.due(0.0)] == [kind]
    assert policy.active == PRIORITY


def test_live_settings_change_the_next_tone():
    policy = AlertSoundPolicy(SETTINGS)
    policy.on_event(event("looking_away", "start", 0.0))
    policy.due(0.0)
    policy.set_settings(dataclasses.replace(SETTINGS, volume=0.2, repeat_s=0.5))
    assert policy.due(1.0) == []  # the period already scheduled still holds
    assert policy.due(2.0) == [ToneRequest("looking_away", False, 0.2 * 0.5)]
    assert policy.due(2.5) != []


@pytest.mark.parametrize("kind, phase, word", [("sneezing", "start", "kind"), ("no_face", "begin", "phase")])
def test_a_bad_event_names_what_is_allowed(kind, phase, word):
    with pytest.raises(ValueError, match=rf"{word} .*allowed: .*(no_face|start)"):
        AlertSoundPolicy(SETTINGS).on_event(event(kind, phase, 0.0))


# --- tones -------------------------------------------------------------------------------------

def spectrum(samples: np.ndarray) -> np.ndarray:
    magnitude = np.abs(np.fft.rfft(samples.astype(float), n=1 << 16))
    return magnitude / np.linalg.norm(magnitude)


def centroid_hz(samples: np.ndarray) -> float:
    magnitude = spectrum(samples)
    return float(np.sum(np.fft.rfftfreq(1 << 16, 1 / RATE) * magnitude) / np.sum(magnitude))


def dominant_hz(samples: np.ndarray) -> float:
    return float(np.fft.rfftfreq(1 << 16, 1 / RATE)[np.argmax(spectrum(samples))])


@pytest.mark.parametrize("kind", PRIORITY)
@pytest.mark.parametrize("urgent", [False, True])
def test_a_tone_is_int16_and_peaks_at_its_volume(kind, urgent):
    tone = make_tone(kind, urgent, 0.5, RATE)
    assert tone.dtype == np.int16 and tone.ndim == 1
    assert 0.1 * RATE < len(tone) < RATE
    assert abs(int(np.abs(tone.astype(int)).max()) - 0.5 * 32767) <= 2
    assert abs(int(tone[0])) < 0.01 * 32767 and abs(int(tone[-1])) < 0.01 * 32767  # no click


def test_each_kind_has_its_own_spectrum():
    spectra = {kind: spectrum(make_tone(kind, False, 0.8, RATE)) for kind in PRIORITY}
    for i, a in enumerate(PRIORITY):
        for b in PRIORITY[i + 1:]:
            assert spectra[a] @ spectra[b] < 0.2, (a, b)
    peaks = sorted(dominant_hz(make_tone(kind, False, 0.8, RATE)) for kind in PRIORITY)
    assert min(np.diff(peaks)) > 50


def test_drowsiness_is_harsher_than_distraction():
    def harmonic_share(samples: np.ndarray) -> float:
        # energy above 1.5x the fundamental: overtones make a tone sound harsh
        power = spectrum(samples) ** 2
        return float(power[np.fft.rfftfreq(1 << 16, 1 / RATE) > 1.5 * dominant_hz(samples)].sum())

    assert harmonic_share(make_tone("nodding_off", False, 0.8, RATE)) > 0.05
    for kind in ("looking_away", "attention_sharing", "no_face"):
        assert harmonic_share(make_tone(kind, False, 0.8, RATE)) < 0.01, kind


@pytest.mark.parametrize("kind", PRIORITY)
def test_urgent_is_higher_faster_and_louder(kind):
    calm_request, urgent_request = ToneRequest(kind, False, 0.8 * 0.5), ToneRequest(kind, True, 0.8)
    calm = make_tone(calm_request.kind, calm_request.urgent, calm_request.volume, RATE)
    urgent = make_tone(urgent_request.kind, urgent_request.urgent, urgent_request.volume, RATE)
    assert centroid_hz(urgent) > 1.15 * centroid_hz(calm)
    assert len(urgent) < 0.8 * len(calm)
    assert np.sqrt(np.mean(urgent.astype(float) ** 2)) > 1.5 * np.sqrt(np.mean(calm.astype(float) ** 2))


def test_zero_volume_is_silence_and_low_rates_do_not_alias():
    assert not make_tone("nodding_off", True, 0.0, RATE).any()
    # at 8 kHz the square-like overtones above 4 kHz would fold back; they must be left out
    tone = make_tone("nodding_off", True, 0.8, 8000)
    magnitude = np.abs(np.fft.rfft(tone.astype(float)))
    freqs = np.fft.rfftfreq(len(tone), 1 / 8000)
    assert magnitude[freqs < 1000].sum() < 0.05 * magnitude.sum()


@pytest.mark.parametrize("args, message", [
    (("beep", False, 0.5, RATE), "kind 'beep' is unknown"),
    (("no_face", False, 1.5, RATE), "volume 1.5 is out of range"),
    (("no_face", False, 0.5, 0), "sample rate 0"),
])
def test_make_tone_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        make_tone(*args)


# --- player with a fake backend ----------------------------------------------------------------

class FakeSound:
    def __init__(self, samples: np.ndarray) -> None:
        self.samples = samples
        self.stopped = False

    def is_playing(self) -> bool:
        return not self.stopped

    def stop(self) -> None:
        self.stopped = True


class FakeDevice:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sounds: list[FakeSound] = []
        self.attempts = 0

    def __call__(self, samples: np.ndarray, sample_rate: int) -> FakeSound:
        self.attempts += 1
        if self.fail:
            raise OSError("Error opening PCM device. -- CODE: -2")
        assert sample_rate == SETTINGS.sample_rate_hz
        self.sounds.append(FakeSound(samples))
        return self.sounds[-1]


def test_player_plays_repeats_and_stops_when_the_alert_ends():
    device = FakeDevice()
    alerts = AudioAlerts(SETTINGS, device)
    alerts.handle([event("looking_away", "start", 1.0)])
    for t in (1.0, 1.5, 3.0):
        alerts.tick(t)
    assert len(device.sounds) == 2 and device.sounds[0].stopped and alerts.playing
    assert np.array_equal(device.sounds[0].samples, make_tone("looking_away", False, 0.4, RATE))
    alerts.handle([event("looking_away", "end", 3.2)])
    assert device.sounds[1].stopped and not alerts.playing
    alerts.tick(10.0)
    assert len(device.sounds) == 2


def test_player_switches_tone_when_drowsiness_starts():
    device = FakeDevice()
    alerts = AudioAlerts(SETTINGS, device)
    alerts.handle([event("no_face", "start", 0.0)])
    alerts.tick(0.0)
    alerts.handle([event("nodding_off", "start", 0.5)])
    alerts.tick(0.5)
    assert device.sounds[0].stopped and not device.sounds[1].stopped
    assert np.array_equal(device.sounds[1].samples, make_tone("nodding_off", False, 0.4, RATE))


def test_mute_stops_at_once_and_volume_applies_to_the_next_tone():
    device = FakeDevice()
    alerts = AudioAlerts(SETTINGS, device)
    alerts.handle([event("no_face", "start", 0.0)])
    alerts.tick(0.0)
    alerts.mute(True)
    assert device.sounds[0].stopped
    alerts.tick(5.0)
    assert len(device.sounds) == 1
    alerts.set_volume(0.2)
    alerts.mute(False)
    alerts.tick(5.0)
    assert np.array_equal(device.sounds[1].samples, make_tone("no_face", False, 0.2 * 0.5, RATE))
    with pytest.raises(ConfigError, match=r"alerts.volume = 2.0 is out of range \(allowed: 0.0 to 1.0\)"):
        alerts.set_volume(2)


def test_close_stops_and_silences():
    device = FakeDevice()
    alerts = AudioAlerts(SETTINGS, device)
    alerts.handle([event("no_face", "start", 0.0)])
    alerts.tick(0.0)
    alerts.close()
    alerts.tick(100.0)
    assert device.sounds[0].stopped and len(device.sounds) == 1 and alerts.silent


def test_a_failing_device_warns_once_and_goes_silent(caplog):
    device = FakeDevice(fail=True)
    alerts = AudioAlerts(SETTINGS, device)
    with caplog.at_level(logging.WARNING, logger="monitor.alerts"):
        alerts.handle([event("nodding_off", "start", 0.0)])
        for i in range(40):
            alerts.tick(i * 0.5)
        alerts.handle([event("nodding_off", "end", 20.0)])
    assert device.attempts == 1 and alerts.silent and not alerts.playing
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no audio output device (Error opening PCM device" in warnings[0].getMessage()
    assert "alerts continue on screen and in the log" in warnings[0].getMessage()


def test_missing_simpleaudio_warns_once_and_no_audio_asks_nothing(caplog, monkeypatch):
    monkeypatch.setitem(sys.modules, "simpleaudio", None)  # makes `import simpleaudio` fail
    with caplog.at_level(logging.WARNING, logger="monitor.alerts"):
        alerts = AudioAlerts.from_settings(SETTINGS)
        alerts.handle([event("looking_away", "start", 0.0)])
        alerts.tick(0.0)
        quiet = AudioAlerts.from_settings(SETTINGS, enabled=False)
        quiet.handle([event("looking_away", "start", 0.0)])
        quiet.tick(0.0)
    assert alerts.silent and quiet.silent
    assert [r.getMessage()[:50] for r in caplog.records] == [
        "audio alerts are off: simpleaudio cannot be import"]


# --- real playback through ALSA ------------------------------------------------------------------

PLAYER_SCRIPT = textwrap.dedent("""
    import logging, sys, time
    from types import SimpleNamespace
    from monitor.alerts import AudioAlerts
    from monitor.config import AlertSettings

    warnings = []
    class Collect(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())
    logging.getLogger("monitor.alerts").addHandler(Collect(level=logging.WARNING))

    alerts = AudioAlerts.from_settings(AlertSettings(repeat_s=0.2, escalate_after_s=0.5))
    alerts.handle([SimpleNamespace(kind="nodding_off", phase="start", t=0.0)])
    for i in range(10):
        alerts.tick(i * 0.25)
    deadline = time.monotonic() + 20.0  # a generous bound for a slow box, not a timing check
    while alerts.playing and time.monotonic() < deadline:
        time.sleep(0.01)
    finished = not alerts.playing
    silent = alerts.silent
    alerts.handle([SimpleNamespace(kind="nodding_off", phase="end", t=3.0)])
    alerts.close()
    print("silent", silent, "finished", finished)
    print("warnings", len(warnings))
    for message in warnings:
        print("warning:", message)
""")


def run_player(tmp_path: Path, alsa_config: str) -> subprocess.CompletedProcess[str]:
    """ALSA reads its configuration once per process, hence a fresh interpreter per device."""
    pytest.importorskip("simpleaudio")
    if not Path("/usr/share/alsa/alsa.conf").is_file():
        pytest.skip("ALSA's configuration (/usr/share/alsa/alsa.conf) is not installed")
    conf = tmp_path / "asound.conf"
    conf.write_text("</usr/share/alsa/alsa.conf>\n" + alsa_config + "\n")
    env = {**os.environ, "ALSA_CONFIG_PATH": str(conf), "HOME": str(tmp_path),
           "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", PLAYER_SCRIPT], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_a_tone_plays_to_completion_on_alsas_null_device(tmp_path):
    result = run_player(tmp_path, "pcm.!default { type null }")
    assert result.returncode == 0, result.stderr
    assert "silent False finished True" in result.stdout, result.stdout + result.stderr
    assert "warnings 0" in result.stdout, result.stdout


def test_a_missing_device_warns_once_and_nothing_crashes(tmp_path):
    result = run_player(tmp_path, "pcm.!default { type hw card 31 }")
    assert result.returncode == 0, result.stderr
    assert "silent True finished True" in result.stdout, result.stdout + result.stderr
    assert "warnings 1" in result.stdout, result.stdout
    assert "warning: no audio output device (" in result.stdout
    assert "alerts continue on screen and in the log" in result.stdout
