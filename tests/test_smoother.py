import numpy as np
import pytest

from monitor.config import SmootherSettings
from monitor.smoother import OneEuroFilter, PoseSmoother


def default_filter(**changes: float) -> OneEuroFilter:
    s = SmootherSettings(**changes)
    return OneEuroFilter(s.min_cutoff_hz, s.beta, s.d_cutoff_hz)


def step_response(f: OneEuroFilter, fps: float, step_at: float, until: float, height: float = 10.0) -> float:
    """Feed 0 then `height` from `step_at` on, sampled at `fps`; the output at time `until`."""
    y = 0.0
    for k in range(int(until * fps) + 1):
        t = k / fps
        y = f(t, height if t >= step_at else 0.0)
    return y


def test_constant_input_stays_exactly_constant() -> None:
    f = default_filter()
    times = np.cumsum(np.random.default_rng(0).uniform(0.02, 0.1, 300))
    assert all(f(float(t), 12.345) == 12.345 for t in times)


def test_first_sample_passes_through() -> None:
    assert default_filter()(3.0, -27.5) == -27.5


def test_step_lag_shrinks_with_beta() -> None:
    after_100ms = [step_response(default_filter(beta=b), 30.0, 1.0, 1.1) for b in (0.0, 0.05, 0.5)]
    assert 0.0 < after_100ms[0] < after_100ms[1] < after_100ms[2] < 10.0
    for b in (0.0, 0.05, 0.5):
        assert step_response(default_filter(beta=b), 30.0, 1.0, 5.0) == pytest.approx(10.0, abs=0.01)


def test_noise_variance_drops_and_mean_is_kept() -> None:
    rng = np.random.default_rng(1)
    times = np.arange(3000) / 30.0 + rng.uniform(0.0, 0.004, 3000)
    raw = 5.0 + rng.normal(0.0, 1.0, 3000)
    f = default_filter()
    out = np.array([f(float(t), float(x)) for t, x in zip(times, raw)])
    assert np.var(out[100:]) < 0.3 * np.var(raw[100:])
    assert np.mean(out[100:]) == pytest.approx(5.0, abs=0.1)


def test_repeated_and_backward_timestamps_keep_the_previous_output() -> None:
    f = default_filter()
    f(0.0, 0.0)
    y = f(0.1, 10.0)
    assert 0.0 < y < 10.0
    assert f(0.1, 50.0) == y
    assert f(0.05, -50.0) == y
    assert y < f(0.2, 10.0) < 10.0


def test_reset_restarts_from_the_next_sample() -> None:
    f = default_filter()
    for k in range(30):
        f(k / 30, 0.0)
    f.reset()
    assert f(0.0, 42.0) == 42.0   # also: time may start over after a reset


def test_same_signal_at_10_and_30_fps_gives_the_same_output() -> None:
    # Real timestamps make the smoothing a function of time, not of the frame count: half a
    # second after a 10-degree step the two rates agree within 0.3 degrees (they are 0.13 apart;
    # a filter that assumed 30 fps whatever the real rate would be 0.73 apart).
    slow = step_response(default_filter(), 10.0, 1.0, 1.5)
    fast = step_response(default_filter(), 30.0, 1.0, 1.5)
    assert abs(slow - fast) < 0.3
    assert step_response(default_filter(), 10.0, 1.0, 4.0) == pytest.approx(10.0, abs=0.01)
    assert step_response(default_filter(), 30.0, 1.0, 4.0) == pytest.approx(10.0, abs=0.01)


@pytest.mark.parametrize("args, message", [
    ((0.0, 0.02, 1.0), "min_cutoff_hz"),
    ((1.0, -0.1, 1.0), "beta"),
    ((1.0, 0.02, float("nan")), "d_cutoff_hz"),
])
def test_bad_parameters_are_refused_by_name(args: tuple[float, float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OneEuroFilter(*args)


def test_non_finite_input_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        default_filter()(0.0, float("nan"))


def test_pose_smoother_filters_each_angle_on_its_own() -> None:
    smoother = PoseSmoother(SmootherSettings())
    assert smoother.update(0.0, 10.0, -5.0, 2.0) == (10.0, -5.0, 2.0)
    yaw, pitch, roll = smoother.update(0.1, 20.0, -5.0, 2.0)
    assert 10.0 < yaw < 20.0
    assert (pitch, roll) == (-5.0, 2.0)


def test_pose_smoother_set_settings_keeps_state_and_reset_drops_it() -> None:
    smoother = PoseSmoother(SmootherSettings())
    for k in range(30):
        smoother.update(k / 30, 0.0, 0.0, 0.0)
    smoother.set_settings(SmootherSettings(min_cutoff_hz=5.0))
    quick = smoother.update(1.0 + 1 / 30, 10.0, 0.0, 0.0)[0]
    assert 0.0 < quick < 10.0                       # still filtering from the old state ...
    slow = PoseSmoother(SmootherSettings())
    for k in range(30):
        slow.update(k / 30, 0.0, 0.0, 0.0)
    assert quick > slow.update(1.0 + 1 / 30, 10.0, 0.0, 0.0)[0]   # ... with the new, faster cut-off
    smoother.reset()
    assert smoother.update(2.0, 7.0, 8.0, 9.0) == (7.0, 8.0, 9.0)
