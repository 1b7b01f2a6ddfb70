"""Flip test: average a network's heatmap logits with those of the mirrored image.

Mirroring an input of width ``W`` maps input px ``x`` to ``W - 1 - x``; with the data's
heatmap convention ``(x + 0.5) / stride - 0.5`` that is heatmap px ``w - 1 - x_h`` for a
map of width ``w = W / stride``, so flipping the heatmaps back along their width is exact
(no half-pixel shift is needed). The left/right channels are swapped with
``posefast.skeleton.FLIP_INDEX``.
"""
import torch

from posefast.skeleton import FLIP_INDEX


def unflip_heatmaps(logits: torch.Tensor) -> torch.Tensor:
    """Heatmaps of a mirrored image ``[B, 17, H, W]`` -> heatmaps in the original image's frame."""
    index = torch.as_tensor(FLIP_INDEX, device=logits.device)
    return logits.flip(-1).index_select(1, index)


@torch.no_grad()
def predict_heatmaps(model, images: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """Float32 heatmap logits ``[B, 17, H, W]`` of ``model`` on normalised ``images``; with
    ``flip``, the mean of the logits of the image and (mirrored back) of its mirror image."""
    logits = model(images).float()
    if flip:
        logits = 0.5 * (logits + unflip_heatmaps(model(images.flip(-1)).float()))
    return logits
