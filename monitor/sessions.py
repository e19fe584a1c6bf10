"""Reading recorded sessions (or any pose CSV) back, and replaying them through the attention logic.

A session recorded by a run that crashed may end in half a row, and a hand-made CSV may have
gaps or timestamps that go backwards: such rows are skipped with one warning saying how many and
why, never a crash. Nothing here writes into a session folder.
"""

from __future__ import annotations

import csv
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from monitor.attention import AlertEvent, PoseSample
from monitor.config import Config, ConfigError
from monitor.pipeline import PoseTracker

log = logging.getLogger(__name__)
REQUIRED_COLUMNS = ("t", "face", "yaw_deg", "pitch_deg", "roll_deg")
POSES_FILE = "poses.csv"
CONFIG_FILE = "config.toml"


class SessionError(ValueError):
    """A session or CSV that cannot be replayed at all (missing file or required columns)."""


@dataclass
class PoseTrace:
    samples: list[PoseSample]
    skipped: Counter = field(default_factory=Counter)   # reason -> rows skipped


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
        for row in reader:
            sample, reason = _parse_row(row)
            if sample is None:
                trace.skipped[reason] += 1
            elif sample.t <= last_t:
                trace.skipped["timestamp not after the previous row"] += 1
            else:
                trace.samples.append(sample)
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
    try:
        return Config.load(config_path)
    except ConfigError as exc:
        log.warning("%s: %s; replaying with the default configuration", config_path, exc)
        return Config()


def replay(samples: list[PoseSample], config: Config) -> list[AlertEvent]:
    """Every alert event the smoother + attention engine raise on these samples."""
    tracker = PoseTracker(config)
    events: list[AlertEvent] = []
    for sample in samples:
        events += tracker.update(sample).events
    if samples:
        events += tracker.close(samples[-1].t)
    return events
