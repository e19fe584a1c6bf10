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

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from monitor.config import CascadeSettings
from monitor.fpnet import (BOX_REG, DEFAULT_WEIGHTS, INPUT_SIZE as FPNET_SIZE, LANDMARKS, SIXD, InferenceFPNet,
                           face_probability, load_fpnet, sixd_to_rotation)
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


@dataclass(frozen=True)
class Mosaic:
    """Where each pyramid level sits in the one image P-Net sees, and which P-Net cell is whose."""
    width: int
    height: int
    scales: np.ndarray                 # (L,) float32, largest level first
    sizes: list[tuple[int, int]]       # (w, h) of each level
    offsets: list[tuple[int, int]]     # (x, y) of each level's top-left corner, both even
    first_level: int                   # pyramid index of the first level here
    cell_level: np.ndarray = field(repr=False, compare=False)   # level of each P-Net cell, -1 for none

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @staticmethod
    def pack(scales: list[float], sizes: list[tuple[int, int]], first_level: int = 0) -> Mosaic:
        """First-fit columns as tall as the largest level.

        Offsets are even so that every level keeps P-Net's stride-2 cell grid, and each level
        keeps a free pixel to its right and below (the only pixel an edge cell may read past it).
        """
        columns: list[list[int]] = []   # [x, width, used height]
        offsets = []
        height = _footprint(sizes[0][1])
        for w, h in sizes:
            fw, fh = _footprint(w), _footprint(h)
            column = next((c for c in columns if c[1] >= fw and c[2] + fh <= height), None)
            if column is None:
                column = [sum(c[1] for c in columns), fw, 0]
                columns.append(column)
            offsets.append((column[0], column[2]))
            column[2] += fh
        width = sum(c[1] for c in columns)
        cell_level = np.full((pnet_cells(height), pnet_cells(width)), -1, np.int64)
        for level, ((x, y), (w, h)) in enumerate(zip(offsets, sizes)):
            cell_level[y // PNET_STRIDE:y // PNET_STRIDE + pnet_cells(h),
                       x // PNET_STRIDE:x // PNET_STRIDE + pnet_cells(w)] = level
        return Mosaic(width, height, np.array(scales, np.float32), list(sizes), offsets, first_level, cell_level)

    def proposals(self, reg: np.ndarray, prob: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """((K, 9) boxes [x1, y1, x2, y2, score, reg0..reg3] in image pixels, (K,) their pyramid
        levels) for the cells above threshold that lie on a level, in each level's row-major order."""
        ys, xs = np.nonzero(prob >= threshold)
        level = self.cell_level[ys, xs]
        on_level = level >= 0
        ys, xs, level = ys[on_level], xs[on_level], level[on_level]
        origins = np.array(self.offsets, np.int64) // PNET_STRIDE
        cells = (np.stack([xs, ys], axis=1) - origins[level]).astype(np.float32)
        scale = self.scales[level][:, None]
        q1 = np.floor((PNET_STRIDE * cells + 1) / scale)
        q2 = np.floor((PNET_STRIDE * cells + PNET_CELL) / scale)
        boxes = np.concatenate([q1, q2, prob[ys, xs][:, None], reg[:, ys, xs].T], axis=1).astype(np.float32)
        return boxes, level + self.first_level


def pack_pyramid(scales: list[float], sizes: list[tuple[int, int]], max_pixels: int) -> list[Mosaic]:
    """Consecutive levels packed into mosaics of at most max_pixels (a larger level stays alone)."""
    mosaics: list[Mosaic] = []
    start = 0
    while start < len(sizes):
        end = start + 1
        while end < len(sizes) and Mosaic.pack(scales[start:end + 1], sizes[start:end + 1]).pixels <= max_pixels:
            end += 1
        mosaics.append(Mosaic.pack(scales[start:end], sizes[start:end], start))
        start = end
    return mosaics


def _footprint(side: int) -> int:
    """A level's side plus at least one free pixel, rounded up to even."""
    return side + 2 - side % 2


class Cascade:
    def __init__(self, settings: CascadeSettings | None = None,
                 fpnet_weights: Path | None = DEFAULT_WEIGHTS) -> None:
        self.settings = settings or CascadeSettings()
        torch.set_num_threads(self.settings.threads)
        self.pnet = load_pretrained(PNet(), "pnet").to(memory_format=torch.channels_last)
        self.rnet = load_pretrained(RNet(), "rnet").to(memory_format=torch.channels_last)
        fpnet, self.pose_trained = load_fpnet(fpnet_weights)
        self.fpnet = InferenceFPNet(fpnet).to(memory_format=torch.channels_last)
        self._packed: dict[tuple[int, int], list[Mosaic]] = {}

    @torch.inference_mode()
    def detect(self, image: np.ndarray) -> list[Face]:
        boxes = self.pnet_stage(image)
        if len(boxes):
            boxes = self.rnet_stage(image, boxes)[0]
        return self._output(image, boxes)

    @torch.inference_mode()
    def follow(self, image: np.ndarray, crop_boxes: np.ndarray) -> list[Face]:
        """FPNet alone on given square crop boxes: the steady-state tracking step (no P-Net, no R-Net)."""
        return self._output(image, np.array(crop_boxes, dtype=np.float32)[:, :4])   # faces keep their crop_box

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
        """Squared P-Net proposals over the image pyramid (the only stage that sees the whole frame).

        Pyramid levels are packed into mosaics and P-Net runs once per mosaic: on a small level a
        network call cost mostly its fixed overhead. A mosaic stays under `mosaic_max_px`, past
        which the CPU cache no longer holds a call's activations. Only the cells that lie on one
        level are read back.
        """
        h, w = image.shape[:2]
        mosaics = self._mosaics(h, w)
        if not mosaics:
            return np.zeros((0, 4), np.float32)
        found, found_levels, level = [], [], image
        for mosaic in mosaics:
            canvas = np.zeros((mosaic.height, mosaic.width, 3), np.uint8)
            for (x0, y0), (lw, lh) in zip(mosaic.offsets, mosaic.sizes):
                # Each level is shrunk from the previous one: area-averaging the full frame every
                # time cost more than P-Net itself.
                level = cv2.resize(level, (lw, lh), interpolation=cv2.INTER_AREA)
                canvas[y0:y0 + lh + 1, x0:x0 + lw + 1] = cv2.copyMakeBorder(level, 0, 1, 0, 1,
                                                                            cv2.BORDER_REPLICATE)
            reg, prob = self.pnet(to_tensor(canvas[None]))
            boxes, levels = mosaic.proposals(reg[0].numpy(), prob[0].numpy(), self.settings.pnet_threshold)
            found.append(boxes)
            found_levels.append(levels)
        boxes, levels = np.concatenate(found), np.concatenate(found_levels)
        # NMS within each level, all levels in one call: shifted apart by more than the image's
        # extent, boxes of two levels never overlap. Then level by level, as per-level calls gave.
        apart = boxes[:, :4] + (levels * 2 * max(h, w)).astype(np.float32)[:, None]
        keep = nms(apart, boxes[:, 4], NMS_PER_SCALE)
        boxes = boxes[keep[np.argsort(levels[keep], kind="stable")]]
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], NMS_ACROSS_SCALES)]
        # P-Net's regression is relative to the box size without the +1 (as in facenet-pytorch).
        size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
        return square(boxes[:, :4] + boxes[:, 5:9] * size)

    def _mosaics(self, height: int, width: int) -> list[Mosaic]:
        key = (height, width)
        if key not in self._packed:
            scales = self.pyramid_scales(height, width)
            sizes = [(int(width * s + 1), int(height * s + 1)) for s in scales]
            self._packed[key] = pack_pyramid(scales, sizes, self.settings.mosaic_max_px)
        return self._packed[key]

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
        """FPNet on the crops of `boxes`: the faces it confirms, each with its pose.

        On a tracked frame this runs for one face, where each numpy or torch call costs far more
        than its arithmetic (5-20 us each right after the network pass, against ~1 us in a tight
        loop), so arrays are touched as few times as possible and each face is finished alone.
        """
        if not len(boxes):
            return []
        heads = self.fpnet(to_tensor(crop_batch(image, boxes, FPNET_SIZE))).numpy()
        prob = face_probability(heads)
        keep = prob > self.settings.fpnet_threshold
        if not keep.all():
            boxes, heads, prob = boxes[keep], heads[keep], prob[keep]
            if not len(boxes):
                return []
        final = regress(boxes, heads[:, BOX_REG])
        return [self._face(final[i], float(prob[i]), boxes[i], heads[i])
                for i in nms(final, prob, NMS_FINAL, mode="min")]

    def _face(self, box: np.ndarray, score: float, crop_box: np.ndarray, heads: np.ndarray) -> Face:
        # Landmarks are fractions of the crop: x1..x5 then y1..y5.
        landmarks = heads[LANDMARKS].reshape(2, 5).T * (crop_box[2:4] - crop_box[0:2] + 1) + crop_box[0:2] - 1
        face = Face(box=box, score=score, landmarks=landmarks, rotation=None, crop_box=crop_box)
        if self.pose_trained:
            face.rotation = sixd_to_rotation(heads[SIXD])
            face.yaw, face.pitch, face.roll = matrix_to_euler(face.rotation)
        return face


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in channels-last memory, the pixels' own layout.

    Channels-last is also what makes torch's CPU max-pooling fast (about 10x here)."""
    return torch.from_numpy(batch.astype(np.float32)).permute(0, 3, 1, 2)


def pnet_cells(side: int) -> int:
    """P-Net output cells along an input side: 3x3 conv, 2x2 ceil-mode pool, two 3x3 convs."""
    return (side - 1) // 2 - 4


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first ('min' divides by the smaller area)."""
    if len(boxes) < 2:   # the tracked face alone: nothing to suppress, and the loop's setup cost ~10 us
        return np.arange(len(boxes), dtype=np.int64)
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
    boxes = boxes[:, :4].astype(np.float32)   # a copy
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
        if x1 >= 0 and y1 >= 0 and x2 < w and y2 < h:   # inside: resize a view, no padded copy
            out[k] = cv2.resize(image[y1:y2 + 1, x1:x2 + 1], (size, size), interpolation=cv2.INTER_AREA)
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
