"""posefast's operators: Python entry points over the compiled ``torch.ops.posefast``.

Every op validates its arguments (``ValueError`` naming the argument, expected and actual
shape, dtype or device), works on CPU and CUDA through PyTorch's dispatcher, and has a fake
kernel so it traces under ``torch.compile``. The pure-PyTorch references with the same
semantics are in ``kernels_py``.
"""
from posefast.ops._extension import cpu_simd_level, load_extension

load_extension()

from posefast.ops.pck import pck_counts  # noqa: E402
from posefast.ops.pose_loss import pose_loss  # noqa: E402
from posefast.ops.render import render_heatmaps  # noqa: E402
from posefast.ops.soft_argmax import soft_argmax  # noqa: E402

__all__ = ["render_heatmaps", "soft_argmax", "pck_counts", "pose_loss", "cpu_simd_level"]
