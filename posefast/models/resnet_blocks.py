"""The building blocks of ResNet-18, named as in torchvision so its weights load as they are.

posefast does not import torchvision for the encoder: a torch install without it (or with a
torchvision that does not match it) trains and evaluates all the same. Parameter names
(``layerN.M.conv1/bn1/conv2/bn2/downsample.0/downsample.1``) and the initialisation (He
normal, fan-out, for convolutions; unit scale and zero shift for batch norm) follow the
ResNet paper's ImageNet model as torchvision publishes it.
"""
from __future__ import annotations

import torch
from torch import nn

# ResNet-18: two basic blocks per stage; stage widths; the first block of stages 2-4 halves
# the resolution.
RESNET18_BLOCKS = (2, 2, 2, 2)
RESNET18_WIDTHS = (64, 128, 256, 512)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1-projected) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


def resnet_stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [BasicBlock(in_channels, out_channels, stride)]
    layers += [BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def resnet_stem() -> nn.Sequential:
    """7x7 stride-2 convolution, batch norm, ReLU (stride 2, 64 channels)."""
    return nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
                         nn.ReLU(inplace=True))


def init_resnet_(module: nn.Module) -> None:
    """He-normal (fan-out) convolutions, unit/zero batch norm: the ImageNet ResNet recipe."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
