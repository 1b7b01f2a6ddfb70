"""Initialisation shared by the heatmap heads."""
from torch import nn


def init_heatmap_head(conv: nn.Conv2d, bias: float) -> None:
    """Small weights and a constant bias for the final 1x1 heatmap conv.

    A negative bias (a low prior probability per pixel) lets a BCE-trained head start
    near the mostly-zero targets instead of at p = 0.5 everywhere.
    """
    nn.init.normal_(conv.weight, std=0.001)
    nn.init.constant_(conv.bias, bias)
