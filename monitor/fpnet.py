"""FPNet: MTCNN's O-Net with a fourth head that regresses head pose as a 6D rotation.

The thesis behind the project: O-Net is already run on every face the cascade finds, so giving
it a pose head costs almost nothing, where a separate pose network (6DRepNet, FSA-Net) would
cost more than the whole detector. The pose head is learnt by distillation from the teachers
(`monitor.training`); everything else starts from facenet-pytorch's O-Net, so detection
matches MTCNN's from day one.

Input: raw BGR pixels (0..255) of 48x48 crops, (N, 3, 48, 48) float. O-Net was trained on RGB,
so `from_onet` flips the first layer's input channels once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from monitor.nets import PIXEL_MEAN, PIXEL_SCALE, facenet_weights
from monitor.rotation import sixd_to_matrix

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "fpnet.pt"
INPUT_SIZE = 48


@dataclass
class FPNetOutput:
    box_reg: torch.Tensor    # (N, 4) offsets of the box corners, in box sizes
    landmarks: torch.Tensor  # (N, 10) x1..x5, y1..y5 as fractions of the box
    face_prob: torch.Tensor  # (N,)
    sixd: torch.Tensor       # (N, 6) raw rotation head; `rotation()` makes it a matrix


class FPNet(nn.Module):
    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dropout = nn.Dropout(dropout)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)
        self.dense6_4 = nn.Linear(256, 6)
        # Start the pose head at the identity rotation, so an untrained head is at least frontal.
        with torch.no_grad():
            self.dense6_4.weight.mul_(0.01)
            self.dense6_4.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_after_conv1(self.conv1((x - PIXEL_MEAN) * PIXEL_SCALE))

    def features_after_conv1(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.prelu1(x))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        # O-Net's converted weights expect the original model's (W, H, C) flattening order.
        return self.dropout(self.prelu5(self.dense5(x.permute(0, 3, 2, 1).flatten(1))))

    def forward(self, x: torch.Tensor) -> FPNetOutput:
        f = self.features(x)
        return FPNetOutput(
            box_reg=self.dense6_2(f),
            landmarks=self.dense6_3(f),
            face_prob=torch.softmax(self.dense6_1(f), dim=1)[:, 1],
            sixd=self.dense6_4(f),
        )

    @staticmethod
    def rotation(sixd: torch.Tensor) -> torch.Tensor:
        return sixd_to_matrix(sixd)


HEAD_SIZES = (2, 4, 10, 6)   # outputs of dense6_1 (face logits), 6_2 (box), 6_3 (landmarks), 6_4 (6D pose)
FACE_LOGITS, BOX_REG, LANDMARKS, SIXD = (slice(end - size, end)
                                          for size, end in zip(HEAD_SIZES, accumulate(HEAD_SIZES)))
_NORMALIZE_EPS = 1e-12       # torch.nn.functional.normalize's, as in rotation.sixd_to_matrix


class InferenceFPNet(nn.Module):
    """An FPNet for the cascade: same outputs, about a sixth less time on one face.

    The pixel normalisation is folded into a copy of conv1 (exact: conv1 has no padding) and the
    four heads are one matrix, which saves a pass over the crop and three calls per batch. Made
    at load time from whatever weights FPNet has, so a retrained fpnet.pt needs nothing else.
    The forward pass calls torch's built-in ops itself: on one 48x48 crop the module calls and
    their Python wrappers cost ~13% of the pass. It returns the raw heads; what follows them is
    done outside torch (`face_probability`, `sixd_to_rotation`), where torch's per-op cost
    (~5-10 us) would be most of the work for one face.
    """

    def __init__(self, net: FPNet) -> None:
        super().__init__()
        self.net = net.eval()
        self.conv1 = nn.Conv2d(3, net.conv1.out_channels, net.conv1.kernel_size)
        heads = [net.dense6_1, net.dense6_2, net.dense6_3, net.dense6_4]
        self.heads = nn.Linear(net.dense5.out_features, sum(HEAD_SIZES))
        with torch.no_grad():
            self.conv1.weight.copy_(net.conv1.weight * PIXEL_SCALE)
            shift = (net.conv1.weight * PIXEL_MEAN * PIXEL_SCALE).sum(dim=(1, 2, 3))
            self.conv1.bias.copy_(net.conv1.bias - shift)
            self.heads.weight.copy_(torch.cat([h.weight for h in heads]))
            self.heads.bias.copy_(torch.cat([h.bias for h in heads]))
        self._blocks = [(self.conv1, net.prelu1, net.pool1), (net.conv2, net.prelu2, net.pool2),
                        (net.conv3, net.prelu3, net.pool3), (net.conv4, net.prelu4, None)]
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 22) raw outputs of the four heads, in HEAD_SIZES order, for (N, 3, 48, 48) BGR pixels."""
        for conv, prelu, pool in self._blocks:
            x = torch.prelu(torch.conv2d(x, conv.weight, conv.bias), prelu.weight)
            if pool is not None:
                x = torch.max_pool2d(x, pool.kernel_size, pool.stride, pool.padding, pool.dilation,
                                     pool.ceil_mode)
        # O-Net's converted weights expect the original model's (W, H, C) flattening order.
        dense5, prelu5 = self.net.dense5, self.net.prelu5
        x = torch.prelu(F.linear(x.permute(0, 3, 2, 1).flatten(1), dense5.weight, dense5.bias), prelu5.weight)
        return F.linear(x, self.heads.weight, self.heads.bias)


