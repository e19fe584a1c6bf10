"""Mining: the crops FPNet will see at run time, labelled by IoU with a reference face box.

FPNet only ever sees the squared boxes R-Net passes on, so training crops are those boxes, mined
with the real P-Net and R-Net. The reference box is the box O-Net draws on the annotated face
(the dataset's CUHK boxes are tighter than MTCNN's, so an IoU against them would call good
detections part faces); where O-Net misses the face, the annotated box is mapped to O-Net's
framing with the offset and scale fitted on the faces O-Net did find in the same chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from monitor.cascade import Cascade, crop_batch, regress, to_tensor
from monitor.config import CascadeSettings, TrainingSettings
from monitor.fpnet import INPUT_SIZE, from_onet

NEGATIVE, POSITIVE, PART, IGNORE = 0, 1, 2, -1
ONET_FACE_THRESHOLD = CascadeSettings().fpnet_threshold
CONTEXT_PX = 72            # stored crop side; the 48 px view is its centre at context_scale 1.5
INSIDE_LANDMARKS = (0, 1, 3, 4)   # eyes and mouth corners: the inside negatives of the thesis
MIN_CROP_PX = 12


def iou_many(boxes: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """IoU of each (x1, y1, x2, y2) row with one reference box (same formula as cascade.iou)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(boxes[:, 2], ref[2]) - np.maximum(boxes[:, 0], ref[0]), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], ref[3]) - np.maximum(boxes[:, 1], ref[1]), 0, None)
    inter = iw * ih
    union = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
             + (ref[2] - ref[0]) * (ref[3] - ref[1]) - inter)
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def classify(ious: np.ndarray, settings: TrainingSettings) -> np.ndarray:
    """POSITIVE / PART / NEGATIVE by IoU; the gap between negative and part IoU is IGNORE."""
    if not settings.negative_iou <= settings.part_iou <= settings.positive_iou:
        raise ValueError(f"need negative_iou <= part_iou <= positive_iou, got {settings.negative_iou}, "
                         f"{settings.part_iou}, {settings.positive_iou}")
    kinds = np.full(len(ious), IGNORE, dtype=np.int8)
    kinds[ious < settings.negative_iou] = NEGATIVE
    kinds[(ious >= settings.part_iou) & (ious < settings.positive_iou)] = PART
    kinds[ious >= settings.positive_iou] = POSITIVE
    return kinds


def centre_inside(boxes: np.ndarray, ref: np.ndarray) -> np.ndarray:
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return (cx > ref[0]) & (cx < ref[2]) & (cy > ref[1]) & (cy < ref[3])


def inside_negatives(ref: np.ndarray, landmarks: np.ndarray, side_frac: float,
                     max_iou: float) -> np.ndarray:
    """Squares on the eyes and mouth corners: face texture that must not count as a face."""
    side = side_frac * max(ref[2] - ref[0], ref[3] - ref[1])
    centres = landmarks[list(INSIDE_LANDMARKS)]
    boxes = np.concatenate([centres - side / 2, centres + side / 2], axis=1)
    return boxes[iou_many(boxes, ref) < max_iou].astype(np.float32)


def match_reference(detections: np.ndarray, annotated: np.ndarray, landmarks: np.ndarray) -> int | None:
    """The O-Net detection of the annotated face: it holds all five landmarks; best IoU wins."""
    if not len(detections):
        return None
    holds = np.all([(detections[:, 0] <= x) & (x <= detections[:, 2]) & (detections[:, 1] <= y)
                    & (y <= detections[:, 3]) for x, y in landmarks], axis=0)
    if not holds.any():
        return None
    ious = np.where(holds, iou_many(detections, annotated), -1.0)
    return int(np.argmax(ious))


