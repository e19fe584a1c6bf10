"""Reading recorded sessions (or any pose CSV) back, and replaying them through the attention logic.

A session recorded by a run that crashed may end in half a row, and a hand-made CSV may have
gaps or timestamps that go backwards: such rows are skipped with one warning saying how many and
why, never a crash. The same goes for a session folder that lacks files, has broken event lines
or a configuration from another version: what cannot be used is skipped with a warning naming it.

The only file ever written into a session folder is `labels.csv` (the reviewer's verdicts for
`tune`), and it is written atomically, so a crash never leaves half of it behind.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.attention import AlertEvent, PoseSample, State
from monitor.config import CONFIG_VERSION, Config, ConfigError, check_value
from monitor.pipeline import PoseTracker

log = logging.getLogger(__name__)
REQUIRED_COLUMNS = ("t", "face", "yaw_deg", "pitch_deg", "roll_deg")
POSES_FILE = "poses.csv"
CONFIG_FILE = "config.toml"
EVENTS_FILE = "events.jsonl"
VIDEO_FILE = "video.avi"
SUMMARY_FILE = "summary.json"
LABELS_FILE = "labels.csv"
LABEL_COLUMNS = ("start", "end", "kind")
# What a reviewer can say about an interval: the driver was truly distracted or drowsy there, or
# an alert there was false. Only the first two are ground truth for recall; any alert outside
# them counts as false anyway, so "false_alert" records the review rather than changing a metric.
LABEL_KINDS = ("distraction", "drowsiness", "false_alert")


class SessionError(ValueError):
    """A session or CSV that cannot be replayed at all (missing file or required columns)."""


@dataclass
class PoseTrace:
    samples: list[PoseSample]
    skipped: Counter = field(default_factory=Counter)   # reason -> rows skipped
    # Per sample, its 0-based data row in the CSV: in a session folder also its frame of video.avi,
    # since the recorder writes one frame and one row per processed frame.
    rows: list[int] = field(default_factory=list)


def read_pose_csv(path: Path) -> PoseTrace:
    """Samples from a CSV with columns t,face,yaw_deg,pitch_deg,roll_deg (others are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise SessionError(f"{path} does not exist")
    trace = PoseTrace([])
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SessionError(f"{path} lacks the columns {', '.join(missing)} "
                               f"(required: {', '.join(REQUIRED_COLUMNS)})")
        last_t = -math.inf
        for number, row in enumerate(reader):
            sample, reason = _parse_row(row)
            if sample is None:
                trace.skipped[reason] += 1
            elif sample.t <= last_t:
                trace.skipped["timestamp not after the previous row"] += 1
            else:
                trace.samples.append(sample)
                trace.rows.append(number)
                last_t = sample.t
    for reason, count in trace.skipped.items():
        log.warning("%s: skipped %d row(s): %s", path, count, reason)
    return trace


def _parse_row(row: dict[str, str | None]) -> tuple[PoseSample | None, str]:
    try:
        t = float(row["t"])
        face = row["face"].strip().lower() in ("1", "true", "yes")
        angles = [row[c] for c in ("yaw_deg", "pitch_deg", "roll_deg")]
        if any(a is None for a in angles):
            return None, "truncated row"
        if face and all(a.strip() for a in angles):
            yaw, pitch, roll = (float(a) for a in angles)
            if not all(math.isfinite(v) for v in (t, yaw, pitch, roll)):
                return None, "non-finite value"
            return PoseSample(t, True, yaw, pitch, roll), ""
        if not math.isfinite(t):
            return None, "non-finite value"
        return PoseSample(t, face, None, None, None), ""
    except (TypeError, ValueError, AttributeError):
        return None, "unreadable or truncated row"


def resolve(path: Path) -> tuple[Path, Path | None]:
    """(pose CSV, the session's config.toml if any) for a session folder or a CSV file."""
    path = Path(path)
    if path.is_dir():
        csv_path = path / POSES_FILE
        if not csv_path.is_file():
            raise SessionError(f"{path} is not a session folder: it has no {POSES_FILE}")
        config_path = path / CONFIG_FILE
        return csv_path, config_path if config_path.is_file() else None
    return path, None


def session_config(path: Path, override: Config | None) -> Config:
    """The configuration to replay with: the given one, else the session's own, else defaults."""
    if override is not None:
        return override
    _, config_path = resolve(path)
    if config_path is None:
        return Config()
    config, warnings = load_config_leniently(config_path)
    for warning in warnings:
        log.warning("%s", warning)
    return config


def load_config_leniently(path: Path) -> tuple[Config, list[str]]:
    """A session's config.toml, keeping every key this version understands.

    A session may come from another version of the monitor: its unknown sections or keys, and
    values out of today's ranges, are skipped one by one (each named in a warning) and take their
    defaults, instead of throwing away the whole configuration the session was recorded with.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return Config(), [f"{path}: unreadable ({exc}); using the default configuration"]
    warnings = []
    version = data.pop("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        warnings.append(f"{path}: configuration version {version!r} differs from this monitor's "
                        f"{CONFIG_VERSION}; keys it does not know are skipped")
    sections = {f.name: {g.name: g for g in dataclasses.fields(f.default_factory())}
                for f in dataclasses.fields(Config)}
    kept: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        if section not in sections or not isinstance(values, dict):
            warnings.append(f"{path}: skipped [{section}]: not a section of this version "
                            f"(allowed: {', '.join(sections)})")
            continue
        for key, value in values.items():
            if key not in sections[section]:
                warnings.append(f"{path}: skipped {section}.{key}: not a key of this version")
                continue
            try:
                check_value(sections[section][key], value, f"{section}.{key}")
            except ConfigError as exc:
                warnings.append(f"{path}: skipped {exc}; using the default")
                continue
            kept.setdefault(section, {})[key] = value
    try:
        return Config.from_dict(kept, source=str(path)), warnings
    except ConfigError as exc:
        return Config(), warnings + [f"{exc}; using the default configuration"]


def replay(samples: list[PoseSample], config: Config) -> list[AlertEvent]:
    """Every alert event the smoother + attention engine raise on these samples."""
    tracker = PoseTracker(config)
    events: list[AlertEvent] = []
    for sample in samples:
        events += tracker.update(sample).events
    if samples:
        events += tracker.close(samples[-1].t)
    return events


# ---- session folders --------------------------------------------------------------------------

@dataclass(frozen=True)
class Label:
    """A reviewed interval of a session, in the session's own time (seconds, as poses.csv `t`)."""

    start: float
    end: float
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in LABEL_KINDS:
            raise ValueError(f"label kind {self.kind!r} is not allowed (allowed: {', '.join(LABEL_KINDS)})")
        if not (math.isfinite(self.start) and math.isfinite(self.end) and self.start < self.end):
            raise ValueError(f"label interval {self.start!r}..{self.end!r} must be finite with start < end")


@dataclass
class Session:
    """Everything usable in one session folder (or pose CSV), and what was skipped."""

    path: Path
    trace: PoseTrace
    config: Config
    recorded_events: list[AlertEvent]     # what fired during the run (events.jsonl)
    labels: list[Label] | None            # None: never reviewed (no labels.csv)
    video: Path | None
    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def duration(self) -> float:
        samples = self.trace.samples
        return samples[-1].t - samples[0].t if samples else 0.0


def load_session(path: Path, override: Config | None = None) -> Session:
    """Read a session folder or pose CSV. Only a missing or unusable pose table is an error
    (SessionError); any other missing or broken part is skipped with a logged warning."""
    path = Path(path)
    csv_path, config_path = resolve(path)
    trace = read_pose_csv(csv_path)      # logs its own warnings about skipped rows
    logged = [f"{csv_path}: skipped {n} row(s): {why}" for why, n in trace.skipped.items()]
    warnings = []
    if not trace.samples:
        warnings.append(f"{csv_path}: no usable pose rows")
    if override is not None:
        config = override
    elif config_path is not None:
        config, more = load_config_leniently(config_path)
        warnings += more
    else:
        config = Config()
    events: list[AlertEvent] = []
    labels: list[Label] | None = None
    video: Path | None = None
    summary: dict[str, Any] = {}
    if path.is_dir():
        for name in (CONFIG_FILE, EVENTS_FILE, VIDEO_FILE, SUMMARY_FILE):
            if not (path / name).is_file() and not (name == CONFIG_FILE and override is not None):
                warnings.append(f"{path}: no {name} ({_WITHOUT[name]})")
        if (path / EVENTS_FILE).is_file():
            events, more = read_events(path / EVENTS_FILE)
            warnings += more
        if (path / LABELS_FILE).is_file():
            labels, more = read_labels(path / LABELS_FILE)
            warnings += more
        if (path / VIDEO_FILE).is_file():
            video = path / VIDEO_FILE
        if (path / SUMMARY_FILE).is_file():
            summary, more = _read_summary(path / SUMMARY_FILE)
            warnings += more
    for warning in warnings:
        log.warning("%s", warning)
    return Session(path, trace, config, events, labels, video, summary, logged + warnings)


_WITHOUT = {CONFIG_FILE: "replaying with the default configuration",
            EVENTS_FILE: "the alerts that fired during the run are unknown",
            VIDEO_FILE: "no frames to show",
            SUMMARY_FILE: "the run may have crashed before finishing"}


def read_events(path: Path) -> tuple[list[AlertEvent], list[str]]:
    """Alert events of events.jsonl; a broken line (a crash mid-write) is skipped with a warning."""
    events, bad = [], 0
    with Path(path).open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if obj.get("type", "alert") != "alert":
                    continue
                events.append(AlertEvent(obj["kind"], obj["phase"], float(obj["t"]), float(obj["onset"])))
            except (ValueError, KeyError, TypeError, AttributeError):
                bad += 1
    return events, ([f"{path}: skipped {bad} unreadable event line(s)"] if bad else [])


def read_labels(path: Path) -> tuple[list[Label], list[str]]:
    """The labels of labels.csv (`start,end,kind`); a bad row is skipped with a warning."""
    path = Path(path)
    labels, bad = [], 0
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            return [], [f"{path}: ignored: it lacks the columns {', '.join(missing)} "
                        f"(required: {', '.join(LABEL_COLUMNS)})"]
        for row in reader:
            try:
                labels.append(Label(float(row["start"]), float(row["end"]), (row["kind"] or "").strip()))
            except (TypeError, ValueError):
                bad += 1
    return sorted(labels, key=lambda label: label.start), (
        [f"{path}: skipped {bad} bad label row(s) (need start < end, kind one of "
         f"{', '.join(LABEL_KINDS)})"] if bad else [])


def write_labels(folder: Path, labels: list[Label]) -> Path:
    """Replace the session's labels.csv atomically (temporary file, then rename)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SessionError(f"{folder} is not a session folder")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    for label in sorted(labels, key=lambda label: (label.start, label.end)):
        writer.writerow((repr(float(label.start)), repr(float(label.end)), label.kind))
    path = folder / LABELS_FILE
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            fh.write(text.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)     # a failed save leaves the folder as it was
        raise
    return path


def _read_summary(path: Path) -> tuple[dict[str, Any], list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, [f"{path}: unreadable ({exc}); ignored"]
    return (data, []) if isinstance(data, dict) else ({}, [f"{path}: not a JSON object; ignored"])


# ---- replay with the per-frame trace ----------------------------------------------------------

@dataclass(frozen=True)
class ReplayRow:
    """One sample as the attention engine saw it: the smoothed deviation from neutral
    (None while calibrating or without a pose) and the state after it."""

    t: float
    face: bool
    dyaw: float | None
    dpitch: float | None
    state: State


@dataclass
class Replay:
    rows: list[ReplayRow]
    events: list[AlertEvent]
    neutral: tuple[float, float] | None


def replay_trace(samples: list[PoseSample], config: Config) -> Replay:
    """`replay`, keeping what the report and the browser plot: the same events, plus per sample
    the smoothed deviation and the state."""
    tracker = PoseTracker(config)
    rows: list[ReplayRow] = []
    events: list[AlertEvent] = []
    for sample in samples:
        update = tracker.update(sample)
        events += update.events
        dev = None
        if update.smoothed is not None:
            dev = tracker.attention.deviation(PoseSample(sample.t, True, *update.smoothed))
        rows.append(ReplayRow(sample.t, sample.face, dev[0] if dev else None, dev[1] if dev else None,
                              update.state))
    if samples:
        events += tracker.close(samples[-1].t)
    return Replay(rows, events, tracker.attention.neutral)