def face_probability(heads: np.ndarray) -> np.ndarray:
    """(N,) softmax of the two face logits in (N, 22) head outputs: the probability of "face"."""
    logits = heads[:, FACE_LOGITS]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))   # shifted as torch.softmax does: never overflows
    return e[:, 1] / e.sum(axis=1)


def sixd_to_rotation(sixd: np.ndarray) -> np.ndarray:
    """`rotation.sixd_to_matrix` for one face, in float64 Python arithmetic.

    The cascade turns one or two faces a frame into rotations, where each of torch's (or numpy's)
    small operations costs more than the arithmetic: this was ~100 us of a tracked frame in torch.
    """
    a1x, a1y, a1z, a2x, a2y, a2z = sixd.tolist()
    n1 = max(math.sqrt(a1x * a1x + a1y * a1y + a1z * a1z), _NORMALIZE_EPS)
    b1x, b1y, b1z = a1x / n1, a1y / n1, a1z / n1
    dot = b1x * a2x + b1y * a2y + b1z * a2z
    cx, cy, cz = a2x - dot * b1x, a2y - dot * b1y, a2z - dot * b1z
    n2 = max(math.sqrt(cx * cx + cy * cy + cz * cz), _NORMALIZE_EPS)
    b2x, b2y, b2z = cx / n2, cy / n2, cz / n2
    return np.array([[b1x, b2x, b1y * b2z - b1z * b2y],      # columns b1, b2, b1 x b2
                     [b1y, b2y, b1z * b2x - b1x * b2z],
                     [b1z, b2z, b1x * b2y - b1y * b2x]])


def from_onet() -> FPNet:
    """An FPNet whose detection, box and landmark heads are facenet-pytorch's O-Net (BGR input)."""
    net = FPNet()
    state = torch.load(facenet_weights("onet"), map_location="cpu", weights_only=True)
    state["conv1.weight"] = state["conv1.weight"].flip(1)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"dense6_4.weight", "dense6_4.bias"}:
        raise RuntimeError(f"O-Net weights do not fit FPNet: missing {missing}, unexpected {unexpected}")
    return net


def load_fpnet(path: Path | None = DEFAULT_WEIGHTS) -> tuple[FPNet, bool]:
    """(network in eval mode, whether its pose head is trained).

    Without trained weights the O-Net heads still detect faces, and the caller must report head
    pose as unavailable rather than show the untrained head's output.
    """
    if path is not None and Path(path).is_file():
        net = FPNet()
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except (RuntimeError, KeyError) as exc:
            raise RuntimeError(f"{path} is not an FPNet state dict: {exc}") from exc
        return net.eval(), True
    return from_onet().eval(), False
