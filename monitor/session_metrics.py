"""Figures of merit of a replayed session: plain functions of its events, rows and labels.

`tune`, `report` and the session browser all show these numbers, so they are computed in one
place, from data only (no files, no plotting, no clock), and tested by hand calculation.

Conventions:
- A sample's state holds until the next sample, as in the attention engine; the last sample
  has no duration.
- An alert's span is its condition's interval, from `onset` to its end event. A label is
  *detected* when an alert of a kind that answers it (`ANSWERS`) overlaps it; the detection
  latency is that alert's raise time minus the label's start (negative when the reviewer marked
  the start later than the engine saw it). A head-pose alert that overlaps no true label is a
  *false alert*. "Driver not visible" alerts are neither: a hidden face is not a verdict on the
  driver's attention.
"""

from __future__ import annotations

import statistics
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from monitor.attention import HEAD_POSE_KINDS, PRIORITY, AlertEvent, State
# The engine's own road zone, so that a glance counted here is exactly an interval it timed.
from monitor.attention import outside_road
from monitor.config import AttentionSettings
from monitor.sessions import Label, ReplayRow

SECONDS_PER_HOUR = 3600.0
# Which alert kinds answer a true label of each kind.
ANSWERS: dict[str, tuple[str, ...]] = {"distraction": ("looking_away", "attention_sharing"),
                                       "drowsiness": ("nodding_off",)}
TRUE_KINDS = tuple(ANSWERS)


@dataclass(frozen=True)
class Span:
    kind: str
    onset: float     # the condition began
    start: float     # the alert was raised
    end: float       # the alert ended


def alert_spans(events: Iterable[AlertEvent], end_t: float | None = None) -> list[Span]:
    """Pair each start with its end. A start never ended (the log of a run that crashed) lasts
    until `end_t` if given, and is left out otherwise."""
    open_starts: dict[str, AlertEvent] = {}
    spans = []
    for e in events:
        if e.phase == "start":
            open_starts[e.kind] = e
        elif e.kind in open_starts:
            start = open_starts.pop(e.kind)
            spans.append(Span(e.kind, start.onset, start.t, e.t))
    if end_t is not None:
        spans += [Span(kind, e.onset, e.t, max(e.t, end_t)) for kind, e in open_starts.items()]
    return sorted(spans, key=lambda s: (s.start, PRIORITY.index(s.kind)))


def alert_counts(events: Iterable[AlertEvent]) -> dict[str, int]:
    """Alerts raised, by kind, every kind present (0 when none)."""
    counts = Counter(e.kind for e in events if e.phase == "start")
    return {kind: counts[kind] for kind in PRIORITY}


def per_hour(count: float, duration_s: float) -> float | None:
    return count * SECONDS_PER_HOUR / duration_s if duration_s > 0 else None


@dataclass(frozen=True)
class LabelScore:
    """Alerts judged against reviewed labels; scores of several sessions add up."""

    true_labels: int = 0
    detected: int = 0
    false_alerts: int = 0
    duration_s: float = 0.0
    latencies: tuple[float, ...] = field(default=())

    @property
    def recall(self) -> float | None:
        return self.detected / self.true_labels if self.true_labels else None

    @property
    def false_per_hour(self) -> float | None:
        return per_hour(self.false_alerts, self.duration_s)

    @property
    def median_latency_s(self) -> float | None:
        return statistics.median(self.latencies) if self.latencies else None

    def __add__(self, other: LabelScore) -> LabelScore:
        return LabelScore(self.true_labels + other.true_labels, self.detected + other.detected,
                          self.false_alerts + other.false_alerts, self.duration_s + other.duration_s,
                          self.latencies + other.latencies)


def score_labels(spans: Sequence[Span], labels: Sequence[Label], duration_s: float) -> LabelScore:
    truths = [label for label in labels if label.kind in ANSWERS]
    detected, latencies = 0, []
    for label in truths:
        hits = [s for s in spans if s.kind in ANSWERS[label.kind] and _overlap(s, label)]
        if hits:
            detected += 1
            latencies.append(min(s.start for s in hits) - label.start)
    false_alerts = sum(1 for s in spans if s.kind in HEAD_POSE_KINDS
                       and not any(_overlap(s, label) for label in truths))
    return LabelScore(len(truths), detected, false_alerts, duration_s, tuple(latencies))


