"""The FSA-Net teacher ensemble, with the crop and preprocessing its training data used.

Both FSA-Net variants were trained on 300W-LP crops made by `TYY_create_db_type1.py`, so the
crop here repeats that recipe exactly (including its unsquared aspect and int truncation): a
different crop shifts their angles by degrees. See ../shared/teachers/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from monitor.rotation import euler_to_matrix, geodesic_deg, matrix_to_euler, mean_rotation

FSANET_FILES = ("fsanet-1x1-iter-688590.onnx", "fsanet-var-iter-688590.onnx")
FSANET_SIZE = 64
FSANET_MEAN = 127.5
FSANET_SCALE = 128.0


def fsanet_crop(image: np.ndarray, box: np.ndarray, margin: float) -> np.ndarray:
    """The region FSA-Net was trained to see: the box grown by `margin` of its size per side."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    bw, bh = x2 - x1, y2 - y1
    if bw <= 0 or bh <= 0:
        raise ValueError(f"face box {box[:4]} is empty (need x2 > x1 and y2 > y1)")
    xa, xb = max(int(x1 - margin * bw), 0), min(int(x2 + margin * bw), w - 1)
    ya, yb = max(int(y1 - margin * bh), 0), min(int(y2 + margin * bh), h - 1)
    if xb <= xa or yb <= ya:
        raise ValueError(f"face box {box[:4]} lies outside the {w}x{h} image")
    return image[ya:yb, xa:xb]


def fsanet_input(crop_bgr: np.ndarray) -> np.ndarray:
    """(1, 3, 64, 64) float32: BGR kept, (x - 127.5) / 128, NCHW."""
    if crop_bgr.ndim != 3 or crop_bgr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) BGR crop, got shape {crop_bgr.shape}")
    x = (cv2.resize(crop_bgr, (FSANET_SIZE, FSANET_SIZE)).astype(np.float32) - FSANET_MEAN) / FSANET_SCALE
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class MissingExtra(RuntimeError):
    """A training-only package is not installed in this environment."""


@dataclass
class TeacherPose:
    rotation: np.ndarray      # (3, 3) fused rotation
    yaw: float
    pitch: float
    roll: float
    disagreement_deg: float   # largest geodesic angle between two teachers


def fuse(angles: np.ndarray) -> TeacherPose:
    """Fuse teachers' (yaw, pitch, roll) rows by averaging their rotations on SO(3)."""
    rots = np.stack([euler_to_matrix(*row) for row in angles])
    fused = mean_rotation(rots)
    spread = max((geodesic_deg(a, b) for i, a in enumerate(rots) for b in rots[i + 1:]), default=0.0)
    return TeacherPose(fused, *matrix_to_euler(fused), disagreement_deg=spread)


class TeacherEnsemble:
    """Both FSA-Nets on one face at a time (their ONNX graphs fix the batch at 1)."""

    def __init__(self, folder: Path, margin: float, threads: int = 1) -> None:
        try:
            import onnxruntime  # training extra only
        except ImportError as exc:
            raise MissingExtra("the teachers need onnxruntime, the training extra: run ./setup.sh --train "
                               "(or pip install -e .[train])") from exc

        missing = [n for n in FSANET_FILES if not (Path(folder) / n).is_file()]
        if missing:
            raise FileNotFoundError(f"teacher models {missing} not found in {folder}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.sessions = [onnxruntime.InferenceSession(str(Path(folder) / n), options,
                                                      providers=["CPUExecutionProvider"])
                         for n in FSANET_FILES]
        self.margin = margin

    def angles(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(n_teachers, 3) rows of (yaw, pitch, roll) in degrees (FSA-Net outputs yaw first)."""
        x = fsanet_input(fsanet_crop(image, box, self.margin))
        return np.stack([s.run(None, {"input": x})[0][0] for s in self.sessions]).astype(np.float64)

    def pose(self, image: np.ndarray, box: np.ndarray) -> TeacherPose:
        return fuse(self.angles(image, box))
