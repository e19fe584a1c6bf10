"""MTCNN's P-Net and R-Net, with facenet-pytorch's trained weights.

The layer names match facenet-pytorch's, so its state dicts (`facenet_pytorch/data/*.pt`) load
unchanged; we take only the networks and weights from that package, not its `detect`.
MTCNN was trained on RGB images scaled to (x - 127.5) / 128. `fold_bgr_input` moves both the
channel swap and that scaling into the first convolution (exact: these convolutions have no
padding), so the cascade feeds OpenCV's BGR pixels straight in and saves a pass over every
pyramid level.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

PIXEL_MEAN = 127.5
PIXEL_SCALE = 0.0078125  # 1 / 128, MTCNN's input scaling
SIMD_CHANNELS = 16       # AVX-512 float lanes: channels-last PReLU and max-pool vectorise over this many channels


def facenet_weights(name: str) -> Path:
    """Path of one of facenet-pytorch's bundled MTCNN state dicts ('pnet', 'rnet', 'onet')."""
    import facenet_pytorch  # located, not imported for its code: only its data folder is used

    path = Path(facenet_pytorch.__file__).parent / "data" / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall facenet-pytorch>=2.5.3,<2.6")
    return path


@torch.no_grad()
def fold_bgr_input(conv: nn.Conv2d) -> None:
    """Make a first conv layer that expected normalised RGB accept raw BGR pixel values."""
    w = conv.weight.flip(1)
    conv.bias -= (w * PIXEL_MEAN * PIXEL_SCALE).sum(dim=(1, 2, 3))
    conv.weight.copy_(w * PIXEL_SCALE)


@torch.no_grad()
def pad_channels(conv: nn.Conv2d, prelu: nn.PReLU, following: nn.Conv2d, multiple: int = SIMD_CHANNELS) -> None:
    """Give `conv` all-zero extra output channels up to a multiple of `multiple` (exact).

    P-Net's first layer has 10 channels; in channels-last memory torch's PReLU and max-pool fall
    back to a scalar loop for such a count, which made them cost as much as the convolutions.
    The extra channels are 0 after the convolution, PReLU and pooling, and `following` gives them
    zero weight, so the outputs do not change.
    """
    extra = -conv.out_channels % multiple
    if not extra:
        return
    conv.weight = nn.Parameter(torch.cat([conv.weight, conv.weight.new_zeros(extra, *conv.weight.shape[1:])]))
    conv.bias = nn.Parameter(torch.cat([conv.bias, conv.bias.new_zeros(extra)]))
    conv.out_channels += extra
    prelu.weight = nn.Parameter(torch.cat([prelu.weight, prelu.weight.new_zeros(extra)]))
    prelu.num_parameters += extra
    shape = (following.out_channels, extra, *following.weight.shape[2:])
    following.weight = nn.Parameter(torch.cat([following.weight, following.weight.new_zeros(shape)], dim=1))
    following.in_channels += extra


class PNet(nn.Module):
    """Fully convolutional proposal net: a 12x12 window per output cell, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (box regression (N,4,H,W), face probability (N,H,W))."""
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)[:, 1]


class RNet(nn.Module):
    """Refinement net on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (box regression (N,4), face probability (N,))."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The converted weights expect the (W, H, C) flattening order of the original Caffe model.
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).flatten(1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)[:, 1]


def load_pretrained(net: nn.Module, name: str) -> nn.Module:
    """facenet-pytorch's weights, folded for BGR pixel input, in eval mode (P-Net channel-padded)."""
    net.load_state_dict(torch.load(facenet_weights(name), map_location="cpu", weights_only=True))
    fold_bgr_input(net.conv1)
    if isinstance(net, PNet):
        pad_channels(net.conv1, net.prelu1, net.conv2)
    return net.eval()
