"""Synthetic head-pose stories for the attention engine, and a judge of its alerts on them.

Each story is one driver behaviour, such as checking mirrors, reading a phone in the lap or
nodding off. It is a piecewise-linear head path relative to the neutral pose, sampled at a given
frame rate with timestamp jitter and about 1 degree of angle noise from a seeded generator, so
any failure can be reproduced. Every story opens with an attentive calibration period, filmed by
a camera that is off-axis, as beside a steering wheel (neutral yaw 8 deg, pitch -5 deg).

Amplitudes and durations come from the `AttentionSettings`, so a story keeps its meaning under
tuned settings: a head turn goes past `yaw_away_deg`, and a long look lasts past `looking_away_s`.
The expectations are worked out from the same path and settings: which alerts, when each
condition begins, when its alert is due and when it should end. Stories assume the rules keep
their default order of durations (a glance < looking_away_s < sharing_total_s < sharing_window_s).

Pure: no I/O. The `scenarios` command prints `run_scenario` results as a pass/fail table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from monitor.attention import PRIORITY, AlertEvent, AttentionEngine, PoseSample, check_settings
from monitor.config import AttentionSettings

# The look of the data.
CAMERA_OFFSET_DEG = (8.0, -5.0)    # neutral (yaw, pitch) seen by a camera beside the wheel
NOISE_DEG = 1.0                    # angle noise of the pose estimate (standard deviation)
JITTER_FRACTION = 0.1              # timestamp jitter, as a fraction of the frame period
NOISY_JITTER_FRACTION = 0.4        # ... for the noisy detector story
DROPPED_FRACTION = 0.2             # frames lost by the noisy detector
# The pace of a driver.
LEAD_IN_S = 2.0                    # attentive time after calibration, before anything happens
TAIL_S = 5.0                       # attentive time at the end, so that alerts can end
TURN_S = 0.3                       # a head turn (or a quick drop) takes this long
LOOK_DOWN_S = 0.5                  # a deliberate look down to the lap, or back up
HEAD_TURN_DEG = 40.0               # a clear head turn ...
PHONE_PITCH_DEG = 35.0             # ... and a look down to a phone in the lap
PAST_DEG = 10.0                    # a deliberate movement goes at least this far past a threshold
SWAY_FRACTION = 1 / 6              # an attentive head wanders within this share of the road zone
SWAY_STEP_S = 2.0                  # ... changing direction this often
ATTENTIVE_S = 60.0                 # length of the attentive story
MIRROR_GLANCE_S = (1.0, 1.5)       # a mirror check keeps the head away this long
MIRROR_GLANCES = 12
SHOULDER_TURN_DEG = 80.0           # a shoulder check turns the head past what the detector sees ...
SHOULDER_CHECK_S = 1.2             # ... for this long in all, the face lost at the far end
SHOULDER_CHECKS = 4
SHARER_GLANCE_FRACTION = 2 / 3     # an attention sharer's glances last this share of looking_away_s
HELD_EXTRA_S = 2.0                 # a held look or drop lasts this much past its rule's duration
# How far 3 sigma of angle noise can move a threshold crossing on the stories' slowest ramp.
TIMING_SLACK_S = 0.1


@dataclass(frozen=True)
class Expected:
    onset: float              # when the condition begins (the event's `onset`)
    due: float                # when the rule is met, i.e. when the start alert belongs
    end: float | None         # when the alert should end; None: it lasts to the end of the story
    tolerance_s: float        # how far sampled times may land from these continuous ones


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    samples: list[PoseSample]
    expect: dict[str, Expected] = field(default_factory=dict)   # kinds absent here must not alert


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    events: list[AlertEvent]
    latency: dict[str, float | None]    # per expected kind: its start alert's t minus the onset
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


def run_scenario(scenario: Scenario, settings: AttentionSettings) -> ScenarioResult:
    """Feed the story to a fresh engine, close it at the last sample, and judge the events."""
    engine = AttentionEngine(settings)
    events: list[AlertEvent] = []
    for sample in scenario.samples:
        events += engine.update(sample)
    end_t = max(sample.t for sample in scenario.samples)
    events += engine.close(end_t)
    failures = event_problems(events)
    latency: dict[str, float | None] = {}
    for kind in PRIORITY:
        starts = [e for e in events if e.kind == kind and e.phase == "start"]
        exp = scenario.expect.get(kind)
        if exp is None:
            failures += [f"unexpected {kind} at t={e.t:.2f}s" for e in starts]
            continue
        if not starts:
            failures.append(f"no {kind} alert (due at t={exp.due:.2f}s)")
            latency[kind] = None
            continue
        if len(starts) > 1:
            failures.append(f"{kind} started {len(starts)} times, expected once")
        start = starts[0]
        latency[kind] = start.t - exp.onset
        _check_near(failures, f"{kind} start", start.t, exp.due, exp.tolerance_s)
        _check_near(failures, f"{kind} onset", start.onset, exp.onset, exp.tolerance_s)
        end = next((e for e in events if e.kind == kind and e.phase == "end" and e.t >= start.t), None)
        if end is not None:
            _check_near(failures, f"{kind} end", end.t, end_t if exp.end is None else exp.end,
                        exp.tolerance_s)
    return ScenarioResult(scenario.name, events, latency, failures)


def event_problems(events: list[AlertEvent]) -> list[str]:
    """What makes a run's event list ill-formed: time going back, a kind starting twice or ending
    without a start, an end whose onset is not its start's, a start never ended."""
    problems: list[str] = []
    open_onsets: dict[str, float] = {}
    last_t = -math.inf
    for e in events:
        where = f"{e.kind} {e.phase} at t={e.t:.3f}"
        if e.t < last_t:
            problems.append(f"{where} is earlier than the event before it")
        last_t = max(last_t, e.t)
        if e.onset > e.t:
            problems.append(f"{where} has its onset {e.onset:.3f} in the future")
        if e.phase == "start":
            if e.kind in open_onsets:
                problems.append(f"{where} while already active")
            open_onsets[e.kind] = e.onset
        elif e.kind not in open_onsets:
            problems.append(f"{where} without a start")
        elif open_onsets.pop(e.kind) != e.onset:
            problems.append(f"{where} has an onset different from its start's")
    problems += [f"{kind} started and never ended" for kind in open_onsets]
    return problems


