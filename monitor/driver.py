"""Which face is the driver, and when a frame needs full detection.

A passenger leaning in or a face on a poster must not take over just because it is the biggest
in one frame: once chosen, the driver is followed by overlap with the last box. A new driver is
chosen only when the old one is lost, by size and closeness to the image centre (a dashboard
camera points at the driver). Following the last box is also what lets most frames skip P-Net.
"""

from __future__ import annotations

import numpy as np

from monitor.cascade import Cascade, Face, iou, square
from monitor.config import CascadeSettings, DriverSettings


def choose_driver(faces: list[Face], frame_size: tuple[int, int], last_box: np.ndarray | None,
                  settings: DriverSettings) -> Face | None:
    """The face overlapping the last driver box most, else the largest / most central one."""
    if not faces:
        return None
    if last_box is not None:
        overlaps = [iou(f.box, last_box) for f in faces]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= settings.track_iou:
            return faces[best]
    width, height = frame_size
    centre = np.array([width / 2, height / 2])
    half_diagonal = float(np.hypot(width, height) / 2)
    largest = max(f.size for f in faces)

    def merit(face: Face) -> float:
        face_centre = (face.box[:2] + face.box[2:]) / 2
        closeness = 1.0 - float(np.linalg.norm(face_centre - centre)) / half_diagonal
        return (1 - settings.centre_weight) * face.size / largest + settings.centre_weight * closeness

    return max(faces, key=merit)


class DriverFinder:
    """Runs the cascade on each frame: tracking from the last driver box, full detection when due.

    Tracking runs FPNet alone on a crop predicted from the last driver box. FPNet was trained on
    crops of R-Net's boxes, which sit a little wider and higher than the final face box, so the
    prediction re-applies the offset between the two measured at the last full detection: the
    tracked crop then looks like what R-Net would have given, and the pose stays consistent.
    """

    def __init__(self, cascade: Cascade, driver: DriverSettings) -> None:
        self.cascade = cascade
        self.driver_settings = driver
        self._last: Face | None = None
        self._crop_offset: np.ndarray | None = None   # (crop box - face box) / face side, at last detection
        self._since_full = 0

    @property
    def cascade_settings(self) -> CascadeSettings:
        return self.cascade.settings

    def process(self, image: np.ndarray) -> tuple[Face | None, list[Face], bool]:
        """(driver, faces seen this frame, whether full detection ran)."""
        height, width = image.shape[:2]
        last = self._last
        if last is not None and self._since_full < self.cascade_settings.redetect_every_n_frames:
            faces = self.cascade.follow(image, self._predicted_crop(last.box)[None])
            if faces and iou(faces[0].box, last.box) >= self.driver_settings.track_iou:
                self._since_full += 1
                self._last = faces[0]
                return faces[0], faces, False
        faces = self.cascade.detect(image)
        driver = choose_driver(faces, (width, height), None if last is None else last.box, self.driver_settings)
        self._since_full = 0
        self._last = driver
        if driver is not None and driver.crop_box is not None:
            self._crop_offset = (driver.crop_box - driver.box) / _side(driver.box)
        return driver, faces, True

    def _predicted_crop(self, box: np.ndarray) -> np.ndarray:
        offset = self._crop_offset if self._crop_offset is not None else np.zeros(4)
        return square((box + offset * _side(box))[None])[0]


def _side(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], box[3] - box[1], 1.0))