def _overlap(span: Span, label: Label) -> bool:
    return span.onset <= label.end and span.end >= label.start


# ---- what the driver did ----------------------------------------------------------------------

def _durations(rows: Sequence[ReplayRow]) -> list[tuple[ReplayRow, float]]:
    """Each row with how long its state held (until the next row)."""
    return [(row, nxt.t - row.t) for row, nxt in zip(rows, rows[1:])] + ([(rows[-1], 0.0)] if rows else [])


def time_without_face(rows: Sequence[ReplayRow]) -> float:
    return sum(dt for row, dt in _durations(rows) if not row.face)


def monitored_time(rows: Sequence[ReplayRow]) -> float:
    """Time after calibration, when the engine was judging the driver."""
    return sum(dt for row, dt in _durations(rows) if row.state is not State.CALIBRATING)


def attentive_fraction(rows: Sequence[ReplayRow]) -> float | None:
    """Share of the monitored time in which no alert was active; None before calibration ends."""
    monitored = monitored_time(rows)
    if monitored <= 0:
        return None
    return sum(dt for row, dt in _durations(rows) if row.state is State.ATTENTIVE) / monitored


def glances(rows: Sequence[ReplayRow], s: AttentionSettings) -> list[tuple[float, float]]:
    """(start, end) of every interval off the road, with the engine's zone and hysteresis. While
    the pose is unknown (no face) the last pose holds, as in the engine; a glance still open at
    the end of the session ends there."""
    spans, off_since = [], None
    for row in rows:
        if row.dyaw is None or row.dpitch is None:
            continue
        if off_since is None:
            if outside_road(row.dyaw, row.dpitch, s, 0.0):
                off_since = row.t
        elif not outside_road(row.dyaw, row.dpitch, s, s.hysteresis_deg):
            spans.append((off_since, row.t))
            off_since = None
    if off_since is not None:
        spans.append((off_since, rows[-1].t))
    return spans


def head_drops(rows: Sequence[ReplayRow], s: AttentionSettings) -> list[float]:
    """When each head drop was seen: pitch fell `nod_drop_deg` within `nod_drop_within_s` to at
    least that far below neutral; the next can come once the head is back up (the engine's rule)."""
    seen, history, down = [], deque(), False
    for row in rows:
        if row.dpitch is None:
            continue
        while history and history[0][0] < row.t - s.nod_drop_within_s:
            history.popleft()
        before = [p for _, p in history]
        history.append((row.t, row.dpitch))
        if down:
            down = row.dpitch < -(s.nod_drop_deg - s.hysteresis_deg)
        elif row.dpitch <= -s.nod_drop_deg and any(p >= row.dpitch + s.nod_drop_deg for p in before):
            down = True
            seen.append(row.t)
    return seen


@dataclass(frozen=True)
class SessionStats:
    duration_s: float
    monitored_s: float
    attentive_fraction: float | None
    glance_count: int
    longest_glance_s: float
    sharing_episodes: int
    head_drops: int
    no_face_s: float
    alerts: dict[str, int]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def session_stats(rows: Sequence[ReplayRow], events: Sequence[AlertEvent], s: AttentionSettings) -> SessionStats:
    away = glances(rows, s)
    counts = alert_counts(events)
    return SessionStats(
        duration_s=rows[-1].t - rows[0].t if rows else 0.0,
        monitored_s=monitored_time(rows),
        attentive_fraction=attentive_fraction(rows),
        glance_count=len(away),
        longest_glance_s=max((end - start for start, end in away), default=0.0),
        sharing_episodes=counts["attention_sharing"],
        head_drops=len(head_drops(rows, s)),
        no_face_s=time_without_face(rows),
        alerts=counts)
