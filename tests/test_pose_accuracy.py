"""The shipped FPNet weights on the AFLW2000 sample, through the full cascade (as `eval-pose` runs it).

Skips cleanly without weights/fpnet.pt or ../shared. The MAE bound is the figure reported in
weights/MODEL_CARD.md plus a little slack for BLAS differences between machines.
"""

import numpy as np
import pytest

from monitor.config import CascadeSettings
from monitor.fpnet import DEFAULT_WEIGHTS
from tests.shared import DATA, needs_shared

REPORTED_MEAN_MAE = 5.68    # weights/MODEL_CARD.md, eval-pose on aflw2000_sample
REPORTED_YAW_30_PLUS_MAE = 6.36   # the same run's yaw MAE on the faces with |yaw| >= 30 (yaw_30_plus)
MIN_YAW_SLOPE = 0.9         # predicted on true yaw: large turns are not under-stated (issue 8)
SLACK_DEG = 0.1
SIGN_MIN_YAW_DEG = 15.0

pytestmark = [needs_shared,
              pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="weights/fpnet.pt is not present")]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from monitor.training.evaluate import evaluate_folder

    per_image = tmp_path_factory.mktemp("eval") / "per_image.csv"
    summary = evaluate_folder(DATA / "aflw2000_sample", CascadeSettings(), per_image=per_image)
    rows = np.genfromtxt(per_image, delimiter=",", names=True, dtype=None, encoding="utf-8")
    return summary, rows


def test_every_sample_face_is_detected(results):
    summary, _ = results
    assert summary["images"] == 16 and summary["detected"] == 16


def test_signs_follow_the_labels(results):
    _, rows = results
    big = np.abs(rows["label_yaw"]) > SIGN_MIN_YAW_DEG
    assert big.sum() >= 5
    assert (np.sign(rows["yaw"][big]) == np.sign(rows["label_yaw"][big])).all()
    assert np.corrcoef(rows["pitch"], rows["label_pitch"])[0, 1] > 0.5
    assert np.corrcoef(rows["roll"], rows["label_roll"])[0, 1] > 0.5


def test_mean_error_is_what_the_model_card_reports(results):
    summary, _ = results
    assert summary["fpnet"]["mean"] <= REPORTED_MEAN_MAE + SLACK_DEG


def test_large_turns_are_measured_at_their_size(results):
    summary, _ = results
    assert summary["yaw_30_plus"]["faces"] == 6
    assert summary["yaw_30_plus"]["fpnet"]["yaw"] <= REPORTED_YAW_30_PLUS_MAE + SLACK_DEG
    assert summary["yaw_fit"]["slope"] >= MIN_YAW_SLOPE and summary["yaw_fit"]["monotonic"]
