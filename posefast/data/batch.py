"""``Batch``: what ``PoseLoader`` yields."""
import dataclasses
from typing import Optional

import torch


@dataclasses.dataclass
class Batch:
    """One batch of samples; every tensor lives on the loader's device.

    images: float32 [B, 3, H, W], ImageNet-normalised RGB.
    keypoints: float32 [B, 17, 2] input px after augmentation (joints swapped if flipped).
    visible: float32 [B, 17]: 1 if labelled and inside the input image, else 0.
    heatmap_keypoints: float32 [B, 17, 2] heatmap px: ``(input_px + 0.5) / stride - 0.5``.
    targets: float32 [B, 17, H/stride, W/stride] Gaussian heatmaps, or None.
    affine: float32 [B, 2, 3] original image px -> input px (augmentation included).
    flipped: bool [B], whether the sample was mirrored (its left/right joints swapped).
    bbox: float32 [B, 4] person box xywh, original px.
    image_ids, ann_ids: int64 [B].
    gt_keypoints_orig: float32 [B, 17, 2], gt_visible_orig: float32 [B, 17] (labelled = 1):
        the unaugmented annotation in original px and original joint order.
    indices: int64 [B] dataset indices of the samples.
    """

    images: torch.Tensor
    keypoints: torch.Tensor
    visible: torch.Tensor
    heatmap_keypoints: torch.Tensor
    targets: Optional[torch.Tensor]
    affine: torch.Tensor
    flipped: torch.Tensor
    bbox: torch.Tensor
    image_ids: torch.Tensor
    ann_ids: torch.Tensor
    gt_keypoints_orig: torch.Tensor
    gt_visible_orig: torch.Tensor
    indices: torch.Tensor

    def __len__(self):
        return self.images.shape[0]

    def to(self, device, non_blocking=False):
        """A copy with every tensor moved to ``device``."""
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        moved = {k: (v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v) for k, v in moved.items()}
        return Batch(**moved)
