"""The speed levers must not change what the monitor measures (issue: CPU speed).

Compared with the straightforward path on real frames: tracking (FPNet alone on a predicted crop)
against full detection on the same frame, and merging R-Net's duplicate boxes against MTCNN's
plain stage. Timings are the `bench` command's job, never a test's.
"""

import cv2
import numpy as np
import pytest

from monitor.cascade import Cascade, iou
from monitor.config import Config
from monitor.driver import DriverFinder
from monitor.fpnet import DEFAULT_WEIGHTS
from monitor.training.evaluate import evaluate_folder
from tests.shared import DATA, needs_shared

needs_weights = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="weights/fpnet.pt is not trained yet")


@needs_shared
@needs_weights
def test_tracked_frames_agree_with_full_detection():
    config = Config()
    reference = Cascade(config.cascade)
    finder = DriverFinder(Cascade(config.cascade), config.driver)
    capture = cv2.VideoCapture(str(DATA / "video" / "webcam_office_head_motion.avi"))
    overlaps, differences = [], []
    for _ in range(200):
        ok, image = capture.read()
        assert ok
        driver, _, full = finder.process(image)
        if full or driver is None:
            continue
        best = max(reference.detect(image), key=lambda f: iou(f.box, driver.box))
        overlaps.append(iou(best.box, driver.box))
        differences.append([abs(best.yaw - driver.yaw), abs(best.pitch - driver.pitch), abs(best.roll - driver.roll)])
    assert len(overlaps) > 150                         # most frames were tracked
    assert min(overlaps) > 0.8
    assert np.mean(differences, axis=0).max() < 2.0     # degrees; full detection itself jitters about 1


@needs_shared
@needs_weights
def test_merging_rnet_duplicates_keeps_faces_and_accuracy():
    folder = DATA / "aflw2000_sample"
    merged_settings = Config().cascade
    assert merged_settings.rnet_merge_iou < 1.0
    plain = evaluate_folder(folder, Config().replace("cascade", rnet_merge_iou=1.0).cascade)
    merged = evaluate_folder(folder, merged_settings)
    assert plain["detected"] == merged["detected"] == 16
    assert abs(merged["fpnet"]["mean"] - plain["fpnet"]["mean"]) < 0.25