def _check_near(failures: list[str], what: str, got: float, want: float, tolerance_s: float) -> None:
    if abs(got - want) > tolerance_s:
        failures.append(f"{what} at t={got:.2f}s, expected {want:.2f}s +- {tolerance_s:.2f}s")


# ---- building stories -------------------------------------------------------------------------

class _Path:
    """The head's deviation from neutral: straight moves between key poses, plus face gaps."""

    def __init__(self, settings: AttentionSettings) -> None:
        self.times, self.yaws, self.pitches = [0.0], [0.0], [0.0]
        self.absent: list[tuple[float, float]] = []
        self.hold(settings.calibration_s + LEAD_IN_S)

    @property
    def end(self) -> float:
        return self.times[-1]

    def move(self, seconds: float, dyaw: float, dpitch: float) -> None:
        self.times.append(self.end + seconds)
        self.yaws.append(dyaw)
        self.pitches.append(dpitch)

    def hold(self, seconds: float) -> None:
        self.move(seconds, self.yaws[-1], self.pitches[-1])

    def glance(self, dyaw: float, seconds: float) -> None:
        """Turn out, hold, turn back; the head is away for `seconds` in all."""
        self.move(TURN_S, dyaw, 0.0)
        self.hold(max(0.0, seconds - 2 * TURN_S))
        self.move(TURN_S, 0.0, 0.0)

    def vanish(self, seconds: float) -> None:
        self.absent.append((self.end, self.end + seconds))
        self.hold(seconds)

    def crossing(self, axis: str, level: float, after: float) -> float:
        """First time at or after `after` at which the yaw or pitch path passes `level`."""
        values = self.yaws if axis == "yaw" else self.pitches
        for (t0, v0), (t1, v1) in pairwise(zip(self.times, values)):
            if t1 < after or v0 == v1 or not min(v0, v1) <= level <= max(v0, v1):
                continue
            t = t0 + (level - v0) / (v1 - v0) * (t1 - t0)
            if t >= after:
                return t
        raise ValueError(f"the story's {axis} never passes {level} deg after t={after:.2f}s")

    def sample(self, settings: AttentionSettings, fps: float, rng: np.random.Generator,
               jitter_fraction: float = JITTER_FRACTION, dropped_fraction: float = 0.0) -> list[PoseSample]:
        offset = _camera_offset(settings)
        n = int(self.end * fps) + 1
        t = (np.arange(n) + rng.uniform(0.0, jitter_fraction, n)) / fps
        yaw = offset[0] + np.interp(t, self.times, self.yaws) + rng.normal(0.0, NOISE_DEG, n)
        pitch = offset[1] + np.interp(t, self.times, self.pitches) + rng.normal(0.0, NOISE_DEG, n)
        roll = rng.normal(0.0, NOISE_DEG, n)
        kept = rng.random(n) >= dropped_fraction
        samples = []
        for i in np.flatnonzero(kept):
            ti = float(t[i])
            if any(a <= ti < b for a, b in self.absent):
                samples.append(PoseSample(ti, False, None, None, None))
            else:
                samples.append(PoseSample(ti, True, float(yaw[i]), float(pitch[i]), float(roll[i])))
        return samples


