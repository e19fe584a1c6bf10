"""The headless monitor: capture thread -> engine -> JSON lines, audio and an optional recording.

stdout carries only JSON lines (one per alert phase, then a summary), so other tools can pipe it;
warnings go to stderr. Ctrl-C or SIGTERM ends the run like the end of a video: active alerts are
closed, the recording is finalised and the summary is printed.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from monitor.alerts import AudioAlerts
from monitor.attention import AlertEvent
from monitor.capture import CaptureThread, open_source
from monitor.config import Config
from monitor.pipeline import FrameResult, MonitorEngine
from monitor.recorder import PoseRow, RecorderError, SessionRecorder

log = logging.getLogger(__name__)
FRAME_WAIT_S = 0.5  # how long the loop waits for a frame before checking whether capture ended


@dataclass
class RunOptions:
    source: str
    record: Path | None = None
    fast: bool = False
    max_seconds: float | None = None
    audio: bool = True


class Stop(Exception):
    """Raised from the SIGTERM handler to end the run the same way as Ctrl-C."""


def pose_row(result: FrameResult) -> PoseRow:
    d, u = result.driver, result.update
    box = d.box if d is not None else (None,) * 4
    smooth = u.smoothed or (None, None, None)
    return PoseRow(t=result.frame.t, frame=result.frame.index, face=d is not None,
                   score=None if d is None else d.score,
                   x1=box[0], y1=box[1], x2=box[2], y2=box[3],
                   yaw_deg=u.sample.yaw, pitch_deg=u.sample.pitch, roll_deg=u.sample.roll,
                   yaw_smooth_deg=smooth[0], pitch_smooth_deg=smooth[1], roll_smooth_deg=smooth[2],
                   state=u.state.value)


def summary(frames: int, first_t: float | None, last_t: float | None, alerts: Counter,
            extra: dict) -> dict:
    duration = 0.0 if first_t is None else last_t - first_t
    fps = (frames - 1) / duration if duration > 0 else 0.0
    return {"type": "summary", "frames": frames, "duration": round(duration, 3), "fps": round(fps, 2),
            "alerts": dict(alerts), **extra}


def emit(out: TextIO, obj: dict) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


def run(config: Config, options: RunOptions, out: TextIO | None = None) -> dict:
    """Run until the source ends, max_seconds pass, or a stop signal; returns the summary."""
    out = out or sys.stdout
    source = open_source(options.source, config.capture)
    engine = MonitorEngine(config)
    if not engine.pose_available:
        log.warning("head pose unavailable: weights/fpnet.pt is missing, so only face presence is "
                    "monitored (no looking-away or nodding alerts)")
    capture = CaptureThread(source, realtime=not options.fast)
    audio = AudioAlerts.from_settings(config.alerts, enabled=options.audio)
    recorder = None
    if options.record is not None:
        recorder = SessionRecorder(options.record, config, source.fps or config.capture.camera_fps,
                                   source.frame_size)
    alerts: Counter = Counter()
    frames, first_t, last_t = 0, None, None
    process_ms, latency_ms = [], []
    previous = signal.signal(signal.SIGTERM, _raise_stop) if _in_main_thread() else None

    def handle(events: list[AlertEvent]) -> None:
        nonlocal recorder
        for event in events:
            if event.phase == "start":
                alerts[event.kind] += 1
            emit(out, event.to_json())
            if recorder is not None:
                recorder = _guard(recorder, recorder.write_event, event.to_json())
        audio.handle(events)

    capture.start()
    wall_start, cpu_start = time.monotonic(), time.process_time()
    try:
        while True:
            frame = capture.get(FRAME_WAIT_S)
            if frame is None:
                if capture.ended:
                    break
                continue
            if first_t is None:
                first_t = frame.t
            if options.max_seconds is not None and frame.t - first_t > options.max_seconds:
                break
            result = engine.process(frame)
            frames += 1
            last_t = frame.t
            process_ms.append(result.process_ms)
            latency_ms.append(result.latency_ms)
            handle(result.update.events)
            audio.tick(frame.t)
            if recorder is not None:
                recorder = _guard(recorder, recorder.write_frame, frame.image)
            if recorder is not None:
                recorder = _guard(recorder, recorder.write_pose, pose_row(result))
    except (KeyboardInterrupt, Stop):
        log.warning("stopped by signal: finishing the session")
    finally:
        capture.stop()
        if last_t is not None:
            handle(engine.close(last_t))
        audio.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if capture.error is not None and frames == 0:
        if recorder is not None:
            recorder.close({})
        raise capture.error
    if capture.error is not None:
        log.warning("capture stopped: %s", capture.error)
    result = summary(frames, first_t, last_t, alerts, {
        "pose_available": engine.pose_available,
        "bad_frames": capture.bad_frames,
        "dropped_frames": capture.frames_dropped,
        "process_ms": percentiles(process_ms),
        "latency_ms": percentiles(latency_ms),
        # all threads of this process (capture, decoding, inference), as a share of one core
        "cpu_percent": round(100 * (time.process_time() - cpu_start) / max(time.monotonic() - wall_start, 1e-9), 1),
    })
    if recorder is not None:
        _guard(recorder, recorder.close, result)
    emit(out, result)
    return result


def _guard(recorder: SessionRecorder, write, *args) -> SessionRecorder | None:
    """Call a recorder method; on a write failure stop recording and keep monitoring."""
    try:
        write(*args)
        return recorder
    except RecorderError as exc:
        log.error("%s", exc)
        return None


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 and p95 in the summaries' format (ms, 2 decimals)."""
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    return {"p50": round(float(np.percentile(values, 50)), 2), "p95": round(float(np.percentile(values, 95)), 2)}


def _raise_stop(signum: int, frame: object) -> None:
    raise Stop()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
