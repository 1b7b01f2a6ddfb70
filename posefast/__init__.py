"""posefast: fast 2D human pose estimation (17 COCO keypoints) with fused torch ops."""

__version__ = "0.1.0"
