"""The attention engine: head-pose samples in, driver state and alert events out.

A pure state machine fed one `PoseSample` at a time. It never reads a clock: time is the
samples' own `t`, so a live run and a replay of its recording raise the same alerts.

Time model. A sample's state (face or not, on or off the road, head dropped or not) holds until
the next sample. When a sample arrives, the timed rules are checked for the interval that just
ended, and then the new sample's pose is applied. While the pose is unknown (no face, or a face
without a pose estimate), the last seen pose holds. A driver who turned beyond what the detector
sees is still looking away, and a head that dropped out of view is still dropped. A sample whose
`t` is not after the previous one is ignored.

Rules (every number is a key of `AttentionSettings`; angles are deviations from the neutral pose):

- calibration: the neutral (yaw, pitch) is the median over the first `calibration_s` seconds of
  time *with a pose*, so an offset camera, or a glance during calibration, does not bias it.
  `calibration_s == 0` takes `neutral_yaw_deg`/`neutral_pitch_deg` at once. While calibrating, the
  head-pose rules are off and `no_face` is on.
- road zone: |dyaw| <= yaw_away_deg and -pitch_down_deg <= dpitch <= pitch_up_deg. Leaving needs
  crossing a threshold. Coming back needs being `hysteresis_deg` inside all of them, so a head
  hovering at a threshold does not flap.
- looking_away: off the road continuously for `looking_away_s`. Onset = when it left the road.
  Ends when back on the road.
- attention_sharing (Euro NCAP "visual attention time sharing"): off-road time within the sliding
  `sharing_window_s` reaches `sharing_total_s`. Onset = start of the earliest glance still counted.
  `sharing_reset_s` continuously on the road clears the count and ends the alert. This catches the
  driver whose glances are each too short for looking_away.
- nodding_off: a *drop* is pitch falling by `nod_drop_deg` within `nod_drop_within_s` to at least
  `nod_drop_deg` below neutral. Its start is the last sample from which the head fell that far,
  less `hysteresis_deg` (so that noise on the plateau before the fall does not make it early). A
  drop held for `nod_hold_s` alerts (onset = drop start) until the head is back up, that is within
  `nod_drop_deg - hysteresis_deg` of neutral. Separately, `nod_count` drops whose starts fall within
  `nod_window_s` alert for `nod_alert_s` (onset = first of them). Those drops are then used up, so
  the same drops never trigger twice, and later drops can only extend an alert already running.
- no_face: no face for `no_face_s`. Onset = first face-less sample. Ends when a face returns.
  Losing the face does not end looking_away (the last pose holds), so events stay well formed.
- Alerts of one kind never overlap: every start is followed by exactly one end, and `close(t)`
  ends whatever is still active when a run stops.
- A sideways or upward glance shorter than `looking_away_s` never alerts on its own. Mirror checks
  (1-2 s against the default 3 s) alert only by adding up under the attention-sharing rule. A
  glance *down* is different: a fast one of `nod_drop_deg` or more, held for `nod_hold_s`, is a held
  head drop (see the known limit below).

`state` is the most severe active alert. The order is nodding_off > looking_away >
attention_sharing > no_face, the same as the audio alerts: drowsiness first, then the immediate
danger of eyes off the road, then the slower sharing pattern, then a face that may only be hidden.
With no alert, the state is `calibrating` while calibration runs and `attentive` after it.

Known limit: head pose alone cannot tell a driver nodding off from one looking down at a phone
in the lap. A fast look down that is held is a held head drop. The phone-in-lap case raises
looking_away after `looking_away_s`, but it also raises nodding_off after `nod_hold_s`, earlier
and with the higher priority, so the state reads "nodding off". That label is wrong, but the
failure is the safe kind: the driver still gets the most urgent alert. Separating the two needs
the eyes (an eyelid or gaze signal), which this head-pose model does not have.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import statistics
from collections import deque
from dataclasses import dataclass
from enum import Enum

from monitor.config import AttentionSettings, check_value


class State(str, Enum):
    CALIBRATING = "calibrating"
    ATTENTIVE = "attentive"
    LOOKING_AWAY = "looking_away"
    ATTENTION_SHARING = "attention_sharing"
    NODDING_OFF = "nodding_off"
    NOT_VISIBLE = "no_face"


# Alert kinds, most severe first; each is also the value of its State.
PRIORITY: tuple[str, ...] = ("nodding_off", "looking_away", "attention_sharing", "no_face")
# The kinds judged from the head pose, which therefore stop when a new calibration starts.
HEAD_POSE_KINDS: tuple[str, ...] = ("nodding_off", "looking_away", "attention_sharing")
PHASES: tuple[str, ...] = ("start", "end")


@dataclass(frozen=True)
class PoseSample:
    """One frame's driver pose. With a face, the angles are either all known or all None: the
    latter when the pose network is untrained (the face still counts as visible)."""

    t: float
    face: bool
    yaw: float | None
    pitch: float | None
    roll: float | None

    def __post_init__(self) -> None:
        if not isinstance(self.t, numbers.Real) or not math.isfinite(self.t):
            raise ValueError(f"PoseSample.t = {self.t!r} must be a finite number of seconds")
        angles = {"yaw": self.yaw, "pitch": self.pitch, "roll": self.roll}
        if not self.face:
            given = [name for name, a in angles.items() if a is not None]
            if given:
                raise ValueError(f"PoseSample without a face must have no angles, got {', '.join(given)}")
        elif any(a is not None for a in angles.values()):
            bad = [f"{name}={a!r}" for name, a in angles.items()
                   if not isinstance(a, numbers.Real) or not math.isfinite(a)]
            if bad:
                raise ValueError(f"PoseSample angles must be finite degrees, or all None; got {', '.join(bad)}")

    @property
    def has_pose(self) -> bool:
        return self.face and self.yaw is not None


@dataclass(frozen=True)
class AlertEvent:
    kind: str
    phase: str
    t: float          # when the event was raised
    onset: float      # when the condition began (the same for a start and its end)

    def __post_init__(self) -> None:
        if self.kind not in PRIORITY:
            raise ValueError(f"AlertEvent.kind = {self.kind!r} is not allowed (allowed: {', '.join(PRIORITY)})")
        if self.phase not in PHASES:
            raise ValueError(f"AlertEvent.phase = {self.phase!r} is not allowed (allowed: {', '.join(PHASES)})")

    def to_json(self) -> dict[str, str | float]:
        return {"type": "alert", "kind": self.kind, "phase": self.phase,
                "t": round(self.t, 3), "onset": round(self.onset, 3)}


def check_settings(settings: AttentionSettings) -> AttentionSettings:
    """Ranges as in the config, plus the combinations under which a rule could never fire or end."""
    if not isinstance(settings, AttentionSettings):
        raise TypeError(f"expected AttentionSettings, got {type(settings).__name__}")
    for f in dataclasses.fields(settings):
        check_value(f, getattr(settings, f.name), f"attention.{f.name}")
    settings.check()
    return settings


class _Alerts:
    """The active alerts and their onsets; keeps events well formed (no double start or end)."""

    def __init__(self) -> None:
        self.onsets: dict[str, float] = {}

    def start(self, kind: str, t: float, onset: float, out: list[AlertEvent]) -> None:
        if kind not in self.onsets:
            self.onsets[kind] = onset
            out.append(AlertEvent(kind, "start", t, onset))

    def end(self, kind: str, t: float, out: list[AlertEvent]) -> None:
        if kind in self.onsets:
            out.append(AlertEvent(kind, "end", t, self.onsets.pop(kind)))


class _GlanceWindow:
    """Off-road intervals since the attention-sharing count was last cleared."""

    def __init__(self) -> None:
        self._closed: deque[tuple[float, float]] = deque()
        self._open: float | None = None

    def leave_road(self, t: float) -> None:
        self._open = t

    def return_to_road(self, t: float) -> None:
        if self._open is not None:
            self._closed.append((self._open, t))
            self._open = None

    def clear(self) -> None:
        self._closed.clear()

    def _spans(self, t: float, window_s: float) -> list[tuple[float, float]]:
        lo = t - window_s
        while self._closed and self._closed[0][1] <= lo:
            self._closed.popleft()
        spans = list(self._closed) + ([(self._open, t)] if self._open is not None else [])
        return [(max(start, lo), end) for start, end in spans if end > lo]

    def off_time(self, t: float, window_s: float) -> float:
        return sum(end - start for start, end in self._spans(t, window_s))

    def first_start(self, t: float, window_s: float) -> float:
        return self._spans(t, window_s)[0][0]


class _HeadRules:
    """Per-calibration state of the head-pose rules, thrown away whenever they restart."""

    def __init__(self) -> None:
        self.off_since: float | None = None       # left the road at; None while on it
        self.on_since: float | None = None        # back on the road at; None while off or unknown
        self.glances = _GlanceWindow()
        self.pitch_history: deque[tuple[float, float]] = deque()   # (t, dpitch) within nod_drop_within_s
        self.drop_start: float | None = None      # the head is down since this drop; None when up
        self.drop_seen_at = 0.0                   # when that drop was recognised
        self.held = False                         # the held-drop alert is on
        self.recent_drops: deque[float] = deque() # starts of drops not yet used by the count rule
        self.count_until: float | None = None     # the repeated-drops alert runs until then


class AttentionEngine:
    def __init__(self, settings: AttentionSettings) -> None:
        self._settings = check_settings(settings)
        self._alerts = _Alerts()
        self._last_t: float | None = None
        self._pose_prev = False           # the previous sample had a pose (its state holds)
        self._lost_since: float | None = None
        self._restarted = False           # recalibrate() was called since the last sample
        self._start_calibration()

    # ---- public API -------------------------------------------------------------------------

    @property
    def state(self) -> State:
        for kind in PRIORITY:
            if kind in self._alerts.onsets:
                return State(kind)
        return State.CALIBRATING if self._neutral is None else State.ATTENTIVE

    @property
    def neutral(self) -> tuple[float, float] | None:
        return self._neutral

    @property
    def calibration_progress(self) -> float:
        if self._neutral is not None:
            return 1.0
        return min(1.0, self._pose_time / self._settings.calibration_s)

    @property
    def active(self) -> frozenset[str]:
        return frozenset(self._alerts.onsets)

    def deviation(self, sample: PoseSample) -> tuple[float, float] | None:
        if self._neutral is None or not sample.has_pose:
            return None
        return sample.yaw - self._neutral[0], sample.pitch - self._neutral[1]

    def set_settings(self, settings: AttentionSettings) -> None:
        """Live tuning: running timers and the calibration are kept. With `calibration_s == 0`
        the neutral keys are the calibration, so they apply at once."""
        self._settings = check_settings(settings)
        if settings.calibration_s == 0:
            self._neutral = (settings.neutral_yaw_deg, settings.neutral_pitch_deg)
            self._calibration = []

    def recalibrate(self) -> None:
        """Start a new calibration from the next sample; head-pose alerts end at that sample."""
        self._start_calibration()
        self._restarted = self._last_t is not None

    def update(self, sample: PoseSample) -> list[AlertEvent]:
        if self._last_t is not None and sample.t <= self._last_t:
            return []
        events: list[AlertEvent] = []
        if self._last_t is not None:
            self._elapse(sample.t, events)
        self._apply(sample, events)
        self._last_t = sample.t
        return events

    def close(self, t: float) -> list[AlertEvent]:
        """End the run: every active alert ends at `t`; the calibration is kept for a next run."""
        if not math.isfinite(t) or (self._last_t is not None and t < self._last_t):
            raise ValueError(f"close(t={t!r}): t must be finite and not before the last sample "
                             f"(t={self._last_t})")
        events: list[AlertEvent] = []
        for kind in PRIORITY:
            self._alerts.end(kind, t, events)
        self._rules = _HeadRules()
        self._pose_prev, self._lost_since, self._restarted = False, None, False
        self._last_t = t
        return events

    # ---- the state machine ------------------------------------------------------------------

    def _start_calibration(self) -> None:
        self._rules = _HeadRules()
        self._calibration: list[tuple[float, float]] = []
        self._pose_time = 0.0
        s = self._settings
        self._neutral = (s.neutral_yaw_deg, s.neutral_pitch_deg) if s.calibration_s == 0 else None

    def _elapse(self, t: float, events: list[AlertEvent]) -> None:
        """Rules on the interval since the last sample, during which that sample's state held."""
        s, alerts = self._settings, self._alerts
        if self._lost_since is not None and t - self._lost_since >= s.no_face_s:
            alerts.start("no_face", t, self._lost_since, events)
        if self._restarted:
            self._restarted = False
            for kind in HEAD_POSE_KINDS:
                alerts.end(kind, t, events)
            return
        if self._neutral is None:
            if self._pose_prev:
                self._pose_time += t - self._last_t
            if self._pose_time >= s.calibration_s and self._calibration:
                yaws, pitches = zip(*self._calibration)
                self._neutral = (statistics.median(yaws), statistics.median(pitches))
                self._calibration = []
            return
        r = self._rules
        if r.off_since is not None and t - r.off_since >= s.looking_away_s:
            alerts.start("looking_away", t, r.off_since, events)
        if r.on_since is not None and t - r.on_since >= s.sharing_reset_s:
            r.glances.clear()
            alerts.end("attention_sharing", t, events)
        if r.glances.off_time(t, s.sharing_window_s) >= s.sharing_total_s:
            alerts.start("attention_sharing", t, r.glances.first_start(t, s.sharing_window_s), events)
        if r.drop_start is not None and t - r.drop_seen_at >= s.nod_hold_s:
            r.held = True
            alerts.start("nodding_off", t, r.drop_start, events)
        if r.count_until is not None and t >= r.count_until:
            r.count_until = None
            self._end_nodding_if_over(t, events)

    def _apply(self, sample: PoseSample, events: list[AlertEvent]) -> None:
        t = sample.t
        if sample.face:
            self._alerts.end("no_face", t, events)
            self._lost_since = None
        elif self._lost_since is None:
            self._lost_since = t
        self._pose_prev = sample.has_pose
        if not sample.has_pose:
            return
        if self._neutral is None:
            self._calibration.append((sample.yaw, sample.pitch))
            return
        dyaw, dpitch = self.deviation(sample)
        self._update_road(t, dyaw, dpitch, events)
        self._update_drops(t, dpitch, events)

    def _update_road(self, t: float, dyaw: float, dpitch: float, events: list[AlertEvent]) -> None:
        s, r = self._settings, self._rules
        if r.off_since is None:
            if outside_road(dyaw, dpitch, s, 0.0):
                r.off_since, r.on_since = t, None
                r.glances.leave_road(t)
            elif r.on_since is None:
                r.on_since = t
        elif not outside_road(dyaw, dpitch, s, s.hysteresis_deg):
            r.off_since, r.on_since = None, t
            r.glances.return_to_road(t)
            self._alerts.end("looking_away", t, events)

    def _update_drops(self, t: float, dpitch: float, events: list[AlertEvent]) -> None:
        s, r = self._settings, self._rules
        while r.pitch_history and r.pitch_history[0][0] < t - s.nod_drop_within_s:
            r.pitch_history.popleft()
        history = list(r.pitch_history)
        r.pitch_history.append((t, dpitch))
        if r.drop_start is not None:
            if dpitch >= -(s.nod_drop_deg - s.hysteresis_deg):
                r.drop_start, r.held = None, False
                self._end_nodding_if_over(t, events)
            return
        if dpitch > -s.nod_drop_deg:
            return
        if not any(pi >= dpitch + s.nod_drop_deg for _, pi in history):
            return
        # Its start: the last sample (nearly) that far above, allowing for noise on the way down.
        r.drop_start = max(ti for ti, pi in history if pi >= dpitch + s.nod_drop_deg - s.hysteresis_deg)
        r.drop_seen_at = t
        r.recent_drops.append(r.drop_start)
        while r.recent_drops and r.recent_drops[0] < t - s.nod_window_s:
            r.recent_drops.popleft()
        if len(r.recent_drops) >= s.nod_count:
            r.count_until = t + s.nod_alert_s
            self._alerts.start("nodding_off", t, r.recent_drops[0], events)
            r.recent_drops.clear()

    def _end_nodding_if_over(self, t: float, events: list[AlertEvent]) -> None:
        r = self._rules
        if not r.held and r.count_until is None:
            self._alerts.end("nodding_off", t, events)


def outside_road(dyaw: float, dpitch: float, s: AttentionSettings, margin: float) -> bool:
    """Outside the road zone shrunk by `margin` on every side (the hysteresis on the way back)."""
    return (abs(dyaw) > s.yaw_away_deg - margin
            or dpitch < -(s.pitch_down_deg - margin)
            or dpitch > s.pitch_up_deg - margin)
