"""U-Net pose net: ResNet-18 encoder, decoder with skip connections, output stride 4/2/1."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from posefast.models.encoder import STAGE_CHANNELS, build_encoder
from posefast.models.head import init_heatmap_head

DECODER_CHANNELS = {16: 256, 8: 128, 4: 64, 2: 32, 1: 16}


def conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 conv (no bias) + BatchNorm + ReLU."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch),
                         nn.ReLU(inplace=True))


class UpBlock(nn.Module):
    """Bilinear x2 upsampling, concatenation with the encoder skip (if any), two convs."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int):
        super().__init__()
        self.convs = nn.Sequential(conv_bn_relu(in_ch + skip_ch, out_ch), conv_bn_relu(out_ch, out_ch))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        size = skip.shape[-2:] if skip is not None else (x.shape[-2] * 2, x.shape[-1] * 2)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


class UNetPoseNet(nn.Module):
    """ResNet-18 encoder + U-Net decoder to ``[B, K, H/s, W/s]`` heatmap logits.

    The decoder climbs from stride 32 one octave at a time, concatenating the encoder
    stage of the same stride (16, 8, 4, 2; stride 1 has no skip), until it reaches
    ``output_stride`` (4, 2 or 1; 1 is full input resolution as in the original study).
    """

    def __init__(self, num_keypoints: int = 17, pretrained: str = "auto", output_stride: int = 4,
                 head_bias: float = 0.0):
        super().__init__()
        if output_stride not in (4, 2, 1):
            raise ValueError(f"UNetPoseNet output_stride must be 4, 2 or 1, got {output_stride}")
        self.num_keypoints = num_keypoints
        self.output_stride = output_stride
        self.encoder, self.pretrained = build_encoder(pretrained)
        self.blocks = nn.ModuleDict()
        in_ch, stride = STAGE_CHANNELS[32], 16
        while stride >= output_stride:
            skip_ch = STAGE_CHANNELS.get(stride, 0)
            self.blocks[str(stride)] = UpBlock(in_ch, skip_ch, DECODER_CHANNELS[stride])
            in_ch, stride = DECODER_CHANNELS[stride], stride // 2
        self.head = nn.Conv2d(in_ch, num_keypoints, 1)
        init_heatmap_head(self.head, head_bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(images)
        x = feats[32]
        for stride, block in self.blocks.items():
            x = block(x, feats.get(int(stride)))
        return self.head(x)
