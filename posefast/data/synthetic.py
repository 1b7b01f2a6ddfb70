"""A built-in synthetic COCO-format keypoint dataset of procedurally drawn people.

``make_synthetic_dataset(root, num_train=..., num_val=...)`` writes ``images/*.jpg``,
``train.json`` and ``val.json`` once; the same parameters and seed give byte-identical
JSON (and, with the same OpenCV, identical JPEGs), and a second call with matching
parameters reuses the files. Each image holds one or two people, of a size and position
drawn at random, facing the camera or away; some joints are hidden behind a box (labelled
``v=1``) and joints outside the image are unlabelled (``v=0``, as in COCO).
"""
import json
import os

import cv2
import numpy as np

from posefast.data.cache import default_cache_dir
from posefast.data.synthetic_person import draw_background, draw_occluder, draw_person, sample_pose
from posefast.skeleton import KEYPOINT_NAMES, SKELETON

SYNTHETIC_FORMAT_VERSION = 1
JPEG_QUALITY = 92


def default_synthetic_root():
    """``<cache dir>/synthetic`` (cache dir: ``$POSEFAST_CACHE_DIR`` or ``~/.cache/posefast``)."""
    return os.path.join(default_cache_dir(), "synthetic")


def _people_layout(rng, size_hw):
    """(hip centre, body height) of the one or two people of an image, side by side."""
    height, width = size_hw
    count = 1 if rng.random() < 0.6 else 2
    layout = []
    for slot in range(count):
        body = height * (rng.uniform(0.55, 0.85) if count == 1 else rng.uniform(0.45, 0.65))
        slot_width = width / count
        x = slot_width * (slot + 0.5) + rng.uniform(-0.15, 0.15) * slot_width
        y = height * 0.5 + body * 0.05 + rng.uniform(-0.12, 0.12) * height
        layout.append(((x, y), body))
    return layout


def _inside(points, box):
    x0, y0, x1, y1 = box
    return (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)


def draw_synthetic_image(rng, size_hw):
    """One RGB image and its person annotations (list of dicts with ``keypoints`` [17, 3], ``bbox``)."""
    height, width = size_hw
    image = draw_background(rng, size_hw)
    people = []
    for hip_center, body in _people_layout(rng, size_hw):
        front = rng.random() < 0.7
        joints = sample_pose(rng, body, hip_center, front)
        extent = draw_person(image, joints, body, front, rng)
        visibility = np.full(17, 2.0)
        if not front:
            visibility[:3] = 0  # face hidden when seen from behind
        if rng.random() < 0.3:
            hidden = _inside(joints, draw_occluder(image, rng, extent))
            visibility[hidden & (visibility > 0)] = 1
        outside = (joints[:, 0] < 0) | (joints[:, 0] > width - 1) | (joints[:, 1] < 0) | (joints[:, 1] > height - 1)
        visibility[outside] = 0
        keypoints = np.concatenate([np.where(visibility[:, None] > 0, joints, 0.0), visibility[:, None]], axis=1)
        x0, y0 = max(extent[0], 0.0), max(extent[1], 0.0)
        x1, y1 = min(extent[2], width - 1.0), min(extent[3], height - 1.0)
        people.append({"keypoints": keypoints, "bbox": [x0, y0, x1 - x0, y1 - y0]})
    return image, people


def _split(root, split, count, seed, size_hw, first_image_id):
    images, annotations = [], []
    for index in range(count):
        image_id = first_image_id + index
        rng = np.random.default_rng([seed, SYNTHETIC_FORMAT_VERSION, image_id])
        image, people = draw_synthetic_image(rng, size_hw)
        file_name = f"{split}_{image_id:07d}.jpg"
        ok, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok, file_name
        encoded.tofile(os.path.join(root, "images", file_name))
        images.append({"id": image_id, "file_name": file_name, "width": size_hw[1], "height": size_hw[0]})
        for person in people:
            keypoints = person["keypoints"]
            labelled = int((keypoints[:, 2] > 0).sum())
            if labelled == 0:
                continue
            bbox = [round(float(v), 2) for v in person["bbox"]]
            annotations.append({
                "id": len(annotations) + 1 + first_image_id * 10, "image_id": image_id, "category_id": 1,
                "iscrowd": 0, "num_keypoints": labelled, "bbox": bbox, "area": round(bbox[2] * bbox[3] * 0.6, 2),
                "keypoints": [round(float(v), 2) if i % 3 < 2 else int(v) for i, v in enumerate(keypoints.ravel())],
            })
    return images, annotations


def _coco_json(params, images, annotations):
    category = {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(KEYPOINT_NAMES),
                "skeleton": [[a + 1, b + 1] for a, b in SKELETON]}
    return {"info": {"description": "posefast synthetic people", "posefast_synthetic": params},
            "images": images, "annotations": annotations, "categories": [category]}


def _existing_params(path):
    try:
        with open(path) as handle:
            return json.load(handle)["info"]["posefast_synthetic"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def make_synthetic_dataset(root=None, *, num_train, num_val, seed=0, image_size=(160, 160)):
    """Write (or reuse) a synthetic keypoint dataset; returns ``dict(train_json, val_json, image_dir)``.

    ``root`` defaults to ``default_synthetic_root()``; ``image_size`` is ``(H, W)`` or an int.
    """
    root = root or default_synthetic_root()
    size_hw = (image_size, image_size) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
    params = {"num_train": int(num_train), "num_val": int(num_val), "seed": int(seed), "image_size": list(size_hw),
              "version": SYNTHETIC_FORMAT_VERSION}
    paths = {"train_json": os.path.join(root, "train.json"), "val_json": os.path.join(root, "val.json"),
             "image_dir": os.path.join(root, "images")}
    if all(_existing_params(paths[k]) == params for k in ("train_json", "val_json")):
        return paths
    os.makedirs(paths["image_dir"], exist_ok=True)
    for name in os.listdir(paths["image_dir"]):  # drop images of an earlier, different build
        if name.startswith(("train_", "val_")) and name.endswith(".jpg"):
            os.remove(os.path.join(paths["image_dir"], name))
    splits = (("train", "train_json", num_train, 1), ("val", "val_json", num_val, 1_000_001))
    for split, key, count, first_id in splits:
        images, annotations = _split(root, split, count, seed, size_hw, first_id)
        tmp = paths[key] + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(_coco_json(params, images, annotations), handle, separators=(",", ":"))
        os.replace(tmp, paths[key])
    return paths
