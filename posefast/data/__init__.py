"""posefast.data: COCO keypoints in a memory-mapped crop cache, GPU augmentation, synthetic people.

Typical use::

    train = CocoKeypoints("train.json", "images/", cache_dir=...)
    loader = PoseLoader(train, 64, shuffle=True, drop_last=True, device="cuda",
                        augment=AugmentConfig(), output_stride=model.output_stride)
    for epoch in range(n):
        loader.set_epoch(epoch)
        for batch in loader:  # a Batch
            ...
"""
from posefast.data.augment import AugmentConfig
from posefast.data.bad_input import BadInputError
from posefast.data.batch import Batch
from posefast.data.benchmark import benchmark_loader
from posefast.data.cache import default_cache_dir
from posefast.data.coco import CocoKeypoints
from posefast.data.geometry import invert_keypoints
from posefast.data.loader import PoseLoader

__all__ = ["AugmentConfig", "BadInputError", "Batch", "CocoKeypoints", "PoseLoader", "benchmark_loader",
           "default_cache_dir", "invert_keypoints"]
