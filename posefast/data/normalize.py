"""ImageNet mean/std normalisation of images in the 0..255 range, and its inverse."""
import functools

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=None)
def _scale_shift(device, dtype):
    """Per-channel (scale, shift) with ``(x / 255 - mean) / std == x * scale + shift``, cached per device
    so that normalising never issues a blocking host-to-device copy."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    return (1 / (std * 255)).to(device=device, dtype=dtype), (-mean / std).to(device=device, dtype=dtype)


def normalize_images(images_255):
    """``[B, 3, H, W]`` float in 0..255 (RGB) -> ImageNet-normalised float (one fused pass)."""
    scale, shift = _scale_shift(images_255.device, images_255.dtype)
    return torch.addcmul(shift, images_255, scale)


def denormalize_to_uint8(images):
    """ImageNet-normalised ``[B, 3, H, W]`` -> ``uint8 [B, H, W, 3]`` numpy (RGB) on the CPU."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    pixels = (images.float() * std + mean).mul(255).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()
