"""The MTCNN + FPNet cascade: P-Net pyramid -> R-Net -> FPNet, usable without threads.

Two entry points:
- `detect(image)`: full detection, every face in the frame.
- `follow(image, crop_boxes)`: FPNet alone on given crops. Tracking feeds it a crop predicted
  from the previous driver box, which is what makes steady-state frames cheap.

The stage logic follows MTCNN as facenet-pytorch implements it (same thresholds, NMS order and
box regression), but crops with OpenCV on numpy arrays and batches each stage in one call.
Images are OpenCV BGR uint8 arrays; the networks take BGR pixels directly (see `nets.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from monitor.config import CascadeSettings
from monitor.fpnet import DEFAULT_WEIGHTS, INPUT_SIZE as FPNET_SIZE, FPNet, load_fpnet
from monitor.nets import PNet, RNet, load_pretrained
from monitor.rotation import matrix_to_euler

PNET_CELL = 12     # P-Net's receptive field: one output cell looks at a 12x12 window
PNET_STRIDE = 2
RNET_SIZE = 24
NMS_PER_SCALE = 0.5
NMS_ACROSS_SCALES = 0.7
NMS_RNET = 0.7
NMS_FINAL = 0.7


@dataclass
class Face:
    box: np.ndarray                 # (4,) x1, y1, x2, y2 in pixels
    score: float                    # FPNet face probability
    landmarks: np.ndarray           # (5, 2): eye (image left), eye (image right), nose, mouth left, mouth right
    rotation: np.ndarray | None     # (3, 3) head rotation, None when the pose head is untrained
    yaw: float | None = None        # degrees, AFLW2000 convention (see rotation.py)
    pitch: float | None = None
    roll: float | None = None
    crop_box: np.ndarray | None = None  # (4,) the square box FPNet saw; tracking re-uses its geometry

    @property
    def has_pose(self) -> bool:
        return self.rotation is not None

    @property
    def size(self) -> float:
        return float(np.sqrt(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0)))


class Cascade:
    def __init__(self, settings: CascadeSettings | None = None,
                 fpnet_weights: Path | None = DEFAULT_WEIGHTS) -> None:
        self.settings = settings or CascadeSettings()
        torch.set_num_threads(self.settings.threads)
        self.pnet = load_pretrained(PNet(), "pnet").to(memory_format=torch.channels_last)
        self.rnet = load_pretrained(RNet(), "rnet").to(memory_format=torch.channels_last)
        fpnet, self.pose_trained = load_fpnet(fpnet_weights)
        self.fpnet = fpnet.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def detect(self, image: np.ndarray) -> list[Face]:
        boxes = self.pnet_stage(image)
        if len(boxes):
            boxes = self.rnet_stage(image, boxes)[0]
        return self._output(image, boxes)

    @torch.inference_mode()
    def follow(self, image: np.ndarray, crop_boxes: np.ndarray) -> list[Face]:
        """FPNet alone on given square crop boxes: the steady-state tracking step (no P-Net, no R-Net)."""
        return self._output(image, np.asarray(crop_boxes, dtype=np.float32)[:, :4])

    def pyramid_scales(self, height: int, width: int) -> list[float]:
        """Scales at which a face of min_face_px .. full frame maps onto P-Net's 12 px window."""
        scale = PNET_CELL / self.settings.min_face_px
        side = min(height, width) * scale
        scales = []
        while side >= PNET_CELL:
            scales.append(scale)
            scale *= self.settings.scale_factor
            side *= self.settings.scale_factor
        return scales

    def pnet_stage(self, image: np.ndarray) -> np.ndarray:
        """Squared P-Net proposals over the image pyramid (the only stage that sees the whole frame)."""
        h, w = image.shape[:2]
        found = []
        level = image
        for scale in self.pyramid_scales(h, w):
            # Each level is shrunk from the previous one: area-averaging the full frame every time
            # cost more than P-Net itself.
            level = cv2.resize(level, (int(w * scale + 1), int(h * scale + 1)), interpolation=cv2.INTER_AREA)
            reg, prob = self.pnet(to_tensor(level[None]))
            boxes = _pnet_boxes(reg[0].numpy(), prob[0].numpy(), scale, self.settings.pnet_threshold)
            found.append(boxes[nms(boxes[:, :4], boxes[:, 4], NMS_PER_SCALE)])
        boxes = np.concatenate(found) if found else np.zeros((0, 9), np.float32)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], NMS_ACROSS_SCALES)]
        # P-Net's regression is relative to the box size without the +1 (as in facenet-pytorch).
        size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
        return square(boxes[:, :4] + boxes[:, 5:9] * size)

    def rnet_stage(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(squared, regressed R-Net boxes, their R-Net probabilities): exactly what FPNet is given."""
        reg, prob = self.rnet(to_tensor(crop_batch(image, boxes, RNET_SIZE)))
        keep = prob.numpy() > self.settings.rnet_threshold
        boxes, scores, reg = boxes[keep], prob.numpy()[keep], reg.numpy()[keep]
        pick = nms(boxes, scores, NMS_RNET)
        boxes, scores = square(regress(boxes[pick], reg[pick])), scores[pick]
        # R-Net moves the several proposals of one face onto nearly the same box; FPNet on each of
        # them would cost a network pass for nothing (see rnet_merge_iou).
        merged = nms(boxes, scores, self.settings.rnet_merge_iou)
        return boxes[merged], scores[merged]

    def _output(self, image: np.ndarray, boxes: np.ndarray) -> list[Face]:
        if not len(boxes):
            return []
        out = self.fpnet(to_tensor(crop_batch(image, boxes, FPNET_SIZE)))
        keep = out.face_prob.numpy() > self.settings.fpnet_threshold
        if not keep.any():
            return []
        boxes = boxes[keep]
        scores = out.face_prob.numpy()[keep]
        lm = out.landmarks.numpy()[keep]
        wh = (boxes[:, 2:4] - boxes[:, 0:2] + 1)[:, None, :]
        landmarks = np.stack([lm[:, :5], lm[:, 5:]], axis=2) * wh + boxes[:, None, 0:2] - 1
        final = regress(boxes, out.box_reg.numpy()[keep])
        rotations = FPNet.rotation(out.sixd[torch.from_numpy(keep)]).numpy() if self.pose_trained else None
        faces = []
        for i in nms(final, scores, NMS_FINAL, mode="min"):
            face = Face(box=final[i], score=float(scores[i]), landmarks=landmarks[i],
                        rotation=None if rotations is None else rotations[i].astype(np.float64),
                        crop_box=boxes[i])
            if face.rotation is not None:
                face.yaw, face.pitch, face.roll = matrix_to_euler(face.rotation)
            faces.append(face)
        return faces


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in channels-last memory, the pixels' own layout.

    Channels-last is also what makes torch's CPU max-pooling fast (about 10x here)."""
    return torch.from_numpy(batch.astype(np.float32)).permute(0, 3, 1, 2)


def _pnet_boxes(reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """(K, 9) boxes [x1, y1, x2, y2, score, reg0..reg3] in image pixels for cells above threshold."""
    ys, xs = np.nonzero(prob >= threshold)
    cells = np.stack([xs, ys], axis=1).astype(np.float32)
    q1 = np.floor((PNET_STRIDE * cells + 1) / scale)
    q2 = np.floor((PNET_STRIDE * cells + PNET_CELL) / scale)
    return np.concatenate([q1, q2, prob[ys, xs][:, None], reg[:, ys, xs].T], axis=1).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first ('min' divides by the smaller area)."""
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores, kind="stable")[::-1]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = iw * ih
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.array(keep, dtype=np.int64)


def regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply R-Net/O-Net corner offsets, given in units of the (inclusive) box size."""
    wh = boxes[:, 2:4] - boxes[:, 0:2] + 1
    return (boxes[:, :4] + reg * np.concatenate([wh, wh], axis=1)).astype(np.float32)


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (the networks' crops are square)."""
    boxes = boxes[:, :4].astype(np.float32).copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += (w - side) / 2
    boxes[:, 1] += (h - side) / 2
    boxes[:, 2:4] = boxes[:, 0:2] + side[:, None]
    return boxes


def crop_batch(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size, 3) crops of integer-truncated boxes; outside the image reads as black."""
    h, w = image.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(np.trunc(boxes[:, :4]).astype(np.int64)):
        bw, bh = x2 - x1 + 1, y2 - y1 + 1
        if bw < 2 or bh < 2:
            continue
        patch = np.zeros((bh, bw, 3), dtype=np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2 + 1, w), min(y2 + 1, h)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[sy1:sy2, sx1:sx2]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
