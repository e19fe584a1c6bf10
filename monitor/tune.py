"""Threshold tuning: replay recorded sessions under every combination of a grid of settings.

For each setting it counts the alerts per hour by kind and, where sessions carry reviewed
labels, scores them (recall, false alerts per hour, median latency; see `monitor.session_metrics`).
The recommendation is the best recall among settings with at most `max_false_per_hour` false
alerts per hour; ties go to fewer false alerts, then the shorter latency, then grid order.

No I/O here: sessions come in already read and results go out as data, for the `tune` command
to print or save.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitor.config import Config, ConfigError, check_value
from monitor.session_metrics import LabelScore, alert_counts, alert_spans, per_hour, score_labels
from monitor.sessions import Session, replay

# The bar for a usable setting; `tune --max-false-per-hour` changes it.
MAX_FALSE_PER_HOUR = 1.0
# Grid values are rounded to this many decimals, so 0.1 steps give 0.3, not 0.30000000000000004.
GRID_DECIMALS = 9


@dataclass(frozen=True)
class GridAxis:
    key: str                  # "section.key"
    values: tuple[Any, ...]


def parse_grid(text: str) -> GridAxis:
    """`section.key=start:stop:step` (stop included), or `section.key=v1,v2,...`."""
    key, sep, spec = text.partition("=")
    key = key.strip()
    if not sep or not spec.strip():
        raise ConfigError(f"--grid {text!r}: expected KEY=START:STOP:STEP or KEY=V1,V2 "
                          f"(e.g. attention.looking_away_s=2:4:0.5)")
    f = _field(key)
    try:
        if ":" in spec:
            parts = [float(p) for p in spec.split(":")]
            if len(parts) != 3:
                raise ValueError("needs three numbers")
            start, stop, step = parts
            if not (step > 0 and stop >= start and all(map(math.isfinite, parts))):
                raise ValueError("needs finite numbers with STEP > 0 and STOP >= START")
            count = math.floor((stop - start) / step + 10 ** -GRID_DECIMALS) + 1
            raw = [round(start + i * step, GRID_DECIMALS) for i in range(count)]
        else:
            raw = [_scalar(p.strip()) for p in spec.split(",")]
    except ValueError as exc:
        raise ConfigError(f"--grid {text!r}: {exc} (expected KEY=START:STOP:STEP or KEY=V1,V2)") from exc
    values = tuple(check_value(f, v, key) for v in raw)
    return GridAxis(key, tuple(dict.fromkeys(values)))


def _field(key: str) -> dataclasses.Field:
    section, _, name = key.partition(".")
    sections = {f.name: f for f in dataclasses.fields(Config)}
    if section not in sections or not name:
        raise ConfigError(f"--grid key {key!r} must be SECTION.KEY with SECTION one of {', '.join(sections)}")
    fields = {f.name: f for f in dataclasses.fields(sections[section].default_factory())}
    if name not in fields:
        raise ConfigError(f"--grid key {key!r}: [{section}] has no key {name!r} (allowed: {', '.join(fields)})")
    return fields[name]


def _scalar(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return float(text)
    except ValueError:
        return text


def settings_grid(axes: Sequence[GridAxis]) -> list[dict[str, Any]]:
    """Every combination, the first axis varying slowest."""
    return [dict(zip((a.key for a in axes), combo)) for combo in itertools.product(*(a.values for a in axes))]


def apply_setting(config: Config, setting: dict[str, Any]) -> Config:
    """A validated copy of `config` with the setting's keys changed (ConfigError if they clash)."""
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in setting.items():
        section, _, name = key.partition(".")
        by_section.setdefault(section, {})[name] = value
    data = config.to_dict()
    for section, values in by_section.items():
        data[section] = {**data[section], **values}
    return Config.from_dict(data, source="tuning setting")


@dataclass(frozen=True)
class TuneRow:
    setting: dict[str, Any]
    alerts_per_hour: dict[str, float | None]    # by kind
    score: LabelScore | None                    # None: no session has labels
    error: str | None = None                    # the setting is not a valid configuration

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"setting": self.setting, "alerts_per_hour": self.alerts_per_hour}
        if self.error:
            out["error"] = self.error
        if self.score is not None:
            out.update(recall=self.score.recall, false_alerts_per_hour=self.score.false_per_hour,
                       median_latency_s=self.score.median_latency_s, true_labels=self.score.true_labels,
                       detected=self.score.detected, false_alerts=self.score.false_alerts)
        return out


@dataclass(frozen=True)
class TuneResult:
    rows: list[TuneRow]
    recommended: TuneRow | None
    max_false_per_hour: float

    def to_json(self) -> dict[str, Any]:
        return {"rows": [r.to_json() for r in self.rows],
                "recommended": self.recommended.setting if self.recommended else None,
                "max_false_alerts_per_hour": self.max_false_per_hour}


def evaluate(sessions: Sequence[Session], config: Config) -> TuneRow:
    """Alerts per hour over all sessions, and the label score over those that have labels."""
    counts: dict[str, int] = {}
    duration = 0.0
    score: LabelScore | None = None
    for session in sessions:
        events = replay(session.trace.samples, config)
        for kind, n in alert_counts(events).items():
            counts[kind] = counts.get(kind, 0) + n
        duration += session.duration
        if session.labels is not None:
            part = score_labels(alert_spans(events), session.labels, session.duration)
            score = part if score is None else score + part
    return TuneRow({}, {kind: per_hour(n, duration) for kind, n in counts.items()}, score)


def recommend(rows: Sequence[TuneRow], max_false_per_hour: float) -> TuneRow | None:
    eligible = [r for r in rows if r.error is None and r.score is not None and r.score.recall is not None
                and r.score.false_per_hour is not None and r.score.false_per_hour <= max_false_per_hour]
    if not eligible:
        return None
    return min(eligible, key=lambda r: (-r.score.recall, r.score.false_per_hour,
                                        math.inf if r.score.median_latency_s is None else r.score.median_latency_s,
                                        rows.index(r)))


def tune(sessions: Sequence[Session], base: Config, axes: Sequence[GridAxis],
         max_false_per_hour: float = MAX_FALSE_PER_HOUR) -> TuneResult:
    rows = []
    for setting in settings_grid(axes):
        try:
            config = apply_setting(base, setting)
        except ConfigError as exc:
            rows.append(TuneRow(setting, {}, None, str(exc)))
            continue
        rows.append(dataclasses.replace(evaluate(sessions, config), setting=setting))
    return TuneResult(rows, recommend(rows, max_false_per_hour), max_false_per_hour)
