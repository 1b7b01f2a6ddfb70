"""COCO keypoint AP/AR (OKS) of COCO-format results, through pycocotools' ``COCOeval``."""
import contextlib
import copy
import io

import numpy as np

STAT_NAMES = ("AP", "AP50", "AP75", "AP_medium", "AP_large", "AR", "AR50", "AR75", "AR_medium", "AR_large")


def oks_ap(coco_gt, results, image_ids=None):
    """``{AP, AP50, ..., AR_large}`` of keypoint ``results`` (COCO results entries) against the
    ``pycocotools.coco.COCO`` ground truth ``coco_gt``, over ``image_ids`` (default: the
    images the results cover). pycocotools' printing is captured, not shown; -1 means
    "no ground truth in that area range", as in pycocotools.
    """
    from pycocotools.cocoeval import COCOeval

    if not results:
        raise ValueError("no predictions to evaluate")
    ids = sorted({int(r["image_id"]) for r in results}) if image_ids is None else sorted(int(i) for i in image_ids)
    missing = sorted(set(ids) - set(coco_gt.getImgIds()))
    if missing:
        raise ValueError(f"image ids {missing[:5]} are not in the ground truth")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))  # loadRes adds fields in place
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.imgIds = ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(STAT_NAMES, np.asarray(evaluator.stats))}


def load_coco(ann_file):
    """A ``pycocotools.coco.COCO`` of ``ann_file``, loaded quietly."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(ann_file)
