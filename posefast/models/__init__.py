"""Pose networks: a ResNet-18 encoder with a SimpleBaseline or U-Net heatmap decoder.

Every model returns heatmap logits ``[B, K, H/s, W/s]`` and exposes ``output_stride``
``s`` (the target heatmap resolution is derived from it), ``num_keypoints`` and
``pretrained`` (whether ImageNet weights were loaded).
"""
from posefast.models.encoder import ResNet18Encoder, build_encoder, hub_cache_path
from posefast.models.simple import SimplePoseNet
from posefast.models.unet import UNetPoseNet

MODELS = {"simple": SimplePoseNet, "unet": UNetPoseNet}


def build_model(name: str, *, num_keypoints: int = 17, pretrained: str = "auto", output_stride: int = 4,
                head_bias: float = 0.0):
    """Model by name (``"simple"`` or ``"unet"``). ``simple`` only supports stride 4."""
    if name == "simple":
        if output_stride != 4:
            raise ValueError(f"model 'simple' has output stride 4, got output_stride={output_stride}")
        return SimplePoseNet(num_keypoints, pretrained, head_bias=head_bias)
    if name == "unet":
        return UNetPoseNet(num_keypoints, pretrained, output_stride, head_bias=head_bias)
    raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")


__all__ = ["ResNet18Encoder", "SimplePoseNet", "UNetPoseNet", "MODELS", "build_model", "build_encoder",
           "hub_cache_path"]
