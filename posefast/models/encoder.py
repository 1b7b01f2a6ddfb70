"""ResNet-18 encoder (torchvision, without pooling and classifier) and its ImageNet weights.

Weights come, in order of preference, from an explicit file (``pretrained=PATH``), from
the torch hub cache (``<hub>/checkpoints/resnet18-f37072fd.pth``) when present, or, only
when asked with ``pretrained="download"``, from torchvision's download. Otherwise the
encoder is randomly initialised and a loud warning says so; callers record the returned
``pretrained`` flag in the run metadata and checkpoints. Nothing is ever downloaded
implicitly.
"""
from __future__ import annotations

import os
import warnings

import torch
from torch import nn
from torchvision.models import resnet18

HUB_FILENAME = "resnet18-f37072fd.pth"
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
        net = resnet18(weights=None)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.pool = net.maxpool
        self.layer1, self.layer2 = net.layer1, net.layer2
        self.layer3, self.layer4 = net.layer3, net.layer4

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        s2 = self.stem(x)
        s4 = self.layer1(self.pool(s2))
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        s32 = self.layer4(s16)
        return {2: s2, 4: s4, 8: s8, 16: s16, 32: s32}

    def load_imagenet_state(self, state: dict) -> None:
        """Load a torchvision ``resnet18`` state dict (the ``fc`` weights are ignored)."""
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
    no warning), ``"download"`` (let torchvision fetch the weights), or a file path
    (must exist).
    """
    encoder = ResNet18Encoder()
    if pretrained == "none":
        return encoder, False
    if pretrained == "download":
        from torchvision.models import ResNet18_Weights

        state = ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
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
