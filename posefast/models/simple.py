"""SimpleBaseline-style pose net: ResNet-18 + three deconvolutions, output stride 4."""
from __future__ import annotations

import torch
from torch import nn

from posefast.models.encoder import STAGE_CHANNELS, build_encoder
from posefast.models.head import init_heatmap_head


class SimplePoseNet(nn.Module):
    """ResNet-18 stride-32 features -> 3 x [ConvTranspose 4x4/2, BN, ReLU] -> 1x1 conv.

    Output: ``[B, K, H/4, W/4]`` heatmap logits (64x48 for a 256x192 input).
    Attributes: ``output_stride`` (4), ``num_keypoints``, ``pretrained`` (ImageNet
    weights loaded or not).
    """

    output_stride = 4

    def __init__(self, num_keypoints: int = 17, pretrained: str = "auto", channels: int = 256,
                 head_bias: float = 0.0):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.encoder, self.pretrained = build_encoder(pretrained)
        layers, in_ch = [], STAGE_CHANNELS[32]
        for _ in range(3):
            layers += [
                nn.ConvTranspose2d(in_ch, channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
            in_ch = channels
        self.deconv = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels, num_keypoints, 1)
        for m in self.deconv.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
        init_heatmap_head(self.head, head_bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.deconv(self.encoder(images)[32]))
