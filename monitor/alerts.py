"""Audio alerts: which tone to play when (a pure policy), the tones themselves, and a player.

The pipeline thread calls `AudioAlerts.handle(events)` with the attention engine's alert events
and `AudioAlerts.tick(now)` once per frame, with `now` on the same clock as the events' `t`.
`simpleaudio.play_buffer` starts playback on its own thread and returns at once, so no extra
thread is needed here and playback never blocks the pipeline; the GUI thread may call `mute`
and `set_volume` at any time (a lock guards the shared state).

A machine without sound must still run the monitor: if simpleaudio cannot be imported or a
sound cannot be played, one warning is logged and the player goes silent; the alerts still
reach the screen and the log through the other sinks.

Running without a sound card (CI, containers, a headless box): point ALSA's default device at
its null plugin, which accepts and discards samples, so that the whole playback path runs::

    printf '</usr/share/alsa/alsa.conf>\\npcm.!default { type null }\\n' > /tmp/alsa-null.conf
    ALSA_CONFIG_PATH=/tmp/alsa-null.conf python run_monitor.py ...

(or put `pcm.!default { type null }` in `~/.asoundrc`). `tests/test_alerts.py` does exactly this
in a subprocess, since ALSA reads its configuration once per process.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from monitor.config import AlertSettings, check_value

log = logging.getLogger(__name__)

# Most urgent first: drowsiness beats everything, then the immediate danger of looking away,
# then the slower attention-sharing rule, then a face that may simply be hidden.
PRIORITY: tuple[str, ...] = ("nodding_off", "looking_away", "attention_sharing", "no_face")
PHASES: tuple[str, ...] = ("start", "end")

_INT16_FULL_SCALE = 32767
_MONO = 1
_BYTES_PER_SAMPLE = 2

# Sound design, not thresholds: each kind's notes as (frequency Hz, 0 for a gap; seconds) and
# the relative amplitudes of harmonics 1, 2, 3, ... The distraction family is pure sine beeps
# told apart by pitch and rhythm; drowsiness is a harsh square-like warble with no gaps.
_SINE: tuple[float, ...] = (1.0,)
_SQUARE_LIKE: tuple[float, ...] = (1.0, 0.0, 1 / 3, 0.0, 1 / 5)


@dataclass(frozen=True)
class _Pattern:
    notes: tuple[tuple[float, float], ...]
    harmonics: tuple[float, ...]


_PATTERNS: dict[str, _Pattern] = {
    "looking_away": _Pattern(((880.0, 0.12), (0.0, 0.08), (880.0, 0.12)), _SINE),
    "attention_sharing": _Pattern(((740.0, 0.09), (0.0, 0.07), (740.0, 0.09), (0.0, 0.07),
                                   (740.0, 0.09)), _SINE),
    "no_face": _Pattern(((523.0, 0.35),), _SINE),
    "nodding_off": _Pattern(((1200.0, 0.1), (1500.0, 0.1)) * 3, _SQUARE_LIKE),
}
_URGENT_PITCH = 2 ** (4 / 12)  # a major third higher: clearly "the same alert, but worse"
_URGENT_TEMPO = 0.7  # notes and gaps this much shorter
_RAMP_S = 0.005  # fade in/out of each note, so notes start and end without clicks


@dataclass(frozen=True)
class ToneRequest:
    """One tone to start now; `volume` already includes the calm/escalated gain."""

    kind: str
    urgent: bool
    volume: float


class AlertEventLike(Protocol):
    kind: str
    phase: str
    t: float


class AlertSoundPolicy:
    """Decides which tone to play when, from alert events and the time passed in.

    Only the most urgent active alert sounds. Its tone repeats every `repeat_s`; once it has
    lasted `escalate_after_s` it turns urgent (louder, higher, `escalated_repeat_factor` times as
    often). A change of what should sound (another alert wins, or escalation) plays at once.
    """

    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self.muted = False
        self._started: dict[str, float] = {}
        self._last: tuple[str, bool] | None = None
        self._next_t = 0.0

    def set_settings(self, settings: AlertSettings) -> None:
        self.settings = settings

    def on_event(self, event: AlertEventLike) -> None:
        if event.kind not in PRIORITY:
            raise ValueError(f"alert event kind {event.kind!r} is unknown (allowed: {', '.join(PRIORITY)})")
        if event.phase not in PHASES:
            raise ValueError(f"alert event phase {event.phase!r} is unknown (allowed: {', '.join(PHASES)})")
        if event.phase == "start":
            # A repeated start keeps the first one's time, so escalation is not postponed.
            self._started.setdefault(event.kind, float(event.t))
        else:
            self._started.pop(event.kind, None)

    @property
    def active(self) -> tuple[str, ...]:
        """Active alert kinds, most urgent first."""
        return tuple(kind for kind in PRIORITY if kind in self._started)

    @property
    def audible(self) -> bool:
        """Whether anything should be sounding now; when not, a playing tone should stop."""
        return bool(self._started) and not self.muted and self.settings.enabled

    def due(self, t: float) -> list[ToneRequest]:
        """The tones to start at time `t` (at most one: the most urgent active alert's)."""
        if not self.audible:
            # Forget what played, so that unmuting or a new alert sounds at once.
            self._last = None
            return []
        kind = self.active[0]
        urgent = t - self._started[kind] >= self.settings.escalate_after_s
        if (kind, urgent) == self._last and t < self._next_t:
            return []
        period = self.settings.repeat_s
        gain = self.settings.calm_gain
        if urgent:
            period /= self.settings.escalated_repeat_factor
            gain = 1.0
        self._last = (kind, urgent)
        self._next_t = t + period
        return [ToneRequest(kind, urgent, self.settings.volume * gain)]


@lru_cache(maxsize=64)
def _cached_tone(kind: str, urgent: bool, volume: float, sample_rate: int) -> np.ndarray:
    pattern = _PATTERNS[kind]
    pitch = _URGENT_PITCH if urgent else 1.0
    tempo = _URGENT_TEMPO if urgent else 1.0
    nyquist = sample_rate / 2
    pieces = []
    for freq, seconds in pattern.notes:
        n = max(1, round(seconds * tempo * sample_rate))
        if freq == 0.0:
            pieces.append(np.zeros(n))
            continue
        t = np.arange(n) / sample_rate
        wave = np.zeros(n)
        for order, amp in enumerate(pattern.harmonics, start=1):
            if amp and order * freq * pitch < nyquist:  # above Nyquist would alias into a wrong pitch
                wave += amp * np.sin(2 * np.pi * order * freq * pitch * t)
        wave /= np.max(np.abs(wave))
        ramp = min(n // 2, round(_RAMP_S * sample_rate))
        if ramp:
            fade = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, ramp))
            wave[:ramp] *= fade
            wave[-ramp:] *= fade[::-1]
        pieces.append(wave)
    samples = np.round(np.concatenate(pieces) * volume * _INT16_FULL_SCALE).astype(np.int16)
    samples.flags.writeable = False  # shared by the cache
    return samples


