"""What the window says: banner, angle and status texts, and the keyboard shortcuts. No Qt.

The banner must be readable at a glance from the driver's seat, so each state has one short
upper-case word group and a colour of its own; the colours run from calm (green, blue) through
warning (amber, yellow) to danger (red), with violet for "not visible", which is neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from monitor.attention import State

NO_VALUE = "–"
SECONDS_PER_MINUTE = 60
PERCENT = 100


@dataclass(frozen=True)
class Banner:
    text: str
    background: str     # "#rrggbb"
    foreground: str


_STATE_BANNERS: dict[State, tuple[str, str, str]] = {
    State.ATTENTIVE: ("ATTENTIVE", "#1b8a3a", "#ffffff"),
    State.CALIBRATING: ("CALIBRATING", "#1565c0", "#ffffff"),
    State.LOOKING_AWAY: ("LOOKING AWAY", "#ef6c00", "#000000"),
    State.ATTENTION_SHARING: ("ATTENTION SHARING", "#fdd835", "#000000"),
    State.NODDING_OFF: ("NODDING OFF", "#c62828", "#ffffff"),
    State.NOT_VISIBLE: ("DRIVER NOT VISIBLE", "#6a1b9a", "#ffffff"),
}
IDLE_COLOURS = ("#424242", "#ffffff")   # no source running: nothing is being judged
NO_POSE_BANNER = ("DRIVER VISIBLE · NO HEAD POSE", "#455a64", "#ffffff")


def banner(state: State, calibration_progress: float, countdown_s: float | None = None,
           idle: str | None = None, pose_available: bool = True) -> Banner:
    """The banner for the engine's state; `idle` (e.g. "NO CAMERA") wins, since then no state is current.

    An alert outranks a calibration countdown: a driver nodding off must see that, not a timer.
    Without head pose, calibration can never finish, so instead of a progress that stays at 0%
    the banner says what is known: the driver is there, the pose is not.
    """
    if idle is not None:
        return Banner(idle.upper(), *IDLE_COLOURS)
    if state not in _STATE_BANNERS:
        raise ValueError(f"state {state!r} has no banner (allowed: {', '.join(s.value for s in _STATE_BANNERS)})")
    text, background, foreground = _STATE_BANNERS[state]
    alerting = state not in (State.ATTENTIVE, State.CALIBRATING)
    if countdown_s is not None and not alerting:
        text, background, foreground = _STATE_BANNERS[State.CALIBRATING]
        return Banner(f"{text} IN {max(0, math.ceil(countdown_s))}", background, foreground)
    if state is State.CALIBRATING and not pose_available:
        return Banner(*NO_POSE_BANNER)
    if state is State.CALIBRATING:
        text = f"{text} {round(calibration_progress * PERCENT)}%"
    return Banner(text, background, foreground)


def signed_deg(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:+.1f}°"


def pose_text(pose_available: bool, angles: tuple[float, float, float] | None) -> str:
    """The head angles, or a plain statement of why there are none."""
    if not pose_available:
        return ("Head pose unavailable (no trained weights/fpnet.pt): only the driver's presence is "
                "monitored, no looking-away or nodding alerts")
    if angles is None:
        return f"yaw {NO_VALUE}   pitch {NO_VALUE}   roll {NO_VALUE}   (no face)"
    yaw, pitch, roll = angles
    return f"yaw {signed_deg(yaw)}   pitch {signed_deg(pitch)}   roll {signed_deg(roll)}"


def neutral_text(neutral: tuple[float, float] | None, calibration_progress: float,
                 pose_available: bool = True) -> str:
    if neutral is None and not pose_available:
        return "neutral pose: needs head pose"
    if neutral is None:
        return f"neutral pose: calibrating ({round(calibration_progress * PERCENT)}%)"
    return f"neutral pose: yaw {signed_deg(neutral[0])}, pitch {signed_deg(neutral[1])}"


def clock(seconds: float) -> str:
    """m:ss, for elapsed recording time."""
    whole = max(0, int(seconds))
    return f"{whole // SECONDS_PER_MINUTE}:{whole % SECONDS_PER_MINUTE:02d}"


@dataclass(frozen=True)
class Status:
    """Everything the status line shows; None where a figure is not known yet."""

    source: str                         # "camera 0", a file name, or "" with no source
    note: str | None                    # "no camera", "end of video", ...
    fps: float | None
    latency_ms: float | None
    dropped: int
    cpu_percent: float | None           # of the whole machine
    cpus: int
    recording: Path | None
    recording_s: float
    muted: bool
    volume: float


def status_parts(s: Status) -> list[str]:
    """The status line's fields, in reading order: source health first, then load, then outputs."""
    parts = [s.source or "no source"]
    if s.note:
        parts.append(s.note)
    parts.append(NO_VALUE + " fps" if s.fps is None else f"{s.fps:.1f} fps")
    parts.append("latency " + (NO_VALUE if s.latency_ms is None else f"{s.latency_ms:.0f} ms"))
    parts.append(f"dropped {s.dropped}")
    cpu = NO_VALUE if s.cpu_percent is None else f"{s.cpu_percent:.0f}%"
    parts.append(f"CPU {cpu} of {s.cpus} cores")
    parts.append(f"REC {clock(s.recording_s)} {s.recording}" if s.recording is not None else "not recording")
    parts.append("audio muted" if s.muted else f"audio on ({round(s.volume * PERCENT)}%)")
    return parts


# (key, what it does): the QActions and the Help menu are both built from this, so they agree.
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("C", "Calibrate: look at the road; after a countdown the neutral pose is learned"),
    ("R", "Record on/off (a new session folder each time)"),
    ("M", "Mute / unmute the audio alerts"),
    ("F", "Full screen on/off"),
    ("Q", "Quit"),
)
