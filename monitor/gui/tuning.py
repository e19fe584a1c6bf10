"""Live threshold tuning without Qt: which keys get a slider, slider <-> value, and validation.

The sliders are built from `config.describe()`, so a key added to the configuration appears in
the window with its range, unit and help without touching the GUI. A value is applied only if
the whole configuration stays valid, including the attention engine's cross-key rules (e.g. the
hysteresis must stay below every threshold), so the engine never receives settings it rejects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.attention import check_settings
from monitor.config import Config, ConfigError, describe

TUNED_SECTIONS: tuple[str, ...] = ("attention", "smoother")
UNITS: dict[str, str] = {"_deg": "°", "_s": "s", "_hz": "Hz", "_px": "px"}
UNSPACED_UNITS = ("°",)          # written against the number: 30°, but 3 s
MAX_DECIMALS = 2


@dataclass(frozen=True)
class Knob:
    """One tunable key as the window shows it."""

    section: str
    key: str
    lo: float
    hi: float
    default: float
    integer: bool
    unit: str
    decimals: int
    help: str

    @property
    def label(self) -> str:
        """The key without its unit suffix, in words: `yaw_away_deg` -> "yaw away"."""
        name = self.key
        for suffix in UNITS:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        return name.replace("_", " ")


def unit_of(key: str) -> str:
    return next((unit for suffix, unit in UNITS.items() if key.endswith(suffix)), "")


def suffix_of(unit: str) -> str:
    """What a spin box shows after the number."""
    if not unit:
        return ""
    return unit if unit in UNSPACED_UNITS else " " + unit


def decimals_for(lo: float, hi: float, integer: bool, steps: int) -> int:
    """Enough decimals to show one slider step and the lower bound (0.01 Hz needs two)."""
    if integer:
        return 0
    step = (hi - lo) / steps
    needed = [-math.floor(math.log10(step))]
    if lo:
        needed.append(-math.floor(math.log10(abs(lo))))
    return max(0, min(MAX_DECIMALS, max(needed)))


def knobs(steps: int, sections: tuple[str, ...] = TUNED_SECTIONS) -> list[Knob]:
    """A knob for every numeric key of the given sections, in the configuration's order."""
    result = []
    for section, key, default, lo, hi, help_text in describe():
        if section not in sections or isinstance(default, bool) or not isinstance(default, (int, float)):
            continue
        integer = isinstance(default, int)
        result.append(Knob(section, key, lo, hi, default, integer, unit_of(key),
                           decimals_for(lo, hi, integer, steps), help_text))
    return result


@dataclass(frozen=True)
class SliderScale:
    """Maps a knob's range linearly onto integer slider positions 0..steps."""

    lo: float
    hi: float
    steps: int

    def __post_init__(self) -> None:
        if not self.hi > self.lo:
            raise ValueError(f"slider range {self.lo}..{self.hi} is empty (hi must be above lo)")
        if self.steps < 1:
            raise ValueError(f"slider steps = {self.steps} must be at least 1")

    def to_position(self, value: float) -> int:
        clamped = min(max(value, self.lo), self.hi)
        return round((clamped - self.lo) / (self.hi - self.lo) * self.steps)

    def to_value(self, position: int) -> float:
        position = min(max(position, 0), self.steps)
        return self.lo + (self.hi - self.lo) * position / self.steps


def snap(knob: Knob, value: float) -> float | int:
    """The value as the spin box holds it: whole for integer keys, else rounded to its decimals."""
    return int(round(value)) if knob.integer else round(value, knob.decimals)


def apply_knob(config: Config, knob: Knob, value: float) -> Config:
    """A new configuration with one key changed, or ConfigError saying what is wrong and what is allowed."""
    changed = config.replace(knob.section, **{knob.key: snap(knob, value)})
    return validated(changed)


def validated(config: Config) -> Config:
    """The configuration itself if the engine accepts it; the cross-key rules as a ConfigError."""
    try:
        check_settings(config.attention)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return config


def reset_tuned(config: Config) -> Config:
    """The tuned sections back to their defaults; everything else (camera, audio) is kept."""
    defaults = Config()
    data = config.to_dict()
    for section in TUNED_SECTIONS:
        data[section] = defaults.to_dict()[section]
    return Config.from_dict(data)