def fit_box_map(annotated: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Median (centre x, centre y offset, width, height scale) taking annotated to reference boxes."""
    if not len(annotated):
        raise ValueError("no matched faces to fit the annotated-to-O-Net box map on")
    aw, ah = annotated[:, 2] - annotated[:, 0], annotated[:, 3] - annotated[:, 1]
    rw, rh = reference[:, 2] - reference[:, 0], reference[:, 3] - reference[:, 1]
    dcx = ((reference[:, 0] + reference[:, 2]) - (annotated[:, 0] + annotated[:, 2])) / 2 / aw
    dcy = ((reference[:, 1] + reference[:, 3]) - (annotated[:, 1] + annotated[:, 3])) / 2 / ah
    return np.median(np.stack([dcx, dcy, rw / aw, rh / ah], axis=1), axis=0)


def apply_box_map(annotated: np.ndarray, params: np.ndarray) -> np.ndarray:
    w, h = annotated[2] - annotated[0], annotated[3] - annotated[1]
    cx = (annotated[0] + annotated[2]) / 2 + params[0] * w
    cy = (annotated[1] + annotated[3]) / 2 + params[1] * h
    hw, hh = params[2] * w / 2, params[3] * h / 2
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh], dtype=np.float32)


def context_boxes(boxes: np.ndarray, scale: float) -> np.ndarray:
    """Boxes grown about their centre, for the stored crops that leave room to rotate."""
    c = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, 0:2]) * scale / 2
    return np.concatenate([c - half, c + half], axis=1).astype(np.float32)


def random_squares(rng: np.random.Generator, height: int, width: int, count: int,
                   avoid: np.ndarray | None, max_iou: float) -> np.ndarray:
    """Random square boxes inside the image, overlapping `avoid` less than max_iou."""
    out = []
    for _ in range(count * 10):
        if len(out) >= count:
            break
        side = rng.uniform(MIN_CROP_PX, min(height, width))
        x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
        box = np.array([x, y, x + side, y + side], dtype=np.float32)
        if avoid is None or iou_many(box, avoid)[0] < max_iou:
            out.append(box)
    return np.array(out, dtype=np.float32).reshape(-1, 4)


@dataclass
class Targets:
    """The original O-Net's outputs on the exact 48 px crops: FPNet's non-pose targets."""
    face_prob: np.ndarray   # (N,)
    box_reg: np.ndarray     # (N, 4)
    landmarks: np.ndarray   # (N, 10)


class Miner:
    """P-Net, R-Net and the original O-Net, run as the cascade runs them."""

    def __init__(self, settings: TrainingSettings) -> None:
        self.settings = settings
        # Every R-Net box is kept (no merging): the near-duplicates are useful training crops.
        cascade_settings = CascadeSettings(min_face_px=settings.mine_min_face_px,
                                           rnet_threshold=settings.mine_rnet_threshold, rnet_merge_iou=1.0)
        self.cascade = Cascade(cascade_settings, fpnet_weights=None)
        self.onet = from_onet().eval()

    @torch.inference_mode()
    def proposals(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(squared R-Net boxes (K, 4), their R-Net probabilities) as FPNet would receive them."""
        boxes = self.cascade.pnet_stage(image)
        if not len(boxes):
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        return self.cascade.rnet_stage(image, boxes)

    @torch.inference_mode()
    def targets(self, image: np.ndarray, boxes: np.ndarray) -> Targets:
        if not len(boxes):
            return Targets(np.zeros(0, np.float32), np.zeros((0, 4), np.float32), np.zeros((0, 10), np.float32))
        out = self.onet(to_tensor(crop_batch(image, boxes, INPUT_SIZE)))
        return Targets(out.face_prob.numpy(), out.box_reg.numpy(), out.landmarks.numpy())

    def detections(self, boxes: np.ndarray, targets: Targets) -> np.ndarray:
        """O-Net's final (regressed, unsquared) boxes among `boxes`, as the cascade reports faces."""
        keep = targets.face_prob > ONET_FACE_THRESHOLD
        return regress(boxes[keep], targets.box_reg[keep])

    def context_crops(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return crop_batch(image, context_boxes(boxes, self.settings.context_scale), CONTEXT_PX)
