"""Rolling figures for the window, without Qt and without reading a clock: times are passed in.

- `Timeline`: the yaw/pitch deviations of the last `window_s` seconds and the alert spans, in
  stream time (a video's media time, or the camera's capture clock).
- `RateMeter`: frames per second and mean latency over a short window, from monotonic times.
- `CpuMeter`: the process's CPU use between two readings of `time.process_time()`.
- `percentiles`: p50/p95 for the `--stats` report.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from monitor.attention import AlertEvent

PERCENT = 100


@dataclass(frozen=True)
class Span:
    kind: str
    start: float
    end: float | None     # None while the alert lasts


@dataclass(frozen=True)
class TimelineView:
    """Arrays ready to plot: times relative to `now` (<= 0), NaN where there was no pose."""

    t: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    spans: list[tuple[str, float, float]]     # kind, start, end relative to now, clipped to the window


class Timeline:
    def __init__(self, window_s: float) -> None:
        if not window_s > 0:
            raise ValueError(f"timeline window = {window_s!r} must be a positive number of seconds")
        self.window_s = window_s
        self._points: deque[tuple[float, float, float]] = deque()
        self._spans: list[Span] = []

    def add(self, t: float, deviation: tuple[float, float] | None) -> None:
        """One frame's (Δyaw, Δpitch) from neutral; None (no face, no pose, calibrating) leaves a gap."""
        if self._points and t <= self._points[-1][0]:
            self.clear()        # a new source restarts its clock: the old history means nothing now
        dyaw, dpitch = deviation if deviation is not None else (np.nan, np.nan)
        self._points.append((t, dyaw, dpitch))
        self._trim(t)

    def on_events(self, events: list[AlertEvent]) -> None:
        for event in events:
            if event.phase == "start":
                self._spans.append(Span(event.kind, event.onset, None))
            else:
                self._spans = [Span(s.kind, s.start, event.t) if s.kind == event.kind and s.end is None else s
                               for s in self._spans]

    def clear(self) -> None:
        self._points.clear()
        self._spans.clear()

    @property
    def latest_t(self) -> float | None:
        return self._points[-1][0] if self._points else None

    def view(self) -> TimelineView:
        now = self.latest_t
        if now is None:
            empty = np.zeros(0)
            return TimelineView(empty, empty, empty, [])
        data = np.array(self._points, dtype=float)
        lo = now - self.window_s
        spans = [(s.kind, max(s.start, lo) - now, (now if s.end is None else s.end) - now)
                 for s in self._spans if s.end is None or s.end > lo]
        return TimelineView(data[:, 0] - now, data[:, 1], data[:, 2], spans)

    def _trim(self, now: float) -> None:
        lo = now - self.window_s
        while self._points and self._points[0][0] < lo:
            self._points.popleft()
        self._spans = [s for s in self._spans if s.end is None or s.end > lo]


class RateMeter:
    """Frames per second and mean of a per-frame figure (latency) over the last `window_s`."""

    def __init__(self, window_s: float) -> None:
        if not window_s > 0:
            raise ValueError(f"rate window = {window_s!r} must be a positive number of seconds")
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, wall: float, value: float) -> None:
        self._samples.append((wall, value))
        while self._samples and self._samples[0][0] < wall - self.window_s:
            self._samples.popleft()

    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        span = self._samples[-1][0] - self._samples[0][0]
        return (len(self._samples) - 1) / span if span > 0 else None

    def mean(self) -> float | None:
        if not self._samples:
            return None
        return sum(value for _, value in self._samples) / len(self._samples)


class CpuMeter:
    """CPU used by this process (all its threads) as a percentage of the whole machine, measured
    over at least `min_interval_s`, so that a status line redrawn often does not flicker."""

    def __init__(self, cpus: int, min_interval_s: float = 0.0) -> None:
        if cpus < 1:
            raise ValueError(f"cpus = {cpus!r} must be at least 1")
        self.cpus = cpus
        self.min_interval_s = min_interval_s
        self._last: tuple[float, float] | None = None

    def update(self, process_s: float, wall_s: float) -> float | None:
        """Percent since the last reading; None on the first call or before `min_interval_s` has passed."""
        if self._last is None:
            self._last = (process_s, wall_s)
            return None
        last_process, last_wall = self._last
        if wall_s - last_wall <= 0 or wall_s - last_wall < self.min_interval_s:
            return None
        self._last = (process_s, wall_s)
        return PERCENT * (process_s - last_process) / (wall_s - last_wall) / self.cpus