def _camera_offset(settings: AttentionSettings) -> tuple[float, float]:
    """Without calibration the engine trusts the neutral keys, so the story's camera sits there."""
    if settings.calibration_s == 0:
        return settings.neutral_yaw_deg, settings.neutral_pitch_deg
    return CAMERA_OFFSET_DEG


def _tolerance(fps: float, frames: int = 2) -> float:
    """Each sampled event may come up to a (jittered) frame after its continuous moment."""
    return frames * (1 + JITTER_FRACTION) / fps + TIMING_SLACK_S


def _turn_yaw(settings: AttentionSettings) -> float:
    return max(HEAD_TURN_DEG, settings.yaw_away_deg + PAST_DEG)


def _looking_away(path: _Path, s: AttentionSettings, axis: str, level: float, after: float,
                  fps: float) -> Expected:
    """Off the road when `axis` passes `level` (signed threshold) until it is back inside."""
    onset = path.crossing(axis, level, after)
    back = path.crossing(axis, math.copysign(abs(level) - s.hysteresis_deg, level), onset)
    return Expected(onset, onset + s.looking_away_s, back, _tolerance(fps))


def _single_drop(path: _Path, s: AttentionSettings, start: float, fps: float) -> Expected | None:
    """The nodding-off alert one drop starting at `start` gives: held, or counted if one is enough."""
    seen = path.crossing("pitch", -s.nod_drop_deg, start)
    recovered = path.crossing("pitch", -(s.nod_drop_deg - s.hysteresis_deg), seen)
    held = recovered - seen >= s.nod_hold_s
    counted = s.nod_count == 1
    if not (held or counted):
        return None
    ends = ([recovered] if held else []) + ([seen + s.nod_alert_s] if counted else [])
    return Expected(start, seen if counted else seen + s.nod_hold_s, max(ends), _tolerance(fps))


def _checked(settings: AttentionSettings, fps: float, rng: np.random.Generator) -> None:
    check_settings(settings)
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps = {fps!r} must be a positive number of frames per second")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (numpy.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")


