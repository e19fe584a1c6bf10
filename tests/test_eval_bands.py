"""eval-pose's error per |yaw| band and its yaw fit (issue 8's targets), on hand-made numbers."""

import numpy as np
import pytest

from monitor.training.evaluate import errors_by_yaw, yaw_bands, yaw_fit
from tests.shared import DATA, needs_shared


def test_bands_are_half_open_except_the_last_and_skip_past_profile():
    abs_yaw = np.array([0.0, 29.9, 30.0, 59.9, 60.0, 90.0, 95.0])
    got = {name: abs_yaw[mask].tolist() for name, mask in yaw_bands(abs_yaw)}
    assert got == {"0-30": [0.0, 29.9], "30-60": [30.0, 59.9], "60-90": [60.0, 90.0]}


def test_errors_by_band_use_the_true_yaw_and_its_magnitude():
    truth = np.array([[10.0, 0, 0], [-40.0, 0, 0], [50.0, 0, 0], [-70.0, 0, 0], [95.0, 0, 0]])
    fpnet = truth + np.array([[1.0, 3, 0], [-2.0, 0, 0], [4.0, 0, 0], [6.0, 0, 3], [8.0, 0, 0]])
    got = errors_by_yaw(truth, {"fpnet": fpnet})
    assert got["bands"]["0-30"] == {"faces": 1, "fpnet": {"yaw": 1.0, "pitch": 3.0, "roll": 0.0, "mean": 1.333}}
    assert got["bands"]["30-60"] == {"faces": 2, "fpnet": {"yaw": 3.0, "pitch": 0.0, "roll": 0.0, "mean": 1.0}}
    assert got["bands"]["60-90"] == {"faces": 1, "fpnet": {"yaw": 6.0, "pitch": 0.0, "roll": 3.0, "mean": 3.0}}
    # >= 30 holds the 95 deg face that no band does: (2 + 4 + 6 + 8) / 4
    assert got["large"] == {"faces": 4, "fpnet": {"yaw": 5.0, "pitch": 0.0, "roll": 0.75, "mean": 1.917}}


def test_an_empty_band_says_so_rather_than_zero():
    got = errors_by_yaw(np.array([[5.0, 0, 0]]), {"fpnet": np.array([[6.0, 0, 0]])}, count_key="frames")
    assert got["bands"]["60-90"] == {"frames": 0, "fpnet": {"yaw": None, "pitch": None, "roll": None, "mean": None}}


def test_fit_folds_both_directions_and_ignores_beyond_75():
    true = np.array([-60.0, -30.0, 0.0, 15.0, 45.0, 75.0, 80.0])
    sign = np.where(true < 0, -1.0, 1.0)
    pred = (0.8 * np.abs(true) + 3.0) * sign
    pred[-1] = -500.0                                   # past 75 deg: must not enter the fit
    got = yaw_fit(true, pred)
    assert got["faces"] == 6
    assert got["slope"] == pytest.approx(0.8) and got["intercept"] == pytest.approx(3.0)
    assert [(b["band"], b["faces"], b["mean"]) for b in got["band_means"]] == [
        ("0-15", 1, 3.0), ("15-30", 1, 15.0), ("30-45", 1, 27.0), ("45-60", 1, 39.0), ("60-75", 2, 57.0)]
    assert got["monotonic"] is True


def test_a_saturating_or_sign_flipped_yaw_is_not_monotonic():
    true = np.array([10.0, -25.0, 40.0, -55.0, 70.0])
    saturated = np.clip(true, -30.0, 30.0)
    got = yaw_fit(true, saturated)
    assert [b["mean"] for b in got["band_means"]] == [10.0, 25.0, 30.0, 30.0, 30.0]
    assert got["monotonic"] is False and got["slope"] < 0.5
    flipped = yaw_fit(np.array([20.0, -40.0]), np.array([20.0, 40.0]))   # the -40 face read as +40
    assert [b["mean"] for b in flipped["band_means"] if b["mean"] is not None] == [20.0, -40.0]
    assert flipped["monotonic"] is False


def test_too_few_faces_give_no_fit():
    got = yaw_fit(np.array([20.0, 20.0]), np.array([18.0, 22.0]))
    assert got["slope"] is None and got["intercept"] is None and got["monotonic"] is None
    assert got["band_means"][1] == {"band": "15-30", "faces": 2, "mean": 20.0}


@needs_shared
def test_sample_summary_keeps_the_old_keys_and_adds_consistent_bands():
    from monitor.config import CascadeSettings
    from monitor.fpnet import DEFAULT_WEIGHTS
    from monitor.training.evaluate import evaluate_folder

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("weights/fpnet.pt is not present")
    summary = evaluate_folder(DATA / "aflw2000_sample", CascadeSettings())
    assert {"images", "detected", "fpnet"} <= summary.keys()
    bands = summary["yaw_bands"]
    assert sum(b["faces"] for b in bands.values()) == summary["detected"]      # the sample stays within 90 deg
    assert summary["yaw_30_plus"]["faces"] == bands["30-60"]["faces"] + bands["60-90"]["faces"]
    assert summary["yaw_fit"]["faces"] <= summary["detected"]
    assert "teachers" not in bands["0-30"] and "yaw_fit_teachers" not in summary
