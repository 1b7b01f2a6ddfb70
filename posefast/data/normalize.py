"""ImageNet mean/std normalisation of images in the 0..255 range, and its inverse."""
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(images_255):
    """``[B, 3, H, W]`` float in 0..255 (RGB) -> ImageNet-normalised float (one fused pass)."""
    options = {"dtype": images_255.dtype, "device": images_255.device}
    scale = 1 / (torch.tensor(IMAGENET_STD, **options).view(1, 3, 1, 1) * 255)
    shift = -torch.tensor(IMAGENET_MEAN, **options).view(1, 3, 1, 1) / torch.tensor(IMAGENET_STD, **options).view(1, 3, 1, 1)
    return torch.addcmul(shift, images_255, scale)


def denormalize_to_uint8(images):
    """ImageNet-normalised ``[B, 3, H, W]`` -> ``uint8 [B, H, W, 3]`` numpy (RGB) on the CPU."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    pixels = (images.float() * std + mean).mul(255).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()
