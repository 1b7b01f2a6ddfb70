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
    results = copy.deepcopy(results)  # loadRes adds fields in place
    person_ids = coco_gt.getCatIds(catNms=["person"])
    if len(person_ids) == 1:  # the file's own person id (not always 1), and only its annotations
        for entry in results:
            entry["category_id"] = person_ids[0]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.imgIds = ids
        if person_ids:
            evaluator.params.catIds = person_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(STAT_NAMES, np.asarray(evaluator.stats))}


def load_coco(ann_file):
    """A ``pycocotools.coco.COCO`` of ``ann_file``, loaded quietly. Annotations without the
    ``num_keypoints`` or ``area`` COCOeval reads get them from their keypoints (the labelled
    count) and box (``w * h``), as the training data reader does without them."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(ann_file)
    for ann in coco.anns.values():
        if "num_keypoints" not in ann:
            ann["num_keypoints"] = int(sum(v > 0 for v in ann.get("keypoints", [])[2::3]))
        if "area" not in ann and len(ann.get("bbox", [])) == 4:
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
    return coco
