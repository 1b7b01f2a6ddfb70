"""Keypoint predictions in the COCO results format, which any COCO tool can score.

One entry per predicted person::

    {"image_id": int, "category_id": 1, "keypoints": [x1, y1, c1, ..., x17, y17, c17],
     "score": float, ...extra fields (e.g. "gt_ann_id", "file_name")}

``x, y`` are original-image pixels in COCO's convention. posefast's pixel-centre convention
(the centre of pixel (i, j) is (x=j, y=i)) is also COCO's for keypoints, so no offset is
applied. ``c`` is the joint's confidence (COCOeval ignores it); ``score`` is the person's.
"""
import json
import os

import numpy as np

PERSON_CATEGORY_ID = 1


def coco_results(image_ids, keypoints, joint_scores, scores=None, **extra):
    """COCO results entries for ``N`` persons.

    ``image_ids [N]``, ``keypoints [N, 17, 2]`` (original px), ``joint_scores [N, 17]``;
    ``scores [N]`` defaults to the mean joint score. ``extra``: per-person sequences of
    length ``N`` added to each entry under their keyword (e.g. ``gt_ann_id=...``).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    joint_scores = np.asarray(joint_scores, dtype=np.float64)
    scores = joint_scores.mean(axis=1) if scores is None else np.asarray(scores, dtype=np.float64)
    image_ids = np.asarray(image_ids)
    for name, values in extra.items():
        if len(values) != len(image_ids):
            raise ValueError(f"{name}: {len(values)} values for {len(image_ids)} persons")
    entries = []
    for i in range(len(image_ids)):
        triplets = np.concatenate([keypoints[i], joint_scores[i][:, None]], axis=1)
        entry = {"image_id": int(image_ids[i]), "category_id": PERSON_CATEGORY_ID,
                 "keypoints": [round(float(v), 3) for v in triplets.reshape(-1)], "score": round(float(scores[i]), 5)}
        for name, values in extra.items():
            value = values[i]
            entry[name] = value.item() if hasattr(value, "item") else value
        entries.append(entry)
    return entries


def write_json(data, path):
    """Write ``data`` as JSON to ``path`` (folders created); returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)
    return path