def _sway(path: _Path, s: AttentionSettings, seconds: float, rng: np.random.Generator) -> None:
    """An attentive driver's head wanders a little, well inside the road zone."""
    yaw_span = s.yaw_away_deg * SWAY_FRACTION
    pitch_span = min(s.pitch_down_deg, s.pitch_up_deg) * SWAY_FRACTION
    for _ in range(max(1, round(seconds / SWAY_STEP_S))):
        path.move(SWAY_STEP_S, rng.uniform(-yaw_span, yaw_span), rng.uniform(-pitch_span, pitch_span))
    path.move(SWAY_STEP_S, 0.0, 0.0)


# ---- the stories ------------------------------------------------------------------------------

def attentive_driver(settings: AttentionSettings, fps: float, rng: np.random.Generator) -> Scenario:
    _checked(settings, fps, rng)
    path = _Path(settings)
    _sway(path, settings, ATTENTIVE_S, rng)
    return Scenario("attentive_driver", "head wanders a little around the road ahead",
                    path.sample(settings, fps, rng))


def mirror_checker(settings: AttentionSettings, fps: float, rng: np.random.Generator) -> Scenario:
    _checked(settings, fps, rng)
    path = _Path(settings)
    yaw = _turn_yaw(settings)
    for i in range(MIRROR_GLANCES):
        path.glance(yaw if i % 2 == 0 else -yaw, rng.uniform(*MIRROR_GLANCE_S))
        path.hold(settings.sharing_reset_s + 2 * TURN_S)   # back long enough to clear the sharing count
    path.hold(TAIL_S)
    return Scenario("mirror_checker", f"{MIRROR_GLANCES} mirror checks of {MIRROR_GLANCE_S[0]:g}-"
                    f"{MIRROR_GLANCE_S[1]:g} s, left and right", path.sample(settings, fps, rng))


def shoulder_checker(settings: AttentionSettings, fps: float, rng: np.random.Generator) -> Scenario:
    """Looks over the shoulder before changing lanes: a turn so far that the detector loses the
    face at its far end. While the face is lost the last pose (off the road) holds, so these
    count as short glances, and short glances with road time between them never alert."""
    _checked(settings, fps, rng)
    s = settings
    path = _Path(s)
    yaw = max(SHOULDER_TURN_DEG, _turn_yaw(s))
    for i in range(SHOULDER_CHECKS):
        side = 1 if i % 2 == 0 else -1
        path.move(TURN_S, side * yaw, 0.0)
        path.vanish(max(0.0, SHOULDER_CHECK_S - 2 * TURN_S))
        path.move(TURN_S, 0.0, 0.0)
        path.hold(s.sharing_reset_s + 2 * TURN_S)
    path.hold(TAIL_S)
    return Scenario("shoulder_checker", f"{SHOULDER_CHECKS} shoulder checks of {SHOULDER_CHECK_S:g} s, "
                    f"{yaw:g} deg round, face lost at the far end", path.sample(s, fps, rng))


def attention_sharer(settings: AttentionSettings, fps: float, rng: np.random.Generator) -> Scenario:
    """Glances too short for looking_away, with too little road time between them to clear the
    count: they add up to the sharing alert in the middle of a glance."""
    _checked(settings, fps, rng)
    s = settings
    path = _Path(s)
    yaw = _turn_yaw(s)
    out_part = TURN_S * (1 - s.yaw_away_deg / yaw)                          # off road while turning out
    back_part = TURN_S * (1 - (s.yaw_away_deg - s.hysteresis_deg) / yaw)    # ... and turning back
    whole = math.floor(s.sharing_total_s / (s.looking_away_s * SHARER_GLANCE_FRACTION))
    off_s = s.sharing_total_s / (whole + 0.5)    # `whole` glances fall short; the next one crosses
    road_s = s.sharing_reset_s / 2
    glances = []
    for _ in range(whole + 1):
        start = path.end
        path.glance(yaw, off_s - out_part - back_part + 2 * TURN_S)
        out = path.crossing("yaw", s.yaw_away_deg, start)
        glances.append((out, path.crossing("yaw", s.yaw_away_deg - s.hysteresis_deg, out)))
        path.hold(max(0.0, road_s - (2 * TURN_S - out_part - back_part)))
    path.hold(s.sharing_reset_s + TAIL_S)
    total, due = 0.0, glances[-1][1]
    for out, back in glances:
        if total + (back - out) >= s.sharing_total_s:
            due = out + s.sharing_total_s - total
            break
        total += back - out
    expect = {"attention_sharing": Expected(glances[0][0], due, glances[-1][1] + s.sharing_reset_s,
                                            _tolerance(fps, frames=2 + len(glances)))}
    return Scenario("attention_sharer", f"{len(glances)} glances of {off_s:.1f} s to the side, "
                    f"{road_s:.1f} s apart", path.sample(s, fps, rng), expect)


