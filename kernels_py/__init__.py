"""Pure-PyTorch reference implementations of every posefast op.

These are the ground truth for the tests and the baseline for the benchmarks: plain
tensor code, obviously right, and float64-capable. They follow exactly the semantics
documented in :mod:`posefast.ops`.
"""
from kernels_py.render import render_heatmaps
from kernels_py.soft_argmax import soft_argmax
from kernels_py.pck import pck_counts
from kernels_py.pose_loss import pose_loss

__all__ = ["render_heatmaps", "soft_argmax", "pck_counts", "pose_loss"]
