"""posefast.data: COCO keypoints in a memory-mapped crop cache, GPU augmentation, synthetic people."""
from posefast.data.bad_input import BadInputError
from posefast.data.coco import CocoKeypoints
from posefast.data.geometry import invert_keypoints

__all__ = ["BadInputError", "CocoKeypoints", "invert_keypoints"]
