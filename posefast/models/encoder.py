"""ResNet-18 encoder (without pooling and classifier) and its ImageNet weights.

The network is built from posefast's own blocks (``resnet_blocks``), named as torchvision
names them, so torchvision's ImageNet state dict loads as it is and torchvision itself is
not needed. Weights come, in order of preference, from an explicit file
(``pretrained=PATH``), from the torch hub cache (``<hub>/checkpoints/resnet18-f37072fd.pth``)
when present, or, only when asked with ``pretrained="download"``, from the address
torchvision downloads them from (into that same cache). Otherwise the
encoder is randomly initialised and a loud warning says so; callers record the returned
``pretrained`` flag in the run metadata and checkpoints. Nothing is ever downloaded
implicitly.
"""
from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from posefast.models.resnet_blocks import RESNET18_BLOCKS, RESNET18_WIDTHS, init_resnet_, resnet_stage, resnet_stem

HUB_FILENAME = "resnet18-f37072fd.pth"
WEIGHTS_URL = "https://download.pytorch.org/models/" + HUB_FILENAME
STAGE_CHANNELS = {2: 64, 4: 64, 8: 128, 16: 256, 32: 512}


def hub_cache_path() -> str:
    """Where torchvision keeps the ImageNet ResNet-18 weights once downloaded."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", HUB_FILENAME)


class ResNet18Encoder(nn.Module):
    """ResNet-18 trunk returning the feature map of every stage, keyed by stride.

    ``forward(x)`` -> ``{2: stem [64], 4: layer1 [64], 8: layer2 [128], 16: layer3 [256],
    32: layer4 [512]}``. The pooling and classifier of the classification net are dropped.
    """

    def __init__(self):
        super().__init__()
        self.stem = resnet_stem()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        widths, blocks = RESNET18_WIDTHS, RESNET18_BLOCKS
        self.layer1 = resnet_stage(64, widths[0], blocks[0], stride=1)
        self.layer2 = resnet_stage(widths[0], widths[1], blocks[1], stride=2)
        self.layer3 = resnet_stage(widths[1], widths[2], blocks[2], stride=2)
        self.layer4 = resnet_stage(widths[2], widths[3], blocks[3], stride=2)
        init_resnet_(self)

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        s2 = self.stem(x)
        s4 = self.layer1(self.pool(s2))
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        s32 = self.layer4(s16)
        return {2: s2, 4: s4, 8: s8, 16: s16, 32: s32}

    def load_imagenet_state(self, state: dict) -> None:
        """Load a torchvision ``resnet18`` state dict (the ``fc`` weights are ignored)."""
        if {"model", "config"} <= set(state):
            raise ValueError("this is a posefast training checkpoint, not ImageNet weights: fine-tune from it with "
                             "--init_from PATH")
        mapping = {"conv1.": "stem.0.", "bn1.": "stem.1."}
        renamed = {}
        for key, value in state.items():
            if key.startswith("fc."):
                continue
            for old, new in mapping.items():
                if key.startswith(old):
                    key = new + key[len(old):]
            renamed[key] = value
        missing, unexpected = self.load_state_dict(renamed, strict=False)
        if missing or unexpected:
            raise ValueError(f"not a ResNet-18 state dict: missing {missing[:4]}, unexpected {unexpected[:4]}")


def build_encoder(pretrained: str = "auto") -> tuple[ResNet18Encoder, bool]:
    """Encoder and whether it holds ImageNet weights.

    ``pretrained``: ``"auto"`` (hub cache if present, else random), ``"none"`` (random,
    no warning), ``"download"`` (fetch the weights into the hub cache), or a file path
    (must exist).
    """
    encoder = ResNet18Encoder()
    if pretrained == "none":
        return encoder, False
    if pretrained == "download":
        state = torch.hub.load_state_dict_from_url(WEIGHTS_URL, map_location="cpu", progress=True,
                                                   weights_only=True)
        encoder.load_imagenet_state(state)
        return encoder, True
    path = hub_cache_path() if pretrained == "auto" else pretrained
    if os.path.isfile(path):
        encoder.load_imagenet_state(torch.load(path, map_location="cpu", weights_only=True))
        return encoder, True
    if pretrained != "auto":
        raise FileNotFoundError(f"pretrained weights file not found: {pretrained}")
    warnings.warn(
        f"\n{'!' * 72}\n!! No ImageNet weights for ResNet-18 at {path}.\n"
        "!! The encoder starts from RANDOM initialisation (pretrained: false).\n"
        "!! Pass --pretrained PATH, or --pretrained download when online.\n"
        f"{'!' * 72}",
        stacklevel=3,
    )
    return encoder, False