def phone_in_lap(settings: AttentionSettings, fps: float, rng: np.random.Generator) -> Scenario:
    """Looks down to the lap and stays. Besides looking_away this is a held head drop, and
    nodding_off fires too (the known limit of head pose alone, see monitor.attention)."""
    _checked(settings, fps, rng)
    s = settings
    path = _Path(s)
    depth = max(PHONE_PITCH_DEG, s.pitch_down_deg + PAST_DEG)
    start = path.end
    path.move(LOOK_DOWN_S, 0.0, -depth)
    path.hold(s.looking_away_s + HELD_EXTRA_S)
    path.move(LOOK_DOWN_S, 0.0, 0.0)
    path.hold(TAIL_S)
    expect = {"looking_away": _looking_away(path, s, "pitch", -s.pitch_down_deg, start, fps)}
    fast_enough = depth / LOOK_DOWN_S * s.nod_drop_within_s >= s.nod_drop_deg
    nodding = _single_drop(path, s, start, fps) if fast_enough and depth >= s.nod_drop_deg else None
    if nodding is not None:
        expect["nodding_off"] = nodding
    return Scenario("phone_in_lap", f"looks {depth:g} deg down to the lap for "
                    f"{s.looking_away_s + HELD_EXTRA_S:g} s", path.sample(s, fps, rng), expect)


def head_turned(settings: AttentionSettings, fps: float, rng: np.random.Generator) -> Scenario:
    _checked(settings, fps, rng)
    s = settings
    path = _Path(s)
    yaw = _turn_yaw(s)
    start = path.end
    path.move(TURN_S, yaw, 0.0)
    path.hold(s.looking_away_s + HELD_EXTRA_S / 2)
    path.move(TURN_S, 0.0, 0.0)
    path.hold(TAIL_S)
    return Scenario("head_turned", f"head turned {yaw:g} deg for {s.looking_away_s + HELD_EXTRA_S / 2:g} s",
                    path.sample(s, fps, rng),
                    {"looking_away": _looking_away(path, s, "yaw", s.yaw_away_deg, start, fps)})


def slow_nodder(settings: AttentionSettings, fps: float, rng: np.random.Generator) -> Scenario:
    """Quick head drops that recover at once: none is held, but `nod_count` of them alert."""
    _checked(settings, fps, rng)
    s = settings
    path = _Path(s)
    depth = s.nod_drop_deg + PAST_DEG
    ramp = min(TURN_S, s.nod_drop_within_s / 2, s.nod_hold_s / 4)
    spacing = min(s.nod_window_s / (s.nod_count + 1), ATTENTIVE_S / 6)
    starts = []
    for _ in range(s.nod_count):
        starts.append(path.end)
        path.move(ramp, 0.0, -depth)
        path.hold(s.nod_hold_s / 4)
        path.move(ramp, 0.0, 0.0)
        path.hold(spacing)
    path.hold(s.nod_alert_s + TAIL_S)
    due = path.crossing("pitch", -s.nod_drop_deg, starts[-1])
    expect = {"nodding_off": Expected(starts[0], due, due + s.nod_alert_s, _tolerance(fps))}
    return Scenario("slow_nodder", f"{s.nod_count} quick head drops of {depth:g} deg, {spacing:g} s apart",
                    path.sample(s, fps, rng), expect)


