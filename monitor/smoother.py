"""One Euro filtering of the head-pose angles (Casiez, Roussel & Vogel, CHI 2012).

A fixed low-pass has to choose between jitter at rest and lag during a head turn. The One Euro
filter lowers its cut-off while the angle is still and raises it with the angle's speed, so a
steady head reads steady and a turn is followed promptly. The attention rules time how long a
threshold stays crossed, so both jitter (false crossings) and lag (late alerts) matter.

The filter runs on the frames' real timestamps, not on an assumed rate. Capture rates jitter
and frames get dropped, and a per-sample smoothing factor would smooth twice as hard at 30 fps
as at 15.
"""

from __future__ import annotations

import math

from monitor.config import SmootherSettings


def _alpha(cutoff_hz: float, dt: float) -> float:
    """Smoothing factor of a first-order low-pass with this cut-off over a step of dt seconds."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    def __init__(self, min_cutoff_hz: float, beta: float, d_cutoff_hz: float) -> None:
        self.configure(min_cutoff_hz, beta, d_cutoff_hz)
        self.reset()

    def configure(self, min_cutoff_hz: float, beta: float, d_cutoff_hz: float) -> None:
        """Change the parameters and keep the state, so live tuning causes no jump."""
        for name, value, lo in (("min_cutoff_hz", min_cutoff_hz, 0.0), ("d_cutoff_hz", d_cutoff_hz, 0.0)):
            if not math.isfinite(value) or value <= lo:
                raise ValueError(f"OneEuroFilter {name} = {value!r} must be a finite number above {lo}")
        if not math.isfinite(beta) or beta < 0.0:
            raise ValueError(f"OneEuroFilter beta = {beta!r} must be a finite number of at least 0")
        self.min_cutoff_hz, self.beta, self.d_cutoff_hz = min_cutoff_hz, beta, d_cutoff_hz

    def reset(self) -> None:
        self._t: float | None = None
        self._x = 0.0
        self._dx = 0.0

    def __call__(self, t: float, x: float) -> float:
        if not (math.isfinite(t) and math.isfinite(x)):
            raise ValueError(f"OneEuroFilter input t={t!r}, x={x!r} must be finite numbers")
        if self._t is None:
            self._t, self._x, self._dx = t, x, 0.0
            return x
        dt = t - self._t
        if dt <= 0.0:
            return self._x
        self._dx += _alpha(self.d_cutoff_hz, dt) * ((x - self._x) / dt - self._dx)
        cutoff = self.min_cutoff_hz + self.beta * abs(self._dx)
        # x_prev + a * (x - x_prev), not a * x + (1 - a) * x_prev: a constant input stays exact.
        self._x += _alpha(cutoff, dt) * (x - self._x)
        self._t = t
        return self._x


class PoseSmoother:
    """One filter per angle. The caller resets it when the face is lost, so that the next face
    (perhaps another person, or the same one after a move) is not blended with the old pose."""

    def __init__(self, settings: SmootherSettings) -> None:
        self._filters = tuple(OneEuroFilter(settings.min_cutoff_hz, settings.beta, settings.d_cutoff_hz)
                              for _ in range(3))

    def update(self, t: float, yaw: float, pitch: float, roll: float) -> tuple[float, float, float]:
        f_yaw, f_pitch, f_roll = self._filters
        return f_yaw(t, yaw), f_pitch(t, pitch), f_roll(t, roll)

    def reset(self) -> None:
        for f in self._filters:
            f.reset()

    def set_settings(self, settings: SmootherSettings) -> None:
        for f in self._filters:
            f.configure(settings.min_cutoff_hz, settings.beta, settings.d_cutoff_hz)