def make_tone(kind: str, urgent: bool, volume: float, sample_rate: int) -> np.ndarray:
    """Mono int16 samples of one alert tone, peaking at `volume` of full scale.

    The urgent variant of a kind keeps its rhythm but is higher and faster, so a driver hears
    the same alert getting worse rather than a new one.
    """
    if kind not in _PATTERNS:
        raise ValueError(f"tone kind {kind!r} is unknown (allowed: {', '.join(_PATTERNS)})")
    if not 0.0 <= volume <= 1.0:
        raise ValueError(f"tone volume {volume!r} is out of range (allowed: 0.0 to 1.0)")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample rate {sample_rate!r} must be a positive whole number of Hz")
    return _cached_tone(kind, bool(urgent), float(volume), sample_rate)


class Sound(Protocol):
    def is_playing(self) -> bool: ...

    def stop(self) -> None: ...


PlayFn = Callable[[np.ndarray, int], Sound]
"""Starts mono int16 samples at a sample rate without blocking; raises if it cannot."""


def simpleaudio_player() -> PlayFn | None:
    """simpleaudio's non-blocking `play_buffer`, or None (and one warning) if it is missing."""
    try:
        import simpleaudio
    except ImportError as exc:
        log.warning("audio alerts are off: simpleaudio cannot be imported (%s): "
                    "alerts continue on screen and in the log", exc)
        return None

    def play(samples: np.ndarray, sample_rate: int) -> Sound:
        return simpleaudio.play_buffer(samples, _MONO, _BYTES_PER_SAMPLE, sample_rate)

    return play


class AudioAlerts:
    """Plays the policy's tones; `play=None` is a silent player (`--no-audio`, no device)."""

    def __init__(self, settings: AlertSettings, play: PlayFn | None) -> None:
        self._policy = AlertSoundPolicy(settings)
        self._play = play
        self._sound: Sound | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: AlertSettings, enabled: bool = True) -> "AudioAlerts":
        """`enabled=False` (e.g. `--no-audio`) never touches the audio system at all."""
        return cls(settings, simpleaudio_player() if enabled else None)

    @property
    def silent(self) -> bool:
        """True when nothing can ever play: no backend, a failed device, or closed."""
        return self._play is None

    @property
    def playing(self) -> bool:
        with self._lock:
            return self._sound is not None and bool(self._safe(self._sound.is_playing, False))

    def handle(self, events: Iterable[AlertEventLike]) -> None:
        with self._lock:
            for event in events:
                self._policy.on_event(event)
            self._stop_unless_audible()

    def tick(self, t: float) -> None:
        with self._lock:
            requests = self._policy.due(t)
            self._stop_unless_audible()
            for request in requests:
                self._start(request)

    def mute(self, muted: bool) -> None:
        with self._lock:
            self._policy.muted = bool(muted)
            self._stop_unless_audible()

    def set_volume(self, volume: float) -> None:
        """Applies from the next tone; a bad value raises naming the allowed range."""
        volume_field = next(f for f in dataclasses.fields(AlertSettings) if f.name == "volume")
        volume = check_value(volume_field, volume, "alerts.volume")
        with self._lock:
            self._policy.set_settings(dataclasses.replace(self._policy.settings, volume=volume))

    def set_settings(self, settings: AlertSettings) -> None:
        with self._lock:
            self._policy.set_settings(settings)
            self._stop_unless_audible()

    def close(self) -> None:
        with self._lock:
            self._stop()
            self._play = None

    def _start(self, request: ToneRequest) -> None:
        self._stop()  # never mix two tones: the new one replaces whatever still plays
        if self._play is None:
            return
        rate = self._policy.settings.sample_rate_hz
        samples = make_tone(request.kind, request.urgent, request.volume, rate)
        try:
            self._sound = self._play(samples, rate)
        # Any failure of the audio system (no device, busy device, bad driver) must leave the
        # monitor running: warn once and go silent.
        except Exception as exc:
            log.warning("no audio output device (%s): alerts continue on screen and in the log", exc)
            self._play = None

    def _stop_unless_audible(self) -> None:
        if not self._policy.audible:
            self._stop()

    def _stop(self) -> None:
        if self._sound is not None:
            self._safe(self._sound.stop, None)
            self._sound = None

    @staticmethod
    def _safe(call: Callable[[], object], fallback: object) -> object:
        # A sound that cannot be queried or stopped has nothing left to do.
        try:
            return call()
        except Exception:
            return fallback