def long_head_drop(settings: AttentionSettings, fps: float, rng: np.random.Generator) -> Scenario:
    _checked(settings, fps, rng)
    s = settings
    path = _Path(s)
    depth = max(s.pitch_down_deg, s.nod_drop_deg) + PAST_DEG
    held_s = max(s.nod_hold_s, s.looking_away_s) + HELD_EXTRA_S
    start = path.end
    path.move(min(TURN_S, s.nod_drop_within_s / 2), 0.0, -depth)
    path.hold(held_s)
    path.move(LOOK_DOWN_S, 0.0, 0.0)
    path.hold(TAIL_S)
    expect = {"looking_away": _looking_away(path, s, "pitch", -s.pitch_down_deg, start, fps)}
    nodding = _single_drop(path, s, start, fps)
    if nodding is not None:
        expect["nodding_off"] = nodding
    return Scenario("long_head_drop", f"head falls {depth:g} deg and stays down {held_s:g} s",
                    path.sample(s, fps, rng), expect)


def driver_out_of_view(settings: AttentionSettings, fps: float, rng: np.random.Generator) -> Scenario:
    _checked(settings, fps, rng)
    s = settings
    path = _Path(s)
    start = path.end
    path.vanish(s.no_face_s + HELD_EXTRA_S)
    back = path.end
    path.hold(TAIL_S)
    return Scenario("driver_out_of_view", f"no face for {s.no_face_s + HELD_EXTRA_S:g} s",
                    path.sample(s, fps, rng),
                    {"no_face": Expected(start, start + s.no_face_s, back, _tolerance(fps))})


def noisy_detector(settings: AttentionSettings, fps: float, rng: np.random.Generator) -> Scenario:
    """An attentive driver seen badly: jittery timestamps, lost frames, a face lost for a moment,
    a stall with no frames, one wrong face and one repeated timestamp. None of it may alert."""
    _checked(settings, fps, rng)
    s = settings
    path = _Path(s)
    _sway(path, s, ATTENTIVE_S / 3, rng)
    path.vanish(s.no_face_s / 3)
    _sway(path, s, ATTENTIVE_S / 3, rng)
    stall = (path.end, path.end + s.no_face_s / 3)
    _sway(path, s, ATTENTIVE_S / 3, rng)
    samples = [p for p in path.sample(s, fps, rng, NOISY_JITTER_FRACTION, DROPPED_FRACTION)
               if not stall[0] <= p.t < stall[1]]
    yaw0, pitch0 = _camera_offset(s)
    i = len(samples) * 2 // 3
    samples[i] = PoseSample(samples[i].t, True, yaw0 + _turn_yaw(s) + PAST_DEG, pitch0, 0.0)
    repeated = PoseSample(samples[i + 1].t, True, yaw0 - _turn_yaw(s), pitch0 - s.nod_drop_deg - PAST_DEG, 0.0)
    samples.insert(i + 2, repeated)
    return Scenario("noisy_detector", "attentive driver, jittery and lossy detection, one wrong face",
                    samples)


# name -> story(settings, fps, rng)
STORIES: dict[str, Callable[[AttentionSettings, float, np.random.Generator], Scenario]] = {
    f.__name__: f for f in (attentive_driver, mirror_checker, shoulder_checker, attention_sharer, phone_in_lap, head_turned,
                            slow_nodder, long_head_drop, driver_out_of_view, noisy_detector)}


def run_suite(settings: AttentionSettings, fps_list: list[float], seed: int,
              names: list[str] | None = None) -> list[tuple[float, ScenarioResult]]:
    """Every story (or those named) at every frame rate, each from `default_rng(seed)`."""
    unknown = sorted(set(names or ()) - set(STORIES))
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)} (allowed: {', '.join(STORIES)})")
    results = []
    for fps in fps_list:
        for name in names or STORIES:
            scenario = STORIES[name](settings, fps, np.random.default_rng(seed))
            results.append((fps, run_scenario(scenario, settings)))
    return results
