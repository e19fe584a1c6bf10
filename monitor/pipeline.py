"""One frame in, one result out: cascade -> driver -> smoother -> attention, with no threads.

The headless runner and the GUI both drive this same object from their own loop, and `replay`
runs the part after the cascade (`PoseTracker`) on recorded angles, so a live run and a replay
of its recording raise the same alerts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from monitor.attention import AlertEvent, AttentionEngine, PoseSample, State
from monitor.capture import Frame
from monitor.cascade import Cascade, Face
from monitor.config import Config
from monitor.driver import DriverFinder
from monitor.smoother import PoseSmoother


@dataclass
class PoseUpdate:
    sample: PoseSample                                  # raw angles as measured
    smoothed: tuple[float, float, float] | None         # yaw, pitch, roll after the One Euro filter
    state: State
    events: list[AlertEvent] = field(default_factory=list)


class PoseTracker:
    """Smoother + attention engine over (t, face, yaw, pitch, roll) samples: the replayable part."""

    def __init__(self, config: Config) -> None:
        self.smoother = PoseSmoother(config.smoother)
        self.attention = AttentionEngine(config.attention)

    def set_config(self, config: Config) -> None:
        self.smoother.set_settings(config.smoother)
        self.attention.set_settings(config.attention)

    def update(self, sample: PoseSample) -> PoseUpdate:
        smoothed = None
        if sample.face and sample.yaw is not None:
            smoothed = self.smoother.update(sample.t, sample.yaw, sample.pitch, sample.roll)
            fed = PoseSample(sample.t, True, *smoothed)
        else:
            self.smoother.reset()
            fed = sample
        events = self.attention.update(fed)
        return PoseUpdate(sample, smoothed, self.attention.state, events)

    def close(self, t: float) -> list[AlertEvent]:
        return self.attention.close(t)


@dataclass
class FrameResult:
    frame: Frame
    faces: list[Face]
    driver: Face | None
    update: PoseUpdate
    full_detection: bool
    process_ms: float                # cascade + logic time for this frame
    latency_ms: float                # from the frame's capture to the end of its processing


class MonitorEngine:
    def __init__(self, config: Config, cascade: Cascade | None = None) -> None:
        self.config = config
        self.cascade = cascade or Cascade(config.cascade)
        self.finder = DriverFinder(self.cascade, config.driver)
        self.tracker = PoseTracker(config)

    @property
    def pose_available(self) -> bool:
        return self.cascade.pose_trained

    def set_config(self, config: Config) -> None:
        """Live tuning: thresholds and filters change at once, calibration and tracks are kept."""
        self.config = config
        self.cascade.settings = config.cascade
        self.finder.driver_settings = config.driver
        self.tracker.set_config(config)

    def process(self, frame: Frame) -> FrameResult:
        start = time.monotonic()
        driver, faces, full = self.finder.process(frame.image)
        if driver is None:
            sample = PoseSample(frame.t, False, None, None, None)
        else:
            sample = PoseSample(frame.t, True, driver.yaw, driver.pitch, driver.roll)
        update = self.tracker.update(sample)
        end = time.monotonic()
        return FrameResult(frame, faces, driver, update, full, (end - start) * 1000,
                           (end - frame.wall) * 1000)

    def close(self, t: float) -> list[AlertEvent]:
        return self.tracker.close(t)
